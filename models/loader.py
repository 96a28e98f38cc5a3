"""Load routing files and report every problem like a compiler: `file:line:col: path: message`.

Files are read by the hardened reader of `models.safe_yaml`, which keeps the position of every
key, so pydantic errors and the cross-reference checks below can each point at their line. A
routing is loaded once per process for each content (file bytes, or pinned snapshot): commands
read only the country they need, and a second read of unchanged bytes costs a hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from calendar import monthrange
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from models.calendar import Calendar, Closure, Duration, build_calendar, easter_sunday
from models.config import (
    SPECIAL_TARGETS,
    WEEKDAYS,
    CalendarSpec,
    CountryConfig,
    Extension,
    PrescriptionPeriod,
    PrescriptionRule,
    Preset,
    PresetDeadline,
    Route,
)
from models.countries import ISO_3166_ALPHA2
from models.domain import OffenceCategory, Outcome
from models.errors import ConfigError, ConfigProblem
from models.safe_yaml import (
    MAX_BYTES,
    Path_,
    YamlDocument,
    parse_yaml,
    read_yaml,
    yaml_from_bytes,
)

M = TypeVar("M", bound=BaseModel)


# -- validating against the schema ----------------------------------------------------------


def validate_model(doc: YamlDocument, model: type[M]) -> M | None:
    """Validate `doc.data` against `model`; every error becomes a located problem."""
    if doc.problems:
        return None
    if not isinstance(doc.data, dict):
        doc.problems.append(doc.problem((), "the file must be a mapping of keys to values"))
        return None
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(p for p in error["loc"] if p != "[key]")
            path = _data_path(doc.data, loc)
            doc.problems.append(doc.problem(path, _friendly(error, model, path)))
        return None


def _data_path(data: Any, loc: tuple[Any, ...]) -> Path_:
    """Pydantic's loc without the union-branch labels it inserts (e.g. 'list[enum]')."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        if _has_child(cur, part):
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str):
            out.append(part)  # a missing or unknown key: point at its parent
            cur = None
        elif cur is not None and not isinstance(cur, dict | list):
            break
    return tuple(out)


def _has_child(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    if isinstance(node, list):
        return isinstance(part, int) and 0 <= part < len(node)
    return False


def _friendly(error: Any, model: type[BaseModel], path: Path_) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        allowed = _fields_at(model, path[:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown key {path[-1]!r}{hint}"
    if kind == "missing":
        return f"missing required key {path[-1]!r}" if path else "missing required key"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind in ("enum", "literal_error"):
        return f"{value!r} is not allowed: {message[0].lower()}{message[1:]}"
    if kind == "string_pattern_mismatch":
        return f"{value!r} has the wrong form: {message[0].lower()}{message[1:]}"
    if isinstance(value, str | int | float | bool) and kind != "value_error":
        return f"{value!r}: {message[0].lower()}{message[1:]}"
    return message


def _fields_at(model: type[BaseModel], path: Path_) -> list[str]:
    """The field names of the model found at `path` below `model`, if any."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            info = current.model_fields.get(part)
            if info is None:
                return []
            current = info.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0]
        else:
            return tp


# -- the loaded, versioned routing -----------------------------------------------------------


@dataclass(frozen=True)
class LegalTerms:
    """What a legal deadline is, resolved: how long, from which event, met by which steps."""

    id: str
    length: Duration
    anchors: tuple[str, ...]
    met_by: tuple[str, ...]
    extension: Extension | None
    source: str


@dataclass(frozen=True)
class Routing:
    """A validated country file, versioned by the hash of its content."""

    config: CountryConfig
    version: str
    file: str
    text: str
    presets: dict[str, PresetDeadline]
    """Preset deadlines the file refers to, by `<preset>.<deadline>`."""

    @property
    def country(self) -> str:
        return self.config.country

    def snapshot(self) -> dict[str, Any]:
        """What the ledger keeps of this version: `routing_from_snapshot` rebuilds it exactly."""
        return {
            "version": self.version,
            "country": self.country,
            "file": self.file,
            "yaml_text": self.text,
            "presets": {k: v.model_dump(mode="json") for k, v in sorted(self.presets.items())},
        }

    def sla(self, route: Route, index: int) -> Any:
        step = route.steps[index]
        if step.sla is not None:
            return step.sla
        if step.deadline is not None:
            return self.legal(route, step.deadline).length
        assert step.preset is not None
        return self.presets[step.preset].sla

    def legal(self, route: Route, deadline_id: str) -> LegalTerms:
        """A route's legal deadline with its preset's terms filled in (the route's win)."""
        deadline = route.deadline(deadline_id)
        preset = self.presets[deadline.preset] if deadline.preset else None
        length = deadline.length or (preset.sla if preset else None)
        anchors = deadline.runs_from or (preset.runs_from if preset else None)
        source = deadline.source or (preset.source if preset else None)
        assert length is not None and anchors and source, "checked by the loader"
        if deadline.preset and deadline.preset.split(".")[0] not in source:
            source = f"{deadline.preset.split('.')[0]} {source}"
        return LegalTerms(
            id=deadline.id,
            length=length,
            anchors=tuple(anchors),
            met_by=tuple(deadline.met_by),
            extension=deadline.extension or (preset.extension if preset else None),
            source=source,
        )

    def calendar(self, authority: str | None = None) -> Calendar:
        """The business calendar of the country, or of one authority if it has its own."""
        return self._calendars[authority if authority in self.config.authorities else None]

    @cached_property
    def _calendars(self) -> _CalendarTable:
        return _CalendarTable(self.config)


class _CalendarTable(dict[str | None, Calendar]):
    def __init__(self, config: CountryConfig) -> None:
        super().__init__()
        self.config = config

    def __missing__(self, authority: str | None) -> Calendar:
        spec = self.config.calendar
        tz = self.config.timezone
        closures = calendar_closures(spec)
        if authority is not None:
            own = self.config.authorities[authority]
            tz = own.timezone or tz
            if own.calendar is not None:
                closures = closures + calendar_closures(own.calendar)
                spec = own.calendar
        source = spec.holidays
        calendar = build_calendar(
            timezone=tz,
            weekend=tuple(WEEKDAYS.index(d) for d in spec.weekend),
            holiday_country=source.country if source else None,
            holiday_subdiv=source.subdiv if source else None,
            closures=tuple(closures),
        )
        self[authority] = calendar
        return calendar


def calendar_closures(spec: CalendarSpec) -> list[Closure]:
    """The closures of one `calendar:` section: its dated ones, then its recurring ones."""
    out = []
    for item in spec.closures:
        first, _, last = item.partition("/")
        span = (date.fromisoformat(first), date.fromisoformat(last or first))
        out.append(Closure(f"closure {item}", dated=span))
    return out + [rule.closure() for rule in spec.recurring]


def content_hash(config: CountryConfig, presets: dict[str, PresetDeadline]) -> str:
    """A stable version id: the same meaning gives the same hash, whatever the comments.

    The retention period is left out: it decides when a closed case may be erased, not how a
    case is routed, so setting it moves no case to a new routing version."""
    payload = {
        "config": config.model_dump(mode="json", exclude={"retention_years"}),
        "presets": {k: v.model_dump(mode="json") for k, v in sorted(presets.items())},
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# -- finding files ------------------------------------------------------------------------------


def config_root() -> Path:
    """`$ROGATORY_CONFIG_DIR`, else `./config` if it exists, else the one beside this package."""
    env = os.environ.get("ROGATORY_CONFIG_DIR")
    if env:
        return Path(env)
    local = Path("config")
    if (local / "countries").is_dir():
        return local
    return Path(__file__).resolve().parent.parent / "config"


def load_presets(root: Path | None = None) -> dict[str, PresetDeadline]:
    """Every preset deadline under `<root>/presets`, keyed `<preset>.<deadline>`."""
    folder = (root or config_root()) / "presets"
    problems: list[ConfigProblem] = []
    out: dict[str, PresetDeadline] = {}
    for path in sorted(folder.glob("*.yaml")):
        doc = read_yaml(path, display=_display(path))
        preset = validate_model(doc, Preset)
        if preset is not None and preset.id != path.stem:
            doc.problems.append(
                doc.problem(("id",), f"id {preset.id!r} does not match the file name {path.name}")
            )
        problems += doc.problems
        if preset is not None:
            for name, deadline in preset.deadlines.items():
                out[f"{preset.id}.{name}"] = deadline
    if problems:
        raise ConfigError(problems)
    return out


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_country(path: Path, *, presets: dict[str, PresetDeadline] | None = None) -> Routing:
    """Load and check one country file; raises ConfigError listing every problem."""
    if presets is None:
        presets = load_presets(path.resolve().parent.parent)
    display = _display(path)
    # Hashed and parsed from the same bytes: a file changed meanwhile cannot be cached wrongly.
    raw = path.read_bytes() if path.stat().st_size <= MAX_BYTES else None
    key = None if raw is None else ("file", display, _sha256(raw), _presets_key(presets))
    cached = _LOADED.get(key)
    if cached is not None:
        return cached
    doc = read_yaml(path, display=display) if raw is None else yaml_from_bytes(raw, file=display)
    config = validate_model(doc, CountryConfig)
    if config is not None:
        doc.problems += list(check_country(config, doc, file_stem=path.stem, presets=presets))
    if doc.problems or config is None:
        raise ConfigError(doc.problems)
    used = {name: presets[name] for name in _presets_used(config)}
    return _LOADED.put(key, Routing(config, content_hash(config, used), doc.file, doc.text, used))


def _presets_used(config: CountryConfig) -> set[str]:
    """The preset deadlines a file names, on its steps and its routes' legal deadlines."""
    used = {s.preset for r in config.routes for s in r.steps if s.preset}
    return used | {d.preset for r in config.routes for d in r.deadlines if d.preset}


def routing_from_snapshot(snapshot: Mapping[str, Any]) -> Routing:
    """Rebuild a pinned routing from what `Routing.snapshot()` stored in the ledger.

    The routing keeps the version it was pinned under. Snapshots stored before durations were
    serialised as text (`{'amount': 48, 'unit': 'h'}`) still load; their content hash under
    today's serialisation differs, which is why the stored version, not a recomputed one, names
    the routing a case runs on.
    """
    file = str(snapshot["file"])
    text = str(snapshot["yaml_text"])
    stored_presets = dict(snapshot.get("presets") or {})
    key = (
        "pinned",
        f"{file} {snapshot['version']}",
        _sha256(text.encode()),
        json.dumps(stored_presets, sort_keys=True, default=str),
    )
    cached = _LOADED.get(key)
    if cached is not None:
        return cached
    doc = parse_yaml(text, file=f"{file} (pinned {snapshot['version']})")
    config = validate_model(doc, CountryConfig)
    problems = list(doc.problems)
    used: dict[str, PresetDeadline] = {}
    for name, value in stored_presets.items():
        try:
            used[name] = PresetDeadline.model_validate(value)
        except ValidationError as exc:
            problems.append(ConfigProblem(doc.file, 1, 1, f"presets.{name}", _first_error(exc)))
    if config is None or problems:
        raise ConfigError(problems)
    return _LOADED.put(key, Routing(config, str(snapshot["version"]), file, text, used))


class _Loaded:
    """Routings already loaded in this process, by what they were loaded from (LRU-bounded)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, ...], Routing] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...] | None) -> Routing | None:
        if key is None:
            return None
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, ...] | None, routing: Routing) -> Routing:
        if key is not None:
            with self._lock:
                self._items[key] = routing
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return routing

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_LOADED = _Loaded(size=256)


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _presets_key(presets: Mapping[str, PresetDeadline]) -> str:
    dumped = {k: v.model_dump(mode="json") for k, v in presets.items()}
    return json.dumps(dumped, sort_keys=True, default=str)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def country_files(root: Path | None = None) -> list[Path]:
    return sorted(((root or config_root()) / "countries").glob("*.yaml"))


def configured_countries(root: Path | None = None) -> list[str]:
    """The codes of the country files under `<root>/countries`, read from their names."""
    return [path.stem.upper() for path in country_files(root)]


_COUNTRY_CODE = re.compile(r"[A-Za-z]{2}")


def load_country_code(country: str, root: Path | None = None) -> Routing | None:
    """The routing in force for one country, read from its own file alone (`<cc>.yaml`), or
    None when no such file exists; raises ConfigError when the file does not load."""
    root = root or config_root()
    if not _COUNTRY_CODE.fullmatch(country):
        return None
    path = root / "countries" / f"{country.lower()}.yaml"
    if not path.is_file():
        return None
    return load_country(path, presets=load_presets(root))


def load_available(
    root: Path | None = None,
) -> tuple[dict[str, Routing], list[ConfigProblem]]:
    """Every country that loads, keyed by code, and the problems of those that do not."""
    root = root or config_root()
    presets = load_presets(root)
    problems: list[ConfigProblem] = []
    out: dict[str, Routing] = {}
    for path in country_files(root):
        try:
            routing = load_country(path, presets=presets)
        except ConfigError as exc:
            problems += exc.problems
        else:
            out[routing.country] = routing
    return out, problems


def load_all(root: Path | None = None) -> dict[str, Routing]:
    """Every country under `<root>/countries`, keyed by country code; all problems at once."""
    out, problems = load_available(root)
    if problems:
        raise ConfigError(problems)
    return out


# -- cross-reference checks ---------------------------------------------------------------------


def check_country(
    config: CountryConfig,
    doc: YamlDocument,
    *,
    file_stem: str,
    presets: dict[str, PresetDeadline],
) -> Iterator[ConfigProblem]:
    """Rules spanning several fields; each problem points at the line that should change."""
    if file_stem != config.country.lower():
        yield doc.problem(
            ("country",),
            f"country {config.country!r} does not match the file name {file_stem}.yaml: "
            f"rename the file to {config.country.lower()}.yaml or fix the code",
        )
    if config.country not in ISO_3166_ALPHA2:
        yield doc.problem(("country",), f"{config.country!r} is not an ISO 3166 country code")
    yield from _check_timezone(config.timezone, ("timezone",), doc)
    yield from _check_calendar(config.calendar, ("calendar",), doc)
    known = ", ".join(config.authorities)
    for aid, authority in config.authorities.items():
        if authority.timezone is not None:
            yield from _check_timezone(authority.timezone, ("authorities", aid, "timezone"), doc)
        if authority.calendar is not None:
            yield from _check_calendar(authority.calendar, ("authorities", aid, "calendar"), doc)
    route_ids: dict[str, int] = {}
    for r, route in enumerate(config.routes):
        where: Path_ = ("routes", r)
        if route.id in route_ids:
            yield doc.problem(
                (*where, "id"),
                f"route id {route.id!r} is already used by routes[{route_ids[route.id]}]",
            )
        route_ids.setdefault(route.id, r)
        yield from _check_matcher(route.when, (*where, "when"), doc)
        step_ids: dict[str, int] = {}
        for s, step in enumerate(route.steps):
            at: Path_ = (*where, "steps", s)
            if step.id in step_ids:
                yield doc.problem((*at, "id"), f"step id {step.id!r} is already used in this route")
            step_ids.setdefault(step.id, s)
            if step.holder not in config.authorities:
                yield doc.problem(
                    (*at, "holder"), f"unknown authority {step.holder!r} (known: {known})"
                )
            if [step.sla, step.preset, step.deadline].count(None) != 2:
                yield doc.problem(
                    at,
                    "give exactly one of `sla` (e.g. 10bd, 30d, 48h), `deadline` (a legal "
                    "deadline of the route) or `preset`",
                )
            if step.deadline is not None and step.deadline not in {d.id for d in route.deadlines}:
                yield doc.problem(
                    (*at, "deadline"),
                    f"route {route.id!r} declares no legal deadline {step.deadline!r} "
                    f"(declared: {', '.join(d.id for d in route.deadlines) or 'none'}): "
                    "add it under the route's `deadlines`",
                )
            if step.preset is not None and step.preset not in presets:
                yield doc.problem(
                    (*at, "preset"),
                    f"unknown preset deadline {step.preset!r} "
                    f"(known: {', '.join(sorted(presets))})",
                )
            if step.when is not None:
                yield from _check_matcher(step.when, (*at, "when"), doc)
        yield from _check_legal_deadlines(route, where, doc, presets)
        yield from _check_decisions(route, where, doc)
        yield from _check_flow(route, where, doc)
    yield from _check_contacts(config, doc)
    yield from _check_prescription(config, doc)
    yield from _check_no_prescription(config, doc)


def _check_legal_deadlines(
    route: Route, where: Path_, doc: YamlDocument, presets: dict[str, PresetDeadline]
) -> Iterator[ConfigProblem]:
    seen: set[str] = set()
    for d, deadline in enumerate(route.deadlines):
        at: Path_ = (*where, "deadlines", d)
        if deadline.id in seen:
            yield doc.problem((*at, "id"), f"legal deadline {deadline.id!r} is declared twice")
        seen.add(deadline.id)
        preset = presets.get(deadline.preset) if deadline.preset else None
        if deadline.preset is not None and preset is None:
            yield doc.problem(
                (*at, "preset"),
                f"unknown preset deadline {deadline.preset!r} "
                f"(known: {', '.join(sorted(presets))})",
            )
            continue
        if preset is None and (
            deadline.length is None or deadline.runs_from is None or deadline.source is None
        ):
            yield doc.problem(
                at, "without a preset, give `length`, `runs_from` and `source` (the article)"
            )
            continue
        anchors = deadline.runs_from or (preset.runs_from if preset else None) or []
        if not anchors:
            yield doc.problem(
                (*at, "preset"),
                f"preset {deadline.preset!r} names no event it runs from: give `runs_from`",
            )
        for anchor in anchors:
            if anchor == "decision":
                yield doc.problem(
                    at,
                    f"{deadline.preset} runs from a decision: name the step whose decision "
                    "starts it, e.g. `runs_from: decided:recognition`",
                )
            elif anchor.startswith(("decided:", "opened:")):
                yield from _check_step_outcome(
                    anchor.partition(":")[2], route, (*at, "runs_from"), doc
                )
        for met in deadline.met_by:
            yield from _check_step_outcome(met, route, (*at, "met_by"), doc)


def _check_step_outcome(
    text: str, route: Route, path: Path_, doc: YamlDocument
) -> Iterator[ConfigProblem]:
    """`<step>` or `<step>:<outcome>`: the step is on the route, the outcome exists."""
    step, _, outcome = text.partition(":")
    steps = [s.id for s in route.steps]
    if step not in steps:
        yield doc.problem(
            path, f"{text!r}: no step {step!r} in route {route.id!r} (steps: {', '.join(steps)})"
        )
    elif outcome and outcome not in {str(o) for o in Outcome}:
        yield doc.problem(
            path,
            f"{text!r}: unknown outcome {outcome!r} (known: {', '.join(str(o) for o in Outcome)})",
        )


def _check_timezone(name: str, path: Path_, doc: YamlDocument) -> Iterator[ConfigProblem]:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        yield doc.problem(path, f"unknown timezone {name!r}: use an IANA name like Europe/Rome")


def _check_calendar(spec: CalendarSpec, path: Path_, doc: YamlDocument) -> Iterator[ConfigProblem]:
    import holidays as holidays_pkg

    if spec.holidays is not None:
        supported = holidays_pkg.list_supported_countries()
        code, subdiv = spec.holidays.country, spec.holidays.subdiv
        if code not in supported:
            yield doc.problem(
                (*path, "holidays", "country"),
                f"the holidays package does not know country {code!r}: list its public "
                "holidays under `closures` instead",
            )
        elif subdiv is not None and subdiv not in supported[code]:
            known = ", ".join(supported[code]) or "none"
            yield doc.problem(
                (*path, "holidays", "subdiv"),
                f"{code} has no subdivision {subdiv!r} in the holidays package (known: {known})",
            )
    for i, item in enumerate(spec.closures):
        first, _, last = item.partition("/")
        try:
            start, end = date.fromisoformat(first), date.fromisoformat(last or first)
        except ValueError as exc:
            yield doc.problem((*path, "closures", i), f"{item!r} is not a real date ({exc})")
            continue
        if end < start:
            yield doc.problem((*path, "closures", i), f"range {item!r} ends before it starts")


def _check_no_prescription(config: CountryConfig, doc: YamlDocument) -> Iterator[ConfigProblem]:
    if config.prescription is None:
        return
    with_period = {o for p in config.prescription.periods for o in p.offences}
    seen: set[str] = set()
    for n, entry in enumerate(config.prescription.none):
        for offence in entry.offences:
            if offence in with_period:
                yield doc.problem(
                    ("prescription", "none", n, "offences"),
                    f"offence {str(offence)!r} has a period under `periods` and is listed here "
                    "as having none: keep one",
                )
            elif offence in seen:
                yield doc.problem(
                    ("prescription", "none", n, "offences"),
                    f"offence {str(offence)!r} is listed twice under `none`",
                )
            seen.add(offence)


# -- warnings: what loads today but will go wrong -------------------------------------------------

HORIZON_MONTHS = 18
"""How far ahead the dated closures of a calendar must reach before `validate` warns."""


def config_warnings(routing: Routing, *, today: date) -> list[ConfigProblem]:
    """What a valid file will get wrong: yearly closures listed by date that stop before
    today + HORIZON_MONTHS, and offence categories its prescription section forgets."""
    doc = parse_yaml(routing.text, file=routing.file)
    config = routing.config
    horizon = _months_after(today, HORIZON_MONTHS)
    sections: list[tuple[Path_, CalendarSpec]] = [(("calendar",), config.calendar)]
    for aid, authority in config.authorities.items():
        if authority.calendar is not None:
            sections.append((("authorities", aid, "calendar"), authority.calendar))
    out: list[ConfigProblem] = []
    for path, spec in sections:
        out += _closures_running_out(spec, path, doc, today=today, horizon=horizon)
    out += _offences_without_prescription(config, doc)
    return sorted(out)


def _months_after(day: date, months: int) -> date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def _closures_running_out(
    spec: CalendarSpec, path: Path_, doc: YamlDocument, *, today: date, horizon: date
) -> Iterator[ConfigProblem]:
    """A list of dated closures that stops before `horizon`: one over several years (a yearly
    list), or one that ended within the past year or is still to come (this year's vacations,
    not yet listed for the next). Closures that all ended long ago are history: no warning."""
    spans: list[tuple[int, date, date]] = []
    for i, item in enumerate(spec.closures):
        first, _, last = item.partition("/")
        spans.append((i, date.fromisoformat(first), date.fromisoformat(last or first)))
    if not spans:
        return
    i, _, end = max(spans, key=lambda span: span[2])
    yearly = len({start.year for _, start, _ in spans}) >= 2
    if end >= horizon or not (yearly or end >= today - timedelta(days=366)):
        return
    forms = "; ".join(_recurring_forms([(s, e) for _, s, e in spans]))
    yield doc.problem(
        (*path, "closures", i),
        f"the dated closures run out on {end} ({spec.closures[i]!r} is the last), before "
        f"{horizon} ({HORIZON_MONTHS} months from today): deadlines after that skip no closure. "
        f"Write the yearly ones once under `recurring:`, e.g. {forms}",
    )


def _recurring_forms(spans: list[tuple[date, date]]) -> list[str]:
    """The `recurring:` entries that would repeat the dated spans: the same month-days each
    year, or the same days around Easter (Holy Week moves with it)."""
    fixed = Counter((s.month, s.day, e.month, e.day) for s, e in spans)
    forms = [
        f'{{every_year: "{m1:02}-{d1:02}..{m2:02}-{d2:02}", reason: ...}}'
        for (m1, d1, m2, d2), count in fixed.items()
        if count >= 2
    ]
    moving = Counter(
        ((s - easter_sunday(s.year)).days, (e - easter_sunday(s.year)).days)
        for s, e in spans
        if fixed[(s.month, s.day, e.month, e.day)] < 2
    )
    forms += [f'{{easter: "{a}..{b}", reason: ...}}' for (a, b), n in moving.items() if n >= 2]
    return forms or ['{every_year: "MM-DD..MM-DD", reason: ...}', '{easter: "-3..0", reason: ...}']


def _offences_without_prescription(
    config: CountryConfig, doc: YamlDocument
) -> Iterator[ConfigProblem]:
    if config.prescription is None:
        return
    named = {o for p in config.prescription.periods for o in p.offences}
    named |= {o for entry in config.prescription.none for o in entry.offences}
    missing = [str(o) for o in OffenceCategory if o not in named]
    if missing:
        yield doc.problem(
            ("prescription", "periods"),
            f"no prescription period for {', '.join(missing)}: their cases get no prescription "
            "date. Add a period citing the statute, or list them under `none:` with the reason, "
            f'e.g. `none: [{{offences: [{missing[0]}], reason: "..."}}]`',
        )


def _check_matcher(matcher: Any, path: Path_, doc: YamlDocument) -> Iterator[ConfigProblem]:
    for code in matcher.counterpart or []:
        if code not in ISO_3166_ALPHA2:
            yield doc.problem(
                (*path, "counterpart"), f"{code!r} is not an ISO 3166 alpha-2 country code"
            )


_FORWARD = {Outcome.FORWARDED, Outcome.EXECUTED, Outcome.PARTIALLY_EXECUTED}


def _check_decisions(route: Route, where: Path_, doc: YamlDocument) -> Iterator[ConfigProblem]:
    ids = [s.id for s in route.steps]
    for s in range(len(route.steps)):
        at: Path_ = (*where, "steps", s, "decisions")
        for outcome, target in route.decisions_for(s).items():
            here: Path_ = (*at, str(outcome))
            if target not in SPECIAL_TARGETS and target not in ids:
                yield doc.problem(
                    here,
                    f"unknown target {target!r}: use next, end, requester, stay "
                    f"or a step id ({', '.join(ids)})",
                )
                continue
            if target == "next" and s == len(route.steps) - 1:
                yield doc.problem(here, "this is the last step, there is no next one: use end")
            elif outcome == Outcome.RETURNED and target not in ("requester", *ids[:s]):
                yield doc.problem(
                    here, "a returned request goes back to the requester or to an earlier step"
                )
            elif outcome in _FORWARD and target in ids and ids.index(target) <= s:
                yield doc.problem(
                    here, f"{outcome} must move forward: {target!r} is not after this step"
                )
            elif outcome == Outcome.REFUSED and target != "end":
                yield doc.problem(here, "a refusal ends the case: use end")
            elif outcome == Outcome.POSTPONED and target != "stay":
                yield doc.problem(here, "a postponed request stays on its step: use stay")
            elif target == "stay" and outcome != Outcome.POSTPONED:
                yield doc.problem(here, "only a postponement can stay on the step")


def route_successors(route: Route, index: int) -> set[int | str]:
    """Where decisions on step `index` can lead: step indexes, or 'end'.

    A conditional step (`when`) may be skipped, so `next` also reaches the steps after it. A
    return to the requester comes back to the same step when the requester answers.
    """
    ids = [s.id for s in route.steps]
    out: set[int | str] = set()
    for target in route.decisions_for(index).values():
        if target == "end":
            out.add("end")
        elif target in ("stay", "requester"):
            out.add(index)
        elif target == "next":
            j = index + 1
            while j < len(route.steps):
                out.add(j)
                if route.steps[j].when is None:
                    break
                j += 1
            else:
                out.add("end")
        elif target in ids:
            out.add(ids.index(target))
    return out


def _check_flow(route: Route, where: Path_, doc: YamlDocument) -> Iterator[ConfigProblem]:
    n = len(route.steps)
    graph = {i: route_successors(route, i) for i in range(n)}
    starts = []
    for i, step in enumerate(route.steps):
        starts.append(i)
        if step.when is None:
            break
    reached: set[int | str] = set()
    frontier: list[int | str] = list(starts)
    while frontier:
        node = frontier.pop()
        if node in reached:
            continue
        reached.add(node)
        if isinstance(node, int):
            frontier.extend(graph[node])
    for i in range(n):
        if i not in reached:
            yield doc.problem(
                (*where, "steps", i, "id"),
                f"step {route.steps[i].id!r} can never be reached: no decision leads to it",
            )
    reverse: dict[int | str, set[int]] = {}
    for i, targets in graph.items():
        for t in targets:
            reverse.setdefault(t, set()).add(i)
    exits: set[int | str] = set()
    frontier = ["end"]
    while frontier:
        node = frontier.pop()
        if node in exits:
            continue
        exits.add(node)
        frontier.extend(reverse.get(node, ()))
    for i in range(n):
        if i in reached and i not in exits:
            yield doc.problem(
                (*where, "steps", i, "id"),
                f"step {route.steps[i].id!r} is in a loop without exit: no chain of decisions "
                "from it reaches end; add a decision that moves forward or ends the case",
            )


def _check_contacts(config: CountryConfig, doc: YamlDocument) -> Iterator[ConfigProblem]:
    ladders: list[tuple[Path_, Any]] = [(("escalation",), config.escalation)]
    for r, route in enumerate(config.routes):
        ladders.append((("routes", r, "escalation"), route.escalation or []))
        for s, step in enumerate(route.steps):
            ladders.append((("routes", r, "steps", s, "escalation"), step.escalation or []))
    for path, rungs in ladders:
        for k, rung in enumerate(rungs):
            for role in rung.notify:
                missing = [aid for aid in config.authorities if config.contact(role, aid) is None]
                if missing:
                    yield doc.problem(
                        (*path, k, "notify"),
                        f"no apprise tag for role {str(role)!r} (authorities without one: "
                        f"{', '.join(missing)}): add `{role}: <tag>` under contacts",
                    )


def _check_prescription(config: CountryConfig, doc: YamlDocument) -> Iterator[ConfigProblem]:
    if config.prescription is None:
        return
    # Several periods (or entries of one rule) may name one offence when a reform changed the
    # law: their offence dates must then not overlap, so exactly one applies to any offence.
    periods = config.prescription.periods
    for p, period in enumerate(periods):
        at: Path_ = ("prescription", "periods", p)
        yield from _check_offence_dates(period, at, doc)
        for offence in period.offences:
            earlier = [q for q in range(p) if offence in periods[q].offences]
            clash = next((q for q in earlier if _overlap(periods[q], period)), None)
            if clash is None:
                continue
            yield doc.problem(
                (*at, "offences"),
                f"offence {str(offence)!r} already has a period in periods[{clash}]"
                + (_OVERLAP_HINT if _dated(period, periods[clash]) else ""),
            )
        if period.cap_years is not None and period.cap_factor is not None:
            yield doc.problem(at, "give cap_years or cap_factor, not both")
        if period.cap_years is not None and period.cap_years < period.years:
            yield doc.problem(
                (*at, "cap_years"),
                f"the cap ({period.cap_years} years) is shorter than the period ({period.years})",
            )
    rules = config.prescription.effects
    for r, rule in enumerate(rules):
        at = ("prescription", "effects", r)
        yield from _check_offence_dates(rule, at, doc)
        same = [q for q in range(r) if rules[q].rule == rule.rule]
        clash = next((q for q in same if _overlap(rules[q], rule)), None)
        if clash is not None:
            yield doc.problem(
                (*at, "rule"),
                f"rule {rule.rule.value!r} is already listed in effects[{clash}]"
                + (_OVERLAP_HINT if _dated(rule, rules[clash]) else ""),
            )


_OVERLAP_HINT = (
    " for overlapping offence dates: end the earlier one (offences_until) before the later "
    "one starts (offences_from)"
)


def _check_offence_dates(
    dated: PrescriptionPeriod | PrescriptionRule, at: Path_, doc: YamlDocument
) -> Iterator[ConfigProblem]:
    first, last = dated.offences_from, dated.offences_until
    if first is not None and last is not None and last < first:
        yield doc.problem(
            (*at, "offences_until"), f"offences_until {last} is before offences_from {first}"
        )


def _dated(*entries: PrescriptionPeriod | PrescriptionRule) -> bool:
    return any(e.offences_from or e.offences_until for e in entries)


def _overlap(
    a: PrescriptionPeriod | PrescriptionRule, b: PrescriptionPeriod | PrescriptionRule
) -> bool:
    """Whether some offence date lies in both entries' ranges (an open end reaches forever)."""
    starts = [d for d in (a.offences_from, b.offences_from) if d is not None]
    ends = [d for d in (a.offences_until, b.offences_until) if d is not None]
    return not starts or not ends or max(starts) <= min(ends)

"""A ministry changes its country's routing: a draft is checked, compared, then published.

A draft is checked exactly as `rogatory validate` checks a file (it is loaded by the same
`load_country`), compared with the version in force route by route and step by step, and
published by replacing the country's file atomically and recording the new version and who
published it in the ledger, in one transaction. Cases keep the version they pinned.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.config import CountryConfig, Matcher, Route, Rung
from models.errors import ConfigError, ConfigProblem, Conflict, Forbidden
from models.identity import Caller, RoleName, Scope
from models.ledger import Ledger, RoutingPublication
from models.loader import Routing, load_country, load_presets
from models.safe_yaml import MAX_BYTES, parse_yaml
from models.store import CaseStore

MAY_VIEW = (RoleName.MINISTRY, RoleName.COORDINATOR)
MAY_PUBLISH = (RoleName.MINISTRY,)


# -- who may ----------------------------------------------------------------------------------


def routing_roles(caller: Caller) -> dict[str, RoleName]:
    """The countries whose routing pages the caller sees, with the role that lets them (the
    ministry's, where they hold both)."""
    found: dict[str, RoleName] = {}
    for grant in sorted(caller.grants, key=lambda g: g.role != RoleName.MINISTRY):
        if grant.country and grant.role in MAY_VIEW:
            found.setdefault(grant.country, grant.role)
    return dict(sorted(found.items()))


def authorise_routing_view(caller: Caller, country: str) -> None:
    """The country's ministry and coordinator see its routing and may check drafts."""
    if caller.local:
        return
    caller.require_scope(Scope.READ)
    if country not in routing_roles(caller):
        raise _deny(caller, f"see the routing of {country}: its ministry and coordinator may")


def authorise_publish(caller: Caller, country: str) -> None:
    """Only the country's ministry publishes a new routing."""
    if caller.local:
        return
    caller.require_scope(Scope.WRITE)
    if routing_roles(caller).get(country) not in MAY_PUBLISH:
        raise _deny(caller, f"publish the routing of {country}: only its ministry may")


def _deny(caller: Caller, action: str) -> Forbidden:
    roles = ", ".join(str(g) for g in caller.grants) or "no role"
    return Forbidden(f"{caller.name} ({roles}) may not {action}")


# -- the file in force and a draft ------------------------------------------------------------


def country_file(country: str, *, root: Path) -> Path:
    return root / "countries" / f"{country.lower()}.yaml"


def display_name(country: str) -> str:
    """How a draft's problems name their file: the country file it would replace."""
    return f"countries/{country.lower()}.yaml"


def in_force(country: str, *, root: Path) -> Routing | None:
    """The country's routing as its file says now; None without a file. ConfigError when the
    file on disk is broken (edited by hand)."""
    path = country_file(country, root=root)
    if not path.is_file():
        return None
    return load_country(path, presets=load_presets(root))


@dataclass(frozen=True)
class Draft:
    """A country file not yet published: its text, and its routing or its problems."""

    country: str
    file: str
    text: str
    routing: Routing | None
    problems: list[ConfigProblem]

    @property
    def lines(self) -> list[tuple[int, str, list[ConfigProblem]]]:
        """Each line of the text, numbered from 1, with the problems that point at it."""
        at: dict[int, list[ConfigProblem]] = {}
        for problem in self.problems:
            at.setdefault(problem.line, []).append(problem)
        lines = self.text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [(n, line, at.get(n, [])) for n, line in enumerate(lines or [""], start=1)]


def check_draft(content: bytes, *, country: str, root: Path) -> Draft:
    """Check a draft of `country`'s file as `rogatory validate` would check the file itself.

    A draft written for another country is refused at its `country` line.
    """
    shown = display_name(country)
    content = normalise(content)
    text = content[: MAX_BYTES + 1].decode("utf-8", errors="replace")
    other = _other_country(content, country=country, shown=shown)
    if other is not None:
        return Draft(country, shown, text, None, [other])
    with tempfile.TemporaryDirectory(prefix="rogatory-draft-") as folder:
        path = Path(folder) / f"{country.lower()}.yaml"
        path.write_bytes(content)
        try:
            routing = load_country(path, presets=load_presets(root))
        except ConfigError as exc:
            return Draft(country, shown, text, None, [replace(p, file=shown) for p in exc.problems])
    return Draft(country, shown, text, replace(routing, file=shown), [])


def normalise(content: bytes) -> bytes:
    """Line ends as the files keep them: a browser posts a textarea with CR LF."""
    content = content.replace(b"\r\n", b"\n")
    return content if content.endswith(b"\n") or not content else content + b"\n"


def _other_country(content: bytes, *, country: str, shown: str) -> ConfigProblem | None:
    """The problem of a draft that names another country; None if it does not (or cannot be
    read far enough to say: the full check then reports why)."""
    if len(content) > MAX_BYTES:
        return None
    try:
        doc = parse_yaml(content.decode("utf-8"), file=shown)
    except UnicodeDecodeError:
        return None
    claimed = doc.data.get("country") if isinstance(doc.data, dict) else None
    if not isinstance(claimed, str) or claimed.upper() == country:
        return None
    return doc.problem(
        ("country",),
        f"this draft is the routing of {claimed}, not of {country}: "
        f"check it on {claimed}'s page, or correct the code",
    )


# -- what a draft changes -------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One thing that reads differently: what it is, as it was, as it would be.

    `what` is one of a few fixed words (the page translates them); the values are written as
    the file writes them, so they read the same in every language.
    """

    what: str
    before: str
    after: str
    of: str = ""
    """Which one, where `what` has several (the authority's id)."""


@dataclass(frozen=True)
class StepDiff:
    id: str
    status: str
    """added, removed or changed."""
    holder: str
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class RouteDiff:
    id: str
    name: str
    status: str
    """added, removed or changed."""
    changes: list[Change] = field(default_factory=list)
    steps: list[StepDiff] = field(default_factory=list)


@dataclass(frozen=True)
class RoutingDiff:
    """What publishing a draft would change, route by route and step by step."""

    before: str | None
    """The version in force (None: there is none)."""
    after: str
    changes: list[Change]
    """Country-wide: authorities, the country's escalation ladder, other settings."""
    routes: list[RouteDiff]
    text: list[str]
    """The unified diff of the two texts, line by line."""

    @property
    def same(self) -> bool:
        return self.before == self.after


def diff_routings(before: Routing | None, after: Routing) -> RoutingDiff:
    """The changes from the routing in force (if any) to a draft."""
    old_text = before.text.splitlines(keepends=True) if before else []
    text = difflib.unified_diff(
        old_text,
        after.text.splitlines(keepends=True),
        fromfile=f"{after.file} (in force{' ' + before.version if before else ': none'})",
        tofile=f"{after.file} (draft {after.version})",
    )
    if before is None:
        routes = [_route_alone(after, r, "added") for r in after.config.routes]
        return RoutingDiff(None, after.version, [], routes, [line.rstrip("\n") for line in text])
    return RoutingDiff(
        before.version,
        after.version,
        list(_country_changes(before.config, after.config)),
        list(_route_diffs(before, after)),
        [line.rstrip("\n") for line in text],
    )


def _country_changes(old: CountryConfig, new: CountryConfig) -> Iterator[Change]:
    for aid in old.authorities.keys() - new.authorities.keys():
        yield Change("authority", old.authorities[aid].name, "", aid)
    for aid in new.authorities.keys() - old.authorities.keys():
        yield Change("authority", "", new.authorities[aid].name, aid)
    for aid in old.authorities.keys() & new.authorities.keys():
        if old.authorities[aid] != new.authorities[aid]:
            yield Change("authority", _authority_text(old, aid), _authority_text(new, aid), aid)
    if old.escalation != new.escalation:
        yield Change(
            "country escalation ladder", ladder_text(old.escalation), ladder_text(new.escalation)
        )
    for name in ("name", "timezone", "calendar", "contacts", "prescription"):
        was, now = getattr(old, name), getattr(new, name)
        if was != now:
            yield Change(name, _plain(was), _plain(now))


def _authority_text(config: CountryConfig, aid: str) -> str:
    return _plain(config.authorities[aid])


def _plain(value: Any) -> str:
    """A setting as one line of YAML-like text."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return "–" if value is None else str(value)


def _route_diffs(before: Routing, after: Routing) -> Iterator[RouteDiff]:
    old = {r.id: r for r in before.config.routes}
    new = {r.id: r for r in after.config.routes}
    for route in before.config.routes:
        if route.id not in new:
            yield _route_alone(before, route, "removed")
    for route in after.config.routes:
        if route.id not in old:
            yield _route_alone(after, route, "added")
            continue
        found = _route_diff(before, old[route.id], after, route)
        if found.changes or found.steps:
            yield found


def _route_alone(routing: Routing, route: Route, status: str) -> RouteDiff:
    holders = routing.config.authorities
    return RouteDiff(
        route.id,
        route.name or route.id,
        status,
        [Change("steps in order", *_pair(status, chain_text(routing, route)))],
        [StepDiff(s.id, status, holders[s.holder].name) for s in route.steps],
    )


def _pair(status: str, text: str) -> tuple[str, str]:
    return ("", text) if status == "added" else (text, "")


def _route_diff(before: Routing, old: Route, after: Routing, new: Route) -> RouteDiff:
    changes: list[Change] = []
    if (old.name or "") != (new.name or ""):
        changes.append(Change("name", old.name or "", new.name or ""))
    if old.when != new.when:
        changes.append(Change("applies to", matcher_text(old.when), matcher_text(new.when)))
    if [s.id for s in old.steps] != [s.id for s in new.steps]:
        changes.append(Change("steps in order", chain_text(before, old), chain_text(after, new)))
    if old.escalation != new.escalation:
        changes.append(
            Change(
                "route escalation ladder",
                ladder_text(old.escalation),
                ladder_text(new.escalation),
            )
        )
    steps: list[StepDiff] = []
    old_ids = {s.id: i for i, s in enumerate(old.steps)}
    new_ids = {s.id: i for i, s in enumerate(new.steps)}
    for i, step in enumerate(old.steps):
        if step.id not in new_ids:
            steps.append(
                StepDiff(
                    step.id,
                    "removed",
                    before.config.authorities[step.holder].name,
                    [Change("SLA", sla_text(before, old, i), "")],
                )
            )
    for j, step in enumerate(new.steps):
        holder = after.config.authorities[step.holder].name
        if step.id not in old_ids:
            steps.append(
                StepDiff(step.id, "added", holder, [Change("SLA", "", sla_text(after, new, j))])
            )
            continue
        found = list(_step_changes(before, old, old_ids[step.id], after, new, j))
        if found:
            steps.append(StepDiff(step.id, "changed", holder, found))
    return RouteDiff(new.id, new.name or new.id, "changed", changes, steps)


def _step_changes(
    before: Routing, old: Route, i: int, after: Routing, new: Route, j: int
) -> Iterator[Change]:
    was, now = old.steps[i], new.steps[j]
    if was.holder != now.holder or (
        before.config.authorities[was.holder].name != after.config.authorities[now.holder].name
    ):
        yield Change(
            "holder",
            before.config.authorities[was.holder].name,
            after.config.authorities[now.holder].name,
        )
    if sla_text(before, old, i) != sla_text(after, new, j):
        yield Change("SLA", sla_text(before, old, i), sla_text(after, new, j))
    if was.when != now.when:
        yield Change("applies to", matcher_text(was.when), matcher_text(now.when))
    if old.decisions_for(i) != new.decisions_for(j):
        yield Change("decisions", decisions_text(old, i), decisions_text(new, j))
    if was.escalation != now.escalation:
        yield Change(
            "step escalation ladder", ladder_text(was.escalation), ladder_text(now.escalation)
        )
    if (was.note or "") != (now.note or ""):
        yield Change("note", was.note or "", now.note or "")


# -- how a routing reads ----------------------------------------------------------------------


def sla_text(routing: Routing, route: Route, index: int) -> str:
    """`10bd`, or `10bd (eu-eio.recognition)` for a preset's deadline."""
    step = route.steps[index]
    sla = routing.sla(route, index)
    return f"{sla} ({step.preset})" if step.preset else str(sla)


def chain_text(routing: Routing, route: Route) -> str:
    return " → ".join(s.id for s in route.steps)


def matcher_fields(matcher: Matcher | None) -> list[tuple[str, list[str]]]:
    """The request fields a matcher looks at and the values it accepts (empty: every request);
    true and false read yes and no."""
    if matcher is None:
        return []
    found = []
    for key, value in matcher.model_dump(mode="json", exclude_none=True).items():
        values = value if isinstance(value, list) else [value]
        found.append(
            (key, [("yes" if v else "no") if isinstance(v, bool) else str(v) for v in values])
        )
    return found


def matcher_text(matcher: Matcher | None) -> str:
    """`kind: mla | extradition, direction: outgoing`; empty for every request."""
    return ", ".join(f"{k}: {' | '.join(v)}" for k, v in matcher_fields(matcher))


def decisions_text(route: Route, index: int) -> str:
    return ", ".join(f"{o} → {t}" for o, t in route.decisions_for(index).items())


def rung_text(rung: Rung) -> str:
    """`150%: head, coordinator (escalation, repeat 10bd)`."""
    again = f", repeat {rung.repeat}" if rung.repeat else ""
    return f"{rung.at}: {', '.join(str(r) for r in rung.notify)} ({rung.kind}{again})"


def ladder_text(rungs: list[Rung] | None) -> str:
    """The rungs as the file lists them; empty when the ladder is inherited, `[]` for none."""
    if rungs is None:
        return ""
    return "; ".join(rung_text(r) for r in rungs) or "[]"


def ladder_of(routing: Routing, route: Route, index: int) -> tuple[str, list[Rung]]:
    """The rungs a step's hops climb, and where they are set: step, route or country."""
    step = route.steps[index]
    if step.escalation is not None:
        return "step", step.escalation
    if route.escalation is not None:
        return "route", route.escalation
    return "country", routing.config.escalation


# -- publishing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Publication:
    country: str
    version: str
    previous_version: str | None
    published_by: str
    published_at: datetime
    note: str


def publish(
    content: bytes,
    *,
    ledger: Ledger,
    country: str,
    root: Path,
    actor: str,
    now: datetime,
    note: str,
    reviewed: str,
    based_on: str | None,
) -> Publication:
    """Make a checked draft the country's routing in force, on the record.

    `reviewed` is the version of the draft whose diff the publisher read and `based_on` the
    version in force it was compared with: a text changed since, or a routing published by
    someone else meanwhile, is refused (Conflict) rather than published unseen. The file is
    replaced atomically inside the ledger's transaction, and put back if the transaction fails.
    """
    draft = check_draft(content, country=country, root=root)
    if draft.routing is None:
        raise ConfigError(draft.problems)
    if draft.routing.version != reviewed:
        raise Conflict(
            f"this text is version {draft.routing.version}, not the draft {reviewed} you "
            "reviewed: check it again before publishing"
        )
    path = country_file(country, root=root)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = _staged(path, normalise(content))
    old_content: bytes | None = None
    replaced = False
    try:
        with ledger.transaction() as session:
            current = _version_in_force(country, root=root)
            if current != based_on:
                raise Conflict(
                    f"the routing of {country} in force is now {current or 'none'}, not "
                    f"{based_on or 'none'} as when you compared: check your draft again"
                )
            if current == draft.routing.version:
                raise Conflict(f"version {current} is in force already: nothing to publish")
            old_content = path.read_bytes() if path.exists() else None
            os.replace(staged, path)
            replaced = True
            _sync_folder(path.parent)
            routing = load_country(path, presets=load_presets(root))
            CaseStore.of(session).pin({**routing.snapshot(), "first_seen_at": now})
            row = RoutingPublication(
                country=country,
                version=routing.version,
                previous_version=current,
                published_by=actor,
                published_at=now,
                note=note,
            )
            session.add(row)
            session.flush()
            published = _publication(row)
    except BaseException:
        if replaced:
            _put_back(path, old_content)
        raise
    finally:
        staged.unlink(missing_ok=True)
    return published


def publications(session: Session, *, country: str) -> list[Publication]:
    """The country's publications, newest first."""
    rows = session.scalars(
        select(RoutingPublication)
        .where(RoutingPublication.country == country)
        .order_by(RoutingPublication.published_at.desc(), RoutingPublication.id.desc())
    )
    return [_publication(r) for r in rows]


def _publication(row: RoutingPublication) -> Publication:
    return Publication(
        row.country,
        row.version,
        row.previous_version,
        row.published_by,
        row.published_at,
        row.note,
    )


def _version_in_force(country: str, *, root: Path) -> str | None:
    """A broken file in force has no version: a valid draft may replace it."""
    try:
        routing = in_force(country, root=root)
    except ConfigError:
        return None
    return routing.version if routing else None


def _staged(path: Path, content: bytes) -> Path:
    """`content` in a temporary file beside `path`, on disk, with the file's permissions."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(name, path.stat().st_mode & 0o777 if path.exists() else 0o644)
    return Path(name)


def _put_back(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    else:
        os.replace(_staged(path, content), path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """The rename itself survives a power cut once the folder's entry is on disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

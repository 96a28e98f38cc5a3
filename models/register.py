"""A former register as read: its rows, checked and turned into cases with their history.

Every cell is read as the register holds it (Excel dates, dd/mm/yyyy text, bare serial day
numbers; labels through the mapping's value maps) and every problem is located
`file:sheet:row:column`. A `case_per_row` register's dates are walked along the case's route
as the engine would walk it; an `event_per_row` export's rows are taken in file order. What
comes out is each case's intake and its history as the engine's commands (`Entry`), with an
idempotency key per command that `models.importer` replays and re-import is keyed on.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from models.config import Route
from models.errors import ConfigError, ConfigProblem, IntakeError, RegisterProblem, RogatoryError
from models.import_mapping import (
    DATE_FIELDS,
    DATE_FORMATS,
    LIST_FIELDS,
    LoadedMapping,
    Mapping,
    Source,
    label_key,
)
from models.intake import EARLIEST_OFFENCE, RequestIntake
from models.loader import Routing

KEY_PREFIX = "import"
MAX_HOPS = 200
"""A `case_per_row` walk stops here: a route that loops on itself must not run forever."""
EXCEL_1900 = date(1899, 12, 30)
EXCEL_1904 = date(1904, 1, 1)
BOOLEAN_WORDS = {"true": True, "false": False}


def column_letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column index (0 -> A, 26 -> AA)."""
    out = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        out = chr(65 + rest) + out
    return out


@dataclass(frozen=True)
class Table:
    """The rows of one sheet (or CSV file), with its header row."""

    file: str
    sheet: str
    sha256: str
    header: list[str]
    header_row: int
    rows: list[tuple[int, tuple[Any, ...]]]
    """(spreadsheet row number, cell values), blank rows left out."""
    excel_epoch: date = EXCEL_1900


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_table(path: Path, loaded: LoadedMapping) -> Table:
    """The sheet the mapping names (Excel) or the CSV file, as plain rows."""
    mapping = loaded.mapping
    try:
        sha = file_sha256(path)
    except OSError as exc:
        raise RogatoryError(f"cannot read {path}: {exc.strerror}") from None
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path, loaded, sha)
    if path.suffix.lower() in (".csv", ".txt", ".tsv"):
        return _read_csv(path, mapping, sha)
    raise RogatoryError(f"{path}: give an Excel workbook (.xlsx) or a CSV file (.csv)")


def _read_xlsx(path: Path, loaded: LoadedMapping, sha: str) -> Table:
    import zipfile

    import openpyxl

    mapping = loaded.mapping
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise RogatoryError(f"{path}: not a readable Excel workbook ({exc})") from None
    try:
        if mapping.sheet is not None and mapping.sheet not in book.sheetnames:
            raise ConfigError(
                [
                    loaded.problem(
                        ("sheet",),
                        f"{path.name} has no sheet {mapping.sheet!r} "
                        f"(sheets: {', '.join(book.sheetnames)})",
                    )
                ]
            )
        sheet = book[mapping.sheet] if mapping.sheet else book.worksheets[0]
        epoch = EXCEL_1904 if getattr(book, "epoch", None) and book.epoch.year == 1904 else None
        rows: list[tuple[int, tuple[Any, ...]]] = []
        header: list[str] | None = None
        number = mapping.header_row
        for values in sheet.iter_rows(min_row=mapping.header_row, values_only=True):
            if header is None:
                header = [_title(v) for v in values]
            elif any(v is not None and v != "" for v in values):
                rows.append((number, values))
            number += 1
        return Table(
            path.name,
            sheet.title,
            sha,
            header or [],
            mapping.header_row,
            rows,
            epoch or EXCEL_1900,
        )
    finally:
        book.close()


def _read_csv(path: Path, mapping: Mapping, sha: str) -> Table:
    rows: list[tuple[int, tuple[Any, ...]]] = []
    header: list[str] | None = None
    try:
        with path.open(encoding=mapping.encoding, newline="") as stream:
            reader = csv.reader(stream, delimiter=mapping.delimiter)
            for values in reader:
                number = reader.line_num
                if number < mapping.header_row:
                    continue
                if header is None:
                    header = [_title(v) for v in values]
                elif any(v.strip() for v in values):
                    rows.append((number, tuple(values)))
    except UnicodeDecodeError as exc:
        raise RogatoryError(
            f"{path}: not {mapping.encoding} text (bad byte at offset {exc.start}): "
            "set `encoding` in the mapping (e.g. latin-1, cp1252)"
        ) from None
    except csv.Error as exc:
        raise RogatoryError(f"{path}: not a readable CSV file ({exc})") from None
    # Excel names a CSV file's one sheet after the file: problems are located the same way.
    return Table(path.name, path.stem, sha, header or [], mapping.header_row, rows)


def _title(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


@dataclass(frozen=True)
class Where:
    """A cell of the register: its row, column letter and column title."""

    row: int
    column: str = ""
    title: str = ""


@dataclass
class Entry:
    """One fact of a case's history, as the engine will be told it."""

    kind: str
    """register, decide, resubmit, withdraw; `received` is only checked against the open hop."""
    on: date
    where: Where
    outcome: str | None = None
    ground: str | None = None
    cause: str | None = None
    note: str | None = None
    authority: str | None = None
    """The authority the register says acted: checked against the hop then open."""

    def fingerprint(self, extra: Any = None) -> str:
        body = [self.kind, self.on.isoformat(), self.outcome, self.ground, self.cause, self.note]
        text = json.dumps([body, self.authority, extra], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class RegisterCase:
    """One case of the register: its number, its request and its history."""

    number: str
    where: Where
    intake: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Where] = field(default_factory=dict)
    """Where each intake field was read, to locate the engine's refusals."""
    entries: list[Entry] = field(default_factory=list)
    bad: bool = False

    def commands(self) -> list[Entry]:
        return [e for e in self.entries if e.kind != "received"]

    def keys(self, country: str) -> list[str]:
        """The idempotency key of each command, in order."""
        out = []
        for n, entry in enumerate(self.commands(), start=1):
            extra = self.intake if entry.kind == "register" else None
            out.append(f"{KEY_PREFIX}:{country}:{self.number}:{n}:{entry.fingerprint(extra)}")
        return out


@dataclass(frozen=True)
class _Dated:
    """A history column of one row: the day passed on, and the day received if given."""

    on: date | None
    where: Where
    received: date | None = None
    received_where: Where | None = None


@dataclass(frozen=True)
class _Final:
    """A one-row case's outcome columns."""

    outcome: str
    on: date
    where: Where
    ground: str | None = None
    by: str | None = None


class RegisterReader:
    """Turns rows into register cases, collecting every problem on the way."""

    def __init__(self, table: Table, loaded: LoadedMapping, routing: Routing, today: date) -> None:
        self.table = table
        self.mapping = loaded.mapping
        self.loaded = loaded
        self.routing = routing
        self.today = today
        self.problems: list[RegisterProblem] = []
        self.index: dict[str, int] = {}
        self._lookups: dict[int, dict[str, str | bool] | None] = {}
        self._days: dict[Any, date | None] = {}
        self._letters = [column_letter(i) for i in range(len(table.header) + 1)]
        problems: list[ConfigProblem] = []
        by_key = {label_key(t): i for i, t in reversed(list(enumerate(table.header))) if t}
        for where, name in self.mapping.columns():
            found = next((i for i, t in enumerate(table.header) if t == name.strip()), None)
            if found is None:
                found = by_key.get(label_key(name))
            if found is None:
                titles = ", ".join(repr(t) for t in table.header if t) or "none"
                problems.append(
                    loaded.problem(
                        where,
                        f"no column {name!r} in row {table.header_row} of "
                        f"{table.file}:{table.sheet} (its columns: {titles})",
                    )
                )
            else:
                self.index[name] = found
        if problems:
            raise ConfigError(problems)

    # -- cells ----------------------------------------------------------------------------------

    def problem(self, where: Where, message: str) -> None:
        title = f"{where.title!r}: " if where.title else ""
        self.problems.append(
            RegisterProblem(
                self.table.file, self.table.sheet, where.row, where.column, title + message
            )
        )

    def cell(self, row: int, values: tuple[Any, ...], name: str) -> tuple[Any, Where]:
        i = self.index[name]
        value = values[i] if i < len(values) else None
        if isinstance(value, str):
            value = value.strip() or None
        letter = self._letters[i] if i < len(self._letters) else column_letter(i)
        return value, Where(row, letter, name)

    def text(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, datetime):
            return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
        return " ".join(str(value).split()) or None

    def day(self, value: Any, where: Where) -> date | None:
        """A date as the register writes it; None (with a problem) when it is not one."""
        found = self._day(value)
        if found is None:
            shown = self.text(value)
            formats = " or ".join(self.mapping.dates)
            self.problem(where, f"{shown!r} is not a date ({formats})")
            return None
        if found > self.today:
            self.problem(where, f"{found:%d/%m/%Y} is in the future: a register records the past")
            return None
        if found < EARLIEST_OFFENCE:
            self.problem(
                where, f"{found:%d/%m/%Y} is before {EARLIEST_OFFENCE.year}: check the year"
            )
            return None
        return found

    def _day(self, value: Any) -> date | None:
        if isinstance(value, str):
            # Registers repeat their dates: each text is parsed once.
            if value not in self._days:
                self._days[value] = self._parse_day(value)
            return self._days[value]
        return self._parse_day(value)

    def _parse_day(self, value: Any) -> date | None:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        excel = "excel" in self.mapping.dates
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self._serial(value) if excel else None
        if not isinstance(value, str):
            return None
        for name in self.mapping.dates:
            if name == "excel":
                if value.replace(".", "", 1).isdigit():
                    found = self._serial(float(value))
                    if found is not None:
                        return found
                continue
            try:
                return datetime.strptime(value, DATE_FORMATS[name]).date()
            except ValueError:
                continue
        return None

    def _serial(self, value: float) -> date | None:
        # Excel's day numbers: 1 is 1900-01-01 (counted from 1899-12-30, past Lotus's phantom
        # 29 February 1900); workbooks in the 1904 system count from 1904-01-01.
        if not 1 <= value < 2_958_466 or not float(value).is_integer():
            return None
        return self.table.excel_epoch + timedelta(days=int(value))

    def mapped(self, source: Source, row: int, values: tuple[Any, ...], what: str) -> Any:
        """A value through its source: a column (value-mapped) or a fixed value; None if blank.

        A label the value map does not list is a problem, and gives None."""
        if source.column is None:
            return source.value
        raw, where = self.cell(row, values, source.column)
        text = self.text(raw)
        if text is None:
            return source.value
        if id(source) not in self._lookups:
            self._lookups[id(source)] = source.lookup()
        lookup = self._lookups[id(source)]
        if lookup is None:
            return text
        found = lookup.get(label_key(text))
        if found is None:
            known = ", ".join(repr(k) for k in (source.values or {}))
            self.problem(where, f"unknown {what} {text!r} (the mapping knows: {known})")
        return found

    # -- cases ----------------------------------------------------------------------------------

    def intake(self, case: RegisterCase, row: int, values: tuple[Any, ...]) -> None:
        data: dict[str, Any] = {"country": self.mapping.country, "register_number": case.number}
        for name, source in self.mapping.fields.items():
            if source.column is not None:
                case.columns[name] = self.cell(row, values, source.column)[1]
            else:
                case.columns[name] = Where(row)
            if name in DATE_FIELDS:
                raw = source.value
                if source.column is not None:
                    raw = self.cell(row, values, source.column)[0]
                    raw = raw if raw is not None else source.value
                if raw is not None:
                    found = self.day(raw, case.columns[name])
                    data[name] = found.isoformat() if found else None
                    case.bad |= found is None
                continue
            before = len(self.problems)
            value = self.mapped(source, row, values, name.replace("_", " "))
            case.bad |= len(self.problems) > before
            if value is None:
                continue
            if name in LIST_FIELDS:
                parts = str(value).split(source.split) if source.split else [str(value)]
                value = [p.strip() for p in parts if p.strip()]
            elif (
                isinstance(value, str)
                and value.casefold() in BOOLEAN_WORDS
                and name
                in (
                    "urgent",
                    "coercive",
                    "confidential",
                    "service_of_documents",
                )
            ):
                value = BOOLEAN_WORDS[value.casefold()]
            data[name] = value
        case.intake = data

    def check_intake(self, case: RegisterCase, received: date) -> None:
        """The request's own checks (UNCAC 46(15) essentials, codes), located on its columns."""
        if case.bad:
            return
        offence = case.intake.get("offence_date")
        if isinstance(offence, str) and date.fromisoformat(offence) > received:
            self.problem(
                case.columns["offence_date"],
                f"the offence ({date.fromisoformat(offence):%d/%m/%Y}) is after the day the "
                f"request was received ({received:%d/%m/%Y})",
            )
            case.bad = True
            return
        try:
            RequestIntake.check(case.intake, today=received, countries=[self.mapping.country])
        except IntakeError as exc:
            for reason in exc.reasons:
                name = reason.split(":", 1)[0].split(".", 1)[0]
                where = case.columns.get(name, case.where)
                self.problem(where, reason)
            case.bad = True

    def cases(self) -> list[RegisterCase]:
        if self.mapping.layout == "case_per_row":
            return self._by_row()
        return self._by_events()

    def _number(self, row: int, values: tuple[Any, ...]) -> tuple[str | None, Where]:
        raw, where = self.cell(row, values, self.mapping.number)
        number = self.text(raw)
        if number is None:
            self.problem(where, "no register number: every case needs the register's own number")
        elif len(number) > 120 or any(c in number for c in "\n\r\t"):
            self.problem(where, f"register number {number[:40]!r} is not a short one-line code")
            number = None
        return number, where

    def _by_row(self) -> list[RegisterCase]:
        mapping = self.mapping
        assert mapping.received is not None
        out: list[RegisterCase] = []
        seen: dict[str, RegisterCase] = {}
        for row, values in self.table.rows:
            number, where = self._number(row, values)
            if number is None:
                continue
            case = RegisterCase(number, where)
            if number in seen:
                first = seen[number]
                self.problem(
                    where,
                    f"register number {number} is also on row {first.where.row}: one row per case "
                    "in this register (neither row is imported)",
                )
                first.bad = True
                continue
            seen[number] = case
            out.append(case)
            self.intake(case, row, values)
            raw, at = self.cell(row, values, mapping.received)
            received = self.day(raw, at) if raw is not None else None
            if raw is None:
                self.problem(at, "no date received: the day the request came in is required")
            if received is None:
                case.bad = True
                continue
            self.check_intake(case, received)
            case.entries.append(Entry("register", received, at))
            if not case.bad:
                self._walk(case, row, values, received)
        return out

    def _walk(self, case: RegisterCase, row: int, values: tuple[Any, ...], received: date) -> None:
        """The history of a one-row case as engine commands, walking its route as the engine
        would: forwarded on each dated step, the final outcome where the dates stop (and on the
        dated steps after it, such as a reply once executed)."""
        routing = self.routing
        fields = _routing_fields(case.intake)
        route = next((r for r in routing.config.routes if r.when.matches(fields)), None)
        if route is None:
            self.problem(
                case.columns.get("kind", case.where),
                f"no route of {routing.country} fits this request "
                f"({', '.join(f'{k}={v}' for k, v in fields.items())})",
            )
            case.bad = True
            return
        dated = self._history_dates(case, row, values)
        final = self._outcome(case, row, values)
        if case.bad:
            return
        used: set[int] = set()
        index = _first_index(route, fields)
        last = received
        applied = False
        for _ in range(MAX_HOPS):
            if index is None:
                break
            step = route.steps[index]
            allowed = {str(o): t for o, t in route.decisions_for(index).items()}
            n = self._history_entry(step.id, step.holder)
            mark = dated[n] if n is not None else None
            if mark is not None and mark.received is not None and mark.received < last:
                assert mark.received_where is not None
                self.problem(
                    mark.received_where,
                    f"received by {step.holder} on {mark.received:%d/%m/%Y}, before the hop "
                    f"before it passed it on ({last:%d/%m/%Y})",
                )
                case.bad = True
                return
            if mark is not None and mark.on is not None and "forwarded" in allowed:
                decision, on, where = "forwarded", mark.on, mark.where
            elif final is not None and final.outcome not in ("open", "withdrawn"):
                if applied and (mark is None or mark.on is None):
                    break
                decision = final.outcome
                on, where = (
                    (mark.on, mark.where)
                    if applied and mark and mark.on
                    else (
                        final.on,
                        final.where,
                    )
                )
                if decision not in allowed:
                    self.problem(
                        final.where,
                        f"{decision} cannot be recorded at step {step.id!r} ({step.holder}), "
                        "where the register's dates leave the case (allowed there: "
                        f"{', '.join(allowed)}): is a date of passing on missing?",
                    )
                    case.bad = True
                    return
                if final.by is not None and not applied and final.by != step.holder:
                    self.problem(
                        final.where,
                        f"the register says {final.by} decided, but its dates leave the case at "
                        f"{step.holder} (step {step.id!r})",
                    )
                    case.bad = True
                    return
                applied = True
            else:
                break
            if on < last:
                self.problem(
                    where,
                    f"{decision} on {on:%d/%m/%Y}, before the request reached {step.holder} on "
                    f"{last:%d/%m/%Y}: a decision cannot precede its receipt",
                )
                case.bad = True
                return
            if n is not None and mark is not None and mark.on is not None:
                used.add(n)
            case.entries.append(
                Entry(
                    "decide",
                    on,
                    where,
                    outcome=decision,
                    ground=final.ground if final and decision == "refused" else None,
                    authority=step.holder,
                )
            )
            last = on
            index = _target(route, index, allowed[decision], fields)
            if decision == "postponed":
                break
        if final is not None and final.outcome == "withdrawn" and index is not None:
            if final.on < last:
                self.problem(
                    final.where,
                    f"withdrawn on {final.on:%d/%m/%Y}, before the case's last event "
                    f"({last:%d/%m/%Y})",
                )
                case.bad = True
                return
            case.entries.append(Entry("withdraw", final.on, final.where))
            applied = True
        if final is not None and final.outcome != "open" and not applied:
            self.problem(
                final.where,
                f"{final.outcome}: the case's dates never bring it to a step where that can be "
                "decided",
            )
            case.bad = True
        for n, mark in enumerate(dated):
            if mark.on is not None and n not in used:
                entry = self.mapping.history[n]
                at = entry.step or entry.holder
                self.problem(
                    mark.where,
                    f"a date for {at}, but on route {route.id!r} the case never reaches {at} "
                    "after the dates before it (is an earlier date missing, or the case closed "
                    "before?)",
                )
                case.bad = True

    def _history_entry(self, step: str, holder: str) -> int | None:
        """The history column for a step: the step's own, else its holder's."""
        history = self.mapping.history
        found = next((n for n, e in enumerate(history) if e.step == step), None)
        if found is None:
            found = next((n for n, e in enumerate(history) if e.holder == holder), None)
        return found

    def _history_dates(self, case: RegisterCase, row: int, values: tuple[Any, ...]) -> list[_Dated]:
        out = []
        for entry in self.mapping.history:
            raw, where = self.cell(row, values, entry.passed_on)
            on = self.day(raw, where) if raw is not None else None
            case.bad |= raw is not None and on is None
            got: date | None = None
            got_where: Where | None = None
            if entry.received is not None:
                raw_in, got_where = self.cell(row, values, entry.received)
                got = self.day(raw_in, got_where) if raw_in is not None else None
                case.bad |= raw_in is not None and got is None
                if got is not None and on is not None and on < got:
                    self.problem(
                        where,
                        f"passed on {on:%d/%m/%Y}, before it was received on {got:%d/%m/%Y} "
                        f"({entry.received!r}): a decision cannot precede its receipt",
                    )
                    case.bad = True
            out.append(_Dated(on, where, got, got_where))
        return out

    def _outcome(self, case: RegisterCase, row: int, values: tuple[Any, ...]) -> _Final | None:
        """How the register says the case ended; None when it says nothing (or wrongly)."""
        spec = self.mapping.outcome
        if spec is None:
            return None
        raw, where = self.cell(row, values, spec.column)
        text = self.text(raw)
        if text is None:
            return None
        outcome = {label_key(k): v for k, v in spec.values.items()}.get(label_key(text))
        if outcome is None:
            known = ", ".join(repr(k) for k in spec.values)
            self.problem(where, f"unknown outcome {text!r} (the mapping knows: {known})")
            case.bad = True
            return None
        if outcome == "open":
            return _Final("open", date.min, where)
        raw_on, where_on = self.cell(row, values, spec.date)
        on = self.day(raw_on, where_on) if raw_on is not None else None
        if raw_on is None:
            self.problem(where_on, f"{outcome}: the day it happened is missing")
        if on is None:
            case.bad = True
            return None
        ground = by = None
        if spec.ground is not None:
            before = len(self.problems)
            ground = self.mapped(spec.ground, row, values, "ground")
            case.bad |= len(self.problems) > before
            if outcome == "refused" and ground is None and not case.bad:
                at = self.cell(row, values, spec.ground.column)[1] if spec.ground.column else where
                self.problem(at, "a refusal needs its ground")
                case.bad = True
        elif outcome == "refused":
            self.problem(where, "a refusal needs its ground: map `outcome.ground`")
            case.bad = True
        if spec.by is not None:
            before = len(self.problems)
            by = self.mapped(spec.by, row, values, "authority")
            case.bad |= len(self.problems) > before
        return _Final(outcome, on, where_on, ground, by)

    def _by_events(self) -> list[RegisterCase]:
        mapping = self.mapping
        events = mapping.events
        assert events is not None
        cases: dict[str, RegisterCase] = {}
        lasts: dict[str, tuple[date, int]] = {}
        for row, values in self.table.rows:
            number, where = self._number(row, values)
            if number is None:
                continue
            case = cases.get(number)
            if case is None:
                case = cases[number] = RegisterCase(number, where)
                self.intake(case, row, values)
                if mapping.received is not None:
                    raw, at = self.cell(row, values, mapping.received)
                    received = self.day(raw, at) if raw is not None else None
                    if raw is None:
                        self.problem(at, "no date received: the day the request came in")
                    if received is None:
                        case.bad = True
                    else:
                        case.entries.append(Entry("register", received, at))
            raw, at = self.cell(row, values, events.date)
            on = self.day(raw, at) if raw is not None else None
            if raw is None:
                self.problem(at, "no date: every event needs the day it happened")
            before = len(self.problems)
            kind = self.mapped(events.kind, row, values, "event")
            if kind is None and len(self.problems) == before:
                self.problem(
                    self.cell(row, values, events.kind.column)[1]
                    if events.kind.column
                    else Where(row),
                    "no event: say what happened",
                )
            fields = {}
            # A ground is read on refusals, a cause on returns: one column often holds both.
            wanted = {"authority": True, "note": True, "ground": kind == "refused"}
            wanted["cause"] = kind == "returned"
            for name, read in wanted.items():
                source = getattr(events, name)
                fields[name] = self.mapped(source, row, values, name) if source and read else None
            if on is None or kind is None or len(self.problems) > before:
                case.bad = True
                continue
            previous = lasts.get(number)
            if previous is not None and on < previous[0]:
                self.problem(
                    at,
                    f"{kind} on {on:%d/%m/%Y}, before the case's previous event on "
                    f"{previous[0]:%d/%m/%Y} (row {previous[1]}): the history must run forwards "
                    "(a decision cannot precede its receipt)",
                )
                case.bad = True
                continue
            lasts[number] = (on, row)
            entry = self._event(case, kind, on, at, fields, row, values)
            if entry is not None:
                case.entries.append(entry)
        out = list(cases.values())
        for case in out:
            first = case.entries[0] if case.entries else None
            if first is None or first.kind != "register":
                if not case.bad:
                    self.problem(
                        case.where,
                        f"case {case.number}: its first event must be its receipt "
                        "(an event mapped to `received`), or map the `received` column",
                    )
                case.bad = True
                continue
            self.check_intake(case, first.on)
        return out

    def _event(
        self,
        case: RegisterCase,
        kind: str,
        on: date,
        at: Where,
        fields: dict[str, Any],
        row: int,
        values: tuple[Any, ...],
    ) -> Entry | None:
        events = self.mapping.events
        assert events is not None
        authority, ground, cause, note = (
            fields[k] for k in ("authority", "ground", "cause", "note")
        )
        if kind == "received":
            if not case.entries:
                return Entry("register", on, at, authority=authority)
            return Entry("received", on, at, authority=authority)
        if not case.entries:
            self.problem(
                at,
                f"{kind} on {on:%d/%m/%Y} is case {case.number}'s first event: a case starts "
                "with its receipt (an event mapped to `received`, or the `received` column)",
            )
            case.bad = True
            return None
        for needs, given, spec, missing in (
            ("refused", ground, events.ground, "a refusal needs its ground"),
            ("returned", cause, events.cause, "a return needs its cause (e.g. incomplete_request)"),
        ):
            if kind == needs and given is None:
                where = self.cell(row, values, spec.column)[1] if spec and spec.column else at
                self.problem(where, missing)
                case.bad = True
                return None
        if kind == "resubmitted":
            return Entry("resubmit", on, at, note=note)
        if kind == "withdrawn":
            return Entry("withdraw", on, at, note=note)
        return Entry(
            "decide",
            on,
            at,
            outcome=kind,
            ground=ground if kind == "refused" else None,
            cause=cause if kind == "returned" else None,
            note=note,
            authority=authority,
        )


def _routing_fields(intake: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": intake.get("kind"),
        "direction": intake.get("direction"),
        "legal_basis": intake.get("legal_basis"),
        "coercive": bool(intake.get("coercive", False)),
        "urgent": bool(intake.get("urgent", False)),
        "counterpart": intake.get("counterpart"),
    }


def _applies(route: Route, index: int, fields: dict[str, Any]) -> bool:
    when = route.steps[index].when
    return when is None or when.matches(fields)


def _first_index(route: Route, fields: dict[str, Any]) -> int | None:
    return next((i for i in range(len(route.steps)) if _applies(route, i, fields)), None)


def _target(route: Route, index: int, target: str, fields: dict[str, Any]) -> int | None:
    """The step a decision leads to, as the engine resolves it; None: the case leaves the
    chain (closed, or back with the requester)."""
    if target in ("end", "requester"):
        return None
    if target == "stay":
        return index
    if target == "next":
        return next(
            (j for j in range(index + 1, len(route.steps)) if _applies(route, j, fields)), None
        )
    return route.step_index(target)

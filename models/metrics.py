"""Audit metrics: where delays build up, per authority, hop, route and month, from the ledger.

`load_audit` reads the columns it needs with a few Core queries (no ORM object per row, rows
fetched in chunks and turned into NumPy arrays) and times every hop on its holder's business
calendar with the `queries.hop_view` semantics. Every other function is pure over those arrays
and returns plain rows (lists of dicts) ready for JSON, CSV and HTML.

Medians and percentiles interpolate linearly between the two nearest ranks (NumPy's default).
"""

from __future__ import annotations

import itertools
import os
import pickle
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    case,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from models.calendar import Calendar
from models.domain import (
    DelayCause,
    Direction,
    Kind,
    LegalBasis,
    OffenceCategory,
    Outcome,
    RefusalGround,
)
from models.errors import RogatoryError
from models.ledger import Event, Request, RoutingVersion, Step
from models.loader import Routing

T = TypeVar("T")
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Row = dict[str, Any]

NO_TS = -1
"""Stands for a missing instant (NULL) in epoch-second columns; no ledger instant is that old."""
NO_DAY = -1_000_000
"""Stands for a missing date in day-number columns."""
QUANTILES = (0.25, 0.5, 0.75, 0.9)
COMMAND_KINDS = (
    "registered",
    "decided",
    "clock_stopped",
    "clock_resumed",
    "reassigned",
    "resubmitted",
    "withdrawn",
)
"""Events a clerk enters; `hop_opened` and `case_closed` follow from them and are not counted
again, and `prescription_event` is dated by day on purpose."""
CLOSING_KINDS = ("decided", "reassigned", "withdrawn")
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
PROHIBITED_GROUNDS = tuple(g.value for g in RefusalGround if g.prohibited_by_uncac)
DIRECTIONS = tuple(d.value for d in Direction)
KINDS = tuple(k.value for k in Kind)
BASES = tuple(b.value for b in LegalBasis)
OFFENCES = tuple(o.value for o in OffenceCategory)
MIN_TO_RANK = 20
"""Observations a row needs before its rate is ranked: a rate over a handful of hops is noise,
and ranking it would put a small authority at the top or bottom by chance."""
FOREIGN = "foreign"
"""The authority kind of the requested or requesting state in a routing file: a hop it holds is
outside national control."""


# -- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Which cases a report covers. Empty tuples match everything.

    `since` and `until` select the cases registered on those UTC days (both included).
    """

    countries: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    directions: tuple[str, ...] = ()
    counterparts: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    confidential: bool = True
    """Whether confidential cases are in (False: for a reader who may not see them one by one)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "countries": list(self.countries),
            "routes": list(self.routes),
            "kinds": list(self.kinds),
            "directions": list(self.directions),
            "counterparts": list(self.counterparts),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }

    def describe(self) -> str:
        parts = [
            ", ".join(self.directions),
            ", ".join(k.replace("_", " ") for k in self.kinds),
            ", ".join(self.countries),
            ", ".join(self.routes),
        ]
        if self.counterparts:
            parts.append("with " + ", ".join(self.counterparts))
        if self.since or self.until:
            parts.append(f"registered {self.since or 'from the start'} to {self.until or 'today'}")
        text = " ".join(p for p in parts if p)
        return text or "all cases"


def case_conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """The WHERE clauses on `requests` that select the cases of `filters`."""
    conditions: list[ColumnElement[bool]] = []
    for column, values in (
        (Request.country, filters.countries),
        (Request.route_id, filters.routes),
        (Request.kind, filters.kinds),
        (Request.direction, filters.directions),
        (Request.counterpart, filters.counterparts),
    ):
        if values:
            conditions.append(column.in_(values))
    if not filters.confidential:
        conditions.append(~Request.confidential)
    if filters.since is not None:
        conditions.append(Request.registered_at >= datetime.combine(filters.since, time(), UTC))
    if filters.until is not None:
        end = datetime.combine(filters.until + timedelta(days=1), time(), UTC)
        conditions.append(Request.registered_at < end)
    return conditions


# -- coded columns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coded:
    """A text column as integer codes into a small table of labels."""

    codes: I64
    labels: tuple[str, ...]

    def label(self, i: int) -> str:
        return self.labels[int(self.codes[i])]

    def code(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            return -1

    def equals(self, label: str) -> Bools:
        found: Bools = self.codes == self.code(label)
        return found

    def isin(self, labels: Iterable[str]) -> Bools:
        wanted = [self.code(x) for x in labels]
        found: Bools = np.isin(self.codes, [c for c in wanted if c >= 0])
        return found


class _Coder:
    """Turns text values into codes, keeping one table of labels across chunks."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.parts: list[I64] = []

    def add(self, values: Sequence[Any]) -> None:
        index = self.index
        for value in sorted(set(values) - index.keys()):  # sorted: the same codes every run
            index[value] = len(index)
        self.parts.append(
            np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=len(values))
        )

    def done(self) -> Coded:
        codes = np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.int64)
        return Coded(codes, tuple(self.index))


def split_coded(column: Coded, names: Sequence[str], sep: str = "|") -> dict[str, Coded]:
    """A column of `a|b|c` labels split into one coded column per part."""
    pieces = [label.split(sep) for label in column.labels]
    out: dict[str, Coded] = {}
    for n, name in enumerate(names):
        labels: dict[str, int] = {}
        mapping = np.array(
            [labels.setdefault(p[n], len(labels)) for p in pieces] or [0], dtype=np.int64
        )
        out[name] = Coded(
            mapping[column.codes] if column.codes.size else column.codes, tuple(labels)
        )
    return out


# -- the loaded ledger --------------------------------------------------------------------------


@dataclass
class Cases:
    """One entry per case (request), ordered by id."""

    id: I64
    reference: list[str]
    country: Coded
    route: Coded
    version: Coded
    direction: Coded
    kind: Coded
    legal_basis: Coded
    offence: Coded
    counterpart: Coded
    coercive: Bools
    urgent: Bools
    status: Coded
    outcome: Coded
    registered_at: I64
    closed_at: I64
    prescription_day: I64
    """Days since 1970-01-01 of the prescription date; NO_DAY when none is configured."""
    prescription_running: Bools
    """A suspension is still running: the date is the earliest it can be, and may move later."""
    registered_day: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Local registration day (days since 1970-01-01) in the country's calendar."""

    def __len__(self) -> int:
        return int(self.id.size)


@dataclass
class Hops:
    """One entry per hop (a row of `steps`), ordered by case, then hop."""

    case: I64
    """Index into `Cases`."""
    hop: I64
    step_index: I64
    holder: Coded
    step: Coded
    opened_at: I64
    due_at: I64
    closed_at: I64
    stopped_bd: I64
    stopped_since: I64
    outcome: Coded
    ground: Coded
    cause: Coded
    to_requester: Bools
    """The decision sent the request back to the requester."""
    authority: Coded = field(default_factory=lambda: Coded(np.zeros(0, np.int64), ()))
    """`country|holder`: holder ids are only unique within a country."""
    # Times, on the holder's calendar, filled by `time_hops`:
    business_days: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    calendar_days: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    elapsed_s: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    late_bd: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    """Signed business days from due to closing (or now): > 0 late, <= 0 on time."""
    days_late: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    stopped_bd_total: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    end_day: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    """Local day (days since 1970-01-01) of the closing, or of now for an open hop."""

    def __len__(self) -> int:
        return int(self.case.size)

    @property
    def closed(self) -> Bools:
        found: Bools = self.closed_at != NO_TS
        return found

    @property
    def breached(self) -> Bools:
        found: Bools = self.closed & (self.closed_at > self.due_at)
        return found


@dataclass
class Stops:
    """One entry per clock stop."""

    hop: I64
    calendar_days: I64
    running: Bools


@dataclass
class LateEntries:
    """Commands recorded long after they happened (recorded_at - occurred_at over a limit)."""

    hop: I64
    """Index into `Hops`, -1 when the entry concerns no hop."""
    kind: Coded
    lag_s: I64


@dataclass
class AuditData:
    filters: Filters
    now: datetime
    cases: Cases
    hops: Hops
    stops: Stops
    late: LateEntries
    late_after_s: int
    routings: dict[str, Routing]
    """The pinned routing of every version the cases run on."""
    calendars: list[tuple[Calendar, I64]] | None = None
    """The hops grouped by the calendar they are timed on (see `hop_calendars`)."""
    gaps: tuple[I64, I64, I64, I64] | None = None
    """Computed once by `handoff_gaps`."""
    step_groups: tuple[I64, I64] | None = None
    """Computed once by `_step_groups`."""
    prescription_rows: list[Any] | None = None
    """The columns of `prescription_select`, read with the rest (see `models.risk`)."""
    left_out: list[dict[str, Any]] = field(default_factory=list)
    """Cases of `filters` whose pinned routing cannot be read: left out, each with why."""

    def routing_of_case(self, i: int) -> Routing:
        return self.routings[self.cases.version.label(i)]

    def sla_of(self, hop: int) -> str:
        """The SLA of a hop's step in its case's pinned route ('' if the route lost it)."""
        case_ = int(self.hops.case[hop])
        route_id, step_id = self.cases.route.label(case_), self.hops.step.label(hop)
        routing = self.routing_of_case(case_)
        for route in routing.config.routes:
            if route.id == route_id:
                for n, step in enumerate(route.steps):
                    if step.id == step_id:
                        return str(routing.sla(route, n))
        return ""

    def authority_parts(self, code: int) -> tuple[str, str]:
        country, holder = self.hops.authority.labels[code].split("|")
        return country, holder

    def authority_name(self, country: str, holder: str) -> str:
        for routing in self.routings.values():
            if routing.country == country and holder in routing.config.authorities:
                return routing.config.authorities[holder].name
        return holder

    def outside_national_control(self, country: str, holder: str) -> bool:
        """Whether the holder is the foreign state (kind `foreign`), not a national authority."""
        for routing in self.routings.values():
            if routing.country == country and holder in routing.config.authorities:
                return routing.config.authorities[holder].kind == FOREIGN
        return False

    def authority_row(self, code: int) -> Row:
        country, holder = self.authority_parts(code)
        return {
            "country": country,
            "authority": holder,
            "authority_name": self.authority_name(country, holder),
            "outside_national_control": self.outside_national_control(country, holder),
        }


# -- reading the ledger ---------------------------------------------------------------------------

HOP_RADIX = 1 << 20
"""`request_id * HOP_RADIX + hop` identifies a hop in one integer column."""
STATUSES = ("open", "with_requester", "closed")
OUTCOMES = ("", *(o.value for o in Outcome), "reassigned", "withdrawn")
GROUNDS = ("", *(g.value for g in RefusalGround))
CAUSES = ("", *(c.value for c in DelayCause))


def epoch_seconds(dialect: str, column: Any) -> ColumnElement[int]:
    """Whole UTC epoch seconds (floored); NO_TS for NULL. Floors never cross a local midnight."""
    if dialect == "postgresql":
        expr: ColumnElement[int] = cast(func.floor(extract("epoch", column)), BigInteger)
    elif sqlite3.sqlite_version_info >= (3, 38):
        expr = func.unixepoch(column)  # twice as fast as strftime('%s')
    else:
        expr = cast(func.strftime("%s", column), BigInteger)
    return func.coalesce(expr, NO_TS)


def _day_number(dialect: str, column: Any) -> ColumnElement[int]:
    """Days since 1970-01-01 of a DATE column; NO_DAY for NULL."""
    if dialect == "postgresql":
        expr: ColumnElement[int] = cast(column - cast(literal("1970-01-01"), column.type), Integer)
    else:
        expr = cast(func.julianday(column) - 2440587.5, Integer)
    return func.coalesce(expr, NO_DAY)


def json_member(dialect: str, column: Any, key: str) -> ColumnElement[str]:
    """One top-level member of a JSON text column: scalars as text, objects as JSON text."""
    if dialect == "postgresql":
        return func.json_extract_path_text(cast(column, postgresql.JSON), key)
    return func.json_extract(column, f"$.{key}")


def _json_int(dialect: str, column: Any, key: str) -> ColumnElement[int]:
    return func.coalesce(cast(json_member(dialect, column, key), Integer), -1)


def _code_of(column: Any, labels: Sequence[str]) -> ColumnElement[int]:
    """The index of the column's value in `labels` (NULL reads as ''); len(labels) if unknown."""
    return case(
        {label: n for n, label in enumerate(labels)},
        value=func.coalesce(column, ""),
        else_=len(labels),
    )


class _Packed:
    """Small codes packed into one integer column: the SQL that packs, the NumPy that unpacks.

    Every value fetched costs a Python object, so a million hops are read as a few integers
    each rather than as text.
    """

    def __init__(self, parts: Sequence[tuple[str, Any, int]]) -> None:
        self.parts = list(parts)
        self.expression: ColumnElement[int] = literal(0, BigInteger)
        radix = 1
        for _, expr, size in self.parts:
            self.expression = self.expression + cast(expr, BigInteger) * literal(radix, BigInteger)
            radix *= size
        if radix >= 1 << 62:
            raise ValueError("packed codes do not fit in 62 bits")

    def unpack(self, packed: I64) -> dict[str, I64]:
        out = {}
        rest = packed
        for name, _, size in self.parts:
            rest, out[name] = np.divmod(rest, size)
        return out


def _coded(codes: I64, labels: Sequence[str], what: str) -> Coded:
    """A column decoded by `_code_of`; a value outside `labels` means the ledger is inconsistent."""
    if codes.size and int(codes.max()) >= len(labels):
        raise RogatoryError(
            f"the ledger holds a {what} this version of rogatory does not know: "
            "upgrade rogatory or check the ledger with `rogatory audit verify`"
        )
    return Coded(codes, tuple(labels))


def _collect(cursor: Any, *, chunk: int = 100_000) -> list[Any]:
    """The columns of a driver cursor's rows: int64 arrays for numbers, lists for text.

    Rows are fetched in chunks and turned into arrays as they come, so no more than one chunk
    of Python tuples lives at a time.
    """
    width = len(cursor.description)
    parts: list[list[Any]] = [[] for _ in range(width)]
    while True:
        rows = cursor.fetchmany(chunk)
        if not rows:
            break
        if all(isinstance(v, int) for v in rows[0]):
            # All numbers: one pass over every value, then a view per column.
            flat = np.fromiter(
                itertools.chain.from_iterable(rows), dtype=np.int64, count=len(rows) * width
            ).reshape(len(rows), width)
            for n in range(width):
                parts[n].append(flat[:, n].copy())
            continue
        for n, values in enumerate(zip(*rows, strict=True)):
            first = values[0]
            if isinstance(first, str) or first is None:
                parts[n].extend(values)
            else:
                parts[n].append(np.array(values, dtype=np.int64))
    out: list[Any] = []
    for column in parts:
        if column and isinstance(column[0], np.ndarray):
            out.append(np.concatenate(column))
        elif not column:
            out.append(np.zeros(0, dtype=np.int64))
        else:
            out.append(column)
    return out


def read_columns(conn: Connection, stmt: Select[*tuple[Any, ...]]) -> list[Any]:
    """Run `stmt` in `conn`'s transaction and collect its columns from a cursor of the driver's
    own: every column is a plain integer or text, so SQLAlchemy's result processing (and any
    row buffering its execution options ask for) is skipped."""
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        return _collect(cursor)
    finally:
        cursor.close()


class _Reader:
    """Runs the report's queries on the session's connection and, on a SQLite file, part of them
    at the same time in a forked process with its own connection.

    Fetching rows costs a Python object per value, so one process tops out at about a million
    rows a second whatever SQLite can do; a second process on the second core reads the rest.
    The child sees what the session sees: the ledger's sessions begin with BEGIN IMMEDIATE, so
    no writer can commit while the session's transaction is open (uncommitted writes of the
    session itself are not seen: a report only reads). Where forking is not safe (another
    thread is running) or not possible, everything runs on the session's connection.
    """

    def __init__(self, session: Session) -> None:
        self.conn = session.connection()
        self.dialect = self.conn.dialect.name
        bind = session.get_bind()
        self.path: str | None = None
        if (
            self.dialect == "sqlite"
            and isinstance(bind, Engine)
            and bind.url.database not in (None, "", ":memory:")
            and fork_is_safe()
        ):
            self.path = bind.url.database
            self.sqlite_dialect = bind.dialect

    def read(self, stmt: Select[*tuple[Any, ...]]) -> list[Any]:
        return read_columns(self.conn, stmt)

    def elsewhere(self, stmts: Sequence[Select[*tuple[Any, ...]]]) -> Callable[[], list[list[Any]]]:
        """Start `stmts` in a child process; the returned function waits for their columns.

        Without a child, they run when their columns are asked for.
        """
        if self.path is None:
            return lambda: [self.read(stmt) for stmt in stmts]
        path = self.path
        sqls = [
            str(s.compile(dialect=self.sqlite_dialect, compile_kwargs={"literal_binds": True}))
            for s in stmts
        ]

        def work() -> list[list[Any]]:  # a connection of its own, never the session's
            conn = sqlite3.connect(path, timeout=30)
            try:
                return [_collect(conn.execute(sql)) for sql in sqls]
            finally:
                conn.close()

        return beside(work)


def fork_is_safe() -> bool:
    """Forking copies only the calling thread: safe while it is the only one."""
    return hasattr(os, "fork") and threading.active_count() == 1


def beside(work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` in a forked child process, which sees this process's memory as it is now,
    and return a function that waits for its (pickled) result.

    Where forking is not safe, or the child fails, `work` runs here when its result is asked
    for. The child must not use this process's database connections: it leaves with
    `os._exit`, so it never closes them either.
    """
    if not fork_is_safe():
        return work
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(readable)
        try:
            found: Any = ("ok", work())
        except BaseException as exc:  # reported to the parent, which does the work itself
            found = ("error", f"{type(exc).__name__}: {exc}")
        try:
            with os.fdopen(writable, "wb") as pipe:
                pipe.write(pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL))
        finally:
            os._exit(0)
    os.close(writable)

    def wait() -> T:
        with os.fdopen(readable, "rb") as pipe:
            payload = pipe.read()
        os.waitpid(pid, 0)
        answer: tuple[str, Any] = pickle.loads(payload) if payload else ("error", "no answer")
        if answer[0] != "ok":
            return work()
        result: T = answer[1]
        return result

    return wait


def _text(values: Any) -> list[str]:
    return [] if isinstance(values, np.ndarray) else list(values)


def _ints(values: Any) -> I64:
    return values if isinstance(values, np.ndarray) else np.array(values, dtype=np.int64)


def load_audit(
    *,
    session: Session,
    routings: Any,
    filters: Filters,
    now: datetime,
    late_after: timedelta = timedelta(hours=24),
) -> AuditData:
    """Read the cases of `filters` with their hops, clock stops and late entries, and time them.

    `routings` is a `models.engine.Routings`: each case is timed on the routing it pinned.
    """
    reader = _Reader(session)
    return _load(reader, session, routings, filters, now, int(late_after.total_seconds()))


def _load(
    reader: _Reader,
    session: Session,
    routings: Any,
    filters: Filters,
    now: datetime,
    late_after_s: int,
) -> AuditData:
    conn, dialect = reader.conn, reader.dialect
    # As of `now`: a case registered later did not exist yet (a report as of a past day must
    # not count it, nor its hops that open in its future).
    where = [*case_conditions(filters), Request.registered_at <= now]
    versions = conn.execute(select(RoutingVersion.version)).scalars().all()
    pinned: dict[str, Routing] = {}
    unreadable: dict[str, str] = {}
    for version in versions:
        try:
            pinned[version] = routings.pinned(session, version)
        except Exception as exc:  # one unreadable version must not stop the report
            unreadable[version] = f"{type(exc).__name__}: {exc}"
    left_out = []
    if unreadable:
        left_out = [
            {**row._asdict(), "problem": unreadable[row.routing_version]}
            for row in conn.execute(
                select(Request.id, Request.reference, Request.country, Request.routing_version)
                .where(*where, Request.routing_version.in_(list(unreadable)))
                .order_by(Request.reference)
            )
        ]
        where = [*where, Request.routing_version.not_in(list(unreadable))]
    in_scope = _in_scope(where)
    # The child reads the cases and the scans that return few rows; this process reads the hops
    # and their details and builds the business calendars meanwhile: about the same work on
    # each of two cores (measured on 200,000 cases: 1.8 s each; the details in the child left
    # this process waiting 0.5 s).
    cases_stmt, flags = _cases_select(dialect, where)
    child = reader.elsewhere(
        [
            cases_stmt,
            _late_select(dialect, in_scope, late_after_s),
            prescription_select(dialect, filters),
        ]
    )
    for routing in pinned.values():
        for authority in [None, *routing.config.authorities]:
            routing.calendar(authority)
    steps = reader.read(_steps_select(dialect, where))
    details = reader.read(_details_select(dialect, where))
    case_rows, late, prescriptions = child()
    cases = _cases_from(case_rows, flags, pinned)
    hops = _hops_from(steps, details, conn, cases, pinned)
    data = AuditData(
        filters=filters,
        now=now,
        cases=cases,
        hops=hops,
        stops=Stops(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)),
        late=LateEntries(
            np.zeros(0, np.int64), Coded(np.zeros(0, np.int64), ()), np.zeros(0, np.int64)
        ),
        late_after_s=late_after_s,
        routings=pinned,
        left_out=left_out,
    )
    time_hops(data=data)
    stop_rows = reader.read(
        select(
            Event.request_id,
            _json_int(dialect, Event.payload, "hop"),
            case((Event.kind == "clock_stopped", 1), else_=0),
            epoch_seconds(dialect, Event.occurred_at),
        )
        .where(Event.kind.in_(("clock_stopped", "clock_resumed")), *in_scope)
        .order_by(Event.request_id, Event.seq),
    )
    data.stops = pair_stops(
        hops=hops,
        hop_index=_hop_index(hops, cases, _ints(stop_rows[0]), _ints(stop_rows[1])),
        stopped=_ints(stop_rows[2]) == 1,
        at=_ints(stop_rows[3]),
        now_s=int(now.timestamp()),
        calendars=hop_calendars(data),
    )
    data.late = _late_from(late, data)
    data.prescription_rows = prescriptions
    return data


def _in_scope(where: list[ColumnElement[bool]]) -> list[ColumnElement[bool]]:
    """Conditions on a table with `request_id` that keep the cases `where` selects."""
    if not where:
        return []
    return [Event.request_id.in_(select(Request.id).where(*where))]


def prescription_select(dialect: str, filters: Filters) -> Select[*tuple[Any, ...]]:
    """The prescription parts of the `registered` and `prescription_event` events of the open
    cases (never the intake, which names persons), in order."""
    return (
        select(
            Event.request_id,
            Event.kind,
            epoch_seconds(dialect, Event.occurred_at),
            json_member(dialect, Event.payload, "prescription"),
            json_member(dialect, Event.payload, "on"),
            json_member(dialect, Event.payload, "event"),
            json_member(dialect, Event.payload, "after"),
        )
        .where(
            # Driven by the open cases through the (request_id, seq) index, not by `kind`.
            func.coalesce(Event.kind, "").in_(("registered", "prescription_event")),
            Event.request_id.in_(
                select(Request.id).where(Request.status != "closed", *case_conditions(filters))
            ),
        )
        .order_by(Event.request_id, Event.seq)
    )


def _late_select(
    dialect: str, in_scope: list[ColumnElement[bool]], late_after_s: int
) -> Select[*tuple[Any, ...]]:
    lag = epoch_seconds(dialect, Event.recorded_at) - epoch_seconds(dialect, Event.occurred_at)
    # A register brought in by `rogatory import` is recorded years after it happened by design:
    # its events say nothing about how late an authority enters its decisions.
    late = [lag > late_after_s, json_member(dialect, Event.payload, "import").is_(None)]
    if dialect == "sqlite" and late_after_s >= 60:
        # Parsing two instants per event is the cost of this scan: entries recorded within the
        # minute they happened (nearly all) are passed over on their text alone.
        minute = func.substr(Event.recorded_at, 1, 16) != func.substr(Event.occurred_at, 1, 16)
        late.insert(0, minute)
    # Most events are commands: reading the table in order beats a million index look-ups, so
    # `kind` is wrapped to keep the planner off its index.
    return select(
        Event.request_id,
        _code_of(Event.kind, COMMAND_KINDS),
        _json_int(dialect, Event.payload, "hop"),
        _json_int(dialect, Event.payload, "after_hop"),
        lag,
    ).where(func.coalesce(Event.kind, "").in_(COMMAND_KINDS), *late, *in_scope)


def _late_from(rows: list[Any], data: AuditData) -> LateEntries:
    kind = Coded(_ints(rows[1]), COMMAND_KINDS)
    hop_no = _ints(rows[2]).copy()
    hop_no[kind.equals("registered")] = 1
    resubmitted = kind.equals("resubmitted")
    hop_no[resubmitted] = _ints(rows[3])[resubmitted] + 1
    hop = _hop_index(data.hops, data.cases, _ints(rows[0]), hop_no)
    return LateEntries(hop, kind, _ints(rows[4]))


def _cases_select(
    dialect: str, where: list[ColumnElement[bool]]
) -> tuple[Select[*tuple[Any, ...]], _Packed]:
    flags = _Packed(
        [
            ("direction", _code_of(Request.direction, DIRECTIONS), len(DIRECTIONS) + 1),
            ("kind", _code_of(Request.kind, KINDS), len(KINDS) + 1),
            ("basis", _code_of(Request.legal_basis, BASES), len(BASES) + 1),
            ("offence", _code_of(Request.offence_category, OFFENCES), len(OFFENCES) + 1),
            ("status", _code_of(Request.status, STATUSES), len(STATUSES) + 1),
            ("outcome", _code_of(Request.outcome, OUTCOMES), len(OUTCOMES) + 1),
            ("coercive", case((Request.coercive, 1), else_=0), 2),
            ("urgent", case((Request.urgent, 1), else_=0), 2),
            ("running", case((Request.prescription_running, 1), else_=0), 2),
        ]
    )
    stmt = (
        select(
            Request.id,
            Request.reference,
            Request.routing_version + "|" + Request.route_id + "|" + Request.counterpart,
            flags.expression,
            epoch_seconds(dialect, Request.registered_at),
            epoch_seconds(dialect, Request.closed_at),
            _day_number(dialect, Request.prescription_date),
        )
        .where(*where)
        .order_by(Request.id)
    )
    return stmt, flags


def _cases_from(rows: list[Any], flags: _Packed, pinned: dict[str, Routing]) -> Cases:
    coder = _Coder()
    coder.add(_text(rows[2]))
    d = split_coded(coder.done(), ["version", "route", "counterpart"])
    f = flags.unpack(_ints(rows[3]))
    version = d["version"]
    countries = [pinned[v].country if v in pinned else "" for v in version.labels]
    country_labels = tuple(dict.fromkeys(countries))
    by_version = np.array([country_labels.index(c) for c in countries] or [0], dtype=np.int64)
    return Cases(
        id=_ints(rows[0]),
        reference=_text(rows[1]),
        country=Coded(
            by_version[version.codes] if version.codes.size else version.codes, country_labels
        ),
        route=d["route"],
        version=version,
        direction=_coded(f["direction"], DIRECTIONS, "direction"),
        kind=_coded(f["kind"], KINDS, "kind of request"),
        legal_basis=_coded(f["basis"], BASES, "legal basis"),
        offence=_coded(f["offence"], OFFENCES, "offence category"),
        counterpart=d["counterpart"],
        coercive=f["coercive"] == 1,
        urgent=f["urgent"] == 1,
        status=_coded(f["status"], STATUSES, "case status"),
        outcome=_coded(f["outcome"], OUTCOMES, "case outcome"),
        registered_at=_ints(rows[4]),
        closed_at=_ints(rows[5]),
        prescription_day=_ints(rows[6]),
        prescription_running=f["running"] == 1,
    )


STEP_CODE_RADIX = 16
"""`step_index * STEP_CODE_RADIX + outcome code` in one column (OUTCOMES has fewer than 16)."""


def _scope(where: list[ColumnElement[bool]]) -> list[ColumnElement[bool]]:
    return [Step.request_id.in_(select(Request.id).where(*where))] if where else []


def _steps_select(dialect: str, where: list[ColumnElement[bool]]) -> Select[*tuple[Any, ...]]:
    """One row of five integers per hop: the hot loop of the report."""
    outcome = _code_of(Step.outcome, OUTCOMES)
    # No ORDER BY: SQLite would sort a million rows in a temporary tree; `_hops_from` sorts
    # (rows usually arrive in order already).
    return select(
        cast(Step.request_id, BigInteger) * literal(HOP_RADIX, BigInteger) + Step.hop,
        epoch_seconds(dialect, Step.opened_at),
        epoch_seconds(dialect, Step.due_at),
        epoch_seconds(dialect, Step.closed_at),
        Step.step_index * STEP_CODE_RADIX + outcome,
    ).where(*_scope(where))


def _details_select(dialect: str, where: list[ColumnElement[bool]]) -> Select[*tuple[Any, ...]]:
    """The few hops that carry more: a refusal ground, a delay cause, a return to the requester
    or a stopped clock. Filtered inside the database, so it runs beside the main read."""
    return select(
        cast(Step.request_id, BigInteger) * literal(HOP_RADIX, BigInteger) + Step.hop,
        _code_of(Step.ground, GROUNDS),
        _code_of(Step.cause, CAUSES),
        case((Step.target == "requester", 1), else_=0),
        Step.stopped_bd,
        epoch_seconds(dialect, Step.stopped_since),
    ).where(
        or_(
            Step.ground.is_not(None),
            Step.cause.is_not(None),
            Step.target == "requester",
            Step.stopped_bd > 0,
            Step.stopped_since.is_not(None),
        ),
        *_scope(where),
    )


def _hops_from(
    rows: list[Any],
    details: list[Any],
    conn: Connection,
    cases: Cases,
    pinned: dict[str, Routing],
) -> Hops:
    key = _ints(rows[0])
    order = np.argsort(key, kind="stable")
    key = key[order]
    request_id: I64 = key // HOP_RADIX
    hop: I64 = key % HOP_RADIX
    case_of = np.searchsorted(cases.id, request_id).astype(np.int64)
    code = _ints(rows[4])[order]
    n = key.size
    ground = np.zeros(n, dtype=np.int64)
    cause = np.zeros(n, dtype=np.int64)
    requester = np.zeros(n, dtype=bool)
    stopped_bd = np.zeros(n, dtype=np.int64)
    stopped_since = np.full(n, NO_TS, dtype=np.int64)
    wanted = _ints(details[0])
    at = np.minimum(np.searchsorted(key, wanted), max(n - 1, 0))
    found = (key[at] == wanted) if n else np.zeros(0, bool)
    at = at[found]
    ground[at] = _ints(details[1])[found]
    cause[at] = _ints(details[2])[found]
    requester[at] = _ints(details[3])[found] == 1
    stopped_bd[at] = _ints(details[4])[found]
    stopped_since[at] = _ints(details[5])[found]
    hops = Hops(
        case=case_of,
        hop=hop,
        step_index=code // STEP_CODE_RADIX,
        holder=Coded(np.zeros(0, np.int64), ()),
        step=Coded(np.zeros(0, np.int64), ()),
        opened_at=_ints(rows[1])[order],
        due_at=_ints(rows[2])[order],
        closed_at=_ints(rows[3])[order],
        stopped_bd=stopped_bd,
        stopped_since=stopped_since,
        outcome=_coded(code % STEP_CODE_RADIX, OUTCOMES, "decision"),
        ground=_coded(ground, GROUNDS, "refusal ground"),
        cause=_coded(cause, CAUSES, "delay cause"),
        to_requester=requester,
    )
    _name_hops(conn, hops, cases, pinned)
    country = cases.country.codes[case_of] if case_of.size else np.zeros(0, np.int64)
    pair, first = combine(country, hops.holder.codes)
    labels = tuple(
        f"{cases.country.labels[country[i]]}|{hops.holder.labels[hops.holder.codes[i]]}"
        for i in first
    )
    hops.authority = Coded(pair, labels)
    return hops


def _name_hops(conn: Connection, hops: Hops, cases: Cases, pinned: dict[str, Routing]) -> None:
    """Each hop's holder and step id.

    A hop is opened at the holder and step its route names at `step_index`, unless it was
    reassigned to another authority or its case migrated to another routing version: the hops
    of those few cases are read from the ledger, the rest are named from the pinned routes.
    """
    holders: dict[str, int] = {}
    steps: dict[str, int] = {}
    group, first = combine(cases.version.codes, cases.route.codes)
    width = 1
    tables: list[list[tuple[int, int]]] = []
    for row in first:
        routing = pinned.get(cases.version.label(int(row)))
        route_id = cases.route.label(int(row))
        named: list[tuple[int, int]] = []
        if routing is not None and any(r.id == route_id for r in routing.config.routes):
            for step in routing.config.route(route_id).steps:
                named.append(
                    (
                        holders.setdefault(step.holder, len(holders)),
                        steps.setdefault(step.id, len(steps)),
                    )
                )
        tables.append(named)
        width = max(width, len(named))
    holder_of = np.full((len(tables), width + 1), -1, dtype=np.int64)
    step_of = np.full((len(tables), width + 1), -1, dtype=np.int64)
    for g, named in enumerate(tables):
        for j, (h, s) in enumerate(named):
            holder_of[g, j], step_of[g, j] = h, s
    route_group = group[hops.case] if len(hops) else np.zeros(0, np.int64)
    index = np.minimum(hops.step_index, width)
    holder_code = holder_of[route_group, index] if len(hops) else np.zeros(0, np.int64)
    step_code = step_of[route_group, index] if len(hops) else np.zeros(0, np.int64)
    moved = set(
        conn.execute(
            select(Event.request_id).where(Event.kind.in_(("reassigned", "migrated"))).distinct()
        ).scalars()
    )
    unnamed = np.flatnonzero(holder_code < 0)
    moved.update(int(cases.id[hops.case[i]]) for i in unnamed)
    ids = np.array(sorted(moved), dtype=np.int64)
    wanted = ids[np.isin(ids, cases.id)].tolist()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found = conn.execute(
            select(Step.request_id, Step.hop, Step.holder, Step.route_step).where(
                Step.request_id.in_(chunk)
            )
        ).all()
        if not found:
            continue
        ids = np.array([r[0] for r in found], dtype=np.int64)
        numbers = np.array([r[1] for r in found], dtype=np.int64)
        at = _hop_index(hops, cases, ids, numbers)
        for i, row in zip(at.tolist(), found, strict=True):
            if i >= 0:
                holder_code[i] = holders.setdefault(row[2], len(holders))
                step_code[i] = steps.setdefault(row[3], len(steps))
    hops.holder = Coded(holder_code, tuple(holders))
    hops.step = Coded(step_code, tuple(steps))


def _hop_index(hops: Hops, cases: Cases, request_id: I64, hop: I64) -> I64:
    """The index into `hops` of each (request id, hop number); -1 where there is none."""
    if len(hops) == 0 or len(cases) == 0:
        return np.full(request_id.size, -1, dtype=np.int64)
    case_of = np.minimum(np.searchsorted(cases.id, request_id), len(cases) - 1)
    known = cases.id[case_of] == request_id
    keys = hops.case * HOP_RADIX + hops.hop
    wanted = case_of * HOP_RADIX + hop
    at = np.minimum(np.searchsorted(keys, wanted), len(hops) - 1)
    found = known & (hop >= 0) & (keys[at] == wanted)
    out: I64 = np.where(found, at, -1)
    return out


# -- timing on business calendars ---------------------------------------------------------------


def combine(*keys: I64) -> tuple[I64, I64]:
    """Group rows by several small integer keys: (group of each row, first row of each group).

    Groups are numbered in the order of their keys. Keys are folded in one at a time and each
    partial grouping renumbered densely, so the key space stays small enough to count rather
    than sort: a million rows group in milliseconds.
    """
    if not keys or keys[0].size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    n = keys[0].size
    group = np.zeros(n, dtype=np.int64)
    groups = 1
    for key in keys:
        radix = int(key.max()) + 2
        mixed = group * radix + (key + 1)
        space = groups * radix
        if space > max(1 << 22, 4 * n):
            _, inverse = np.unique(mixed, return_inverse=True)
            group = inverse.astype(np.int64).reshape(-1)
            groups = int(group.max()) + 1
            continue
        present = np.flatnonzero(np.bincount(mixed, minlength=space))
        lookup = np.full(space, -1, dtype=np.int64)
        lookup[present] = np.arange(present.size)
        group = lookup[mixed]
        groups = present.size
    first_row = np.full(groups, n, dtype=np.int64)
    np.minimum.at(first_row, group, np.arange(n, dtype=np.int64))
    return group, first_row


def hop_calendars(data: AuditData) -> list[tuple[Calendar, I64]]:
    """The hops grouped by the business calendar they are timed on: (calendar, hop indices)."""
    if data.calendars is None:
        data.calendars = _group_by_calendar(data)
    return data.calendars


def _group_by_calendar(data: AuditData) -> list[tuple[Calendar, I64]]:
    hops, cases = data.hops, data.cases
    if len(hops) == 0:
        return []
    group, first = combine(cases.version.codes[hops.case], hops.holder.codes)
    calendars: dict[int, tuple[int, Calendar]] = {}
    which = np.zeros(first.size, dtype=np.int64)
    for g, row in enumerate(first):
        routing = data.routings[cases.version.label(int(hops.case[row]))]
        calendar = routing.calendar(hops.holder.label(int(row)))
        which[g] = calendars.setdefault(id(calendar), (len(calendars), calendar))[0]
    calendar_of = which[group]
    return [(calendar, np.flatnonzero(calendar_of == n)) for n, calendar in calendars.values()]


def time_hops(*, data: AuditData) -> None:
    """Fill each hop's business and calendar days, lateness and stops (`hop_view` semantics)."""
    hops = data.hops
    n = len(hops)
    now_s = int(data.now.timestamp())
    closed = hops.closed
    end = np.where(closed, hops.closed_at, now_s)
    running_stop = ~closed & (hops.stopped_since != NO_TS)
    open_day, open_rank = np.zeros(n, np.int64), np.zeros(n, np.int64)
    end_day, end_rank = np.zeros(n, np.int64), np.zeros(n, np.int64)
    due_rank = np.zeros(n, np.int64)
    extra_stop = np.zeros(n, np.int64)
    for calendar, rows in hop_calendars(data):
        open_day[rows], open_rank[rows] = calendar.day_and_rank_many(hops.opened_at[rows])
        end_day[rows], end_rank[rows] = calendar.day_and_rank_many(end[rows])
        due_rank[rows] = calendar.day_and_rank_many(hops.due_at[rows])[1]
        stopped = rows[running_stop[rows]]
        if stopped.size:
            extra_stop[stopped] = calendar.business_days_between_many(
                hops.stopped_since[stopped], np.full(stopped.size, now_s, dtype=np.int64)
            )
    hops.business_days = end_rank - open_rank
    hops.calendar_days = end_day - open_day
    hops.late_bd = end_rank - due_rank
    hops.end_day = end_day
    hops.elapsed_s = end - hops.opened_at
    # An open hop whose clock is stopped is not overdue (queries.inbox); a hop that ran past its
    # due instant on the same local day is late by 0 business days (queries.hop_view).
    counts = (end > hops.due_at) & (closed | (hops.stopped_since == NO_TS))
    hops.days_late = np.where(counts, np.maximum(hops.late_bd, 0), 0)
    hops.stopped_bd_total = hops.stopped_bd + extra_stop
    cases = data.cases
    cases.registered_day = np.zeros(len(cases), np.int64)
    if len(cases):
        group, first = combine(cases.version.codes)
        for g, row in enumerate(first):
            rows = np.flatnonzero(group == g)
            calendar = data.routings[cases.version.label(int(row))].calendar(None)
            cases.registered_day[rows] = calendar.day_and_rank_many(cases.registered_at[rows])[0]


def _calendar_of(data: AuditData) -> I64:
    """The index, in `hop_calendars`, of each hop's calendar."""
    out = np.full(len(data.hops), -1, dtype=np.int64)
    for n, (_, rows) in enumerate(hop_calendars(data)):
        out[rows] = n
    return out


def pair_stops(
    *,
    hops: Hops,
    hop_index: I64,
    stopped: Bools,
    at: I64,
    now_s: int,
    calendars: list[tuple[Calendar, I64]],
) -> Stops:
    """Each clock stop with its calendar days, from stop and resume events in sequence order."""
    keep = hop_index >= 0
    hop_index, stopped, at = hop_index[keep], stopped[keep], at[keep]
    order = np.lexsort((np.arange(hop_index.size), hop_index))
    hop_index, stopped, at = hop_index[order], stopped[order], at[order]
    starts = np.flatnonzero(stopped)
    nxt = np.minimum(starts + 1, max(hop_index.size - 1, 0))
    resumed = (starts + 1 < hop_index.size) & ~stopped[nxt] & (hop_index[nxt] == hop_index[starts])
    ends = np.where(resumed, at[nxt], now_s)
    which = hop_index[starts]
    days = np.zeros(starts.size, dtype=np.int64)
    calendar_of = np.full(len(hops), -1, dtype=np.int64)
    for n, (_, rows) in enumerate(calendars):
        calendar_of[rows] = n
    for n, (calendar, _) in enumerate(calendars):
        mine = calendar_of[which] == n
        if mine.any():
            days[mine] = calendar.calendar_days_between_many(at[starts][mine], ends[mine])
    return Stops(which, days, ~resumed)


# -- grouped statistics ---------------------------------------------------------------------------


def group_stats(
    *, values: I64 | F64, groups: I64, n_groups: int, quantiles: Sequence[float] = QUANTILES
) -> dict[str, F64]:
    """Count, min, max and linear-interpolated quantiles of `values` within each group."""
    counts = np.bincount(groups, minlength=n_groups).astype(np.int64)
    out: dict[str, F64] = {"count": counts.astype(np.float64)}
    if values.size and np.issubdtype(values.dtype, np.integer):
        # Sorting one combined integer key is several times faster than a lexsort.
        low = int(values.min())
        span = int(values.max()) - low + 1
        v = (np.sort(groups * span + (values - low)) % span + low).astype(np.float64)
    else:
        v = np.asarray(values, dtype=np.float64)[np.lexsort((values, groups))]
    starts = np.cumsum(counts) - counts
    has = counts > 0
    last = np.where(has, starts + counts - 1, 0)
    first = np.where(has, starts, 0)
    nan = np.full(n_groups, np.nan)
    if v.size == 0:
        for name in ("min", "max", *(f"q{q}" for q in quantiles)):
            out[name] = nan.copy()
        return out
    out["min"] = np.where(has, v[first], np.nan)
    out["max"] = np.where(has, v[last], np.nan)
    for q in quantiles:
        pos = starts + q * np.maximum(counts - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        lo_v = v[np.where(has, lo, 0)]
        hi_v = v[np.where(has, hi, 0)]
        out[f"q{q}"] = np.where(has, lo_v + (hi_v - lo_v) * (pos - lo), np.nan)
    return out


def _num(x: Any, digits: int = 2) -> float | int | None:
    """A JSON number: ints stay ints, NaN becomes None."""
    value = float(x)
    if np.isnan(value):
        return None
    if value.is_integer():
        return int(value)
    return round(value, digits)


def _rate(part: float, whole: float) -> float | None:
    return None if whole == 0 else round(float(part) / float(whole), 4)


def rank_by_rate(
    rows: Iterable[Row],
    *,
    rate: str,
    observed: str,
    min_count: int,
    tie: Callable[[Row], Any],
    order: Callable[[Row], Any],
) -> list[Row]:
    """The rows with at least `min_count` `observed`, ranked by `rate`, highest first (`rank`
    1, 2, ... ties broken by `tie`), then the rows with fewer, in `order` and with `rank` None:
    too few to rank."""
    rows = list(rows)
    ranked = sorted(
        (r for r in rows if r[observed] >= min_count), key=lambda r: (-(r[rate] or 0), tie(r))
    )
    few = sorted((r for r in rows if r[observed] < min_count), key=order)
    return [{"rank": n, **r} for n, r in enumerate(ranked, start=1)] + [
        {"rank": None, **r} for r in few
    ]


def _stats_fields(stats: dict[str, F64], g: int, prefix: str) -> Row:
    return {
        f"{prefix}_median": _num(stats["q0.5"][g]),
        f"{prefix}_p90": _num(stats["q0.9"][g]),
        f"{prefix}_max": _num(stats["max"][g]),
    }


# -- dwell times -----------------------------------------------------------------------------------


def dwell_by_authority(*, data: AuditData) -> list[Row]:
    """Closed hops per authority: count, median, p90 and max in business and calendar days."""
    hops = data.hops
    closed = hops.closed
    n = len(hops.authority.labels)
    groups = hops.authority.codes[closed]
    bd = group_stats(values=hops.business_days[closed], groups=groups, n_groups=n)
    cd = group_stats(values=hops.calendar_days[closed], groups=groups, n_groups=n)
    open_count = np.bincount(hops.authority.codes[~closed], minlength=n)
    rows = []
    for g in range(n):
        rows.append(
            {
                **data.authority_row(g),
                "hops": int(bd["count"][g]),
                "open_hops": int(open_count[g]),
                "bd_min": _num(bd["min"][g]),
                "bd_p25": _num(bd["q0.25"][g]),
                **_stats_fields(bd, g, "bd"),
                "bd_p75": _num(bd["q0.75"][g]),
                **_stats_fields(cd, g, "cd"),
            }
        )
    return sorted(rows, key=lambda r: (-(r["bd_median"] or -1), r["country"], r["authority"]))


def _step_groups(data: AuditData) -> tuple[I64, I64]:
    if data.step_groups is None:
        hops, cases = data.hops, data.cases
        data.step_groups = combine(
            cases.country.codes[hops.case],
            cases.route.codes[hops.case],
            hops.step.codes,
            hops.holder.codes,
        )
    return data.step_groups


def _step_row(data: AuditData, row: int) -> Row:
    hops, cases = data.hops, data.cases
    case = int(hops.case[row])
    country, holder = cases.country.label(case), hops.holder.label(row)
    return {
        "country": country,
        "route": cases.route.label(case),
        "step": hops.step.label(row),
        "authority": holder,
        "authority_name": data.authority_name(country, holder),
        "outside_national_control": data.outside_national_control(country, holder),
        "sla": data.sla_of(row),
    }


def dwell_by_step(*, data: AuditData) -> list[Row]:
    """Closed hops per route step and holder, in business and calendar days."""
    hops = data.hops
    group, first = _step_groups(data)
    closed = hops.closed
    n = first.size
    bd = group_stats(values=hops.business_days[closed], groups=group[closed], n_groups=n)
    cd = group_stats(values=hops.calendar_days[closed], groups=group[closed], n_groups=n)
    rows = []
    for g in range(n):
        rows.append(
            {
                **_step_row(data, int(first[g])),
                "step_index": int(hops.step_index[first[g]]),
                "hops": int(bd["count"][g]),
                **_stats_fields(bd, g, "bd"),
                **_stats_fields(cd, g, "cd"),
            }
        )
    return sorted(rows, key=lambda r: (r["country"], r["route"], r["step_index"], r["authority"]))


def dwell_histogram(*, data: AuditData) -> list[Row]:
    """How many closed hops took each number of business days, per authority."""
    hops = data.hops
    closed = hops.closed
    if not closed.any():
        return []
    auth = hops.authority.codes[closed]
    days = hops.business_days[closed]
    width = int(days.max()) + 1
    counts = np.bincount(auth * width + days)
    rows = []
    for key in np.flatnonzero(counts):
        g, d = divmod(int(key), width)
        country, holder = data.authority_parts(g)
        rows.append(
            {"country": country, "authority": holder, "business_days": d, "hops": int(counts[key])}
        )
    return rows


def hop_dwell(*, data: AuditData) -> list[Row]:
    """Every closed hop with its dwell: the figures the event-log export must reproduce."""
    hops, cases = data.hops, data.cases
    return [
        {
            "reference": cases.reference[int(hops.case[i])],
            "hop": int(hops.hop[i]),
            "country": cases.country.label(int(hops.case[i])),
            "authority": hops.holder.label(int(i)),
            "business_days": int(hops.business_days[i]),
            "calendar_days": int(hops.calendar_days[i]),
            "elapsed_s": int(hops.elapsed_s[i]),
        }
        for i in np.flatnonzero(hops.closed)
    ]


# -- clock stops -----------------------------------------------------------------------------------


def stops_by_authority(*, data: AuditData) -> list[Row]:
    """Time with the clock stopped, per authority: hops, stops, business and calendar days."""
    hops, stops = data.hops, data.stops
    n = len(hops.authority.labels)
    auth = hops.authority.codes
    stop_auth = auth[stops.hop]
    hops_stopped = np.bincount(
        auth[np.unique(stops.hop)] if stops.hop.size else np.zeros(0, np.int64), minlength=n
    )
    count = np.bincount(stop_auth, minlength=n)
    running = np.bincount(stop_auth[stops.running], minlength=n)
    cd = np.bincount(stop_auth, weights=stops.calendar_days, minlength=n)
    bd = np.bincount(auth, weights=hops.stopped_bd_total, minlength=n)
    dwell = np.bincount(auth, weights=hops.business_days, minlength=n)
    rows = []
    for g in np.flatnonzero((count > 0) | (bd > 0)):
        rows.append(
            {
                **data.authority_row(int(g)),
                "hops_stopped": int(hops_stopped[g]),
                "stops": int(count[g]),
                "running_now": int(running[g]),
                "business_days_stopped": int(bd[g]),
                "calendar_days_stopped": int(cd[g]),
                "share_of_dwell": _rate(bd[g], dwell[g]),
            }
        )
    return sorted(rows, key=lambda r: -r["business_days_stopped"])


# -- SLA breaches ----------------------------------------------------------------------------------


def _overdue_mask(data: AuditData) -> Bools:
    hops = data.hops
    now_s = int(data.now.timestamp())
    found: Bools = ~hops.closed & (hops.stopped_since == NO_TS) & (now_s > hops.due_at)
    return found


def _breach_fields(data: AuditData, groups: I64, n: int) -> list[Row]:
    hops = data.hops
    closed, breached, overdue = hops.closed, hops.breached, _overdue_mask(data)
    n_closed = np.bincount(groups[closed], minlength=n)
    n_breached = np.bincount(groups[breached], minlength=n)
    late = group_stats(values=hops.days_late[breached], groups=groups[breached], n_groups=n)
    n_open = np.bincount(groups[~closed], minlength=n)
    n_overdue = np.bincount(groups[overdue], minlength=n)
    return [
        {
            "closed_hops": int(n_closed[g]),
            "breached": int(n_breached[g]),
            "breach_rate": _rate(n_breached[g], n_closed[g]),
            "days_late_median": _num(late["q0.5"][g]),
            "days_late_max": _num(late["max"][g]),
            "open_hops": int(n_open[g]),
            "overdue_now": int(n_overdue[g]),
        }
        for g in range(n)
    ]


def _authority_order(row: Row) -> tuple[str, str]:
    return row["country"], row["authority"]


def breaches_by_authority(*, data: AuditData, min_to_rank: int = MIN_TO_RANK) -> list[Row]:
    """Per authority: closed hops past due (rate, business days late) and hops overdue now;
    ranked by the share past due when at least `min_to_rank` hops closed."""
    n = len(data.hops.authority.labels)
    fields = _breach_fields(data, data.hops.authority.codes, n)
    rows = [{**data.authority_row(g), **fields[g]} for g in range(n)]
    return rank_by_rate(
        rows,
        rate="breach_rate",
        observed="closed_hops",
        min_count=min_to_rank,
        tie=lambda r: (-r["overdue_now"], *_authority_order(r)),
        order=_authority_order,
    )


def breaches_by_step(*, data: AuditData) -> list[Row]:
    group, first = _step_groups(data)
    fields = _breach_fields(data, group, first.size)
    rows = [{**_step_row(data, int(first[g])), **fields[g]} for g in range(first.size)]
    return sorted(rows, key=lambda r: (r["country"], r["route"], r["step"], r["authority"]))


def breaches_by_month(*, data: AuditData) -> list[Row]:
    """Closed hops and the share past due, by month of closing (local to the holder)."""
    hops = data.hops
    closed = hops.closed
    if not closed.any():
        return []
    months = (
        np.asarray(hops.end_day[closed], dtype="datetime64[D]").astype("datetime64[M]").astype(int)
    )
    first = int(months.min())
    idx = months - first
    total = np.bincount(idx)
    late = np.bincount(idx[hops.breached[closed]], minlength=total.size)
    rows = []
    for m in range(total.size):
        label = str(np.datetime64(first + m, "M"))
        rows.append(
            {
                "month": label,
                "closed_hops": int(total[m]),
                "breached": int(late[m]),
                "breach_rate": _rate(late[m], total[m]),
            }
        )
    return rows


def _holder_calendar(data: AuditData, hop: int) -> Calendar:
    """The calendar (and so the timezone) of the authority holding `hop`."""
    return data.routing_of_case(int(data.hops.case[hop])).calendar(data.hops.holder.label(hop))


def overdue_now(*, data: AuditData) -> list[Row]:
    """Every open hop past its due instant now (clock not stopped), most days late first; the due
    instant in UTC and in the holder's local time."""
    hops, cases = data.hops, data.cases
    overdue = np.flatnonzero(_overdue_mask(data))
    group, first = _step_groups(data)
    steps = {int(g): _step_row(data, int(first[g])) for g in np.unique(group[overdue])}
    calendars = {g: _holder_calendar(data, int(first[g])) for g in steps}
    due = np.datetime_as_string(hops.due_at[overdue].astype("datetime64[s]"), timezone="UTC")
    # Due instants fall at the end of a business day: a few thousand distinct ones however many
    # hops are overdue, each rendered once.
    local: dict[tuple[str, int], str] = {}
    rows = []
    for case_, g, hop, due_s, utc, days_late in zip(
        hops.case[overdue].tolist(),
        group[overdue].tolist(),
        hops.hop[overdue].tolist(),
        hops.due_at[overdue].tolist(),
        due.tolist(),
        hops.days_late[overdue].tolist(),
        strict=True,
    ):
        calendar = calendars[g]
        key = (calendar.timezone, due_s)
        if key not in local:
            local[key] = datetime.fromtimestamp(due_s, calendar.tz).isoformat()
        rows.append(
            {
                "reference": cases.reference[case_],
                **steps[g],
                "hop": hop,
                "due_at": utc.replace("Z", "+00:00"),
                "due_local": local[key],
                "timezone": calendar.timezone,
                "days_late": days_late,
            }
        )
    return sorted(rows, key=lambda r: (-r["days_late"], r["reference"]))


# -- hops outside national control -----------------------------------------------------------------


def outside_national_control(data: AuditData) -> Bools:
    """The hops held by a foreign authority (kind `foreign` in the case's pinned routing): the
    requested or requesting state, on whose pace no national authority has a say."""
    hops, cases = data.hops, data.cases
    if len(hops) == 0:
        return np.zeros(0, dtype=bool)
    foreign = np.zeros((len(cases.version.labels), len(hops.holder.labels)), dtype=bool)
    for v, version in enumerate(cases.version.labels):
        routing = data.routings.get(version)
        authorities = routing.config.authorities if routing is not None else {}
        for h, holder in enumerate(hops.holder.labels):
            found = authorities.get(holder)
            foreign[v, h] = found is not None and found.kind == FOREIGN
    held: Bools = foreign[cases.version.codes[hops.case], hops.holder.codes]
    return held


def foreign_by_counterpart(*, data: AuditData, min_to_rank: int = MIN_TO_RANK) -> list[Row]:
    """Hops held by the foreign state, per counterpart of the case: how long they took in
    calendar days and how often past their SLA; ranked by that share when at least
    `min_to_rank` hops closed."""
    hops, cases = data.hops, data.cases
    abroad = outside_national_control(data)
    if not abroad.any():
        return []
    counterpart = cases.counterpart.codes[hops.case]
    n = len(cases.counterpart.labels)
    closed = abroad & hops.closed
    days = group_stats(values=hops.calendar_days[closed], groups=counterpart[closed], n_groups=n)
    held = np.bincount(counterpart[abroad], minlength=n)
    over = np.bincount(counterpart[closed & hops.breached], minlength=n)
    still_open = np.bincount(counterpart[abroad & ~hops.closed], minlength=n)
    overdue = np.bincount(counterpart[abroad & _overdue_mask(data)], minlength=n)
    rows = []
    for g in np.flatnonzero(held).tolist():
        count = int(days["count"][g])
        rows.append(
            {
                "counterpart": cases.counterpart.labels[g],
                "closed_hops": count,
                "cd_median": _num(days["q0.5"][g]),
                "cd_p90": _num(days["q0.9"][g]),
                "cd_max": _num(days["max"][g]),
                "over_sla": int(over[g]),
                "over_sla_share": _rate(over[g], count),
                "open_hops": int(still_open[g]),
                "overdue_now": int(overdue[g]),
            }
        )
    return rank_by_rate(
        rows,
        rate="over_sla_share",
        observed="closed_hops",
        min_count=min_to_rank,
        tie=lambda r: r["counterpart"],
        order=lambda r: r["counterpart"],
    )


# -- handoffs --------------------------------------------------------------------------------------


def _successors(data: AuditData) -> tuple[I64, I64]:
    """Pairs (hop, next hop of the same case) where the first is closed."""
    hops = data.hops
    if len(hops) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = np.arange(len(hops) - 1)
    same = (hops.case[a] == hops.case[a + 1]) & hops.closed[a]
    prev = a[same]
    return prev, prev + 1


def handoff_gaps(*, data: AuditData) -> tuple[I64, I64, I64, I64]:
    """(previous hop, next hop, gap in business days, gap in calendar days) on the next holder's
    calendar: zero when a decision opened the next hop at once, the wait on the requester after
    a return."""
    if data.gaps is None:
        prev, nxt = _successors(data)
        hops = data.hops
        bd = np.zeros(prev.size, dtype=np.int64)
        cd = np.zeros(prev.size, dtype=np.int64)
        waited = np.flatnonzero(hops.closed_at[prev] != hops.opened_at[nxt])
        if waited.size:
            calendar_of = _calendar_of(data)[nxt[waited]]
            for n, (calendar, _) in enumerate(hop_calendars(data)):
                at = waited[calendar_of == n]
                if at.size:
                    before, after = hops.closed_at[prev[at]], hops.opened_at[nxt[at]]
                    bd[at] = calendar.business_days_between_many(before, after)
                    cd[at] = calendar.calendar_days_between_many(before, after)
        data.gaps = (prev, nxt, bd, cd)
    return data.gaps


def handoffs(*, data: AuditData) -> list[Row]:
    """Gaps between consecutive hops, per pair of step and holder."""
    hops, cases = data.hops, data.cases
    prev, nxt, bd, cd = handoff_gaps(data=data)
    if prev.size == 0:
        return []
    group, first = combine(
        cases.country.codes[hops.case[prev]],
        hops.step.codes[prev],
        hops.holder.codes[prev],
        hops.step.codes[nxt],
        hops.holder.codes[nxt],
    )
    n = first.size
    bds = group_stats(values=bd, groups=group, n_groups=n)
    cds = group_stats(values=cd, groups=group, n_groups=n)
    requester = hops.to_requester[prev]
    via = np.bincount(group[requester], minlength=n)
    rows = []
    for g in range(n):
        p, q = int(prev[first[g]]), int(nxt[first[g]])
        rows.append(
            {
                "country": cases.country.label(int(hops.case[p])),
                "from_step": hops.step.label(p),
                "from_authority": hops.holder.label(p),
                "to_step": hops.step.label(q),
                "to_authority": hops.holder.label(q),
                "handoffs": int(bds["count"][g]),
                "via_requester": int(via[g]),
                **_stats_fields(bds, g, "gap_bd"),
                **_stats_fields(cds, g, "gap_cd"),
            }
        )
    return sorted(rows, key=lambda r: (-(r["gap_bd_median"] or 0), -r["handoffs"]))


# -- rework ----------------------------------------------------------------------------------------


def _repeated(hops: Hops) -> Bools:
    """Hops that do a step of the case again (after a return, a reassignment or a postponement)."""
    if len(hops) == 0:
        return np.zeros(0, dtype=bool)
    _, first = combine(hops.case, hops.step_index)
    seen_before = np.ones(len(hops), dtype=bool)
    seen_before[first] = False
    return seen_before


def rework_by_authority(*, data: AuditData, min_to_rank: int = MIN_TO_RANK) -> list[Row]:
    """How often each authority sends a request back or on to another, and the work redone;
    ranked by that share when at least `min_to_rank` hops closed."""
    hops = data.hops
    n = len(hops.authority.labels)
    auth = hops.authority.codes
    closed = np.bincount(auth[hops.closed], minlength=n)
    returned = np.bincount(auth[hops.outcome.equals("returned")], minlength=n)
    reassigned = np.bincount(auth[hops.outcome.equals("reassigned")], minlength=n)
    repeated = _repeated(hops)
    redo = np.bincount(auth[repeated], minlength=n)
    redo_bd = np.bincount(auth[repeated], weights=hops.business_days[repeated], minlength=n)
    rows = []
    for g in range(n):
        rows.append(
            {
                **data.authority_row(g),
                "closed_hops": int(closed[g]),
                "returned": int(returned[g]),
                "reassigned": int(reassigned[g]),
                "rework_rate": _rate(returned[g] + reassigned[g], closed[g]),
                "repeated_hops": int(redo[g]),
                "repeated_business_days": int(redo_bd[g]),
            }
        )
    return rank_by_rate(
        rows,
        rate="rework_rate",
        observed="closed_hops",
        min_count=min_to_rank,
        tie=_authority_order,
        order=_authority_order,
    )


def rework_by_cause(*, data: AuditData) -> list[Row]:
    """Returns and reassignments by delay cause."""
    hops = data.hops
    sent_back = hops.outcome.isin(("returned", "reassigned"))
    total = int(sent_back.sum())
    rows = []
    for c, cause in enumerate(hops.cause.labels):
        mine = sent_back & (hops.cause.codes == c)
        if not mine.any():
            continue
        rows.append(
            {
                "cause": cause or "unspecified",
                "returned": int((mine & hops.outcome.equals("returned")).sum()),
                "reassigned": int((mine & hops.outcome.equals("reassigned")).sum()),
                "total": int(mine.sum()),
                "share": _rate(int(mine.sum()), total),
            }
        )
    return sorted(rows, key=lambda r: (-r["total"], r["cause"]))


def returned_cases(*, data: AuditData) -> int:
    """Cases sent back (returned or reassigned) at least once."""
    hops = data.hops
    back = hops.outcome.isin(("returned", "reassigned"))
    return int(np.unique(hops.case[back]).size)


# -- refusals and execution ------------------------------------------------------------------------


def refusals(*, data: AuditData) -> list[Row]:
    """Refusals per authority and ground; grounds UNCAC forbids (46(8), 46(22)) are flagged."""
    hops = data.hops
    refused = np.flatnonzero(hops.outcome.equals("refused"))
    if refused.size == 0:
        return []
    group, first = combine(hops.authority.codes[refused], hops.ground.codes[refused])
    counts = np.bincount(group)
    rows = []
    for g in range(first.size):
        i = int(refused[first[g]])
        ground = hops.ground.label(i)
        rows.append(
            {
                **data.authority_row(int(hops.authority.codes[i])),
                "ground": ground,
                "refusals": int(counts[g]),
                "prohibited_by_uncac": ground in PROHIBITED_GROUNDS,
            }
        )
    return sorted(rows, key=lambda r: (not r["prohibited_by_uncac"], -r["refusals"]))


EXECUTION_OUTCOMES = ("executed", "partially_executed", "refused", "withdrawn")


def execution(*, data: AuditData) -> list[Row]:
    """Closed cases by outcome, per country, route, direction and kind, with execution rates."""
    cases = data.cases
    closed = np.flatnonzero(cases.status.equals("closed"))
    if closed.size == 0:
        return []
    group, first = combine(
        cases.country.codes[closed],
        cases.route.codes[closed],
        cases.direction.codes[closed],
        cases.kind.codes[closed],
    )
    rows = []
    outcome = cases.outcome.codes[closed]
    for g in range(first.size):
        i = int(closed[first[g]])
        mine = group == g
        n = int(mine.sum())
        counts = {
            o: int((mine & (outcome == cases.outcome.code(o))).sum()) for o in EXECUTION_OUTCOMES
        }
        rows.append(
            {
                "country": cases.country.label(i),
                "route": cases.route.label(i),
                "direction": cases.direction.label(i),
                "kind": cases.kind.label(i),
                "closed_cases": n,
                **counts,
                "other": n - sum(counts.values()),
                "execution_rate": _rate(counts["executed"], n),
                "partial_rate": _rate(counts["partially_executed"], n),
                "executed_any_rate": _rate(counts["executed"] + counts["partially_executed"], n),
            }
        )
    return sorted(rows, key=lambda r: (r["country"], r["route"], r["kind"]))


# -- late entries ----------------------------------------------------------------------------------


def late_entries(*, data: AuditData, min_to_rank: int = MIN_TO_RANK) -> list[Row]:
    """Per authority: decisions entered long after they happened, a sign of a paper register;
    ranked by the share entered late when at least `min_to_rank` decisions were entered."""
    hops, late = data.hops, data.late
    n = len(hops.authority.labels)
    known = late.hop >= 0
    auth = hops.authority.codes[late.hop[known]]
    lag_days = late.lag_s[known] / 86400.0
    closing = late.kind.isin(CLOSING_KINDS)[known]
    decisions = np.bincount(hops.authority.codes[hops.closed], minlength=n)
    late_decisions = np.bincount(auth[closing], minlength=n)
    entries = np.bincount(auth, minlength=n)
    lags = group_stats(values=lag_days, groups=auth, n_groups=n)
    rows = []
    for g in range(n):
        rows.append(
            {
                **data.authority_row(g),
                "decisions": int(decisions[g]),
                "late_decisions": int(late_decisions[g]),
                "late_share": _rate(late_decisions[g], decisions[g]),
                "late_entries": int(entries[g]),
                "lag_days_median": _num(lags["q0.5"][g]),
                "lag_days_max": _num(lags["max"][g]),
            }
        )
    return rank_by_rate(
        rows,
        rate="late_share",
        observed="decisions",
        min_count=min_to_rank,
        tie=lambda r: (-r["late_entries"], *_authority_order(r)),
        order=_authority_order,
    )


# -- delay attribution -----------------------------------------------------------------------------


def attribute_delay(*, case: I64, late_bd: I64, eligible: Bools) -> F64:
    """Split each case's lateness over its hops.

    A case's lateness is the sum of its hops' signed business days past due (early hops make
    up for late ones). When positive, it is shared among the hops that ran late, in proportion to
    how late each ran; hops of cases not `eligible` (open) get nothing.
    """
    out = np.zeros(case.size, dtype=np.float64)
    if case.size == 0:
        return out
    n = int(case.max()) + 1
    signed = np.where(eligible, late_bd, 0).astype(np.float64)
    total = np.bincount(case, weights=signed, minlength=n)
    over = np.maximum(signed, 0.0)
    over_total = np.bincount(case, weights=over, minlength=n)
    lateness = total[case]
    share = np.divide(over, over_total[case], out=np.zeros_like(over), where=over_total[case] > 0)
    out[:] = np.where(lateness > 0, lateness * share, 0.0)
    return out


def delay_attribution(*, data: AuditData) -> list[Row]:
    """Closed cases' lateness totalled per authority, ranked, for all cases and per
    direction and kind (e.g. outgoing MLA)."""
    hops, cases = data.hops, data.cases
    eligible = cases.status.equals("closed")[hops.case] if len(hops) else np.zeros(0, bool)
    attributed = attribute_delay(case=hops.case, late_bd=hops.late_bd, eligible=eligible)
    n = len(hops.authority.labels)
    scopes: list[tuple[str, str | None, str | None, Bools]] = [
        ("all", None, None, np.ones(len(hops), dtype=bool))
    ]
    if len(hops):
        group, first = combine(cases.direction.codes[hops.case], cases.kind.codes[hops.case])
        for g, row in enumerate(first):
            case = int(hops.case[row])
            way, what = cases.direction.label(case), cases.kind.label(case)
            scopes.append((f"{way} {what}", way, what, group == g))
    rows: list[Row] = []
    for scope, direction, kind, mask in scopes:
        weights = attributed[mask]
        per = np.bincount(hops.authority.codes[mask], weights=weights, minlength=n)
        contributed = np.bincount(hops.authority.codes[mask & (attributed > 0)], minlength=n)
        total = float(per.sum())
        if total <= 0:
            continue
        ranked = sorted(range(n), key=lambda g: (-per[g], data.hops.authority.labels[g]))
        for rank, g in enumerate((g for g in ranked if per[g] > 0), start=1):
            rows.append(
                {
                    "scope": scope,
                    "direction": direction,
                    "kind": kind,
                    "rank": rank,
                    **data.authority_row(g),
                    "delay_business_days": _num(per[g]),
                    "share": round(float(per[g]) / total, 4),
                    "hops_late": int(contributed[g]),
                }
            )
    return rows


# -- Watson-style statistics -----------------------------------------------------------------------


def _years(days: I64) -> I64:
    years: I64 = (
        np.asarray(days, dtype="datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    )
    return years


def statistics(*, data: AuditData) -> list[Row]:
    """Exact counts of requests by country, direction, counterpart, offence, legal basis, kind
    and year of registration (local to the country)."""
    cases = data.cases
    if len(cases) == 0:
        return []
    year = _years(cases.registered_day)
    keys = (
        cases.country,
        cases.direction,
        cases.counterpart,
        cases.offence,
        cases.legal_basis,
        cases.kind,
    )
    group, first = combine(*(k.codes for k in keys), year)
    counts = np.bincount(group)
    names = ("country", "direction", "counterpart", "offence_category", "legal_basis", "kind")
    rows = []
    for g in range(first.size):
        i = int(first[g])
        row: Row = {name: key.label(i) for name, key in zip(names, keys, strict=True)}
        row["year"] = int(year[i])
        row["requests"] = int(counts[g])
        rows.append(row)
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in (*names, "year")))


def uncac_usage(*, data: AuditData) -> list[Row]:
    """How often UNCAC is the legal basis, per country, direction and year."""
    cases = data.cases
    if len(cases) == 0:
        return []
    year = _years(cases.registered_day)
    group, first = combine(cases.country.codes, cases.direction.codes, year)
    total = np.bincount(group)
    uncac = np.bincount(group[cases.legal_basis.equals("uncac")], minlength=first.size)
    rows = [
        {
            "country": cases.country.label(int(first[g])),
            "direction": cases.direction.label(int(first[g])),
            "year": int(year[first[g]]),
            "requests": int(total[g]),
            "uncac": int(uncac[g]),
            "uncac_share": _rate(uncac[g], total[g]),
        }
        for g in range(first.size)
    ]
    return sorted(rows, key=lambda r: (r["country"], r["direction"], r["year"]))


# -- chains ----------------------------------------------------------------------------------------


def chains(*, data: AuditData, by_step: list[Row] | None = None) -> list[Row]:
    """Each route in use drawn as its chain of steps, with the observed median times.

    The route is taken from the routing version of the most recently registered case on it.
    """
    cases = data.cases
    if len(cases) == 0:
        return []
    by_step = by_step if by_step is not None else dwell_by_step(data=data)
    observed: dict[tuple[str, str, str], list[Row]] = {}
    for r in by_step:
        observed.setdefault((r["country"], r["route"], r["step"]), []).append(r)
    group, first = combine(cases.country.codes, cases.route.codes)
    # The last case of each group in registration order (ties: the highest id).
    order = np.lexsort((np.arange(len(cases)), cases.registered_at, group))
    ends = np.searchsorted(group[order], np.arange(first.size), side="right") - 1
    latest = order[ends].tolist()
    rows: list[Row] = []
    for i in sorted(latest, key=lambda i: (cases.country.label(i), cases.route.label(i))):
        routing = data.routing_of_case(i)
        route = routing.config.route(cases.route.label(i))
        for position, step in enumerate(route.steps):
            seen = observed.get((routing.country, route.id, step.id), [])
            main = next((r for r in seen if r["authority"] == step.holder), None)
            count = sum(r["hops"] for r in seen)
            rows.append(
                {
                    "country": routing.country,
                    "route": route.id,
                    "route_name": route.name or route.id,
                    "position": position + 1,
                    "step": step.id,
                    "authority": step.holder,
                    "authority_name": routing.config.authorities[step.holder].name,
                    "sla": str(routing.sla(route, position)),
                    "conditional": step.when is not None,
                    "hops": count,
                    "bd_median": main["bd_median"] if main else None,
                    "cd_median": main["cd_median"] if main else None,
                }
            )
    return rows


# -- summary ---------------------------------------------------------------------------------------


def summary(*, data: AuditData) -> Row:
    hops, cases = data.hops, data.cases
    closed_cases = cases.status.equals("closed")
    executed = cases.outcome.equals("executed") & closed_cases
    partial = cases.outcome.equals("partially_executed") & closed_cases
    n_closed = int(closed_cases.sum())
    refused = hops.outcome.equals("refused")
    prohibited = refused & hops.ground.isin(PROHIBITED_GROUNDS)
    return {
        "cases": len(cases),
        "open_cases": int((~closed_cases).sum()),
        "closed_cases": n_closed,
        "hops": len(hops),
        "closed_hops": int(hops.closed.sum()),
        "open_hops": int((~hops.closed).sum()),
        "breach_rate": _rate(int(hops.breached.sum()), int(hops.closed.sum())),
        "overdue_now": int(_overdue_mask(data).sum()),
        "execution_rate": _rate(int(executed.sum()), n_closed),
        "partial_rate": _rate(int(partial.sum()), n_closed),
        "returned_cases": returned_cases(data=data),
        "refusals": int(refused.sum()),
        "prohibited_refusals": int(prohibited.sum()),
        "uncac_requests": int(cases.legal_basis.equals("uncac").sum()),
        "uncac_share": _rate(int(cases.legal_basis.equals("uncac").sum()), len(cases)),
        "late_entries": int(data.late.hop.size),
        "late_after_hours": data.late_after_s / 3600,
        "min_to_rank": MIN_TO_RANK,
    }

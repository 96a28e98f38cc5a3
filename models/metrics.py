"""Audit metrics: where delays build up, per authority, hop, route and month, from the ledger.

`load_audit` reads the columns it needs with a few Core queries (no ORM object per row, rows
fetched in chunks and turned into NumPy arrays) and times every hop on its holder's business
calendar with the `queries.hop_view` semantics. Every other function is pure over those arrays
and returns plain rows (lists of dicts) ready for JSON, CSV and HTML.

Medians and percentiles interpolate linearly between the two nearest ranks (NumPy's default).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, ColumnElement, Integer, cast, extract, func, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from models.calendar import Calendar
from models.domain import RefusalGround
from models.ledger import Event, Request, Step
from models.loader import Routing

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
        self.parts.append(
            np.fromiter(
                (index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values)
            )
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
    current_hop: I64
    """The open hop, 0 when none is open."""
    hop_count: I64
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
    sla: Coded
    opened_at: I64
    due_at: I64
    closed_at: I64
    stopped_bd: I64
    stopped_since: I64
    outcome: Coded
    ground: Coded
    cause: Coded
    target: Coded
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

    def routing_of_case(self, i: int) -> Routing:
        return self.routings[self.cases.version.label(i)]

    def authority_parts(self, code: int) -> tuple[str, str]:
        country, holder = self.hops.authority.labels[code].split("|")
        return country, holder

    def authority_name(self, country: str, holder: str) -> str:
        for routing in self.routings.values():
            if routing.country == country and holder in routing.config.authorities:
                return routing.config.authorities[holder].name
        return holder

    def authority_row(self, code: int) -> Row:
        country, holder = self.authority_parts(code)
        return {
            "country": country,
            "authority": holder,
            "authority_name": self.authority_name(country, holder),
        }


# -- reading the ledger ---------------------------------------------------------------------------


def epoch_seconds(dialect: str, column: Any) -> ColumnElement[int]:
    """Whole UTC epoch seconds (floored); NO_TS for NULL. Floors never cross a local midnight."""
    if dialect == "postgresql":
        expr: ColumnElement[int] = cast(func.floor(extract("epoch", column)), BigInteger)
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


def _joined(text: Sequence[Any]) -> ColumnElement[str]:
    out: ColumnElement[str] = func.coalesce(text[0], "")
    for part in text[1:]:
        out = out + "|" + func.coalesce(part, "")
    return out


def _read(
    conn: Connection, stmt: Select[*tuple[Any, ...]], kinds: str, *, chunk: int = 100_000
) -> list[Any]:
    """Run `stmt` and return its columns: `i` int64 arrays, `s` coded text, `b` booleans,
    `o` plain lists. Rows come in chunks, so no more than one chunk of Python tuples lives."""
    ints: dict[int, list[I64]] = {n: [] for n, k in enumerate(kinds) if k in "ib"}
    coders = {n: _Coder() for n, k in enumerate(kinds) if k == "s"}
    plain: dict[int, list[Any]] = {n: [] for n, k in enumerate(kinds) if k == "o"}
    result = conn.execution_options(yield_per=chunk).execute(stmt)
    for part in result.partitions():
        columns = list(zip(*part, strict=True)) if part else []
        for n, values in enumerate(columns):
            if n in ints:
                ints[n].append(np.array(values, dtype=np.int64))
            elif n in coders:
                coders[n].add(values)
            else:
                plain[n].extend(values)
    out: list[Any] = []
    for n, k in enumerate(kinds):
        if k == "s":
            out.append(coders[n].done())
        elif k == "o":
            out.append(plain[n])
        else:
            arr = np.concatenate(ints[n]) if ints[n] else np.zeros(0, dtype=np.int64)
            out.append(arr.astype(bool) if k == "b" else arr)
    return out


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
    conn = session.connection()
    dialect = conn.dialect.name
    where = case_conditions(filters)
    cases = _load_cases(conn, dialect, where)
    hops = _load_hops(conn, dialect, where, cases)
    pinned = {v: routings.pinned(session, v) for v in cases.version.labels}
    late_after_s = int(late_after.total_seconds())
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
    )
    time_hops(data=data)
    stop_rows = _read(
        conn,
        select(
            Event.request_id,
            _json_int(dialect, Event.payload, "hop"),
            Event.kind,
            epoch_seconds(dialect, Event.occurred_at),
        )
        .join(Request, Request.id == Event.request_id)
        .where(Event.kind.in_(("clock_stopped", "clock_resumed")), *where)
        .order_by(Event.request_id, Event.seq),
        "iisi",
    )
    data.stops = pair_stops(
        hops=hops,
        hop_index=_hop_index(hops, cases, stop_rows[0], stop_rows[1]),
        stopped=stop_rows[2].equals("clock_stopped"),
        at=stop_rows[3],
        now_s=int(now.timestamp()),
        calendars=hop_calendars(data),
    )
    lag = epoch_seconds(dialect, Event.recorded_at) - epoch_seconds(dialect, Event.occurred_at)
    late_rows = _read(
        conn,
        select(
            Event.request_id,
            Event.kind,
            _json_int(dialect, Event.payload, "hop"),
            _json_int(dialect, Event.payload, "after_hop"),
            lag,
        )
        .join(Request, Request.id == Event.request_id)
        .where(Event.kind.in_(COMMAND_KINDS), lag > late_after_s, *where),
        "isiii",
    )
    kind: Coded = late_rows[1]
    hop_no = late_rows[2].copy()
    hop_no[kind.equals("registered")] = 1
    resubmitted = kind.equals("resubmitted")
    hop_no[resubmitted] = late_rows[3][resubmitted] + 1
    data.late = LateEntries(_hop_index(hops, cases, late_rows[0], hop_no), kind, late_rows[4])
    return data


def _load_cases(conn: Connection, dialect: str, where: list[ColumnElement[bool]]) -> Cases:
    dims = _joined(
        [
            Request.country,
            Request.route_id,
            Request.routing_version,
            Request.direction,
            Request.kind,
            Request.legal_basis,
            Request.offence_category,
            Request.counterpart,
        ]
    )
    state = _joined([Request.status, Request.outcome])
    rows = _read(
        conn,
        select(
            Request.id,
            Request.reference,
            dims,
            state,
            Request.coercive,
            Request.urgent,
            epoch_seconds(dialect, Request.registered_at),
            epoch_seconds(dialect, Request.closed_at),
            _day_number(dialect, Request.prescription_date),
            Request.prescription_running,
            func.coalesce(Request.current_hop, 0),
            Request.hop_count,
        )
        .where(*where)
        .order_by(Request.id),
        "iossbbiiibii",
    )
    d = split_coded(
        rows[2],
        ["country", "route", "version", "direction", "kind", "basis", "offence", "counterpart"],
    )
    s = split_coded(rows[3], ["status", "outcome"])
    return Cases(
        id=rows[0],
        reference=rows[1],
        country=d["country"],
        route=d["route"],
        version=d["version"],
        direction=d["direction"],
        kind=d["kind"],
        legal_basis=d["basis"],
        offence=d["offence"],
        counterpart=d["counterpart"],
        coercive=rows[4],
        urgent=rows[5],
        status=s["status"],
        outcome=s["outcome"],
        registered_at=rows[6],
        closed_at=rows[7],
        prescription_day=rows[8],
        prescription_running=rows[9],
        current_hop=rows[10],
        hop_count=rows[11],
    )


def _load_hops(
    conn: Connection, dialect: str, where: list[ColumnElement[bool]], cases: Cases
) -> Hops:
    rows = _read(
        conn,
        select(
            Step.request_id,
            Step.hop,
            Step.step_index,
            _joined([Step.holder, Step.route_step, Step.sla]),
            epoch_seconds(dialect, Step.opened_at),
            epoch_seconds(dialect, Step.due_at),
            epoch_seconds(dialect, Step.closed_at),
            Step.stopped_bd,
            epoch_seconds(dialect, Step.stopped_since),
            _joined([Step.outcome, Step.ground, Step.cause, Step.target]),
        )
        .join(Request, Request.id == Step.request_id)
        .where(*where)
        .order_by(Step.request_id, Step.hop),
        "iiisiiiiis",
    )
    k = split_coded(rows[3], ["holder", "step", "sla"])
    o = split_coded(rows[9], ["outcome", "ground", "cause", "target"])
    case = np.searchsorted(cases.id, rows[0]).astype(np.int64)
    hops = Hops(
        case=case,
        hop=rows[1],
        step_index=rows[2],
        holder=k["holder"],
        step=k["step"],
        sla=k["sla"],
        opened_at=rows[4],
        due_at=rows[5],
        closed_at=rows[6],
        stopped_bd=rows[7],
        stopped_since=rows[8],
        outcome=o["outcome"],
        ground=o["ground"],
        cause=o["cause"],
        target=o["target"],
    )
    country = cases.country.codes[case] if case.size else np.zeros(0, np.int64)
    pair, first = combine(country, hops.holder.codes)
    labels = tuple(
        f"{cases.country.labels[country[i]]}|{hops.holder.labels[hops.holder.codes[i]]}"
        for i in first
    )
    hops.authority = Coded(pair, labels)
    return hops


def _hop_index(hops: Hops, cases: Cases, request_id: I64, hop: I64) -> I64:
    """The index into `hops` of each (request id, hop number); -1 where there is none."""
    if len(hops) == 0:
        return np.full(request_id.size, -1, dtype=np.int64)
    case = np.searchsorted(cases.id, request_id)
    width = int(max(hops.hop.max(initial=0), hop.max(initial=0))) + 1
    keys = hops.case * width + hops.hop
    wanted = case * width + hop
    at = np.searchsorted(keys, wanted)
    at = np.minimum(at, len(hops) - 1)
    found = (hop >= 0) & (keys[at] == wanted)
    out: I64 = np.where(found, at, -1)
    return out


# -- timing on business calendars ---------------------------------------------------------------


def combine(*keys: I64) -> tuple[I64, I64]:
    """Group rows by several small integer keys: (group of each row, first row of each group)."""
    if not keys or keys[0].size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    mixed = np.zeros(keys[0].size, dtype=np.int64)
    for key in keys:
        mixed = mixed * (int(key.max()) + 2) + (key + 1)
    _, first, inverse = np.unique(mixed, return_index=True, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), first.astype(np.int64)


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
    by_calendar: dict[int, tuple[Calendar, list[int]]] = {}
    for g, row in enumerate(first):
        routing = data.routings[cases.version.label(int(hops.case[row]))]
        calendar = routing.calendar(hops.holder.label(int(row)))
        by_calendar.setdefault(id(calendar), (calendar, []))[1].append(g)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(first) + 1))
    out = []
    for calendar, groups in by_calendar.values():
        rows = np.concatenate([order[bounds[g] : bounds[g + 1]] for g in groups])
        out.append((calendar, np.sort(rows)))
    return out


def _local_day(calendar: Calendar, epoch: I64) -> I64:
    """Local day numbers (days since 1970-01-01) of UTC epoch seconds on `calendar`."""
    first = datetime.combine(calendar.first, time(), calendar.tz)
    origin = np.full(epoch.shape, int(first.timestamp()), dtype=np.int64)
    days: I64 = calendar.calendar_days_between_many(origin, epoch) + (
        calendar.first.toordinal() - EPOCH_ORDINAL
    )
    return days


def time_hops(*, data: AuditData) -> None:
    """Fill each hop's business and calendar days, lateness and stops (`hop_view` semantics)."""
    hops = data.hops
    n = len(hops)
    now_s = int(data.now.timestamp())
    closed = hops.closed
    end = np.where(closed, hops.closed_at, now_s)
    running_stop = ~closed & (hops.stopped_since != NO_TS)
    hops.business_days = np.zeros(n, np.int64)
    hops.calendar_days = np.zeros(n, np.int64)
    hops.late_bd = np.zeros(n, np.int64)
    hops.end_day = np.zeros(n, np.int64)
    extra_stop = np.zeros(n, np.int64)
    for calendar, rows in hop_calendars(data):
        opened, due, ends = hops.opened_at[rows], hops.due_at[rows], end[rows]
        hops.business_days[rows] = calendar.business_days_between_many(opened, ends)
        hops.calendar_days[rows] = calendar.calendar_days_between_many(opened, ends)
        hops.late_bd[rows] = calendar.business_days_between_many(due, ends)
        hops.end_day[rows] = _local_day(calendar, ends)
        stopped = rows[running_stop[rows]]
        if stopped.size:
            extra_stop[stopped] = calendar.business_days_between_many(
                hops.stopped_since[stopped], np.full(stopped.size, now_s, dtype=np.int64)
            )
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
            cases.registered_day[rows] = _local_day(calendar, cases.registered_at[rows])


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
    order = np.lexsort((values, groups))
    v = np.asarray(values, dtype=np.float64)[order]
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
    return None if whole == 0 else round(part / whole, 4)


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
    hops, cases = data.hops, data.cases
    return combine(
        cases.country.codes[hops.case],
        cases.route.codes[hops.case],
        hops.step.codes,
        hops.holder.codes,
    )


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
        "sla": hops.sla.label(row),
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


def breaches_by_authority(*, data: AuditData) -> list[Row]:
    """Per authority: closed hops past due (rate, business days late) and hops overdue now."""
    n = len(data.hops.authority.labels)
    fields = _breach_fields(data, data.hops.authority.codes, n)
    rows = [{**data.authority_row(g), **fields[g]} for g in range(n)]
    return sorted(rows, key=lambda r: (-(r["breach_rate"] or 0), -r["overdue_now"]))


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


def overdue_now(*, data: AuditData) -> list[Row]:
    """Every open hop past its due instant now (clock not stopped), most days late first."""
    hops, cases = data.hops, data.cases
    rows = []
    for i in np.flatnonzero(_overdue_mask(data)):
        case = int(hops.case[i])
        rows.append(
            {
                "reference": cases.reference[case],
                **_step_row(data, int(i)),
                "hop": int(hops.hop[i]),
                "due_at": datetime.fromtimestamp(int(hops.due_at[i]), UTC).isoformat(),
                "days_late": int(hops.days_late[i]),
            }
        )
    return sorted(rows, key=lambda r: (-r["days_late"], r["reference"]))


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
    prev, nxt = _successors(data)
    hops = data.hops
    bd = np.zeros(prev.size, dtype=np.int64)
    cd = np.zeros(prev.size, dtype=np.int64)
    position = np.full(len(hops), -1, dtype=np.int64)
    position[nxt] = np.arange(nxt.size)
    for calendar, rows in hop_calendars(data):
        mine = rows[position[rows] >= 0]
        at = position[mine]
        bd[at] = calendar.business_days_between_many(hops.closed_at[prev[at]], hops.opened_at[mine])
        cd[at] = calendar.calendar_days_between_many(hops.closed_at[prev[at]], hops.opened_at[mine])
    return prev, nxt, bd, cd


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
    requester = hops.target.equals("requester")[prev]
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


def rework_by_authority(*, data: AuditData) -> list[Row]:
    """How often each authority sends a request back or on to another, and the work redone."""
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
    return sorted(rows, key=lambda r: (-(r["rework_rate"] or 0), r["country"], r["authority"]))


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


def late_entries(*, data: AuditData) -> list[Row]:
    """Per authority: decisions entered long after they happened, a sign of a paper register."""
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
    return sorted(rows, key=lambda r: (-(r["late_share"] or 0), -r["late_entries"]))


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
                    "delay_business_days": round(float(per[g]), 2),
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
    group, _ = combine(cases.country.codes, cases.route.codes)
    latest = {}
    for i in np.argsort(cases.registered_at, kind="stable"):
        latest[int(group[i])] = int(i)
    rows: list[Row] = []
    for i in sorted(latest.values(), key=lambda i: (cases.country.label(i), cases.route.label(i))):
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
    }

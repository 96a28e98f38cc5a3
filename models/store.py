"""The engine's unit of work: cases loaded into memory, changed by commands, written in one go.

A command loads its case (one SELECT joining the open hop), changes it in memory and appends
events; `flush` then writes every new event, hop and case change with one statement per table
(executemany). The case row is updated with a compare-and-set on its event sequence, and the
events' unique (case, seq) key backs it, so two writers can never both extend one chain.
Inside `batch()` several commands share one flush: that is how the simulator and bulk imports
reach thousands of transitions per second while every event is still hash-chained.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, ClassVar

from sqlalchemy import JSON, Date, Select, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import deliveries
from models.config import ROUTING_FIELDS
from models.domain import RequestMaker
from models.errors import Conflict, NotFound
from models.integrity import check_head, check_missing
from models.ledger import (
    GENESIS,
    CaseKey,
    Document,
    Event,
    ReferenceCounter,
    Request,
    RoutingVersion,
    Step,
    TamperedCase,
    UTCDateTime,
    canonical,
    dumps,
    event_hash,
    insert_if_absent,
)
from models.notices import Notice
from models.prescription import EventKind, PrescriptionEvent
from models.privacy import CaseKeys

_STORE_KEY = "rogatory.store"
QUIET_KEY = "rogatory.quiet"
"""Session flag: record no notices (the simulator replays years of hops nobody is to be told)."""


@dataclass
class Hop:
    """One hop of a case, as the `steps` projection holds it."""

    request_id: int
    hop: int
    route_step: str
    step_index: int
    holder: str
    country: str
    sla: str
    opened_at: datetime
    due_at: datetime
    rungs: list[dict[str, Any]]
    next_rung_at: datetime | None
    stopped_since: datetime | None = None
    stopped_bd: int = 0
    closed_at: datetime | None = None
    outcome: str | None = None
    target: str | None = None
    ground: str | None = None
    cause: str | None = None
    assigned_to: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    snoozed_until: datetime | None = None


_HOP_FIELDS = [f.name for f in fields(Hop)]
_HOP_CHANGING = [
    "due_at",
    "rungs",
    "next_rung_at",
    "stopped_since",
    "stopped_bd",
    "closed_at",
    "outcome",
    "target",
    "ground",
    "cause",
    "step_index",
    "assigned_to",
    "acknowledged_at",
    "acknowledged_by",
    "snoozed_until",
]


@dataclass
class Case:
    """One case as the `requests` projection holds it, plus its open hop."""

    id: int
    reference: str
    country: str
    route_id: str
    routing_version: str
    direction: str
    kind: str
    legal_basis: str
    offence_category: str
    counterpart: str
    urgent: bool
    coercive: bool
    offence_date: date
    discovery_date: date | None
    status: str
    outcome: str | None
    closed_at: datetime | None
    prescription_date: date | None
    prescription_running: bool
    current_hop: int | None
    hop_count: int
    last_seq: int
    head_hash: str
    deadlines: list[dict[str, Any]] | None = None
    """The legal deadlines (models.legal); None on routes without any."""
    deadline_next_at: datetime | None = None
    legal_due_at: datetime | None = None
    base_seq: int = 0
    """The sequence as loaded: the compare-and-set writes only if nobody moved it since."""
    open: Hop | None = None
    prescription_events: list[PrescriptionEvent] | None = None

    def routing_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ROUTING_FIELDS}


_CASE_CHANGING = [
    "routing_version",
    "status",
    "outcome",
    "closed_at",
    "prescription_date",
    "prescription_running",
    "current_hop",
    "hop_count",
    "last_seq",
    "head_hash",
    "deadlines",
    "deadline_next_at",
    "legal_due_at",
]
_CASE_LOADED = [
    f.name for f in fields(Case) if f.name not in ("base_seq", "open", "prescription_events")
]


@lru_cache(maxsize=1)
def _load_case_statement() -> Select[Any]:
    """The case row joined with its open hop; built once (constructing it costs more than
    running it)."""
    return (
        select(
            *[getattr(Request, n) for n in _CASE_LOADED],
            *[getattr(Step, n) for n in _HOP_FIELDS],
            *_HEAD_CHECKED,
        )
        .outerjoin(Step, (Step.request_id == Request.id) & (Step.hop == Request.current_hop))
        .outerjoin(Event, (Event.request_id == Request.id) & (Event.seq == Request.last_seq))
        .outerjoin(TamperedCase, TamperedCase.reference == Request.reference)
        .where(Request.reference == bindparam("reference"))
    )


# What a command's load checks cheaply (models.integrity.check_head): a verification's mark,
# and the last event, hashed again against the stored head.
_HEAD_CHECKED = (
    TamperedCase.reason,
    Event.seq,
    Event.kind,
    Event.actor,
    Event.payload,
    Event.occurred_at,
    Event.recorded_at,
    Event.prev_hash,
    Event.hash,
)


@lru_cache(maxsize=1)
def _keyed_statement() -> Select[str, int, str]:
    """The event that used an idempotency key; built once (an import asks it per command)."""
    return (
        select(Request.reference, Event.seq, Event.payload)
        .join(Request, Event.request_id == Request.id)
        .where(Event.idempotency_key == bindparam("key"))
    )


@dataclass
class Appended:
    case: Case
    seq: int
    command: str | None


@dataclass
class CaseStore:
    """Cases in memory for one transaction, and the writes they owe the ledger."""

    session: Session
    cases: dict[str, Case] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    keyed: dict[str, Appended] = field(default_factory=dict)
    new_hops: dict[tuple[int, int], Hop] = field(default_factory=dict)
    changed_hops: dict[tuple[int, int], Hop] = field(default_factory=dict)
    changed_cases: dict[int, Case] = field(default_factory=dict)
    counters: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    pinned: set[str] = field(default_factory=set)
    new_cases: dict[int, tuple[dict[str, Any], Case]] = field(default_factory=dict)
    last_case_id: int | None = None
    batching: int = 0
    notices: list[tuple[Notice, datetime]] = field(default_factory=list)
    """Notices owed by this transaction's commands (a hop opened), recorded with its writes."""
    documents: list[dict[str, Any]] = field(default_factory=list)
    """Rows of the `documents` projection owed by this transaction's commands."""
    marks: dict[str, Any] | None = None
    """Keys added to the payload of every event appended while set: an import marks each event
    with the file and the register row it comes from (`models.importer`)."""
    keys: CaseKeys = field(init=False)
    """The case keys that seal personal fields as events are appended (models.privacy)."""

    def __post_init__(self) -> None:
        self.keys = CaseKeys(self.session)

    @classmethod
    def of(cls, session: Session) -> CaseStore:
        store = session.info.get(_STORE_KEY)
        if store is None:
            store = cls(session)
            session.info[_STORE_KEY] = store
        return store

    @property
    def announces(self) -> bool:
        return not self.session.info.get(QUIET_KEY, False)

    # -- reading -------------------------------------------------------------------------------

    def case(self, reference: str) -> Case:
        found = self.cases.get(reference)
        if found is not None:
            return found
        row = self.session.execute(_load_case_statement(), {"reference": reference}).first()
        if row is None:
            check_missing(self.session, reference)
            raise NotFound(
                f"no case {reference!r}: check the reference (e.g. SV-2026-000123)",
                reference=reference,
            )
        values = list(row)
        case = Case(**dict(zip(_CASE_LOADED, values[: len(_CASE_LOADED)], strict=True)))
        case.base_seq = case.last_seq
        hops_end = len(_CASE_LOADED) + len(_HOP_FIELDS)
        check_head(
            reference=reference,
            last_seq=case.last_seq,
            head_hash=case.head_hash,
            marked=values[hops_end],
            last_event=values[hops_end + 1 :],
        )
        hop_values = dict(zip(_HOP_FIELDS, values[len(_CASE_LOADED) : hops_end], strict=True))
        if hop_values["hop"] is not None:
            case.open = Hop(**hop_values)
        self.cases[reference] = case
        return case

    def hop(self, case: Case, number: int) -> Hop:
        """Hop `number` of a case as this transaction left it, else as the ledger holds it.

        Inside a batch a hop may have been opened or closed without being written yet, so the
        in-memory copy comes first.
        """
        key = (case.id, number)
        found = self.new_hops.get(key) or self.changed_hops.get(key)
        if found is not None:
            return found
        if case.open is not None and case.open.hop == number:
            return case.open
        row = self.session.execute(
            select(*[getattr(Step, n) for n in _HOP_FIELDS]).where(
                Step.request_id == case.id, Step.hop == number
            )
        ).one()
        return Hop(**dict(zip(_HOP_FIELDS, row, strict=True)))

    def keyed_result(self, key: str) -> Appended | None:
        """The earlier command that used idempotency `key`, if any."""
        if key in self.keyed:
            return self.keyed[key]
        row = self.session.connection().execute(_keyed_statement(), {"key": key}).first()
        if row is None:
            return None
        return Appended(self.case(row[0]), row[1], json.loads(row[2]).get("command"))

    def prescription_events(self, case: Case) -> list[PrescriptionEvent]:
        if case.prescription_events is None:
            rows = self.session.execute(
                select(Event.payload)
                .where(Event.request_id == case.id, Event.kind == "prescription_event")
                .order_by(Event.seq)
            ).scalars()
            case.prescription_events = [_prescription_event(json.loads(p)) for p in rows]
            case.prescription_events += [
                _prescription_event(json.loads(e["payload"]))
                for e in self.events
                if e["request_id"] == case.id and e["kind"] == "prescription_event"
            ]
        return case.prescription_events

    def attached(self, case: Case, sha256: str) -> tuple[int, str] | None:
        """The event sequence and file name under which `sha256` is attached to the case."""
        for row in self.documents:
            if row["request_id"] == case.id and row["sha256"] == sha256:
                return row["seq"], self.keys.open_value(case.reference, "filename", row["filename"])
        found = self.session.execute(
            select(Document.seq, Document.filename).where(
                Document.request_id == case.id, Document.sha256 == sha256
            )
        ).first()
        if found is None:
            return None
        return found.seq, self.keys.open_value(case.reference, "filename", found.filename)

    # -- writing -------------------------------------------------------------------------------

    def add_case(self, values: dict[str, Any], intake: dict[str, Any]) -> Case:
        """A new case, kept in memory; its row is inserted with the next flush."""
        row = {
            "intake": intake,
            "flow_run_id": None,
            "last_seq": 0,
            "head_hash": GENESIS,
            "hop_count": 0,
            "current_hop": None,
            "outcome": None,
            "closed_at": None,
            "deadlines": None,
            "deadline_next_at": None,
            "legal_due_at": None,
            **values,
            "id": self._next_case_id(),
        }
        case = Case(**{n: row[n] for n in _CASE_LOADED})
        case.prescription_events = []
        self.cases[case.reference] = case
        self.new_cases[case.id] = (row, case)
        self.keys.fresh(case.reference)
        return case

    def _next_case_id(self) -> int:
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            return int(
                connection.exec_driver_sql(
                    "SELECT nextval(pg_get_serial_sequence('requests', 'id'))"
                ).scalar_one()
            )
        # SQLite: this transaction holds the write lock (BEGIN IMMEDIATE), so no one else
        # can take the same id before it commits.
        if self.last_case_id is None:
            self.last_case_id = int(
                connection.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM requests").scalar_one()
            )
        self.last_case_id += 1
        return self.last_case_id

    def append(
        self,
        case: Case,
        *,
        kind: str,
        actor: str,
        payload: dict[str, Any],
        occurred_at: datetime,
        recorded_at: datetime,
        idempotency_key: str | None = None,
    ) -> int:
        """Append one event to the case's chain, its personal fields sealed; returns its
        sequence number."""
        seq = case.last_seq + 1
        if self.marks is not None:
            payload = {**payload, **self.marks}
        payload = self.keys.seal(case.reference, kind, payload, at=recorded_at)
        if kind == "registered" and case.id in self.new_cases:
            # The projection holds the intake as the event does: sealed, the same ciphertext.
            self.new_cases[case.id][0]["intake"] = payload["intake"]
        body = canonical(payload)
        digest = event_hash(
            prev_hash=case.head_hash,
            reference=case.reference,
            seq=seq,
            kind=kind,
            actor=actor,
            payload=body,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
        )
        self.events.append(
            {
                "request_id": case.id,
                "seq": seq,
                "kind": kind,
                "actor": actor,
                "payload": body,
                "occurred_at": occurred_at,
                "recorded_at": recorded_at,
                "idempotency_key": idempotency_key,
                "prev_hash": case.head_hash,
                "hash": digest,
            }
        )
        if idempotency_key is not None:
            self.keyed[idempotency_key] = Appended(case, seq, payload.get("command"))
        if kind == "prescription_event" and case.prescription_events is not None:
            case.prescription_events.append(_prescription_event(payload))
        case.last_seq = seq
        case.head_hash = digest
        self.changed_cases[case.id] = case
        return seq

    def open_hop(self, case: Case, hop: Hop) -> None:
        self.new_hops[(case.id, hop.hop)] = hop
        case.open = hop
        case.current_hop = hop.hop
        case.hop_count = hop.hop
        case.status = "open"

    def attach_document(self, values: dict[str, Any]) -> None:
        """A `documents` row, written with the event that attaches it (its file name sealed as
        that event's is)."""
        for event in reversed(self.events):
            if event["request_id"] == values["request_id"] and event["seq"] == values["seq"]:
                values = {**values, "filename": json.loads(event["payload"])["filename"]}
                break
        self.documents.append(values)

    def touch(self, hop: Hop) -> None:
        key = (hop.request_id, hop.hop)
        if key not in self.new_hops:
            self.changed_hops[key] = hop

    def next_number(self, country: str, year: int) -> int:
        """The next reference number; counted in this transaction, so there are no gaps.

        The counter row is locked until the transaction ends (SQLite: the write lock every
        command takes; PostgreSQL: SELECT ... FOR UPDATE), so concurrent registrations queue
        for their number instead of two taking the same one and one failing.
        """
        slot = self.counters.get((country, year))
        if slot is None:
            connection = self.session.connection()
            key = {"country": country, "year": year}
            insert_if_absent(connection, ReferenceCounter, {**key, "last": 0})
            last = connection.execute(
                select(ReferenceCounter.last)
                .where(ReferenceCounter.country == country, ReferenceCounter.year == year)
                .with_for_update()
            ).scalar_one()
            slot = self.counters[(country, year)] = [last, last]
        slot[1] += 1
        return slot[1]

    def pin(self, values: dict[str, Any]) -> None:
        """Keep a routing version's snapshot, once; a concurrent pin of the same one is fine."""
        version = values["version"]
        if version in self.pinned:
            return
        insert_if_absent(self.session.connection(), RoutingVersion, values)
        self.pinned.add(version)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Let several commands share one flush (the caller's transaction still commits)."""
        self.batching += 1
        try:
            yield
        finally:
            self.batching -= 1
        if self.batching == 0:
            self.flush()

    def command_done(self) -> None:
        if self.batching == 0:
            self.flush()

    def release(self, references: Iterable[str]) -> None:
        """Forget cases this session is done with, so a long run keeps its memory flat.

        Only after a flush: a case with writes still owed stays (it would be read back stale).
        """
        for reference in references:
            case = self.cases.get(reference)
            if case is None:
                continue
            if case.id in self.changed_cases or case.id in self.new_cases:
                raise Conflict(f"{reference} has writes not flushed yet: flush before releasing it")
            del self.cases[reference]

    def discard(self) -> None:
        """Forget everything in memory (after a rollback)."""
        self.session.info.pop(_STORE_KEY, None)

    def flush(self) -> None:
        try:
            self._write()
        except IntegrityError as exc:
            self.discard()
            raise Conflict(
                f"a concurrent command changed the same case first ({exc.orig})"
            ) from None
        except Conflict:
            self.discard()
            raise

    def _write(self) -> None:
        connection = self.session.connection()
        bulk = _Bulk.for_dialect(connection.dialect.name, connection.dialect.paramstyle)
        if self.new_cases:
            rows = []
            for row, case in self.new_cases.values():
                rows.append(_NEW_CASE_ROW({**row, **{n: getattr(case, n) for n in _CASE_CHANGING}}))
                self.changed_cases.pop(case.id, None)
                case.base_seq = case.last_seq
            bulk.run(connection, "insert_cases", rows)
        if self.new_hops:
            bulk.run(connection, "insert_steps", map(_HOP_ROW, self.new_hops.values()))
        if self.changed_hops:
            bulk.run(connection, "update_steps", map(_HOP_UPDATE, self.changed_hops.values()))
        if self.keys.new:
            bulk.run(connection, "insert_case_keys", map(_CASE_KEY_ROW, self.keys.new))
            self.keys.new.clear()
        if self.events:
            bulk.run(connection, "insert_events", map(_EVENT_ROW, self.events))
        if self.documents:
            connection.execute(insert(Document), self.documents)
        if self.changed_cases:
            count = bulk.run(
                connection, "update_cases", map(_CASE_UPDATE, self.changed_cases.values())
            )
            if 0 <= count < len(self.changed_cases):
                raise Conflict("a case was changed by another command meanwhile: read it, retry")
            for case in self.changed_cases.values():
                case.base_seq = case.last_seq
        execute = connection.execute
        for (country, year), slot in self.counters.items():
            if slot[1] != slot[0]:
                moved = execute(
                    update(ReferenceCounter)
                    .where(
                        ReferenceCounter.country == country,
                        ReferenceCounter.year == year,
                        ReferenceCounter.last == slot[0],
                    )
                    .values(last=slot[1])
                )
                if moved.rowcount != 1:
                    raise Conflict("another registration took the same reference number: retry")
                slot[0] = slot[1]
        for now in sorted({at for _, at in self.notices}):
            deliveries.record(connection, [n for n, at in self.notices if at == now], now=now)
        self.notices.clear()
        self.documents.clear()
        self.events.clear()
        self.new_cases.clear()
        self.new_hops.clear()
        self.changed_hops.clear()
        self.changed_cases.clear()
        self.keyed.clear()


class _Bulk:
    """Executemany statements in the driver's own dialect, with values converted once.

    The engine's hot path writes thousands of rows a second; SQLAlchemy's per-row type
    processing costs more than SQLite itself, so these few statements are compiled by hand
    for the two supported drivers (sqlite3 and psycopg) from the table definitions. Each
    statement takes rows as tuples in its column order and converts only the columns whose
    type needs it (instants, dates, JSON).
    """

    _cache: ClassVar[dict[str, _Bulk]] = {}

    def __init__(self, dialect: str, paramstyle: str) -> None:
        self.dialect = dialect
        self.mark = "?" if paramstyle == "qmark" else "%s"
        self.statements: dict[str, tuple[str, list[tuple[int, Callable[[Any], Any]]]]] = {}
        self._insert("insert_cases", Request.__table__, _REQUEST_COLUMNS)
        self._insert("insert_steps", Step.__table__, _HOP_FIELDS)
        self._insert("insert_events", Event.__table__, _EVENT_FIELDS)
        self._insert("insert_case_keys", CaseKey.__table__, _CASE_KEY_FIELDS)
        self._update("update_steps", Step.__table__, _HOP_CHANGING, ["request_id", "hop"])
        self._update("update_cases", Request.__table__, _CASE_CHANGING, ["id", "last_seq"])

    @classmethod
    def for_dialect(cls, dialect: str, paramstyle: str) -> _Bulk:
        bulk = cls._cache.get(dialect)
        if bulk is None:
            bulk = cls._cache[dialect] = cls(dialect, paramstyle)
        return bulk

    def _converter(self, column: Any) -> Callable[[Any], Any] | None:
        kind = column.type
        sqlite = self.dialect == "sqlite"
        if isinstance(kind, UTCDateTime):
            if sqlite:
                return _sqlite_instant
            return lambda v: None if v is None else v.astimezone(UTC).replace(tzinfo=None)
        if isinstance(kind, JSON):
            if sqlite:
                return lambda v: None if v is None else dumps(v)
            from psycopg.types.json import Json

            return lambda v: None if v is None else Json(v)
        if isinstance(kind, Date) and sqlite:
            return lambda v: None if v is None else v.isoformat()
        return None

    def _conversions(self, table: Any, columns: list[str]) -> list[tuple[int, Any]]:
        found = ((i, self._converter(table.c[c])) for i, c in enumerate(columns))
        return [(i, f) for i, f in found if f is not None]

    def _insert(self, name: str, table: Any, columns: list[str]) -> None:
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join([self.mark] * len(columns))})"
        )
        self.statements[name] = (sql, self._conversions(table, columns))

    def _update(self, name: str, table: Any, columns: list[str], where: list[str]) -> None:
        sets = ", ".join(f"{c} = {self.mark}" for c in columns)
        cond = " AND ".join(f"{c} = {self.mark}" for c in where)
        sql = f"UPDATE {table.name} SET {sets} WHERE {cond}"
        self.statements[name] = (sql, self._conversions(table, [*columns, *where]))

    def run(self, connection: Any, name: str, rows: Iterable[tuple[Any, ...]]) -> int:
        """Execute statement `name` for every row; the number of rows the driver reports."""
        sql, conversions = self.statements[name]
        params = []
        for row in rows:
            values = list(row)
            for i, convert in conversions:
                values[i] = convert(values[i])
            params.append(tuple(values))
        result = connection.exec_driver_sql(sql, params)
        return int(result.rowcount)


_INSTANTS: dict[datetime, str] = {}


def _sqlite_instant(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DateTime stores: "%Y-%m-%d %H:%M:%S.%f", in UTC.

    A command stamps its events, the hop it closes and the hop it opens with the same instant,
    so each instant is formatted once and then looked up (equal instants in any zone give one
    text, since the text is in UTC).
    """
    if value is None:
        return None
    text = _INSTANTS.get(value)
    if text is None:
        if len(_INSTANTS) >= 65_536:
            _INSTANTS.clear()
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        _INSTANTS[value] = text
    return text


_EVENT_FIELDS = [
    "request_id",
    "seq",
    "kind",
    "actor",
    "payload",
    "occurred_at",
    "recorded_at",
    "idempotency_key",
    "prev_hash",
    "hash",
]
_CASE_KEY_FIELDS = ["reference", "wrapped", "created_at"]
_CASE_KEY_ROW = itemgetter(*_CASE_KEY_FIELDS)
_REQUEST_COLUMNS = [c.name for c in Request.__table__.c]
_NEW_CASE_ROW = itemgetter(*_REQUEST_COLUMNS)
_HOP_ROW = attrgetter(*_HOP_FIELDS)
# The update statements' parameters: the changing columns, then the keys of the WHERE clause.
_HOP_UPDATE = attrgetter(*_HOP_CHANGING, "request_id", "hop")
_CASE_UPDATE = attrgetter(*_CASE_CHANGING, "id", "base_seq")
_EVENT_ROW = itemgetter(*_EVENT_FIELDS)


def _prescription_event(payload: dict[str, Any]) -> PrescriptionEvent:
    # `applied_on` and `by` came later: older events have neither (see PrescriptionEvent).
    applied_on, by = payload.get("applied_on"), payload.get("by")
    return PrescriptionEvent(
        EventKind(payload["event"]),
        date.fromisoformat(payload["on"]),
        payload.get("request"),
        applied_on=None if applied_on is None else date.fromisoformat(applied_on),
        by=None if by is None else RequestMaker(by),
    )

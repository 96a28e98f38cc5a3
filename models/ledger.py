"""The ledger: an append-only, hash-chained event log per case, and the projections kept beside it.

`events` is the truth. `requests` and `steps` are projections updated in the same transaction as
the event that changes them, so they can always be rebuilt and checked. Each event's hash covers
the previous event's hash, so an edited or deleted event breaks the chain (`verify_chain`).
SQLite (a file under ./var) by default; PostgreSQL when ROGATORY_DATABASE_URL says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

GENESIS = "0" * 64
WRITE_OPTION = "rogatory_write"
"""Execution option marking a write transaction (SQLite: BEGIN IMMEDIATE)."""


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive, in UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: use aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class RoutingVersion(Base):
    """A country file as it was when a case pinned it: content hash and YAML snapshot."""

    __tablename__ = "routing_versions"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    file: Mapped[str] = mapped_column(String(255))
    yaml_text: Mapped[str] = mapped_column(Text)
    presets: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The preset deadlines the file referred to, as they were."""
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReferenceCounter(Base):
    """The last reference number per country and year, bumped inside the registering transaction."""

    __tablename__ = "reference_counters"

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Request(Base):
    """Projection: one case, as its events leave it."""

    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    route_id: Mapped[str] = mapped_column(String(64))
    routing_version: Mapped[str] = mapped_column(ForeignKey("routing_versions.version"))
    direction: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    legal_basis: Mapped[str] = mapped_column(String(32))
    offence_category: Mapped[str] = mapped_column(String(32))
    counterpart: Mapped[str] = mapped_column(String(2))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    coercive: Mapped[bool] = mapped_column(Boolean, default=False)
    confidential: Mapped[bool] = mapped_column(Boolean, default=False)
    """Seen only by the authorities on its route and its country's coordinators."""
    offence_date: Mapped[date] = mapped_column(Date)
    discovery_date: Mapped[date | None] = mapped_column(Date)
    intake: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="open")
    """open: a hop is running; with_requester: returned, waiting on the requester; closed."""
    outcome: Mapped[str | None] = mapped_column(String(32))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    prescription_date: Mapped[date | None] = mapped_column(Date)
    prescription_running: Mapped[bool] = mapped_column(Boolean, default=False)
    current_hop: Mapped[int | None] = mapped_column(Integer)
    """The hop now open (steps.hop), None while with the requester or closed."""
    hop_count: Mapped[int] = mapped_column(Integer, default=0)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    deadlines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    """The case's legal deadlines (models.legal): anchor, due, met, moves, ladder."""
    deadline_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When a legal deadline's rung next falls due (the sweep's index)."""
    legal_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """The earliest due instant of a legal deadline still running (overdue and inbox)."""

    __table_args__ = (
        Index("ix_requests_country_status", "country", "status"),
        Index("ix_requests_prescription_date", "prescription_date"),
        Index("ix_requests_deadline_next_at", "deadline_next_at"),
        Index("ix_requests_legal_due_at", "legal_due_at"),
    )


class Step(Base):
    """Projection: one hop, one authority holding the request for one occurrence."""

    __tablename__ = "steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    hop: Mapped[int] = mapped_column(Integer)
    """1 for the case's first hop, 2 for the next, and so on (returns open new hops)."""
    route_step: Mapped[str] = mapped_column(String(64))
    step_index: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(2))
    sla: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rungs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """Each rung of the ladder: index, kind, notify, first instant, repeat."""
    next_rung_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """The earliest undelivered rung; NULL once all fired or while the clock is stopped."""
    stopped_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_bd: Mapped[int] = mapped_column(Integer, default=0)
    """Business days the clock has been stopped so far, already added to due_at."""
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(64))
    ground: Mapped[str | None] = mapped_column(String(48))
    cause: Mapped[str | None] = mapped_column(String(48))
    assigned_to: Mapped[str | None] = mapped_column(String(64))
    """The officer of the holding authority working the hop (an account name); NULL: nobody."""
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When a coordinator acknowledged the hop's escalation: the rungs fired so far repeat no
    more (a later rung still fires)."""
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """No rung fires before this instant (a coordinator's snooze, with a reason on the record)."""
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the sweep first recorded a rung of the hop's ladder (NULL: none fired yet): the
    escalation board reads only the open hops that have one, through an index."""

    __table_args__ = (
        UniqueConstraint("request_id", "hop"),
        Index("ix_steps_next_rung_at", "next_rung_at"),
        Index("ix_steps_holder_open", "country", "holder", "closed_at"),
        Index("ix_steps_open_fired", "closed_at", "fired_at"),
    )


class Document(Base):
    """Projection: a document attached to a case, stored by content hash outside the database.

    Its `document_attached` event carries the same hash, so the case's chain covers it."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    """request, translation, reply or other."""
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    """The sequence of the event that attached it."""
    actor: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("request_id", "sha256"),)


class RoutingPublication(Base):
    """A country file published as the version in force: who, when, and what it replaced."""

    __tablename__ = "routing_publications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    version: Mapped[str] = mapped_column(ForeignKey("routing_versions.version"))
    previous_version: Mapped[str | None] = mapped_column(String(32))
    published_by: Mapped[str] = mapped_column(String(128))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")


class Event(Base):
    """One fact about a case. Never updated, never deleted."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(48))
    actor: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    """Canonical JSON, exactly as hashed."""
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("request_id", "seq"),
        Index("ix_events_kind_recorded", "kind", "recorded_at"),
    )


class Delivery(Base):
    """One notification owed: unique per key, so a rung fires once per hop occurrence.

    It goes to every apprise service its tags resolve to, each once (`recipients` keeps what
    each was sent and the error apprise gave), and is retried only where it failed.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    """`step:<id>:rung:<n>:<repeat>`, `hop:<ref>:<n>:opened`, `case:<ref>:slack:<days>`, ..."""
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("steps.id"))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16), default="info")
    """info, warning or failure: the apprise notification type."""
    tags: Mapped[list[str]] = mapped_column(JSON)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending (owed, maybe retrying), sending (claimed by a sender), sent, superseded."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Per apprise service (its URL, secrets masked): tag, sent_at, attempts, last error."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_deliveries_status_next", "status", "next_attempt_at"),)


class CaseProblem(Base):
    """A case that could not be processed (sweep, reconciliation, report): recorded, told once.

    One bad case never stops the others: the sweep, reconciliation and reports record the
    problem here, tell the admin and the country's coordinator once, and carry on.
    """

    __tablename__ = "case_problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    reference: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str] = mapped_column(String(32))
    """Where it failed: sweep, prescription, reconcile, report, flow."""
    digest: Mapped[str] = mapped_column(String(32))
    """Of the stage and message, so the same problem is recorded (and told) once."""
    message: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("reference", "digest"),)


class SweepRun(Base):
    """One clock sweep, as it ended: the watcher's heartbeat (`rogatory health` reads it).

    Kept for a bounded time: each sweep prunes the rows older than the retention it is given.
    """

    __tablename__ = "sweep_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)
    rungs_recorded: Mapped[int] = mapped_column(Integer, default=0)
    alerts_recorded: Mapped[int] = mapped_column(Integer, default=0)
    """Prescription alerts recorded."""
    failures: Mapped[int] = mapped_column(Integer, default=0)
    """Cases that could not be swept (recorded as problems; the others went through)."""
    ran_by: Mapped[str] = mapped_column(String(128))
    """`flow-run:<id>` for the `watch_clock` flow, `rogatory watch` for the command."""
    error: Mapped[str | None] = mapped_column(Text)
    """Why a failed sweep failed."""

    __table_args__ = (Index("ix_sweep_runs_ok_finished", "ok", "finished_at"),)


class Checkpoint(Base):
    """The head of every case folded into a Merkle root, signed, and written to a witness
    outside the ledger (models.checkpoints): what `audit verify` holds the ledger to."""

    __tablename__ = "checkpoints"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cases: Mapped[int] = mapped_column(Integer)
    root: Mapped[str] = mapped_column(String(64))
    statement: Mapped[str] = mapped_column(Text)
    """The canonical JSON that was signed: number, instant, cases, root, previous, key."""
    signature: Mapped[str | None] = mapped_column(String(128))
    """Ed25519, hex; NULL when no signing key was configured."""
    heads: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The heads sealed since the checkpoint before (reference -> [seq, hash]): the witness
    line's, kept so a witness that missed a line is caught up from here."""
    cursor: Mapped[str | None] = mapped_column(String(32))
    """The last reference of the rolling re-verification (each sweep re-verifies a slice of
    all cases, so an edit that moved no head is found within a day or so)."""


class CaseSeal(Base):
    """A case's head as the latest checkpoint sealed it: where the next sweep's verification of
    that case starts. No foreign key: the seal outlives a deleted case, which is how its
    deletion is named."""

    __tablename__ = "case_seals"

    reference: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    checkpoint: Mapped[int] = mapped_column(Integer)


class TamperedCase(Base):
    """A case whose records did not verify: every command on it is refused (LedgerTampered)
    until a verification finds it intact again (e.g. after a restore)."""

    __tablename__ = "tampered_cases"

    reference: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[int | None] = mapped_column(Integer)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime)
    found_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)


class CaseKey(Base):
    """A case's data key, wrapped by the master key (models.privacy). Erasing the case clears
    `wrapped` and keeps the row as its tombstone: who erased it, when and why."""

    __tablename__ = "case_keys"

    reference: Mapped[str] = mapped_column(String(32), primary_key=True)
    wrapped: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erased_by: Mapped[str | None] = mapped_column(String(128))


def insert_if_absent(connection: Connection, table: type[Base], row: dict[str, Any]) -> bool:
    """Insert `row` unless a row with the same primary or unique key exists; True if inserted.

    Two writers inserting the same row at once (two clerks pinning the same routing version)
    both succeed: the database keeps one and neither transaction fails.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    if connection.dialect.name == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(table).on_conflict_do_nothing()
    # RETURNING gives a row only when one was inserted; row counts are not reliable here
    # (psycopg reports none for an INSERT that SQLAlchemy gives an implicit RETURNING).
    key = inspect(table).primary_key[0]
    return connection.execute(statement.returning(key), row).first() is not None


# -- engines and sessions ---------------------------------------------------------------------


def database_url() -> str:
    """`$ROGATORY_DATABASE_URL`, or a SQLite file under `./var` (created on demand, 0600 in a
    0700 folder: SQLite gives its -wal and -shm files the same mode)."""
    url = os.environ.get("ROGATORY_DATABASE_URL")
    if url:
        return url
    from models.var import private_file, var_dir

    return f"sqlite:///{private_file(var_dir() / 'ledger.db')}"


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            # FULL: a commit the clerk saw confirmed survives a power cut (NORMAL may lose the
            # last transactions in WAL mode). WAL itself is set once, by `upgrade`, because
            # switching the journal mode needs the database to itself.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A write transaction takes the write lock up front: a command reads, checks, then
            # writes, and two writers must serialise instead of failing halfway (pysqlite's
            # deferred BEGIN). Readers (queries, reports) never block the writers.
            writes = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

        return engine
    # Durable commits whatever the server's default says (a confirmed decision is on disk).
    return create_engine(
        url, pool_pre_ping=True, connect_args={"options": "-c synchronous_commit=on"}
    )


def create_schema(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (the one explicit upgrade step)."""
    from models.migrations import upgrade

    upgrade(engine)


class Ledger:
    """The database of cases: an engine, and transactions that commit or leave no trace.

    Opening a ledger never changes its schema: a missing or older schema is refused with
    `SchemaOutdated`, and `rogatory db upgrade` (or `migrate=True`, for a caller that owns the
    database, such as the demo or a test) brings it up to date, once, under a lock.
    """

    def __init__(self, url: str | None = None, *, migrate: bool = False) -> None:
        self.engine = make_engine(url)
        if migrate:
            create_schema(self.engine)
        else:
            from models.migrations import require_current

            require_current(self.engine)
        self._sessions = sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self._readers = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed at the end, or rolled back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    def session(self) -> Session:
        """A session for reading; writes belong in `transaction()` or `write_session()`."""
        return self._readers()

    def write_session(self) -> Session:
        """A session whose transactions write (the caller commits), e.g. a long batch."""
        return self._sessions()

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()


# -- the hash chain ------------------------------------------------------------------------------


# One encoder for every event: json.dumps with these options would build a new one per call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
)


def _direct(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """`encoder.encode`, minus the C encoder it builds on every call (a third of its time on
    the bulk paths, which encode every event): the same C encoder, built once, with the same
    options, so the same text. Its one difference: a payload that contains itself recurses
    instead of being refused (payloads are trees). Where CPython has no C encoder, `encode`."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None or encoder.indent is not None:
        return encoder.encode
    string = (
        json.encoder.encode_basestring_ascii
        if encoder.ensure_ascii
        else json.encoder.encode_basestring
    )
    chunks = make(
        None,
        encoder.default,
        string,
        None,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return encoder.encode(value)
        return "".join(chunks(value, 0))

    return encode


canonical: Callable[[Any], str] = _direct(_CANONICAL)
"""An event payload's text as the hash chain covers it: sorted keys, no spaces, UTF-8."""
dumps: Callable[[Any], str] = _direct(json.JSONEncoder())
"""`json.dumps(value)` with its default options, for the bulk paths."""


def event_hash(
    *,
    prev_hash: str,
    reference: str,
    seq: int,
    kind: str,
    actor: str,
    payload: str,
    occurred_at: datetime,
    recorded_at: datetime,
) -> str:
    """The hash of one event, covering the hash of the event before it."""
    occurred = occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
    # Most events are recorded as they happen: the same instant needs formatting once.
    recorded = (
        occurred
        if recorded_at == occurred_at
        else recorded_at.astimezone(UTC).isoformat(timespec="microseconds")
    )
    material = "\x1f".join(
        [prev_hash, reference, str(seq), kind, actor, payload, occurred, recorded]
    )
    return hashlib.sha256(material.encode()).hexdigest()

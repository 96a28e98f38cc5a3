"""The life of a notification owed: recorded once, claimed, sent to each recipient once, retried
only where it failed, superseded when it became moot. It is never dropped.

    record ──> pending ──claim──> sending ──finish──> sent
                  ^                           │
                  └── some recipient failed ──┘  (retried later, with backoff)
    pending ──> superseded   (a higher rung of the same hop, or the hop was decided first)

A delivery names apprise tags; the sender resolves them to services and reports back, per
service, whether it went and the error apprise gave. `recipients` keeps that, so a retry goes
only to the services that have not had it, and a service reached by two tags gets it once.
Sending itself (apprise) lives in tasks/notify.py; this module only keeps the books.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, select, update
from sqlalchemy.orm import Session

from models.ledger import Delivery, Ledger, Step
from models.notices import RUNG_KINDS, Notice

STALE_CLAIM = timedelta(minutes=15)
"""A claim older than this was left by a sender that stopped: it is taken back."""
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
    timedelta(hours=24),
)

# Recording runs thousands of rows a sweep: SQLAlchemy's per-value type processing would cost
# more than the database, so rows are written with driver-level executemany, values converted
# once per distinct instant and tag list.
_COLUMNS = [c.name for c in Delivery.__table__.columns if c.name != "id"]
_INSTANTS = {"due_at", "next_attempt_at", "created_at", "sent_at"}
_JSON = {"tags", "recipients"}


def record(
    connection: Connection,
    notices: Sequence[Notice],
    *,
    now: datetime,
    status: str = "pending",
    why: str | None = None,
) -> int:
    """Record notices as deliveries, skipping keys already recorded; how many are new.

    `status="superseded"` records notices that will never go (with `why`), so their keys
    exist: a later sweep cannot record them again.
    """
    if not notices:
        return 0
    bind = Binder.of(connection)
    marks = ", ".join([bind.mark] * len(_COLUMNS))
    sql = (
        f"INSERT INTO deliveries ({', '.join(_COLUMNS)}) VALUES ({marks}) "
        "ON CONFLICT (key) DO NOTHING"
    )
    converted: dict[Any, Any] = {}

    def once(column: str, value: Any) -> Any:
        key = (column in _JSON, json.dumps(value) if column in _JSON else value)
        if key not in converted:
            converted[key] = bind.json(value) if column in _JSON else bind.instant(value)
        return converted[key]

    rows = []
    for n in notices:
        row: dict[str, Any] = {
            "key": n.key,
            "request_id": n.request_id,
            "step_id": n.step_id,
            "kind": n.kind,
            "severity": n.severity,
            "tags": n.tags,
            "title": n.title,
            "body": n.body,
            "status": status,
            "attempts": 0,
            "due_at": n.due_at,
            "next_attempt_at": now,
            "claimed_by": None,
            "last_error": why,
            "recipients": {},
            "created_at": now,
            "sent_at": None,
        }
        rows.append(
            tuple(once(c, row[c]) if c in _INSTANTS or c in _JSON else row[c] for c in _COLUMNS)
        )
    # Both drivers report the rows actually inserted; a skipped duplicate counts none.
    return int(connection.exec_driver_sql(sql, rows).rowcount)


def supersede_lower_rungs(connection: Connection, kept: dict[int, str]) -> int:
    """Rung notices of these hops still pending are moot: `kept[step_id]` (a higher one) goes."""
    if not kept:
        return 0
    bind = Binder.of(connection)
    sql = (
        f"UPDATE deliveries SET status = 'superseded', last_error = {bind.mark} "
        f"WHERE step_id = {bind.mark} AND status = 'pending' AND key <> {bind.mark} "
        f"AND kind IN ({', '.join(repr(k) for k in RUNG_KINDS)})"
    )
    params = [(f"superseded by {key}", step_id, key) for step_id, key in kept.items()]
    return int(connection.exec_driver_sql(sql, params).rowcount)


@dataclass(frozen=True)
class Binder:
    """How one driver wants instants, JSON and placeholders (sqlite3: text; psycopg: objects)."""

    mark: str
    sqlite: bool

    @classmethod
    def of(cls, connection: Connection) -> Binder:
        sqlite = connection.dialect.name == "sqlite"
        return cls("?" if connection.dialect.paramstyle == "qmark" else "%s", sqlite)

    def instant(self, value: datetime | None) -> Any:
        if value is None:
            return None
        utc = value.astimezone(UTC).replace(tzinfo=None)
        # The text SQLAlchemy stores in SQLite, so compare-and-set matches what it wrote.
        return utc.isoformat(" ", "microseconds") if self.sqlite else utc

    def json(self, value: Any) -> Any:
        if self.sqlite:
            return json.dumps(value)
        from psycopg.types.json import Json

        return Json(value)


# -- sending ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owed:
    """A claimed delivery, as the sender needs it."""

    id: int
    key: str
    kind: str
    severity: str
    tags: list[str]
    title: str
    body: str
    attempts: int
    recipients: dict[str, Any]

    def already_sent(self) -> set[str]:
        return {rid for rid, r in self.recipients.items() if r.get("sent_at")}


@dataclass(frozen=True)
class Outcome:
    """What one send attempt to one recipient (an apprise service, or a tag nobody serves) did."""

    tag: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def claim(
    ledger: Ledger, *, now: datetime, worker: str, limit: int, keys: list[str] | None = None
) -> list[Owed]:
    """Claim up to `limit` deliveries owed at `now`, earliest event first.

    Claims left by a sender that stopped are taken back; rung notices of hops decided
    meanwhile are superseded first (nobody needs "overdue" about a decided hop).
    """
    with ledger.transaction() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.status == "sending", Delivery.next_attempt_at < now - STALE_CLAIM)
            .values(status="pending", last_error="claim expired: the sender stopped")
        )
        decided = exists().where(and_(Step.id == Delivery.step_id, Step.closed_at.is_not(None)))
        session.execute(
            update(Delivery)
            .where(Delivery.status == "pending", Delivery.kind.in_(RUNG_KINDS), decided)
            .values(status="superseded", last_error="the hop was decided before this went out")
        )
        owed = select(Delivery.id).where(
            Delivery.status == "pending", Delivery.next_attempt_at <= now
        )
        if keys is not None:
            owed = owed.where(Delivery.key.in_(keys))
        ids = session.scalars(owed.order_by(Delivery.due_at, Delivery.id).limit(limit)).all()
        if not ids:
            return []
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids), Delivery.status == "pending")
            .values(status="sending", claimed_by=worker, next_attempt_at=now)
        )
    with ledger.session() as session:
        rows = session.execute(
            select(
                Delivery.id,
                Delivery.key,
                Delivery.kind,
                Delivery.severity,
                Delivery.tags,
                Delivery.title,
                Delivery.body,
                Delivery.attempts,
                Delivery.recipients,
            )
            .where(
                Delivery.id.in_(ids), Delivery.status == "sending", Delivery.claimed_by == worker
            )
            .order_by(Delivery.due_at, Delivery.id)
        ).all()
    return [
        Owed(
            id=row.id,
            key=row.key,
            kind=row.kind,
            severity=row.severity,
            tags=list(row.tags),
            title=row.title,
            body=row.body,
            attempts=row.attempts,
            recipients=dict(row.recipients or {}),
        )
        for row in rows
    ]


def finish(ledger: Ledger, owed: Owed, outcomes: dict[str, Outcome], *, now: datetime) -> bool:
    """Book one attempt: sent when every recipient now has it, else retried later. True if sent.

    Recipients that had it keep their entry; the others are replaced by this attempt's, so a
    tag that nobody served before and is served now no longer counts as failing.
    """
    recipients = {rid: r for rid, r in owed.recipients.items() if r.get("sent_at")}
    for rid, outcome in outcomes.items():
        before = owed.recipients.get(rid, {})
        recipients[rid] = {
            "tag": outcome.tag,
            "attempts": int(before.get("attempts", 0)) + 1,
            "sent_at": now.isoformat() if outcome.ok else None,
            "error": outcome.error,
        }
    failed = {rid: o.error for rid, o in outcomes.items() if not o.ok}
    if not recipients:
        failed = {"-": "nobody to tell: no apprise tag for this notice (check the contacts)"}
    values: dict[str, Any] = {"attempts": owed.attempts + 1, "recipients": recipients}
    if failed:
        delay = BACKOFF[min(owed.attempts, len(BACKOFF) - 1)]
        values |= {
            "status": "pending",
            "next_attempt_at": now + delay,
            "claimed_by": None,
            "last_error": "; ".join(f"{rid}: {error}" for rid, error in failed.items()),
        }
    else:
        values |= {"status": "sent", "sent_at": now, "last_error": None}
    with ledger.transaction() as session:
        session.execute(update(Delivery).where(Delivery.id == owed.id).values(**values))
    return not failed


def not_sent(session: Session, *, kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Deliveries still owed, earliest event first, with each recipient's last error."""
    query = select(
        Delivery.key,
        Delivery.kind,
        Delivery.tags,
        Delivery.attempts,
        Delivery.next_attempt_at,
        Delivery.last_error,
        Delivery.recipients,
    ).where(Delivery.status.in_(("pending", "sending")))
    if kinds is not None:
        query = query.where(Delivery.kind.in_(list(kinds)))
    return [dict(r._mapping) for r in session.execute(query.order_by(Delivery.due_at))]

"""The clock sweep: which escalation rungs and prescription alerts are due, recorded exactly once.

Finding work is one indexed range query (`steps.next_rung_at <= now`, `requests.prescription_date
<= horizon`), so its cost grows with what is due, not with how many hops are open. Each due
notification becomes a `deliveries` row whose key is unique per hop, rung and occurrence (or per
case and threshold): two sweeps running at once, or one re-run after a crash, insert the same
keys and the database keeps one. Sending is a separate, retried stage (tasks/notify.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Row, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from models.calendar import Calendar, Duration
from models.domain import Role
from models.engine import Routings, rung_due
from models.ledger import Delivery, Request, Step
from models.loader import Routing

DEFAULT_SLACK_THRESHOLDS = (180, 90, 30)


@dataclass(frozen=True)
class Notice:
    """One notification owed: who gets it (apprise tags) and what it says."""

    key: str
    request_id: int
    step_id: int | None
    kind: str
    tags: list[str]
    title: str
    body: str
    due_at: datetime


@dataclass(frozen=True)
class SweepResult:
    due_hops: int
    created: int
    already_recorded: int


# The sweep reads and writes thousands of rows at a time. SQLAlchemy's per-value type
# processing would cost more than the database work, so rows are read raw (`_raw`) and decoded
# here, and written with driver-level executemany, values converted once.
_DELIVERY_COLUMNS = [c.name for c in Delivery.__table__.columns if c.name != "id"]
_DELIVERY_INSTANTS = {"due_at", "next_attempt_at", "created_at", "sent_at"}


def _insert_ignoring_duplicates(connection: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert deliveries; rows whose key exists are skipped. Returns how many were new."""
    if not rows:
        return 0
    bind = _Binder.of(connection)
    marks = ", ".join([bind.mark] * len(_DELIVERY_COLUMNS))
    sql = (
        f"INSERT INTO deliveries ({', '.join(_DELIVERY_COLUMNS)}) VALUES ({marks}) "
        "ON CONFLICT (key) DO NOTHING"
    )
    # Rows share instants (the sweep's `now`) and tag lists: convert each distinct one once.
    instants: dict[datetime | None, Any] = {}
    tags: dict[tuple[str, ...], Any] = {}

    def instant(value: datetime | None) -> Any:
        if value not in instants:
            instants[value] = bind.instant(value)
        return instants[value]

    def tag_list(value: list[str]) -> Any:
        key = tuple(value)
        if key not in tags:
            tags[key] = bind.json(value)
        return tags[key]

    params = [
        tuple(
            instant(row[c])
            if c in _DELIVERY_INSTANTS
            else tag_list(row[c])
            if c == "tags"
            else row[c]
            for c in _DELIVERY_COLUMNS
        )
        for row in rows
    ]
    # Both drivers report the rows actually inserted; a skipped duplicate counts none.
    return int(connection.exec_driver_sql(sql, params).rowcount)


@dataclass(frozen=True)
class _Binder:
    """How one driver wants instants, JSON and placeholders (sqlite3: text; psycopg: objects)."""

    mark: str
    sqlite: bool

    @classmethod
    def of(cls, connection: Connection) -> _Binder:
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


def _raw(column: Any) -> Any:
    """A column read as the driver returns it, without SQLAlchemy's result processing."""
    return type_coerce(column, NullType()).label(column.key)


def _instant(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return cast(datetime, value).replace(tzinfo=UTC)


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _rungs(value: Any) -> list[dict[str, Any]]:
    """The hop's ladder as a fresh list of dicts this sweep may change."""
    if isinstance(value, str):
        return cast(list[dict[str, Any]], json.loads(value))
    return [dict(r) for r in value]


class _DueHop(NamedTuple):
    """A hop with a rung due, as the sweep's query found it."""

    id: int
    request_id: int
    hop: int
    route_step: str
    holder: str
    due_at: datetime
    opened_at: datetime
    reference: str
    prescription_date: date | None


class _Holders:
    """What every notice to one holder under one routing shares, worked out once per sweep."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[Calendar, str]] = {}
        self._tags: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}

    def calendar_and_name(self, routing: Routing, holder: str) -> tuple[Calendar, str]:
        key = (routing.version, holder)
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = (
                routing.calendar(holder),
                routing.config.authorities[holder].name,
            )
        return found

    def tags(self, routing: Routing, roles: Sequence[str], holder: str) -> list[str]:
        key = (routing.version, holder, tuple(roles))
        found = self._tags.get(key)
        if found is None:
            found = self._tags[key] = _tags(routing, roles, holder)
        return list(found)


def find_due_hops(*, connection: Connection, now: datetime, limit: int) -> Sequence[Row[Any]]:
    """The hops with a rung due at `now`, earliest first, with their case: one indexed range."""
    return connection.execute(
        select(
            Step.id,
            Step.request_id,
            Step.hop,
            Step.route_step,
            Step.holder,
            _raw(Step.rungs),
            _raw(Step.due_at),
            _raw(Step.opened_at),
            _raw(Step.next_rung_at),
            Request.reference,
            Request.routing_version,
            _raw(Request.prescription_date),
        )
        .join(Request, Request.id == Step.request_id)
        .where(Step.next_rung_at <= now)
        .order_by(Step.next_rung_at)
        .limit(limit)
    ).all()


def sweep_rungs(
    *, session: Session, routings: Routings, now: datetime, limit: int = 50_000
) -> SweepResult:
    """Record every rung due at `now` as a pending delivery, once, and move each hop's pointer."""
    connection = session.connection()
    rows = find_due_hops(connection=connection, now=now, limit=limit)
    stamp = int(now.timestamp())
    holders = _Holders()
    bind = _Binder.of(connection)
    notices: list[Notice] = []
    moves: list[tuple[Any, ...]] = []
    for row in rows:
        routing = routings.pinned(session, row.routing_version)
        calendar, _ = holders.calendar_and_name(routing, row.holder)
        hop = _DueHop(
            row.id,
            row.request_id,
            row.hop,
            row.route_step,
            row.holder,
            _instant(row.due_at),
            _instant(row.opened_at),
            row.reference,
            _day(row.prescription_date),
        )
        rungs = _rungs(row.rungs)
        pending: list[int] = []
        for rung in rungs:
            # Each occurrence of a repeating rung follows from the one before, so walk them
            # forward instead of recounting from the first (what `rung_due` does).
            at = rung_due(rung, rung["fired"], calendar)
            latest: int | None = None
            while at is not None and at <= stamp:
                latest = at
                rung["fired"] += 1
                at = _following(rung, at, calendar)
            if latest is not None:
                # Repeats missed while nobody swept (a watcher down for a week, a backlog
                # imported late) collapse into one notice, the latest: the others would only
                # say the same thing again. Its key is that occurrence's, so it stays unique.
                occurrence = rung["fired"] - 1
                notices.append(_rung_notice(routing, holders, hop, rung, occurrence, latest, now))
            if at is not None:
                pending.append(at)
        following = datetime.fromtimestamp(min(pending), UTC) if pending else None
        # Compare-and-set on the pointer as read (raw, so it matches exactly): a concurrent
        # sweep that moved the hop first wins, and this one's deliveries are duplicates.
        moves.append((bind.json(rungs), bind.instant(following), row.id, row.next_rung_at))
    created = _insert_ignoring_duplicates(connection, [_row(n, now) for n in notices])
    if moves:
        connection.exec_driver_sql(
            f"UPDATE steps SET rungs = {bind.mark}, next_rung_at = {bind.mark} "
            f"WHERE id = {bind.mark} AND next_rung_at = {bind.mark}",
            moves,
        )
    return SweepResult(len(rows), created, len(notices) - created)


def _row(notice: Notice, now: datetime) -> dict[str, Any]:
    return {
        "key": notice.key,
        "request_id": notice.request_id,
        "step_id": notice.step_id,
        "kind": notice.kind,
        "tags": notice.tags,
        "title": notice.title,
        "body": notice.body,
        "status": "pending",
        "attempts": 0,
        "due_at": notice.due_at,
        "next_attempt_at": now,
        "claimed_by": None,
        "last_error": None,
        "created_at": now,
        "sent_at": None,
    }


def _tags(routing: Routing, roles: Sequence[str], holder: str) -> list[str]:
    tags = [routing.config.contact(Role(r), holder) for r in roles]
    return sorted({t for t in tags if t})


def _following(rung: dict[str, Any], at: int, calendar: Calendar) -> int | None:
    """The occurrence of `rung` after the one at `at` (`rung_due(rung, k + 1)` from the k-th)."""
    if not rung["repeat"]:
        return None
    return calendar.add_ts(at, _duration(rung["repeat"]))


@lru_cache(maxsize=64)
def _duration(text: str) -> Duration:
    return Duration.parse(text)


def _rung_notice(
    routing: Routing,
    holders: _Holders,
    hop: _DueHop,
    rung: dict[str, Any],
    occurrence: int,
    at: int,
    now: datetime,
) -> Notice:
    calendar, holder = holders.calendar_and_name(routing, hop.holder)
    late = calendar.business_days_between(hop.due_at, now) if now > hop.due_at else 0
    return Notice(
        key=f"step:{hop.id}:rung:{rung['n']}:{occurrence}",
        request_id=hop.request_id,
        step_id=hop.id,
        kind=rung["kind"],
        tags=holders.tags(routing, rung["notify"], hop.holder),
        title=hop_title(rung["kind"], hop.reference, hop.hop, late),
        body=hop_body(
            kind=rung["kind"],
            reference=hop.reference,
            hop=hop.hop,
            step=hop.route_step,
            holder=holder,
            opened_at=hop.opened_at,
            due_at=hop.due_at,
            days_late=late,
            prescription_date=hop.prescription_date,
            today=now.date(),
            tz=calendar.timezone,
        ),
        due_at=datetime.fromtimestamp(at, UTC),
    )


def hop_title(kind: str, reference: str, hop: int, days_late: int) -> str:
    if kind == "reminder":
        return f"Reminder: {reference} hop {hop} is due soon"
    if kind == "opened":
        return f"New: {reference} hop {hop} is now with you"
    return (
        f"{'Overdue' if kind == 'overdue' else 'Escalation'}: {reference} hop {hop} is "
        f"{days_late} business day(s) late"
    )


_ACTIONS = {
    "opened": "Acknowledge receipt and decide within the deadline: forward, return with a cause, "
    "refuse with a ground, postpone or execute, with `rogatory decide`.",
    "reminder": "Decide before the deadline, or stop the clock while waiting on the requester.",
    "overdue": "The deadline has passed: decide now, or record why it is waiting.",
    "escalation": "The hop is well past its deadline: the head of unit and the coordinator are "
    "asked to unblock it.",
}


def hop_body(
    *,
    kind: str,
    reference: str,
    hop: int,
    step: str,
    holder: str,
    opened_at: datetime,
    due_at: datetime,
    days_late: int,
    prescription_date: date | None,
    today: date,
    tz: str,
) -> str:
    """What is due, where, since when and what to do; never names of persons or case facts."""
    zone = ZoneInfo(tz)
    slack = (
        "not configured"
        if prescription_date is None
        else (f"{(prescription_date - today).days} day(s) (prescription {prescription_date})")
    )
    return "\n".join(
        [
            f"Case: {reference}",
            f"Hop {hop}: {step}",
            f"Held by: {holder}",
            f"With you since: {_local(opened_at, zone)}",
            f"Due: {_local(due_at, zone)}",
            f"Days late: {days_late} business day(s)",
            f"Prescription slack: {slack}",
            f"What to do: {_ACTIONS.get(kind, _ACTIONS['overdue'])}",
        ]
    )


def hop_opened_notice(
    *,
    routing: Routing,
    reference: str,
    request_id: int,
    step_id: int,
    hop: int,
    step: str,
    holder: str,
    opened_at: datetime,
    due_at: datetime,
    prescription_date: date | None,
    now: datetime,
) -> Notice:
    """The notice that tells a holder a hop is now theirs (sent by the case's flow)."""
    calendar = routing.calendar(holder)
    return Notice(
        key=f"step:{step_id}:opened",
        request_id=request_id,
        step_id=step_id,
        kind="opened",
        tags=_tags(routing, [Role.HOLDER.value], holder),
        title=hop_title("opened", reference, hop, 0),
        body=hop_body(
            kind="opened",
            reference=reference,
            hop=hop,
            step=step,
            holder=routing.config.authorities[holder].name,
            opened_at=opened_at,
            due_at=due_at,
            days_late=0,
            prescription_date=prescription_date,
            today=now.date(),
            tz=calendar.timezone,
        ),
        due_at=opened_at,
    )


def _local(instant: datetime, zone: ZoneInfo) -> str:
    """`%Y-%m-%d %H:%M %Z` in `zone`, without strftime (the sweep formats thousands)."""
    t = instant.astimezone(zone)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d} {t.tzname()}"


def record_notices(*, session: Session, notices: list[Notice], now: datetime) -> int:
    """Record notices as pending deliveries, skipping any already recorded; how many are new."""
    return _insert_ignoring_duplicates(session.connection(), [_row(n, now) for n in notices])


def sweep_prescription(
    *,
    session: Session,
    routings: Routings,
    now: datetime,
    thresholds: Sequence[int] = DEFAULT_SLACK_THRESHOLDS,
) -> SweepResult:
    """Alert the coordinator once per case and threshold when prescription slack falls under it."""
    if not thresholds:
        return SweepResult(0, 0, 0)
    today = now.date()
    horizon = today + timedelta(days=max(thresholds))
    rows = (
        session.connection()
        .execute(
            select(
                Request.id,
                Request.reference,
                Request.country,
                Request.routing_version,
                Request.prescription_date,
                Request.prescription_running,
                Request.current_hop,
            ).where(Request.prescription_date <= horizon, Request.status != "closed")
        )
        .all()
    )
    notices = []
    for row in rows:
        slack = (row.prescription_date - today).days
        routing = routings.pinned(session, row.routing_version)
        coordinator = routing.config.contacts.get(Role.COORDINATOR)
        for threshold in sorted(thresholds):
            if slack <= threshold:
                notices.append(_slack_notice(row, threshold, slack, coordinator, now))
                break  # the tightest threshold crossed; looser ones are moot
    created = record_notices(session=session, notices=notices, now=now)
    return SweepResult(len(rows), created, len(notices) - created)


def _slack_notice(row: Any, threshold: int, slack: int, tag: str | None, now: datetime) -> Notice:
    state = "has PRESCRIBED" if slack < 0 else f"prescribes in {slack} day(s)"
    provisional = " (provisional: a suspension is running)" if row.prescription_running else ""
    return Notice(
        key=f"case:{row.reference}:slack:{threshold}",
        request_id=row.id,
        step_id=None,
        kind="prescription",
        tags=[tag] if tag else [],
        title=f"Prescription risk: {row.reference} {state}",
        body="\n".join(
            [
                f"Case: {row.reference}",
                f"Prescription date: {row.prescription_date}{provisional}",
                f"Slack: {slack} day(s), under the {threshold}-day threshold",
                f"Open hop: {row.current_hop if row.current_hop else 'none (with the requester)'}",
                "What to do: check where the request is stuck and whether a suspension or "
                "interruption can be recorded (`rogatory record`).",
            ]
        ),
        due_at=now,
    )

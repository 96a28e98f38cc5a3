"""The clock sweep: which escalation rungs and prescription alerts are due, recorded exactly once.

Finding work is one indexed range query (`steps.next_rung_at <= now`, `requests.prescription_date
<= horizon`), so its cost grows with what is due, not with how many hops are open. Each due
notification becomes a `deliveries` row whose key is unique per hop, rung and occurrence (or per
case and threshold): two sweeps running at once, or one re-run after a crash, insert the same
keys and the database keeps one. Sending is a separate, retried stage (tasks/notify.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.domain import Role
from models.engine import Routings, next_rung_at, rung_due
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


def _insert_ignoring_duplicates(connection: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert deliveries; rows whose key exists are skipped. Returns how many were new."""
    if not rows:
        return 0
    table = Delivery.__table__
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["key"])
    before = _count_keys(connection, [r["key"] for r in rows])
    connection.execute(statement, rows)
    return len(rows) - before


def _count_keys(connection: Connection, keys: list[str]) -> int:
    table = Delivery.__table__
    found = 0
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        found += len(connection.execute(select(table.c.key).where(table.c.key.in_(chunk))).all())
    return found


def sweep_rungs(
    *, session: Session, routings: Routings, now: datetime, limit: int = 50_000
) -> SweepResult:
    """Record every rung due at `now` as a pending delivery, once, and move each hop's pointer."""
    connection = session.connection()
    rows = connection.execute(
        select(
            Step.id,
            Step.request_id,
            Step.hop,
            Step.route_step,
            Step.holder,
            Step.rungs,
            Step.due_at,
            Step.opened_at,
            Step.next_rung_at,
            Request.reference,
            Request.routing_version,
            Request.prescription_date,
        )
        .join(Request, Request.id == Step.request_id)
        .where(Step.next_rung_at <= now)
        .order_by(Step.next_rung_at)
        .limit(limit)
    ).all()
    stamp = int(now.timestamp())
    notices: list[Notice] = []
    moves: list[dict[str, Any]] = []
    for row in rows:
        routing = routings.pinned(session, row.routing_version)
        calendar = routing.calendar(row.holder)
        rungs = [dict(r) for r in row.rungs]
        for rung in rungs:
            while True:
                at = rung_due(rung, rung["fired"], calendar)
                if at is None or at > stamp:
                    break
                notices.append(_rung_notice(routing, row, rung, at, now))
                rung["fired"] += 1
        moves.append(
            {
                "k_id": row.id,
                "k_next": row.next_rung_at,
                "rungs": rungs,
                "next_rung_at": next_rung_at(rungs, calendar),
            }
        )
    created = _insert_ignoring_duplicates(connection, [_row(n, now) for n in notices])
    if moves:
        table = cast(Table, Step.__table__)
        connection.execute(
            update(table)
            .where(table.c.id == bindparam("k_id"), table.c.next_rung_at == bindparam("k_next"))
            .values(rungs=bindparam("rungs"), next_rung_at=bindparam("next_rung_at")),
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


def _rung_notice(
    routing: Routing, row: Any, rung: dict[str, Any], at: int, now: datetime
) -> Notice:
    calendar = routing.calendar(row.holder)
    holder = routing.config.authorities[row.holder].name
    late = calendar.business_days_between(row.due_at, now) if now > row.due_at else 0
    occurrence = rung["fired"]
    return Notice(
        key=f"step:{row.id}:rung:{rung['n']}:{occurrence}",
        request_id=row.request_id,
        step_id=row.id,
        kind=rung["kind"],
        tags=_tags(routing, rung["notify"], row.holder),
        title=hop_title(rung["kind"], row.reference, row.hop, late),
        body=hop_body(
            kind=rung["kind"],
            reference=row.reference,
            hop=row.hop,
            step=row.route_step,
            holder=holder,
            opened_at=row.opened_at,
            due_at=row.due_at,
            days_late=late,
            prescription_date=row.prescription_date,
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
    from zoneinfo import ZoneInfo

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
            f"With you since: {opened_at.astimezone(zone):%Y-%m-%d %H:%M %Z}",
            f"Due: {due_at.astimezone(zone):%Y-%m-%d %H:%M %Z}",
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

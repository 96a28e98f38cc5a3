"""What an officer and a coordinator work from: the hops assigned to one officer, and the board
of a country's escalations (fired rungs, their age, who acknowledged them, snoozes).

Read-only views, like `models.queries`, whose inbox items they reuse; each hop is read with its
case's pinned routing, so a country file being edited changes nothing here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.engine import Routings, rung_due
from models.ledger import Request, Step
from models.notices import SEVERITY, Severity
from models.queries import InboxItem, _item, _urgency, open_hop_rows

_SEVERITY_ORDER: dict[str, int] = {"failure": 0, "warning": 1, "info": 2}


def assigned_officer(session: Session, reference: str) -> str | None:
    """The officer the case's open hop is assigned to, if any."""
    return session.scalar(
        select(Step.assigned_to)
        .join(Request, (Step.request_id == Request.id) & (Step.hop == Request.current_hop))
        .where(Request.reference == reference)
    )


def my_work(
    session: Session,
    *,
    routings: Routings,
    officer: str,
    now: datetime,
    serves: Callable[[str, str], bool] | None = None,
) -> list[InboxItem]:
    """The open hops assigned to `officer`, in every country, most urgent first; with `serves`,
    only those of the authorities (country, authority) it accepts."""
    rows = open_hop_rows(session, Step.assigned_to == officer)
    items = [
        _item(row, routings.pinned(session, row.routing_version), now)
        for row in rows
        if serves is None or serves(row.country, row.holder)
    ]
    return sorted(items, key=_urgency)


@dataclass(frozen=True)
class BoardItem:
    """One open hop whose escalation ladder has fired, as a coordinator's board shows it."""

    reference: str
    country: str
    holder: str
    hop: int
    step: str
    rung: int
    """The index of the highest rung fired (0 is the ladder's first)."""
    kind: str
    """reminder, overdue or escalation: what that rung is."""
    severity: Severity
    fired_at: datetime
    """When the highest rung last fell due (its latest repeat)."""
    age_business_days: int
    """Business days, in the holder's calendar, since the hop's first rung fell due."""
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    snoozed_until: datetime | None
    confidential: bool
    assigned_to: str | None = None

    @property
    def acknowledged(self) -> bool:
        """Acknowledged since its highest rung last fired: nothing new to see to."""
        return self.acknowledged_at is not None and self.acknowledged_at >= self.fired_at


def escalation_board(
    session: Session,
    *,
    countries: list[str] | None,
    now: datetime,
    routings: Routings | None = None,
) -> list[BoardItem]:
    """The open hops of `countries` (None: all) with a fired rung: the loudest first, then the
    oldest."""
    routings = routings or Routings({})
    query = (
        select(
            Request.reference,
            Request.country,
            Request.routing_version,
            Request.confidential,
            Step.hop,
            Step.route_step,
            Step.holder,
            Step.rungs,
            Step.acknowledged_at,
            Step.acknowledged_by,
            Step.snoozed_until,
            Step.assigned_to,
        )
        .join(Request, Step.request_id == Request.id)
        # Only the open hops whose ladder has fired (ix_steps_open_fired), not every open hop.
        .where(Step.closed_at.is_(None), Step.fired_at.is_not(None))
    )
    if countries is not None:
        query = query.where(Step.country.in_(countries))
    items = []
    for row in session.execute(query):
        fired = [r for r in row.rungs if r["fired"] > 0]
        if not fired:
            continue
        calendar = routings.pinned(session, row.routing_version).calendar(row.holder)
        top = max(fired, key=lambda r: r["n"])
        first = min(r["at"] for r in fired)
        items.append(
            BoardItem(
                reference=row.reference,
                country=row.country,
                holder=row.holder,
                hop=row.hop,
                step=row.route_step,
                rung=top["n"],
                kind=top["kind"],
                severity=SEVERITY[top["kind"]],
                fired_at=_instant(rung_due(top, top["fired"] - 1, calendar)),
                age_business_days=calendar.business_days_between(_instant(first), now),
                acknowledged_at=row.acknowledged_at,
                acknowledged_by=row.acknowledged_by,
                snoozed_until=row.snoozed_until,
                confidential=row.confidential,
                assigned_to=row.assigned_to,
            )
        )
    return sorted(items, key=_loudest)


def _instant(epoch: Any) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


def _loudest(item: BoardItem) -> tuple[int, int, str, int]:
    return (_SEVERITY_ORDER[item.severity], -item.age_business_days, item.reference, item.hop)


def owed(items: list[BoardItem], *, now: datetime) -> list[BoardItem]:
    """The items someone still has to see to: not acknowledged since they last fired, not
    snoozed."""
    return [
        i
        for i in items
        if not i.acknowledged and (i.snoozed_until is None or i.snoozed_until <= now)
    ]

"""The coordinator's daily digest: one message per country with everything owed there.

Overdue hops by holder, escalations nobody has acknowledged (or snoozed), and open cases
within the prescription-risk window, each with its case link. It is recorded as one delivery
keyed `digest:<CC>:<YYYY-MM-DD>` (the country's own day), so however often it is built, a
country's coordinator gets it once a day, through the same retried sending as every alert.
Like every notice it names references, authorities and figures, never persons or facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import deliveries
from models.config import Authority
from models.domain import Role
from models.engine import Routings
from models.ledger import Delivery, Request, RoutingVersion, Step
from models.loader import Routing
from models.notices import Notice, Severity, case_link
from models.queries import InboxItem, _item, _urgency, open_hop_rows
from models.sweep import DEFAULT_SLACK_THRESHOLDS
from models.workspace import BoardItem, escalation_board, owed

DIGEST_HOUR = 7
"""The local hour from which the scheduled sweep records a country's digest for the day."""
PRESCRIPTION_WINDOW_DAYS = max(DEFAULT_SLACK_THRESHOLDS)
"""Open cases prescribing within this many days are listed (the widest alert threshold)."""


def digest_key(country: str, day: date) -> str:
    return f"digest:{country}:{day.isoformat()}"


def record_digests(
    session: Session,
    *,
    routings: Routings,
    now: datetime,
    countries: Iterable[str] | None = None,
    from_hour: int | None = None,
) -> int:
    """Record today's digest of each country (default: every country with open cases) not
    recorded yet; with `from_hour`, only where the local time has reached it. How many are new.
    """
    wanted = sorted(countries) if countries is not None else _countries_with_open_cases(session)
    notices = []
    for country in wanted:
        routing = _latest_routing(session, routings, country)
        if routing is None:
            continue
        calendar = routing.calendar(None)
        local = now.astimezone(calendar.tz)
        if from_hour is not None and local.hour < from_hour:
            continue
        key = digest_key(country, local.date())
        if session.scalar(select(Delivery.id).where(Delivery.key == key)) is not None:
            continue  # built once a day: the key would refuse it anyway
        notice = build_digest(session, routings=routings, routing=routing, now=now)
        if notice is not None:
            notices.append(notice)
    return deliveries.record(session.connection(), notices, now=now)


def build_digest(
    session: Session, *, routings: Routings, routing: Routing, now: datetime
) -> Notice | None:
    """The digest of `routing`'s country at `now`; None when nothing is owed or nobody
    coordinates it."""
    country = routing.country
    tag = routing.config.contacts.get(Role.COORDINATOR)
    if not tag:
        return None
    today = routing.calendar(None).local_date(now)
    late = [i for i in _open_items(session, routings, country, now) if i.overdue]
    escalations = owed(
        escalation_board(session, countries=[country], now=now, routings=routings), now=now
    )
    risky = _near_prescription(session, country, today)
    if not (late or escalations or risky):
        return None
    names = routing.config.authorities
    lines = [f"Daily digest for {routing.config.name} ({country}), {today}", ""]
    lines += _overdue_lines(late, names)
    lines += _escalation_lines(escalations, names)
    lines += _prescription_lines(risky, today)
    lines.append(
        "What to do: unblock the oldest first; acknowledge or snooze an escalation with "
        "`rogatory acknowledge` or `rogatory snooze`."
    )
    severity: Severity = "warning"
    if escalations or any(d < today for _, d in risky):
        severity = "failure"
    return Notice(
        key=digest_key(country, today),
        request_id=None,
        step_id=None,
        kind="digest",
        severity=severity,
        tags=[tag],
        title=f"Daily digest {country} {today}: {len(late)} overdue, "
        f"{len(escalations)} escalation(s) to see to, {len(risky)} near prescription",
        body="\n".join(lines),
        due_at=now,
    )


def _linked(text: str, reference: str) -> str:
    link = case_link(reference)
    return f"{text} {link}" if link else text


def _overdue_lines(items: list[InboxItem], names: Mapping[str, Authority]) -> list[str]:
    if not items:
        return ["Overdue hops: none", ""]
    lines = [f"Overdue hops: {len(items)}"]
    for holder in sorted({i.holder for i in items}):
        mine = [i for i in items if i.holder == holder]
        lines.append(f"  {_name(names, holder)} ({holder}): {len(mine)}")
        lines += [
            _linked(
                f"    {i.reference} hop {i.hop} ({i.step}): {i.days_late} business day(s) late",
                i.reference,
            )
            for i in mine
        ]
    return [*lines, ""]


def _escalation_lines(items: list[BoardItem], names: Mapping[str, Authority]) -> list[str]:
    if not items:
        return ["Escalations to see to: none", ""]
    lines = [f"Escalations to see to: {len(items)}"]
    lines += [
        _linked(
            f"  {i.reference} hop {i.hop} at {_name(names, i.holder)} ({i.holder}): {i.kind} "
            f"since {i.age_business_days} business day(s)",
            i.reference,
        )
        for i in items
    ]
    return [*lines, ""]


def _prescription_lines(items: list[tuple[str, date]], today: date) -> list[str]:
    if not items:
        return [f"Within {PRESCRIPTION_WINDOW_DAYS} days of prescription: none", ""]
    lines = [f"Within {PRESCRIPTION_WINDOW_DAYS} days of prescription: {len(items)}"]
    for reference, day in items:
        slack = (day - today).days
        state = f"PRESCRIBED on {day}" if slack < 0 else f"prescribes on {day} ({slack} day(s))"
        lines.append(_linked(f"  {reference}: {state}", reference))
    return [*lines, ""]


def _name(names: Mapping[str, Authority], authority: str) -> str:
    found = names.get(authority)
    return found.name if found is not None else authority


def _open_items(
    session: Session, routings: Routings, country: str, now: datetime
) -> list[InboxItem]:
    """The country's open hops, each read with its case's pinned routing, most urgent first."""
    rows = open_hop_rows(session, Step.country == country)
    items = [_item(row, routings.pinned(session, row.routing_version), now) for row in rows]
    return sorted(items, key=_urgency)


def _near_prescription(session: Session, country: str, today: date) -> list[tuple[str, date]]:
    horizon = today + timedelta(days=PRESCRIPTION_WINDOW_DAYS)
    rows = session.execute(
        select(Request.reference, Request.prescription_date)
        .where(
            Request.country == country,
            Request.status != "closed",
            Request.prescription_date <= horizon,
        )
        .order_by(Request.prescription_date, Request.reference)
    ).all()
    return [(row.reference, row.prescription_date) for row in rows]


def _countries_with_open_cases(session: Session) -> list[str]:
    return sorted(
        session.scalars(select(Request.country).where(Request.status != "closed").distinct())
    )


def _latest_routing(session: Session, routings: Routings, country: str) -> Routing | None:
    """The country's routing as last pinned by a case: read from the ledger, so a country file
    being edited (or broken) stops no digest."""
    version = session.scalar(
        select(RoutingVersion.version)
        .where(RoutingVersion.country == country)
        .order_by(RoutingVersion.first_seen_at.desc())
        .limit(1)
    )
    return None if version is None else routings.pinned(session, version)

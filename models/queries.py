"""Read-only views of the ledger: case timelines, authority inboxes, overdue hops, chain checks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from models.access import CaseFacts
from models.domain import OffenceCategory
from models.errors import CommandRejected, NotFound
from models.identity import Grant, RoleName
from models.ledger import GENESIS, Event, Ledger, Request, RoutingVersion, Step, event_hash
from models.loader import Routing
from models.prescription import describe_rules
from models.privacy import CaseKeys


@dataclass(frozen=True)
class ClockStop:
    since: datetime
    until: datetime | None
    reason: str


@dataclass(frozen=True)
class HopView:
    hop: int
    step: str
    holder: str
    holder_name: str
    timezone: str
    """The holder's timezone: dates are shown in it."""
    sla: str
    opened_at: datetime
    due_at: datetime
    closed_at: datetime | None
    business_days: int
    calendar_days: int
    days_late: int
    """Business days past due (at closing, or now for an open hop); 0 when on time."""
    stopped_business_days: int
    stops: list[ClockStop]
    outcome: str | None
    ground: str | None
    cause: str | None


@dataclass(frozen=True)
class Timeline:
    reference: str
    country: str
    route: str
    routing_version: str
    status: str
    outcome: str | None
    registered_at: datetime
    prescription_date: date | None
    prescription_running: bool
    prescription_history: list[dict[str, Any]]
    prescription_rules: list[str] = field(default_factory=list)
    """The law applied to this case as the routing states it today: period, rules in force and
    not, counting conventions (the history keeps what each event did when recorded)."""
    hops: list[HopView] = field(default_factory=list)
    seq: int = 0
    """The case's last event: send it with a command to be refused if the case moved since."""
    deadlines: list[dict[str, Any]] = field(default_factory=list)
    """Legal deadlines counted from case events (models.legal), with how each moved."""

    def as_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=_jsonable))  # type: ignore[no-any-return]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(type(value))


def hop_view(step: Step, routing: Routing, now: datetime, stops: list[ClockStop]) -> HopView:
    calendar = routing.calendar(step.holder)
    end = step.closed_at or now
    late = max(0, calendar.business_days_between(step.due_at, end)) if end > step.due_at else 0
    return HopView(
        hop=step.hop,
        step=step.route_step,
        holder=step.holder,
        holder_name=routing.config.authorities[step.holder].name,
        timezone=calendar.timezone,
        sla=step.sla,
        opened_at=step.opened_at,
        due_at=step.due_at,
        closed_at=step.closed_at,
        business_days=calendar.business_days_between(step.opened_at, end),
        calendar_days=(calendar.local_date(end) - calendar.local_date(step.opened_at)).days,
        days_late=late,
        stopped_business_days=step.stopped_bd,
        stops=stops,
        outcome=step.outcome,
        ground=step.ground,
        cause=step.cause,
    )


def timeline(*, session: Session, routing: Routing, reference: str, now: datetime) -> Timeline:
    """Each hop of a case with its holder, dates, days taken, lateness, stops and decision."""
    request = session.scalars(select(Request).where(Request.reference == reference)).first()
    if request is None:
        raise NotFound(f"no case {reference!r}")
    events = session.scalars(
        select(Event).where(Event.request_id == request.id).order_by(Event.seq)
    ).all()
    stops: dict[int, list[ClockStop]] = {}
    history: list[dict[str, Any]] = []
    keys = CaseKeys(session)
    for ev in events:
        data = json.loads(ev.payload)
        if ev.kind == "clock_stopped":
            # The one sealed field a timeline shows: opened alone, so a flow reading the
            # timeline needs no key unless the case's clock was stopped.
            reason = keys.open_value(reference, "reason", data["reason"])
            stops.setdefault(data["hop"], []).append(ClockStop(ev.occurred_at, None, reason))
        elif ev.kind == "clock_resumed":
            last = stops[data["hop"]][-1]
            stops[data["hop"]][-1] = ClockStop(last.since, ev.occurred_at, last.reason)
        elif ev.kind == "registered":
            history.append(
                {
                    "on": ev.occurred_at.date().isoformat(),
                    "event": "registered",
                    **data["prescription"],
                }
            )
        elif ev.kind == "prescription_event":
            history.append({"on": data["on"], "event": data["event"], **data["after"]})
    steps = session.scalars(
        select(Step).where(Step.request_id == request.id).order_by(Step.hop)
    ).all()
    return Timeline(
        reference=request.reference,
        country=request.country,
        route=request.route_id,
        routing_version=request.routing_version,
        status=request.status,
        outcome=request.outcome,
        registered_at=request.registered_at,
        prescription_date=request.prescription_date,
        prescription_running=request.prescription_running,
        seq=request.last_seq,
        deadlines=[_deadline_view(d) for d in request.deadlines or ()],
        prescription_history=history,
        prescription_rules=(
            []
            if routing.config.prescription is None
            else describe_rules(
                routing.config.prescription,
                offence=OffenceCategory(request.offence_category),
                offence_date=request.offence_date,
            )
        ),
        hops=[hop_view(s, routing, now, stops.get(s.hop, [])) for s in steps],
    )


def _deadline_view(item: dict[str, Any]) -> dict[str, Any]:
    """A legal deadline as status shows it: its terms, state and moves, not its ladder."""
    return {k: v for k, v in item.items() if k != "rungs"}


@dataclass(frozen=True)
class InboxItem:
    reference: str
    hop: int
    step: str
    holder: str
    opened_at: datetime
    due_at: datetime
    overdue: bool
    days_late: int
    prescription_date: date | None
    slack_days: int | None
    """Calendar days from today to the prescription date (negative: already prescribed)."""
    clock_stopped: bool
    urgent: bool
    timezone: str = "UTC"
    """The holder's timezone: the due day is shown in it."""
    route: str = ""
    kind: str = ""
    direction: str = ""
    counterpart: str = ""
    assigned_to: str | None = None
    """The officer of the authority working the hop, if someone claimed or was given it."""
    legal_due_at: datetime | None = None
    """The earliest legal deadline of the case still running (EU instruments), if any."""
    legal_overdue: bool = False
    """That legal deadline has passed: overdue whatever the hop's own clock says."""


_ITEM_COLUMNS = (
    Request.reference,
    Request.country,
    Request.routing_version,
    Step.hop,
    Step.route_step,
    Step.holder,
    Step.opened_at,
    Step.due_at,
    Step.stopped_since,
    Request.prescription_date,
    Request.urgent,
    Request.route_id,
    Request.kind,
    Request.direction,
    Request.counterpart,
    Step.assigned_to,
    Request.legal_due_at,
)


def open_hop_rows(session: Session, *where: Any) -> list[Any]:
    """The open hops matching `where`, only the columns an inbox item reads (`_item`):
    thousands of full ORM objects would cost ten times the query."""
    query = (
        select(*_ITEM_COLUMNS)
        .join(Request, Step.request_id == Request.id)
        .where(Step.closed_at.is_(None), *where)
    )
    return list(session.execute(query).all())


def _open_hops(session: Session, *, country: str, holder: str | None) -> list[Any]:
    """The open hops of a country, or of one holder."""
    mine = [Step.holder == holder] if holder is not None else []
    return open_hop_rows(session, Step.country == country, *mine)


def _item(row: Any, routing: Routing, now: datetime) -> InboxItem:
    calendar = routing.calendar(row.holder)
    legal_overdue = row.legal_due_at is not None and now > row.legal_due_at
    overdue = row.stopped_since is None and now > row.due_at
    slack = (row.prescription_date - now.date()).days if row.prescription_date else None
    return InboxItem(
        reference=row.reference,
        hop=row.hop,
        step=row.route_step,
        holder=row.holder,
        opened_at=row.opened_at,
        due_at=row.due_at,
        overdue=overdue or legal_overdue,
        days_late=calendar.business_days_between(row.due_at, now) if overdue else 0,
        prescription_date=row.prescription_date,
        slack_days=slack,
        clock_stopped=row.stopped_since is not None,
        urgent=row.urgent,
        timezone=calendar.timezone,
        route=row.route_id,
        kind=row.kind,
        direction=row.direction,
        counterpart=row.counterpart,
        assigned_to=row.assigned_to,
        legal_due_at=row.legal_due_at,
        legal_overdue=legal_overdue,
    )


def _urgency(item: InboxItem) -> tuple[int, int, int, str]:
    slack = item.slack_days if item.slack_days is not None else 10**6
    return (0 if item.overdue else 1, slack, -item.days_late, item.reference)


def inbox(*, session: Session, routing: Routing, holder: str, now: datetime) -> list[InboxItem]:
    """An authority's open hops: overdue first, then by least prescription slack."""
    if holder not in routing.config.authorities:
        known = ", ".join(routing.config.authorities)
        raise NotFound(f"{routing.country} has no authority {holder!r} (known: {known})")
    items = [
        _item(r, routing, now) for r in _open_hops(session, country=routing.country, holder=holder)
    ]
    return sorted(items, key=_urgency)


def overdue(*, session: Session, routing: Routing, now: datetime) -> list[InboxItem]:
    """Every overdue hop of a country, most urgent first."""
    items = [
        _item(r, routing, now) for r in _open_hops(session, country=routing.country, holder=None)
    ]
    return sorted((i for i in items if i.overdue), key=_urgency)


@dataclass(frozen=True)
class BrokenLink:
    reference: str
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"{self.reference} event {self.seq}: {self.reason}"


def verify_chain(*, session: Session, reference: str | None = None) -> list[BrokenLink]:
    """Recompute every event hash; the first broken link of each case whose chain is broken."""
    query = select(Request).order_by(Request.id)
    if reference is not None:
        query = query.where(Request.reference == reference)
    broken = []
    for request in session.scalars(query):
        link = _verify_case(session, request)
        if link is not None:
            broken.append(link)
    return broken


def _verify_case(session: Session, request: Request) -> BrokenLink | None:
    prev = GENESIS
    expected_seq = 1
    for ev in session.scalars(
        select(Event).where(Event.request_id == request.id).order_by(Event.seq)
    ):
        if ev.seq != expected_seq:
            return BrokenLink(request.reference, expected_seq, "event missing (deleted?)")
        if ev.prev_hash != prev:
            return BrokenLink(request.reference, ev.seq, "does not follow the previous event")
        digest = event_hash(
            prev_hash=prev,
            reference=request.reference,
            seq=ev.seq,
            kind=ev.kind,
            actor=ev.actor,
            payload=ev.payload,
            occurred_at=ev.occurred_at,
            recorded_at=ev.recorded_at,
        )
        if digest != ev.hash:
            return BrokenLink(request.reference, ev.seq, f"content altered ({ev.kind})")
        prev = ev.hash
        expected_seq += 1
    if request.last_seq != expected_seq - 1 or request.head_hash != prev:
        return BrokenLink(request.reference, expected_seq, "events missing after the last one")
    return None


@dataclass(frozen=True)
class CaseView:
    """Where a case stands, as its flow needs to know it."""

    reference: str
    status: str
    outcome: str | None
    hop: int | None
    last_seq: int
    flow_run_id: str | None


def read_case_view(ledger: Ledger, reference: str) -> CaseView:
    with ledger.session() as session:
        row = session.execute(
            select(
                Request.status,
                Request.outcome,
                Request.current_hop,
                Request.last_seq,
                Request.flow_run_id,
            ).where(Request.reference == reference)
        ).first()
    if row is None:
        raise CommandRejected(f"no case {reference!r} in the ledger")
    return CaseView(
        reference, row.status, row.outcome, row.current_hop, row.last_seq, row.flow_run_id
    )


# -- access facts and search ----------------------------------------------------------------------


def case_facts(session: Session, reference: str, *, routings: Any) -> CaseFacts:
    """What access control needs of a case: country, confidentiality, holder, route holders."""
    row = session.execute(
        select(
            Request.id,
            Request.country,
            Request.confidential,
            Request.routing_version,
            Request.route_id,
            Request.hop_count,
        ).where(Request.reference == reference)
    ).first()
    if row is None:
        raise NotFound(f"no case {reference!r}: check the reference", reference=reference)
    held = dict(
        session.execute(select(Step.hop, Step.holder).where(Step.request_id == row.id)).all()
    )
    route_holders = set(held.values())
    try:
        route = routings.pinned(session, row.routing_version).config.route(row.route_id)
        route_holders.update(step.holder for step in route.steps)
    except Exception:  # an unreadable pinned routing: the hops held so far still tell
        pass
    return CaseFacts(
        reference=reference,
        country=row.country,
        confidential=row.confidential,
        holder=held.get(row.hop_count),
        route_holders=frozenset(route_holders),
    )


@dataclass(frozen=True)
class CaseSearch:
    """What a case search may filter on; empty fields match everything."""

    reference: str | None = None
    """A prefix, e.g. SV-2026-."""
    country: str | None = None
    authority: str | None = None
    """The authority holding the open hop."""
    status: str | None = None
    counterpart: str | None = None
    kind: str | None = None
    direction: str | None = None
    registered_since: date | None = None
    registered_until: date | None = None


@dataclass(frozen=True)
class CaseRow:
    reference: str
    country: str
    route: str
    kind: str
    direction: str
    counterpart: str
    status: str
    outcome: str | None
    confidential: bool
    hop: int | None
    holder: str | None
    due_at: datetime | None
    registered_at: datetime
    prescription_date: date | None


@dataclass(frozen=True)
class CasePage:
    total: int
    page: int
    size: int
    cases: list[CaseRow]


def search_cases(
    session: Session, *, search: CaseSearch, grants: list[Grant] | None, page: int, size: int
) -> CasePage:
    """The cases matching `search` that `grants` make visible (None: all), newest first."""
    from sqlalchemy import and_, exists, false, func, or_
    from sqlalchemy.orm import aliased

    conditions = []
    if search.reference:
        conditions.append(Request.reference.startswith(search.reference.upper()))
    for column, value in (
        (Request.country, search.country),
        (Request.status, search.status),
        (Request.counterpart, search.counterpart),
        (Request.kind, search.kind),
        (Request.direction, search.direction),
    ):
        if value:
            conditions.append(column == value)
    if search.registered_since:
        conditions.append(
            Request.registered_at >= datetime.combine(search.registered_since, time(), UTC)
        )
    if search.registered_until:
        end = datetime.combine(search.registered_until + timedelta(days=1), time(), UTC)
        conditions.append(Request.registered_at < end)
    current = (Step.request_id == Request.id) & (Step.hop == Request.current_hop)
    hops = aliased(Step)  # in EXISTS, apart from the joined open hop
    if search.authority:
        conditions.append(
            exists().where(
                hops.request_id == Request.id,
                hops.hop == Request.current_hop,
                hops.holder == search.authority,
            )
        )
    if grants is not None:
        visible = []
        for g in grants:
            if g.role in (RoleName.COORDINATOR, RoleName.MINISTRY):
                visible.append(Request.country == g.country)
            elif g.role in (RoleName.CLERK, RoleName.HEAD):
                held = exists().where(hops.request_id == Request.id, hops.holder == g.authority)
                visible.append(and_(Request.country == g.country, or_(~Request.confidential, held)))
            elif g.role == RoleName.AUDITOR:
                mine = true() if g.country is None else Request.country == g.country
                visible.append(and_(mine, ~Request.confidential))
        conditions.append(or_(*visible) if visible else false())
    total = int(session.scalar(select(func.count()).select_from(Request).where(*conditions)) or 0)
    rows = session.execute(
        select(
            Request.reference,
            Request.country,
            Request.route_id.label("route"),
            Request.kind,
            Request.direction,
            Request.counterpart,
            Request.status,
            Request.outcome,
            Request.confidential,
            Request.current_hop.label("hop"),
            Step.holder,
            Step.due_at,
            Request.registered_at,
            Request.prescription_date,
        )
        .outerjoin(Step, current)
        .where(*conditions)
        .order_by(Request.registered_at.desc(), Request.reference.desc())
        .limit(size)
        .offset((page - 1) * size)
    ).all()
    return CasePage(total, page, size, [CaseRow(**row._asdict()) for row in rows])


def pinned_version(session: Session, reference: str) -> str:
    """The routing version a case runs on."""
    version = session.scalar(select(Request.routing_version).where(Request.reference == reference))
    if version is None:
        raise NotFound(f"no case {reference!r}", reference=reference)
    return str(version)


def countries(session: Session) -> list[str]:
    """The countries the ledger holds cases of."""
    return sorted(session.scalars(select(Request.country).distinct()))


def confidential_references(session: Session, *, countries: list[str]) -> set[str]:
    """The confidential cases of `countries`."""
    if not countries:
        return set()
    return set(
        session.scalars(
            select(Request.reference).where(Request.confidential, Request.country.in_(countries))
        )
    )


# -- what the flows and the sweep read -------------------------------------------------------------


def first_event_hash(session: Session, reference: str) -> str | None:
    """The hash of a case's first event: it tells this case from one of another ledger."""
    return session.scalar(
        select(Event.hash)
        .join(Request, Event.request_id == Request.id)
        .where(Request.reference == reference, Event.seq == 1)
    )


@dataclass(frozen=True)
class OpenCase:
    view: CaseView
    request_id: int
    country: str


def open_cases(session: Session) -> list[OpenCase]:
    """Every case not closed, as its flow run needs to know it."""
    rows = session.execute(
        select(
            Request.reference,
            Request.status,
            Request.outcome,
            Request.current_hop,
            Request.last_seq,
            Request.flow_run_id,
            Request.id,
            Request.country,
        ).where(Request.status != "closed")
    ).all()
    return [OpenCase(CaseView(*row[:6]), row.id, row.country) for row in rows]


def routing_versions(session: Session) -> list[str]:
    return list(session.scalars(select(RoutingVersion.version)))


@dataclass(frozen=True)
class OpenHop:
    request_id: int
    routing_version: str
    prescription_date: date | None
    hop: int
    step: str
    holder: str
    opened_at: datetime
    due_at: datetime


def open_hop(session: Session, reference: str) -> OpenHop | None:
    """The case's open hop, with what its holder's notice says; None when none is open."""
    row = session.execute(
        select(
            Request.id,
            Request.routing_version,
            Request.prescription_date,
            Step.hop,
            Step.route_step,
            Step.holder,
            Step.opened_at,
            Step.due_at,
        )
        .join(Step, (Step.request_id == Request.id) & (Step.hop == Request.current_hop))
        .where(Request.reference == reference)
    ).first()
    return None if row is None else OpenHop(*row)


@dataclass(frozen=True)
class LastHolder:
    request_id: int
    routing_version: str
    holder: str | None


def last_holder(session: Session, reference: str) -> LastHolder:
    """Who held the case's latest hop (open or not)."""
    row = session.execute(
        select(Request.id, Request.routing_version, Step.holder)
        .outerjoin(Step, (Step.request_id == Request.id) & (Step.hop == Request.hop_count))
        .where(Request.reference == reference)
    ).one()
    return LastHolder(*row)


@dataclass(frozen=True)
class EventRow:
    """One event of a case as the case page lists it."""

    seq: int
    kind: str
    actor: str
    occurred_at: datetime
    recorded_at: datetime
    hash: str
    payload: dict[str, Any]


def case_events(session: Session, reference: str) -> list[EventRow]:
    """A case's events, oldest first, with their actor and hash; personal fields opened (the
    caller has checked the reader may see the case)."""
    rows = session.execute(
        select(
            Event.seq,
            Event.kind,
            Event.actor,
            Event.occurred_at,
            Event.recorded_at,
            Event.hash,
            Event.payload,
        )
        .join(Request, Event.request_id == Request.id)
        .where(Request.reference == reference)
        .order_by(Event.seq)
    ).all()
    keys = CaseKeys(session)
    return [
        EventRow(
            seq=r.seq,
            kind=r.kind,
            actor=r.actor,
            occurred_at=r.occurred_at,
            recorded_at=r.recorded_at,
            hash=r.hash,
            payload=keys.reveal(reference, r.kind, json.loads(r.payload)),
        )
        for r in rows
    ]


def actor_of_key(session: Session, key: str) -> str | None:
    """Who recorded the event carrying idempotency key `key`, if any did."""
    return session.scalar(select(Event.actor).where(Event.idempotency_key == key))

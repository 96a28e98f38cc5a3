"""The routing engine: the commands that move a case along its chain, each one event in the ledger.

Every command is a plain function taking `*, session, clock, routings`. It validates everything
first and raises `CommandRejected` (or `IntakeError`) before writing anything; the caller's
transaction commits or rolls back the whole command. A command given an `idempotency_key` that
was already used returns the first result instead of acting twice. Each event bumps the case's
sequence with a compare-and-set, so of two concurrent commands on one case exactly one wins.
The writes themselves go through `models.store.CaseStore`, one statement per table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import legal
from models.calendar import Calendar, Duration
from models.clock import Clock
from models.config import Route, Rung
from models.domain import (
    DelayCause,
    OffenceCategory,
    Outcome,
    PrescriptionEffect,
    RefusalGround,
    RequestMaker,
)
from models.errors import (
    CommandRejected,
    Conflict,
    DecisionNotAllowed,
    NoRouteMatches,
)
from models.intake import RequestIntake
from models.ledger import Request, canonical
from models.loader import Routing
from models.notices import opened_notice
from models.prescription import (
    KOZENY,
    EventKind,
    PrescriptionEvent,
    PrescriptionResult,
    no_period_reason,
    period_for,
    prescription_date,
    request_meant,
    rules_in_force,
)
from models.routings import Routings as Routings  # re-exported for the engine's callers
from models.store import Case, CaseStore, Hop

SYSTEM = "system"


@dataclass(frozen=True)
class Result:
    """What a command did: the case, the seq of the command's own event, the hop now open."""

    reference: str
    seq: int
    hop: int | None
    status: str
    message: str
    replayed: bool = False
    warnings: tuple[str, ...] = ()
    """What the caller should know although the command was accepted."""


# -- shared mechanics ----------------------------------------------------------------------------


def _replay(store: CaseStore, key: str | None, digest: str | None) -> Result | None:
    if key is None:
        return None
    found = store.keyed_result(key)
    if found is None:
        return None
    if found.command != digest:
        raise Conflict(f"idempotency key {key!r} was already used for a different command")
    case = found.case
    return Result(
        case.reference,
        found.seq,
        case.current_hop,
        case.status,
        "already done (same idempotency key): nothing repeated",
        replayed=True,
    )


When = datetime | date | None
"""When a fact happened, as the clerk gave it: an aware instant; a naive date-time or a plain
date, read in the timezone of the hop's holder; or None for now."""


def _when(
    on: When, clock: Clock, *, calendar: Calendar, not_before: datetime | None = None
) -> tuple[datetime, str]:
    """When a fact happened (`on` if the clerk entered it late, else now), and how it was read.

    A plain date means "that day where the holder sits": local noon, moved inside the day to
    the hop's opening or to now when the day holds one of them (a decision recorded "on" the
    day the hop opened cannot precede the opening). The second value says which instant the
    input was read as, for the confirmation; it is empty when nothing was given.
    """
    now = clock.now()
    if on is None:
        return now, ""
    zone = calendar.tz
    if isinstance(on, datetime):
        at = on if on.tzinfo is not None else on.replace(tzinfo=zone)
    else:
        start = datetime.combine(on, time(0), zone)
        at = datetime.combine(on, time(12), zone)
        lowest = not_before if not_before is not None and not_before >= start else start
        highest = min(now, datetime.combine(on + timedelta(days=1), time(0), zone))
        at = min(max(at, lowest), highest) if lowest <= highest else at
    local = at.astimezone(zone)
    read_as = f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({calendar.timezone})"
    if at > now:
        raise CommandRejected(f"--on {read_as} is in the future: record what happened")
    if not_before is not None and at < not_before:
        opened = not_before.astimezone(zone)
        raise CommandRejected(
            f"--on {read_as} is before the hop opened ({opened:%Y-%m-%d %H:%M %Z})"
        )
    return at, f" (entered late: read as {read_as})"


def rung_instants(
    *, calendar: Calendar, opened_at: datetime, sla: Duration, rungs: list[Rung]
) -> list[dict[str, Any]]:
    """The first instant (UTC epoch seconds) of each rung: a share of the SLA or an offset."""
    start = opened_at.timestamp()
    return [
        {**template, "at": calendar.add_ts(start, offset)}
        for offset, template in _rung_templates(sla, rungs)
    ]


_TEMPLATES: dict[
    tuple[Duration, int], tuple[list[Rung], list[tuple[Duration, dict[str, Any]]]]
] = {}


def _rung_templates(sla: Duration, rungs: list[Rung]) -> list[tuple[Duration, dict[str, Any]]]:
    """Each rung's offset from the opening and its fixed fields, computed once per ladder."""
    cached = _TEMPLATES.get((sla, id(rungs)))
    if cached is not None and cached[0] is rungs:
        return cached[1]
    out = []
    for n, rung in enumerate(rungs):
        share = rung.share
        offset = sla.scaled(share) if share is not None else rung.offset
        assert offset is not None
        template = {
            "n": n,
            "kind": rung.kind.value,
            "notify": [r.value for r in rung.notify],
            "repeat": str(rung.repeat) if rung.repeat else None,
            "fired": 0,
        }
        out.append((offset, template))
    _TEMPLATES[(sla, id(rungs))] = (rungs, out)
    return out


def next_rung_at(rungs: list[dict[str, Any]], calendar: Calendar) -> datetime | None:
    """The earliest instant at which a rung still has to fire."""
    best: int | None = None
    for rung in rungs:
        at = rung_due(rung, rung["fired"], calendar)
        if at is not None and (best is None or at < best):
            best = at
    return None if best is None else datetime.fromtimestamp(best, UTC)


def rung_due(rung: dict[str, Any], occurrence: int, calendar: Calendar) -> int | None:
    """When a rung's `occurrence` (0 is the first firing) is due, in epoch seconds; None: never.

    A rung acknowledged after `k` firings (`"acknowledged": k`) fires no occurrence from the
    k-th on: its escalation is seen to.
    """
    at: int = rung["at"]
    if occurrence == 0:
        return at
    if not rung["repeat"] or silenced(rung, occurrence):
        return None
    step = Duration.parse(rung["repeat"])
    for _ in range(occurrence):
        at = calendar.add_ts(at, step)
    return at


def silenced(rung: dict[str, Any], occurrence: int) -> bool:
    """Whether an acknowledgement stopped the rung before its `occurrence`."""
    acknowledged = rung.get("acknowledged")
    return acknowledged is not None and occurrence >= acknowledged


def hop_next_rung_at(hop: Hop, calendar: Calendar) -> datetime | None:
    """Where the sweep should next look at `hop`: its next rung, not before its snooze ends;
    None while its clock is stopped or once it is closed."""
    if hop.closed_at is not None or hop.stopped_since is not None:
        return None
    at = next_rung_at(hop.rungs, calendar)
    if at is not None and hop.snoozed_until is not None and at < hop.snoozed_until:
        return hop.snoozed_until
    return at


def _applies(route: Route, index: int, fields: dict[str, Any]) -> bool:
    when = route.steps[index].when
    return when is None or when.matches(fields)


def _next_index(route: Route, index: int, fields: dict[str, Any]) -> int | None:
    j = index + 1
    while j < len(route.steps):
        if _applies(route, j, fields):
            return j
        j += 1
    return None


def _open_hop(
    store: CaseStore,
    case: Case,
    *,
    routing: Routing,
    route: Route,
    index: int,
    at: datetime,
    recorded_at: datetime,
    actor: str,
    holder: str | None = None,
    reason: str | None = None,
) -> Hop:
    step_cfg = route.steps[index]
    holder = holder or step_cfg.holder
    calendar = routing.calendar(holder)
    sla = routing.sla(route, index)
    ladder = route.rungs_for(index, routing.config.escalation)
    legal.on_opening(case.deadlines, step=step_cfg.id, at=at, routing=routing, route=route)
    _sync_deadlines(case)
    follows = legal.linked(case.deadlines, step_cfg.deadline) if step_cfg.deadline else None
    if follows is not None:
        # The hop is due when the law's deadline is, whenever the hop itself opened.
        due = datetime.fromisoformat(follows["due_at"])
        rungs = legal.window_rungs(
            ladder, datetime.fromisoformat(follows["anchored_at"]), due, calendar
        )
    else:
        due = calendar.add(at, sla)
        rungs = rung_instants(calendar=calendar, opened_at=at, sla=sla, rungs=ladder)
    hop = Hop(
        request_id=case.id,
        hop=case.hop_count + 1,
        route_step=step_cfg.id,
        step_index=index,
        holder=holder,
        country=case.country,
        sla=str(sla),
        opened_at=at,
        due_at=due,
        rungs=rungs,
        next_rung_at=next_rung_at(rungs, calendar),
    )
    store.open_hop(case, hop)
    if store.announces:
        # Written with the hop itself: the holder is told at once, in the order things
        # happened, whether or not the case's flow run is up (it is the backstop).
        store.notices.append(
            (
                opened_notice(
                    routing=routing,
                    reference=case.reference,
                    request_id=case.id,
                    hop=hop.hop,
                    step=hop.route_step,
                    holder=holder,
                    opened_at=at,
                    due_at=due,
                    prescription_date=case.prescription_date,
                    now=recorded_at,
                ),
                recorded_at,
            )
        )
    store.append(
        case,
        kind="hop_opened",
        actor=actor,
        payload={
            "hop": hop.hop,
            "step": hop.route_step,
            "holder": holder,
            "sla": str(sla),
            "due_at": due.isoformat(),
            "reason": reason,
        },
        occurred_at=at,
        recorded_at=recorded_at,
    )
    return hop


def _close_hop(
    store: CaseStore,
    hop: Hop,
    *,
    at: datetime,
    outcome: str,
    target: str | None = None,
    ground: str | None = None,
    cause: str | None = None,
) -> None:
    hop.closed_at = at
    hop.outcome = outcome
    hop.target = target
    hop.ground = ground
    hop.cause = cause
    hop.next_rung_at = None
    hop.stopped_since = None
    store.touch(hop)


def _leave_hop(case: Case, status: str) -> None:
    case.open = None
    case.current_hop = None
    case.status = status


def _close_case(
    store: CaseStore, case: Case, *, outcome: str, at: datetime, recorded_at: datetime, actor: str
) -> None:
    _leave_hop(case, "closed")
    case.outcome = outcome
    case.closed_at = at
    legal.close(case.deadlines, at=at, why=f"the case closed ({outcome})")
    _sync_deadlines(case)
    store.append(
        case,
        kind="case_closed",
        actor=actor,
        payload={"outcome": outcome},
        occurred_at=at,
        recorded_at=recorded_at,
    )


def _digest(key: str | None, **parts: Any) -> str | None:
    """What a keyed command asked for, so a reused key with other arguments is caught."""
    if key is None:
        return None
    return hashlib.sha256(canonical(parts).encode()).hexdigest()[:24]


def _check_seq(case: Case, seq: int | None) -> None:
    """Refuse a command sent on a view of the case that is no longer current."""
    if seq is not None and seq != case.last_seq:
        raise Conflict(
            f"{case.reference} has moved on since you looked at it (event {seq}; it is now at "
            f"event {case.last_seq}): read it again and decide on what it says now",
            reference=case.reference,
            expected_seq=seq,
            actual_seq=case.last_seq,
        )


def _require_open(case: Case) -> None:
    if case.status == "closed":
        raise CommandRejected(
            f"{case.reference} is closed ({case.outcome}): nothing more can be decided"
        )


def _current(case: Case, hop: int | None) -> Hop:
    """The open hop, checked against the hop the caller believes is open."""
    if hop is not None and case.status == "closed":
        raise Conflict(
            f"{case.reference}: hop {hop} is no longer open; the case was closed "
            f"({case.outcome}) by another command",
            reference=case.reference,
            hop=hop,
        )
    _require_open(case)
    if case.open is None:
        raise CommandRejected(
            f"{case.reference} is with the requester: no hop is open "
            "(use `rogatory resubmit` when the requester answers)"
        )
    if hop is not None and hop != case.open.hop:
        raise Conflict(
            f"{case.reference}: hop {hop} is no longer open (the open hop is {case.open.hop}, "
            f"{case.open.route_step} at {case.open.holder}); someone decided first",
            reference=case.reference,
            hop=hop,
        )
    return case.open


def _code(enum: Any, value: Any, name: str) -> Any:
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(e.value for e in enum)
        raise CommandRejected(f"unknown {name} {value!r} (known: {known})") from None


# -- prescription -----------------------------------------------------------------------------


def compute_prescription(
    store: CaseStore, case: Case, routing: Routing, *, as_of: date
) -> PrescriptionResult | None:
    """The case's prescription date recomputed from its recorded events."""
    rules = routing.config.prescription
    if rules is None:
        return None
    period = period_for(
        rules, OffenceCategory(case.offence_category), offence_date=case.offence_date
    )
    if period is None:
        return None
    return prescription_date(
        period=period,
        effects=rules.effects,
        offence_date=case.offence_date,
        discovery_date=case.discovery_date,
        events=store.prescription_events(case),
        as_of=as_of,
    )


def _sync_deadlines(case: Case) -> None:
    """The case's sweep pointer and earliest legal due, from its legal deadlines."""
    case.deadline_next_at, case.legal_due_at = legal.summary(case.deadlines)


def _follow_deadline(store: CaseStore, case: Case, routing: Routing, route: Route) -> None:
    """An open hop that follows a legal deadline moves with it (a late anchor, an extension)."""
    hop = case.open
    if hop is None:
        return
    step_cfg = route.steps[hop.step_index]
    follows = legal.linked(case.deadlines, step_cfg.deadline) if step_cfg.deadline else None
    if follows is None or datetime.fromisoformat(follows["due_at"]) == hop.due_at:
        return
    calendar = routing.calendar(hop.holder)
    hop.due_at = datetime.fromisoformat(follows["due_at"])
    hop.rungs = legal.window_rungs(
        route.rungs_for(hop.step_index, routing.config.escalation),
        datetime.fromisoformat(follows["anchored_at"]),
        hop.due_at,
        calendar,
        before=hop.rungs,
    )
    hop.next_rung_at = hop_next_rung_at(hop, calendar)
    store.touch(hop)


def deadline_event(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    event: str,
    on: When = None,
    deadline: str | None = None,
    until: date | None = None,
    reasons: str | None = None,
    actor: str = SYSTEM,
    idempotency_key: str | None = None,
) -> Result:
    """Record an event a legal deadline runs from or moves by: an arrest, a consent, an
    extension notified, a new surrender date agreed, a shorter deadline asked."""
    store = CaseStore.of(session)
    digest = _digest(
        idempotency_key,
        cmd="deadline",
        ref=reference,
        event=event,
        deadline=deadline,
        until=until.isoformat() if until else None,
        reasons=reasons,
    )
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    if event not in legal.EVENTS:
        raise CommandRejected(
            f"unknown deadline event {event!r} (known: {', '.join(legal.EVENTS)})"
        )
    case = store.case(reference)
    _check_seq(case, seq)
    _require_open(case)
    routing = routings.pinned(session, case.routing_version)
    route = routing.config.route(case.route_id)
    at, read_as = _when(on, clock, calendar=routing.calendar(None))
    recorded_at = clock.now()
    # Worked on a copy: a refused event leaves the case as it was.
    items = [
        {**d, "moves": list(d["moves"]), "rungs": [dict(r) for r in d["rungs"]]}
        for d in case.deadlines or ()
    ]
    said = legal.record(
        items,
        event=event,
        at=at,
        routing=routing,
        route=route,
        deadline=deadline,
        until=until,
        reasons=reasons,
    )
    case.deadlines = items
    _sync_deadlines(case)
    _follow_deadline(store, case, routing, route)
    main = store.append(
        case,
        kind="deadline_event",
        actor=actor,
        payload={
            "command": digest,
            "event": event,
            "deadline": deadline,
            "until": until.isoformat() if until else None,
            "reasons": reasons,
            "result": said,
        },
        occurred_at=at,
        recorded_at=recorded_at,
        idempotency_key=idempotency_key,
    )
    store.command_done()
    return Result(
        reference, main, case.current_hop, case.status, f"{reference}: {event}{read_as}; {said}"
    )


def _set_prescription(
    case: Case, result: PrescriptionResult | None, routing: Routing
) -> dict[str, Any]:
    case.prescription_date = result.date if result else None
    case.prescription_running = result.running if result else False
    if result is None:
        why = no_period_reason(
            routing.config.prescription,
            OffenceCategory(case.offence_category),
            offence_date=case.offence_date,
        )
        return {"date": None, "why": why}
    return {
        "date": result.date.isoformat(),
        "base": result.base.isoformat(),
        "running": result.running,
        "why": result.history[-1].why if result.history else "",
    }


# -- commands ----------------------------------------------------------------------------------


def register(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    data: Any,
    actor: str = SYSTEM,
    on: When = None,
    idempotency_key: str | None = None,
) -> Result:
    """Register a request: validate, pick its route, pin the routing, open its first hop."""
    store = CaseStore.of(session)
    digest = _digest(
        idempotency_key, cmd="register", data=data if isinstance(data, dict) else str(data)
    )
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    today = on.date() if isinstance(on, datetime) else on or clock.now().date()
    intake = RequestIntake.check(data, today=today, countries=routings.current.keys())
    routing = routings.for_country(intake.country)
    fields = intake.routing_fields()
    route = _match_route(routing, fields)
    first = 0 if _applies(route, 0, fields) else _next_index(route, 0, fields)
    if first is None:
        raise NoRouteMatches(f"route {route.id!r} has no step that applies to this request")
    at, read_as = _when(on, clock, calendar=routing.calendar(route.steps[first].holder))

    recorded_at = clock.now()
    _pin(store, routing, recorded_at)
    reference = f"{intake.country}-{at.year}-{store.next_number(intake.country, at.year):06d}"
    submitted = intake.model_dump(mode="json")
    case = store.add_case(
        {
            "reference": reference,
            "country": intake.country,
            "route_id": route.id,
            "routing_version": routing.version,
            "direction": str(intake.direction),
            "kind": str(intake.kind),
            "legal_basis": str(intake.legal_basis),
            "offence_category": str(intake.offence_category),
            "counterpart": intake.counterpart,
            "urgent": intake.urgent,
            "coercive": intake.coercive,
            "confidential": intake.confidential,
            "offence_date": intake.offence_date,
            "discovery_date": intake.discovery_date,
            "status": "open",
            "registered_at": at,
            "prescription_date": None,
            "prescription_running": False,
        },
        submitted,
    )
    prescription = _set_prescription(
        case, compute_prescription(store, case, routing, as_of=at.date()), routing
    )
    case.deadlines = legal.start(routing, route, received_at=at)
    _sync_deadlines(case)
    main = store.append(
        case,
        kind="registered",
        actor=actor,
        payload={
            "command": digest,
            "intake": submitted,
            "route": route.id,
            "routing_version": routing.version,
            "prescription": prescription,
        },
        occurred_at=at,
        recorded_at=recorded_at,
        idempotency_key=idempotency_key,
    )
    hop = _open_hop(
        store,
        case,
        routing=routing,
        route=route,
        index=first,
        at=at,
        recorded_at=recorded_at,
        actor=actor,
    )
    store.command_done()
    warnings: tuple[str, ...] = ()
    if case.prescription_date is not None and case.prescription_date < at.date():
        warnings = (
            f"the offence already prescribed on {case.prescription_date} "
            f"({prescription['why'] or 'its limitation period'}): the request is registered, "
            "but check that a suspension or interruption was recorded before sending it",
        )
    return Result(
        reference,
        main,
        hop.hop,
        case.status,
        f"registered {reference} on route {route.id}; hop 1 at {hop.holder}, "
        f"due {hop.due_at.isoformat()}{read_as}" + "".join(f"\nwarning: {w}" for w in warnings),
        warnings=warnings,
    )


def _pin(store: CaseStore, routing: Routing, at: datetime) -> None:
    """Keep the routing's text in the ledger, once per version."""
    if routing.version in store.pinned:
        return
    store.pin({**routing.snapshot(), "first_seen_at": at})


def _match_route(routing: Routing, fields: dict[str, Any]) -> Route:
    for route in routing.config.routes:
        if route.when.matches(fields):
            return route
    near: list[str] = []
    for route in routing.config.routes:
        misses = route.when.mismatches(fields)
        if len(misses) <= 2:
            near.append(f"{route.id}: {'; '.join(misses)}")
    detail = ("; nearly matched:\n  " + "\n  ".join(near)) if near else ""
    raise NoRouteMatches(
        f"no route of {routing.country} fits this request "
        f"({', '.join(f'{k}={v}' for k, v in fields.items())}){detail}"
    )


def decide(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    outcome: Outcome | str,
    hop: int | None = None,
    ground: RefusalGround | str | None = None,
    cause: DelayCause | str | None = None,
    note: str | None = None,
    reasons_given: bool | None = None,
    consulted: bool | None = None,
    actor: str = SYSTEM,
    on: When = None,
    idempotency_key: str | None = None,
) -> Result:
    """Record the holder's decision on the open hop and move the case where the route says."""
    store = CaseStore.of(session)
    digest = _digest(
        idempotency_key,
        cmd="decide",
        ref=reference,
        outcome=str(outcome),
        hop=hop,
        ground=str(ground),
        cause=str(cause),
        note=note,
    )
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    case = store.case(reference)
    _check_seq(case, seq)
    step = _current(case, hop)
    routing = routings.pinned(session, case.routing_version)
    route = routing.config.route(case.route_id)
    outcome, ground, cause = _check_decision(route, step, outcome, ground, cause)
    target = route.decisions_for(step.step_index)[outcome]
    at, read_as = _when(
        on, clock, calendar=routing.calendar(step.holder), not_before=step.opened_at
    )
    recorded_at = clock.now()
    prohibited = ground is not None and ground.prohibited_by_uncac

    _close_hop(
        store,
        step,
        at=at,
        outcome=str(outcome),
        target=target,
        ground=str(ground) if ground else None,
        cause=str(cause) if cause else None,
    )
    main = store.append(
        case,
        kind="decided",
        actor=actor,
        payload={
            "command": digest,
            "hop": step.hop,
            "step": step.route_step,
            "holder": step.holder,
            "outcome": str(outcome),
            "target": target,
            "ground": str(ground) if ground else None,
            "prohibited_ground": prohibited,
            "cause": str(cause) if cause else None,
            "reasons_given": reasons_given,
            "consulted": consulted,
            "note": note,
        },
        occurred_at=at,
        recorded_at=recorded_at,
        idempotency_key=idempotency_key,
    )
    message = f"{reference}: hop {step.hop} ({step.route_step} at {step.holder}) {outcome}{read_as}"
    for said in legal.on_decision(
        case.deadlines,
        step=step.route_step,
        outcome=str(outcome),
        at=at,
        routing=routing,
        route=route,
    ):
        message += f"; {said}"
    _sync_deadlines(case)
    if prohibited:
        message += " — WARNING: UNCAC art. 46(8)/(22) prohibits refusing on this ground"
    index: int | None = None
    if target == "requester":
        _leave_hop(case, "with_requester")
        message += "; back with the requester until it resubmits"
    elif target == "stay":
        index = step.step_index
    elif target == "next":
        index = _next_index(route, step.step_index, case.routing_fields())
    elif target != "end":
        index = route.step_index(target)
    if index is not None:
        new = _open_hop(
            store,
            case,
            routing=routing,
            route=route,
            index=index,
            at=at,
            recorded_at=recorded_at,
            actor=actor,
        )
        message += f"; hop {new.hop} opened at {new.holder}, due {new.due_at.isoformat()}"
    elif target != "requester":
        _close_case(store, case, outcome=str(outcome), at=at, recorded_at=recorded_at, actor=actor)
        message += "; case closed"
    store.command_done()
    return Result(reference, main, case.current_hop, case.status, message)


def _check_decision(
    route: Route, step: Hop, outcome: Outcome | str, ground: Any, cause: Any
) -> tuple[Outcome, RefusalGround | None, DelayCause | None]:
    try:
        outcome = Outcome(outcome)
    except ValueError:
        raise DecisionNotAllowed(
            f"unknown outcome {outcome!r} (known: {', '.join(o.value for o in Outcome)})"
        ) from None
    allowed = route.decisions_for(step.step_index)
    if outcome not in allowed:
        raise DecisionNotAllowed(
            f"{outcome} is not allowed on step {step.route_step!r} of route {route.id!r} "
            f"(allowed: {', '.join(str(o) for o in allowed)})"
        )
    ground_code = _code(RefusalGround, ground, "ground")
    cause_code = _code(DelayCause, cause, "cause")
    if outcome == Outcome.REFUSED and ground_code is None:
        raise CommandRejected("a refusal needs --ground (e.g. no_dual_criminality)")
    if outcome != Outcome.REFUSED and ground_code is not None:
        raise CommandRejected(f"--ground applies to refusals only, not to {outcome}")
    if outcome == Outcome.RETURNED and cause_code is None:
        raise CommandRejected("a return needs --cause (e.g. incomplete_request)")
    return outcome, ground_code, cause_code


def resubmit(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    note: str | None = None,
    actor: str = SYSTEM,
    on: When = None,
    idempotency_key: str | None = None,
) -> Result:
    """The requester answered a return: reopen the step the request was returned from."""
    store = CaseStore.of(session)
    digest = _digest(idempotency_key, cmd="resubmit", ref=reference, note=note)
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    case = store.case(reference)
    _check_seq(case, seq)
    if case.status != "with_requester":
        raise CommandRejected(f"{reference} is {case.status}, not waiting on the requester")
    last = store.hop(case, case.hop_count)
    routing = routings.pinned(session, case.routing_version)
    at, read_as = _when(
        on, clock, calendar=routing.calendar(last.holder), not_before=last.closed_at
    )
    recorded_at = clock.now()
    route = routing.config.route(case.route_id)
    main = store.append(
        case,
        kind="resubmitted",
        actor=actor,
        payload={"command": digest, "note": note, "after_hop": case.hop_count},
        occurred_at=at,
        recorded_at=recorded_at,
        idempotency_key=idempotency_key,
    )
    hop = _open_hop(
        store,
        case,
        routing=routing,
        route=route,
        index=last.step_index,
        at=at,
        recorded_at=recorded_at,
        actor=actor,
        reason="resubmitted",
    )
    store.command_done()
    return Result(
        reference,
        main,
        hop.hop,
        case.status,
        f"{reference}: resubmitted{read_as}; hop {hop.hop} opened at {hop.holder}",
    )


def stop_clock(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    reason: str,
    hop: int | None = None,
    actor: str = SYSTEM,
    on: When = None,
    idempotency_key: str | None = None,
) -> Result:
    """Stop the open hop's SLA while the case waits on the requester (no reminders meanwhile)."""
    store = CaseStore.of(session)
    digest = _digest(idempotency_key, cmd="stop", ref=reference, reason=reason, hop=hop)
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    if not reason.strip():
        raise CommandRejected("stopping the clock needs --reason")
    case = store.case(reference)
    _check_seq(case, seq)
    step = _current(case, hop)
    if step.stopped_since is not None:
        raise CommandRejected(
            f"{reference}: the clock of hop {step.hop} is already stopped since "
            f"{step.stopped_since.isoformat()}"
        )
    routing = routings.pinned(session, case.routing_version)
    at, read_as = _when(
        on, clock, calendar=routing.calendar(step.holder), not_before=step.opened_at
    )
    step.stopped_since = at
    step.next_rung_at = None
    store.touch(step)
    main = store.append(
        case,
        kind="clock_stopped",
        actor=actor,
        payload={"command": digest, "hop": step.hop, "reason": reason},
        occurred_at=at,
        recorded_at=clock.now(),
        idempotency_key=idempotency_key,
    )
    store.command_done()
    return Result(
        reference,
        main,
        step.hop,
        case.status,
        f"{reference}: clock of hop {step.hop} stopped ({reason}){read_as}",
    )


def resume_clock(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    reason: str,
    hop: int | None = None,
    actor: str = SYSTEM,
    on: When = None,
    idempotency_key: str | None = None,
) -> Result:
    """Restart the hop's SLA; the time it stood still pushes the due instant and rungs back."""
    store = CaseStore.of(session)
    digest = _digest(idempotency_key, cmd="resume", ref=reference, reason=reason, hop=hop)
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    case = store.case(reference)
    _check_seq(case, seq)
    step = _current(case, hop)
    if step.stopped_since is None:
        raise CommandRejected(f"{reference}: the clock of hop {step.hop} is not stopped")
    routing = routings.pinned(session, case.routing_version)
    calendar = routing.calendar(step.holder)
    at, read_as = _when(on, clock, calendar=calendar, not_before=step.stopped_since)
    shift = stopped_duration(calendar, step.stopped_since, at, Duration.parse(step.sla).unit)
    if shift is not None:
        step.due_at = _push(calendar, step.due_at, shift)
        step.rungs = [
            {
                **r,
                "at": int(_push(calendar, datetime.fromtimestamp(r["at"], UTC), shift).timestamp()),
            }
            for r in step.rungs
        ]
    step.stopped_bd += calendar.business_days_between(step.stopped_since, at)
    step.stopped_since = None
    step.next_rung_at = hop_next_rung_at(step, calendar)
    store.touch(step)
    main = store.append(
        case,
        kind="clock_resumed",
        actor=actor,
        payload={
            "command": digest,
            "hop": step.hop,
            "reason": reason,
            "shift": str(shift) if shift else None,
            "due_at": step.due_at.isoformat(),
        },
        occurred_at=at,
        recorded_at=clock.now(),
        idempotency_key=idempotency_key,
    )
    store.command_done()
    return Result(
        reference,
        main,
        step.hop,
        case.status,
        f"{reference}: clock of hop {step.hop} resumed{read_as}; due {step.due_at.isoformat()}",
    )


def stopped_duration(
    calendar: Calendar, since: datetime, until: datetime, unit: str
) -> Duration | timedelta | None:
    """How far a stop pushes deadlines: business days for `bd` SLAs, else days or elapsed time."""
    if unit == "bd":
        n = calendar.business_days_between(since, until)
        return Duration(n, "bd") if n > 0 else None
    if unit == "d":
        n = (calendar.local_date(until) - calendar.local_date(since)).days
        return Duration(n, "d") if n > 0 else None
    elapsed = until - since
    return elapsed if elapsed > timedelta(0) else None


def _push(calendar: Calendar, instant: datetime, shift: Duration | timedelta) -> datetime:
    if isinstance(shift, timedelta):
        return instant + shift
    # Deadlines sit at the end of a day: N more (business) days land at the end of the N-th.
    return calendar.add(instant, shift)


def reassign(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    to: str,
    hop: int | None = None,
    note: str | None = None,
    actor: str = SYSTEM,
    on: When = None,
    idempotency_key: str | None = None,
) -> Result:
    """The request reached the wrong authority: close that hop and open it again at `to`."""
    store = CaseStore.of(session)
    digest = _digest(idempotency_key, cmd="reassign", ref=reference, to=to, hop=hop, note=note)
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    case = store.case(reference)
    _check_seq(case, seq)
    step = _current(case, hop)
    routing = routings.pinned(session, case.routing_version)
    if to not in routing.config.authorities:
        known = ", ".join(routing.config.authorities)
        raise CommandRejected(f"unknown authority {to!r} (known: {known})")
    if to == step.holder:
        raise CommandRejected(f"hop {step.hop} is already held by {to}")
    at, read_as = _when(
        on, clock, calendar=routing.calendar(step.holder), not_before=step.opened_at
    )
    recorded_at = clock.now()
    route = routing.config.route(case.route_id)
    cause = DelayCause.WRONG_AUTHORITY.value
    _close_hop(store, step, at=at, outcome="reassigned", target=to, cause=cause)
    main = store.append(
        case,
        kind="reassigned",
        actor=actor,
        payload={
            "command": digest,
            "hop": step.hop,
            "from": step.holder,
            "to": to,
            "cause": cause,
            "note": note,
        },
        occurred_at=at,
        recorded_at=recorded_at,
        idempotency_key=idempotency_key,
    )
    new = _open_hop(
        store,
        case,
        routing=routing,
        route=route,
        index=step.step_index,
        at=at,
        recorded_at=recorded_at,
        actor=actor,
        holder=to,
        reason=cause,
    )
    store.command_done()
    return Result(
        reference,
        main,
        new.hop,
        case.status,
        f"{reference}: hop {step.hop} was at the wrong authority{read_as}; hop {new.hop} at {to}",
    )


def withdraw(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    note: str | None = None,
    actor: str = SYSTEM,
    on: When = None,
    idempotency_key: str | None = None,
) -> Result:
    """The requester no longer needs the assistance (UNCAC art. 46(24)): close the case."""
    store = CaseStore.of(session)
    digest = _digest(idempotency_key, cmd="withdraw", ref=reference, note=note)
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    case = store.case(reference)
    _check_seq(case, seq)
    _require_open(case)
    step = case.open
    routing = routings.pinned(session, case.routing_version)
    last = step or store.hop(case, case.hop_count)
    at, read_as = _when(
        on,
        clock,
        calendar=routing.calendar(last.holder),
        not_before=step.opened_at if step else last.closed_at,
    )
    recorded_at = clock.now()
    if step is not None:
        _close_hop(store, step, at=at, outcome="withdrawn")
    main = store.append(
        case,
        kind="withdrawn",
        actor=actor,
        payload={"command": digest, "hop": step.hop if step else None, "note": note},
        occurred_at=at,
        recorded_at=recorded_at,
        idempotency_key=idempotency_key,
    )
    _close_case(store, case, outcome="withdrawn", at=at, recorded_at=recorded_at, actor=actor)
    store.command_done()
    return Result(reference, main, None, case.status, f"{reference}: withdrawn{read_as}")


def record(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    event: EventKind | str,
    on: date,
    request_abroad: str | None = None,
    applied_on: date | None = None,
    by: RequestMaker | str | None = None,
    note: str | None = None,
    actor: str = SYSTEM,
    idempotency_key: str | None = None,
) -> Result:
    """Record a prescription-relevant fact and recompute the case's prescription date.

    Refused, with nothing written, when the event lacks what its rule needs: the application
    day of a § 3292 order, who made a request abroad under § 78c, or which request an answer
    or order belongs to while several are pending.
    """
    store = CaseStore.of(session)
    # The later fields join the digest only when given, so an old command's key still matches.
    later = {"applied_on": applied_on and applied_on.isoformat(), "by": by and str(by)}
    digest = _digest(
        idempotency_key,
        cmd="record",
        ref=reference,
        event=str(event),
        on=on.isoformat(),
        request=request_abroad,
        **{k: v for k, v in later.items() if v is not None},
    )
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    kind = _code(EventKind, event, "event")
    case = store.case(reference)
    _check_seq(case, seq)
    now = clock.now()
    routing = routings.pinned(session, case.routing_version)
    # A prescription event is dated, not timed: the day where the case's country sits.
    calendar = routing.calendar(None)
    if on > calendar.local_date(now):
        raise CommandRejected(f"--on {on} is in the future: record what happened")
    if on < case.offence_date:
        raise CommandRejected(f"--on {on} is before the offence date {case.offence_date}")
    maker = None if by is None else _code(RequestMaker, by, "by")
    if applied_on is not None and kind is not EventKind.SUSPENSION_ORDERED:
        raise CommandRejected(f"--applied-on is the day a suspension was applied for, not a {kind}")
    if applied_on is not None and applied_on > on:
        raise CommandRejected(
            f"--applied-on {applied_on} is after the order on {on}: "
            "an order follows its application"
        )
    if maker is not None and kind is not EventKind.REQUEST_SENT_ABROAD:
        raise CommandRejected(f"--by says who made a request sent abroad, not a {kind}")
    rules = routing.config.prescription
    in_force = (
        rules_in_force(rules.effects, offence_date=case.offence_date)[0] if rules else frozenset()
    )
    if (
        kind is EventKind.SUSPENSION_ORDERED
        and applied_on is None
        and PrescriptionEffect.US_3292 in in_force
    ):
        raise CommandRejected(
            f"{reference}: give --applied-on, the day the United States applied for this "
            "suspension order: under 18 U.S.C. § 3292 the suspension counts only if the "
            f"application was filed before the limitation period ran out ({KOZENY}); the order "
            "itself may come later. Record --on <day of the order> --applied-on <day of the "
            "application>"
        )
    if (
        kind is EventKind.REQUEST_SENT_ABROAD
        and maker is None
        and PrescriptionEffect.DE_78C in in_force
    ):
        raise CommandRejected(
            f"{reference}: give --by judge, prosecutor or police, who made this request abroad: "
            'under StGB § 78c(1) Nr. 12 only a judge\'s request ("jedes richterliche Ersuchen") '
            "interrupts the limitation period"
        )
    try:
        request_abroad = request_meant(kind, request_abroad, store.prescription_events(case), on=on)
    except ValueError as exc:
        raise CommandRejected(f"{reference}: {exc}") from exc
    before = case.prescription_date
    store.prescription_events(case).append(
        PrescriptionEvent(kind, on, request_abroad, applied_on=applied_on, by=maker)
    )
    result = compute_prescription(store, case, routing, as_of=now.date())
    store.prescription_events(case).pop()  # `append` below records it for good
    summary = _set_prescription(case, result, routing)
    # The history's last word may be a suspension still open; the event's own effect (the
    # same-day events of its kind sort stably, so it is the last of them) is kept before it.
    own = [m for m in result.history if (m.on, m.cause) == (on, kind.value)] if result else []
    if result is not None and own and own[-1] is not result.history[-1]:
        summary["why"] = f"{own[-1].why}; then {summary['why']}"
    main = store.append(
        case,
        kind="prescription_event",
        actor=actor,
        payload={
            "command": digest,
            "event": kind.value,
            "on": on.isoformat(),
            "request": request_abroad,
            **{k: v for k, v in later.items() if v is not None},
            "note": note,
            "before": before.isoformat() if before else None,
            "after": summary,
        },
        occurred_at=min(now, datetime.combine(on, time(12), calendar.tz)),
        recorded_at=now,
        idempotency_key=idempotency_key,
    )
    store.command_done()
    moved = (
        "unchanged"
        if case.prescription_date == before
        else (f"moved from {before} to {case.prescription_date}")
    )
    return Result(
        reference,
        main,
        case.current_hop,
        case.status,
        f"{reference}: {kind.value} on {on} recorded; prescription date {moved}",
    )


def migrate(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    actor: str = SYSTEM,
    idempotency_key: str | None = None,
) -> Result:
    """Move a case to the routing version now in force, explicitly and on the record."""
    store = CaseStore.of(session)
    digest = _digest(idempotency_key, cmd="migrate", ref=reference)
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    case = store.case(reference)
    _check_seq(case, seq)
    _require_open(case)
    target = routings.for_country(case.country)
    if target.version == case.routing_version:
        raise CommandRejected(f"{reference} already runs on the current routing ({target.version})")
    try:
        route = target.config.route(case.route_id)
    except KeyError:
        raise CommandRejected(
            f"route {case.route_id!r} no longer exists in {target.file}: "
            "migration would lose the case's place"
        ) from None
    step = case.open
    new_index = None
    if step is not None:
        try:
            new_index = route.step_index(step.route_step)
        except KeyError:
            raise CommandRejected(
                f"step {step.route_step!r} (the open hop) no longer exists in route {route.id!r}"
            ) from None
    now = clock.now()
    if step is not None and new_index is not None:
        step.step_index = new_index
        store.touch(step)
    _pin(store, target, now)
    old = case.routing_version
    case.routing_version = target.version
    _set_prescription(case, compute_prescription(store, case, target, as_of=now.date()), target)
    main = store.append(
        case,
        kind="migrated",
        actor=actor,
        payload={"command": digest, "from": old, "to": target.version},
        occurred_at=now,
        recorded_at=now,
        idempotency_key=idempotency_key,
    )
    store.command_done()
    return Result(
        reference,
        main,
        case.current_hop,
        case.status,
        f"{reference}: moved from routing {old} to {target.version}",
    )


# -- the workspace: who works a hop, its documents, its escalation --------------------------------


def _require_officer(session: Session, officer: str, *, country: str, authority: str) -> None:
    """Refuse an officer who is not an active clerk or head of `authority`."""
    from models.identity import Account, RoleGrant, RoleName

    found = session.execute(
        select(Account.active, RoleGrant.role)
        .outerjoin(
            RoleGrant,
            (RoleGrant.account_id == Account.id)
            & (RoleGrant.country == country)
            & (RoleGrant.authority == authority)
            & RoleGrant.role.in_([RoleName.CLERK.value, RoleName.HEAD.value]),
        )
        .where(Account.name == officer)
    ).all()
    if not found:
        raise CommandRejected(f"no account {officer!r}: assign the hop to an existing account")
    if not found[0].active:
        raise CommandRejected(f"account {officer!r} is closed: assign the hop to someone else")
    if all(row.role is None for row in found):
        raise CommandRejected(
            f"{officer!r} is not a clerk or head of {country}/{authority}, which holds the hop: "
            "assign it to one of that authority's officers"
        )


def assign(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    officer: str | None = None,
    hop: int | None = None,
    note: str | None = None,
    actor: str = SYSTEM,
    idempotency_key: str | None = None,
) -> Result:
    """Give the open hop to an officer of the authority holding it (None: release it)."""
    store = CaseStore.of(session)
    digest = _digest(
        idempotency_key, cmd="assign", ref=reference, officer=officer, hop=hop, note=note
    )
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    case = store.case(reference)
    _check_seq(case, seq)
    step = _current(case, hop)
    previous = step.assigned_to
    if officer == previous:
        raise CommandRejected(
            f"{reference}: hop {step.hop} is already assigned to {officer}"
            if officer
            else f"{reference}: hop {step.hop} is assigned to nobody: nothing to release"
        )
    if officer is not None:
        _require_officer(session, officer, country=case.country, authority=step.holder)
    now = clock.now()
    step.assigned_to = officer
    store.touch(step)
    main = store.append(
        case,
        kind="hop_assigned",
        actor=actor,
        payload={
            "command": digest,
            "hop": step.hop,
            "holder": step.holder,
            "officer": officer,
            "previous": previous,
            "note": note,
        },
        occurred_at=now,
        recorded_at=now,
        idempotency_key=idempotency_key,
    )
    store.command_done()
    said = f"assigned to {officer}" if officer else f"released (it was {previous}'s)"
    return Result(
        reference,
        main,
        step.hop,
        case.status,
        f"{reference}: hop {step.hop} at {step.holder} {said}",
    )


def attach(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    sha256: str,
    kind: str,
    filename: str,
    media_type: str,
    size: int,
    note: str | None = None,
    actor: str = SYSTEM,
    idempotency_key: str | None = None,
) -> Result:
    """Attach a document, kept in the document store under `sha256`, to the case's record.

    The same content attached twice to one case is refused, naming the first attachment.
    """
    from models.documents import MAX_DOCUMENT_BYTES, SHA256, DocumentKind

    store = CaseStore.of(session)
    digest = _digest(
        idempotency_key,
        cmd="attach",
        ref=reference,
        sha256=sha256,
        kind=str(kind),
        filename=filename,
        media_type=media_type,
        size=size,
        note=note,
    )
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    if not SHA256.match(sha256):
        raise CommandRejected(f"{sha256!r} is not a SHA-256 (64 lowercase hexadecimal digits)")
    code = _code(DocumentKind, kind, "document kind")
    if not 0 <= size <= MAX_DOCUMENT_BYTES:
        raise CommandRejected(f"a document has at most {MAX_DOCUMENT_BYTES} bytes, not {size}")
    case = store.case(reference)
    _check_seq(case, seq)
    earlier = store.attached(case, sha256)
    if earlier is not None:
        raise CommandRejected(
            f"{reference}: this content is already attached, as {earlier[1]!r} (event "
            f"{earlier[0]}): nothing attached twice",
            reference=reference,
        )
    now = clock.now()
    main = store.append(
        case,
        kind="document_attached",
        actor=actor,
        payload={
            "command": digest,
            "sha256": sha256,
            "kind": code.value,
            "filename": filename,
            "media_type": media_type,
            "size": size,
            "note": note,
        },
        occurred_at=now,
        recorded_at=now,
        idempotency_key=idempotency_key,
    )
    store.attach_document(
        {
            "request_id": case.id,
            "sha256": sha256,
            "kind": code.value,
            "filename": filename,
            "media_type": media_type,
            "size": size,
            "seq": main,
            "actor": actor,
            "recorded_at": now,
        }
    )
    store.command_done()
    return Result(
        reference,
        main,
        case.current_hop,
        case.status,
        f"{reference}: {code.value} {filename!r} attached ({size} bytes, sha256 {sha256[:12]}…)",
    )


def acknowledge(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    note: str,
    hop: int | None = None,
    actor: str = SYSTEM,
    idempotency_key: str | None = None,
) -> Result:
    """The escalation of the open hop is seen to: the rungs fired so far repeat no more, the
    rungs not reached yet still fire when due."""
    store = CaseStore.of(session)
    digest = _digest(idempotency_key, cmd="acknowledge", ref=reference, note=note, hop=hop)
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    if not note.strip():
        raise CommandRejected("acknowledging an escalation needs --note (what is being done)")
    case = store.case(reference)
    _check_seq(case, seq)
    step = _current(case, hop)
    fired = [r for r in step.rungs if r["fired"] > 0]
    if not fired:
        raise CommandRejected(
            f"{reference}: no rung of hop {step.hop}'s ladder has fired yet: nothing to acknowledge"
        )
    fresh = [r for r in fired if r.get("acknowledged") is None]
    if not fresh:
        raise CommandRejected(
            f"{reference}: hop {step.hop}'s escalation was acknowledged by {step.acknowledged_by} "
            f"and no rung has fired since: nothing new to acknowledge"
        )
    routing = routings.pinned(session, case.routing_version)
    now = clock.now()
    step.rungs = [{**r, "acknowledged": r["fired"]} if r in fresh else r for r in step.rungs]
    step.acknowledged_at = now
    step.acknowledged_by = actor
    step.next_rung_at = hop_next_rung_at(step, routing.calendar(step.holder))
    store.touch(step)
    main = store.append(
        case,
        kind="escalation_acknowledged",
        actor=actor,
        payload={
            "command": digest,
            "hop": step.hop,
            "rungs": [r["n"] for r in fresh],
            "note": note,
        },
        occurred_at=now,
        recorded_at=now,
        idempotency_key=idempotency_key,
    )
    store.command_done()
    highest = max(fresh, key=lambda r: r["n"])
    return Result(
        reference,
        main,
        step.hop,
        case.status,
        f"{reference}: hop {step.hop}'s {highest['kind']} acknowledged; the rungs fired so far "
        "repeat no more",
    )


def snooze(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    seq: int | None = None,
    until: date,
    reason: str,
    hop: int | None = None,
    actor: str = SYSTEM,
    idempotency_key: str | None = None,
) -> Result:
    """No rung of the open hop fires before the start of `until` where its holder sits."""
    store = CaseStore.of(session)
    digest = _digest(
        idempotency_key,
        cmd="snooze",
        ref=reference,
        until=until.isoformat(),
        reason=reason,
        hop=hop,
    )
    replay = _replay(store, idempotency_key, digest)
    if replay is not None:
        return replay
    if not reason.strip():
        raise CommandRejected("snoozing an escalation needs --reason")
    case = store.case(reference)
    _check_seq(case, seq)
    step = _current(case, hop)
    routing = routings.pinned(session, case.routing_version)
    calendar = routing.calendar(step.holder)
    now = clock.now()
    start = snooze_start(until, calendar)
    if start <= now:
        raise CommandRejected(
            f"--until {until} is not in the future where {step.holder} sits (it is "
            f"{calendar.local_date(now)} in {calendar.timezone}): snooze until a later day"
        )
    if case.prescription_date is not None and until > case.prescription_date:
        raise CommandRejected(
            f"--until {until} is after the case's prescription date {case.prescription_date}: "
            "a snooze may not hide a case past its prescription"
        )
    step.snoozed_until = start
    step.next_rung_at = hop_next_rung_at(step, calendar)
    store.touch(step)
    main = store.append(
        case,
        kind="escalation_snoozed",
        actor=actor,
        payload={
            "command": digest,
            "hop": step.hop,
            "until": until.isoformat(),
            "from": start.isoformat(),
            "reason": reason,
        },
        occurred_at=now,
        recorded_at=now,
        idempotency_key=idempotency_key,
    )
    store.command_done()
    return Result(
        reference,
        main,
        step.hop,
        case.status,
        f"{reference}: hop {step.hop}'s ladder snoozed until {until} "
        f"(from {start:%Y-%m-%d %H:%M} {calendar.timezone})",
    )


def snooze_start(until: date, calendar: Calendar) -> datetime:
    """The instant a snooze `until` a day ends: that day's start where the holder sits."""
    return datetime.combine(until, time(0), calendar.tz)


def batch(session: Session) -> Any:
    """Run several commands with one write at the end (simulator, bulk import)."""
    return CaseStore.of(session).batch()


def attach_flow_run(*, session: Session, reference: str, flow_run_id: str) -> None:
    """Remember which Prefect flow run drives the case (an operational pointer, not a fact)."""
    session.execute(
        update(Request).where(Request.reference == reference).values(flow_run_id=flow_run_id)
    )

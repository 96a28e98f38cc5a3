"""The routing engine: the commands that move a case along its chain, each one event in the ledger.

Every command is a plain function taking `*, session, clock, routings`. It validates everything
first and raises `CommandRejected` (or `IntakeError`) before writing anything; the caller's
transaction commits or rolls back the whole command. A command given an `idempotency_key` that
was already used returns the first result instead of acting twice. Each event bumps the case's
sequence with a compare-and-set, so of two concurrent commands on one case exactly one wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.calendar import Calendar, Duration
from models.clock import Clock
from models.config import Route, Rung
from models.domain import DelayCause, Outcome, RefusalGround
from models.errors import (
    CommandRejected,
    Conflict,
    DecisionNotAllowed,
    NoRouteMatches,
    NotFound,
)
from models.intake import RequestIntake
from models.ledger import (
    Event,
    ReferenceCounter,
    Request,
    RoutingVersion,
    Step,
    canonical,
    event_hash,
)
from models.loader import Routing, routing_from_snapshot
from models.prescription import (
    EventKind,
    PrescriptionEvent,
    PrescriptionResult,
    period_for,
    prescription_date,
)

SYSTEM = "system"


class Routings:
    """The routing files in force, and every pinned version a case may still run on."""

    def __init__(self, current: Mapping[str, Routing]) -> None:
        self.current = dict(current)
        self._by_version = {r.version: r for r in current.values()}

    def pinned(self, session: Session, version: str) -> Routing:
        routing = self._by_version.get(version)
        if routing is None:
            row = session.get(RoutingVersion, version)
            if row is None:
                raise NotFound(f"routing version {version} is not in the ledger")
            routing = routing_from_snapshot(row.yaml_text, file=row.file, presets=row.presets)
            self._by_version[version] = routing
        return routing

    def for_country(self, country: str) -> Routing:
        try:
            return self.current[country]
        except KeyError:
            known = ", ".join(sorted(self.current))
            raise NotFound(f"no routing for country {country!r} (configured: {known})") from None


@dataclass(frozen=True)
class Result:
    """What a command did: the case, the seq of the command's own event, the hop now open."""

    reference: str
    seq: int
    hop: int | None
    status: str
    message: str
    replayed: bool = False


# -- shared mechanics ----------------------------------------------------------------------------


def _replay(session: Session, key: str | None, digest: str) -> Result | None:
    if key is None:
        return None
    found = session.execute(
        select(Event, Request).join(Request, Event.request_id == Request.id)
        .where(Event.idempotency_key == key)
    ).first()
    if found is None:
        return None
    event, request = found
    if _payload(event).get("command") != digest:
        raise Conflict(f"idempotency key {key!r} was already used for a different command")
    hop = _open_step(session, request)
    return Result(
        request.reference, event.seq, hop.hop if hop else None, request.status,
        "already done (same idempotency key): nothing repeated", replayed=True,
    )


def _payload(event: Event) -> dict[str, Any]:
    import json

    value: dict[str, Any] = json.loads(event.payload)
    return value


def _append(
    session: Session,
    request: Request,
    *,
    kind: str,
    actor: str,
    payload: dict[str, Any],
    occurred_at: datetime,
    recorded_at: datetime,
    idempotency_key: str | None = None,
) -> Event:
    """Append one event to the case's chain and move the case's head with a compare-and-set."""
    seq = request.last_seq + 1
    body = canonical(payload)
    digest = event_hash(
        prev_hash=request.head_hash,
        reference=request.reference,
        seq=seq,
        kind=kind,
        actor=actor,
        payload=body,
        occurred_at=occurred_at,
        recorded_at=recorded_at,
    )
    moved = session.execute(
        update(Request)
        .where(Request.id == request.id, Request.last_seq == request.last_seq)
        .values(last_seq=seq, head_hash=digest)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"{request.reference} was changed by another command: read it and retry")
    event = Event(
        request_id=request.id,
        seq=seq,
        kind=kind,
        actor=actor,
        payload=body,
        occurred_at=occurred_at,
        recorded_at=recorded_at,
        idempotency_key=idempotency_key,
        prev_hash=request.head_hash,
        hash=digest,
    )
    session.add(event)
    request.last_seq = seq
    request.head_hash = digest
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{request.reference}: a concurrent command won ({exc.orig})") from None
    return event


def _load(session: Session, reference: str) -> Request:
    request = session.scalars(select(Request).where(Request.reference == reference)).first()
    if request is None:
        raise NotFound(f"no case {reference!r}: check the reference (e.g. SV-2026-000123)")
    return request


def _open_step(session: Session, request: Request) -> Step | None:
    if request.current_step_id is None:
        return None
    return session.get(Step, request.current_step_id)


def _when(on: datetime | None, clock: Clock, *, not_before: datetime | None = None) -> datetime:
    """When a fact happened: `on` if the clerk gave it (entered late), else now."""
    now = clock.now()
    if on is None:
        return now
    if on.tzinfo is None:
        raise CommandRejected(f"--on {on.isoformat()} has no timezone")
    if on > now:
        raise CommandRejected(f"--on {on.isoformat()} is in the future: record what happened")
    if not_before is not None and on < not_before:
        raise CommandRejected(
            f"--on {on.isoformat()} is before the hop opened ({not_before.isoformat()})"
        )
    return on


def _shift(calendar: Calendar, instant: datetime, amount: Duration) -> datetime:
    return calendar.add(instant, amount)


def rung_instants(
    *, calendar: Calendar, opened_at: datetime, sla: Duration, rungs: list[Rung]
) -> list[dict[str, Any]]:
    """The first instant of each rung: a share of the SLA, or an offset from the opening."""
    out = []
    for n, rung in enumerate(rungs):
        share = rung.share
        if share is not None:
            at = calendar.add(opened_at, sla.scaled(share))
        else:
            offset = rung.offset
            assert offset is not None
            at = calendar.add(opened_at, offset)
        out.append(
            {
                "n": n,
                "kind": str(rung.kind),
                "notify": [str(r) for r in rung.notify],
                "at": at.isoformat(),
                "repeat": str(rung.repeat) if rung.repeat else None,
                "fired": 0,
            }
        )
    return out


def next_rung_at(rungs: list[dict[str, Any]], calendar: Calendar) -> datetime | None:
    """The earliest instant at which a rung still has to fire."""
    best: datetime | None = None
    for rung in rungs:
        at = rung_due(rung, rung["fired"], calendar)
        if at is not None and (best is None or at < best):
            best = at
    return best


def rung_due(rung: dict[str, Any], occurrence: int, calendar: Calendar) -> datetime | None:
    """The instant of a rung's `occurrence` (0 is the first firing), None if it never comes."""
    at = datetime.fromisoformat(rung["at"])
    if occurrence == 0:
        return at
    if not rung["repeat"]:
        return None
    step = Duration.parse(rung["repeat"])
    for _ in range(occurrence):
        at = calendar.add(at, step)
    return at


def _applies(route: Route, index: int, fields: dict[str, Any]) -> bool:
    when = route.steps[index].when
    return when is None or not when.mismatches(fields)


def _open_hop(
    session: Session,
    request: Request,
    *,
    routing: Routing,
    route: Route,
    index: int,
    at: datetime,
    recorded_at: datetime,
    actor: str,
    holder: str | None = None,
    reason: str | None = None,
) -> Step:
    step_cfg = route.steps[index]
    holder = holder or step_cfg.holder
    calendar = routing.calendar(holder)
    sla = routing.sla(route, index)
    due = calendar.add(at, sla)
    rungs = rung_instants(
        calendar=calendar,
        opened_at=at,
        sla=sla,
        rungs=route.rungs_for(index, routing.config.escalation),
    )
    previous = session.scalar(
        select(Step.hop).where(Step.request_id == request.id).order_by(Step.hop.desc()).limit(1)
    )
    step = Step(
        request_id=request.id,
        hop=(previous or 0) + 1,
        route_step=step_cfg.id,
        step_index=index,
        holder=holder,
        country=request.country,
        sla=str(sla),
        opened_at=at,
        due_at=due,
        rungs=rungs,
        next_rung_at=next_rung_at(rungs, calendar),
        stopped_bd=0,
    )
    session.add(step)
    session.flush()
    request.current_step_id = step.id
    request.status = "open"
    _append(
        session,
        request,
        kind="hop_opened",
        actor=actor,
        payload={
            "hop": step.hop,
            "step": step.route_step,
            "holder": holder,
            "sla": str(sla),
            "due_at": due.isoformat(),
            "reason": reason,
        },
        occurred_at=at,
        recorded_at=recorded_at,
    )
    return step


def _close_case(
    session: Session, request: Request, *, outcome: str, at: datetime, recorded_at: datetime,
    actor: str,
) -> None:
    request.status = "closed"
    request.outcome = outcome
    request.closed_at = at
    request.current_step_id = None
    _append(
        session, request, kind="case_closed", actor=actor, payload={"outcome": outcome},
        occurred_at=at, recorded_at=recorded_at,
    )


def _close_hop(step: Step, *, at: datetime, outcome: str, target: str | None = None,
               ground: str | None = None, cause: str | None = None) -> None:
    step.closed_at = at
    step.outcome = outcome
    step.target = target
    step.ground = ground
    step.cause = cause
    step.next_rung_at = None
    step.stopped_since = None


def _next_index(route: Route, index: int, fields: dict[str, Any]) -> int | None:
    j = index + 1
    while j < len(route.steps):
        if _applies(route, j, fields):
            return j
        j += 1
    return None


def _digest(**parts: Any) -> str:
    import hashlib

    return hashlib.sha256(canonical(parts).encode()).hexdigest()[:24]


def _require_open(request: Request) -> None:
    if request.status == "closed":
        raise CommandRejected(
            f"{request.reference} is closed ({request.outcome}): nothing more can be decided"
        )


def _current(session: Session, request: Request, hop: int | None) -> Step:
    if hop is not None and request.status == "closed":
        raise Conflict(
            f"{request.reference}: hop {hop} is no longer open; the case was closed "
            f"({request.outcome}) by another command"
        )
    _require_open(request)
    step = _open_step(session, request)
    if step is None:
        raise CommandRejected(
            f"{request.reference} is with the requester: no hop is open "
            "(use `rogatory resubmit` when the requester answers)"
        )
    if hop is not None and hop != step.hop:
        raise Conflict(
            f"{request.reference}: hop {hop} is no longer open (the open hop is {step.hop}, "
            f"{step.route_step} at {step.holder}); someone decided first"
        )
    return step


# -- prescription -----------------------------------------------------------------------------


def compute_prescription(
    session: Session, request: Request, routing: Routing, *, as_of: date,
    extra: list[PrescriptionEvent] | None = None,
) -> PrescriptionResult | None:
    """The case's prescription date recomputed from its recorded events."""
    rules = routing.config.prescription
    if rules is None:
        return None
    period = period_for(rules, request.offence_category)  # type: ignore[arg-type]
    if period is None:
        return None
    events = prescription_events(session, request) + (extra or [])
    return prescription_date(
        period=period,
        effects=rules.effects,
        offence_date=request.offence_date,
        discovery_date=request.discovery_date,
        events=events,
        as_of=as_of,
    )


def prescription_events(session: Session, request: Request) -> list[PrescriptionEvent]:
    rows = session.scalars(
        select(Event).where(Event.request_id == request.id, Event.kind == "prescription_event")
        .order_by(Event.seq)
    )
    out = []
    for row in rows:
        data = _payload(row)
        out.append(
            PrescriptionEvent(
                EventKind(data["event"]), date.fromisoformat(data["on"]), data.get("request")
            )
        )
    return out


def _set_prescription(request: Request, result: PrescriptionResult | None) -> dict[str, Any]:
    request.prescription_date = result.date if result else None
    request.prescription_running = result.running if result else False
    if result is None:
        return {"date": None, "why": "no limitation period configured for this offence"}
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
    on: datetime | None = None,
    idempotency_key: str | None = None,
) -> Result:
    """Register a request: validate, pick its route, pin the routing, open its first hop."""
    digest = _digest(cmd="register", data=data if isinstance(data, dict) else str(data))
    replay = _replay(session, idempotency_key, digest)
    if replay is not None:
        return replay
    at = _when(on, clock)
    routing_for = routings.current
    intake = RequestIntake.check(data, today=at.date(), countries=routing_for.keys())
    routing = routings.for_country(intake.country)
    fields = intake.routing_fields()
    route = _match_route(routing, fields)
    first = 0 if _applies(route, 0, fields) else _next_index(route, 0, fields)
    if first is None:
        raise NoRouteMatches(f"route {route.id!r} has no step that applies to this request")

    recorded_at = clock.now()
    _pin(session, routing, recorded_at)
    year = at.year
    reference = f"{intake.country}-{year}-{_next_number(session, intake.country, year):06d}"
    request = Request(
        reference=reference,
        country=intake.country,
        route_id=route.id,
        routing_version=routing.version,
        direction=str(intake.direction),
        kind=str(intake.kind),
        legal_basis=str(intake.legal_basis),
        offence_category=str(intake.offence_category),
        counterpart=intake.counterpart,
        urgent=intake.urgent,
        coercive=intake.coercive,
        offence_date=intake.offence_date,
        discovery_date=intake.discovery_date,
        intake=intake.model_dump(mode="json"),
        status="open",
        registered_at=at,
        last_seq=0,
    )
    session.add(request)
    session.flush()
    prescription = _set_prescription(
        request, compute_prescription(session, request, routing, as_of=at.date())
    )
    main = _append(
        session,
        request,
        kind="registered",
        actor=actor,
        payload={
            "command": digest,
            "intake": request.intake,
            "route": route.id,
            "routing_version": routing.version,
            "prescription": prescription,
        },
        occurred_at=at,
        recorded_at=recorded_at,
        idempotency_key=idempotency_key,
    )
    step = _open_hop(
        session, request, routing=routing, route=route, index=first, at=at,
        recorded_at=recorded_at, actor=actor,
    )
    return Result(reference, main.seq, step.hop, request.status,
                  f"registered {reference} on route {route.id}; hop 1 at {step.holder}, "
                  f"due {step.due_at.isoformat()}")


def _match_route(routing: Routing, fields: dict[str, Any]) -> Route:
    near: list[str] = []
    for route in routing.config.routes:
        misses = route.when.mismatches(fields)
        if not misses:
            return route
        if len(misses) <= 2:
            near.append(f"{route.id}: {'; '.join(misses)}")
    detail = ("; nearly matched:\n  " + "\n  ".join(near)) if near else ""
    raise NoRouteMatches(
        f"no route of {routing.country} fits this request "
        f"({', '.join(f'{k}={v}' for k, v in fields.items())}){detail}"
    )


def _pin(session: Session, routing: Routing, at: datetime) -> None:
    if session.get(RoutingVersion, routing.version) is None:
        session.add(
            RoutingVersion(
                version=routing.version,
                country=routing.country,
                file=routing.file,
                yaml_text=routing.text,
                presets={k: v.model_dump(mode="json") for k, v in routing.presets.items()},
                first_seen_at=at,
            )
        )
        session.flush()


def _next_number(session: Session, country: str, year: int) -> int:
    """The next reference number; inside the registering transaction, so there are no gaps."""
    counter = session.get(ReferenceCounter, (country, year))
    if counter is None:
        counter = ReferenceCounter(country=country, year=year, last=0)
        session.add(counter)
        session.flush()
    number = counter.last + 1
    moved = session.execute(
        update(ReferenceCounter)
        .where(
            ReferenceCounter.country == country,
            ReferenceCounter.year == year,
            ReferenceCounter.last == counter.last,
        )
        .values(last=number)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("another registration took the same reference number: retry")
    counter.last = number
    return number


def decide(
    *,
    session: Session,
    clock: Clock,
    routings: Routings,
    reference: str,
    outcome: Outcome | str,
    hop: int | None = None,
    ground: RefusalGround | str | None = None,
    cause: DelayCause | str | None = None,
    note: str | None = None,
    reasons_given: bool | None = None,
    consulted: bool | None = None,
    actor: str = SYSTEM,
    on: datetime | None = None,
    idempotency_key: str | None = None,
) -> Result:
    """Record the holder's decision on the open hop and move the case where the route says."""
    digest = _digest(cmd="decide", ref=reference, outcome=str(outcome), hop=hop,
                     ground=str(ground), cause=str(cause), note=note)
    replay = _replay(session, idempotency_key, digest)
    if replay is not None:
        return replay
    request = _load(session, reference)
    step = _current(session, request, hop)
    routing = routings.pinned(session, request.routing_version)
    route = routing.config.route(request.route_id)
    outcome, ground, cause = _check_decision(route, step, outcome, ground, cause)
    allowed = route.decisions_for(step.step_index)
    target = allowed[outcome]
    at = _when(on, clock, not_before=step.opened_at)
    recorded_at = clock.now()
    prohibited = ground is not None and ground.prohibited_by_uncac

    _close_hop(step, at=at, outcome=str(outcome), target=target,
               ground=str(ground) if ground else None, cause=str(cause) if cause else None)
    main = _append(
        session,
        request,
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
    fields = RequestIntake.model_validate(request.intake).routing_fields()
    message = f"{reference}: hop {step.hop} ({step.route_step} at {step.holder}) {outcome}"
    if prohibited:
        message += " — WARNING: UNCAC art. 46(8)/(22) prohibits refusing on this ground"
    if target == "end":
        _close_case(session, request, outcome=str(outcome), at=at, recorded_at=recorded_at,
                    actor=actor)
        return Result(reference, main.seq, None, request.status, message + "; case closed")
    if target == "requester":
        request.status = "with_requester"
        request.current_step_id = None
        return Result(reference, main.seq, None, request.status,
                      message + "; back with the requester until it resubmits")
    if target == "stay":
        index: int | None = step.step_index
    elif target == "next":
        index = _next_index(route, step.step_index, fields)
    else:
        index = route.step_index(target)
    if index is None:
        _close_case(session, request, outcome=str(outcome), at=at, recorded_at=recorded_at,
                    actor=actor)
        return Result(reference, main.seq, None, request.status, message + "; case closed")
    new = _open_hop(session, request, routing=routing, route=route, index=index, at=at,
                    recorded_at=recorded_at, actor=actor)
    return Result(reference, main.seq, new.hop, request.status,
                  message + f"; hop {new.hop} opened at {new.holder}, due {new.due_at.isoformat()}")


def _check_decision(
    route: Route, step: Step, outcome: Outcome | str, ground: Any, cause: Any
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


def _code(enum: Any, value: Any, name: str) -> Any:
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(e.value for e in enum)
        raise CommandRejected(f"unknown {name} {value!r} (known: {known})") from None


def resubmit(
    *, session: Session, clock: Clock, routings: Routings, reference: str,
    note: str | None = None, actor: str = SYSTEM, on: datetime | None = None,
    idempotency_key: str | None = None,
) -> Result:
    """The requester answered a return: reopen the step the request was returned from."""
    digest = _digest(cmd="resubmit", ref=reference, note=note)
    replay = _replay(session, idempotency_key, digest)
    if replay is not None:
        return replay
    request = _load(session, reference)
    if request.status != "with_requester":
        raise CommandRejected(f"{reference} is {request.status}, not waiting on the requester")
    last = session.scalars(
        select(Step).where(Step.request_id == request.id).order_by(Step.hop.desc()).limit(1)
    ).one()
    at = _when(on, clock, not_before=last.closed_at)
    recorded_at = clock.now()
    routing = routings.pinned(session, request.routing_version)
    route = routing.config.route(request.route_id)
    main = _append(session, request, kind="resubmitted", actor=actor,
            payload={"command": digest, "note": note, "after_hop": last.hop},
            occurred_at=at, recorded_at=recorded_at, idempotency_key=idempotency_key)
    step = _open_hop(session, request, routing=routing, route=route, index=last.step_index,
                     at=at, recorded_at=recorded_at, actor=actor, reason="resubmitted")
    return Result(reference, main.seq, step.hop, request.status,
                  f"{reference}: resubmitted; hop {step.hop} opened at {step.holder}")


def stop_clock(
    *, session: Session, clock: Clock, routings: Routings, reference: str, reason: str,
    hop: int | None = None, actor: str = SYSTEM, on: datetime | None = None,
    idempotency_key: str | None = None,
) -> Result:
    """Stop the open hop's SLA while the case waits on the requester (no reminders meanwhile)."""
    digest = _digest(cmd="stop", ref=reference, reason=reason, hop=hop)
    replay = _replay(session, idempotency_key, digest)
    if replay is not None:
        return replay
    if not reason.strip():
        raise CommandRejected("stopping the clock needs --reason")
    request = _load(session, reference)
    step = _current(session, request, hop)
    if step.stopped_since is not None:
        raise CommandRejected(
            f"{reference}: the clock of hop {step.hop} is already stopped since "
            f"{step.stopped_since.isoformat()}"
        )
    at = _when(on, clock, not_before=step.opened_at)
    step.stopped_since = at
    step.next_rung_at = None
    main = _append(session, request, kind="clock_stopped", actor=actor,
            payload={"command": digest, "hop": step.hop, "reason": reason},
            occurred_at=at, recorded_at=clock.now(), idempotency_key=idempotency_key)
    return Result(reference, main.seq, step.hop, request.status,
                  f"{reference}: clock of hop {step.hop} stopped ({reason})")


def resume_clock(
    *, session: Session, clock: Clock, routings: Routings, reference: str, reason: str,
    hop: int | None = None, actor: str = SYSTEM, on: datetime | None = None,
    idempotency_key: str | None = None,
) -> Result:
    """Restart the hop's SLA; the time it stood still pushes the due instant and rungs back."""
    digest = _digest(cmd="resume", ref=reference, reason=reason, hop=hop)
    replay = _replay(session, idempotency_key, digest)
    if replay is not None:
        return replay
    request = _load(session, reference)
    step = _current(session, request, hop)
    if step.stopped_since is None:
        raise CommandRejected(f"{reference}: the clock of hop {step.hop} is not stopped")
    at = _when(on, clock, not_before=step.stopped_since)
    routing = routings.pinned(session, request.routing_version)
    calendar = routing.calendar(step.holder)
    shift = stopped_duration(calendar, step.stopped_since, at, Duration.parse(step.sla).unit)
    if shift is not None:
        step.due_at = _push(calendar, step.due_at, shift)
        rungs = [dict(r) for r in step.rungs]
        for rung in rungs:
            rung["at"] = _push(calendar, datetime.fromisoformat(rung["at"]), shift).isoformat()
        step.rungs = rungs
    step.stopped_bd += calendar.business_days_between(step.stopped_since, at)
    step.stopped_since = None
    step.next_rung_at = next_rung_at(step.rungs, calendar)
    main = _append(session, request, kind="clock_resumed", actor=actor,
            payload={"command": digest, "hop": step.hop, "reason": reason,
                     "shift": str(shift) if shift else None,
                     "due_at": step.due_at.isoformat()},
            occurred_at=at, recorded_at=clock.now(), idempotency_key=idempotency_key)
    return Result(reference, main.seq, step.hop, request.status,
                  f"{reference}: clock of hop {step.hop} resumed; due {step.due_at.isoformat()}")


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
    *, session: Session, clock: Clock, routings: Routings, reference: str, to: str,
    hop: int | None = None, note: str | None = None, actor: str = SYSTEM,
    on: datetime | None = None, idempotency_key: str | None = None,
) -> Result:
    """The request reached the wrong authority: close that hop and open it again at `to`."""
    digest = _digest(cmd="reassign", ref=reference, to=to, hop=hop, note=note)
    replay = _replay(session, idempotency_key, digest)
    if replay is not None:
        return replay
    request = _load(session, reference)
    step = _current(session, request, hop)
    routing = routings.pinned(session, request.routing_version)
    if to not in routing.config.authorities:
        known = ", ".join(routing.config.authorities)
        raise CommandRejected(f"unknown authority {to!r} (known: {known})")
    if to == step.holder:
        raise CommandRejected(f"hop {step.hop} is already held by {to}")
    at = _when(on, clock, not_before=step.opened_at)
    recorded_at = clock.now()
    route = routing.config.route(request.route_id)
    _close_hop(step, at=at, outcome="reassigned", target=to, cause=DelayCause.WRONG_AUTHORITY.value)
    main = _append(session, request, kind="reassigned", actor=actor,
            payload={"command": digest, "hop": step.hop, "from": step.holder, "to": to,
                     "cause": DelayCause.WRONG_AUTHORITY.value, "note": note},
            occurred_at=at, recorded_at=recorded_at, idempotency_key=idempotency_key)
    new = _open_hop(session, request, routing=routing, route=route, index=step.step_index,
                    at=at, recorded_at=recorded_at, actor=actor, holder=to,
                    reason="wrong_authority")
    return Result(reference, main.seq, new.hop, request.status,
                  f"{reference}: hop {step.hop} was at the wrong authority; hop {new.hop} at {to}")


def withdraw(
    *, session: Session, clock: Clock, routings: Routings, reference: str, note: str | None = None,
    actor: str = SYSTEM, on: datetime | None = None, idempotency_key: str | None = None,
) -> Result:
    """The requester no longer needs the assistance (UNCAC art. 46(24)): close the case."""
    digest = _digest(cmd="withdraw", ref=reference, note=note)
    replay = _replay(session, idempotency_key, digest)
    if replay is not None:
        return replay
    request = _load(session, reference)
    _require_open(request)
    step = _open_step(session, request)
    at = _when(on, clock, not_before=step.opened_at if step else None)
    recorded_at = clock.now()
    if step is not None:
        _close_hop(step, at=at, outcome="withdrawn")
    main = _append(session, request, kind="withdrawn", actor=actor,
            payload={"command": digest, "hop": step.hop if step else None, "note": note},
            occurred_at=at, recorded_at=recorded_at, idempotency_key=idempotency_key)
    _close_case(session, request, outcome="withdrawn", at=at, recorded_at=recorded_at, actor=actor)
    return Result(reference, main.seq, None, request.status, f"{reference}: withdrawn")


def record(
    *, session: Session, clock: Clock, routings: Routings, reference: str,
    event: EventKind | str, on: date, request_abroad: str | None = None,
    note: str | None = None, actor: str = SYSTEM, idempotency_key: str | None = None,
) -> Result:
    """Record a prescription-relevant fact and recompute the case's prescription date."""
    digest = _digest(cmd="record", ref=reference, event=str(event), on=on.isoformat(),
                     request=request_abroad)
    replay = _replay(session, idempotency_key, digest)
    if replay is not None:
        return replay
    kind = _code(EventKind, event, "event")
    request = _load(session, reference)
    now = clock.now()
    if on > now.date():
        raise CommandRejected(f"--on {on} is in the future: record what happened")
    if on < request.offence_date:
        raise CommandRejected(f"--on {on} is before the offence date {request.offence_date}")
    routing = routings.pinned(session, request.routing_version)
    before = request.prescription_date
    new = PrescriptionEvent(kind, on, request_abroad)
    result = compute_prescription(session, request, routing, as_of=now.date(), extra=[new])
    summary = _set_prescription(request, result)
    main = _append(session, request, kind="prescription_event", actor=actor,
            payload={"command": digest, "event": kind.value, "on": on.isoformat(),
                     "request": request_abroad, "note": note,
                     "before": before.isoformat() if before else None, "after": summary},
            occurred_at=datetime.combine(on, datetime.min.time(), now.tzinfo),
            recorded_at=now, idempotency_key=idempotency_key)
    moved = "unchanged" if request.prescription_date == before else (
        f"moved from {before} to {request.prescription_date}")
    return Result(reference, main.seq, None, request.status,
                  f"{reference}: {kind.value} on {on} recorded; prescription date {moved}")


def migrate(
    *, session: Session, clock: Clock, routings: Routings, reference: str, actor: str = SYSTEM,
    idempotency_key: str | None = None,
) -> Result:
    """Move a case to the routing version now in force, explicitly and on the record."""
    digest = _digest(cmd="migrate", ref=reference)
    replay = _replay(session, idempotency_key, digest)
    if replay is not None:
        return replay
    request = _load(session, reference)
    _require_open(request)
    target = routings.for_country(request.country)
    if target.version == request.routing_version:
        raise CommandRejected(f"{reference} already runs on the current routing ({target.version})")
    try:
        route = target.config.route(request.route_id)
    except KeyError:
        raise CommandRejected(
            f"route {request.route_id!r} no longer exists in {target.file}: "
            "migration would lose the case's place"
        ) from None
    step = _open_step(session, request)
    if step is not None:
        try:
            new_index = route.step_index(step.route_step)
        except KeyError:
            raise CommandRejected(
                f"step {step.route_step!r} (the open hop) no longer exists in route {route.id!r}"
            ) from None
        step.step_index = new_index
    now = clock.now()
    _pin(session, target, now)
    old = request.routing_version
    request.routing_version = target.version
    _set_prescription(request, compute_prescription(session, request, target, as_of=now.date()))
    main = _append(session, request, kind="migrated", actor=actor,
            payload={"command": digest, "from": old, "to": target.version},
            occurred_at=now, recorded_at=now, idempotency_key=idempotency_key)
    return Result(reference, main.seq, step.hop if step else None, request.status,
                  f"{reference}: moved from routing {old} to {target.version}")


def attach_flow_run(*, session: Session, reference: str, flow_run_id: str) -> None:
    """Remember which Prefect flow run drives the case (an operational pointer, not a fact)."""
    request = _load(session, reference)
    request.flow_run_id = flow_run_id

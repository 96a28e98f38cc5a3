"""Moving a country's open cases onto the routing version in force, deliberately and case by case.

A published version changes nothing for the cases already in flight: each keeps the version it
pinned. `plan` says, for every open case on an older version, where its open hop would land in
the new chain (same step, its new position, what changes around it: holder, SLA, decisions) or
why it cannot move (its route or its step is gone, it waits on the requester at a step whose
place moved). `move` then runs `engine.migrate` for each case that can, one recorded event each,
in batches that share one write; a case a concurrent command changed meanwhile is reported, not
forced.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import engine
from models.clock import Clock
from models.engine import Routings
from models.errors import CommandRejected, Conflict, NotFound
from models.ledger import Ledger, Request, Step
from models.loader import Routing
from models.publishing import sla_text

BATCH = 200
"""Cases moved per transaction (one write of their events)."""


@dataclass(frozen=True)
class Landing:
    """Where one open case would be after the move."""

    reference: str
    from_version: str
    route: str
    status: str
    step: str | None
    """The open hop's step (None while the case waits on the requester)."""
    holder: str | None
    position: tuple[int, int] | None
    """The step's place in the route, before and after (1-based)."""
    notes: tuple[str, ...] = ()
    """What reads differently there: the holder, the SLA, the decisions allowed."""


@dataclass(frozen=True)
class Blocked:
    reference: str
    from_version: str
    route: str
    reason: str


@dataclass
class Plan:
    """What moving the country's open cases to `to_version` would do."""

    country: str
    to_version: str
    landings: list[Landing] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    current: int = 0
    """Open cases already on the version in force."""
    moved: list[str] = field(default_factory=list)
    """After `move`: the cases moved, one `migrated` event each."""

    def as_json(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "to_version": self.to_version,
            "already_current": self.current,
            "landings": [
                {**landing.__dict__, "notes": list(landing.notes)} for landing in self.landings
            ],
            "blocked": [b.__dict__ for b in self.blocked],
            "moved": self.moved,
        }


def resolve_version(target: Routing, asked: str) -> None:
    """Refuse a `--to` that is not the version in force (a prefix of 8 or more will do)."""
    if len(asked) >= 8 and target.version.startswith(asked):
        return
    raise NotFound(
        f"version {asked} is not the routing of {target.country} in force ({target.version}): "
        "cases move only to the version in force; publish it first (rogatory routing publish)"
    )


def plan(*, session: Session, country: str, target: Routing, pinned: Routings) -> Plan:
    """Where each open case of `country` would land on `target`, or why it cannot move."""
    out = Plan(country, target.version)
    rows = session.execute(
        select(
            Request.id,
            Request.reference,
            Request.routing_version,
            Request.route_id,
            Request.status,
            Request.current_hop,
            Request.hop_count,
        )
        .where(Request.country == country, Request.status != "closed")
        .order_by(Request.reference)
    ).all()
    hops = _hops(session, [(r.id, r.current_hop or r.hop_count) for r in rows])
    for row in rows:
        if row.routing_version == target.version:
            out.current += 1
            continue
        try:
            source = pinned.pinned(session, row.routing_version)
        except Exception as exc:  # an unreadable pinned version blocks only its cases
            out.blocked.append(
                Blocked(row.reference, row.routing_version, row.route_id, f"pinned version: {exc}")
            )
            continue
        hop = hops.get((row.id, row.current_hop or row.hop_count))
        found = _landing(row, hop, source, target)
        if isinstance(found, Landing):
            out.landings.append(found)
        else:
            out.blocked.append(found)
    return out


def _hops(session: Session, keys: list[tuple[int, int]]) -> dict[tuple[int, int], Any]:
    """The open hop (or, for a case with the requester, the last one) of each case."""
    wanted = set(keys)
    out: dict[tuple[int, int], Any] = {}
    ids = sorted({k[0] for k in keys})
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for step in session.execute(
            select(Step.request_id, Step.hop, Step.route_step, Step.step_index, Step.holder).where(
                Step.request_id.in_(chunk)
            )
        ):
            if (step.request_id, step.hop) in wanted:
                out[(step.request_id, step.hop)] = step
    return out


def _landing(row: Any, hop: Any, source: Routing, target: Routing) -> Landing | Blocked:
    def blocked(reason: str) -> Blocked:
        return Blocked(row.reference, row.routing_version, row.route_id, reason)

    try:
        old_route = source.config.route(row.route_id)
    except KeyError:
        return blocked(f"its pinned version {row.routing_version} has no route {row.route_id!r}")
    try:
        new_route = target.config.route(row.route_id)
    except KeyError:
        return blocked(
            f"route {row.route_id!r} no longer exists in {target.version}: the case would "
            "lose its place (it finishes on its own version)"
        )
    if hop is None:
        return blocked("no hop found for the case")
    try:
        new_index = new_route.step_index(hop.route_step)
    except KeyError:
        where = "its open hop" if row.status == "open" else "the step it was returned from"
        return blocked(
            f"step {hop.route_step!r} ({where}, at {hop.holder}) no longer exists in route "
            f"{row.route_id!r}: it finishes on its own version, or moves once past that step"
        )
    if row.status == "with_requester" and new_index != hop.step_index:
        return blocked(
            f"it waits on the requester, to go back to {hop.route_step!r}, whose place in the "
            f"route moved ({hop.step_index + 1} -> {new_index + 1}): move it after the "
            "resubmission"
        )
    notes = list(_notes(source, old_route, hop.step_index, target, new_route, new_index, hop))
    return Landing(
        row.reference,
        row.routing_version,
        row.route_id,
        row.status,
        hop.route_step if row.status == "open" else None,
        hop.holder if row.status == "open" else None,
        (hop.step_index + 1, new_index + 1),
        tuple(notes),
    )


def _notes(
    source: Routing, old: Any, i: int, target: Routing, new: Any, j: int, hop: Any
) -> Iterator[str]:
    step = new.steps[j]
    if step.holder != hop.holder:
        yield (
            f"the step is now held by {step.holder}: the open hop stays with {hop.holder} "
            "until it is decided"
        )
    before, after = sla_text(source, old, i), sla_text(target, new, j)
    if before != after:
        yield f"SLA {before} -> {after}: the open hop keeps its due date; later hops take {after}"
    was = {str(o): t for o, t in old.decisions_for(i).items()}
    now = {str(o): t for o, t in new.decisions_for(j).items()}
    if was != now:
        yield f"decisions {_decisions(was)} -> {_decisions(now)}"
    later_old = [s.id for s in old.steps[i + 1 :]]
    later_new = [s.id for s in new.steps[j + 1 :]]
    if later_old != later_new:
        yield f"after it: {' → '.join(later_old) or 'end'} -> {' → '.join(later_new) or 'end'}"


def _decisions(decisions: dict[str, str]) -> str:
    return ", ".join(f"{o}→{t}" for o, t in decisions.items())


def move(
    *,
    ledger: Ledger,
    country: str,
    target: Routing,
    clock: Clock,
    actor: str,
    references: Iterable[str],
    blocked: list[Blocked],
) -> list[str]:
    """Migrate each case to `target` (the version in force), one `migrated` event each; a case
    the engine refuses now (moved by someone meanwhile) joins `blocked`. The cases moved."""
    routings = Routings({country: target})
    moved: list[str] = []
    pending = list(references)
    for start in range(0, len(pending), BATCH):
        chunk = pending[start : start + BATCH]
        try:
            moved += _move_together(ledger, routings, clock, actor, target, chunk, blocked)
        except Conflict:
            # Another command changed one of them between the reads and the write: the batch
            # was rolled back whole; each case goes again on its own.
            for reference in chunk:
                try:
                    moved += _move_together(
                        ledger, routings, clock, actor, target, [reference], blocked
                    )
                except Conflict as exc:
                    blocked.append(Blocked(reference, "", "", str(exc)))
    return moved


def _move_together(
    ledger: Ledger,
    routings: Routings,
    clock: Clock,
    actor: str,
    target: Routing,
    references: list[str],
    blocked: list[Blocked],
) -> list[str]:
    done: list[str] = []
    refused: list[Blocked] = []
    with ledger.transaction() as session, engine.batch(session):
        for reference in references:
            try:
                engine.migrate(
                    session=session,
                    clock=clock,
                    routings=routings,
                    reference=reference,
                    actor=actor,
                    idempotency_key=f"migrate:{reference}:{target.version}",
                )
            except Conflict:
                raise
            except CommandRejected as exc:
                refused.append(Blocked(reference, "", "", str(exc)))
            else:
                done.append(reference)
    blocked += refused
    return done


def describe(result: Plan, *, dry_run: bool) -> Iterator[str]:
    """The plan (or what was done), one case a line."""
    verb = "would move" if dry_run else "moved"
    for landing in result.landings:
        if landing.step is not None:
            old, new = landing.position or (0, 0)
            where = f"{landing.step} at {landing.holder} (step {old} -> {new})"
        else:
            where = "with the requester"
        line = f"{landing.reference}  {landing.from_version[:12]} -> {result.to_version[:12]}  "
        yield line + f"{landing.route}: {where}"
        for note in landing.notes:
            yield f"    {note}"
    for item in result.blocked:
        yield f"{item.reference}  cannot move: {item.reason}"
    count = len(result.moved) if not dry_run else len(result.landings)
    yield (
        f"{result.country}: {count} open case(s) {verb} to {result.to_version}; "
        f"{len(result.blocked)} cannot move; {result.current} already on it"
    )


def open_on_other_versions(ledger: Ledger, country: str, version: str) -> int:
    """How many open cases of `country` still run on a version other than `version`."""
    with ledger.session() as session:
        found = session.scalar(
            select(func.count())
            .select_from(Request)
            .where(
                Request.country == country,
                Request.status != "closed",
                Request.routing_version != version,
            )
        )
    return int(found or 0)

"""What a proposed chain would have done to the recorded caseload: the ministry's what-if.

The recorded cases of the affected routes are replayed on the proposal, hop by hop, as
recorded:

- a hop the proposal keeps (the same step, held by the same authority) takes its recorded
  dwell, in calendar days;
- a hop whose step the proposal gives to another authority, and a step the proposal adds (once,
  for the cases that went past where it stands), draw from the observed dwell of that
  authority in the country (its closed hops, all steps), or from its SLA while fewer than
  `MIN_HISTORY` were observed (log-normal, the SLA as median, as the risk register does);
- a hop the proposal removes takes nothing;
- time spent waiting on the requester stays as recorded;
- an open case's remaining hops are forecast as the risk register forecasts them
  (`models.risk`): from the observed dwell of each authority and step, given the days the open
  hop has already taken; on the proposal, from the step where the case would stand.

Each of `runs` Monte Carlo runs draws every uncertain hop once (seeded: one seed, one answer),
and every figure is reported per route and overall, before and after, as its median over the
runs with a 5-95 % interval: the median and P90 days from registration to completion, the
share of hops closed after their due date, the cases that did not finish before their
prescription date and would have (prescriptions avoided), and the hops and days each authority
would hold. Before and after use the same draws wherever the hop is the same, so an unchanged
proposal shows no difference at all, and removing a hop whose dwell was recorded saves exactly
that dwell.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from models.calendar import Duration
from models.config import Route
from models.loader import Routing
from models.metrics import NO_DAY, NO_TS, AuditData
from models.risk import (
    MIN_HISTORY,
    NOT_HISTORY_DAYS,
    DwellHistory,
    HopAhead,
    sla_calendar_days,
    sla_draws,
)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

RUNS = 500
SEED = 86
"""Para 86 of the UNODC note: El Salvador's Ministry of Justice hop, the question that started
this; any fixed number makes the answer reproducible."""
ASSUMPTIONS = (
    "A hop the proposal keeps (same step, same authority) takes the days it took.",
    "A hop given to another authority, or a step the proposal adds, takes a draw from that "
    "authority's observed days in the country (its SLA while fewer than 20 hops were "
    "observed); an added step is passed once, by the cases that went beyond where it stands.",
    "A hop the proposal removes takes nothing; the next authority receives the request as soon "
    "as the one before it passes it on.",
    "Time waiting on the requester stays as recorded; decisions (forwarded, returned, refused) "
    "stay as recorded: only durations change.",
    "Open cases: the rest of their chain is forecast from each authority's observed days at "
    "each step, given the days the open hop has already taken, as the risk register does.",
    "Days are calendar days in the holder's timezone; a hop is late when it ends after its due "
    "date (business days for bd SLAs, calendar days otherwise).",
    "Intervals are the 5th to 95th percentiles over the Monte Carlo runs (seeded: the same "
    "inputs give the same figures).",
)


@dataclass(frozen=True)
class Figure:
    """A figure over the Monte Carlo runs: its median and 5-95 % interval."""

    median: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: F64) -> Figure:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return cls(None, None, None)
        low, mid, high = np.percentile(finite, [5, 50, 95])
        return cls(_round(mid), _round(low), _round(high))

    def as_json(self) -> dict[str, float | None]:
        return {"median": self.median, "low": self.low, "high": self.high}


def _round(x: float) -> float:
    return float(round(float(x), 2))


@dataclass(frozen=True)
class Side:
    """One chain (recorded or proposed) over one set of cases."""

    p50_days: Figure
    p90_days: Figure
    breach_rate: Figure
    not_before_prescription: Figure
    """Cases that did not finish before their prescription date (of those that have one)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "p50_days": self.p50_days.as_json(),
            "p90_days": self.p90_days.as_json(),
            "breach_rate": self.breach_rate.as_json(),
            "not_before_prescription": self.not_before_prescription.as_json(),
        }


@dataclass(frozen=True)
class Comparison:
    """Before and after for one route (or all of them)."""

    route: str
    cases: int
    open_cases: int
    before: Side
    after: Side
    days_saved_per_case: Figure
    """Mean days from registration to completion saved per case (negative: lost)."""
    prescriptions_avoided: Figure
    prescriptions_caused: Figure

    def as_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "cases": self.cases,
            "open_cases": self.open_cases,
            "before": self.before.as_json(),
            "after": self.after.as_json(),
            "days_saved_per_case": self.days_saved_per_case.as_json(),
            "prescriptions_avoided": self.prescriptions_avoided.as_json(),
            "prescriptions_caused": self.prescriptions_caused.as_json(),
        }


@dataclass(frozen=True)
class Load:
    """What one authority would hold: hops and days, before and after (means over the runs)."""

    authority: str
    name: str
    hops_before: float
    hops_after: float
    days_before: float
    days_after: float


@dataclass(frozen=True)
class StepChange:
    route: str
    step: str
    change: str
    """kept, removed, added or moved (to another authority)."""
    before: str
    after: str


@dataclass
class WhatIf:
    """The answer: per route and overall, before and after, and what it rests on."""

    country: str
    current_version: str
    proposal_version: str
    routes: list[str]
    since: date | None
    until: date | None
    runs: int
    seed: int
    now: datetime
    overall: Comparison
    by_route: list[Comparison]
    load: list[Load]
    changes: list[StepChange]
    left_out: list[str] = field(default_factory=list)
    """Why some recorded cases were not replayed (their route is gone from the proposal)."""
    assumptions: tuple[str, ...] = ASSUMPTIONS
    elapsed_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "current_version": self.current_version,
            "proposal_version": self.proposal_version,
            "routes": self.routes,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "runs": self.runs,
            "seed": self.seed,
            "now": self.now.isoformat(),
            "overall": self.overall.as_json(),
            "by_route": [c.as_json() for c in self.by_route],
            "load": [load.__dict__ for load in self.load],
            "changes": [c.__dict__ for c in self.changes],
            "left_out": self.left_out,
            "assumptions": list(self.assumptions),
            "elapsed_s": round(self.elapsed_s, 3),
        }


def affected_routes(current: Routing | None, proposal: Routing) -> list[str]:
    """The routes whose chain the proposal changes (steps, holders or SLAs)."""
    if current is None:
        return [r.id for r in proposal.config.routes]
    old = {r.id: r for r in current.config.routes}
    out = []
    for route in proposal.config.routes:
        before = old.get(route.id)
        if before is None or _chain(current, before) != _chain(proposal, route):
            out.append(route.id)
    out += [r for r in old if r not in {x.id for x in proposal.config.routes}]
    return out


def _chain(routing: Routing, route: Route) -> list[tuple[str, str, str, Any]]:
    return [(s.id, s.holder, str(routing.sla(route, i)), s.when) for i, s in enumerate(route.steps)]


class _Durations:
    """Calendar-day SLAs of (routing, holder, SLA) and the authorities' observed dwell."""

    def __init__(self, data: AuditData, country: str) -> None:
        self.now = data.now
        hops, cases = data.hops, data.cases
        usable = hops.closed & ~hops.outcome.isin(NOT_HISTORY_DAYS)
        usable &= cases.country.codes[hops.case] == cases.country.code(country)
        self.pools: dict[str, I64] = {}
        for code, label in enumerate(hops.holder.labels):
            mine = usable & (hops.holder.codes == code)
            if mine.any():
                self.pools[label] = np.sort(hops.calendar_days[mine])
        self._days: dict[tuple[str, str, str], int] = {}

    def sla_days(self, routing: Routing, holder: str, sla: str) -> int:
        key = (routing.version, holder, sla)
        days = self._days.get(key)
        if days is None:
            days = self._days[key] = sla_calendar_days(routing, holder, sla, now=self.now)
        return days

    def authority_draws(self, holder: str, sla_days: int, u: F64) -> I64:
        """A hop's whole dwell at `holder`: its observed days, or its SLA's log-normal."""
        seen = self.pools.get(holder)
        if seen is not None and seen.size >= MIN_HISTORY:
            picked: I64 = seen[(u * seen.size).astype(np.int64)]
            return picked
        return sla_draws(sla_days=sla_days, elapsed=0, u=u)


@dataclass
class Replayed:
    """One case on both chains: days from registration to completion per run, the hops each
    authority holds (with their days per run), late hops."""

    reference: str
    route: str
    open: bool
    prescription_day: int
    registered_day: int
    before: F64
    after: F64
    hops_before: list[tuple[str, F64]] = field(default_factory=list)
    hops_after: list[tuple[str, F64]] = field(default_factory=list)
    breaches_before: tuple[int, int] = (0, 0)
    """(late hops, closed hops) as recorded."""
    breaches_after: F64 | None = None
    """Late hops per run on the proposal (closed hops only)."""
    closed_hops_after: int = 0


def whatif(
    *,
    data: AuditData,
    country: str,
    current: Routing | None,
    proposal: Routing,
    routes: Sequence[str] = (),
    runs: int = RUNS,
    seed: int = SEED,
) -> WhatIf:
    """Replay the cases in `data` (one country's, as loaded for the report) on `proposal`."""
    began = time.perf_counter()
    chosen, replayed, left_out = replay_cases(
        data=data,
        country=country,
        current=current,
        proposal=proposal,
        routes=routes,
        runs=runs,
        seed=seed,
    )
    proposed = {r.id for r in proposal.config.routes}
    by_route = [
        _compare(route, [r for r in replayed if r.route == route], runs)
        for route in chosen
        if route in proposed
    ]
    return WhatIf(
        country=country,
        current_version=current.version if current else "",
        proposal_version=proposal.version,
        routes=chosen,
        since=data.filters.since,
        until=data.filters.until,
        runs=runs,
        seed=seed,
        now=data.now,
        overall=_compare("all", replayed, runs),
        by_route=by_route,
        load=_load(replayed, runs, proposal, current),
        changes=_step_changes(current, proposal, chosen),
        left_out=[
            f"{n} case(s) of route {route!r}: the proposal has no such route"
            for route, n in sorted(left_out.items())
        ],
        elapsed_s=time.perf_counter() - began,
    )


def replay_cases(
    *,
    data: AuditData,
    country: str,
    current: Routing | None,
    proposal: Routing,
    routes: Sequence[str] = (),
    runs: int = RUNS,
    seed: int = SEED,
) -> tuple[list[str], list[Replayed], dict[str, int]]:
    """Each case of the chosen routes on both chains: the routes replayed, the cases, and how
    many cases of each route the proposal has no route for."""
    if runs < 20:
        raise ValueError("a what-if needs at least 20 runs for its intervals")
    chosen = (
        list(routes) or affected_routes(current, proposal) or [r.id for r in proposal.config.routes]
    )
    cases, hops = data.cases, data.hops
    durations = _Durations(data, country)
    history = DwellHistory.from_audit(data)
    rng = np.random.default_rng([seed, runs])
    first = np.full(len(cases), -1, dtype=np.int64)
    last = np.full(len(cases), -1, dtype=np.int64)
    if len(hops):
        order = np.arange(len(hops))
        first[hops.case[::-1]] = order[::-1]
        last[hops.case] = order
    proposed = {r.id: r for r in proposal.config.routes}
    replayed: list[Replayed] = []
    left_out: dict[str, int] = {}
    country_code = cases.country.code(country)
    for i in np.flatnonzero(cases.country.codes == country_code).tolist():
        route_id = cases.route.label(i)
        if route_id not in chosen or first[i] < 0:
            continue
        if route_id not in proposed:
            left_out[route_id] = left_out.get(route_id, 0) + 1
            continue
        replayed.append(
            _replay_case(
                data,
                i,
                range(int(first[i]), int(last[i]) + 1),
                proposal,
                proposed[route_id],
                durations,
                history,
                rng,
                runs,
            )
        )
    return chosen, replayed, left_out


def _replay_case(
    data: AuditData,
    case: int,
    rows: range,
    proposal: Routing,
    route: Route,
    durations: _Durations,
    history: DwellHistory,
    rng: np.random.Generator,
    runs: int,
) -> Replayed:
    cases, hops = data.cases, data.hops
    pinned = data.routing_of_case(case)
    old_route = pinned.config.route(cases.route.label(case))
    fields = _fields(data, case)
    new_steps = {s.id: (j, s) for j, s in enumerate(route.steps)}
    old_ids = {s.id for s in old_route.steps}
    is_open = cases.status.label(case) != "closed"
    today = _today(data, case)
    registered = int(cases.registered_day[case])
    end = int(hops.end_day[rows[-1]]) if not is_open else today
    total = float(max(end - registered, 0))
    before = np.full(runs, total)
    after = np.full(runs, total)
    out = Replayed(
        cases.reference[case],
        cases.route.label(case),
        is_open,
        int(cases.prescription_day[case]),
        registered,
        before,
        after,
    )
    late = closed = 0
    late_after = np.zeros(runs)
    visited_positions: list[int] = []
    open_row = -1
    for h in rows:
        step, holder = hops.step.label(h), hops.holder.label(h)
        is_closed = hops.closed_at[h] != NO_TS
        days = float(max(hops.calendar_days[h], 0))
        recorded = np.full(runs, days)
        if not is_closed:
            open_row = h
            continue  # the open hop is forecast below, on both chains
        out.hops_before.append((holder, recorded))
        closed += 1
        late += int(hops.closed_at[h] > hops.due_at[h])
        kept = new_steps.get(step)
        if kept is None:
            after -= days  # the proposal removes this hop
            continue
        j, new_step = kept
        visited_positions.append(j)
        sla = str(proposal.sla(route, j))
        if new_step.holder == holder:
            out.hops_after.append((holder, recorded))
            out.closed_hops_after += 1
            late_after += _late_kept(data, h, pinned, old_route, proposal, route, j)
            continue
        drawn = durations.authority_draws(
            new_step.holder,
            durations.sla_days(proposal, new_step.holder, sla),
            rng.random(runs),
        ).astype(np.float64)
        after += drawn - days
        out.hops_after.append((new_step.holder, drawn))
        out.closed_hops_after += 1
        late_after += drawn > durations.sla_days(proposal, new_step.holder, sla)
    # Steps the proposal adds, passed once by the cases that went beyond where they stand.
    reached = max(visited_positions, default=-1)
    if open_row >= 0 and hops.step.label(open_row) in new_steps:
        reached = max(reached, new_steps[hops.step.label(open_row)][0])
    for j, added in enumerate(route.steps):
        if added.id in old_ids or j > reached or (added.when and not added.when.matches(fields)):
            continue
        sla_days = durations.sla_days(proposal, added.holder, str(proposal.sla(route, j)))
        drawn = durations.authority_draws(added.holder, sla_days, rng.random(runs)).astype(
            np.float64
        )
        after += drawn
        out.hops_after.append((added.holder, drawn))
        out.closed_hops_after += 1
        late_after += drawn > sla_days
    out.breaches_before = (late, closed)
    out.breaches_after = late_after
    if is_open:
        _forecast_open(
            data, case, open_row, pinned, old_route, proposal, route, durations, history, out, runs
        )
    return out


def _late_kept(
    data: AuditData, h: int, pinned: Routing, old: Route, proposal: Routing, new: Route, j: int
) -> float:
    """Whether a kept hop is late on the proposal: as recorded, unless its SLA changed."""
    hops = data.hops
    step = hops.step.label(h)
    try:
        i = old.step_index(step)
    except KeyError:
        i = -1
    before = str(pinned.sla(old, i)) if i >= 0 else ""
    after = str(proposal.sla(new, j))
    if before == after or new.steps[j].deadline:
        return float(hops.closed_at[h] > hops.due_at[h])
    duration = Duration.parse(after)
    if duration.unit == "bd":
        return float(hops.business_days[h] > duration.amount)
    if duration.unit == "h":
        return float(hops.elapsed_s[h] > duration.amount * 3600)
    return float(hops.calendar_days[h] > duration.amount)


def _forecast_open(
    data: AuditData,
    case: int,
    open_row: int,
    pinned: Routing,
    old_route: Route,
    proposal: Routing,
    route: Route,
    durations: _Durations,
    history: DwellHistory,
    out: Replayed,
    runs: int,
) -> None:
    """The rest of an open case's chain, on each chain, with shared draws per position."""
    hops = data.hops
    fields = _fields(data, case)
    country = data.cases.country.label(case)
    if open_row >= 0:
        step = hops.step.label(open_row)
        elapsed = int(max(hops.calendar_days[open_row], 0))
        holder = hops.holder.label(open_row)
        index = old_route.step_index(step) if step in {s.id for s in old_route.steps} else 0
    else:  # with the requester: it comes back to the step it was returned from
        last = int(np.flatnonzero(hops.case == case)[-1])
        step, holder, elapsed = hops.step.label(last), hops.holder.label(last), 0
        index = old_route.step_index(step) if step in {s.id for s in old_route.steps} else 0
    ahead_before = _ahead(pinned, old_route, index, fields, durations, country)
    if open_row >= 0 and ahead_before:
        head = ahead_before[0]
        ahead_before[0] = HopAhead(country, holder, head.step, head.sla_days, elapsed)
    ahead_after = _ahead_on(
        proposal, route, old_route, step, holder, elapsed, fields, durations, country
    )
    seed = [data.cases.id[case].item(), 7]
    before, held_before = _remaining(ahead_before, history, seed, runs)
    after, held_after = _remaining(ahead_after, history, seed, runs)
    if open_row >= 0:
        # The open hop's days so far are in the recorded total: a kept hop goes on from there;
        # a removed (or moved) hop's days so far are saved on the proposal.
        kept = step in {s.id for s in route.steps} and _holder(route, step) == holder
        if not kept:
            out.after -= elapsed
        if held_before:
            held_before[0] = (held_before[0][0], held_before[0][1] + elapsed)
        if kept and held_after:
            held_after[0] = (held_after[0][0], held_after[0][1] + elapsed)
    out.before += before
    out.after += after
    out.hops_before += held_before
    out.hops_after += held_after


def _holder(route: Route, step: str) -> str:
    return route.steps[route.step_index(step)].holder


def _ahead(
    routing: Routing,
    route: Route,
    index: int,
    fields: dict[str, Any],
    durations: _Durations,
    country: str,
) -> list[HopAhead]:
    out = []
    for j in range(index, len(route.steps)):
        step = route.steps[j]
        if j == index or step.when is None or step.when.matches(fields):
            sla_days = durations.sla_days(routing, step.holder, str(routing.sla(route, j)))
            out.append(HopAhead(country, step.holder, step.id, sla_days))
    return out


def _ahead_on(
    proposal: Routing,
    route: Route,
    old_route: Route,
    step: str,
    holder: str,
    elapsed: int,
    fields: dict[str, Any],
    durations: _Durations,
    country: str,
) -> list[HopAhead]:
    """What an open case would have ahead on the proposal: from its step if kept (given the
    days spent there when the same authority holds it); if the proposal removed its step, from
    the first step after it that the proposal has (the case would already be there)."""
    ids = [s.id for s in route.steps]
    if step in ids:
        index = ids.index(step)
        ahead = _ahead(proposal, route, index, fields, durations, country)
        if ahead and route.steps[index].holder == holder:
            head = ahead[0]
            ahead[0] = HopAhead(country, head.holder, head.step, head.sla_days, elapsed)
        return ahead
    old_ids = [s.id for s in old_route.steps]
    later = old_ids[old_ids.index(step) + 1 :] if step in old_ids else []
    following = next((ids.index(s) for s in later if s in ids), None)
    if following is None:
        return []
    return _ahead(proposal, route, following, fields, durations, country)


def _remaining(
    ahead: list[HopAhead], history: DwellHistory, seed: list[int], runs: int
) -> tuple[F64, list[tuple[str, F64]]]:
    """The days left, per run, and what each hop ahead takes; the k-th hop ahead draws from
    the k-th stream of the case's seed, on either chain."""
    total = np.zeros(runs)
    held = []
    for k, hop in enumerate(ahead):
        u = np.random.default_rng([*seed, k]).random(runs)
        draws = history.draws(hop, u)[0].astype(np.float64)
        total += draws
        held.append((hop.holder, draws))
    return total, held


def _fields(data: AuditData, case: int) -> dict[str, Any]:
    cases = data.cases
    return {
        "kind": cases.kind.label(case),
        "direction": cases.direction.label(case),
        "legal_basis": cases.legal_basis.label(case),
        "coercive": bool(cases.coercive[case]),
        "urgent": bool(cases.urgent[case]),
        "counterpart": cases.counterpart.label(case),
    }


def _today(data: AuditData, case: int) -> int:
    from models.metrics import EPOCH_ORDINAL

    local = data.routing_of_case(case).calendar(None).local_date(data.now)
    return local.toordinal() - EPOCH_ORDINAL


def _compare(route: str, replayed: list[Replayed], runs: int) -> Comparison:
    if not replayed:
        empty = Side(*(Figure(None, None, None),) * 4)
        zero = Figure(None, None, None)
        return Comparison(route, 0, 0, empty, empty, zero, zero, zero)
    before = np.stack([r.before for r in replayed])  # cases x runs
    after = np.stack([r.after for r in replayed])
    presc = np.array([r.prescription_day for r in replayed])
    registered = np.array([r.registered_day for r in replayed])
    has = presc != NO_DAY
    late_before = sum(r.breaches_before[0] for r in replayed)
    closed_before = sum(r.breaches_before[1] for r in replayed)
    late_after = np.sum([r.breaches_after for r in replayed if r.breaches_after is not None], 0)
    closed_after = sum(r.closed_hops_after for r in replayed)
    finished_before = registered[:, None] + before
    finished_after = registered[:, None] + after
    missed_before = has[:, None] & (finished_before >= presc[:, None])
    missed_after = has[:, None] & (finished_after >= presc[:, None])
    return Comparison(
        route=route,
        cases=len(replayed),
        open_cases=sum(r.open for r in replayed),
        before=Side(
            Figure.of(np.median(before, axis=0)),
            Figure.of(np.percentile(before, 90, axis=0)),
            Figure.of(np.full(runs, late_before / closed_before if closed_before else np.nan)),
            Figure.of(missed_before.sum(axis=0).astype(np.float64)),
        ),
        after=Side(
            Figure.of(np.median(after, axis=0)),
            Figure.of(np.percentile(after, 90, axis=0)),
            Figure.of(
                np.asarray(late_after, dtype=np.float64) / closed_after
                if closed_after
                else np.full(runs, np.nan)
            ),
            Figure.of(missed_after.sum(axis=0).astype(np.float64)),
        ),
        days_saved_per_case=Figure.of((before - after).mean(axis=0)),
        prescriptions_avoided=Figure.of((missed_before & ~missed_after).sum(axis=0) * 1.0),
        prescriptions_caused=Figure.of((~missed_before & missed_after).sum(axis=0) * 1.0),
    )


def _load(
    replayed: list[Replayed], runs: int, proposal: Routing, current: Routing | None
) -> list[Load]:
    totals: dict[str, list[float]] = {}
    for case in replayed:
        for side, hops in ((0, case.hops_before), (1, case.hops_after)):
            for holder, days in hops:
                row = totals.setdefault(holder, [0.0, 0.0, 0.0, 0.0])
                row[side] += 1
                row[2 + side] += float(days.mean())
    names = {**(current.config.authorities if current else {}), **proposal.config.authorities}
    return sorted(
        (
            Load(
                holder,
                names[holder].name if holder in names else holder,
                row[0],
                row[1],
                round(row[2], 1),
                round(row[3], 1),
            )
            for holder, row in totals.items()
        ),
        key=lambda load: (-(load.days_before - load.days_after), load.authority),
    )


def _step_changes(
    current: Routing | None, proposal: Routing, routes: list[str]
) -> list[StepChange]:
    out = []
    old = {r.id: r for r in current.config.routes} if current else {}
    for route in proposal.config.routes:
        if route.id not in routes:
            continue
        before = old.get(route.id)
        was = {s.id: (i, s) for i, s in enumerate(before.steps)} if before else {}
        now = {s.id: (j, s) for j, s in enumerate(route.steps)}
        for sid, (i, s) in was.items():
            if sid not in now:
                assert current is not None and before is not None
                out.append(
                    StepChange(route.id, sid, "removed", f"{s.holder} {current.sla(before, i)}", "")
                )
        for sid, (j, s) in now.items():
            after = f"{s.holder} {proposal.sla(route, j)}"
            if sid not in was:
                out.append(StepChange(route.id, sid, "added", "", after))
                continue
            i, old_step = was[sid]
            assert current is not None and before is not None
            prior = f"{old_step.holder} {current.sla(before, i)}"
            if old_step.holder != s.holder:
                out.append(StepChange(route.id, sid, "moved", prior, after))
            elif prior != after:
                out.append(StepChange(route.id, sid, "SLA changed", prior, after))
    return out

"""The prescription-risk register: for each open case, when its chain will probably finish and how
likely that is to fall on or after its prescription date.

The remaining time is the open hop's remaining time plus every later step of the case's pinned
route that applies to it, drawn by Monte Carlo (fixed seed) from the observed dwell times, in
calendar days, of each authority and step. The open hop is drawn given the days it has already
taken. While an authority and step has fewer than MIN_HISTORY closed hops, its dwell is taken
from its SLA instead: log-normal with the SLA as median and twice the SLA as 90th percentile.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from models.calendar import Duration
from models.loader import Routing
from models.metrics import (
    EPOCH_ORDINAL,
    NO_DAY,
    AuditData,
    Row,
    combine,
    handoff_gaps,
    prescription_select,
    read_columns,
)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MIN_HISTORY = 20
"""Closed hops of an authority and step needed before its own history is trusted."""
MIN_TAIL = 5
"""Past hops at least as long as the open one needed to draw its remaining time from them."""
SAMPLES = 4000
SEED = 46_2003
"""UNCAC art. 46, adopted 2003: any fixed number makes the register reproducible."""
SLA_P90_FACTOR = 2.0
_Z90 = 1.2815515655446004
SIGMA = math.log(SLA_P90_FACTOR) / _Z90
NOT_HISTORY_DAYS = ("reassigned", "withdrawn")
"""Hops that ended for these reasons say nothing about how long the work takes."""


@dataclass(frozen=True)
class HopAhead:
    """A hop a case still has to go through."""

    country: str
    holder: str
    step: str
    sla_days: int
    """The SLA in calendar days, used while history is thin."""
    elapsed: int = 0
    """Calendar days the hop has already taken (the open hop); 0 for hops not yet opened."""


@dataclass(frozen=True)
class Pending:
    """An open case as the forecast sees it."""

    today: int
    """Today's day number (days since 1970-01-01), local to the case's country."""
    prescription_day: int | None
    ahead: tuple[HopAhead, ...]
    requester: str | None = None
    """The country whose requester must answer first (the case was returned to it)."""


@dataclass(frozen=True)
class Forecast:
    p50_day: int
    p90_day: int
    risk: float | None
    """Chance of finishing on or after the prescription date; None when there is none."""
    slack_days: int | None
    """Days from the median completion to the prescription date (negative: after it)."""
    basis: str
    """`history`, `sla` or `mixed`: where the dwell times came from."""
    requester_counted: bool = True


class DwellHistory:
    """Observed calendar-day dwell times per (country, holder, step), and requester waits."""

    def __init__(
        self,
        *,
        observed: dict[tuple[str, str, str], I64],
        requester: dict[str, I64] | None = None,
    ) -> None:
        self.observed = {k: np.sort(v.astype(np.int64)) for k, v in observed.items()}
        self.requester = {k: np.sort(v.astype(np.int64)) for k, v in (requester or {}).items()}
        self._pools: dict[tuple[int, int, int], F64] = {}
        self._rest: dict[Any, tuple[I64, set[bool]]] = {}

    @classmethod
    def from_audit(cls, data: AuditData) -> DwellHistory:
        hops, cases = data.hops, data.cases
        usable = hops.closed & ~hops.outcome.isin(NOT_HISTORY_DAYS)
        rows = np.flatnonzero(usable)
        observed: dict[tuple[str, str, str], I64] = {}
        if rows.size:
            group, first = combine(
                cases.country.codes[hops.case[rows]], hops.holder.codes[rows], hops.step.codes[rows]
            )
            for g, bucket in _split(group, first.size):
                i = int(rows[first[g]])
                key = (
                    cases.country.label(int(hops.case[i])),
                    hops.holder.label(i),
                    hops.step.label(i),
                )
                observed[key] = hops.calendar_days[rows[bucket]]
        prev, _, _, cd = handoff_gaps(data=data)
        waited = hops.to_requester[prev] if prev.size else np.zeros(0, bool)
        requester: dict[str, I64] = {}
        for code, label in enumerate(cases.country.labels):
            mine = waited & (cases.country.codes[hops.case[prev]] == code)
            if mine.any():
                requester[label] = cd[mine]
        return cls(observed=observed, requester=requester)

    def uniforms(self, seed: int, slot: int, n: int) -> F64:
        """The fixed uniform draws of one slot of a simulation (slot 0: the requester's answer,
        1: the hop open now, 2...: the hops after it). Every position reuses them: its forecast
        then depends on nothing but itself, and the hops after the open one are summed once."""
        key = (seed, slot, n)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = np.random.default_rng([seed, slot]).random(n)
        return pool

    def draws(self, hop: HopAhead, u: F64) -> tuple[I64, bool]:
        """Draws (one per uniform in `u`) of the hop's remaining calendar days, and whether they
        come from history (else from the SLA)."""
        seen = self.observed.get((hop.country, hop.holder, hop.step))
        if seen is not None and seen.size >= MIN_HISTORY:
            tail = seen[np.searchsorted(seen, hop.elapsed, side="left") :]
            if tail.size >= MIN_TAIL:
                picked: I64 = tail[(u * tail.size).astype(np.int64)] - hop.elapsed
                return picked, True
            # Held longer than nearly every past hop: assume it needs as long again as one.
            again: I64 = seen[(u * seen.size).astype(np.int64)]
            return again, True
        return sla_draws(sla_days=hop.sla_days, elapsed=hop.elapsed, u=u), False

    def rest(self, ahead: tuple[HopAhead, ...], seed: int, n: int) -> tuple[I64, set[bool]]:
        """The summed draws of hops not yet opened (slots 2...), computed once per path."""
        key = (ahead, seed, n)
        found = self._rest.get(key)
        if found is None:
            total = np.zeros(n, dtype=np.int64)
            used: set[bool] = set()
            for k, hop in enumerate(ahead):
                draws, from_history = self.draws(hop, self.uniforms(seed, k + 2, n))
                total += draws
                used.add(from_history)
            found = self._rest[key] = (total, used)
        return found[0], set(found[1])

    def requester_draws(self, country: str, u: F64) -> I64 | None:
        seen = self.requester.get(country)
        if seen is None or seen.size == 0:
            return None
        picked: I64 = seen[(u * seen.size).astype(np.int64)]
        return picked


def _split(group: I64, n: int) -> list[tuple[int, I64]]:
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(n + 1))
    return [(g, order[bounds[g] : bounds[g + 1]]) for g in range(n)]


def norm_ppf(u: F64) -> F64:
    """The standard normal quantile function (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)  # fmt: skip
    u = np.clip(np.asarray(u, dtype=np.float64), 1e-300, 1 - 1e-16)
    out = np.empty_like(u)
    low, high = u < 0.02425, u > 1 - 0.02425
    mid = ~(low | high)
    q = np.sqrt(-2 * np.log(u[low]))
    out[low] = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
        (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
    )
    q = np.sqrt(-2 * np.log(1 - u[high]))
    out[high] = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
        (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
    )
    q = u[mid] - 0.5
    r = q * q
    out[mid] = (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )
    return out


def sla_draws(*, sla_days: int, elapsed: int, u: F64) -> I64:
    """Remaining days of a hop whose dwell is log-normal around its SLA, given `elapsed` days,
    one per uniform in `u` (inverse transform of the distribution beyond `elapsed`)."""
    median = max(sla_days, 1)
    floor = 0.0
    if elapsed > 0:
        z = math.log(elapsed / median) / SIGMA
        floor = 0.5 * math.erfc(-z / math.sqrt(2))
    total = np.rint(median * np.exp(SIGMA * norm_ppf(floor + (1.0 - floor) * u))).astype(np.int64)
    remaining: I64 = np.maximum(total - elapsed, 0)
    return remaining


@dataclass(frozen=True)
class Outlook:
    """The simulated remaining days of one position in a chain, sorted."""

    totals: I64
    basis: str
    requester_counted: bool


def outlook(
    *,
    ahead: tuple[HopAhead, ...],
    requester: str | None,
    history: DwellHistory,
    samples: int = SAMPLES,
    seed: int = SEED,
) -> Outlook:
    """Monte Carlo draws of the days left for a case with `ahead` to go (and first the
    requester's answer when `requester` is set)."""
    totals = np.zeros(samples, dtype=np.int64)
    used: set[bool] = set()
    counted = True
    if requester is not None:
        wait = history.requester_draws(requester, history.uniforms(seed, 0, samples))
        if wait is None:
            counted = False
        else:
            totals += wait
    if ahead:
        head, from_history = history.draws(ahead[0], history.uniforms(seed, 1, samples))
        rest, rest_used = history.rest(ahead[1:], seed, samples)
        totals += head + rest
        used |= rest_used | {from_history}
    basis = "mixed" if len(used) > 1 else ("history" if used == {True} else "sla")
    totals.sort()
    return Outlook(totals, basis, counted)


@dataclass(frozen=True)
class Forecasts:
    """Forecasts of several cases that share one outlook, as arrays (days since 1970-01-01)."""

    p50_day: I64
    p90_day: I64
    risk: F64
    """NaN where the case has no prescription date."""
    slack_days: I64


def forecasts(*, outlook: Outlook, today: I64, prescription_day: I64) -> Forecasts:
    """P50/P90 completion, risk and slack of cases; NO_DAY marks a missing prescription date."""
    totals = outlook.totals
    n = totals.size
    p50 = today + int(totals[math.ceil(0.5 * n) - 1])
    p90 = today + int(totals[math.ceil(0.9 * n) - 1])
    has = prescription_day != NO_DAY
    # P(finish on or after the prescription date) = share of totals >= prescription - today.
    later = n - np.searchsorted(totals, prescription_day - today, side="left")
    risk = np.where(has, later / n, np.nan)
    return Forecasts(p50, p90, risk, prescription_day - p50)


def forecast(
    *,
    pending: Sequence[Pending],
    history: DwellHistory,
    samples: int = SAMPLES,
    seed: int = SEED,
) -> list[Forecast]:
    """The completion forecast of each pending case.

    Cases with the same hops ahead and the same days already spent share one simulation, so the
    cost grows with the distinct positions in the chains, not with the number of cases; each
    simulation is seeded from its key, so a case's forecast does not depend on the others.
    """
    groups: dict[tuple[tuple[HopAhead, ...], str | None], list[int]] = {}
    for n, case in enumerate(pending):
        groups.setdefault((case.ahead, case.requester), []).append(n)
    out: list[Forecast | None] = [None] * len(pending)
    for (ahead, requester), members in groups.items():
        seen = outlook(
            ahead=ahead, requester=requester, history=history, samples=samples, seed=seed
        )
        today = np.array([pending[m].today for m in members], dtype=np.int64)
        presc = np.array(
            [
                NO_DAY if pending[m].prescription_day is None else pending[m].prescription_day
                for m in members
            ],
            dtype=np.int64,
        )
        fc = forecasts(outlook=seen, today=today, prescription_day=presc)
        for k, m in enumerate(members):
            known = pending[m].prescription_day is not None
            out[m] = Forecast(
                int(fc.p50_day[k]),
                int(fc.p90_day[k]),
                float(fc.risk[k]) if known else None,
                int(fc.slack_days[k]) if known else None,
                seen.basis,
                seen.requester_counted,
            )
    return [f for f in out if f is not None]


# -- the register over the ledger ---------------------------------------------------------------


def prescription_histories(*, session: Session, data: AuditData) -> dict[int, list[Row]]:
    """Why each open case's prescription date is what it is: its `registered` and
    `prescription_event` payloads, in order (only the prescription parts are read)."""
    rows = data.prescription_rows
    if rows is None:
        conn = session.connection()
        rows = read_columns(conn, prescription_select(conn.dialect.name, data.filters))
    out: dict[int, list[Row]] = {}
    for request_id, kind, occurred, registered, on, event, after in zip(*rows, strict=True):
        if kind == "registered":
            found = json.loads(registered) if registered else {}
            day = datetime.fromtimestamp(int(occurred), UTC).date().isoformat()
            entry: Row = {"on": day, "event": "registered"}
        else:
            found = json.loads(after) if after else {}
            entry = {"on": on, "event": event}
        entry.update({"date": found.get("date"), "why": found.get("why", "")})
        out.setdefault(int(request_id), []).append(entry)
    return out


def _days(days: I64) -> list[str]:
    """ISO dates of day numbers (days since 1970-01-01)."""
    text: list[str] = np.datetime_as_string(days.astype("datetime64[D]")).tolist()
    return text


class _Paths:
    """The hops ahead of a case at a given step, from its pinned route (cached per position)."""

    def __init__(self, data: AuditData) -> None:
        self.data = data
        self.now = data.now
        self.cache: dict[tuple[Any, ...], tuple[tuple[str, str, str], ...]] = {}
        self.sla_days: dict[tuple[str, str, str], int] = {}

    def ahead(self, case: int, index: int) -> list[HopAhead]:
        cases = self.data.cases
        version = cases.version.label(case)
        routing = self.data.routings[version]
        fields = {
            "kind": cases.kind.label(case),
            "direction": cases.direction.label(case),
            "legal_basis": cases.legal_basis.label(case),
            "coercive": bool(cases.coercive[case]),
            "urgent": bool(cases.urgent[case]),
            "counterpart": cases.counterpart.label(case),
        }
        key = (version, cases.route.label(case), index, *fields.values())
        steps = self.cache.get(key)
        if steps is None:
            route = routing.config.route(cases.route.label(case))
            chosen = []
            for j in range(index, len(route.steps)):
                step = route.steps[j]
                if j == index or step.when is None or not step.when.mismatches(fields):
                    chosen.append((step.holder, step.id, str(routing.sla(route, j))))
            steps = self.cache[key] = tuple(chosen)
        return [
            HopAhead(routing.country, holder, step, self._sla_days(routing, version, holder, sla))
            for holder, step, sla in steps
        ]

    def _sla_days(self, routing: Routing, version: str, holder: str, sla: str) -> int:
        key = (version, holder, sla)
        days = self.sla_days.get(key)
        if days is None:
            days = self.sla_days[key] = sla_calendar_days(routing, holder, sla, now=self.now)
        return days


def sla_calendar_days(routing: Routing, holder: str, sla: str, *, now: datetime) -> int:
    """An SLA as calendar days from `now`: `d` as is, `h` rounded up to whole days, `bd` on
    the holder's calendar (the forecasts draw dwell in calendar days)."""
    duration = Duration.parse(sla)
    if duration.unit == "d":
        return duration.amount
    if duration.unit == "h":
        return math.ceil(duration.amount / 24)
    calendar = routing.calendar(holder)
    due = calendar.add(now, duration)
    return (calendar.local_date(due) - calendar.local_date(now)).days


@dataclass(frozen=True)
class Position:
    """Open cases that stand at the same place in the same chain, with the same days spent."""

    ahead: tuple[HopAhead, ...]
    requester: str | None
    cases: I64
    """Indices into `data.cases`."""
    today: I64
    prescription_day: I64


def positions(*, data: AuditData) -> list[Position]:
    """The open cases grouped by what they still have ahead (from their pinned routes)."""
    cases, hops = data.cases, data.hops
    open_cases = np.flatnonzero(~cases.status.equals("closed"))
    if open_cases.size == 0 or len(hops) == 0:
        return []
    open_hop = np.full(len(cases), -1, dtype=np.int64)
    last_hop = np.full(len(cases), -1, dtype=np.int64)
    is_open = ~hops.closed
    open_hop[hops.case[is_open]] = np.flatnonzero(is_open)
    last_hop[hops.case] = np.arange(len(hops))  # hops are ordered by hop within a case
    current = open_hop[open_cases]
    at = np.where(current >= 0, current, last_hop[open_cases])
    keep = at >= 0
    oc, current, at = open_cases[keep], current[keep], at[keep]
    waiting = current < 0
    # First the route ahead of each (route, request fields, step): a few hundred at most.
    route_group, route_first = combine(
        cases.version.codes[oc],
        cases.route.codes[oc],
        cases.kind.codes[oc],
        cases.direction.codes[oc],
        cases.legal_basis.codes[oc],
        cases.coercive[oc].astype(np.int64),
        cases.urgent[oc].astype(np.int64),
        cases.counterpart.codes[oc],
        hops.step_index[at],
    )
    paths = _Paths(data)
    path_ids: dict[tuple[HopAhead, ...], int] = {}
    ahead_of: list[tuple[HopAhead, ...]] = []
    path_of_group = np.zeros(route_first.size, dtype=np.int64)
    for g, row in enumerate(route_first):
        ahead = tuple(paths.ahead(int(oc[row]), int(hops.step_index[at[row]])))
        if ahead not in path_ids:
            path_ids[ahead] = len(ahead_of)
            ahead_of.append(ahead)
        path_of_group[g] = path_ids[ahead]
    # Then the open hop's own holder and days spent, or the wait on the requester.
    # A hop opened after `now` (a report as of a past day) has spent no day yet.
    elapsed = np.where(waiting, 0, np.maximum(hops.calendar_days[at], 0))
    holder = np.where(waiting, -1, hops.holder.codes[at])
    country = cases.country.codes[oc]
    group, first = combine(
        path_of_group[route_group], holder, elapsed, waiting.astype(np.int64), country
    )
    today_of = np.zeros(len(cases.version.labels), dtype=np.int64)
    for code, version in enumerate(cases.version.labels):
        local = data.routings[version].calendar(None).local_date(data.now)
        today_of[code] = local.toordinal() - EPOCH_ORDINAL
    today = today_of[cases.version.codes[oc]]
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(first.size + 1))
    out = []
    for g, row in enumerate(first):
        ahead = ahead_of[path_of_group[route_group[row]]]
        requester = None
        if waiting[row]:
            requester = cases.country.labels[country[row]]
        elif ahead:
            head = ahead[0]
            held = HopAhead(
                head.country,
                hops.holder.label(int(at[row])),
                head.step,
                head.sla_days,
                int(elapsed[row]),
            )
            ahead = (held, *ahead[1:])
        members = order[bounds[g] : bounds[g + 1]]
        out.append(
            Position(
                ahead, requester, oc[members], today[members], cases.prescription_day[oc[members]]
            )
        )
    return out


def risk_register(
    *, data: AuditData, session: Session, samples: int = SAMPLES, seed: int = SEED
) -> list[Row]:
    """The open cases, worst first: prescription date and why, completion P50/P90, risk, slack."""
    cases, hops = data.cases, data.hops
    history = DwellHistory.from_audit(data)
    histories = prescription_histories(session=session, data=data)
    current = np.full(len(cases), -1, dtype=np.int64)
    is_open = ~hops.closed
    current[hops.case[is_open]] = np.flatnonzero(is_open)
    rows = []
    for position in positions(data=data):
        seen = outlook(
            ahead=position.ahead,
            requester=position.requester,
            history=history,
            samples=samples,
            seed=seed,
        )
        fc = forecasts(
            outlook=seen, today=position.today, prescription_day=position.prescription_day
        )
        remaining = [f"{a.step} @ {a.holder}" for a in position.ahead]
        p50 = _days(fc.p50_day)
        p90 = _days(fc.p90_day)
        due = _days(position.prescription_day)
        note = (
            ""
            if seen.requester_counted
            else "waiting on the requester: its answer time is not counted (no past returns)"
        )
        known = (position.prescription_day != NO_DAY).tolist()
        risk = np.round(fc.risk, 4).tolist()
        slack = fc.slack_days.tolist()
        left = (position.prescription_day - position.today).tolist()
        running = cases.prescription_running[position.cases].tolist()
        for k, case in enumerate(position.cases.tolist()):
            moves = histories.get(int(cases.id[case]), [])
            h = int(current[case])
            rows.append(
                {
                    "reference": cases.reference[case],
                    "country": cases.country.label(case),
                    "route": cases.route.label(case),
                    "status": cases.status.label(case),
                    "step": hops.step.label(h) if h >= 0 else "with requester",
                    "authority": hops.holder.label(h) if h >= 0 else None,
                    "prescription_date": due[k] if known[k] else None,
                    "prescription_running": bool(cases.prescription_running[case]),
                    "prescription_why": moves[-1]["why"] if moves else "",
                    "prescription_history": moves,
                    "days_to_prescription": left[k] if known[k] else None,
                    "prescribed": already_prescribed(
                        days_left=left[k] if known[k] else None, running=running[k]
                    ),
                    "p50_completion": p50[k],
                    "p90_completion": p90[k],
                    "risk": risk[k] if known[k] else None,
                    "slack_days": slack[k] if known[k] else None,
                    "basis": seen.basis,
                    "remaining": remaining,
                    "note": note,
                }
            )
    return sorted(rows, key=_worst_first)


def already_prescribed(*, days_left: int | None, running: bool) -> bool:
    """Whether the prescription date has come: it is the first day the case can no longer be
    prosecuted. While a suspension runs the date is only the earliest it can be, and moves on
    with each day the suspension lasts: such a case has not prescribed yet."""
    return days_left is not None and days_left <= 0 and not running


def _worst_first(row: Row) -> tuple[bool, bool, float, float, str]:
    risk = row["risk"]
    slack = row["slack_days"]
    return (
        not row["prescribed"],
        risk is None,
        -(risk or 0.0),
        slack if slack is not None else math.inf,
        row["reference"],
    )

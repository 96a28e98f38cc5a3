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
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.calendar import Duration
from models.ledger import Event, Request
from models.loader import Routing
from models.metrics import (
    EPOCH_ORDINAL,
    NO_DAY,
    AuditData,
    Row,
    case_conditions,
    combine,
    epoch_seconds,
    handoff_gaps,
    json_member,
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
        waited = hops.target.equals("requester")[prev] if prev.size else np.zeros(0, bool)
        requester: dict[str, I64] = {}
        for code, label in enumerate(cases.country.labels):
            mine = waited & (cases.country.codes[hops.case[prev]] == code)
            if mine.any():
                requester[label] = cd[mine]
        return cls(observed=observed, requester=requester)

    def draws(self, hop: HopAhead, rng: np.random.Generator, n: int) -> tuple[I64, bool]:
        """`n` draws of the hop's remaining calendar days, and whether history was used."""
        seen = self.observed.get((hop.country, hop.holder, hop.step))
        if seen is not None and seen.size >= MIN_HISTORY:
            tail = seen[np.searchsorted(seen, hop.elapsed, side="left") :]
            if tail.size >= MIN_TAIL:
                picked: I64 = tail[rng.integers(tail.size, size=n)] - hop.elapsed
                return picked, True
            # Held longer than nearly every past hop: assume it needs as long again as one.
            again: I64 = seen[rng.integers(seen.size, size=n)]
            return again, True
        return sla_draws(sla_days=hop.sla_days, elapsed=hop.elapsed, rng=rng, n=n), False

    def requester_draws(self, country: str, rng: np.random.Generator, n: int) -> I64 | None:
        seen = self.requester.get(country)
        if seen is None or seen.size == 0:
            return None
        picked: I64 = seen[rng.integers(seen.size, size=n)]
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


def sla_draws(*, sla_days: int, elapsed: int, rng: np.random.Generator, n: int) -> I64:
    """Remaining days of a hop whose dwell is log-normal around its SLA, given `elapsed` days."""
    median = max(sla_days, 1)
    floor = 0.0
    if elapsed > 0:
        z = math.log(elapsed / median) / SIGMA
        floor = 0.5 * math.erfc(-z / math.sqrt(2))
    u = floor + (1.0 - floor) * rng.random(n)
    total = np.rint(median * np.exp(SIGMA * norm_ppf(u))).astype(np.int64)
    remaining: I64 = np.maximum(total - elapsed, 0)
    return remaining


def _rng(seed: int, key: Any) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


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
    simulated: dict[Any, tuple[I64, str, bool]] = {}
    out = []
    for case in pending:
        key = (case.ahead, case.requester)
        if key not in simulated:
            simulated[key] = _simulate(case, history, samples, _rng(seed, key))
        totals, basis, counted = simulated[key]
        p50 = case.today + int(totals[math.ceil(0.5 * samples) - 1])
        p90 = case.today + int(totals[math.ceil(0.9 * samples) - 1])
        risk = slack = None
        if case.prescription_day is not None:
            margin = case.prescription_day - case.today
            risk = 1.0 - float(np.searchsorted(totals, margin, side="left")) / samples
            slack = case.prescription_day - p50
        out.append(Forecast(p50, p90, risk, slack, basis, counted))
    return out


def _simulate(
    case: Pending, history: DwellHistory, samples: int, rng: np.random.Generator
) -> tuple[I64, str, bool]:
    totals = np.zeros(samples, dtype=np.int64)
    used: set[bool] = set()
    counted = True
    if case.requester is not None:
        wait = history.requester_draws(case.requester, rng, samples)
        if wait is None:
            counted = False
        else:
            totals += wait
    for hop in case.ahead:
        draws, from_history = history.draws(hop, rng, samples)
        totals += draws
        used.add(from_history)
    basis = "mixed" if len(used) > 1 else ("history" if used == {True} else "sla")
    totals.sort()
    return totals, basis, counted


# -- the register over the ledger ---------------------------------------------------------------


def prescription_histories(*, session: Session, data: AuditData) -> dict[int, list[Row]]:
    """Why each open case's prescription date is what it is: its `registered` and
    `prescription_event` payloads, in order (only the prescription parts are read)."""
    conn = session.connection()
    dialect = conn.dialect.name
    rows = conn.execute(
        select(
            Event.request_id,
            Event.kind,
            epoch_seconds(dialect, Event.occurred_at),
            json_member(dialect, Event.payload, "prescription"),
            json_member(dialect, Event.payload, "on"),
            json_member(dialect, Event.payload, "event"),
            json_member(dialect, Event.payload, "after"),
        )
        .join(Request, Request.id == Event.request_id)
        .where(
            Event.kind.in_(("registered", "prescription_event")),
            Request.status != "closed",
            *case_conditions(data.filters),
        )
        .order_by(Event.request_id, Event.seq)
    )
    out: dict[int, list[Row]] = {}
    for request_id, kind, occurred, registered, on, event, after in rows:
        if kind == "registered":
            found = json.loads(registered) if registered else {}
            day = datetime.fromtimestamp(occurred, UTC).date().isoformat()
            entry: Row = {"on": day, "event": "registered"}
        else:
            found = json.loads(after) if after else {}
            entry = {"on": on, "event": event}
        entry.update({"date": found.get("date"), "why": found.get("why", "")})
        out.setdefault(int(request_id), []).append(entry)
    return out


def _day(day: int) -> str:
    return date.fromordinal(day + EPOCH_ORDINAL).isoformat()


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
            duration = Duration.parse(sla)
            if duration.unit == "d":
                days = duration.amount
            elif duration.unit == "h":
                days = math.ceil(duration.amount / 24)
            else:
                calendar = routing.calendar(holder)
                due = calendar.add(self.now, duration)
                days = (calendar.local_date(due) - calendar.local_date(self.now)).days
            self.sla_days[key] = days
        return days


def pending_cases(*, data: AuditData) -> list[tuple[int, Pending]]:
    """Each open case (by index into `data.cases`) with the hops it still has ahead."""
    cases, hops = data.cases, data.hops
    paths = _Paths(data)
    today: dict[str, int] = {}
    open_hop = np.full(len(cases), -1, dtype=np.int64)
    last_hop = np.full(len(cases), -1, dtype=np.int64)
    if len(hops):
        is_open = ~hops.closed
        open_hop[hops.case[is_open]] = np.flatnonzero(is_open)
        last_hop[hops.case] = np.arange(len(hops))  # hops are ordered by hop within a case
    out = []
    for case in np.flatnonzero(~cases.status.equals("closed")):
        i = int(case)
        version = cases.version.label(i)
        if version not in today:
            routing = data.routings[version]
            today[version] = routing.calendar(None).local_date(data.now).toordinal() - EPOCH_ORDINAL
        requester = None
        h = int(open_hop[i])
        if h >= 0:
            ahead = paths.ahead(i, int(hops.step_index[h]))
            first = ahead[0]
            ahead[0] = HopAhead(
                first.country, hops.holder.label(h), first.step, first.sla_days,
                int(hops.calendar_days[h]),
            )  # fmt: skip
        else:
            last = int(last_hop[i])
            if last < 0:
                continue
            ahead = paths.ahead(i, int(hops.step_index[last]))
            requester = cases.country.label(i)
        presc = int(cases.prescription_day[i])
        out.append(
            (
                i,
                Pending(
                    today[version], None if presc == NO_DAY else presc, tuple(ahead), requester
                ),
            )
        )
    return out


def risk_register(
    *, data: AuditData, session: Session, samples: int = SAMPLES, seed: int = SEED
) -> list[Row]:
    """The open cases, worst first: prescription date and why, completion P50/P90, risk, slack."""
    cases, hops = data.cases, data.hops
    pending = pending_cases(data=data)
    forecasts = forecast(
        pending=[p for _, p in pending],
        history=DwellHistory.from_audit(data),
        samples=samples,
        seed=seed,
    )
    histories = prescription_histories(session=session, data=data)
    current = {int(hops.case[h]): int(h) for h in np.flatnonzero(~hops.closed)}
    rows = []
    for (i, case), fc in zip(pending, forecasts, strict=True):
        history = histories.get(int(cases.id[i]), [])
        h = current.get(i)
        note = (
            ""
            if fc.requester_counted
            else ("waiting on the requester: its answer time is not counted (no past returns)")
        )
        rows.append(
            {
                "reference": cases.reference[i],
                "country": cases.country.label(i),
                "route": cases.route.label(i),
                "status": cases.status.label(i),
                "step": hops.step.label(h) if h is not None else "with requester",
                "authority": hops.holder.label(h) if h is not None else None,
                "prescription_date": (
                    _day(case.prescription_day) if case.prescription_day is not None else None
                ),
                "prescription_running": bool(cases.prescription_running[i]),
                "prescription_why": history[-1]["why"] if history else "",
                "prescription_history": history,
                "days_to_prescription": (
                    case.prescription_day - case.today
                    if case.prescription_day is not None
                    else None
                ),
                "p50_completion": _day(fc.p50_day),
                "p90_completion": _day(fc.p90_day),
                "risk": None if fc.risk is None else round(fc.risk, 4),
                "slack_days": fc.slack_days,
                "basis": fc.basis,
                "remaining": [f"{a.step} @ {a.holder}" for a in case.ahead],
                "note": note,
            }
        )
    return sorted(rows, key=_worst_first)


def _worst_first(row: Row) -> tuple[int, float, float, str]:
    risk = row["risk"]
    slack = row["slack_days"]
    return (
        risk is None,
        -(risk or 0.0),
        slack if slack is not None else math.inf,
        row["reference"],
    )

"""The caseload simulator: a synthetic caseload driven through the engine's own commands.

A discrete-event loop pops (instant, case, action) from a priority queue, moves a `FixedClock` to
that instant and issues the engine command the action stands for: register, decide, stop_clock,
resume_clock, reassign, resubmit, withdraw, record. Nothing bypasses the engine, so the ledger it
leaves is one the auditors' reports, the clock sweep and `verify_chain` read like any other.
Every draw comes from generators seeded by `seed`: one seed always writes the same ledger, event
hash for event hash. The defaults are calibrated on the UNODC note's figures (see
shared/reference/domain.md): Russian incoming requests executed in 3-6 months, and 55 of 61
incoming and 48 of 66 outgoing requests executed (CAC/COSP/2019/7, para 96).
"""

from __future__ import annotations

import gc
import heapq
import math
import random
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from itertools import accumulate
from statistics import median
from typing import Any

import numpy as np
from sqlalchemy import Connection, event, func, select
from sqlalchemy.orm import Session

from models import engine
from models.calendar import Calendar, Duration
from models.clock import FixedClock
from models.commands import (
    Command,
    Decide,
    Reassign,
    Record,
    Register,
    Resubmit,
    ResumeClock,
    StopClock,
    Withdraw,
)
from models.config import Route
from models.domain import DelayCause, Kind, Outcome, PrescriptionEffect, RefusalGround
from models.engine import Result, Routings
from models.errors import CommandRejected
from models.ledger import Ledger, Request, Step
from models.loader import Routing
from models.prescription import EventKind
from models.privacy import SYNTHETIC_KEY
from models.store import QUIET_KEY, Case, CaseStore

DAY = 86_400
DEFAULT_START = datetime(2016, 1, 1, tzinfo=UTC)
EU_MEMBERS = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    }
)
"""States between which EU instruments (EIO, EAW, Regulation 2018/1805) replace MLA."""

_SIMULATOR = "simulator"
_PAGE_CACHE_KIB = 256 * 1024
"""SQLite's page cache for the simulation's connection, while it runs: a ledger written in one
long run keeps its tables' and indexes' pages in memory (the default 2 MiB re-read them: 6% of
a run of 10,000 requests). SQLite takes the memory only as pages are read."""
_REPORT_EVERY = 1000
"""Commands between two calls of the progress callback."""
_MAX_HOPS = 40
"""A case that has needed this many hops takes no more detours: it only moves forward."""


def _shares(**weights: float) -> dict[str, float]:
    return dict(weights)


@dataclass(frozen=True)
class Mix:
    """What the synthetic requests are: the share of each value, drawn per request.

    A drawn request that no route of its country matches is drawn again, so each country only
    receives requests its routing file handles (El Salvador, which routes only outgoing MLA and
    asset requests, gets only those).
    """

    incoming: float = 0.5
    kinds: Mapping[str, float] = field(
        default_factory=lambda: _shares(
            mla=0.70,
            extradition=0.08,
            asset_tracing=0.07,
            asset_freezing=0.06,
            asset_seizure=0.04,
            confiscation=0.03,
            asset_return=0.02,
        )
    )
    legal_bases: Mapping[str, float] = field(
        default_factory=lambda: _shares(
            uncac=0.30,
            bilateral_treaty=0.35,
            untoc=0.07,
            regional_instrument=0.13,
            reciprocity=0.15,
        )
    )
    """Between states that are not both EU members."""
    eu_instrument: float = 0.85
    """Between two EU members: the share sent under an EU instrument rather than by MLA."""
    offences: Mapping[str, float] = field(
        default_factory=lambda: _shares(
            bribery=0.34,
            embezzlement=0.20,
            money_laundering=0.20,
            abuse_of_functions=0.10,
            trading_in_influence=0.05,
            illicit_enrichment=0.04,
            concealment=0.04,
            obstruction=0.03,
        )
    )
    counterparts: Mapping[str, float] = field(
        default_factory=lambda: {
            "US": 8,
            "ES": 6,
            "FR": 5,
            "DE": 5,
            "IT": 5,
            "CH": 5,
            "GB": 5,
            "PT": 3,
            "NL": 3,
            "LU": 2,
            "CY": 2,
            "AT": 2,
            "PL": 2,
            "RU": 3,
            "UA": 3,
            "MX": 3,
            "PA": 3,
            "BR": 3,
            "CO": 2,
            "GT": 2,
            "SV": 2,
            "KE": 2,
            "ZA": 2,
            "AE": 3,
            "CN": 2,
            "SG": 2,
            "MK": 1,
        }
    )
    """The other state; the country itself is never drawn."""
    urgent: float = 0.06
    coercive: float = 0.35
    hidden: float = 0.3
    """Share of offences discovered after they were committed (a discovery date is given)."""
    offence_age_days: float = 700.0
    """Median days from the offence to the request."""
    countries: Mapping[str, float] | None = None
    """Relative caseload per country; None: the same for every country simulated."""


@dataclass(frozen=True)
class Calibration:
    """How requests fare: their end, how long each authority holds them, and the detours.

    A request's end (executed, refused, withdrawn) is drawn when it arrives, so the execution
    rates hold whatever the length of its route; the hop that refuses or withdraws is drawn
    along the route. Dwell times are lognormal: the median is the step's SLA (bd counted as
    7/5 calendar days) times the pace of the holder's kind, times a factor drawn once per
    authority, so every authority has a pace of its own that the audit report can find.
    """

    executed: Mapping[str, float] = field(
        default_factory=lambda: {"incoming": 55 / 61, "outgoing": 48 / 66}
    )
    """Seed para 96 (Russian Federation, 2018, corruption): executed / received, per direction."""
    withdrawn: Mapping[str, float] = field(
        default_factory=lambda: {"incoming": 0.02, "outgoing": 0.06}
    )
    """Of the requests not executed, these shares are withdrawn; the rest are refused."""
    partial: float = 0.15
    """Of executed requests, the share only partly executed."""
    pace: Mapping[str, float] = field(
        default_factory=lambda: _shares(
            central_authority=0.7,
            ministry=0.9,
            foreign_affairs=0.8,
            prosecution=0.8,
            police=0.9,
            judiciary=1.0,
            financial_intelligence=0.9,
            anti_corruption=0.9,
            asset_recovery_office=1.1,
            foreign=1.15,
        )
    )
    """Median dwell as a share of the SLA, per authority kind; foreign states are slower."""
    spread: float = 0.5
    """Sigma of the log dwell at one domestic authority."""
    foreign_spread: float = 0.65
    authority_spread: float = 0.2
    """Sigma of the log pace between authorities of the same kind."""
    returns: float = 0.03
    """Chance that a domestic hop is returned (to the requester or an earlier step)."""
    foreign_returns: float = 0.08
    postponements: float = 0.05
    """Chance of a postponement (UNCAC 46(25)) on a step that allows one."""
    stops: float = 0.05
    """Chance that a hop's clock is stopped while the holder awaits clarification."""
    reassignments: float = 0.03
    """Chance that a domestic hop reached the wrong authority and is moved to another one."""
    max_returns: int = 2
    max_postponements: int = 2
    requester_days: float = 30.0
    """Median days a requester takes to answer a return."""
    stop_days: float = 15.0
    """Median days a stopped clock stands still."""
    suspension_orders: float = 0.7
    """Where § 3292 applies: share of requests abroad for which a court suspends the period."""
    refusal_grounds: Mapping[str, float] = field(
        default_factory=lambda: _shares(
            nonconforming_request=0.20,
            no_dual_criminality=0.18,
            prescription_expired=0.08,
            essential_interests=0.08,
            de_minimis=0.07,
            ne_bis_in_idem=0.06,
            domestic_prohibition=0.05,
            contrary_to_legal_system=0.05,
            fundamental_rights=0.05,
            immunity=0.04,
            political_offence=0.03,
            nationality=0.06,
            refugee_status=0.02,
            not_party_to_convention=0.01,
            bank_secrecy=0.015,
            fiscal_offence=0.005,
        )
    )
    """Bank secrecy and fiscal offence are prohibited by UNCAC 46(8), 46(22); rare on purpose."""
    expired_refusal: float = 0.8
    """Seed para 54: once the case's limitation date has passed, the refusal says so this often."""
    return_causes: Mapping[str, float] = field(
        default_factory=lambda: _shares(
            incomplete_request=0.45,
            missing_translation=0.25,
            wrong_channel=0.12,
            confidentiality_concern=0.06,
            asset_tracing=0.06,
            owner_challenge=0.06,
        )
    )
    """`asset_tracing` and `owner_challenge` are drawn only for asset-recovery requests."""


_EXTRADITION_ONLY = frozenset({"nationality", "refugee_status"})
_ASSET_ONLY = frozenset({"asset_tracing", "owner_challenge"})
_ADVANCING = (Outcome.FORWARDED, Outcome.EXECUTED)
_UNIT_DAYS = {"bd": 7 / 5, "d": 1.0, "h": 1 / 24}
_END = -1
_REQUESTER = -2

# Actions in the queue.
_ARRIVE, _DECIDE, _STOP, _RESUME, _REASSIGN, _RESUBMIT, _WITHDRAW, _ORDER = range(8)

# Fates, drawn at arrival.
_EXECUTE, _REFUSE, _WITHDRAW_FATE = range(3)


@dataclass(frozen=True, slots=True)
class _StepPlan:
    """One step of a route as a given request meets it, with its decisions resolved."""

    index: int
    foreign: bool
    sla_days: float
    advance: tuple[Outcome, ...]
    """Forward decisions that lead to another step (forwarded, or executed to a later step)."""
    finish: bool
    """`executed` ends the case here."""
    close: bool
    """`forwarded` ends the case here (a last reply after execution, say)."""
    partial: bool
    """`partially_executed` leads where `executed` does."""
    refuse: bool
    returns: bool
    postpone: bool
    fallback: Outcome | None
    """For a step that can neither advance, finish nor close: what ends the case there."""
    alternates: tuple[str, ...]
    """Other authorities of the holder's kind, where a misdirected request may have to go."""

    @property
    def finishing(self) -> bool:
        return not self.advance


@dataclass(frozen=True, slots=True)
class _RoutePlan:
    steps: tuple[_StepPlan, ...]
    main_path: tuple[int, ...]
    """The steps a request visits when every holder moves it on (the first advance each time)."""


class _Case:
    """A case as the simulator follows it: its route plan, its drawn fate, its detours so far."""

    __slots__ = (
        "after_stop",
        "country",
        "direction",
        "executed",
        "fate",
        "finalised",
        "hops",
        "kind",
        "plan",
        "postponements",
        "reassigned",
        "reference",
        "registered",
        "resume_at",
        "returns",
        "routing",
        "sent_abroad",
        "target",
    )

    def __init__(self, routing: Routing, plan: _RoutePlan, direction: str, kind: str) -> None:
        self.routing = routing
        self.country = routing.country
        self.plan = plan
        self.direction = direction
        self.kind = kind
        self.reference = ""
        self.registered = 0
        self.fate = _EXECUTE
        self.target = -1
        self.hops = 0
        self.returns = 0
        self.postponements = 0
        self.reassigned = False
        self.sent_abroad = False
        self.finalised = False
        self.executed = False
        self.resume_at = 0
        self.after_stop: tuple[int, int] = (_DECIDE, 0)


@dataclass
class SimulationSummary:
    """What a run did, counted as it went; the ledger holds every detail."""

    seed: int
    years: int
    per_year: int
    countries: list[str]
    start: datetime
    end: datetime
    cases: int = 0
    transitions: int = 0
    """Engine commands issued (each appends at least one event to a case's chain)."""
    outcomes: dict[str, int] = field(default_factory=dict)
    """Closed cases by outcome: executed, partially_executed, refused, withdrawn."""
    closed_by_direction: dict[str, int] = field(default_factory=dict)
    executed_by_direction: dict[str, int] = field(default_factory=dict)
    returns: int = 0
    postponements: int = 0
    clock_stops: int = 0
    reassignments: int = 0
    prescription_records: int = 0
    prohibited_refusals: int = 0
    open_cases: int = 0
    with_requester: int = 0
    late_open_hops: int = 0
    """Hops still open at the end whose due instant has passed."""
    due_rung_hops: int = 0
    """Open hops with a reminder or escalation rung due at the end: what a clock sweep finds."""
    executed_days: dict[str, list[float]] = field(default_factory=dict)
    """Days from registration to execution, per `<country>-<direction>`."""
    elapsed_s: float = 0.0

    @property
    def transitions_per_s(self) -> float:
        return self.transitions / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def execution_rate(self, direction: str) -> float | None:
        """Executed (fully or partly) among closed cases of one direction."""
        closed = self.closed_by_direction.get(direction, 0)
        return self.executed_by_direction.get(direction, 0) / closed if closed else None

    def median_executed_days(self, country: str, direction: str) -> float | None:
        days = self.executed_days.get(f"{country}-{direction}")
        return median(days) if days else None

    def as_json(self) -> dict[str, Any]:
        """The counts and the figures to check against the seed, without per-case detail."""
        return {
            "seed": self.seed,
            "years": self.years,
            "per_year": self.per_year,
            "countries": self.countries,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "cases": self.cases,
            "transitions": self.transitions,
            "outcomes": dict(sorted(self.outcomes.items())),
            "execution_rate": {d: self.execution_rate(d) for d in ("incoming", "outgoing")},
            "median_executed_days": {
                key: median(days) for key, days in sorted(self.executed_days.items())
            },
            "returns": self.returns,
            "postponements": self.postponements,
            "clock_stops": self.clock_stops,
            "reassignments": self.reassignments,
            "prescription_records": self.prescription_records,
            "prohibited_refusals": self.prohibited_refusals,
            "open_cases": self.open_cases,
            "with_requester": self.with_requester,
            "late_open_hops": self.late_open_hops,
            "due_rung_hops": self.due_rung_hops,
            "elapsed_s": self.elapsed_s,
            "transitions_per_s": self.transitions_per_s,
        }


Progress = Callable[[float, SimulationSummary], None]


def refuse_filled_ledger(ledger: Ledger) -> None:
    """Synthetic cases must not mix with real ones: refuse a ledger that already holds cases."""
    with ledger.session() as session:
        existing = session.scalar(select(func.count()).select_from(Request)) or 0
    if existing:
        raise CommandRejected(
            f"the ledger at {ledger.engine.url} already holds {existing:,} cases: simulate "
            "into an empty one (e.g. --database sqlite:///var/simulation.db) or append on purpose"
        )


def simulate(
    *,
    ledger: Ledger,
    routings: Routings,
    years: int,
    per_year: int,
    seed: int,
    countries: Sequence[str] | None = None,
    start: datetime = DEFAULT_START,
    mix: Mix | None = None,
    calibration: Calibration | None = None,
    commit_every: int = 20_000,
    progress: Progress | None = None,
) -> SimulationSummary:
    """Run `years` x `per_year` synthetic requests through the engine into `ledger`.

    Commands share one write per `commit_every` commands (`engine.batch`), each batch committed
    on its own; `progress` hears after each commit how much of the period is done. Cases still
    open at the end stay open, late hops with their rungs due, as a clock sweep would find them.
    """
    simulator = _Simulator(
        routings=routings,
        years=years,
        per_year=per_year,
        seed=seed,
        countries=countries,
        start=start,
        mix=mix or Mix(),
        calibration=calibration or Calibration(),
    )
    return simulator.run(ledger, commit_every=commit_every, progress=progress)


class _Simulator:
    def __init__(
        self,
        *,
        routings: Routings,
        years: int,
        per_year: int,
        seed: int,
        countries: Sequence[str] | None,
        start: datetime,
        mix: Mix,
        calibration: Calibration,
    ) -> None:
        if years < 1 or per_year < 1:
            raise CommandRejected("simulate needs at least 1 year and 1 request per year")
        if start.tzinfo is None:
            raise CommandRejected(f"start {start.isoformat()} has no timezone")
        codes = sorted(routings.current) if not countries else sorted(set(countries))
        unknown = [c for c in codes if c not in routings.current]
        if unknown:
            known = ", ".join(sorted(routings.current))
            raise CommandRejected(f"no routing for {', '.join(unknown)} (configured: {known})")
        self.routings = routings
        self.years = years
        self.per_year = per_year
        self.seed = seed
        self.codes = codes
        self.start = start.astimezone(UTC)
        self.end = _add_years(self.start, years)
        if self.start.year < 1995 or self.end.year > 2075:
            raise CommandRejected(
                f"simulate {self.start.year}-{self.end.year} is outside the calendars' years "
                "(1995-2075 leaves room for offence dates and late deadlines)"
            )
        self.mix = mix
        self.cal = calibration
        self.rng = random.Random(f"{seed}:dynamics")
        self.draw = random.Random(f"{seed}:requests")
        self.clock = FixedClock(self.start)
        self.queue: list[tuple[int, int, int, Any, Any]] = []
        self.order = 0
        self.summary = SimulationSummary(
            seed=seed,
            years=years,
            per_year=per_year,
            countries=codes,
            start=self.start,
            end=self.end,
        )
        self._plans: dict[tuple[str, ...], _RoutePlan | None] = {}
        self._shapes: dict[tuple[str, str, tuple[bool, ...]], _RoutePlan | None] = {}
        # Counterparts make a difference only to countries whose matchers name some.
        self._by_counterpart = {
            code: any(
                m is not None and m.counterpart is not None
                for route in r.config.routes
                for m in (route.when, *(s.when for s in route.steps))
            )
            for code, r in routings.current.items()
        }
        self._snaps: dict[tuple[int, int], int] = {}
        self.finished: list[str] = []
        """Cases closed since the last commit: the store may forget them after it."""
        self._paces: dict[tuple[str, str], float] = {}
        self._kinds = _Weighted(mix.kinds)
        self._bases = _Weighted(mix.legal_bases)
        self._offences = _Weighted(mix.offences)
        self._counterparts = _Weighted(mix.counterparts)
        self._grounds = {
            extradition: _Weighted(
                {
                    g: w
                    for g, w in calibration.refusal_grounds.items()
                    if extradition or g not in _EXTRADITION_ONLY
                }
            )
            for extradition in (False, True)
        }
        self._causes = {
            assets: _Weighted(
                {
                    c: w
                    for c, w in calibration.return_causes.items()
                    if assets or c not in _ASSET_ONLY
                }
            )
            for assets in (False, True)
        }
        self._effects = {
            code: frozenset(
                e.rule for e in (r.config.prescription.effects if r.config.prescription else ())
            )
            for code, r in routings.current.items()
        }

    # -- the loop -------------------------------------------------------------------------------

    def run(
        self, ledger: Ledger, *, commit_every: int, progress: Progress | None
    ) -> SimulationSummary:
        began = time.perf_counter()
        self._schedule_arrivals()
        # A batch's events and hops live until it is written and hold no reference cycles;
        # the cyclic collector would scan them over and over (a tenth of the run). It pauses
        # while a batch runs and collects what the batch left once it is committed.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._loop(
                ledger,
                began=began,
                commit_every=commit_every,
                progress=progress,
                collect=collecting,
            )
        finally:
            if collecting:
                gc.enable()
        self.summary.elapsed_s = time.perf_counter() - began
        if progress is not None:
            progress(1.0, self.summary)
        return self.summary

    def _loop(
        self,
        ledger: Ledger,
        *,
        began: float,
        commit_every: int,
        progress: Progress | None,
        collect: bool,
    ) -> None:
        end = int(self.end.timestamp())
        start = int(self.start.timestamp())
        span = max(1, end - start)
        queue = self.queue
        handlers: dict[int, Callable[[Session, Any, Any], int]] = {
            _ARRIVE: self._arrive,
            _DECIDE: self._decide,
            _STOP: self._stop,
            _RESUME: self._resume,
            _REASSIGN: self._reassign,
            _RESUBMIT: self._resubmit,
            _WITHDRAW: self._withdraw,
            _ORDER: self._order,
        }
        clock = self.clock
        summary = self.summary
        committed = reported = 0
        with ledger.write_session() as session, _page_cache(session):
            # Past hops: nobody is to be told they opened years ago.
            session.info[QUIET_KEY] = True
            # Synthetic intakes: sealed reproducibly, so one seed writes one ledger.
            session.info[SYNTHETIC_KEY] = True
            self.store = CaseStore.of(session)
            while queue and queue[0][0] < end:
                done = 0
                with engine.batch(session):
                    while queue and queue[0][0] < end and done < commit_every:
                        at, _, action, case, arg = heapq.heappop(queue)
                        clock.at = datetime.fromtimestamp(at, UTC)
                        done += handlers[action](session, case, arg)
                        if progress is not None and done - reported >= _REPORT_EVERY:
                            reported = done
                            summary.transitions = committed + done
                            summary.elapsed_s = time.perf_counter() - began
                            progress(min(1.0, (at - start) / span), summary)
                session.commit()
                self.store.release(self.finished)
                self.finished.clear()
                committed += done
                summary.transitions = committed
                reported = 0
                if collect:
                    gc.collect(1)  # what this batch left behind; older objects were scanned
            self._tally_open(session, end)

    def _push(self, at: int, action: int, case: Any, arg: Any = None) -> None:
        self.order += 1
        heapq.heappush(self.queue, (at, self.order, action, case, arg))

    def _tally_open(self, session: Session, end: int) -> None:
        at = datetime.fromtimestamp(end, UTC)
        late, due = session.execute(
            select(
                func.count().filter(Step.due_at < at),
                func.count().filter(Step.next_rung_at <= at),
            ).where(Step.closed_at.is_(None))
        ).one()
        self.summary.late_open_hops = int(late or 0)
        self.summary.due_rung_hops = int(due or 0)
        statuses = dict(
            session.execute(
                select(Request.status, func.count())
                .where(Request.status != "closed")
                .group_by(Request.status)
            ).all()
        )
        self.summary.open_cases = sum(int(n) for n in statuses.values())
        self.summary.with_requester = int(statuses.get("with_requester", 0))

    # -- arrivals -------------------------------------------------------------------------------

    def _schedule_arrivals(self) -> None:
        """Exactly `per_year` arrivals a year, split among countries by a multinomial draw and
        spread uniformly over the year: a Poisson process per country, given the total."""
        relative = self.mix.countries or {}
        weights = np.array([relative.get(c, 1.0) for c in self.codes], dtype=float)
        if weights.sum() <= 0:
            raise CommandRejected("the country weights of the mix add up to nothing")
        weights = weights / weights.sum()
        bulk = np.random.default_rng(self.seed)
        for year in range(self.years):
            begin = _add_years(self.start, year)
            span = (_add_years(self.start, year + 1) - begin).total_seconds()
            counts = bulk.multinomial(self.per_year, weights)
            until = int(_add_years(self.start, year + 1).timestamp())
            for code, n in zip(self.codes, counts.tolist(), strict=True):
                if not n:
                    continue
                calendar = self.routings.current[code].calendar()
                offsets = np.sort(bulk.uniform(0.0, span, size=n))
                minutes = bulk.integers(8 * 60, 17 * 60, size=n)
                for offset, minute in zip(offsets.tolist(), minutes.tolist(), strict=True):
                    day = begin + timedelta(seconds=offset)
                    at = _working_instant(calendar, day, minute, step=1)
                    if at >= until:  # the year's last days are closed: take its last open day
                        at = _working_instant(calendar, day, minute, step=-1)
                    self._push(at, _ARRIVE, code)

    def _arrive(self, session: Session, code: Any, _: Any) -> int:
        routing = self.routings.current[code]
        now = self.clock.at
        for _attempt in range(200):
            data, key = self._draw_request(code, now.date())
            plan = self._plan(routing, key)
            if plan is not None:
                break
        else:
            raise CommandRejected(
                f"the mix draws no request that a route of {code} matches: check its routes"
            )
        case = _Case(routing, plan, key[1], key[2])
        result = self._run(session, Register(request=data))
        case.reference = result.reference
        case.registered = int(now.timestamp())
        self._draw_fate(case)
        self.summary.cases += 1
        self._open_hop(case, case.registered)
        return 1

    def _draw_request(self, code: str, today: date) -> tuple[dict[str, Any], tuple[str, ...]]:
        mix, draw = self.mix, self.draw
        direction = "incoming" if draw.random() < mix.incoming else "outgoing"
        kind = self._kinds.pick(draw)
        counterpart = code
        while counterpart == code:
            counterpart = self._counterparts.pick(draw)
        if code in EU_MEMBERS and counterpart in EU_MEMBERS and draw.random() < mix.eu_instrument:
            basis = "eu_instrument"
        else:
            basis = self._bases.pick(draw)
        offence = self._offences.pick(draw)
        urgent = draw.random() < mix.urgent
        coercive = draw.random() < mix.coercive
        age = max(30, int(mix.offence_age_days * math.exp(0.6 * draw.gauss(0.0, 1.0))))
        offence_date = today - timedelta(days=age)
        party = counterpart if self._by_counterpart[code] else "*"
        key = (code, direction, kind, basis, str(coercive), str(urgent), party)
        requesting = (
            "Synthetic prosecution service"
            if direction == "outgoing"
            else (f"Central authority of {counterpart} (synthetic)")
        )
        data: dict[str, Any] = {
            "country": code,
            "direction": direction,
            "kind": kind,
            "legal_basis": basis,
            "offence_category": offence,
            "offence_date": offence_date.isoformat(),
            "counterpart": counterpart,
            "urgent": urgent,
            "coercive": coercive,
            "channel": "diplomatic" if basis == "reciprocity" else "central_authority",
            "requesting_authority": requesting,
            "conducting_authority": "Synthetic investigating authority",
            "subject": f"{offence.replace('_', ' ')} (simulated caseload)",
            "facts_summary": "Synthetic facts: no real person or case.",
            "assistance_sought": _ASSISTANCE[kind],
            "purpose": "Demonstrate and benchmark the routing engine",
            # Given, not defaulted: pydantic copies a mutable default on every validation.
            "languages": ["en"],
            "persons": [],
        }
        if draw.random() < mix.hidden:
            data["discovery_date"] = (
                offence_date + timedelta(days=draw.randint(0, age))
            ).isoformat()
        if urgent:
            data["urgency_reason"] = "assets may be moved or evidence lost"
        if kind == Kind.EXTRADITION:
            data["persons"] = ["the person sought (synthetic)"]
        if kind not in (Kind.MLA, Kind.EXTRADITION):
            data["assets"] = "bank balances and real estate (synthetic)"
        if kind in (Kind.CONFISCATION, Kind.ASSET_RETURN):
            data["order_reference"] = f"SIM-ORDER-{self.summary.cases + 1}"
        return data, key

    def _draw_fate(self, case: _Case) -> None:
        cal, rng = self.cal, self.rng
        path = case.plan.main_path
        u = rng.random()
        executed = cal.executed[case.direction]
        if u < executed:
            return
        withdrawn = (1.0 - executed) * cal.withdrawn[case.direction]
        steps = case.plan.steps
        if u < executed + withdrawn:
            case.fate = _WITHDRAW_FATE
            case.target = path[rng.randrange(len(path))]
            return
        refusing = [i for i in path if steps[i].refuse]
        if not refusing:
            return
        case.fate = _REFUSE
        # Outgoing requests are mostly refused abroad; incoming ones by the central authority
        # or a court, whichever steps the route gives.
        weights = [4.0 if steps[i].foreign else 1.0 for i in refusing]
        case.target = rng.choices(refusing, weights)[0]

    # -- hops -----------------------------------------------------------------------------------

    def _open_hop(self, case: _Case, now: int) -> None:
        """Plan what happens to the hop the engine just opened for the case."""
        cal, rng = self.cal, self.rng
        hop = self.store.case(case.reference).open
        assert hop is not None
        step = case.plan.steps[hop.step_index]
        case.hops += 1
        calendar = case.routing.calendar(hop.holder)
        spread = cal.foreign_spread if step.foreign else cal.spread
        median_days = step.sla_days * self._pace(case.routing, hop.holder)
        dwell = max(3600, int(median_days * DAY * math.exp(spread * rng.gauss(0.0, 1.0))))
        detours = case.hops < _MAX_HOPS
        if detours and not case.reassigned and step.alternates and rng.random() < cal.reassignments:
            others = [a for a in step.alternates if a != hop.holder]
            if others:
                case.reassigned = True
                noticed = self._snap(calendar, now + int(dwell * rng.uniform(0.05, 0.3)))
                self._push(noticed, _REASSIGN, case, others[rng.randrange(len(others))])
                return
        action = _DECIDE
        if case.fate == _WITHDRAW_FATE and (hop.step_index == case.target or step.finishing):
            action = _WITHDRAW
            dwell = int(dwell * rng.uniform(0.2, 1.0))
        due = self._snap(calendar, now + dwell)
        if detours and rng.random() < cal.stops:
            stop = self._snap(calendar, now + int(dwell * rng.uniform(0.1, 0.6)))
            length = int(cal.stop_days * DAY * math.exp(0.6 * rng.gauss(0.0, 1.0)))
            case.resume_at = self._snap(calendar, stop + max(DAY, length))
            # The stop holds the hop back by as long as it lasted.
            then = max(case.resume_at + 3600, due + case.resume_at - stop)
            case.after_stop = (action, self._snap(calendar, then))
            self._push(stop, _STOP, case)
            return
        self._push(due, action, case)

    def _snap(self, calendar: Calendar, at: int) -> int:
        """The same time on the holder's first business day on or after `at`."""
        day = datetime.fromtimestamp(at, calendar.tz).toordinal()
        key = (id(calendar), day)
        shift = self._snaps.get(key)
        if shift is None:
            first = date.fromordinal(day)
            shift = 0
            while not calendar.is_business_day(first + timedelta(days=shift)):
                shift += 1
            self._snaps[key] = shift
        return at + shift * DAY

    def _pace(self, routing: Routing, holder: str) -> float:
        key = (routing.country, holder)
        pace = self._paces.get(key)
        if pace is None:
            kind = routing.config.authorities[holder].kind
            own = random.Random(f"{self.seed}:pace:{routing.country}:{holder}")
            pace = self.cal.pace.get(kind, 1.0) * math.exp(
                self.cal.authority_spread * own.gauss(0.0, 1.0)
            )
            self._paces[key] = pace
        return pace

    def _decide(self, session: Session, case: _Case, _: Any) -> int:
        cal, rng = self.cal, self.rng
        stored = self.store.case(case.reference)
        hop = stored.open
        assert hop is not None
        step = case.plan.steps[hop.step_index]
        ground: str | None = None
        cause: str | None = None
        reasons: bool | None = None
        consulted: bool | None = None
        detours = case.hops < _MAX_HOPS
        u = rng.random()
        return_chance = cal.foreign_returns if step.foreign else cal.returns
        if (
            case.fate == _REFUSE
            and step.refuse
            and (hop.step_index == case.target or step.finishing)
        ):
            outcome = Outcome.REFUSED
            ground = self._ground(case, stored)
            reasons = rng.random() < 0.9
            consulted = rng.random() < 0.5
        elif detours and step.returns and case.returns < cal.max_returns and u < return_chance:
            outcome = Outcome.RETURNED
            cause = self._cause(case)
            case.returns += 1
        elif (
            detours
            and step.postpone
            and case.postponements < cal.max_postponements
            and u < return_chance + cal.postponements
        ):
            outcome = Outcome.POSTPONED
            case.postponements += 1
        elif step.advance:
            choices = step.advance
            outcome = choices[0] if len(choices) == 1 else choices[rng.randrange(len(choices))]
        elif step.finish:
            outcome = Outcome.EXECUTED
        elif step.close:
            outcome = Outcome.FORWARDED
        else:
            assert step.fallback is not None
            outcome = step.fallback
            if outcome is Outcome.REFUSED:
                ground = self._ground(case, stored)
        if outcome is Outcome.EXECUTED:
            case.executed = True
            if step.partial and rng.random() < cal.partial:
                outcome = Outcome.PARTIALLY_EXECUTED
        self._run(
            session,
            Decide(
                reference=case.reference,
                outcome=outcome,
                ground=ground,
                cause=cause,
                reasons_given=reasons,
                consulted=consulted,
            ),
        )
        summary = self.summary
        if outcome is Outcome.RETURNED:
            summary.returns += 1
        elif outcome is Outcome.POSTPONED:
            summary.postponements += 1
        if ground is not None and RefusalGround(ground).prohibited_by_uncac:
            summary.prohibited_refusals += 1
        return 1 + self._moved(session, case, stored, was_foreign=step.foreign)

    def _moved(self, session: Session, case: _Case, stored: Case, *, was_foreign: bool) -> int:
        """After a command moved the case: close the books, wait on the requester, or plan."""
        now = int(self.clock.at.timestamp())
        commands = 0
        if stored.status == "closed":
            if was_foreign:
                commands += self._final_action(session, case)
            self._closed(case, stored, now)
            return commands
        if stored.status == "with_requester":
            answer = now + int(self.cal.requester_days * DAY * math.exp(0.6 * self.rng.gauss(0, 1)))
            action = _WITHDRAW if case.fate == _WITHDRAW_FATE else _RESUBMIT
            self._push(answer, action, case)
            return commands
        hop = stored.open
        assert hop is not None
        foreign_now = case.plan.steps[hop.step_index].foreign
        if foreign_now and not case.sent_abroad:
            commands += self._sent_abroad(session, case)
        self._open_hop(case, now)
        return commands

    def _closed(self, case: _Case, stored: Case, now: int) -> None:
        self.finished.append(case.reference)
        summary = self.summary
        outcome = stored.outcome or "unknown"
        summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + 1
        direction = case.direction
        summary.closed_by_direction[direction] = summary.closed_by_direction.get(direction, 0) + 1
        # Executed: an executed (or partly executed) decision, and no refusal or withdrawal after
        # it. Most routes end on the execution itself; some close on a later hop, such as a
        # reply forwarded to the requesting state (sv.yaml), and the case's outcome says so.
        if case.executed and outcome not in ("refused", "withdrawn"):
            summary.executed_by_direction[direction] = (
                summary.executed_by_direction.get(direction, 0) + 1
            )
            summary.executed_days.setdefault(f"{case.country}-{direction}", []).append(
                (now - case.registered) / DAY
            )

    def _ground(self, case: _Case, stored: Case) -> str:
        if (
            stored.prescription_date is not None
            and stored.prescription_date <= self.clock.at.date()
            and self.rng.random() < self.cal.expired_refusal
        ):
            return RefusalGround.PRESCRIPTION_EXPIRED.value
        return self._grounds[case.kind == Kind.EXTRADITION].pick(self.rng)

    def _cause(self, case: _Case) -> str:
        return self._causes[case.kind not in (Kind.MLA, Kind.EXTRADITION)].pick(self.rng)

    # -- detours --------------------------------------------------------------------------------

    def _stop(self, session: Session, case: _Case, _: Any) -> int:
        self._run(
            session,
            StopClock(reference=case.reference, reason=DelayCause.AWAITING_CLARIFICATION.value),
        )
        self.summary.clock_stops += 1
        self._push(case.resume_at, _RESUME, case)
        return 1

    def _resume(self, session: Session, case: _Case, _: Any) -> int:
        self._run(session, ResumeClock(reference=case.reference, reason="clarification received"))
        action, at = case.after_stop
        self._push(at, action, case)
        return 1

    def _reassign(self, session: Session, case: _Case, to: Any) -> int:
        self._run(session, Reassign(reference=case.reference, to=to))
        self.summary.reassignments += 1
        self._open_hop(case, int(self.clock.at.timestamp()))
        return 1

    def _resubmit(self, session: Session, case: _Case, _: Any) -> int:
        self._run(session, Resubmit(reference=case.reference))
        stored = self.store.case(case.reference)
        return 1 + self._moved(session, case, stored, was_foreign=False)

    def _withdraw(self, session: Session, case: _Case, _: Any) -> int:
        stored = self.store.case(case.reference)
        # A request withdrawn while abroad gets no final action: for the limitation period it
        # stays pending, as it would in the ledger of a real central authority.
        self._run(session, Withdraw(reference=case.reference))
        self._closed(case, stored, int(self.clock.at.timestamp()))
        return 1

    # -- prescription ---------------------------------------------------------------------------

    def _sent_abroad(self, session: Session, case: _Case) -> int:
        case.sent_abroad = True
        effects = self._effects[case.country]
        if not effects:
            return 0
        self._record(session, case, EventKind.REQUEST_SENT_ABROAD)
        if PrescriptionEffect.US_3292 in effects and self.rng.random() < self.cal.suspension_orders:
            order = int(self.clock.at.timestamp()) + self.rng.randint(3, 30) * DAY
            self._push(order, _ORDER, case)
        return 1

    def _final_action(self, session: Session, case: _Case) -> int:
        if not self._effects[case.country] or case.finalised or not case.sent_abroad:
            return 0
        case.finalised = True
        self._record(session, case, EventKind.FOREIGN_FINAL_ACTION)
        return 1

    def _order(self, session: Session, case: _Case, _: Any) -> int:
        """A court's § 3292 order, unless the foreign authority has already acted."""
        if case.finalised:
            return 0
        self._record(session, case, EventKind.SUSPENSION_ORDERED)
        return 1

    def _run(self, session: Session, command: Command) -> Result:
        """Every simulated change is a typed command, as a clerk's would be, run in the batch."""
        return command.run(
            session=session, clock=self.clock, routings=self.routings, actor=_SIMULATOR
        )

    def _record(self, session: Session, case: _Case, event: EventKind) -> None:
        on = case.routing.calendar(None).local_date(self.clock.at)
        # A § 3292 order names its application's day: here the application is granted the day
        # it is filed.
        applied_on = on if event is EventKind.SUSPENSION_ORDERED else None
        self._run(
            session,
            Record(reference=case.reference, event=event, on=on, applied_on=applied_on),
        )
        self.summary.prescription_records += 1

    # -- route plans ----------------------------------------------------------------------------

    def _plan(self, routing: Routing, key: tuple[str, ...]) -> _RoutePlan | None:
        """The route a request with these fields takes, resolved for it; None: no route fits."""
        if key in self._plans:
            return self._plans[key]
        _, direction, kind, basis, coercive, urgent, counterpart = key
        fields = {
            "kind": kind,
            "direction": direction,
            "legal_basis": basis,
            "coercive": coercive == "True",
            "urgent": urgent == "True",
            "counterpart": counterpart,
        }
        route = next((r for r in routing.config.routes if r.when.matches(fields)), None)
        plan = None
        if route is not None:
            applies = tuple(s.when is None or s.when.matches(fields) for s in route.steps)
            shape = (routing.version, route.id, applies)
            if shape not in self._shapes:
                self._shapes[shape] = _route_plan(routing, route, applies)
            plan = self._shapes[shape]
        self._plans[key] = plan
        return plan


def _route_plan(routing: Routing, route: Route, applies: tuple[bool, ...]) -> _RoutePlan | None:
    """Resolve every decision of `route` for requests whose steps apply as `applies` says,
    the way the engine will resolve them."""
    n = len(route.steps)
    ids = {s.id: i for i, s in enumerate(route.steps)}
    authorities = routing.config.authorities

    def resolve(index: int, target: str) -> int:
        if target == "end":
            return _END
        if target == "requester":
            return _REQUESTER
        if target == "stay":
            return index
        if target == "next":
            return next((j for j in range(index + 1, n) if applies[j]), _END)
        return ids[target]

    steps = []
    for i, step in enumerate(route.steps):
        decisions = route.decisions_for(i)
        targets = {o: resolve(i, t) for o, t in decisions.items()}
        advance = tuple(o for o in _ADVANCING if targets.get(o, _END) >= 0)
        finish = targets.get(Outcome.EXECUTED) == _END
        close = targets.get(Outcome.FORWARDED) == _END
        refuse = Outcome.REFUSED in targets
        fallback = None
        if not advance and not finish and not close:
            fallback = Outcome.REFUSED if refuse else next(iter(decisions))
        kind = authorities[step.holder].kind
        sla: Duration = routing.sla(route, i)
        steps.append(
            _StepPlan(
                index=i,
                foreign=kind == "foreign",
                sla_days=sla.amount * _UNIT_DAYS[sla.unit],
                advance=advance,
                finish=finish,
                close=close,
                partial=Outcome.EXECUTED in targets
                and targets.get(Outcome.PARTIALLY_EXECUTED) == targets[Outcome.EXECUTED],
                refuse=refuse,
                returns=Outcome.RETURNED in targets,
                postpone=Outcome.POSTPONED in targets,
                fallback=fallback,
                alternates=()
                if kind == "foreign"
                else tuple(
                    a for a, x in authorities.items() if x.kind == kind and a != step.holder
                ),
            )
        )
    first = next((i for i in range(n) if applies[i]), None)
    if first is None:
        return None
    path = [first]
    seen = {first}
    while steps[path[-1]].advance:
        here = steps[path[-1]]
        following = resolve(here.index, route.decisions_for(here.index)[here.advance[0]])
        if following in seen:
            break
        path.append(following)
        seen.add(following)
    return _RoutePlan(tuple(steps), tuple(path))


# -- small helpers ------------------------------------------------------------------------------

_ASSISTANCE = {
    "mla": "bank records and witness statements",
    "extradition": "surrender of the person sought for prosecution",
    "asset_tracing": "identify and trace proceeds of the offence",
    "asset_freezing": "freeze the proceeds identified",
    "asset_seizure": "seize the proceeds identified",
    "confiscation": "enforce the confiscation order",
    "asset_return": "return the confiscated proceeds",
}


class _Weighted:
    """Values drawn in proportion to their weights, with one uniform draw each."""

    __slots__ = ("cumulative", "total", "values")

    def __init__(self, weights: Mapping[str, float]) -> None:
        kept = {k: w for k, w in weights.items() if w > 0}
        if not kept:
            raise CommandRejected(f"no value has a positive weight among {sorted(weights)}")
        self.values = list(kept)
        self.cumulative = list(accumulate(kept.values()))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> str:
        i = bisect_right(self.cumulative, rng.random() * self.total)
        return self.values[min(i, len(self.values) - 1)]


def _add_years(instant: datetime, years: int) -> datetime:
    try:
        return instant.replace(year=instant.year + years)
    except ValueError:  # 29 February
        return instant.replace(year=instant.year + years, day=28)


def _working_instant(calendar: Calendar, instant: datetime, minute: int, *, step: int) -> int:
    """`minute` past local midnight on the nearest business day on or after (`step` 1) or on
    or before (`step` -1) `instant`."""
    day = calendar.local_date(instant)
    while not calendar.is_business_day(day):
        day += timedelta(days=step)
    local = datetime.combine(day, clock_time(minute // 60, minute % 60), calendar.tz)
    return int(local.timestamp())


def describe(summary: SimulationSummary) -> Iterable[str]:
    """The summary as lines of text, for the command line and the flow's log."""
    closed = sum(summary.outcomes.values())
    yield (
        f"{summary.cases:,} cases from {summary.start.date()} to {summary.end.date()} "
        f"in {', '.join(summary.countries)} (seed {summary.seed})"
    )
    yield (
        f"{summary.transitions:,} transitions in {summary.elapsed_s:.1f} s "
        f"({summary.transitions_per_s:,.0f}/s)"
    )
    outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.outcomes.items()))
    yield f"closed {closed:,}: {outcomes or 'none'}"
    yield (
        f"open {summary.open_cases:,} (with the requester {summary.with_requester:,}); "
        f"{summary.late_open_hops:,} open hops past due, {summary.due_rung_hops:,} with a rung due"
    )
    for direction, seed_figure in (("incoming", "55/61"), ("outgoing", "48/66")):
        rate = summary.execution_rate(direction)
        if rate is not None:
            yield f"{direction}: {rate:.1%} executed of closed (seed {seed_figure})"
    ru = summary.median_executed_days("RU", "incoming")
    if ru is not None:
        yield f"RU incoming executed after a median {ru / 30.44:.1f} months (seed: 3-6)"
    yield (
        f"detours: {summary.returns:,} returns, {summary.postponements:,} postponements, "
        f"{summary.clock_stops:,} clock stops, {summary.reassignments:,} reassignments, "
        f"{summary.prohibited_refusals:,} refusals on prohibited grounds, "
        f"{summary.prescription_records:,} prescription events"
    )


@contextmanager
def _page_cache(session: Session) -> Iterator[None]:
    """A large SQLite page cache on the connection of each of the session's transactions while
    the simulation writes; the last one goes back to its pool with SQLite's default."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return

    def enlarge(_session: Session, _transaction: Any, connection: Connection) -> None:
        connection.exec_driver_sql(f"PRAGMA cache_size=-{_PAGE_CACHE_KIB}")

    event.listen(session, "after_begin", enlarge)
    try:
        yield
    finally:
        event.remove(session, "after_begin", enlarge)
        if session.in_transaction():
            session.connection().exec_driver_sql("PRAGMA cache_size=-2000")

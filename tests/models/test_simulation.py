"""The caseload simulator: deterministic for a seed, sound ledgers, calibrated on the seed."""

from __future__ import annotations

import gc
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import pytest
from sqlalchemy import func, select

from models.engine import Routings
from models.errors import CommandRejected
from models.ledger import Delivery, Event, Ledger, Request, Step
from models.queries import verify_chain
from models.simulation import EU_MEMBERS, Calibration, SimulationSummary, describe, simulate
from models.sweep import sweep_rungs

START = datetime(2016, 1, 1, tzinfo=UTC)


def run(ledger: Ledger, routings: Routings, **kw: Any) -> SimulationSummary:
    options: dict[str, Any] = {"years": 2, "per_year": 150, "seed": 7, **kw}
    return simulate(ledger=ledger, routings=routings, **options)


def chain(ledger: Ledger) -> list[tuple[str, int, str, str]]:
    with ledger.session() as session:
        rows = session.execute(
            select(Request.reference, Event.seq, Event.kind, Event.hash)
            .join(Request, Event.request_id == Request.id)
            .order_by(Event.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Any:
    def make(name: str) -> Ledger:
        return Ledger(f"sqlite:///{tmp_path / name}.db", migrate=True)

    return make


def test_same_seed_writes_the_same_ledger_hash_for_hash(sqlite_ledger, routings):
    first, second, other = sqlite_ledger("a"), sqlite_ledger("b"), sqlite_ledger("c")
    run(first, routings, commit_every=400)
    run(second, routings, commit_every=7000)  # batching changes nothing but speed
    run(other, routings, seed=8)
    a, b, c = chain(first), chain(second), chain(other)
    assert len(a) > 1000
    assert a == b
    assert a != c


def test_every_chain_verifies_and_the_projections_match_the_summary(ledger, routings):
    summary = run(ledger, routings, years=1, per_year=120)
    with ledger.session() as session:
        assert verify_chain(session=session) == []
        cases = session.scalar(select(func.count()).select_from(Request))
        statuses = Counter(session.scalars(select(Request.status)).all())
        outcomes = Counter(
            session.scalars(select(Request.outcome).where(Request.status == "closed")).all()
        )
        events = session.scalar(select(func.count()).select_from(Event))
    assert cases == summary.cases == 120
    assert outcomes == Counter(summary.outcomes)
    assert statuses["open"] + statuses["with_requester"] == summary.open_cases
    assert events is not None and events > summary.transitions >= 120


def test_requests_arrive_only_on_routes_their_country_has(sqlite_ledger, routings):
    ledger = sqlite_ledger("mix")
    run(ledger, routings, years=1, per_year=200, countries=["SV", "IT"])
    with ledger.session() as session:
        cases = session.scalars(select(Request)).all()
    assert {c.country for c in cases} == {"SV", "IT"}
    assert all(START <= c.registered_at < START + timedelta(days=366) for c in cases)
    for case in cases:
        routes = routings.current[case.country].config.routes
        fields = {
            "kind": case.kind,
            "direction": case.direction,
            "legal_basis": case.legal_basis,
            "coercive": case.coercive,
            "urgent": case.urgent,
            "counterpart": case.counterpart,
        }
        assert next(r.id for r in routes if r.when.matches(fields)) == case.route_id
    # EU instruments only between EU members, where they are the usual way (Mix.eu_instrument).
    eu = [c for c in cases if c.legal_basis == "eu_instrument"]
    assert eu and all(c.country == "IT" and c.counterpart in EU_MEMBERS for c in eu)
    assert {c.route_id for c in eu} >= {"eio-incoming", "eio-outgoing"}


def test_refuses_countries_and_periods_it_cannot_simulate(sqlite_ledger, routings):
    ledger = sqlite_ledger("bad")
    with pytest.raises(CommandRejected, match="no routing for ZZ"):
        run(ledger, routings, countries=["SV", "ZZ"])
    with pytest.raises(CommandRejected, match="at least 1 year"):
        run(ledger, routings, years=0)
    with pytest.raises(CommandRejected, match="outside the calendars' years"):
        run(ledger, routings, start=datetime(2070, 1, 1, tzinfo=UTC), years=10)
    with pytest.raises(CommandRejected, match="no value has a positive weight"):
        run(ledger, routings, calibration=Calibration(refusal_grounds={"de_minimis": 0.0}))
    with ledger.session() as session:
        assert session.scalar(select(func.count()).select_from(Request)) == 0


# -- calibration, on one run of a few thousand cases ------------------------------------------


@pytest.fixture(scope="module")
def caseload(tmp_path_factory: pytest.TempPathFactory, routings: Routings) -> Any:
    ledger = Ledger(f"sqlite:///{tmp_path_factory.mktemp('caseload') / 'ledger.db'}", migrate=True)
    summary = simulate(ledger=ledger, routings=routings, years=5, per_year=1000, seed=2018)
    yield ledger, summary
    ledger.dispose()


def executed(session: Any) -> dict[int, tuple[str, datetime, datetime | None, str]]:
    """Closed cases that were executed (fully or partly) and neither refused nor withdrawn after:
    some routes close on a later hop, a reply forwarded to the requesting state (sv.yaml)."""
    decided = {
        request_id
        for request_id, payload in session.execute(
            select(Event.request_id, Event.payload).where(Event.kind == "decided")
        )
        if json.loads(payload)["outcome"] in ("executed", "partially_executed")
    }
    rows = session.execute(
        select(
            Request.id, Request.country, Request.registered_at, Request.closed_at, Request.direction
        ).where(Request.status == "closed", Request.outcome.not_in(["refused", "withdrawn"]))
    ).all()
    return {i: (c, r, d, direction) for i, c, r, d, direction in rows if i in decided}


def test_execution_rates_come_out_near_the_seed_figures(caseload):
    ledger, summary = caseload
    cutoff = summary.end - timedelta(days=2 * 365)  # cases old enough to have ended
    with ledger.session() as session:
        closed = Counter(
            session.scalars(
                select(Request.direction).where(
                    Request.status == "closed", Request.registered_at < cutoff
                )
            ).all()
        )
        done = Counter(d for _, r, _, d in executed(session).values() if r < cutoff)
    assert closed["incoming"] > 1000 and closed["outgoing"] > 1000
    assert done["incoming"] / closed["incoming"] == pytest.approx(55 / 61, abs=0.03)
    assert done["outgoing"] / closed["outgoing"] == pytest.approx(48 / 66, abs=0.04)


def test_russian_incoming_requests_are_mostly_executed_in_three_to_six_months(caseload):
    ledger, _ = caseload
    with ledger.session() as session:
        rows = [
            (registered, closed)
            for country, registered, closed, direction in executed(session).values()
            if (country, direction) == ("RU", "incoming")
        ]
    days = [(closed - registered).total_seconds() / 86400 for registered, closed in rows]
    assert len(days) > 150
    assert 90 <= median(days) <= 180
    assert sum(90 <= d <= 180 for d in days) / len(days) > 0.5


def test_the_mix_has_returns_refusals_postponements_stops_and_reassignments(caseload):
    ledger, summary = caseload
    with ledger.session() as session:
        kinds = Counter(session.scalars(select(Event.kind)).all())
        decided = [
            json.loads(p)
            for p in session.scalars(select(Event.payload).where(Event.kind == "decided"))
        ]
        recorded = Counter(
            (country, json.loads(payload)["event"])
            for country, payload in session.execute(
                select(Request.country, Event.payload)
                .join(Request, Event.request_id == Request.id)
                .where(Event.kind == "prescription_event")
            )
        )
    outcomes = Counter(d["outcome"] for d in decided)
    for outcome in ("forwarded", "executed", "partially_executed", "refused", "returned"):
        assert outcomes[outcome] > 20, outcome
    assert outcomes["postponed"] == summary.postponements > 0
    assert kinds["clock_stopped"] == summary.clock_stops > 20
    assert kinds["clock_resumed"] >= kinds["clock_stopped"] - summary.open_cases
    assert kinds["reassigned"] == summary.reassignments > 5
    assert kinds["resubmitted"] > 0 and kinds["withdrawn"] > 0
    assert {d["cause"] for d in decided if d["outcome"] == "returned"} >= {
        "incomplete_request",
        "missing_translation",
    }
    prohibited = [d for d in decided if d["prohibited_ground"]]
    assert prohibited and len(prohibited) == summary.prohibited_refusals
    assert {d["ground"] for d in prohibited} <= {"bank_secrecy", "fiscal_offence"}
    assert len(prohibited) < 0.05 * outcomes["refused"]
    # Requests abroad move the limitation period only where the country's rules say so.
    assert recorded[("US", "request_sent_abroad")] > 0
    assert recorded[("US", "suspension_ordered")] > 0
    assert recorded[("IT", "foreign_final_action")] > 0
    assert not {country for country, _ in recorded} - {"US", "IT"}


def test_late_hops_are_left_open_with_their_rungs_due_for_the_sweep(caseload):
    ledger, summary = caseload
    with ledger.session() as session:
        due = session.scalar(
            select(func.count())
            .select_from(Step)
            .where(Step.closed_at.is_(None), Step.next_rung_at <= summary.end)
        )
        late_closed = session.scalar(
            select(func.count())
            .select_from(Step)
            .where(Step.closed_at.is_not(None), Step.closed_at > Step.due_at)
        )
        closed = session.scalar(
            select(func.count()).select_from(Step).where(Step.closed_at.is_not(None))
        )
    assert due == summary.due_rung_hops > 50
    assert summary.late_open_hops > 0
    # Most hops finish in time, a good share late: enough for reminders and escalations.
    assert closed and 0.15 < late_closed / closed < 0.5


def test_the_summary_reads_as_the_seed_figures(caseload):
    _, summary = caseload
    text = "\n".join(describe(summary))
    assert "5,000 cases from 2016-01-01 to 2021-01-01" in text
    assert "(seed 55/61)" in text and "(seed 48/66)" in text
    assert "RU incoming executed after a median" in text
    assert summary.transitions_per_s > 0


def test_a_clock_sweep_at_the_end_finds_every_late_hop_the_run_left(sqlite_ledger, routings):
    ledger = sqlite_ledger("sweep")
    summary = run(ledger, routings, years=1, per_year=300)
    with ledger.transaction() as session:
        swept = sweep_rungs(session=session, routings=routings, now=summary.end)
    assert swept.due_hops == summary.due_rung_hops > 0
    assert swept.created >= swept.due_hops  # a late hop owes its reminder, overdue, escalation
    with ledger.session() as session:
        kinds = Counter(session.scalars(select(Delivery.kind)).all())
    assert kinds["reminder"] > 0 and kinds["overdue"] > 0 and kinds["escalation"] > 0


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cyclic_collector_is_left_as_it_was_found(sqlite_ledger, routings, enabled):
    ledger = sqlite_ledger(f"gc-{enabled}")
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        run(ledger, routings, years=1, per_year=20)
        assert gc.isenabled() is enabled

        def interrupt(done: float, summary: SimulationSummary) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run(sqlite_ledger(f"gc-{enabled}-stopped"), routings, progress=interrupt)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()

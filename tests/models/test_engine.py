"""The engine's commands, success and refusal, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from models import engine
from models.clock import FixedClock
from models.engine import Routings
from models.errors import (
    CommandRejected,
    Conflict,
    DecisionNotAllowed,
    IntakeError,
    NoRouteMatches,
    NotFound,
)
from models.ledger import Event, Ledger, ReferenceCounter, Request, Step
from models.queries import inbox, overdue, timeline, verify_chain
from tests.samples import intake


def run(ledger: Ledger, clock: FixedClock, routings: Routings, command: str, **kw: Any) -> Any:
    with ledger.transaction() as session:
        return getattr(engine, command)(session=session, clock=clock, routings=routings, **kw)


def count(ledger: Ledger, model: Any) -> int:
    with ledger.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def open_step(ledger: Ledger, reference: str) -> Step:
    with ledger.session() as session:
        request = session.scalars(select(Request).where(Request.reference == reference)).one()
        return session.scalars(
            select(Step).where(Step.request_id == request.id, Step.hop == request.current_hop)
        ).one()


def test_register_opens_first_hop_with_due_instant_and_reference(ledger, clock, routings):
    result = run(ledger, clock, routings, "register", data=intake())
    assert result.reference == "SV-2026-000001"
    assert result.hop == 1
    step = open_step(ledger, result.reference)
    assert step.holder == "fgr"
    # 10bd from Monday 2 March 2026: 3..6, 9..13, 16 March -> due end of Monday 16 March local.
    assert step.due_at == datetime(2026, 3, 17, 5, 59, 59, tzinfo=UTC)
    assert [r["kind"] for r in step.rungs] == ["reminder", "overdue", "escalation"]
    assert step.next_rung_at is not None and step.next_rung_at < step.due_at
    with ledger.session() as session:
        request = session.scalars(select(Request)).one()
        # 2024-05-10 + 15 years: SV CPP art. 32, money laundering (the sample's offence)
        assert request.prescription_date == date(2039, 5, 10)


def test_references_run_per_country_and_year_without_gaps(ledger, clock, routings):
    refs = [run(ledger, clock, routings, "register", data=intake()).reference for _ in range(2)]
    with pytest.raises(IntakeError):
        run(ledger, clock, routings, "register", data=intake(offence_date="2030-01-01"))
    clock.set(datetime(2027, 1, 5, 12, tzinfo=UTC))
    refs.append(run(ledger, clock, routings, "register", data=intake()).reference)
    refs.append(run(ledger, clock, routings, "register", data=intake()).reference)
    assert refs == ["SV-2026-000001", "SV-2026-000002", "SV-2027-000001", "SV-2027-000002"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"offence_date": "2026-05-01"}, "offence_date: 2026-05-01 is in the future"),
        ({"country": "ZZ"}, "country: 'ZZ' has no routing file"),
        ({"counterpart": "XX"}, "counterpart: 'XX' is not an ISO 3166 country code"),
        ({"urgent": True}, "urgency_reason: an urgent request must say why it is urgent"),
        ({"facts_summary": None}, "facts_summary: a summary of the facts is required"),
        ({"kind": "extradition"}, "persons: extradition needs the person sought"),
        ({"kind": "confiscation", "assets": "villa"}, "order_reference: confiscation needs"),
        ({"legal_basis": "friendship"}, "legal_basis: 'friendship': Input should be"),
        ({"colour": "red"}, "colour: unknown field"),
    ],
)
def test_intake_refuses_bad_requests_and_writes_nothing(ledger, clock, routings, change, reason):
    with pytest.raises(IntakeError) as caught:
        run(ledger, clock, routings, "register", data=intake(**change))
    assert any(r.startswith(reason) for r in caught.value.reasons), caught.value.reasons
    assert count(ledger, Request) == count(ledger, Event) == count(ledger, ReferenceCounter) == 0


def test_no_matching_route_lists_the_near_misses(ledger, clock, routings):
    with pytest.raises(NoRouteMatches) as caught:
        run(
            ledger,
            clock,
            routings,
            "register",
            data=intake(
                direction="incoming", kind="asset_return", assets="funds", order_reference="CSJ-1"
            ),
        )
    assert "nearly matched" in str(caught.value)
    assert count(ledger, Request) == 0


def _drive(ledger, clock, routings, reference, outcomes):
    holders = []
    for outcome in outcomes:
        clock.advance(timedelta(days=1))
        result = run(ledger, clock, routings, "decide", reference=reference, outcome=outcome)
        if result.hop is not None:
            holders.append(open_step(ledger, reference).holder)
    return holders, result


def test_forwarding_walks_the_chain_and_skips_steps_that_do_not_apply(ledger, clock, routings):
    plain = run(ledger, clock, routings, "register", data=intake()).reference
    holders, _ = _drive(ledger, clock, routings, plain, ["forwarded"] * 3)
    assert holders == ["csj", "mjsp", "rree"]  # no constitutional review without coercion
    coercive = run(ledger, clock, routings, "register", data=intake(coercive=True)).reference
    holders, _ = _drive(ledger, clock, routings, coercive, ["forwarded"])
    assert open_step(ledger, coercive).route_step == "constitutional-review"


def test_execution_closes_the_case(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    _, result = _drive(ledger, clock, routings, ref, ["forwarded"] * 4 + ["executed"])
    assert result.status == "closed"
    with ledger.session() as session:
        request = session.scalars(select(Request)).one()
        assert (request.outcome, request.current_hop) == ("executed", None)


def test_decision_not_allowed_by_the_route_is_refused_and_writes_nothing(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    before = count(ledger, Event)
    with pytest.raises(DecisionNotAllowed, match=r"allowed: forwarded, returned, refused"):
        run(ledger, clock, routings, "decide", reference=ref, outcome="executed")
    with pytest.raises(CommandRejected, match="a refusal needs --ground"):
        run(ledger, clock, routings, "decide", reference=ref, outcome="refused")
    with pytest.raises(CommandRejected, match="a return needs --cause"):
        run(ledger, clock, routings, "decide", reference=ref, outcome="returned")
    assert count(ledger, Event) == before
    assert open_step(ledger, ref).closed_at is None


def test_bank_secrecy_refusal_is_recorded_and_flagged_prohibited(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    result = run(
        ledger, clock, routings, "decide", reference=ref, outcome="refused", ground="bank_secrecy"
    )
    assert "UNCAC" in result.message and result.status == "closed"
    with ledger.session() as session:
        event = session.scalars(select(Event).where(Event.kind == "decided")).one()
        assert '"prohibited_ground":true' in event.payload


def test_return_to_requester_waits_then_resubmission_reopens_the_step(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    _drive(ledger, clock, routings, ref, ["forwarded"])
    returned = run(
        ledger,
        clock,
        routings,
        "decide",
        reference=ref,
        outcome="returned",
        cause="missing_translation",
    )
    assert (returned.status, returned.hop) == ("with_requester", None)
    with pytest.raises(CommandRejected, match="with the requester"):
        run(ledger, clock, routings, "decide", reference=ref, outcome="forwarded")
    clock.advance(timedelta(days=3))
    again = run(ledger, clock, routings, "resubmit", reference=ref)
    step = open_step(ledger, ref)
    assert (again.hop, step.route_step, step.holder) == (3, "court", "csj")


def test_return_to_an_earlier_step_reopens_it(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    _drive(ledger, clock, routings, ref, ["forwarded"] * 4)
    assert open_step(ledger, ref).route_step == "execution-abroad"
    run(
        ledger,
        clock,
        routings,
        "decide",
        reference=ref,
        outcome="returned",
        cause="incomplete_request",
    )
    assert open_step(ledger, ref).route_step == "draft"


def test_stopped_clock_pushes_due_instant_and_rungs_back(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    before = open_step(ledger, ref)
    run(ledger, clock, routings, "stop_clock", reference=ref, reason="awaiting_clarification")
    assert open_step(ledger, ref).next_rung_at is None
    with pytest.raises(CommandRejected, match="already stopped"):
        run(ledger, clock, routings, "stop_clock", reference=ref, reason="again")
    clock.advance(timedelta(days=7))  # Monday 2 -> Monday 9 March: 5 business days stopped
    run(ledger, clock, routings, "resume_clock", reference=ref, reason="answer received")
    after = open_step(ledger, ref)
    assert after.stopped_bd == 5
    # due Monday 16 March + 5 business days = Monday 23 March, end of day local.
    assert after.due_at == datetime(2026, 3, 24, 5, 59, 59, tzinfo=UTC)
    assert after.due_at > before.due_at
    assert after.next_rung_at is not None and after.next_rung_at > before.next_rung_at


def test_idempotency_key_makes_a_repeat_harmless(ledger, clock, routings):
    first = run(ledger, clock, routings, "register", data=intake(), idempotency_key="intake-7")
    again = run(ledger, clock, routings, "register", data=intake(), idempotency_key="intake-7")
    assert again.replayed and again.reference == first.reference
    assert count(ledger, Request) == 1
    decided = run(
        ledger,
        clock,
        routings,
        "decide",
        reference=first.reference,
        outcome="forwarded",
        idempotency_key="d-1",
    )
    repeat = run(
        ledger,
        clock,
        routings,
        "decide",
        reference=first.reference,
        outcome="forwarded",
        idempotency_key="d-1",
    )
    assert repeat.replayed and repeat.seq == decided.seq
    assert open_step(ledger, first.reference).hop == 2
    with pytest.raises(Conflict, match="different command"):
        run(
            ledger,
            clock,
            routings,
            "decide",
            reference=first.reference,
            outcome="refused",
            ground="de_minimis",
            idempotency_key="d-1",
        )


def test_of_two_concurrent_decisions_on_one_hop_exactly_one_wins(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(outcome: str, **kw: Any) -> None:
        barrier.wait()
        try:
            run(ledger, clock, routings, "decide", reference=ref, outcome=outcome, hop=1, **kw)
            outcomes.append("won")
        except Conflict:
            outcomes.append("conflict")

    threads = [
        threading.Thread(target=decide, args=("forwarded",)),
        threading.Thread(target=decide, args=("refused",), kwargs={"ground": "de_minimis"}),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "won"]
    with ledger.session() as session:
        decided = session.scalars(select(Event).where(Event.kind == "decided")).all()
        assert len(decided) == 1
    assert verify_chain(session=ledger.session()) == []


def test_reassign_records_wrong_authority_and_moves_the_hop(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    with pytest.raises(CommandRejected, match="unknown authority 'mjps'"):
        run(ledger, clock, routings, "reassign", reference=ref, to="mjps")
    run(ledger, clock, routings, "reassign", reference=ref, to="mjsp")
    with ledger.session() as session:
        first = session.scalars(select(Step).where(Step.hop == 1)).one()
        assert (first.outcome, first.cause) == ("reassigned", "wrong_authority")
    assert open_step(ledger, ref).holder == "mjsp"


def test_withdrawal_closes_the_case_and_further_commands_are_refused(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    result = run(ledger, clock, routings, "withdraw", reference=ref, note="case dropped")
    assert result.status == "closed"
    with pytest.raises(CommandRejected, match="is closed"):
        run(ledger, clock, routings, "decide", reference=ref, outcome="forwarded")


def test_unknown_case_is_not_found(ledger, clock, routings):
    with pytest.raises(NotFound, match="no case 'SV-2026-999999'"):
        run(ledger, clock, routings, "decide", reference="SV-2026-999999", outcome="forwarded")


def test_late_entry_keeps_when_it_happened_and_when_it_was_recorded(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    clock.advance(timedelta(days=10))
    happened = clock.now() - timedelta(days=6)
    run(ledger, clock, routings, "decide", reference=ref, outcome="forwarded", on=happened)
    with ledger.session() as session:
        event = session.scalars(select(Event).where(Event.kind == "decided")).one()
        assert (event.occurred_at, event.recorded_at) == (happened, clock.now())
    with pytest.raises(CommandRejected, match="in the future"):
        run(
            ledger,
            clock,
            routings,
            "decide",
            reference=ref,
            outcome="forwarded",
            on=clock.now() + timedelta(hours=1),
        )


def test_timeline_shows_each_hop_with_days_taken_and_lateness(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    clock.set(datetime(2026, 3, 20, 15, tzinfo=UTC))  # Friday, 4 business days after due
    run(ledger, clock, routings, "decide", reference=ref, outcome="forwarded")
    with ledger.session() as session:
        view = timeline(
            session=session, routing=routings.current["SV"], reference=ref, now=clock.now()
        )
    first = view.hops[0]
    assert (first.holder, first.business_days, first.calendar_days, first.days_late) == (
        "fgr",
        14,
        18,
        4,
    )
    assert view.hops[1].closed_at is None and view.hops[1].days_late == 0


def test_inbox_lists_overdue_first_then_least_prescription_slack(ledger, clock, routings):
    old = run(ledger, clock, routings, "register", data=intake(offence_date="2017-01-01")).reference
    late = run(ledger, clock, routings, "register", data=intake()).reference
    clock.set(datetime(2026, 3, 16, 12, tzinfo=UTC))
    fresh = run(ledger, clock, routings, "register", data=intake(offence_date="2016-08-01"))
    clock.set(datetime(2026, 3, 18, 12, tzinfo=UTC))
    with ledger.session() as session:
        items = inbox(
            session=session, routing=routings.current["SV"], holder="fgr", now=clock.now()
        )
        late_ones = overdue(session=session, routing=routings.current["SV"], now=clock.now())
    assert [i.reference for i in items] == [old, late, fresh.reference]
    assert [i.overdue for i in items] == [True, True, False]
    assert {i.reference for i in late_ones} == {old, late}


def test_tampered_event_is_detected_and_named(ledger, clock, routings):
    ref = run(ledger, clock, routings, "register", data=intake()).reference
    run(ledger, clock, routings, "decide", reference=ref, outcome="forwarded")
    with ledger.session() as session:
        assert verify_chain(session=session) == []
    with ledger.transaction() as session:
        session.execute(
            text(
                "UPDATE events SET payload = replace(payload, 'forwarded', "
                "'refused') WHERE kind = 'decided'"
            )
        )
    with ledger.session() as session:
        broken = verify_chain(session=session)
    assert [str(b) for b in broken] == [f"{ref} event 3: content altered (decided)"]


def test_resubmission_in_the_batch_that_returned_the_request_reopens_its_step(
    ledger, clock, routings
):
    with ledger.transaction() as session, engine.batch(session):
        kw = {"session": session, "clock": clock, "routings": routings}
        ref = engine.register(**kw, data=intake()).reference
        engine.decide(**kw, reference=ref, outcome="forwarded")
        clock.advance(timedelta(days=2))
        engine.decide(**kw, reference=ref, outcome="returned", cause="missing_translation")
        clock.advance(timedelta(days=3))
        again = engine.resubmit(**kw, reference=ref)
    step = open_step(ledger, ref)
    assert (again.hop, step.route_step, step.holder) == (3, "court", "csj")
    assert verify_chain(session=ledger.session()) == []

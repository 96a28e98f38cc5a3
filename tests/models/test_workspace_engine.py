"""The workspace commands in the engine: assigning a hop, acknowledging and snoozing its
escalation, and the views built on them (one's own work, the escalation board)."""

from __future__ import annotations

import importlib
import json
import tempfile
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from models import engine, identity
from models.clock import FixedClock
from models.engine import hop_next_rung_at, snooze_start
from models.errors import CommandRejected, Conflict
from models.identity import Grant, RoleName
from models.ledger import Delivery, Event, Ledger, Request, Step
from models.store import Hop
from models.sweep import sweep_rungs
from models.workspace import escalation_board, my_work
from tests.samples import intake

OPENED = datetime(2026, 3, 2, 15, tzinfo=UTC)  # a Monday, 09:00 in San Salvador
# SV ladder on a 10bd hop: reminder at 8bd, overdue at 10bd, escalation at 15bd repeating
# every 10bd. With Holy Week 2026 closed, 30 days on is past the first escalation only.
AFTER_ESCALATION = OPENED + timedelta(days=30)


def _accounts(ledger: Ledger) -> None:
    with ledger.transaction() as session:
        for name, grant in {
            "ana": Grant(RoleName.CLERK, "SV", "fgr"),
            "ben": Grant(RoleName.HEAD, "SV", "fgr"),
            "carla": Grant(RoleName.CLERK, "SV", "csj"),
            "dora": Grant(RoleName.COORDINATOR, "SV"),
        }.items():
            identity.add_account(session, name=name, grants=[grant], now=OPENED, actor="test")
        identity.add_account(
            session,
            name="gone",
            grants=[Grant(RoleName.CLERK, "SV", "fgr")],
            now=OPENED,
            actor="test",
        )
        identity.deactivate(session, name="gone", now=OPENED, actor="test")


def _register(ledger: Ledger, routings, clock: FixedClock) -> str:
    with ledger.transaction() as session:
        return engine.register(
            session=session, clock=clock, routings=routings, data=intake()
        ).reference


def _run(ledger: Ledger, routings, clock: FixedClock, command: str, **arguments):
    with ledger.transaction() as session:
        return getattr(engine, command)(
            session=session, clock=clock, routings=routings, actor="tester", **arguments
        )


def _last_seq(ledger: Ledger, reference: str) -> int:
    with ledger.session() as session:
        return int(
            session.scalar(select(Request.last_seq).where(Request.reference == reference)) or 0
        )


def _hop(ledger: Ledger, reference: str, hop: int = 1) -> Step:
    with ledger.session() as session:
        return session.execute(
            select(Step)
            .join(Request, Request.id == Step.request_id)
            .where(Request.reference == reference, Step.hop == hop)
        ).scalar_one()


def _rung_keys(ledger: Ledger, status: str = "pending") -> list[str]:
    with ledger.session() as session:
        keys = session.scalars(
            select(Delivery.key).where(Delivery.status == status, Delivery.key.contains(":rung:"))
        )
        return sorted(k.split(":rung:")[1] for k in keys)


def _sweep(ledger: Ledger, routings, now: datetime) -> int:
    with ledger.transaction() as session:
        return sweep_rungs(session=session, routings=routings, now=now).created


# -- assignment -----------------------------------------------------------------------------------


def test_a_hop_is_assigned_released_and_recorded_in_the_chain(ledger, routings):
    clock = FixedClock(OPENED)
    _accounts(ledger)
    reference = _register(ledger, routings, clock)
    _run(ledger, routings, clock, "assign", reference=reference, officer="ana", note="mine")
    assert _hop(ledger, reference).assigned_to == "ana"
    _run(ledger, routings, clock, "assign", reference=reference, officer="ben")
    _run(ledger, routings, clock, "assign", reference=reference, officer=None)
    assert _hop(ledger, reference).assigned_to is None
    with ledger.session() as session:
        payloads = session.scalars(
            select(Event.payload)
            .join(Request, Request.id == Event.request_id)
            .where(Request.reference == reference, Event.kind == "hop_assigned")
            .order_by(Event.seq)
        ).all()
    moves = [(p["holder"], p["previous"], p["officer"]) for p in map(json.loads, payloads)]
    assert moves == [("fgr", None, "ana"), ("fgr", "ana", "ben"), ("fgr", "ben", None)]


@pytest.mark.parametrize(
    ("officer", "why"),
    [
        ("carla", "is not a clerk or head of SV/fgr"),  # an officer of another authority
        ("dora", "is not a clerk or head of SV/fgr"),  # a coordinator is not an officer
        ("gone", "is closed"),
        ("nobody", "no account 'nobody'"),
    ],
)
def test_a_hop_is_never_assigned_outside_its_holder_and_nothing_is_written(
    ledger, routings, officer, why
):
    clock = FixedClock(OPENED)
    _accounts(ledger)
    reference = _register(ledger, routings, clock)
    before = _last_seq(ledger, reference)
    with pytest.raises(CommandRejected, match=why):
        _run(ledger, routings, clock, "assign", reference=reference, officer=officer)
    assert _last_seq(ledger, reference) == before
    assert _hop(ledger, reference).assigned_to is None


def test_releasing_a_free_hop_or_assigning_it_twice_is_refused(ledger, routings):
    clock = FixedClock(OPENED)
    _accounts(ledger)
    reference = _register(ledger, routings, clock)
    with pytest.raises(CommandRejected, match="assigned to nobody"):
        _run(ledger, routings, clock, "assign", reference=reference, officer=None)
    _run(ledger, routings, clock, "assign", reference=reference, officer="ana")
    before = _last_seq(ledger, reference)
    with pytest.raises(CommandRejected, match="already assigned to ana"):
        _run(ledger, routings, clock, "assign", reference=reference, officer="ana")
    assert _last_seq(ledger, reference) == before


def test_a_new_hop_and_a_reassignment_start_unassigned(ledger, routings):
    clock = FixedClock(OPENED)
    _accounts(ledger)
    reference = _register(ledger, routings, clock)
    _run(ledger, routings, clock, "assign", reference=reference, officer="ana")
    _run(ledger, routings, clock, "reassign", reference=reference, to="csj")
    assert _hop(ledger, reference, 2).assigned_to is None
    _run(ledger, routings, clock, "assign", reference=reference, officer="carla")
    _run(ledger, routings, clock, "decide", reference=reference, outcome="forwarded")
    assert _hop(ledger, reference, 3).assigned_to is None
    with pytest.raises(Conflict):
        _run(ledger, routings, clock, "assign", reference=reference, officer="carla", hop=2)


def test_my_work_lists_the_open_hops_assigned_to_one_officer_most_urgent_first(ledger, routings):
    clock = FixedClock(OPENED)
    _accounts(ledger)
    fresh = _register(ledger, routings, clock)
    clock.set(OPENED - timedelta(days=20))
    late = _register(ledger, routings, clock)
    clock.set(OPENED)
    other = _register(ledger, routings, clock)
    for reference in (fresh, late):
        _run(ledger, routings, clock, "assign", reference=reference, officer="ana")
    _run(ledger, routings, clock, "assign", reference=other, officer="ben")
    with ledger.session() as session:
        items = my_work(session, routings=routings, officer="ana", now=OPENED)
        refused = my_work(
            session, routings=routings, officer="ana", now=OPENED, serves=lambda c, a: a != "fgr"
        )
    assert [i.reference for i in items] == [late, fresh]
    assert items[0].overdue and {i.assigned_to for i in items} == {"ana"}
    assert refused == []
    _run(ledger, routings, clock, "decide", reference=late, outcome="forwarded")
    with ledger.session() as session:
        assert [
            i.reference for i in my_work(session, routings=routings, officer="ana", now=OPENED)
        ] == [fresh]


# -- acknowledging and snoozing escalations --------------------------------------------------------


def test_an_acknowledged_escalation_repeats_no_more(ledger, routings):
    clock = FixedClock(OPENED)
    reference = _register(ledger, routings, clock)
    assert _sweep(ledger, routings, AFTER_ESCALATION) == 1
    assert _rung_keys(ledger) == ["2:0"]
    clock.set(AFTER_ESCALATION)
    _run(ledger, routings, clock, "acknowledge", reference=reference, note="head of unit called")
    step = _hop(ledger, reference)
    assert step.acknowledged_by == "tester" and step.acknowledged_at == AFTER_ESCALATION
    assert step.next_rung_at is None, "no rung is left to fire: the sweep never sees the hop"
    assert _sweep(ledger, routings, OPENED + timedelta(days=120)) == 0
    assert _rung_keys(ledger) == ["2:0"]


def test_after_an_acknowledgement_a_rung_not_reached_yet_still_fires_and_then_repeats(
    ledger, routings
):
    clock = FixedClock(OPENED)
    reference = _register(ledger, routings, clock)
    overdue = OPENED + timedelta(days=16)  # past the 10bd deadline, before the escalation
    _sweep(ledger, routings, overdue)
    assert _rung_keys(ledger) == ["1:0"]
    clock.set(overdue)
    _run(ledger, routings, clock, "acknowledge", reference=reference, note="on it")
    assert _hop(ledger, reference).next_rung_at is not None  # the escalation is still ahead
    assert _sweep(ledger, routings, AFTER_ESCALATION) == 1
    assert _rung_keys(ledger) == ["2:0"]  # the overdue notice, unsent, is superseded by it
    assert _sweep(ledger, routings, AFTER_ESCALATION + timedelta(days=15)) == 1
    assert _rung_keys(ledger) == ["2:1"], "the rung acknowledged nothing of repeats"


def test_acknowledging_is_refused_before_any_rung_fired_and_when_nothing_fired_since(
    ledger, routings
):
    clock = FixedClock(OPENED)
    reference = _register(ledger, routings, clock)
    before = _last_seq(ledger, reference)
    with pytest.raises(CommandRejected, match=r"no rung .* has fired yet"):
        _run(ledger, routings, clock, "acknowledge", reference=reference, note="seen")
    assert _last_seq(ledger, reference) == before
    _sweep(ledger, routings, AFTER_ESCALATION)
    _run(ledger, routings, clock, "acknowledge", reference=reference, note="seen")
    with pytest.raises(CommandRejected, match="nothing new to acknowledge"):
        _run(ledger, routings, clock, "acknowledge", reference=reference, note="again")


def test_a_snooze_defers_every_rung_then_the_ladder_carries_on_with_its_repeats(ledger, routings):
    clock = FixedClock(OPENED)
    reference = _register(ledger, routings, clock)
    _sweep(ledger, routings, AFTER_ESCALATION)
    clock.set(AFTER_ESCALATION)
    until = date(2026, 5, 4)  # a Monday, three repeats later
    _run(ledger, routings, clock, "snooze", reference=reference, until=until, reason="on leave")
    start = datetime(2026, 5, 4, 6, tzinfo=UTC)  # midnight in San Salvador (UTC-6)
    step = _hop(ledger, reference)
    assert step.snoozed_until == start and step.next_rung_at == start
    assert _sweep(ledger, routings, start - timedelta(seconds=1)) == 0
    assert _rung_keys(ledger) == ["2:0"]
    assert _sweep(ledger, routings, start) == 1, "the repeats missed meanwhile collapse into one"
    # The repeats due on 8 and 22 April: one notice, the latest (the first one, unsent, is
    # superseded by it).
    assert _rung_keys(ledger) == ["2:2"]
    assert _sweep(ledger, routings, start + timedelta(days=15)) == 1, "and it keeps repeating"
    assert _rung_keys(ledger) == ["2:3"]


@pytest.mark.parametrize(
    ("until", "why"),
    [
        (date(2026, 3, 2), "not in the future"),  # today where the holder sits
        (date(2026, 2, 27), "not in the future"),
        (date(2039, 5, 11), "after the case's prescription date 2039-05-10"),
    ],
)
def test_snoozing_into_the_past_or_past_prescription_is_refused(ledger, routings, until, why):
    clock = FixedClock(OPENED)
    reference = _register(ledger, routings, clock)
    before = _last_seq(ledger, reference)
    with pytest.raises(CommandRejected, match=why):
        _run(ledger, routings, clock, "snooze", reference=reference, until=until, reason="r")
    assert _last_seq(ledger, reference) == before
    assert _hop(ledger, reference).snoozed_until is None


def test_acknowledging_or_snoozing_a_closed_hop_is_refused(ledger, routings):
    clock = FixedClock(OPENED)
    reference = _register(ledger, routings, clock)
    _sweep(ledger, routings, AFTER_ESCALATION)
    clock.set(AFTER_ESCALATION)
    _run(ledger, routings, clock, "decide", reference=reference, outcome="forwarded")
    with pytest.raises(Conflict, match="hop 1 is no longer open"):
        _run(ledger, routings, clock, "acknowledge", reference=reference, hop=1, note="late")
    with pytest.raises(Conflict, match="hop 1 is no longer open"):
        _run(
            ledger,
            routings,
            clock,
            "snooze",
            reference=reference,
            hop=1,
            until=date(2026, 6, 1),
            reason="r",
        )
    _run(ledger, routings, clock, "withdraw", reference=reference)
    with pytest.raises(CommandRejected, match="is closed"):
        _run(
            ledger,
            routings,
            clock,
            "snooze",
            reference=reference,
            until=date(2026, 6, 1),
            reason="r",
        )


def test_a_resumed_clock_keeps_the_snooze(ledger, routings):
    clock = FixedClock(OPENED)
    reference = _register(ledger, routings, clock)
    _run(ledger, routings, clock, "snooze", reference=reference, until=date(2026, 6, 1), reason="r")
    _run(ledger, routings, clock, "stop_clock", reference=reference, reason="waiting")
    assert _hop(ledger, reference).next_rung_at is None
    clock.set(OPENED + timedelta(days=1))
    _run(ledger, routings, clock, "resume_clock", reference=reference, reason="answered")
    assert _hop(ledger, reference).next_rung_at == datetime(2026, 6, 1, 6, tzinfo=UTC)


# -- the escalation board ----------------------------------------------------------------------


def test_the_board_lists_fired_hops_loudest_then_oldest_with_their_acknowledgement(
    ledger, routings
):
    clock = FixedClock(OPENED - timedelta(days=10))
    older = _register(ledger, routings, clock)
    clock.set(OPENED)
    newer = _register(ledger, routings, clock)
    only_overdue = _register(ledger, routings, FixedClock(OPENED + timedelta(days=11)))
    quiet = _register(ledger, routings, FixedClock(AFTER_ESCALATION))
    _sweep(ledger, routings, AFTER_ESCALATION)
    clock.set(AFTER_ESCALATION)
    _run(ledger, routings, clock, "acknowledge", reference=newer, note="on it")
    with ledger.session() as session:
        board = escalation_board(session, countries=["SV"], now=AFTER_ESCALATION, routings=routings)
        assert escalation_board(session, countries=["GT"], now=AFTER_ESCALATION) == []
    assert [i.reference for i in board] == [older, newer, only_overdue]
    assert quiet not in {i.reference for i in board}
    top = board[0]
    assert (top.kind, top.severity, top.rung, top.holder, top.hop) == (
        "escalation",
        "failure",
        2,
        "fgr",
        1,
    )
    assert top.age_business_days > board[1].age_business_days > 0
    assert top.acknowledged_at is None and not top.acknowledged
    assert board[1].acknowledged_by == "tester" and board[1].acknowledged
    assert (board[2].kind, board[2].severity) == ("overdue", "warning")


# -- snooze arithmetic, as properties --------------------------------------------------------------


@settings(max_examples=200)
@given(
    country=st.sampled_from(["SV", "GT", "IT", "PT", "MK", "CO", "US", "KE", "RU", "UA"]),
    until=st.dates(min_value=date(2026, 1, 1), max_value=date(2030, 12, 31)),
)
def test_a_snooze_ends_at_the_start_of_its_day_where_the_holder_sits(routings, country, until):
    calendar = routings.for_country(country).calendar(None)
    start = snooze_start(until, calendar)
    assert calendar.local_date(start) == until
    assert calendar.local_date(start - timedelta(microseconds=1)) == until - timedelta(days=1)


@settings(max_examples=300)
@given(
    firsts=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
    fired=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    acknowledged=st.lists(st.booleans(), min_size=4, max_size=4),
    snooze=st.none() | st.integers(0, 2 * 10**6),
)
def test_the_sweep_pointer_never_precedes_a_snooze_nor_points_at_an_acknowledged_repeat(
    routings, firsts, fired, acknowledged, snooze
):
    calendar = routings.for_country("SV").calendar("fgr")
    base = int(OPENED.timestamp())
    rungs = []
    for n, first in enumerate(firsts):
        rung = {"n": n, "at": base + first, "repeat": "2bd", "fired": fired[n]}
        if acknowledged[n] and fired[n] > 0:
            rung["acknowledged"] = fired[n]
        rungs.append(rung)
    hop = Hop(
        request_id=1,
        hop=1,
        route_step="draft",
        step_index=0,
        holder="fgr",
        country="SV",
        sla="10bd",
        opened_at=OPENED,
        due_at=OPENED,
        rungs=rungs,
        next_rung_at=None,
        snoozed_until=None if snooze is None else OPENED + timedelta(seconds=snooze),
    )
    pointer = hop_next_rung_at(hop, calendar)
    live = [r for r in rungs if "acknowledged" not in r]
    if not live:
        assert pointer is None, "every rung that fired was acknowledged and none is left"
        return
    natural = min(engine.rung_due(r, r["fired"], calendar) or 0 for r in live)
    assert pointer is not None
    expected = datetime.fromtimestamp(natural, UTC)
    if hop.snoozed_until is not None:
        expected = max(expected, hop.snoozed_until)
    assert pointer == expected
    for r in rungs:
        if "acknowledged" in r:
            assert engine.rung_due(r, r["fired"], calendar) is None


@settings(max_examples=25)
@given(days=st.integers(-3, 60))
def test_a_snooze_is_accepted_for_a_later_day_only_and_no_rung_fires_before_it(routings, days):
    opened = datetime(2026, 3, 2, 15, tzinfo=UTC)
    now = opened + timedelta(days=30)
    clock = FixedClock(opened)
    with (
        tempfile.TemporaryDirectory() as folder,
        Ledger(f"sqlite:///{folder}/ledger.db", migrate=True) as ledger,
    ):
        reference = _register(ledger, routings, clock)
        _sweep(ledger, routings, now)
        clock.set(now)
        calendar = routings.for_country("SV").calendar("fgr")
        until = calendar.local_date(now) + timedelta(days=days)
        before = _last_seq(ledger, reference)
        if days <= 0:
            with pytest.raises(CommandRejected, match="not in the future"):
                _run(
                    ledger, routings, clock, "snooze", reference=reference, until=until, reason="r"
                )
            assert _last_seq(ledger, reference) == before
            return
        _run(ledger, routings, clock, "snooze", reference=reference, until=until, reason="r")
        start = snooze_start(until, calendar)
        assert _hop(ledger, reference).next_rung_at >= start
        assert _sweep(ledger, routings, start - timedelta(seconds=1)) == 0
        late = _sweep(ledger, routings, start + timedelta(days=20))
        assert late == 1, "twenty days after the snooze the repeating escalation is due again"


def test_the_board_reads_the_hops_whose_ladder_fired_and_the_upgrade_marks_earlier_ones(
    ledger, routings
):
    clock = FixedClock(OPENED)
    quiet = _register(ledger, routings, clock)
    fired = _register(ledger, routings, clock)
    _run(ledger, routings, clock, "withdraw", reference=quiet)
    assert _sweep(ledger, routings, AFTER_ESCALATION) == 1
    assert _hop(ledger, fired).fired_at == AFTER_ESCALATION
    with ledger.session() as session:
        board = escalation_board(session, countries=["SV"], now=AFTER_ESCALATION)
    assert [i.reference for i in board] == [fired]

    # A ledger swept before migration 0006: its fired hops are found from their rungs.
    migration = importlib.import_module("models.migrations.versions.0006_fired_hops")
    with ledger.engine.begin() as connection:
        connection.execute(update(Step).values(fired_at=None))
        migration.mark_fired_hops(connection)
    assert _hop(ledger, quiet).fired_at is None
    assert _hop(ledger, fired).fired_at is not None
    assert _hop(ledger, fired).fired_at <= AFTER_ESCALATION

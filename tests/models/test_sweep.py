"""The clock sweep: due rungs become deliveries once, and missed repeats collapse into one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from models import engine
from models.clock import FixedClock
from models.ledger import Delivery
from models.sweep import sweep_rungs
from tests.samples import intake


def _keys(ledger, status: str = "pending") -> list[str]:
    with ledger.session() as session:
        return sorted(
            session.scalars(
                select(Delivery.key).where(
                    Delivery.status == status, Delivery.key.contains(":rung:")
                )
            )
        )


def test_missed_repeats_collapse_into_the_latest_and_later_ones_still_fire(ledger, routings):
    opened = datetime(2026, 3, 2, 15, tzinfo=UTC)  # a Monday
    clock = FixedClock(opened)
    with ledger.transaction() as session:
        engine.register(session=session, clock=clock, routings=routings, data=intake())
    # SV ladder on a 10bd hop: reminder at 75% (8bd), overdue at 100% (10bd), escalation at
    # 150% (15bd) repeating every 10bd (25bd, 35bd, ...). 60 days later is 42 business days
    # (with Holy Week 2026 closed), so escalations 0, 1 and 2 are all due: one notice, #2;
    # the reminder and the overdue rung, due at once with it, are recorded as superseded.
    now = opened + timedelta(days=60)
    with ledger.transaction() as session:
        first = sweep_rungs(session=session, routings=routings, now=now)
    keys = _keys(ledger)
    assert (first.created, first.superseded) == (1, 2)
    assert [k.split(":rung:")[1] for k in keys] == ["2:2"]
    assert [k.split(":rung:")[1] for k in _keys(ledger, "superseded")] == ["0:0", "1:0"]
    with ledger.transaction() as session:
        again = sweep_rungs(session=session, routings=routings, now=now)
    assert (again.due_hops, again.created) == (0, 0)
    with ledger.transaction() as session:
        later = sweep_rungs(session=session, routings=routings, now=now + timedelta(days=14))
    assert later.created == 1
    assert _keys(ledger)[-1].endswith(":rung:2:3")


def test_two_reminders_of_one_hop_never_read_alike_and_a_late_one_reads_overdue():
    from models.notices import HopState, hop_notice, worded_kind

    due = datetime(2027, 2, 6, 20, 59, 59, tzinfo=UTC)  # end of the day in Moscow
    state = HopState(
        "RU-2026-000170",
        3,
        "execution",
        "Abroad",
        due - timedelta(days=180),
        due,
        0,
        None,
        "Europe/Moscow",
    )

    def title(now: datetime) -> str:
        kind = worded_kind("reminder", due_at=due, now=now)
        return hop_notice(
            key="k", kind=kind, state=state, request_id=1, step_id=1, tags=[], at=now, now=now
        ).title

    assert title(due - timedelta(days=90)) == (
        "Reminder: RU-2026-000170 hop 3 is due in 90 day(s), on 2027-02-06"
    )
    assert title(due - timedelta(days=45)).endswith("is due in 45 day(s), on 2027-02-06")
    assert title(due + timedelta(days=2)).startswith("Overdue: RU-2026-000170 hop 3 is")


def test_daily_repeats_swept_across_a_weekend_each_say_their_own_day_late(ledger, routings):
    """RU urgent requests repeat the overdue notice every business day; a sweep early on a
    Friday and one on the Sunday after must not send two notices that read the same."""
    monday = datetime(2026, 3, 2, 6, tzinfo=UTC)  # 09:00 in Moscow
    clock = FixedClock(monday)
    data = intake(
        country="RU",
        direction="incoming",
        counterpart="ES",
        urgent=True,
        urgency_reason="a suspect is about to leave",
    )
    with ledger.transaction() as session:
        engine.register(session=session, clock=clock, routings=routings, data=data)
    friday_early = datetime(2026, 3, 12, 23, 30, tzinfo=UTC)  # Friday 02:30 in Moscow
    sunday = datetime(2026, 3, 15, 9, tzinfo=UTC)
    for now in (friday_early, sunday):
        with ledger.transaction() as session:
            sweep_rungs(session=session, routings=routings, now=now)
    with ledger.session() as session:
        titles = session.scalars(
            select(Delivery.title)
            .where(Delivery.key.contains(":rung:1:"))  # the repeating overdue rung
            .order_by(Delivery.id)
        ).all()
    assert titles == [
        "Overdue: RU-2026-000001 hop 1 is 6 business day(s) late",  # fell due Thursday night
        "Overdue: RU-2026-000001 hop 1 is 7 business day(s) late",  # Friday night
    ]

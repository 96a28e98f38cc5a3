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

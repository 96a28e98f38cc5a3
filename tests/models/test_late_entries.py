"""A late entry's date is that day where the hop's holder sits; the reply says how it was read.

`--on 2026-03-09` once meant midnight UTC: in El Salvador, Guatemala, Colombia and the United
States that is the evening before, so a decision taken on a Monday was recorded on a Sunday.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from models import engine
from models.clock import FixedClock
from models.errors import CommandRejected
from models.ledger import Ledger
from models.queries import timeline
from tests.samples import intake

MONDAY = date(2026, 3, 9)
AMERICAS = {
    "SV": "America/El_Salvador",
    "GT": "America/Guatemala",
    "CO": "America/Bogota",
    "US": "America/New_York",
}


def _register(ledger: Ledger, routings, clock, country: str) -> str:
    data = intake(country=country, counterpart="ES", direction="outgoing")
    with ledger.transaction() as session:
        return engine.register(session=session, clock=clock, routings=routings, data=data).reference


@pytest.mark.parametrize("country", sorted(AMERICAS))
def test_a_decision_entered_late_lands_on_the_holders_day(
    ledger: Ledger, routings, country: str
) -> None:
    clock = FixedClock(datetime(2026, 3, 2, 15, tzinfo=UTC))
    reference = _register(ledger, routings, clock, country)
    clock.set(datetime(2026, 3, 20, 15, tzinfo=UTC))
    with ledger.transaction() as session:
        result = engine.decide(
            session=session,
            clock=clock,
            routings=routings,
            reference=reference,
            outcome="forwarded",
            on=MONDAY,
        )
    zone = ZoneInfo(AMERICAS[country])
    with ledger.session() as session:
        routing = routings.pinned(session, routings.for_country(country).version)
        hop = timeline(session=session, routing=routing, reference=reference, now=clock.now()).hops[
            0
        ]
    closed = hop.closed_at.astimezone(zone)
    assert closed.date() == MONDAY and closed.strftime("%A") == "Monday"
    assert closed.hour == 12  # local noon: the middle of the day the clerk named
    assert f"read as 2026-03-09 12:00 {closed.tzname()} ({AMERICAS[country]})" in result.message


def test_a_date_on_the_day_the_hop_opened_never_precedes_the_opening(
    ledger: Ledger, routings
) -> None:
    # Opened at 15:00 local (21:00 UTC): noon that day would be before it.
    clock = FixedClock(datetime(2026, 3, 2, 21, tzinfo=UTC))
    reference = _register(ledger, routings, clock, "SV")
    clock.advance(timedelta(days=3))
    with ledger.transaction() as session:
        result = engine.decide(
            session=session,
            clock=clock,
            routings=routings,
            reference=reference,
            outcome="forwarded",
            on=date(2026, 3, 2),
        )
    assert "read as 2026-03-02 15:00 CST" in result.message


def test_a_date_today_is_read_as_no_later_than_now(ledger: Ledger, routings) -> None:
    clock = FixedClock(datetime(2026, 3, 2, 14, tzinfo=UTC))  # 08:00 in San Salvador
    reference = _register(ledger, routings, clock, "SV")
    clock.advance(timedelta(hours=1))
    with ledger.transaction() as session:
        result = engine.stop_clock(
            session=session,
            clock=clock,
            routings=routings,
            reference=reference,
            reason="awaiting clarification",
            on=date(2026, 3, 2),
        )
    assert "read as 2026-03-02 09:00 CST" in result.message


def test_a_naive_date_time_is_the_holders_wall_clock(ledger: Ledger, routings) -> None:
    clock = FixedClock(datetime(2026, 3, 2, 15, tzinfo=UTC))
    reference = _register(ledger, routings, clock, "SV")
    clock.advance(timedelta(days=5))
    with ledger.transaction() as session:
        result = engine.decide(
            session=session,
            clock=clock,
            routings=routings,
            reference=reference,
            outcome="forwarded",
            on=datetime(2026, 3, 4, 16, 30),
        )
    assert "read as 2026-03-04 16:30 CST (America/El_Salvador)" in result.message


def test_a_date_before_the_hop_opened_is_refused_and_says_when_it_opened(
    ledger: Ledger, routings
) -> None:
    clock = FixedClock(datetime(2026, 3, 2, 15, tzinfo=UTC))
    reference = _register(ledger, routings, clock, "SV")
    with pytest.raises(CommandRejected) as info, ledger.transaction() as session:
        engine.decide(
            session=session,
            clock=clock,
            routings=routings,
            reference=reference,
            outcome="forwarded",
            on=date(2026, 3, 1),
        )
    assert "is before the hop opened (2026-03-02 09:00 CST)" in str(info.value)

"""A report as of a past day counts the cases that existed then, and never fails on those
registered or moved on since (it used to crash: a negative key in the risk register)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.service import Service
from models import identity
from models.clock import FixedClock
from models.commands import Decide, Register
from models.ledger import Ledger
from models.metrics import Filters
from tests.samples import intake

FIRST = datetime(2026, 9, 1, 15, tzinfo=UTC)


def test_a_report_as_of_a_past_day_leaves_out_the_cases_registered_after_it(
    tmp_path: Path,
) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)
    clock = FixedClock(FIRST)
    service = Service(ledger, clock=clock)
    local = identity.local_caller("test")
    early = service.submit(Register(request=intake()), local).reference
    clock.set(FIRST + timedelta(days=30))
    service.submit(Register(request=intake(counterpart="US")), local)
    clock.set(FIRST + timedelta(days=40))
    service.submit(Decide(reference=early, outcome="forwarded"), local)

    before_any = service.report(Filters(), local, now=FIRST - timedelta(days=1))
    between = service.report(Filters(), local, now=FIRST + timedelta(days=10))
    today = service.report(Filters(), local, now=FIRST + timedelta(days=41))
    ledger.dispose()

    assert before_any["summary"]["cases"] == 0
    assert between["summary"]["cases"] == 1
    assert today["summary"]["cases"] == 2

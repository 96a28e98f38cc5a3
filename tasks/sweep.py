"""Prefect tasks for the clock sweep: record due rungs and prescription alerts in the ledger.

The sweep reads each case's pinned routing from the ledger, never the files in force: a country
file that is being edited (or is broken) stops no alert. A case that cannot be swept is
recorded as a problem and told once; the others go through.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prefect import task

from models import problems
from models.clock import clock_from_env
from models.engine import Routings
from models.ledger import Ledger
from models.sweep import SweepResult, sweep_prescription, sweep_rungs


def sweep_now(
    ledger: Ledger, *, thresholds: Sequence[int], now: datetime | None = None
) -> tuple[SweepResult, SweepResult]:
    """One pass: every rung now due, then every prescription threshold crossed."""
    routings = Routings({})
    now = now or clock_from_env().now()
    with ledger.transaction() as session:
        rungs = sweep_rungs(session=session, routings=routings, now=now)
    with ledger.transaction() as session:
        alerts = sweep_prescription(
            session=session, routings=routings, now=now, thresholds=thresholds
        )
    failures = rungs.failures + alerts.failures
    with ledger.transaction() as session:
        if failures:
            problems.record_failures(
                session,
                failures,
                coordinators=problems.coordinator_tags(routings.loaded()),
                now=now,
            )
        problems.resolve(session, stage="sweep", worked=rungs.worked, now=now)
        problems.resolve(session, stage="prescription", worked=alerts.worked, now=now)
    return rungs, alerts


@task(name="sweep-clock", retries=2, retry_delay_seconds=[2, 10])
def sweep_clock(thresholds: list[int]) -> dict[str, int]:
    with Ledger() as ledger:
        rungs, alerts = sweep_now(ledger, thresholds=thresholds)
    return {
        "hops_due": rungs.due_hops,
        "rungs_recorded": rungs.created,
        "rungs_already_recorded": rungs.already_recorded,
        "rungs_superseded": rungs.superseded,
        "prescription_alerts_recorded": alerts.created,
        "cases_with_problems": len(rungs.failures) + len(alerts.failures),
    }

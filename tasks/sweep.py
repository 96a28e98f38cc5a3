"""Prefect tasks for the clock sweep: record due rungs and prescription alerts in the ledger."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task

from models.clock import clock_from_env
from models.engine import Routings
from models.ledger import Ledger
from models.loader import load_all
from models.sweep import SweepResult, sweep_prescription, sweep_rungs


def sweep_now(ledger: Ledger, *, thresholds: Sequence[int]) -> tuple[SweepResult, SweepResult]:
    """One pass: every rung now due, then every prescription threshold crossed."""
    routings = Routings(load_all())
    now = clock_from_env().now()
    with ledger.transaction() as session:
        rungs = sweep_rungs(session=session, routings=routings, now=now)
    with ledger.transaction() as session:
        alerts = sweep_prescription(
            session=session, routings=routings, now=now, thresholds=thresholds
        )
    return rungs, alerts


@task(name="sweep-clock", retries=2, retry_delay_seconds=[2, 10])
def sweep_clock(thresholds: list[int]) -> dict[str, int]:
    with Ledger() as ledger:
        rungs, alerts = sweep_now(ledger, thresholds=thresholds)
    return {
        "hops_due": rungs.due_hops,
        "rungs_recorded": rungs.created,
        "rungs_already_recorded": rungs.already_recorded,
        "prescription_alerts_recorded": alerts.created,
    }

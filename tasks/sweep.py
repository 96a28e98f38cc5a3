"""Prefect tasks for the clock sweep: record due rungs and prescription alerts in the ledger.

The sweep reads each case's pinned routing from the ledger, never the files in force: a country
file that is being edited (or is broken) stops no alert. A case that cannot be swept is
recorded as a problem and told once; the others go through. Every sweep, successful or not,
leaves a heartbeat row (`models.heartbeat`): `rogatory health` reads it, and the `watcher_down`
flow (flows/watcher_down.py), run by a Prefect automation when no `watch_clock` run completed
for a while, tells the admin and every coordinator through `record_and_send_watcher_down`, once
an hour.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from prefect import task

from models import deliveries, problems
from models.clock import clock_from_env
from models.engine import Routings
from models.heartbeat import (
    SweepOutcome,
    record_sweep,
    stale_after_from_env,
    watcher_down_notice,
    watcher_health,
)
from models.ledger import Ledger
from models.sweep import SweepResult, sweep_prescription, sweep_rungs
from tasks.checkpoint import seal_now
from tasks.notify import send_pending

WATCH_COMMAND = "rogatory watch"


def sweep_now(
    ledger: Ledger,
    *,
    thresholds: Sequence[int],
    now: datetime | None = None,
    ran_by: str = WATCH_COMMAND,
) -> tuple[SweepResult, SweepResult]:
    """One pass: every rung now due, every prescription threshold crossed, then a checkpoint.

    It ends with its heartbeat: a `sweep_runs` row, written with the problems it found (or, if
    it failed, on its own with the error, before the error goes on).
    """
    routings = Routings({})
    now = now or clock_from_env().now()
    began = time.monotonic()

    def outcome(**fields: Any) -> SweepOutcome:
        finished = now + timedelta(seconds=time.monotonic() - began)
        return SweepOutcome(started_at=now, finished_at=finished, ran_by=ran_by, **fields)

    try:
        with ledger.transaction() as session:
            rungs = sweep_rungs(session=session, routings=routings, now=now)
        with ledger.transaction() as session:
            alerts = sweep_prescription(
                session=session, routings=routings, now=now, thresholds=thresholds
            )
        failures = rungs.failures + alerts.failures
        # Then the cases that moved since the last checkpoint are verified and sealed (a
        # tampered one is marked, its commands refused, the admin and auditors told once).
        seal_now(ledger, routings=routings, now=now, found_by=ran_by)
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
            record_sweep(
                session,
                outcome(
                    rungs_recorded=rungs.created,
                    alerts_recorded=alerts.created,
                    failures=len(failures),
                ),
            )
    except Exception as exc:
        # The failure is part of the watcher's health: record it, then let the caller (or
        # Prefect's retries) see the error. A ledger that refuses even this row says so itself.
        with ledger.transaction() as session:
            record_sweep(session, outcome(ok=False, error=f"{type(exc).__name__}: {exc}"))
        raise
    return rungs, alerts


@task(name="sweep-clock", retries=2, retry_delay_seconds=[2, 10])
def sweep_clock(thresholds: list[int]) -> dict[str, int]:
    from prefect.runtime import flow_run

    ran_by = f"flow-run:{flow_run.id}" if flow_run.id else "watch_clock"
    with Ledger() as ledger:
        rungs, alerts = sweep_now(ledger, thresholds=thresholds, ran_by=ran_by)
    return {
        "hops_due": rungs.due_hops,
        "rungs_recorded": rungs.created,
        "rungs_already_recorded": rungs.already_recorded,
        "rungs_superseded": rungs.superseded,
        "prescription_alerts_recorded": alerts.created,
        "cases_with_problems": len(rungs.failures) + len(alerts.failures),
    }


# -- the watched watcher -------------------------------------------------------------------------


def alert_watcher_down(
    ledger: Ledger, *, now: datetime, stale_after: timedelta, reason: str
) -> tuple[str, bool]:
    """Record this hour's watcher-down notice to the admin and every coordinator, once.

    Returns its key and whether it was new (the automation fires every window while the
    watcher stays down; the key keeps that to one notice an hour).
    """
    coordinators = problems.coordinator_tags([]).values()
    with ledger.transaction() as session:
        health = watcher_health(session, now=now, stale_after=stale_after)
        notice = watcher_down_notice(health=health, coordinator_tags=coordinators, reason=reason)
        created = deliveries.record(session.connection(), [notice], now=now)
    return notice.key, created == 1


@task(name="alert-watcher-down", retries=2, retry_delay_seconds=[2, 10])
def record_and_send_watcher_down(reason: str) -> dict[str, Any]:
    now = clock_from_env().now()
    with Ledger() as ledger:
        key, new = alert_watcher_down(
            ledger, now=now, stale_after=stale_after_from_env(), reason=reason
        )
        sent = send_pending(ledger=ledger, now=now, keys=[key])
    return {"key": key, "recorded": new, "sent": sent.sent, "send_failures": sent.failed}

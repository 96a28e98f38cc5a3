"""`watch_clock`: the scheduled sweep that reminds, escalates, alerts and reconciles.

Every run records the rungs and prescription alerts now due (exactly once, in the ledger),
with `daily_digest` each coordinator's digest of the day (once a day, from its morning), sends
what is owed through apprise (failures stay pending and are retried with backoff), and gives
every open case a live `route_request` run. What it did is shown in the Prefect UI as the
`watch-clock-last-sweep` artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from models.clock import clock_from_env
from models.sweep import DEFAULT_SLACK_THRESHOLDS
from tasks.artifacts import publish_sweep_artifact
from tasks.digest import record_daily_digests
from tasks.notify import send_deliveries
from tasks.orchestration import reconcile_cases
from tasks.sweep import sweep_clock


@flow(
    name="watch_clock",
    flow_run_name=lambda: f"sweep {clock_from_env().now():%Y-%m-%d %H:%M}",
    timeout_seconds=1800,  # a hung service must not hold the one sweep slot; the next sends on
    log_prints=True,
)
def watch_clock(
    slack_thresholds: tuple[int, ...] = DEFAULT_SLACK_THRESHOLDS,
    reconcile: bool = True,
    daily_digest: bool = False,
) -> dict[str, Any]:
    """Sweep the clock once: record what is due, send it, and reconcile case flow runs."""
    summary: dict[str, Any] = dict(sweep_clock(list(slack_thresholds)))
    if daily_digest:
        summary.update(digests_recorded=record_daily_digests())
    sent = send_deliveries(clock_from_env().now())
    summary.update(sent=sent.sent, send_failures=sent.failed)
    if reconcile:
        fixed = reconcile_cases()
        summary.update(flows_started=fixed.started, flows_woken=fixed.woken)
    publish_sweep_artifact(summary)
    print(summary)
    return summary

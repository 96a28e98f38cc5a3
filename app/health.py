"""The watched watcher: `rogatory health`, the API's sweep status, and the Prefect automation.

`rogatory health` reads the sweeps' heartbeat in the ledger and exits 2 when no sweep succeeded
within the threshold, for cron or a monitoring probe. `rogatory serve` also keeps a Prefect
automation by name: when no `watch_clock` run completes within the threshold, it runs the
`watcher-down` deployment (served beside the others), which tells the admin and every
coordinator through apprise, once an hour.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from app.cli import emit

if TYPE_CHECKING:
    from prefect.automations import Automation
    from prefect.deployments.runner import RunnerDeployment

    from models.heartbeat import WatcherHealth
    from models.ledger import Ledger

Sub = Any
STALE_EXIT = 2
AUTOMATION_NAME = "rogatory-watcher-down"
DEPLOYMENT_NAME = "watcher-down"
WATCH_FLOW = "watch_clock"
STALE_AFTER_VARIABLE = "ROGATORY_WATCHER_STALE_AFTER_S"
"""Named here too: the parser is built without the ledger's imports (models.heartbeat)."""


def register(sub: Sub) -> None:
    h = sub.add_parser(
        "health",
        help="is the clock being swept? exit 2 when no sweep succeeded within --stale-after",
    )
    h.add_argument(
        "--stale-after",
        type=_duration,
        default=None,
        help=f"how old the last successful sweep may be: 900, 15m, 1h (default "
        f"${STALE_AFTER_VARIABLE} seconds, else 15m)",
    )
    h.add_argument("--json", action="store_true")
    h.set_defaults(handler=health)


def _duration(text: str) -> timedelta:
    from models.heartbeat import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- rogatory health ---------------------------------------------------------------------------


def health(args: argparse.Namespace) -> int:
    from models.clock import clock_from_env
    from models.heartbeat import stale_after_from_env, watcher_health
    from models.ledger import Ledger

    stale_after = args.stale_after or stale_after_from_env()
    with Ledger() as ledger, ledger.session() as session:
        found = watcher_health(session, now=clock_from_env().now(), stale_after=stale_after)
    emit(args, health_report(found), health_text(found))
    return STALE_EXIT if found.stale else 0


def _minutes(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def health_report(found: WatcherHealth) -> dict[str, Any]:
    """What `rogatory health --json` prints: ages, times, counts; never a case's facts."""
    age = found.age
    failure = found.last_failure
    return {
        "status": "stale" if found.stale else "ok",
        "stale": found.stale,
        "stale_after_s": int(found.stale_after.total_seconds()),
        "last_ok_at": found.last_ok.at.isoformat() if found.last_ok else None,
        "last_ok_by": found.last_ok.ran_by if found.last_ok else None,
        "age_s": None if age is None else int(age.total_seconds()),
        "last_failure": None
        if failure is None
        else {
            "at": failure.at.isoformat(),
            "by": failure.ran_by,
            "error": failure.error,
            "since_last_ok": found.failing_since_ok,
        },
        "deliveries_owed": found.backlog.pending,
        "deliveries_failing": found.backlog.failing,
        "oldest_owed_at": found.backlog.oldest_due_at.isoformat()
        if found.backlog.oldest_due_at
        else None,
    }


def health_text(found: WatcherHealth) -> str:
    threshold = _minutes(found.stale_after)
    last = found.last_ok
    if last is None:
        head = f"STALE: no successful sweep recorded (threshold {threshold})"
    else:
        state = "STALE" if found.stale else "ok"
        head = (
            f"{state}: last successful sweep {_minutes(found.now - last.at)} ago, "
            f"{last.at:%Y-%m-%d %H:%M:%S} UTC, by {last.ran_by} (threshold {threshold})"
        )
    lines = [head]
    failure = found.last_failure
    if failure is None:
        lines.append("last failed sweep: none")
    else:
        after = " (after the last success)" if found.failing_since_ok else ""
        lines.append(
            f"last failed sweep: {failure.at:%Y-%m-%d %H:%M:%S} UTC by {failure.ran_by}{after}: "
            f"{(failure.error or '')[:300]}"
        )
    backlog = found.backlog
    owed = f"deliveries owed: {backlog.pending}"
    if backlog.pending:
        owed += f" ({backlog.failing} failed an attempt"
        if backlog.oldest_due_at is not None:
            owed += f"; oldest {backlog.oldest_due_at:%Y-%m-%d %H:%M} UTC"
        owed += "; see `rogatory notify pending`)"
    lines.append(owed)
    if found.stale:
        lines.append(
            "What to do: check `rogatory serve` (or the Prefect worker and the watch-clock "
            "deployment); `rogatory watch` sweeps once by hand."
        )
    return "\n".join(lines)


# -- GET /api/health -----------------------------------------------------------------------------


def sweep_status(ledger: Ledger, *, now: Any) -> dict[str, Any]:
    """The sweep's age and staleness for the unauthenticated health check: nothing else."""
    from sqlalchemy.exc import SQLAlchemyError

    from models.heartbeat import stale_after_from_env, watcher_health

    stale_after = stale_after_from_env()
    try:
        with ledger.session() as session:
            found = watcher_health(session, now=now, stale_after=stale_after)
    except SQLAlchemyError:
        return {"age_s": None, "stale": True, "stale_after_s": int(stale_after.total_seconds())}
    age = found.age
    return {
        "age_s": None if age is None else int(age.total_seconds()),
        "stale": found.stale,
        "stale_after_s": int(stale_after.total_seconds()),
    }


# -- the Prefect automation ------------------------------------------------------------------------


def watcher_automation(*, deployment_id: UUID, within: timedelta) -> Automation:
    """No `watch_clock` flow run Completed within `within`: run the `watcher-down` deployment."""
    from prefect.automations import Automation
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    seconds = int(within.total_seconds())
    return Automation(
        name=AUTOMATION_NAME,
        description=(
            f"rogatory: no {WATCH_FLOW} flow run completed for {seconds} s, so no reminder or "
            "escalation goes out. Runs the watcher-down deployment, which tells the admin and "
            "every country coordinator through apprise (once an hour). Kept by `rogatory serve`."
        ),
        enabled=True,
        trigger=EventTrigger(
            posture=Posture.Proactive,
            expect={"prefect.flow-run.Completed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": WATCH_FLOW},
            threshold=1,
            within=within,
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=deployment_id,
                parameters={
                    "reason": f"no {WATCH_FLOW} flow run completed in the last {seconds} s"
                },
            )
        ],
    )


def ensure_watcher_automation(automation: Automation) -> UUID:
    """Create the automation, or update the one of the same name: running it twice is harmless."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(automation.name)
    if found:
        automation.id = found[0].id
        automation.update()
    else:
        automation.create()
    assert automation.id is not None
    return automation.id


def watch_the_watcher(*, watch_every: timedelta) -> None:
    """From `rogatory serve`: serve `watcher-down` and keep the automation that runs it.

    The deployment is served by a second runner in a background thread (the main runner's
    `serve` blocks), so the alarm needs no process of its own. A failure here is reported and
    leaves the watcher itself serving.
    """
    from flows.watcher_down import watcher_down
    from models.heartbeat import stale_after_from_env

    within = stale_after_from_env()
    if within < timedelta(seconds=10):
        within = timedelta(seconds=10)  # Prefect's floor for proactive triggers
    if within < 2 * watch_every:
        print(
            f"warning: the watcher alarm fires after {_minutes(within)} without a completed "
            f"watch_clock run, but runs are {_minutes(watch_every)} apart: set "
            f"{STALE_AFTER_VARIABLE} above twice that",
            file=sys.stderr,
            flush=True,
        )
    try:
        # Sync here (no running event loop): Prefect types both as either.
        deployment = cast("RunnerDeployment", watcher_down.to_deployment(name=DEPLOYMENT_NAME))
        deployment_id = cast(UUID, deployment.apply())
        automation_id = ensure_watcher_automation(
            watcher_automation(deployment_id=deployment_id, within=within)
        )
    except Exception as exc:  # the watcher keeps serving; its alarm is reported as missing
        print(
            f"warning: the watcher alarm (automation {AUTOMATION_NAME!r}) could not be set: {exc}",
            file=sys.stderr,
            flush=True,
        )
        return
    _serve_in_background(deployment)
    print(
        f"watcher alarm: automation {AUTOMATION_NAME!r} ({automation_id}) runs "
        f"{DEPLOYMENT_NAME!r} after {_minutes(within)} without a completed {WATCH_FLOW} run",
        flush=True,
    )


def _serve_in_background(deployment: RunnerDeployment) -> None:
    import asyncio
    import contextvars
    import threading

    from prefect.runner import Runner

    async def serve() -> None:
        runner = Runner(name=f"rogatory-{DEPLOYMENT_NAME}", pause_on_shutdown=False, limit=1)
        await runner.aadd_deployment(deployment)
        await runner.start()

    # The caller's context carries Prefect's settings (its API URL, the poll interval).
    context = contextvars.copy_context()
    threading.Thread(
        target=context.run,
        args=(asyncio.run, serve()),
        name=f"{DEPLOYMENT_NAME}-runner",
        daemon=True,
    ).start()

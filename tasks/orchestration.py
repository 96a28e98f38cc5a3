"""Talking to the Prefect server about cases: start a case's flow run, wake it, reconcile.

The ledger never depends on Prefect: a command is recorded first, and only then is the case's
flow run started or resumed. If the server is down, the command still stands, and the watcher's
reconciliation later gives every open case a live flow run again (a wiped Prefect database
loses no case), and wakes any run that sleeps on a hop the ledger has already moved past.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID

from prefect import task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import resume_flow_run
from prefect.states import Crashed
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import problems, queries
from models.engine import Routings, attach_flow_run
from models.ledger import Ledger, Request
from models.problems import Failure
from models.queries import CaseView
from tasks.cases import input_key

ROUTE_DEPLOYMENT = "route_request/route-request"
DEAD_STATES = {StateType.FAILED, StateType.CRASHED, StateType.CANCELLED, StateType.COMPLETED}
FAILED_STATES = {StateType.FAILED, StateType.CRASHED}
BUSY_STATES = {StateType.RUNNING, StateType.PENDING}


def stuck_after() -> timedelta:
    """How long a case run may stay running or pending before it is presumed dead.

    A case run works for seconds between suspensions; one still "running" after this long
    lost its process (kill -9, machine gone) and the server has not noticed.
    """
    return timedelta(seconds=float(os.environ.get("ROGATORY_STUCK_AFTER_S", 600)))


def start_case_flow(ledger: Ledger, reference: str, *, replacing: str | None = None) -> str:
    """Create the case's flow run from the deployment and remember it in the ledger.

    The idempotency key makes two callers racing to start the same case get one run. It holds
    the hash of the case's first event, so a reference reused by another ledger (a wiped demo,
    a simulation) sharing this Prefect server never gets that ledger's run back.
    """
    with ledger.session() as session:
        first = queries.first_event_hash(session, reference)
        tags = case_run_tags(session=session, reference=reference)
    run = cast(
        FlowRun,
        run_deployment(
            ROUTE_DEPLOYMENT,
            parameters={"reference": reference},
            flow_run_name=reference,
            timeout=0,
            as_subflow=False,
            idempotency_key=f"{reference}:{(first or '')[:16]}:{replacing or 'first'}",
            tags=tags,
        ),
    )
    with ledger.transaction() as session:
        attach_flow_run(session=session, reference=reference, flow_run_id=str(run.id))
    return str(run.id)


def case_run_tags(*, session: Session, reference: str) -> list[str]:
    """A case run's tags: `case`, its country, kind and route, and who holds its open hop."""
    row = session.execute(
        select(Request.country, Request.kind, Request.route_id).where(
            Request.reference == reference
        )
    ).one()
    tags = ["case", f"country:{row.country}", f"kind:{row.kind}", f"route:{row.route_id}"]
    hop = queries.open_hop(session, reference)
    if hop is not None:  # a closed case is held by nobody
        tags.append(f"holder:{hop.holder}")
    return tags


def wake_case_flow(
    run_id: str, view: CaseView, *, tags: list[str] | None = None, settle_s: float = 20.0
) -> bool:
    """Resume the case's run if it is suspended on an older state of the ledger.

    A run found running may have read the ledger just before this command committed and be
    about to suspend on that older state (announce, then suspend): nobody would wake it but
    the watcher's next reconciliation. So a run that started running less than `settle_s`
    seconds ago is watched until it suspends, and its key is then compared like any other. A
    run running longer than that lost its process (a case run works for seconds between
    suspensions): the command does not wait on it, and reconciliation replaces it.

    With `tags` (`case_run_tags`), the run's tags are set to them first when they differ, so
    the UI's `holder:` filter follows the case from desk to desk.
    """
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(run_id))
        except ObjectNotFound:
            return False
        if tags is not None and sorted(run.tags) != sorted(tags):
            client.update_flow_run(run.id, tags=tags)
        running_for = (
            (datetime.now(UTC) - run.state.timestamp).total_seconds()
            if run.state is not None and run.state.is_running()
            else 0.0
        )
        settled_by = time.monotonic() + settle_s - running_for
        while run.state is not None and run.state.is_running() and time.monotonic() < settled_by:
            time.sleep(0.2)
            run = client.read_flow_run(run.id)
    if run.state is None or not run.state.is_paused():
        return False
    pause_key = run.state.state_details.pause_key
    if pause_key and pause_key.startswith(_key_prefix(view)):
        return False  # already waiting on the hop the ledger shows
    # No input: the run reads the ledger again; no form has to admit a wake-up payload.
    resume_flow_run(UUID(run_id))
    return True


def _key_prefix(view: CaseView) -> str:
    return input_key(view.reference, view).rsplit("-a", 1)[0] + "-a"


@dataclass(frozen=True)
class Reconciled:
    open_cases: int
    started: int
    woken: int
    failures: list[Failure] = field(default_factory=list)
    """Cases whose run could not be started or woken, or whose run had failed."""


def reconcile(ledger: Ledger) -> Reconciled:
    """Give every open case a live flow run, and wake runs sleeping on a stale state.

    One case's trouble (its run failed, the server refused to start a new one) is recorded as
    a problem of that case, told once; the other cases are reconciled all the same.
    """
    with ledger.session() as session:
        views = [(c.view, c.request_id, c.country) for c in queries.open_cases(session)]
    runs = _read_runs([v.flow_run_id for v, _, _ in views if v.flow_run_id])
    started = woken = 0
    failures: list[Failure] = []
    worked: set[str] = set()
    now = datetime.now(UTC)
    for view, request_id, country in views:
        run = runs.get(view.flow_run_id or "")
        try:
            if run is not None and run.state is not None and run.state.type in FAILED_STATES:
                # Said once (the problem's key), then the run is replaced like any dead one.
                failures.append(
                    Failure(
                        view.reference,
                        request_id,
                        country,
                        "flow",
                        f"its flow run ended {run.state.name}: "
                        f"{(run.state.message or 'no message')[:400]}",
                    )
                )
            if run is not None and _stuck(run, now):
                _mark_crashed(run)
            dead = run is None or run.state is None or run.state.type in DEAD_STATES
            if dead or _stuck(run, now):  # type: ignore[arg-type]
                start_case_flow(ledger, view.reference, replacing=view.flow_run_id)
                started += 1
            elif run.state.is_paused() and _wake_tagged(ledger, run, view):  # type: ignore[union-attr,arg-type]
                woken += 1
            worked.add(view.reference)
        except Exception as exc:  # one case's trouble must not stop the others' runs
            failures.append(
                Failure.of(
                    exc,
                    reference=view.reference,
                    request_id=request_id,
                    country=country,
                    stage="reconcile",
                )
            )
    with ledger.transaction() as session:
        if failures:
            problems.record_failures(
                session, failures, coordinators=_coordinators(session), now=now
            )
        problems.resolve(session, stage="reconcile", worked=worked, now=now)
    return Reconciled(len(views), started, woken, failures)


def _wake_tagged(ledger: Ledger, run: FlowRun, view: CaseView) -> bool:
    with ledger.session() as session:
        tags = case_run_tags(session=session, reference=view.reference)
    return wake_case_flow(str(run.id), view, tags=tags)


def _coordinators(session: Session) -> dict[str, str]:
    """Each country's coordinator tag, from the routing versions the ledger pinned."""
    routings = Routings({})
    out: dict[str, str] = {}
    for version in queries.routing_versions(session):
        try:
            out.update(problems.coordinator_tags([routings.pinned(session, version)]))
        except Exception:  # an unreadable version names no coordinator; the admin is told
            continue
    return out


def _stuck(run: FlowRun, now: datetime) -> bool:
    state = run.state
    if state is None or state.type not in BUSY_STATES or state.timestamp is None:
        return False
    return bool(now - state.timestamp > stuck_after())


def _mark_crashed(run: FlowRun) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(
            run.id,
            Crashed(message="rogatory reconciliation: no progress, its process is gone"),
            force=True,
        )


def _read_runs(ids: list[str]) -> dict[str, FlowRun]:
    out: dict[str, FlowRun] = {}
    with get_client(sync_client=True) as client:
        for i in range(0, len(ids), 200):
            chunk = [UUID(x) for x in ids[i : i + 200]]
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=200
            ):
                out[str(run.id)] = run
    return out


@task(name="reconcile-cases", retries=2, retry_delay_seconds=[5, 30])
def reconcile_cases() -> Reconciled:
    with Ledger() as ledger:
        return reconcile(ledger)

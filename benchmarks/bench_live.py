"""Live latency: from a decision in the ledger to the next hop's holder notified.

A real Prefect server and a real `rogatory serve` (runner poll 1 s) on loopback; one case goes
through its hops, and each decision is timed until the new hop's notice lands in the outbox.
As behind the API, the notice written in the decision's transaction is sent at once after the
commit, and the case's flow is woken as the backstop.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import Result

DECISIONS = 12
POLL_SECONDS = 1


def _notices(outbox: Path, reference: str) -> list[dict[str, Any]]:
    if not outbox.exists():
        return []
    lines = [json.loads(x) for x in outbox.read_text().splitlines() if x.strip()]
    return [m for m in lines if f"Case: {reference}\n" in m["body"]]


def _wait(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def _case(today: datetime) -> dict[str, Any]:
    return {
        "country": "SV",
        "direction": "outgoing",
        "kind": "mla",
        "legal_basis": "uncac",
        "offence_category": "bribery",
        "offence_date": f"{today.year - 2}-01-10",
        "counterpart": "ES",
        "requesting_authority": "bench",
        "conducting_authority": "bench",
        "subject": "bench",
        "facts_summary": "bench",
        "assistance_sought": "records",
        "purpose": "benchmark",
    }


def run() -> list[Result]:
    from app.ops import spawn_serve, start_local_server, stop_process
    from app.prefect_env import QUIET, free_port

    root = Path(tempfile.mkdtemp(prefix="rogatory-live-"))
    os.environ.update(QUIET)
    os.environ["ROGATORY_VAR"] = str(root)
    os.environ["ROGATORY_DATABASE_URL"] = f"sqlite:///{root / 'ledger.db'}"
    os.environ.pop("ROGATORY_CLOCK", None)
    port = free_port()
    server = start_local_server(port=port, home=root / "prefect")
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    try:
        serving = spawn_serve(root / "serve.log", poll=POLL_SECONDS, watch_every=600)
        try:
            latencies = _measure(root)
        finally:
            stop_process(serving)
    finally:
        stop_process(server)
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return [
        Result(
            "live_decision_to_notified_median_s", statistics.median(latencies), "s", 3.0, "lower"
        ),
        Result("live_decision_to_notified_p95_s", p95, "s", None, "lower"),
    ]


def _measure(root: Path) -> list[float]:
    from models import engine
    from models.clock import SystemClock
    from models.engine import Routings
    from models.ledger import Ledger
    from models.loader import load_all
    from models.queries import read_case_view
    from tasks.notify import announce_opened
    from tasks.orchestration import start_case_flow, wake_case_flow

    outbox = root / "outbox" / "outbox.jsonl"
    routings = Routings(load_all())
    clock = SystemClock()
    ledger = Ledger(migrate=True)
    latencies: list[float] = []
    try:
        while len(latencies) < DECISIONS:
            with ledger.transaction() as session:
                ref = engine.register(
                    session=session, clock=clock, routings=routings, data=_case(clock.now())
                ).reference
            start_case_flow(ledger, ref)
            _wait(lambda r=ref: len(_notices(outbox, r)) == 1, 120)
            for hop in (1, 2, 3, 4):
                if len(latencies) >= DECISIONS:
                    break
                _wait(lambda r=ref: _suspended(read_case_view(ledger, r).flow_run_id), 60)
                started = time.monotonic()
                with ledger.transaction() as session:
                    result = engine.decide(
                        session=session,
                        clock=clock,
                        routings=routings,
                        reference=ref,
                        outcome="forwarded",
                        hop=hop,
                    )
                # What the API does after a command commits: the new hop's notice, written in
                # the decision's transaction, goes at once; then the flow is woken (backstop).
                assert result.hop is not None
                announce_opened(ledger, ref, result.hop)
                view = read_case_view(ledger, ref)
                assert view.flow_run_id is not None
                wake_case_flow(view.flow_run_id, view)
                _wait(lambda r=ref, n=hop: len(_notices(outbox, r)) == n + 1, 120)
                latencies.append(time.monotonic() - started)
    finally:
        ledger.dispose()
    return latencies


def _suspended(run_id: str | None) -> bool:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    if run_id is None:
        return False
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    return state is not None and state.name == "Suspended"

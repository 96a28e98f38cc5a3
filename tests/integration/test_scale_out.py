"""Scale-out: Prefect server on PostgreSQL, ledger on PostgreSQL, two workers in a process pool.

This is how users grow beyond one machine (README, "Several machines"): the deployments come
from prefect.yaml, and any worker may run any case's next step.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, PostgresServer
from tests.integration.conftest import BIN, QUIET, start_prefect_server, stop, wait_for
from tests.integration.test_live_flows import intake

pytestmark = pytest.mark.integration

CASES = 6


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _outbox(var: Path) -> list[dict[str, Any]]:
    path = var / "outbox" / "outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_two_process_workers_share_the_cases_and_each_case_completes(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    prefect_db = postgres.create_database().replace("+psycopg", "+asyncpg")
    ledger_db = postgres.create_database()
    server = start_prefect_server(tmp_path / "prefect", database_url=prefect_db)
    var = tmp_path / "var"
    env = {
        **os.environ,
        **QUIET,
        "PREFECT_API_URL": server.url,
        "PREFECT_HOME": str(tmp_path / "client"),
        "ROGATORY_DATABASE_URL": ledger_db,
        "ROGATORY_VAR": str(var),
        "ROGATORY_HOME": str(REPO),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    }
    workers: list[subprocess.Popen[bytes]] = []
    try:
        _run([str(BIN / "prefect"), "work-pool", "create", "rogatory", "--type", "process"], env)
        _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], env)
        _run([str(BIN / "rogatory"), "db", "upgrade"], env)  # the one migration step
        for name in ("worker-a", "worker-b"):
            log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115
            workers.append(
                subprocess.Popen(
                    [
                        str(BIN / "prefect"),
                        "worker",
                        "start",
                        "--pool",
                        "rogatory",
                        "--name",
                        name,
                        "--limit",
                        "3",
                    ],
                    env=env,
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        refs = []
        for i in range(CASES):
            path = tmp_path / f"case-{i}.json"
            path.write_text(json.dumps(intake()))
            out = _run([str(BIN / "rogatory"), "request", "register", str(path), "--json"], env)
            refs.append(json.loads(out)["reference"])

        def announced(ref: str) -> int:
            return sum(1 for m in _outbox(var) if f"Case: {ref}\n" in m["body"])

        for hop, outcome in ((1, "forwarded"), (2, "forwarded"), (3, "refused")):
            for ref in refs:
                wait_for(
                    lambda r=ref, h=hop: announced(r) >= h,
                    timeout=240,
                    what=f"{ref} hop {hop} announced",
                )
                extra = ["--ground", "de_minimis"] if outcome == "refused" else []
                _run(
                    [
                        str(BIN / "rogatory"),
                        "decide",
                        ref,
                        "--outcome",
                        outcome,
                        "--hop",
                        str(hop),
                        *extra,
                    ],
                    env,
                )
        statuses = {
            ref: json.loads(_run([str(BIN / "rogatory"), "status", ref, "--json"], env))["status"]
            for ref in refs
        }
        assert statuses == dict.fromkeys(refs, "closed")

        def finished_runs() -> Counter[str]:
            counts: Counter[str] = Counter()
            for name in ("worker-a", "worker-b"):
                text = (tmp_path / f"{name}.log").read_text(errors="replace")
                counts[name] = len(re.findall(r"Finished in state Completed", text))
            return counts

        # Every case's run completes (the last execution after the refusal closes it).
        wait_for(
            lambda: sum(finished_runs().values()) >= CASES,
            timeout=240,
            what="every case's flow run to complete",
        )
        submitted = Counter()
        for name in ("worker-a", "worker-b"):
            text = (tmp_path / f"{name}.log").read_text(errors="replace")
            submitted[name] = len(re.findall(r"Beginning flow run '[A-Z]{2}-\d{4}-\d{6}'", text))
        assert submitted["worker-a"] > 0 and submitted["worker-b"] > 0, submitted
        titles = Counter((m["recipient"], m["title"]) for m in _outbox(var))
        assert max(titles.values()) == 1
    finally:
        for worker in workers:
            stop(worker)
        stop(server.process)

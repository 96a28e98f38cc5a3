"""Scale-out: Prefect server on PostgreSQL, ledger on PostgreSQL, two workers in a process pool.

This is how users grow beyond one machine, and the test follows README.md ("Running it",
"Several machines") literally: it runs the README's shell block for the deploying machine and for
each worker, with only the host names and paths swapped for this machine's. The workers know
nothing of the ledger: each flow run gets it from the deployment's job variables, and its apprise
config from the Prefect Secret block the README creates. The watcher is the watch-clock
deployment, run on a worker as the README says.
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


def readme_steps() -> dict[str, str]:
    """The README's "Several machines" shell block, as scripts keyed by their comment line."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("**Several machines.**") :]
    start = section.index("```sh\n") + 6
    block = section[start : section.index("\n```", start)]
    steps: dict[str, list[str]] = {}
    for line in block.splitlines():
        if line.startswith("# "):
            current = steps.setdefault(line[2:], [])
        else:
            current.append(line)
    return {comment: "\n".join(lines) for comment, lines in steps.items()}


def _here(script: str, swaps: dict[str, str]) -> str:
    """The README's script with its example hosts and paths swapped for this machine's."""
    for theirs, ours in swaps.items():
        script = script.replace(theirs, ours)
    return "set -e\n" + script


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


def _api(server_url: str, path: str, body: dict[str, Any]) -> Any:
    import httpx

    response = httpx.post(f"{server_url}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_two_process_workers_share_the_cases_and_each_case_completes(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    steps = readme_steps()
    deploying = next(s for c, s in steps.items() if c.startswith("on the machine that deploys"))
    working = next(s for c, s in steps.items() if c.startswith("on each worker machine"))
    prefect_db = postgres.create_database().replace("+psycopg", "+asyncpg")
    ledger_db = postgres.create_database()
    server = start_prefect_server(tmp_path / "prefect", database_url=prefect_db)
    var = tmp_path / "var"
    apprise_conf = tmp_path / "etc" / "apprise.conf"  # outside the checkout
    apprise_conf.parent.mkdir()
    apprise_conf.write_text((REPO / "config" / "apprise.conf").read_text())
    swaps = {
        "http://prefect-host:4200/api": server.url,
        "postgresql://rogatory@db/rogatory": ledger_db,
        "/etc/rogatory/apprise.conf": str(apprise_conf),
        "/shared/var": str(var),
    }
    assert all(theirs in deploying + working for theirs in swaps), "the README changed"
    # This machine's processes, with nothing of rogatory's configuration: the README sets it.
    bare = {k: v for k, v in os.environ.items() if not k.startswith(("ROGATORY_", "PREFECT_"))}
    bare.update(
        QUIET,
        PATH=f"{BIN}:{os.environ['PATH']}",
        PREFECT_HOME=str(tmp_path / "client"),
        PREFECT_WORKER_QUERY_SECONDS="1",  # pace only: a worker asks for work every second
        PREFECT_WORKER_PREFETCH_SECONDS="1",
        # The one master key of every machine (the README keeps it in a Secret block): without
        # it each process would make a key file in its own var/, this checkout's included.
        ROGATORY_MASTER_KEY=os.environ["ROGATORY_MASTER_KEY"],
    )
    _run(["bash", "-c", _here(deploying, swaps)], bare)
    # A clerk's commands on the deploying machine, with its exports (they word the hop notices).
    clerk = {
        **bare,
        "PREFECT_API_URL": server.url,
        "ROGATORY_DATABASE_URL": ledger_db,
        "ROGATORY_BASE_URL": "https://rogatory.example.org",
    }
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("worker-a", "worker-b"):
            log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115
            workers.append(
                subprocess.Popen(
                    ["bash", "-c", _here(working, swaps)],
                    env=bare,
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deployment = _api(server.url, "/deployments/filter", {})
        for d in deployment:
            env = d["job_variables"]["env"]
            assert env["ROGATORY_DATABASE_URL"] == ledger_db and "{{" not in json.dumps(env)
            assert env["ROGATORY_APPRISE_SECRET"] == "rogatory-apprise"

        refs = []
        for i in range(CASES):
            path = tmp_path / f"case-{i}.json"
            path.write_text(json.dumps(intake()))
            out = _run(["rogatory", "request", "register", str(path), "--json"], clerk)
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
                    ["rogatory", "decide", ref, "--outcome", outcome, "--hop", str(hop), *extra],
                    clerk,
                )
        statuses = {
            ref: json.loads(_run(["rogatory", "status", ref, "--json"], clerk))["status"]
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
        assert all("https://rogatory.example.org/cases/" in m["body"] for m in _outbox(var))

        runs = _api(server.url, "/flow_runs/filter", {"flow_runs": {"tags": {"all_": ["case"]}}})
        tags = {run["name"]: set(run["tags"]) for run in runs}
        for ref in refs:
            assert {"case", "country:SV", "kind:mla"} <= tags[ref]
            assert any(t.startswith("route:") for t in tags[ref])
            assert not any(t.startswith("holder:") for t in tags[ref]), "closed: held by nobody"

        # The watcher: the README's command for a sweep now, run by a worker, named for when.
        _run(["prefect", "deployment", "run", "watch_clock/watch-clock"], clerk)

        def swept() -> list[str]:
            found = _api(
                server.url,
                "/flow_runs/filter",
                {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}},
            )
            return [r["name"] for r in found if r["name"].startswith("sweep ")]

        names = wait_for(swept, timeout=180, what="a watch-clock sweep to complete")
        assert all(re.fullmatch(r"sweep \d{4}-\d{2}-\d{2} \d{2}:\d{2}", n) for n in names)
    finally:
        for worker in workers:
            stop(worker)
        stop(server.process)

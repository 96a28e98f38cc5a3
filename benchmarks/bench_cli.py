"""Commands that answer at once: `rogatory --help`, `status REF` and `decide` as whole processes.

Each command runs as a fresh process on a small prepared ledger (SQLite in a temporary folder,
no Prefect server anywhere), alternating with a bare `python -c "import sqlalchemy, pydantic"`:
what a command costs is its wall time beyond that floor, the median over RUNS pairs. `decide`
decides a different case each run, so every run records a real decision. The load average at
the start goes in every note: on a shared machine it says how much to trust the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import Result

RUNS = 9
WARMUP = 1
FLOOR = (sys.executable, "-c", "import sqlalchemy, pydantic")
BUDGETS = {"help": 0.25, "status": 0.4, "decide": 0.6}
"""Seconds beyond the floor: a clerk's command should answer before they look away."""
REPO = Path(__file__).resolve().parents[1]
INTAKE = """\
country: SV
direction: outgoing
kind: mla
legal_basis: uncac
offence_category: bribery
offence_date: '2024-05-10'
counterpart: ES
requesting_authority: Fiscalía General de la República
conducting_authority: Unidad Anticorrupción
subject: bribery of a public official in procurement
facts_summary: payments routed through a foreign account
assistance_sought: bank records
purpose: trace the payments
"""


def rogatory(*args: str) -> tuple[str, ...]:
    return (str(Path(sys.executable).parent / "rogatory"), *args)


def environment(root: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "ROGATORY_"))
    }
    env.update(
        ROGATORY_VAR=str(root / "var"),
        ROGATORY_DATABASE_URL=f"sqlite:///{root / 'ledger.db'}",
        ROGATORY_CONFIG_DIR=str(REPO / "config"),
    )
    return env


def prepare(root: Path, env: dict[str, str], cases: int) -> list[str]:
    """A fresh ledger holding `cases` registered requests; their references."""
    subprocess.run(rogatory("db", "upgrade"), env=env, check=True, capture_output=True)
    request = root / "request.yaml"
    request.write_text(INTAKE, encoding="utf-8")
    references = []
    for _ in range(cases):
        done = subprocess.run(
            rogatory("request", "register", str(request), "--json"),
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        references.append(_reference(done.stdout))
    return references


def _reference(output: str) -> str:
    return str(json.loads(output)["reference"])


def wall(argv: Sequence[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def beyond_floor(command: Callable[[int], Sequence[str]], env: dict[str, str]) -> float:
    """Median over RUNS of (command's wall time - the floor's), run in turn A B A B ..."""
    extra = []
    for run in range(WARMUP + RUNS):
        spent = wall(command(run), env)
        floor = wall(FLOOR, env)
        if run >= WARMUP:
            extra.append(spent - floor)
    return statistics.median(extra)


def run() -> list[Result]:
    root = Path(tempfile.mkdtemp(prefix="rogatory-cli-"))
    try:
        env = environment(root)
        references = prepare(root, env, cases=WARMUP + RUNS + 1)
        load = os.getloadavg()
        note = (
            f"median of {RUNS} whole-process runs beyond `python -c 'import sqlalchemy, "
            f"pydantic'`, no Prefect server; load average {load[0]:.2f} {load[1]:.2f} "
            f"{load[2]:.2f} on {os.cpu_count()} CPUs"
        )
        status = references[-1]
        commands: dict[str, Callable[[int], Sequence[str]]] = {
            "help": lambda run: rogatory("--help"),
            "status": lambda run: rogatory("status", status),
            "decide": lambda run: rogatory("decide", references[run], "--outcome", "forwarded"),
        }
        return [
            Result(
                f"cli_{name}_beyond_imports",
                round(beyond_floor(command, env), 3),
                "s",
                BUDGETS[name],
                "lower",
                note,
            )
            for name, command in commands.items()
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)

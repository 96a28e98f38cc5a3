"""Commands answer at once: each imports what it uses, and reads only the routings it needs.

Each test runs `rogatory` in a fresh Python process (imports are per process) against a small
SQLite ledger with no Prefect server, and looks at the modules it imported and the files it
opened: the parser imports no command's dependencies, `status` and `decide` never import Prefect,
httpx or NumPy, and a command on one case or one country opens no other country's file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.samples import intake

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("prefect", "httpx", "numpy", "holidays", "sqlalchemy", "pydantic", "models.loader")

PROBE = """
import builtins, json, sys
opened = []
real_open = builtins.open
def spying_open(file, *args, **kwargs):
    opened.append(str(file))
    return real_open(file, *args, **kwargs)
builtins.open = spying_open
import pathlib
real_read = pathlib.Path.read_bytes
def spying_read(self):
    opened.append(str(self))
    return real_read(self)
pathlib.Path.read_bytes = spying_read
from app.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules), "opened": opened}),
      file=sys.stderr)
"""


def run(*argv: str, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report: dict[str, object] = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return report


def imported(report: dict[str, object], *roots: str) -> list[str]:
    modules = report["modules"]
    assert isinstance(modules, list)
    return [m for m in modules if m in roots or m.startswith(tuple(r + "." for r in roots))]


def country_files_opened(report: dict[str, object]) -> set[str]:
    opened = report["opened"]
    assert isinstance(opened, list)
    return {Path(p).name for p in opened if Path(p).parent.name == "countries"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("startup")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ROGATORY_"))}
    env.update(
        ROGATORY_VAR=str(root / "var"),
        ROGATORY_DATABASE_URL=f"sqlite:///{root / 'ledger.db'}",
        ROGATORY_CONFIG_DIR=str(REPO / "config"),
    )
    rogatory = [sys.executable, "-m", "app.cli"]
    subprocess.run([*rogatory, "db", "upgrade"], env=env, check=True, capture_output=True)
    request = root / "request.json"
    request.write_text(json.dumps(intake()), encoding="utf-8")
    for _ in range(2):
        subprocess.run(
            [*rogatory, "request", "register", str(request)],
            env=env,
            check=True,
            capture_output=True,
            cwd=REPO,
        )
    return env


def test_help_imports_no_commands_dependencies(env):
    report = run("--help", env=env)

    assert imported(report, *HEAVY) == []


def test_a_commands_own_help_builds_its_options_from_its_model(env):
    report = run("decide", "--help", env=env)

    assert "models.commands" in imported(report, "models.commands")
    assert imported(report, "prefect", "httpx", "numpy", "holidays") == []


def test_status_reads_the_pinned_routing_from_the_ledger_and_no_file(env):
    report = run("status", "SV-2026-000001", env=env)

    assert imported(report, "prefect", "httpx", "numpy") == []
    assert country_files_opened(report) == set()


def test_decide_without_a_prefect_server_imports_neither_prefect_nor_httpx(env):
    report = run("decide", "SV-2026-000002", "--outcome", "forwarded", env=env)

    assert imported(report, "prefect", "httpx", "numpy") == []
    assert country_files_opened(report) == set()


def test_inbox_reads_its_countrys_file_alone(env):
    report = run("inbox", "SV", "fgr", env=env)

    assert country_files_opened(report) == {"sv.yaml"}


def test_routes_reads_its_countrys_file_alone(env):
    report = run("routes", "IT", env=env)

    assert country_files_opened(report) == {"it.yaml"}

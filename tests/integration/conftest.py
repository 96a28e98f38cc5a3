"""Live fixtures: a real Prefect server and real `rogatory serve` processes, on loopback.

The server starts once per test worker (about 20 s); each test gets its own ledger, outbox and
serving process, all stopped by their PIDs at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, _free_port

BIN = Path(sys.executable).parent
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "INFO",
}


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class PrefectServer:
    url: str
    process: subprocess.Popen[bytes]


def start_prefect_server(home: Path, *, database_url: str | None = None) -> PrefectServer:
    port = _free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **QUIET,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": database_url
        or f"sqlite+aiosqlite:///{home / 'prefect.db'}",
    }
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"prefect server died: {(home / 'server.log').read_text()[-2000:]}"
            )
        try:
            return httpx.get(url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout=150, what="the Prefect server")
    return PrefectServer(url, process)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    server = start_prefect_server(tmp_path_factory.mktemp("prefect"))
    yield server
    stop(server.process)


@dataclass
class Site:
    """One installation: its ledger, outbox, environment, and the processes it runs."""

    root: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def outbox(self) -> list[dict[str, Any]]:
        path = self.root / "var" / "outbox" / "outbox.jsonl"
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(BIN / "rogatory"), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"rogatory {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    def serve(self, *extra: str) -> subprocess.Popen[bytes]:
        log = open(self.root / "serve.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [str(BIN / "rogatory"), "serve", "--poll", "1", "--watch-every", "600", *extra],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        wait_for(
            lambda: "deployments are being served" in self.log("serve.log"),
            timeout=120,
            what="rogatory serve to serve its deployments",
        )
        return process

    def log(self, name: str) -> str:
        path = self.root / name
        return path.read_text(errors="replace") if path.exists() else ""

    def register(self, data: dict[str, Any]) -> str:
        path = self.root / f"request-{len(list(self.root.glob('request-*')))}.json"
        path.write_text(json.dumps(data))
        done = self.cli("request", "register", str(path), "--json")
        return str(json.loads(done.stdout)["reference"])

    def notices(self, reference: str) -> list[dict[str, Any]]:
        return [m for m in self.outbox if f"Case: {reference}\n" in m["body"]]


@pytest.fixture
def site(tmp_path: Path, prefect_server: PrefectServer) -> Iterator[Site]:
    env = {
        **os.environ,
        **QUIET,
        "PREFECT_API_URL": prefect_server.url,
        "PREFECT_HOME": str(tmp_path / "prefect-client"),
        "ROGATORY_VAR": str(tmp_path / "var"),
        "ROGATORY_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
    }
    env.pop("ROGATORY_CLOCK", None)
    site = Site(tmp_path, env)
    site.cli("db", "upgrade")  # the one explicit migration step, as an operator runs it
    yield site
    for process in site.processes:
        stop(process)

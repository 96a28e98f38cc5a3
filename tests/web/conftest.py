"""A real workspace for the browser tests: `rogatory web` over a SQLite ledger, and Chromium.

The server is the command a ministry runs, started as a process on a free loopback port and
stopped by its PID. The ledger holds one account per role and a handful of Salvadoran cases,
one of them entered late so that its first hop is overdue now. The browser is Debian's
`chromium-headless-shell` driven by pytest-playwright; without it the browser tests are skipped
with the reason, and with ROGATORY_REQUIRE_BROWSER=1 (CI) that absence fails the run instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.prefect_env import free_port
from app.service import Service
from models import identity
from models.clock import SystemClock
from models.commands import Register
from models.identity import Grant, RoleName
from models.ledger import Ledger
from tasks.sweep import sweep_now
from tests.samples import intake

PASSWORD = "a long enough passphrase"
ACCOUNTS: dict[str, Grant] = {
    "clerk-fgr": Grant(RoleName.CLERK, "SV", "fgr"),
    "clerk-csj": Grant(RoleName.CLERK, "SV", "csj"),
    "clerk-mjsp": Grant(RoleName.CLERK, "SV", "mjsp"),
    "coord-sv": Grant(RoleName.COORDINATOR, "SV"),
    "auditor-sv": Grant(RoleName.AUDITOR, "SV"),
    "ministry-sv": Grant(RoleName.MINISTRY, "SV"),
    "admin": Grant(RoleName.ADMIN),
}
BROWSERS = ("/usr/bin/chromium-headless-shell", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Workspace:
    base_url: str
    root: Path
    ledger_url: str
    refs: dict[str, str]
    """Case name to reference: overdue, recent, confidential, sealed."""
    env: dict[str, str]

    def ledger(self) -> Ledger:
        return Ledger(self.ledger_url)


def _seed(ledger: Ledger) -> dict[str, str]:
    now = SystemClock().now()
    with ledger.transaction() as session:
        for name, grant in ACCOUNTS.items():
            identity.add_account(
                session, name=name, grants=[grant], now=now, actor="test", password=PASSWORD
            )
    service = Service(ledger)
    local = identity.local_caller("test")
    cases = {
        "recent": (intake(), None),
        "overdue": (intake(counterpart="US"), (now - timedelta(days=90)).date()),
        "confidential": (intake(confidential=True, counterpart="FR"), None),
        "sealed": (
            intake(
                confidential=True,
                kind="extradition",
                direction="incoming",
                persons=["the person sought"],
            ),
            None,
        ),
    }
    refs = {}
    for name, (request, on) in cases.items():
        refs[name] = service.submit(Register(request=request, on=on), local).reference
    return refs


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """`rogatory web` on a fresh ledger, for the tests of one module."""
    root = tmp_path_factory.mktemp("workspace")
    config = root / "config"  # the ministry publishes here, never into the repository
    shutil.copytree(Path(__file__).parents[2] / "config", config)
    url = f"sqlite:///{root / 'ledger.db'}"
    with Ledger(url, migrate=True) as ledger:
        refs = _seed(ledger)
        sweep_now(ledger, thresholds=[])  # the overdue hop's rungs fire: the board has them
    port = free_port()
    env = {
        **os.environ,
        "ROGATORY_DATABASE_URL": url,
        "ROGATORY_VAR": str(root),
        "ROGATORY_COOKIE_SECURE": "0",
        "ROGATORY_CONFIG_DIR": str(config),
        "ROGATORY_BASE_URL": f"http://127.0.0.1:{port}",
        "PREFECT_API_URL": "",
    }
    log = open(root / "web.log", "wb")  # noqa: SIM115 (the server writes to it until stopped)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "rogatory"), "web", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(base):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"rogatory web did not start: {(root / 'web.log').read_text()}")
            time.sleep(0.2)
        yield Workspace(base, root, url, refs, env)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def _browser_executable() -> str | None:
    return next((b for b in BROWSERS if shutil.which(b)), None)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch arguments, pointed at Debian's Chromium (no download)."""
    executable = _browser_executable()
    if executable is None:
        reason = (
            "no Chromium for the browser tests: apt-get install chromium-headless-shell "
            "(.ci/run does)"
        )
        if os.environ.get("ROGATORY_REQUIRE_BROWSER") == "1":
            pytest.fail(f"ROGATORY_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return {**browser_type_launch_args, "executable_path": executable, "args": CHROMIUM_ARGS}


@pytest.fixture
def sign_in(page: Any, workspace: Workspace) -> Any:
    """Sign `page` (or another page) in as an account, through the sign-in form, as a person
    would."""

    def as_(name: str, page: Any = page) -> Any:
        page.goto(workspace.base_url + "/")
        page.get_by_label("Username").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        return page

    return as_


def shoot(page: Any, name: str) -> None:
    """Save a screenshot of `page` for the README when ROGATORY_SCREENSHOTS names a folder."""
    folder = os.environ.get("ROGATORY_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=False)

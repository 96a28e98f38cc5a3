"""Shared fixtures: a ledger on SQLite and on a throwaway PostgreSQL server, clocks, routings.

The PostgreSQL server is started once per test worker from the PostgreSQL 15 binaries
(`initdb`, `pg_ctl`), as the `postgres` user when running as root, and stopped by its PID.
Without the binaries its tests are skipped with the reason; with ROGATORY_REQUIRE_POSTGRES=1
(CI) that absence fails the run instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from models.clock import FixedClock

if TYPE_CHECKING:
    from models.engine import Routings
    from models.ledger import Ledger

REPO = Path(__file__).resolve().parent.parent
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


# Properties are checked by their examples, never by the wall clock: on a loaded two-core CI
# machine a deadline or a "too slow" health check fails a property that holds.
settings.register_profile("rogatory", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rogatory")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Personal fields are sealed with a key the tests fix, instead of a key file in ./var.
    os.environ.setdefault("ROGATORY_MASTER_KEY", "cm9nYXRvcnktdGVzdHMtbWFzdGVyLWtleS0zMmJ5dGU=")


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in PG_BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A throwaway PostgreSQL cluster on loopback; `url(db)` for each fresh database."""

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.root = Path(tempfile.mkdtemp(prefix="rogatory-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        as_root = os.geteuid() == 0
        prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        if as_root:
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o700)
        subprocess.run(
            [
                *prefix,
                initdb,
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *prefix,
                pg_ctl,
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-w",
                "start",
                "-o",
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            ],
            check=True,
            capture_output=True,
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)  # fast shutdown
        for _ in range(100):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        reason = f"PostgreSQL not available: {exc} {detail.decode(errors='replace')[:300]}"
        if os.environ.get("ROGATORY_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"ROGATORY_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty ledger database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    from models.ledger import Ledger

    ledger = Ledger(database_url, migrate=True)
    yield ledger
    ledger.dispose()


@pytest.fixture(scope="session")
def routings() -> Routings:
    from models.engine import Routings
    from models.loader import load_all

    return Routings(load_all(REPO / "config"))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # a Monday


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole session (Prefect's test harness)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield

"""Flow tests: every one runs against the session's one Prefect test server (tests/conftest.py)
and a fresh installation of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.ledger import Ledger


@pytest.fixture(autouse=True)
def harness(prefect_harness: None) -> None:
    """The session's test server, for every flow test."""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    monkeypatch.setenv("ROGATORY_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("ROGATORY_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.delenv("ROGATORY_APPRISE_CONFIG", raising=False)
    monkeypatch.delenv("ROGATORY_CLOCK", raising=False)
    monkeypatch.delenv("ROGATORY_BASE_URL", raising=False)
    return Ledger(migrate=True)

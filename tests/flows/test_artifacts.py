"""What `audit_report` and `watch_clock` show in the Prefect UI, read back from the test server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.artifacts import Artifact

from flows.audit_report import audit_report
from flows.watch_clock import watch_clock
from models import engine
from models.clock import FixedClock
from models.engine import Routings
from models.ledger import Ledger
from tasks.artifacts import (
    HEADLINES_KEY,
    MOST_ROWS,
    REPORT_LINK_KEY,
    RISKIEST_KEY,
    SWEEP_KEY,
    publish_sweep_artifact,
    riskiest_rows,
)
from tests.samples import intake


def _register(ledger: Ledger, routings: Routings, *, days_ago: int, **changes: Any) -> str:
    now = datetime.now(UTC)
    with ledger.transaction() as session:
        return engine.register(
            session=session,
            clock=FixedClock(now),
            routings=routings,
            data=intake(**changes),
            on=now - timedelta(days=days_ago),
        ).reference


def _latest(key: str) -> Any:
    artifact = Artifact.get(key)
    assert artifact is not None, f"no artifact {key!r}"
    return artifact


def test_audit_report_publishes_headlines_riskiest_cases_and_a_link_without_secrets(
    site: Ledger, routings: Routings, tmp_path: Path
) -> None:
    shown = _register(site, routings, days_ago=400)
    secret = _register(site, routings, days_ago=400, confidential=True)
    written = audit_report(out_dir=str(tmp_path / "reports"), formats=("html", "json"))
    assert written["artifacts"] == [HEADLINES_KEY, RISKIEST_KEY, REPORT_LINK_KEY]

    headlines = _latest(HEADLINES_KEY)
    assert headlines.type == "markdown"
    assert "## Headline figures" in headlines.data and "| open cases | 2 |" in headlines.data
    assert all(line in headlines.data for line in written["headlines"])

    table = _latest(RISKIEST_KEY)
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert table.type == "table"
    assert [r["reference"] for r in rows] == [shown]
    assert set(rows[0]) == {
        "reference",
        "country",
        "holder",
        "step",
        "prescription_date",
        "days_to_prescription",
        "risk",
    }
    assert secret not in str(table.data) and secret not in headlines.data
    assert "1 confidential case(s) left out" in (table.description or "")

    link = _latest(REPORT_LINK_KEY)
    html = next(f for f in written["files"] if f.endswith(".html"))
    assert Path(html).resolve().as_uri() in link.data  # Prefect stores a link as markdown


def test_the_report_link_is_the_workspace_audit_page_when_the_base_url_is_set(
    site: Ledger, routings: Routings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROGATORY_BASE_URL", "https://rogatory.example.org/")
    audit_report(out_dir=str(tmp_path / "reports"), formats=("json",))
    assert "https://rogatory.example.org/audit" in _latest(REPORT_LINK_KEY).data


def test_riskiest_cases_are_bounded_and_set_prescribed_ones_apart() -> None:
    register = [
        {
            "reference": f"SV-2026-{i:06d}",
            "country": "SV",
            "authority": "fgr",
            "step": "investigation",
            "prescription_date": "2027-01-01",
            "days_to_prescription": 30,
            "risk": 0.5,
            "prescribed": i < 3,
        }
        for i in range(MOST_ROWS + 20)
    ]
    rows = riskiest_rows(register, hidden={"SV-2026-000010"})
    assert len(rows) == MOST_ROWS
    assert {"SV-2026-000000", "SV-2026-000010"}.isdisjoint(r["reference"] for r in rows)


def test_watch_clock_publishes_what_its_sweep_recorded_and_sent(
    site: Ledger, routings: Routings
) -> None:
    _register(site, routings, days_ago=21)
    summary = watch_clock(reconcile=False)
    sweep = _latest(SWEEP_KEY)
    assert sweep.type == "markdown"
    assert f"| rungs recorded | {summary['rungs_recorded']} |" in sweep.data
    assert f"| deliveries sent | {summary['sent']} |" in sweep.data
    assert "| deliveries failed (kept pending, retried with backoff) | 0 |" in sweep.data
    assert "| cases with problems (see `rogatory problems`) | 0 |" in sweep.data


def test_no_artifact_outside_a_flow_run() -> None:
    assert publish_sweep_artifact.fn({"rungs_recorded": 1}) is None

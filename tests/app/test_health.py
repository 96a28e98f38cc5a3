"""`rogatory health` (exit 0 while swept, 2 once stale), `GET /api/health`'s sweep status, the
Prefect automation as rogatory builds it, and the watcher-down flow's effect on the outbox.

The command runs in-process against a fresh ledger (a SQLite file, then a PostgreSQL database)
on the wall clock: heartbeats are recorded as of minutes ago.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from prefect.events.actions import RunDeployment
from prefect.events.schemas.automations import EventTrigger, Posture

import app.cli
from app.api import create_app
from app.health import AUTOMATION_NAME, watcher_automation
from models.clock import SystemClock
from models.ledger import Ledger
from tasks.notify import read_outbox
from tasks.sweep import record_and_send_watcher_down, sweep_now


@pytest.fixture
def rogatory(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """`rogatory ...` in this process on `ledger`: (exit code, stdout)."""
    monkeypatch.setenv("ROGATORY_DATABASE_URL", ledger.engine.url.render_as_string(False))
    monkeypatch.delenv("ROGATORY_WATCHER_STALE_AFTER_S", raising=False)
    monkeypatch.delenv("ROGATORY_CLOCK", raising=False)
    if "app.health" not in app.cli.COMMAND_MODULES:
        monkeypatch.setattr(app.cli, "COMMAND_MODULES", (*app.cli.COMMAND_MODULES, "app.health"))

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = app.cli.main(list(args))
        return code, capsys.readouterr().out

    return run


def swept(ledger: Ledger, minutes_ago: float) -> None:
    sweep_now(ledger, thresholds=[], now=datetime.now(UTC) - timedelta(minutes=minutes_ago))


def test_health_exits_two_when_no_sweep_was_ever_recorded(rogatory):
    code, out = rogatory("health")
    assert code == 2 and out.startswith("STALE: no successful sweep recorded (threshold 15 min)")


def test_health_is_ok_after_a_recent_sweep_and_says_by_whom(ledger: Ledger, rogatory):
    swept(ledger, 2)
    code, out = rogatory("health")
    assert code == 0
    assert out.startswith("ok: last successful sweep 2 min ago") and "by rogatory watch" in out
    assert "last failed sweep: none" in out and "deliveries owed: 0" in out


def test_health_turns_stale_past_the_threshold_given_or_configured(
    ledger: Ledger, rogatory, monkeypatch: pytest.MonkeyPatch
):
    swept(ledger, 20)
    assert rogatory("health")[0] == 2
    assert rogatory("health", "--stale-after", "30m")[0] == 0
    assert rogatory("health", "--stale-after", "600")[0] == 2
    monkeypatch.setenv("ROGATORY_WATCHER_STALE_AFTER_S", "1500")
    assert rogatory("health")[0] == 0


def test_health_json_carries_ages_and_counts_only(ledger: Ledger, rogatory):
    swept(ledger, 20)
    code, out = rogatory("health", "--json", "--stale-after", "15m")
    report = json.loads(out)
    assert code == 2
    assert (report["status"], report["stale"], report["stale_after_s"]) == ("stale", True, 900)
    assert 1195 <= report["age_s"] <= 1205 and report["last_ok_by"] == "rogatory watch"
    assert report["last_failure"] is None and report["deliveries_owed"] == 0


def test_health_shows_the_last_failed_sweep_and_its_error(
    ledger: Ledger, rogatory, monkeypatch: pytest.MonkeyPatch
):
    swept(ledger, 3)

    def broken(**kwargs: object) -> None:
        raise RuntimeError("database is locked")

    import tasks.sweep

    monkeypatch.setattr(tasks.sweep, "sweep_rungs", broken)
    with pytest.raises(RuntimeError):
        swept(ledger, 1)
    code, out = rogatory("health")
    assert code == 0  # the success three minutes ago is within the threshold
    assert "(after the last success): RuntimeError: database is locked" in out


def test_a_stale_after_that_is_no_duration_is_a_usage_error(rogatory):
    with pytest.raises(SystemExit) as exited:
        rogatory("health", "--stale-after", "soon")
    assert exited.value.code == 2


# -- GET /api/health -------------------------------------------------------------------------------


def api(ledger: Ledger) -> TestClient:
    return TestClient(create_app(ledger, clock=SystemClock(), wake=lambda c, r: None))


def test_api_health_stays_200_and_reports_only_the_sweeps_age(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("ROGATORY_WATCHER_STALE_AFTER_S", raising=False)
    client = api(ledger)
    never = client.get("/api/health")
    assert never.status_code == 200
    assert never.json() == {
        "status": "ok",
        "sweep": {"age_s": None, "stale": True, "stale_after_s": 900},
    }
    swept(ledger, 5)
    body = client.get("/api/health").json()
    assert set(body["sweep"]) == {"age_s", "stale", "stale_after_s"}
    assert 295 <= body["sweep"]["age_s"] <= 305 and body["sweep"]["stale"] is False


def test_api_health_strict_is_200_while_the_sweep_is_fresh(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ROGATORY_WATCHER_STALE_AFTER_S", "600")
    swept(ledger, 5)
    fresh = api(ledger).get("/api/health?strict=1")
    assert fresh.status_code == 200 and fresh.json()["sweep"]["stale"] is False


def test_api_health_strict_answers_503_with_the_sweep_status(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ROGATORY_WATCHER_STALE_AFTER_S", "600")
    swept(ledger, 20)
    client = api(ledger)
    stale = client.get("/api/health?strict=1")
    assert stale.status_code == 503
    assert stale.json()["status"] == "stale" and stale.json()["sweep"]["stale"] is True
    assert client.get("/api/health").status_code == 200


# -- the automation and the watcher-down flow ------------------------------------------------------


def test_the_automation_runs_watcher_down_when_no_watch_clock_run_completes_in_time():
    deployment = uuid4()
    automation = watcher_automation(deployment_id=deployment, within=timedelta(minutes=15))
    trigger = automation.trigger
    assert automation.name == AUTOMATION_NAME and automation.enabled
    assert isinstance(trigger, EventTrigger) and trigger.posture == Posture.Proactive
    assert trigger.expect == {"prefect.flow-run.Completed"}
    assert (trigger.within, trigger.threshold) == (timedelta(seconds=900), 1)
    assert trigger.match_related.model_dump() == {  # type: ignore[union-attr]
        "prefect.resource.role": "flow",
        "prefect.resource.name": "watch_clock",
    }
    [action] = automation.actions
    assert isinstance(action, RunDeployment) and action.deployment_id == deployment


def test_the_watcher_down_flow_tells_admin_and_each_coordinator_once_an_hour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ROGATORY_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("ROGATORY_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.delenv("ROGATORY_APPRISE_CONFIG", raising=False)
    monkeypatch.delenv("ROGATORY_CLOCK", raising=False)
    with Ledger(migrate=True) as ledger:
        swept(ledger, 30)
    first = record_and_send_watcher_down.fn("no watch_clock run for 900 s")
    second = record_and_send_watcher_down.fn("no watch_clock run for 900 s")
    assert (first["recorded"], first["sent"], second["recorded"], second["sent"]) == (
        True,
        1,
        False,
        0,
    )
    outbox = read_outbox(tmp_path / "var" / "outbox")
    told = Counter(m["recipient"] for m in outbox)
    assert told["admin"] == 1 and told["sv-coordination"] == 1 and len(told) == 11
    assert set(told.values()) == {1}
    [message] = [m for m in outbox if m["recipient"] == "admin"]
    assert message["title"] == "Watcher down: the clock has not been swept"
    assert "Why: no watch_clock run for 900 s" in message["body"]
    assert "(30 min ago)" in message["body"] and message["type"] == "failure"


def test_the_variable_named_in_the_help_is_the_one_the_heartbeat_reads():
    from app.health import STALE_AFTER_VARIABLE
    from models.heartbeat import STALE_AFTER_VARIABLE as READ

    assert STALE_AFTER_VARIABLE == READ

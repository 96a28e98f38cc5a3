"""One bad case never stops the rest: it becomes a recorded problem, told once, resolved later.

The bad case here has a pinned routing snapshot that cannot be read (as Italian and Portuguese
cases once had). The sweep must still record and send every other case's alerts, the audit
report must still be written without it, and the admin and the country's coordinator must be
told once, however many sweeps meet the problem.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from models import engine
from models.clock import FixedClock
from models.contacts import contact_tags, outbox_config
from models.engine import Routings
from models.ledger import CaseProblem, Delivery, Ledger, Request, RoutingVersion
from models.loader import load_all
from models.metrics import Filters
from models.problems import listed
from tasks.notify import read_outbox, send_pending
from tasks.report import build_report
from tasks.sweep import sweep_now
from tests.samples import intake

REPO = Path(__file__).resolve().parents[2]
OPENED = datetime(2026, 3, 2, 15, tzinfo=UTC)


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "apprise.conf"
    config.write_text(outbox_config(contact_tags(load_all(REPO / "config").values())))
    monkeypatch.setenv("ROGATORY_APPRISE_CONFIG", str(config))
    monkeypatch.setenv("ROGATORY_OUTBOX", str(tmp_path / "outbox"))
    return tmp_path / "outbox"


def _two_cases(ledger: Ledger, routings: Routings) -> tuple[str, str]:
    clock = FixedClock(OPENED)
    with ledger.transaction() as session:
        good = engine.register(session=session, clock=clock, routings=routings, data=intake())
        bad = engine.register(
            session=session,
            clock=clock,
            routings=routings,
            data=intake(country="GT", direction="incoming", counterpart="US"),
        )
    return good.reference, bad.reference


def _break_snapshot(ledger: Ledger, country: str) -> str:
    with ledger.transaction() as session:
        version = session.scalar(
            select(RoutingVersion.version).where(RoutingVersion.country == country)
        )
        session.execute(
            update(RoutingVersion)
            .where(RoutingVersion.version == version)
            .values(yaml_text="routes: [unclosed")
        )
    return str(version)


def test_a_case_that_cannot_be_swept_is_told_once_and_the_others_go_out(
    ledger: Ledger, routings: Routings, outbox: Path
) -> None:
    good, bad = _two_cases(ledger, routings)
    _break_snapshot(ledger, "GT")
    later = OPENED + timedelta(days=40)
    for n in range(3):
        rungs, _ = sweep_now(ledger, thresholds=[30], now=later + timedelta(hours=n))
        assert [f.reference for f in rungs.failures] == [bad]
        send_pending(ledger=ledger, now=later + timedelta(hours=n))
    sent = read_outbox(outbox)
    assert any(m["title"].startswith(f"Escalation: {good}") for m in sent)
    told = [m for m in sent if m["title"].startswith(f"Problem: {bad}")]
    assert {m["recipient"] for m in told} == {"admin", "gt-coordination"}  # once each
    assert "YAML syntax" in told[0]["body"] and told[0]["type"] == "failure"
    with ledger.session() as session:
        (problem,) = listed(session)
    assert (problem["reference"], problem["stage"], problem["occurrences"]) == (bad, "sweep", 3)


def test_a_problem_is_resolved_once_the_case_goes_through_again(
    ledger: Ledger, routings: Routings, outbox: Path
) -> None:
    _, bad = _two_cases(ledger, routings)
    version = _break_snapshot(ledger, "GT")
    later = OPENED + timedelta(days=40)
    sweep_now(ledger, thresholds=[30], now=later)
    fixed = routings.for_country("GT").text
    with ledger.transaction() as session:
        session.execute(
            update(RoutingVersion).where(RoutingVersion.version == version).values(yaml_text=fixed)
        )
    rungs, _ = sweep_now(ledger, thresholds=[30], now=later + timedelta(hours=1))
    assert rungs.failures == [] and bad in rungs.worked
    with ledger.session() as session:
        assert listed(session) == []
        resolved = session.scalar(select(CaseProblem.resolved_at))
    assert resolved == later + timedelta(hours=1)


def test_the_report_leaves_out_a_case_it_cannot_read_and_says_so(
    ledger: Ledger, routings: Routings
) -> None:
    _, bad = _two_cases(ledger, routings)
    _break_snapshot(ledger, "GT")
    with ledger.session() as session:
        report = build_report(
            session=session,
            routings=Routings({}),
            filters=Filters(),
            now=OPENED + timedelta(days=5),
        )
    assert [row["reference"] for row in report["left_out"]] == [bad]
    assert "YAML syntax" in report["left_out"][0]["problem"]
    assert report["headlines"][0].startswith("1 case(s) are left out of this report")
    assert report["summary"]["cases"] == 1


def test_a_broken_country_file_does_not_stop_the_sweep(
    ledger: Ledger, routings: Routings, outbox: Path, tmp_path: Path, monkeypatch
) -> None:
    good, _ = _two_cases(ledger, routings)
    broken = tmp_path / "config"
    shutil.copytree(REPO / "config", broken)
    (broken / "countries" / "sv.yaml").write_text("country: SV\nroutes: [")
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(broken))
    rungs, _ = sweep_now(ledger, thresholds=[30], now=OPENED + timedelta(days=40))
    assert rungs.failures == [] and rungs.created == 2
    with ledger.session() as session:
        statuses = session.execute(
            select(Request.reference, Delivery.status).join(Request).order_by(Delivery.id)
        ).all()
    assert (good, "pending") in statuses

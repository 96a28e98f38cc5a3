"""The flows under Prefect's test harness: the session's one shared temporary server and each
test's own ledger (tests/flows/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from flows.audit_report import audit_report
from flows.route_request import route_request
from flows.simulate import simulate
from flows.watch_clock import watch_clock
from models import engine
from models.clock import FixedClock
from models.engine import Routings
from models.errors import CommandRejected
from models.ledger import Delivery, Ledger, Request
from tasks.notify import read_outbox
from tests.samples import intake


def _register_overdue(ledger: Ledger, routings: Routings, days_ago: int) -> str:
    now = datetime.now(UTC)
    clock = FixedClock(now)
    with ledger.transaction() as session:
        result = engine.register(
            session=session,
            clock=clock,
            routings=routings,
            data=intake(),
            on=now - timedelta(days=days_ago),
        )
    return result.reference


def test_watch_clock_sends_the_highest_due_rung_to_the_outbox_once(
    site: Ledger, routings: Routings
):
    reference = _register_overdue(site, routings, days_ago=21)
    first = watch_clock(reconcile=False)
    again = watch_clock(reconcile=False)
    # The hop (10bd, 21 days ago) owes its reminder and its overdue rung at once: only the
    # overdue goes, after the "new hop" notice its registration recorded.
    assert (first["rungs_recorded"], first["rungs_superseded"], first["sent"]) == (1, 1, 2)
    assert again["rungs_recorded"] == 0 and again["sent"] == 0
    lines = [m for m in read_outbox() if f"Case: {reference}\n" in m["body"]]
    assert [m["title"].split(":")[0] for m in lines] == ["New", "Overdue", "Overdue"]
    assert {m["recipient"] for m in lines} == {"sv-fgr", "sv-coordination"}
    assert {m["type"] for m in lines} == {"info", "warning"}
    with site.session() as session:
        statuses = sorted(session.scalars(select(Delivery.status)))
    assert statuses == ["sent", "sent", "superseded"]


def test_failed_deliveries_stay_pending_with_backoff(
    site: Ledger, routings: Routings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    config = tmp_path / "empty.conf"
    config.write_text("# no services: every delivery fails\n")
    monkeypatch.setenv("ROGATORY_APPRISE_CONFIG", str(config))
    _register_overdue(site, routings, days_ago=21)
    summary = watch_clock(reconcile=False)
    # The overdue rung and the "new hop" notice recorded at registration.
    assert summary["sent"] == 0 and summary["send_failures"] == summary["rungs_recorded"] + 1 == 2
    with site.session() as session:
        rows = session.execute(
            select(
                Delivery.status, Delivery.attempts, Delivery.next_attempt_at, Delivery.last_error
            )
        ).all()
    assert sorted(r.status for r in rows) == ["pending", "pending", "superseded"]
    rows = [r for r in rows if r.status == "pending"]
    assert all(r.attempts == 1 and r.next_attempt_at > datetime.now(UTC) for r in rows)
    assert all("no apprise service serves tag" in r.last_error for r in rows)


def test_route_request_returns_at_once_for_a_closed_case(site: Ledger, routings: Routings):
    clock = FixedClock(datetime.now(UTC))
    with site.transaction() as session:
        ref = engine.register(
            session=session, clock=clock, routings=routings, data=intake()
        ).reference
        engine.withdraw(session=session, clock=clock, routings=routings, reference=ref)
    assert route_request(ref) == f"{ref} closed: withdrawn"


def test_audit_report_writes_the_report_and_tells_the_auditors(
    site: Ledger, routings: Routings, tmp_path: Path
):
    _register_overdue(site, routings, days_ago=21)
    written = audit_report(out_dir=str(tmp_path / "reports"), formats=("html", "json"))
    names = sorted(Path(f).name for f in written["files"])
    assert names == ["report.html", "report.json"]
    assert written["announced"] is True
    summary = [m for m in read_outbox() if m["recipient"] == "auditors"]
    assert len(summary) == 1 and written["folder"] in summary[0]["body"]


def test_simulate_flow_fills_the_configured_ledger_and_refuses_to_mix(site: Ledger):
    summary = simulate(years=1, per_year=40, seed=3, countries=["SV", "US"])
    assert summary["cases"] == 40 and summary["transitions"] >= 40
    assert set(summary["execution_rate"]) == {"incoming", "outgoing"}
    with site.session() as session:
        assert set(session.scalars(select(Request.country))) == {"SV", "US"}
    with pytest.raises(CommandRejected, match="already holds 40 cases"):
        simulate(years=1, per_year=40, seed=3)
    assert simulate(years=1, per_year=10, seed=4, append=True)["cases"] == 10

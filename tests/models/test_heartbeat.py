"""The watcher's heartbeat: every sweep leaves a row, failed ones with their error, and health
(stale or not, the backlog) is read from those rows. A SQLite file, then a PostgreSQL database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from models import deliveries
from models.heartbeat import (
    DEFAULT_STALE_AFTER,
    parse_duration,
    watcher_down_key,
    watcher_down_notice,
    watcher_health,
)
from models.ledger import Delivery, Ledger, SweepRun
from models.notices import Notice
from tasks import sweep as sweep_task
from tasks.sweep import alert_watcher_down, sweep_now

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def heartbeats(ledger: Ledger) -> list[SweepRun]:
    with ledger.session() as session:
        return list(session.scalars(select(SweepRun).order_by(SweepRun.started_at)))


def health_at(ledger: Ledger, now: datetime, stale_after: timedelta = DEFAULT_STALE_AFTER):
    with ledger.session() as session:
        return watcher_health(session, now=now, stale_after=stale_after)


def test_a_sweep_leaves_a_heartbeat_naming_who_ran_it(ledger: Ledger):
    sweep_now(ledger, thresholds=[30], now=NOW)
    sweep_now(ledger, thresholds=[30], now=NOW + timedelta(minutes=5), ran_by="flow-run:abc")
    rows = heartbeats(ledger)
    assert [(r.ok, r.ran_by, r.error) for r in rows] == [
        (True, "rogatory watch", None),
        (True, "flow-run:abc", None),
    ]
    assert rows[0].started_at == NOW and rows[0].finished_at >= NOW
    assert (rows[0].rungs_recorded, rows[0].alerts_recorded, rows[0].failures) == (0, 0, 0)


def test_a_failed_sweep_is_recorded_with_its_error_and_still_raises(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
):
    def broken(**kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(sweep_task, "sweep_rungs", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        sweep_now(ledger, thresholds=[30], now=NOW)
    [row] = heartbeats(ledger)
    assert (row.ok, row.error) == (False, "RuntimeError: disk full")
    found = health_at(ledger, NOW)
    assert found.stale and found.last_ok is None and found.failing_since_ok


def test_heartbeats_older_than_thirty_days_are_pruned_by_the_next_sweep(ledger: Ledger):
    sweep_now(ledger, thresholds=[], now=NOW - timedelta(days=31))
    sweep_now(ledger, thresholds=[], now=NOW - timedelta(days=29))
    sweep_now(ledger, thresholds=[], now=NOW)
    assert [r.started_at for r in heartbeats(ledger)] == [NOW - timedelta(days=29), NOW]


def test_the_watcher_is_stale_once_no_sweep_succeeded_within_the_threshold(ledger: Ledger):
    assert health_at(ledger, NOW).stale  # never swept
    sweep_now(ledger, thresholds=[], now=NOW)
    fresh = health_at(ledger, NOW + timedelta(minutes=14))
    assert not fresh.stale and fresh.age is not None and fresh.age < timedelta(minutes=15)
    assert health_at(ledger, NOW + timedelta(minutes=16)).stale
    assert not health_at(ledger, NOW + timedelta(minutes=16), timedelta(minutes=20)).stale


def test_a_failure_after_the_last_success_is_told_apart_from_an_older_one(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
):
    sweep_now(ledger, thresholds=[], now=NOW)
    real = sweep_task.sweep_rungs

    def broken(**kwargs: object) -> None:
        raise RuntimeError("ledger locked")

    monkeypatch.setattr(sweep_task, "sweep_rungs", broken)
    with pytest.raises(RuntimeError):
        sweep_now(ledger, thresholds=[], now=NOW + timedelta(minutes=5))
    assert health_at(ledger, NOW + timedelta(minutes=6)).failing_since_ok
    monkeypatch.setattr(sweep_task, "sweep_rungs", real)
    sweep_now(ledger, thresholds=[], now=NOW + timedelta(minutes=10))
    found = health_at(ledger, NOW + timedelta(minutes=11))
    assert found.last_failure is not None and not found.failing_since_ok


def test_the_backlog_counts_deliveries_owed_and_those_that_failed_an_attempt(ledger: Ledger):
    def notice(key: str) -> Notice:
        return Notice(key, None, None, "problem", "failure", ["admin"], key, "body", NOW)

    with ledger.transaction() as session:
        deliveries.record(session.connection(), [notice("a"), notice("b")], now=NOW)
        deliveries.record(session.connection(), [notice("c")], now=NOW, status="superseded")
    with ledger.transaction() as session:
        session.execute(update(Delivery).where(Delivery.key == "a").values(attempts=2))
    backlog = health_at(ledger, NOW).backlog
    assert (backlog.pending, backlog.failing, backlog.oldest_due_at) == (2, 1, NOW)


def test_the_watcher_down_alert_goes_to_the_admin_and_every_coordinator_once_an_hour(
    ledger: Ledger,
):
    sweep_now(ledger, thresholds=[], now=NOW)
    later = NOW + timedelta(minutes=40)
    key, new = alert_watcher_down(ledger, now=later, stale_after=DEFAULT_STALE_AFTER, reason="x")
    again, repeated = alert_watcher_down(
        ledger, now=later + timedelta(minutes=15), stale_after=DEFAULT_STALE_AFTER, reason="x"
    )
    _, next_hour = alert_watcher_down(
        ledger, now=later + timedelta(hours=1), stale_after=DEFAULT_STALE_AFTER, reason="x"
    )
    assert (key, new, again, repeated, next_hour) == (
        "watcher:stale:2026-03-02T09",
        True,
        key,
        False,
        True,
    )
    with ledger.session() as session:
        tags = session.scalars(select(Delivery.tags).where(Delivery.key == key)).one()
    assert "admin" in tags and "sv-coordination" in tags and "us-coordination" in tags
    assert len([t for t in tags if t.endswith("-coordination")]) == 10


def test_the_watcher_down_notice_says_since_when_and_what_to_do_without_case_facts(
    ledger: Ledger,
):
    sweep_now(ledger, thresholds=[], now=NOW)
    found = health_at(ledger, NOW + timedelta(minutes=47, seconds=30))
    notice = watcher_down_notice(health=found, coordinator_tags=["sv-coordination"], reason="r")
    assert notice.key == watcher_down_key(found.now) and notice.severity == "failure"
    assert notice.tags == ["admin", "sv-coordination"]
    assert "Last successful sweep: 2026-03-02 09:00:00 UTC (47 min ago)" in notice.body
    assert "rogatory watch" in notice.body and notice.request_id is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("900", 900), ("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800)]
)
def test_durations_read_as_seconds_or_with_a_unit(text: str, seconds: int):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0", "-5m", "15 minutes", "m"])
def test_a_duration_that_is_not_one_is_refused_with_how_to_write_it(text: str):
    with pytest.raises(ValueError, match="write seconds"):
        parse_duration(text)

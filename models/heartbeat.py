"""The watcher's heartbeat: every clock sweep leaves a `sweep_runs` row, and health is read there.

A sweep that nobody runs sends nothing, so silence would look like a quiet day. Each sweep
(the `watch_clock` flow or `rogatory watch`) records when it ran, what it recorded and whether
it failed; `rogatory health` and `GET /api/health` read the last ones and call the watcher
stale when no sweep succeeded within the threshold. When the Prefect automation sees no
`watch_clock` run complete, `watcher_down_notice` is what the admin and the coordinators get.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from models.ledger import Delivery, SweepRun
from models.notices import ADMIN_TAG, Notice

STALE_AFTER_VARIABLE = "ROGATORY_WATCHER_STALE_AFTER_S"
DEFAULT_STALE_AFTER = timedelta(minutes=15)
"""Three missed five-minute sweeps: one late run is not yet an alarm."""
KEEP = timedelta(days=30)
"""How long sweep rows are kept; older ones are pruned by the sweep that records a new one."""
WATCHER_DOWN_KIND = "watcher_down"


@dataclass(frozen=True)
class SweepOutcome:
    """What one sweep did, as its heartbeat row records it."""

    started_at: datetime
    finished_at: datetime
    ran_by: str
    ok: bool = True
    rungs_recorded: int = 0
    alerts_recorded: int = 0
    failures: int = 0
    error: str | None = None


def record_sweep(session: Session, outcome: SweepOutcome, *, keep: timedelta = KEEP) -> int:
    """Record one sweep and prune the rows older than `keep` (before its start); rows pruned."""
    session.add(
        SweepRun(
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            ok=outcome.ok,
            rungs_recorded=outcome.rungs_recorded,
            alerts_recorded=outcome.alerts_recorded,
            failures=outcome.failures,
            ran_by=outcome.ran_by[:128],
            error=outcome.error[:2000] if outcome.error else None,
        )
    )
    pruned = session.execute(
        delete(SweepRun).where(SweepRun.finished_at < outcome.started_at - keep)
    )
    session.flush()
    return int(getattr(pruned, "rowcount", 0) or 0)


def stale_after_from_env() -> timedelta:
    """$ROGATORY_WATCHER_STALE_AFTER_S (seconds), else 15 minutes."""
    raw = os.environ.get(STALE_AFTER_VARIABLE, "").strip()
    return parse_duration(raw) if raw else DEFAULT_STALE_AFTER


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`900`, `900s`, `15m`, `1h`, `1d`: a positive span of time."""
    match = _DURATION.match(text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a span of time: write seconds (900) or 15m, 1h, 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class LastSweep:
    at: datetime
    ran_by: str
    error: str | None


@dataclass(frozen=True)
class Backlog:
    """Deliveries still owed: how many, how many already failed an attempt, the oldest's event."""

    pending: int
    failing: int
    oldest_due_at: datetime | None


@dataclass(frozen=True)
class WatcherHealth:
    """Whether the clock is being swept, as of `now`."""

    now: datetime
    stale_after: timedelta
    last_ok: LastSweep | None
    last_failure: LastSweep | None
    backlog: Backlog

    @property
    def age(self) -> timedelta | None:
        """Since the last successful sweep finished; None when none ever did."""
        return None if self.last_ok is None else self.now - self.last_ok.at

    @property
    def stale(self) -> bool:
        age = self.age
        return age is None or age > self.stale_after

    @property
    def failing_since_ok(self) -> bool:
        """The latest sweep failed (none succeeded after it)."""
        failure = self.last_failure
        return failure is not None and (self.last_ok is None or failure.at > self.last_ok.at)


def _last(session: Session, *, ok: bool) -> LastSweep | None:
    row = session.execute(
        select(SweepRun.finished_at, SweepRun.ran_by, SweepRun.error)
        .where(SweepRun.ok.is_(ok))
        .order_by(SweepRun.finished_at.desc())
        .limit(1)
    ).first()
    return None if row is None else LastSweep(row.finished_at, row.ran_by, row.error)


def watcher_health(session: Session, *, now: datetime, stale_after: timedelta) -> WatcherHealth:
    """The last successful and failed sweeps, and the deliveries backlog."""
    owed = Delivery.status.in_(("pending", "sending"))
    pending, failing, oldest = session.execute(
        select(
            func.count(),
            func.count().filter(Delivery.attempts > 0),
            func.min(Delivery.due_at),
        ).where(owed)
    ).one()
    return WatcherHealth(
        now=now,
        stale_after=stale_after,
        last_ok=_last(session, ok=True),
        last_failure=_last(session, ok=False),
        backlog=Backlog(int(pending), int(failing), oldest),
    )


def watcher_down_key(now: datetime) -> str:
    """One alert per hour while the watcher stays down (the automation fires every window)."""
    return f"watcher:stale:{now:%Y-%m-%dT%H}"


def watcher_down_notice(
    *, health: WatcherHealth, coordinator_tags: Iterable[str], reason: str
) -> Notice:
    """Tell the admin and every coordinator that reminders and escalations have stopped."""
    now = health.now
    last = health.last_ok
    if last is None:
        since = "Last successful sweep: none recorded"
    else:
        seconds = int((now - last.at).total_seconds())
        ago = f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
        since = f"Last successful sweep: {last.at:%Y-%m-%d %H:%M:%S} UTC ({ago} ago)"
    lines = [
        f"Why: {reason}",
        since,
        f"Notifications still owed: {health.backlog.pending}",
        "Until it runs again no reminder, escalation or prescription alert goes out.",
        "What to do: check the process running `rogatory serve` (or the Prefect worker) and "
        "the watch-clock deployment; `rogatory watch` sweeps once by hand; `rogatory health` "
        "says when it is back.",
    ]
    if health.failing_since_ok and health.last_failure is not None:
        lines.insert(2, f"Last sweep failed: {(health.last_failure.error or '')[:300]}")
    return Notice(
        key=watcher_down_key(now),
        request_id=None,
        step_id=None,
        kind=WATCHER_DOWN_KIND,
        severity="failure",
        tags=sorted({ADMIN_TAG, *coordinator_tags}),
        title="Watcher down: the clock has not been swept",
        body="\n".join(lines),
        due_at=now,
    )

"""Time as a dependency: every command asks an injected clock for "now".

Production uses the wall clock, tests a fixed one, the simulator one that jumps from event to
event, so years of caseload run through the same code in seconds.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved; for tests and the simulator."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at


class AcceleratedClock:
    """Wall time sped up `factor` times from `origin`; the demo's live part runs on it."""

    def __init__(self, *, origin: datetime, factor: float, started: datetime | None = None) -> None:
        self.origin = origin
        self.factor = factor
        self.started = started or datetime.now(UTC)

    def now(self) -> datetime:
        return self.origin + (datetime.now(UTC) - self.started) * self.factor


def clock_from_env() -> Clock:
    """The wall clock, or the demo's accelerated one when ROGATORY_CLOCK says so.

    `ROGATORY_CLOCK=accelerated|<origin ISO>|<factor>|<started ISO>` makes every process of a
    demo (CLI, serving process, watchers) share one clock that runs `factor` times faster.
    """
    spec = os.environ.get("ROGATORY_CLOCK", "")
    if not spec.startswith("accelerated|"):
        return SystemClock()
    _, origin, factor, started = spec.split("|")
    return AcceleratedClock(
        origin=datetime.fromisoformat(origin),
        factor=float(factor),
        started=datetime.fromisoformat(started),
    )


def accelerated_spec(*, origin: datetime, factor: float, started: datetime) -> str:
    return f"accelerated|{origin.isoformat()}|{factor}|{started.isoformat()}"

"""Benchmarks: each `benchmarks/bench_*.py` module exposes `run() -> list[Result]`.

`python -m benchmarks.run [NAME...]` runs them and merges the figures into
`benchmarks/results.json`; a result with a budget says whether it met it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Result:
    """One measured figure, e.g. 12,000,000 deadlines per second against a budget of 1,000,000."""

    name: str
    value: float
    unit: str
    budget: float | None
    better: Better
    note: str | None = None
    """How the figure was measured, when its name alone does not say (e.g. batching)."""
    load_average: tuple[float, float, float] | None = None
    """The machine's 1-minute load average when its benchmark started and when it ended, and
    the 5-minute one at the end: a figure taken on a busy machine says so."""

    @property
    def ok(self) -> bool:
        """Whether the figure meets its budget; a figure without a budget cannot fail."""
        if self.budget is None:
            return True
        return self.value >= self.budget if self.better == "higher" else self.value <= self.budget

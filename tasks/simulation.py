"""The Prefect task behind the `simulate` flow: one synthetic caseload into one ledger.

The logic is `models.simulation.simulate`; this task only opens the ledger and the routings,
so it can be called as `simulate_caseload.fn(...)` without Prefect.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from prefect import task

from models.engine import Routings
from models.ledger import Ledger
from models.loader import load_all
from models.simulation import refuse_filled_ledger, simulate


@task(name="simulate-caseload")
def simulate_caseload(
    *,
    years: int,
    per_year: int,
    seed: int,
    countries: list[str] | None,
    start: date,
    database: str | None,
    append: bool,
) -> dict[str, Any]:
    """Simulate into the ledger at `database` (default: the configured one); the summary."""
    # A ledger of its own (`database`) is created here; the configured one is upgraded only by
    # `rogatory db upgrade`, like every other process's.
    with Ledger(database, migrate=database is not None) as ledger:
        if not append:
            refuse_filled_ledger(ledger)
        summary = simulate(
            ledger=ledger,
            routings=Routings(load_all()),
            years=years,
            per_year=per_year,
            seed=seed,
            countries=countries,
            start=datetime.combine(start, datetime.min.time(), UTC),
        )
    return summary.as_json()

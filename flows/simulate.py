"""`simulate`: a synthetic caseload through the engine on a simulated clock, as a flow run.

The same logic as `rogatory simulate` (which calls it without Prefect, to start in a second):
deterministic for a seed, calibrated on the UNODC note's figures. Run it to fill a
demonstration or benchmark ledger from a deployment or a schedule.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from tasks.simulation import simulate_caseload


@flow(name="simulate", log_prints=True)
def simulate(
    years: int = 1,
    per_year: int = 5000,
    seed: int = 1,
    countries: list[str] | None = None,
    start: date = date(2016, 1, 1),
    database: str | None = None,
    append: bool = False,
) -> dict[str, Any]:
    """Simulate `years` x `per_year` requests; the summary of what came out."""
    summary = simulate_caseload(
        years=years,
        per_year=per_year,
        seed=seed,
        countries=countries,
        start=start,
        database=database,
        append=append,
    )
    print(
        f"{summary['cases']:,} cases, {summary['transitions']:,} transitions in "
        f"{summary['elapsed_s']:.1f} s; executed: {summary['execution_rate']}"
    )
    return summary

"""The ministry's what-if on a simulated Salvadoran caseload: five years of 2,000 requests a year
(seed 7, cached under var/bench/), replayed on the chain without the Ministry of Justice hop
with 500 Monte Carlo runs. Timed: reading the caseload as the report reads it, and the replay.
The figure is checked before it is reported: time is saved and no prescription is caused.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import Result
from models import publishing
from models.engine import Routings
from models.ledger import Ledger
from models.loader import config_root, load_country
from models.metrics import Filters, load_audit
from models.simulation import simulate
from models.whatif import whatif

FOLDER = Path(os.environ.get("ROGATORY_BENCH_DIR", "var/bench"))
YEARS, PER_YEAR, SEED = 5, 2000, 7
RUNS = 500
NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


def run() -> list[Result]:
    FOLDER.mkdir(parents=True, exist_ok=True)
    root = config_root()
    current = load_country(root / "countries" / "sv.yaml")
    path = FOLDER / f"whatif_sv_{YEARS}x{PER_YEAR}_{SEED}_{current.version[:12]}.db"
    fresh = not path.exists()
    ledger = Ledger(f"sqlite:///{path}", migrate=True)
    try:
        if fresh:
            simulate(
                ledger=ledger,
                routings=Routings({"SV": current}),
                years=YEARS,
                per_year=PER_YEAR,
                seed=SEED,
                countries=["SV"],
                start=datetime(2020, 1, 1, tzinfo=UTC),
            )
        text = (root / "countries" / "sv.yaml").read_text(encoding="utf-8")
        proposal_text = "".join(
            line for line in text.splitlines(keepends=True) if "holder: mjsp" not in line
        )
        proposal = publishing.check_draft(proposal_text.encode(), country="SV", root=root).routing
        assert proposal is not None
        load = os.getloadavg()
        began = time.perf_counter()
        with ledger.session() as session:
            data = load_audit(
                session=session,
                routings=Routings({}),
                filters=Filters(countries=("SV",)),
                now=NOW,
            )
        read = time.perf_counter() - began
        answer = whatif(data=data, country="SV", current=current, proposal=proposal, runs=RUNS)
        seconds = time.perf_counter() - began
        end = os.getloadavg()
    finally:
        ledger.dispose()
    overall = answer.overall
    if not (overall.days_saved_per_case.low or 0) > 0 or overall.prescriptions_caused.median:
        raise AssertionError(f"unexpected what-if: {overall}")
    note = (
        f"{overall.cases:,} cases ({overall.open_cases:,} open) of {len(answer.routes)} routes, "
        f"{RUNS} runs; reading them {read:.1f} s, replay {answer.elapsed_s:.1f} s; "
        f"{overall.days_saved_per_case.median} days saved per case, "
        f"{overall.prescriptions_avoided.median:g} prescriptions avoided"
    )
    return [
        Result("whatif_10k_cases_s", seconds, "s", None, "lower", note, (load[0], end[0], end[1]))
    ]

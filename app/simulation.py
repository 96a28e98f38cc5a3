"""`rogatory simulate`: a synthetic caseload through the engine, with a progress bar.

It calls the simulator directly, without Prefect (starting Prefect costs seconds; the `simulate`
flow in flows/simulate.py is the scheduled way to run the same logic).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from app.cli import day

Sub = Any  # argparse's private _SubParsersAction


def register(sub: Sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="drive a synthetic caseload through the engine on a simulated clock",
        description=(
            "Register and move synthetic requests with the engine's own commands, from --start "
            "for --years years, and print what came out (execution rates against the UNODC "
            "note's figures, detours, hops left late). The same --seed writes the same ledger."
        ),
    )
    p.add_argument("--years", type=_positive, default=1, help="years simulated (default 1)")
    p.add_argument(
        "--per-year", type=_positive, default=5000, help="requests a year (default 5000)"
    )
    p.add_argument("--seed", type=int, default=1, help="the same seed writes the same ledger")
    p.add_argument(
        "--countries",
        type=_codes,
        help="comma-separated country codes, e.g. SV,IT (default: every configured country)",
    )
    p.add_argument(
        "--start",
        type=day,
        default=datetime(2016, 1, 1, tzinfo=UTC).date(),
        help="first day simulated, UTC (default 2016-01-01)",
    )
    p.add_argument(
        "--database",
        help="ledger URL (default: $ROGATORY_DATABASE_URL, else the SQLite file under ./var)",
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="add to a ledger that already holds cases (refused otherwise: synthetic cases "
        "would mix with real ones)",
    )
    p.set_defaults(handler=simulate)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _codes(text: str) -> list[str]:
    codes = [c.strip().upper() for c in text.split(",") if c.strip()]
    if not codes:
        raise argparse.ArgumentTypeError("give at least one country code, e.g. SV,IT")
    return codes


def simulate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from models.engine import Routings
    from models.ledger import Ledger
    from models.loader import load_all
    from models.simulation import describe, refuse_filled_ledger
    from models.simulation import simulate as run

    console = Console(stderr=True)
    # A ledger of its own (--database) is created here; the configured one only by `db upgrade`.
    with Ledger(args.database, migrate=args.database is not None) as ledger:
        if not args.append:
            refuse_filled_ledger(ledger)
        routings = Routings(load_all())
        start = datetime.combine(args.start, datetime.min.time(), UTC)
        days = args.years * 365
        with Progress(
            TextColumn("simulating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("days  {task.fields[transitions]:,} transitions"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("simulate", total=days, transitions=0)
            summary = run(
                ledger=ledger,
                routings=routings,
                years=args.years,
                per_year=args.per_year,
                seed=args.seed,
                countries=args.countries,
                start=start,
                progress=lambda done, s: bar.update(
                    task, completed=round(done * days), transitions=s.transitions
                ),
            )
    print(f"ledger: {ledger.engine.url}")
    for line in describe(summary):
        print(line)
    return 0

"""Run the benchmarks and merge their figures into `benchmarks/results.json`.

    python -m benchmarks.run              every benchmarks/bench_*.py module
    python -m benchmarks.run calendar     only bench_calendar.py

Entries of benchmarks not run this time are kept. Budgets are reported, not enforced: the exit
status is 0 even when a figure misses its budget, and the table says FAIL. It is 1 only when a
benchmark could not run at all (the others' figures are still merged).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import benchmarks
from benchmarks import Result

RESULTS = Path(__file__).resolve().parent / "results.json"
PREFIX = "bench_"


def available() -> list[str]:
    """Short names of the benchmark modules, e.g. `calendar` for bench_calendar.py."""
    return sorted(
        m.name.removeprefix(PREFIX)
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith(PREFIX)
    )


def machine() -> str:
    return f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs"


def entry(result: Result, *, when: str) -> dict[str, Any]:
    out = {
        "value": result.value,
        "unit": result.unit,
        "budget": result.budget,
        "better": result.better,
        "ok": result.ok,
        "machine": machine(),
        "when": when,
    }
    if result.note:
        out["note"] = result.note
    if result.load_average:
        start, end, five = result.load_average
        out["load_average"] = {"start_1min": start, "end_1min": end, "end_5min": five}
    return out


def stored(path: Path) -> dict[str, Any]:
    """The entries already in `path`, keyed by benchmark name."""
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not valid JSON ({exc}): fix it or delete it") from exc
    if not isinstance(entries, dict):
        raise SystemExit(f"{path} must hold one object keyed by benchmark name: fix or delete it")
    return entries


def merge(entries: dict[str, Any], results: Sequence[Result], *, when: str) -> dict[str, Any]:
    """`entries` with this run's results replacing those of the same name, sorted by name."""
    merged = dict(entries)
    for result in results:
        merged[result.name] = entry(result, when=when)
    return dict(sorted(merged.items()))


def write(path: Path, entries: dict[str, Any]) -> None:
    # Write beside and rename, so a reader never sees half a file.
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(entries, indent=2) + "\n")
    tmp.replace(path)


def figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(results: Sequence[Result]) -> str:
    rows = [("benchmark", "value", "unit", "budget", "better", "status")]
    for r in results:
        budget = "-" if r.budget is None else figure(r.budget)
        status = "-" if r.budget is None else ("ok" if r.ok else "FAIL")
        rows.append((r.name, figure(r.value), r.unit, budget, r.better, status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 3}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    known = available()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(known)}")
    args = parser.parse_args(argv)
    names = [n.removeprefix(PREFIX) for n in args.names] or known
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)} (known: {', '.join(known)})")

    stored(RESULTS)  # a bad file stops us before the run, not after
    results: list[Result] = []
    broken: list[str] = []
    for name in names:
        print(f"running {PREFIX}{name} ...", file=sys.stderr, flush=True)
        try:
            results += run_one(name)
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            broken.append(name)
            print(f"ERROR {PREFIX}{name}: {type(exc).__name__}: {exc}", file=sys.stderr)

    when = datetime.now(UTC).isoformat(timespec="seconds")
    write(RESULTS, merge(stored(RESULTS), results, when=when))
    print(table(results))
    failed = [r.name for r in results if not r.ok]
    if failed:
        print(f"\nFAIL: {', '.join(failed)} missed the budget (reported, not enforced)")
    if broken:
        print(f"\nERROR: {', '.join(PREFIX + n for n in broken)} did not run to the end")
    print(f"\nmerged into {RESULTS}")
    return 1 if broken else 0


def run_one(name: str) -> list[Result]:
    module = importlib.import_module(f"benchmarks.{PREFIX}{name}")
    run = getattr(module, "run", None)
    if not callable(run):
        raise TypeError(f"benchmarks/{PREFIX}{name}.py has no `def run() -> list[Result]`")
    start = os.getloadavg()[0]
    results = run()
    if not isinstance(results, list) or not all(isinstance(r, Result) for r in results):
        raise TypeError(f"{PREFIX}{name}.run() must return a list of benchmarks.Result")
    one, five, _ = os.getloadavg()
    load = (round(start, 2), round(one, 2), round(five, 2))
    return [replace(r, load_average=load) for r in results]


if __name__ == "__main__":
    sys.exit(main())

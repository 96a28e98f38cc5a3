"""`rogatory report` and `rogatory export-log`: the auditor's outputs, over the ledger.

Both take the same filters (country, route, kind, direction, counterpart, registration period)
and read the ledger once, in one transaction; the work itself is in tasks/report.py and
tasks/export.py.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import day, instant, printable

if TYPE_CHECKING:
    from models.metrics import Filters

Sub = Any  # argparse's private _SubParsersAction


def register(sub: Sub) -> None:
    _report(sub)
    _export_log(sub)


def _listed(values: list[str] | None) -> tuple[str, ...]:
    """Repeated options and comma-separated lists alike: `--country SV,GT --country US`."""
    out: list[str] = []
    for value in values or []:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return tuple(dict.fromkeys(out))


def _filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--country", action="append", help="routing country, e.g. SV (repeatable)")
    p.add_argument("--route", action="append", help="route id, e.g. mla-outgoing (repeatable)")
    p.add_argument("--kind", action="append", help="mla, extradition, asset_freezing, ...")
    p.add_argument("--direction", action="append", choices=["incoming", "outgoing"])
    p.add_argument("--counterpart", action="append", help="the other state, e.g. ES")
    p.add_argument("--since", type=day, help="cases registered on or after this day (UTC)")
    p.add_argument("--until", type=day, help="cases registered on or before this day (UTC)")


def filters_from(args: argparse.Namespace) -> Filters:
    from models.metrics import Filters

    if args.since and args.until and args.until < args.since:
        raise SystemExit(f"--until {args.until} is before --since {args.since}")
    return Filters(
        countries=tuple(c.upper() for c in _listed(args.country)),
        routes=_listed(args.route),
        kinds=_listed(args.kind),
        directions=_listed(args.direction),
        counterparts=tuple(c.upper() for c in _listed(args.counterpart)),
        since=args.since,
        until=args.until,
    )


def _report(sub: Sub) -> None:
    p = sub.add_parser(
        "report",
        help="audit report: delays per authority and hop, breaches, rework, prescription risk",
    )
    p.add_argument(
        "--format",
        choices=["html", "json", "csv"],
        default="html",
        help="html: one self-contained page; json: docs/report-schema.json; csv: a file per table",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    _filter_options(p)
    p.add_argument("--as-of", type=instant, help="read the ledger as of this instant (default now)")
    p.add_argument(
        "--late-after-hours",
        type=float,
        default=24.0,
        help="an entry recorded this long after the fact counts as late (default 24)",
    )
    p.set_defaults(handler=report)


def report(args: argparse.Namespace) -> int:
    from app.client import client
    from tasks.export import output_folder
    from tasks.report import write_report

    filters = filters_from(args)
    # Refuse a bad --out before the ledger is read, not after the report is computed.
    output_folder(args.out)
    document = client().report(
        filters, now=args.as_of, late_after=timedelta(hours=args.late_after_hours)
    )
    written = write_report(document, fmt=args.format, out=args.out)
    summary = document["summary"]
    print(
        printable(
            f"{document['scope']}: {summary['cases']} cases, {summary['hops']} hops, "
            f"{summary['open_cases']} open"
        )
    )
    for headline in document["headlines"][:3]:
        print(printable(f"  - {headline}"))
    for path in written:
        print(printable(f"wrote {path}"))
    return 0


def _export_log(sub: Sub) -> None:
    p = sub.add_parser(
        "export-log",
        help="event log for process mining (ProM, PM4Py, Celonis): a start and a complete "
        "event per hop, its activity named for country, route, step and holder "
        "(SV mla-outgoing: court @ csj)",
    )
    p.add_argument("--format", choices=["xes", "csv"], default="xes")
    p.add_argument("--out", type=Path, required=True, help="file to write")
    _filter_options(p)
    p.set_defaults(handler=export_log)


def export_log(args: argparse.Namespace) -> int:
    from app.client import client

    events = client().export_log(filters_from(args), fmt=args.format, out=args.out)
    print(printable(f"wrote {args.out}: {events} events ({args.format})"))
    return 0

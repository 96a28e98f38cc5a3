"""The ministry's subcommands: bring in the former register, try a proposed chain on the recorded
caseload, and move open cases onto a new version deliberately.

    rogatory import FILE --mapping MAPPING.yaml [--dry-run] [--skip-invalid]
    rogatory whatif CC --proposal FILE [--route R ...] [--since D] [--until D] [--runs N]
    rogatory routing diff CC FILE
    rogatory routing publish CC FILE --note TEXT
    rogatory routing migrate CC --to VERSION [--dry-run]

The bulk migration is `rogatory routing migrate`, beside diff and publish, rather than a second
form of `rogatory migrate`: that command takes one case's reference and its options are built
from the `Migrate` command model; a form without a reference would make a mistyped reference
read as "every case of the country". All of them run on the server's own command line
(`local:<os user>`): they read or write a whole country at once, in one transaction.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from app.cli import emit, printable
from models.errors import RogatoryError

Sub = Any  # argparse's private _SubParsersAction


def register(sub: Sub) -> None:
    i = sub.add_parser(
        "import",
        help="bring a former register (Excel or CSV) into the ledger, with its history",
        description="Every row is checked first and every problem listed as "
        "file:sheet:row:column; by default one bad row writes nothing. Importing the same "
        "file again changes nothing.",
    )
    i.add_argument("file", type=Path, help="the register: .xlsx or .csv")
    i.add_argument("--mapping", type=Path, required=True, help="the mapping file (YAML)")
    i.add_argument("--dry-run", action="store_true", help="check and replay, write nothing")
    i.add_argument(
        "--skip-invalid",
        action="store_true",
        help="import the cases without problems and list the others",
    )
    i.add_argument("--json", action="store_true")
    i.set_defaults(handler=import_register)


def _local_only(what: str) -> None:
    if os.environ.get("ROGATORY_API_URL"):
        raise RogatoryError(
            f"rogatory {what} runs on the server's own command line (it works on a whole "
            "country in one transaction): run it there, without ROGATORY_API_URL"
        )


def _actor() -> str:
    from models.identity import local_caller

    return local_caller(getpass.getuser()).actor


def import_register(args: argparse.Namespace) -> int:
    from models.clock import clock_from_env
    from models.errors import RegisterRejected
    from models.importer import describe
    from models.importer import import_register as run
    from models.ledger import Ledger

    _local_only("import")
    with Ledger() as ledger:
        try:
            report = run(
                path=args.file,
                mapping_path=args.mapping,
                ledger=ledger,
                clock=clock_from_env(),
                actor=_actor(),
                dry_run=args.dry_run,
                skip_invalid=args.skip_invalid,
            )
        except RegisterRejected as exc:
            if args.json:
                payload = {"problems": [str(p) for p in exc.problems], "written": False}
                print(json.dumps(payload, indent=2, ensure_ascii=False))
            for problem in exc.problems:
                print(printable(str(problem)), file=sys.stderr)
            print(
                f"{len(exc.problems)} problem(s) in {exc.rows} row(s) ({exc.cases} cases); "
                "nothing was written (fix them, or --skip-invalid to import the others)",
                file=sys.stderr,
            )
            return 1
    emit(args, report.as_json(), "\n".join(describe(report)))
    if report.written:
        _start_flows(report.open_references, quiet=args.json)
    return 0


def _start_flows(references: list[str], *, quiet: bool) -> None:
    """The imported open cases' flow runs, when a Prefect server answers; else the watcher's
    reconciliation starts them (it gives every open case a live run)."""
    from app.prefect_env import discover_api_url, server_reachable

    if not references:
        return
    if not server_reachable(discover_api_url()):
        if not quiet:
            print(
                f"note: no Prefect server answers: the {len(references)} open imported case(s) "
                "get their flow runs from the watcher's reconciliation once `rogatory serve` runs",
                file=sys.stderr,
            )
        return
    from models.ledger import Ledger
    from tasks.orchestration import start_case_flow

    started = 0
    with Ledger() as ledger:
        for reference in references:
            try:
                start_case_flow(ledger, reference)
            except Exception as exc:  # the import stands; reconciliation starts it later
                print(f"note: {reference}: flow run not started ({exc})", file=sys.stderr)
            else:
                started += 1
    if not quiet:
        print(f"note: {started} flow run(s) started for the open imported cases", file=sys.stderr)

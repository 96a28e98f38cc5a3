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

from app.cli import day, emit, printable
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

    w = sub.add_parser(
        "whatif",
        help="replay the recorded cases on a proposed chain: time saved, prescriptions avoided",
        description="Each recorded case of the routes the proposal changes is replayed on it "
        "(kept hops as recorded, new or moved hops drawn from the authority's observed days, "
        "removed hops taking nothing, open cases forecast as the risk register does), with "
        "Monte Carlo intervals.",
    )
    w.add_argument("country")
    w.add_argument("--proposal", type=Path, required=True, help="the proposed country file")
    w.add_argument("--route", action="append", default=[], help="only this route (repeatable)")
    w.add_argument("--since", type=day, help="cases registered on or after this day")
    w.add_argument("--until", type=day, help="cases registered on or before this day")
    w.add_argument("--runs", type=int, default=500, help="Monte Carlo runs (default 500)")
    w.add_argument("--seed", type=int, default=86, help="the runs' seed (default 86)")
    w.add_argument("--format", choices=["text", "json", "html"], default="text")
    w.add_argument("--out", type=Path, help="write the answer here instead of the terminal")
    w.set_defaults(handler=whatif)

    r = sub.add_parser(
        "routing",
        help="compare, publish and move open cases onto a new version of a country's routing",
    )
    actions = r.add_subparsers(metavar="ACTION", required=True)
    d = actions.add_parser("diff", help="what a draft file changes against the routing in force")
    d.add_argument("country")
    d.add_argument("file", type=Path)
    d.add_argument("--text", action="store_true", help="also print the unified diff of the texts")
    d.add_argument("--json", action="store_true")
    d.set_defaults(handler=routing_diff)
    p = actions.add_parser(
        "publish", help="make a checked draft the routing in force (new cases take it)"
    )
    p.add_argument("country")
    p.add_argument("file", type=Path)
    p.add_argument("--note", required=True, help="why: kept with the publication")
    p.add_argument(
        "--reviewed",
        help="the draft version the diff showed: refused if the file changed since",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=routing_publish)
    m = actions.add_parser(
        "migrate",
        help="move the country's open cases to the version in force, case by case",
    )
    m.add_argument("country")
    m.add_argument("--to", required=True, metavar="VERSION", help="the version in force")
    m.add_argument("--dry-run", action="store_true", help="list where each case would land")
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler=routing_migrate)


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


# -- routing: diff, publish, migrate ---------------------------------------------------------------


def _draft(country: str, path: Path) -> Any:
    """The draft file checked as `rogatory validate` checks it, problems named after `path`."""
    from dataclasses import replace

    from models import publishing
    from models.errors import ConfigError
    from models.loader import config_root

    try:
        content = path.read_bytes()
    except OSError as exc:
        raise RogatoryError(f"cannot read {path}: {exc.strerror}") from None
    draft = publishing.check_draft(content, country=country, root=config_root())
    if draft.routing is None:
        raise ConfigError([replace(p, file=str(path)) for p in draft.problems])
    return draft, content


def routing_diff(args: argparse.Namespace) -> int:
    from models import publishing
    from models.loader import config_root

    _local_only("routing diff")
    country = args.country.upper()
    draft, _ = _draft(country, args.file)
    before = publishing.in_force(country, root=config_root())
    diff = publishing.diff_routings(before, draft.routing)
    lines = list(diff_lines(diff))
    if args.text:
        lines += ["", *diff.text]
    payload = {
        "before": diff.before,
        "after": diff.after,
        "same": diff.same,
        "changes": [c.__dict__ for c in diff.changes],
        "routes": [
            {
                "id": r.id,
                "status": r.status,
                "changes": [c.__dict__ for c in r.changes],
                "steps": [
                    {**s.__dict__, "changes": [c.__dict__ for c in s.changes]} for s in r.steps
                ],
            }
            for r in diff.routes
        ],
    }
    emit(args, payload, "\n".join(lines))
    return 0


def diff_lines(diff: Any) -> Any:
    """A routing diff as the terminal shows it: country settings, then route by route."""
    yield f"{diff.before or 'none in force'} -> {diff.after}" + (
        "  (the same text: nothing to publish)" if diff.same else ""
    )
    for change in diff.changes:
        of = f" {change.of}" if change.of else ""
        yield f"  {change.what}{of}: {change.before or '–'} -> {change.after or '–'}"
    for route in diff.routes:
        yield f"route {route.id} ({route.name}): {route.status}"
        for change in route.changes:
            yield f"  {change.what}: {change.before or '–'} -> {change.after or '–'}"
        for step in route.steps:
            yield f"  step {step.id} ({step.holder}): {step.status}"
            for change in step.changes:
                yield f"    {change.what}: {change.before or '–'} -> {change.after or '–'}"
    if not diff.same and not diff.changes and not diff.routes:
        yield "  no change to routes, steps, SLAs, ladders or calendars (comments or layout only)"


def routing_publish(args: argparse.Namespace) -> int:
    from models import publishing, rerouting
    from models.clock import clock_from_env
    from models.ledger import Ledger
    from models.loader import config_root

    _local_only("routing publish")
    country = args.country.upper()
    draft, content = _draft(country, args.file)
    root = config_root()
    before = publishing.in_force(country, root=root)
    reviewed = draft.routing.version
    if args.reviewed and not reviewed.startswith(args.reviewed):
        raise RogatoryError(
            f"{args.file} is version {reviewed}, not the draft {args.reviewed} you reviewed: "
            "run `rogatory routing diff` on it again"
        )
    with Ledger() as ledger:
        done = publishing.publish(
            content,
            ledger=ledger,
            country=country,
            root=root,
            actor=_actor(),
            now=clock_from_env().now(),
            note=args.note,
            reviewed=reviewed,
            based_on=before.version if before else None,
        )
        waiting = rerouting.open_on_other_versions(ledger, country, done.version)
    text = (
        f"published {country} version {done.version} (replacing {done.previous_version or 'none'})"
        f" by {done.published_by}: new cases take it; open cases keep their version"
    )
    if waiting:
        text += (
            f"\n{waiting} open case(s) run on older versions: "
            f"rogatory routing migrate {country} --to {done.version[:12]} --dry-run"
        )
    emit(args, {**done.__dict__, "open_on_older_versions": waiting}, text)
    return 0


def routing_migrate(args: argparse.Namespace) -> int:
    from models import rerouting
    from models.clock import clock_from_env
    from models.engine import Routings
    from models.errors import NotFound
    from models.ledger import Ledger
    from models.loader import load_country_code

    _local_only("routing migrate")
    country = args.country.upper()
    target = load_country_code(country)
    if target is None:
        raise NotFound(f"no routing file for {country} in force")
    rerouting.resolve_version(target, args.to)
    with Ledger() as ledger:
        with ledger.session() as session:
            found = rerouting.plan(
                session=session, country=country, target=target, pinned=Routings({})
            )
        if not args.dry_run:
            found.moved = rerouting.move(
                ledger=ledger,
                country=country,
                target=target,
                clock=clock_from_env(),
                actor=_actor(),
                references=[landing.reference for landing in found.landings],
                blocked=found.blocked,
            )
    emit(args, found.as_json(), "\n".join(rerouting.describe(found, dry_run=args.dry_run)))
    if found.moved:
        _wake_flows(found.moved, quiet=args.json)
    return 0


def _wake_flows(references: list[str], *, quiet: bool) -> None:
    """Every command wakes its case's flow run: the moved cases' runs read the ledger again."""
    from app.ops import wake_flow
    from app.prefect_env import discover_api_url, server_reachable

    if not server_reachable(discover_api_url()):
        if not quiet:
            print(
                "note: no Prefect server answers: the moved cases' flow runs pick the change up "
                "when they next wake (the watcher's reconciliation makes sure they do)",
                file=sys.stderr,
            )
        return
    for reference in references:
        wake_flow(reference, quiet=True)


# -- what-if -------------------------------------------------------------------------------------


def whatif(args: argparse.Namespace) -> int:
    from models import publishing
    from models.clock import clock_from_env
    from models.engine import Routings
    from models.ledger import Ledger
    from models.loader import config_root
    from models.metrics import Filters, load_audit
    from models.whatif import whatif as replay

    _local_only("whatif")
    country = args.country.upper()
    draft, _ = _draft(country, args.proposal)
    current = publishing.in_force(country, root=config_root())
    filters = Filters(
        countries=(country,), routes=tuple(args.route), since=args.since, until=args.until
    )
    with Ledger() as ledger, ledger.session() as session:
        data = load_audit(
            session=session, routings=Routings({}), filters=filters, now=clock_from_env().now()
        )
        answer = replay(
            data=data,
            country=country,
            current=current,
            proposal=draft.routing,
            routes=args.route,
            runs=args.runs,
            seed=args.seed,
        )
    if args.format == "json":
        text = json.dumps(answer.as_json(), indent=2, ensure_ascii=False)
    elif args.format == "html":
        from app.web.whatif import standalone_html

        text = standalone_html(answer)
    else:
        text = printable("\n".join(whatif_lines(answer)))
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def _figure(f: Any, unit: str = "") -> str:
    if f.median is None:
        return "–"
    if f.low == f.high:
        return f"{f.median:g}{unit}"
    return f"{f.median:g}{unit} [{f.low:g}–{f.high:g}]"


def whatif_lines(answer: Any) -> Any:
    """The what-if for the terminal: the changes, then each route and all, then the load."""
    yield (
        f"what-if for {answer.country}: proposal {answer.proposal_version} against "
        f"{answer.current_version or 'no routing'} in force; {answer.runs} runs, seed {answer.seed}"
    )
    for change in answer.changes:
        what = f"{change.route}: step {change.step} {change.change}"
        yield f"  {what}: {change.before or '–'} -> {change.after or '–'}"
    yield ""
    yield (
        f"{'route':<22} {'cases':>6} {'open':>5}  {'':<7} {'P50 days':<20} {'P90 days':<20} "
        f"{'late hops':<16} not before prescription"
    )
    for c in [*answer.by_route, answer.overall]:
        for label, side in (("before", c.before), ("after", c.after)):
            yield (
                f"{c.route if label == 'before' else '':<22} "
                f"{c.cases if label == 'before' else '':>6} "
                f"{c.open_cases if label == 'before' else '':>5}  {label:<7} "
                f"{_figure(side.p50_days):<20} {_figure(side.p90_days):<20} "
                f"{_rate(side.breach_rate):<16} {_figure(side.not_before_prescription)}"
            )
        yield (
            f"{'':<22} {'':>6} {'':>5}  saved: {_figure(c.days_saved_per_case)} days per case; "
            f"prescriptions avoided {_figure(c.prescriptions_avoided)}, "
            f"caused {_figure(c.prescriptions_caused)}"
        )
    yield ""
    yield (
        f"{'authority':<10} {'hops before':>12} {'hops after':>11} {'days before':>12} "
        f"{'days after':>11}"
    )
    for load in answer.load:
        yield (
            f"{load.authority:<10} {load.hops_before:>12.0f} {load.hops_after:>11.0f} "
            f"{load.days_before:>12.0f} {load.days_after:>11.0f}"
        )
    for line in answer.left_out:
        yield f"left out: {line}"
    yield ""
    yield "assumptions:"
    yield from (f"  - {a}" for a in answer.assumptions)


def _rate(f: Any) -> str:
    if f.median is None:
        return "–"
    if f.low == f.high:
        return f"{100 * f.median:.1f} %"
    return f"{100 * f.median:.1f} % [{100 * f.low:.1f}–{100 * f.high:.1f}]"

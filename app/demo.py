"""`rogatory demo`: the whole system end to end on one machine, with embedded defaults only.

It validates the country files, simulates a year of caseload through the engine, runs a short
live part through the real Prefect flows on an accelerated clock (so reminders and escalations
really fire into the outbox), runs `audit_report`, and prints where the report is, the top
bottlenecks and the cases most at risk. Everything lives under ./var/demo and is rebuilt on
each run: SQLite ledger, Prefect's own local server on SQLite, the outbox.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

Sub = Any
ACCELERATION = 43_200.0
"""Demo seconds: one real second is half a day, so a 10-business-day hop lasts about 30 s."""


def register(sub: Sub) -> None:
    p = sub.add_parser("demo", help="run the whole system end to end (about 3 minutes)")
    p.add_argument("--per-year", type=int, default=3000, help="simulated requests (one year)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--live-seconds",
        type=float,
        default=45.0,
        help="how long the live part runs on the accelerated clock",
    )
    p.set_defaults(handler=demo)


_T0 = time.monotonic()


def _step(n: int, text: str) -> None:
    print(f"\n[{n}/5] {text}   (t+{time.monotonic() - _T0:.0f} s)", flush=True)


def demo(args: argparse.Namespace) -> int:
    from app.ops import start_local_server, stop_process
    from app.prefect_env import QUIET, free_port

    root = Path("var") / "demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    os.environ.update(QUIET)
    os.environ["ROGATORY_VAR"] = str(root)
    os.environ["ROGATORY_DATABASE_URL"] = f"sqlite:///{(root / 'ledger.db').resolve()}"
    os.environ.pop("PREFECT_API_URL", None)
    started = time.monotonic()

    _step(1, "Validating the country routing files")
    routings = _validate()

    _step(2, f"Simulating a year of caseload ({args.per_year:,} requests) through the engine")
    summary = _simulate(routings, per_year=args.per_year, seed=args.seed)

    _step(
        3,
        "Live part: real Prefect flows on an accelerated clock "
        f"(1 s = {ACCELERATION / 3600:.0f} h)",
    )
    port = free_port()
    server = start_local_server(port=port, home=root / "prefect")
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    from models.clock import accelerated_spec

    os.environ["ROGATORY_CLOCK"] = accelerated_spec(
        origin=summary.end, factor=ACCELERATION, started=datetime.now(UTC)
    )
    try:
        serving = _serve(root)
        web, sign_ins = _web(root)
        try:
            refs = _live(routings, seconds=args.live_seconds, root=root)
            _check_live_runs(refs)
            _check_outbox(root, refs)
            _step(4, "Running the audit_report flow")
            folder = _audit_report()
        finally:
            stop_process(web)
            stop_process(serving)
    finally:
        stop_process(server)
    _step(5, "Done")
    _finale(folder, root, started)
    print("  the workspace, the HTTP API and their accounts stay in the demo's ledger; serve them")
    print("  again with (then open http://127.0.0.1:8800/ and sign in):")
    print(
        f"    ROGATORY_VAR={root} ROGATORY_DATABASE_URL={os.environ['ROGATORY_DATABASE_URL']} "
        "ROGATORY_COOKIE_SECURE=0 rogatory web"
    )
    for name, (role, password) in sign_ins.items():
        print(f"    sign in as {name} / {password}  ({role})")
    return 0


def _validate() -> Any:
    from models.engine import Routings
    from models.loader import load_all

    routings = load_all()
    for _code, routing in sorted(routings.items()):
        print(
            f"  ok  {routing.file}  {len(routing.config.routes)} routes  version {routing.version}"
        )
    print(f"  {len(routings)} country files valid")
    return Routings(routings)


def _simulate(routings: Any, *, per_year: int, seed: int) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from models.ledger import Ledger
    from models.simulation import describe, simulate

    with (
        Ledger(migrate=True) as ledger,
        Progress(
            TextColumn("  simulating"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
        ) as bar,
    ):
        task = bar.add_task("simulate", total=1.0)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        summary = simulate(
            start=today.replace(year=today.year - 1),
            ledger=ledger,
            routings=routings,
            years=1,
            per_year=per_year,
            seed=seed,
            progress=lambda done, _s: bar.update(task, completed=done),
        )
    for line in describe(summary):
        print(f"  {line}")
    return summary


def _serve(root: Path) -> subprocess.Popen[bytes]:
    from app.ops import spawn_serve

    process = spawn_serve(root / "serve.log", poll=1, watch_every=600, limit=6)
    print(
        f"  serving route_request, watch_clock and audit_report "
        f"(UI {os.environ['PREFECT_API_URL'].removesuffix('/api')})",
        flush=True,
    )
    return process


DEMO_ACCOUNTS = {
    "demo-coordinator": ("coordinator", "SV", None),
    "demo-clerk": ("clerk", "SV", "fgr"),
    "demo-auditor": ("auditor", None, None),
    "demo-ministry": ("ministry", "SV", None),
    "demo-admin": ("admin", None, None),
}


def _web(root: Path) -> tuple[subprocess.Popen[bytes], dict[str, tuple[str, str]]]:
    """`rogatory web` on the demo's ledger, with demo accounts; proven by signing in over HTTP."""
    import secrets
    import sys

    import httpx

    from app.prefect_env import free_port
    from models.clock import clock_from_env
    from models.identity import Grant, RoleName, add_account
    from models.ledger import Ledger

    sign_ins: dict[str, tuple[str, str]] = {}
    with Ledger() as ledger, ledger.transaction() as session:
        for name, (role, country, authority) in DEMO_ACCOUNTS.items():
            password = secrets.token_urlsafe(12)
            grant = Grant(RoleName(role), country, authority)
            add_account(
                session,
                name=name,
                grants=[grant],
                now=clock_from_env().now(),
                actor="demo",
                password=password,
            )
            sign_ins[name] = (str(grant), password)
    port = free_port()
    log = open(root / "web.log", "ab")  # noqa: SIM115 (the child keeps writing to it)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "rogatory"), "web", "--port", str(port)],
        env={**os.environ, "ROGATORY_COOKIE_SECURE": "0"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    _await(lambda: _answers(base), 60, f"the HTTP API at {base}")
    with httpx.Client(base_url=base) as http:
        password = sign_ins["demo-coordinator"][1]
        me = http.post("/api/session", json={"username": "demo-coordinator", "password": password})
        if me.status_code != 200:
            raise SystemExit(f"demo FAILED: signing in to the API gave {me.status_code}: {me.text}")
        found = http.get("/api/cases", params={"country": "SV", "size": 1}).json()
    with httpx.Client(base_url=base, follow_redirects=True) as browser:
        password = sign_ins["demo-clerk"][1]
        inbox = browser.post("/login", data={"username": "demo-clerk", "password": password})
        if inbox.status_code != 200 or "<h1>Inbox</h1>" not in inbox.text:
            raise SystemExit(f"demo FAILED: the clerk's sign-in page gave {inbox.status_code}")
        rows = inbox.text.count('<a href="/cases/')
    print(
        f"  HTTP API at {base}/api (docs {base}/api/docs): demo-coordinator signed in and sees "
        f"{found['total']:,} Salvadoran cases",
        flush=True,
    )
    print(
        f"  web workspace at {base}/ : demo-clerk signed in through the form and sees "
        f"{rows} open hops on the first page of fgr's inbox",
        flush=True,
    )
    return process, sign_ins


def _answers(base: str) -> bool:
    import httpx

    try:
        return httpx.get(base + "/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


LIVE_CASES = [
    {
        "country": "SV",
        "direction": "outgoing",
        "kind": "mla",
        "legal_basis": "uncac",
        "offence_category": "bribery",
        "counterpart": "ES",
    },
    {
        "country": "GT",
        "direction": "incoming",
        "kind": "mla",
        "legal_basis": "uncac",
        "offence_category": "embezzlement",
        "counterpart": "US",
    },
    {
        "country": "IT",
        "direction": "outgoing",
        "kind": "mla",
        "legal_basis": "bilateral_treaty",
        "offence_category": "money_laundering",
        "counterpart": "CH",
    },
]


def _intake(base: dict[str, Any], today: datetime) -> dict[str, Any]:
    return {
        **base,
        "offence_date": f"{today.year - 4}-03-15",
        "requesting_authority": "Central authority (demo)",
        "conducting_authority": "Anti-corruption prosecutor (demo)",
        "subject": "demo case",
        "facts_summary": "demo facts",
        "assistance_sought": "bank records",
        "purpose": "demonstration",
    }


def _live(routings: Any, *, seconds: float, root: Path) -> list[str]:
    """Drive the live cases through real flow runs; each announcement is awaited, not assumed."""
    from prefect.deployments import run_deployment

    from models import engine
    from models.clock import clock_from_env
    from models.ledger import Ledger
    from models.queries import read_case_view
    from tasks.orchestration import start_case_flow, wake_case_flow

    clock = clock_from_env()
    refs = []
    with Ledger() as ledger:
        for base in LIVE_CASES:
            with ledger.transaction() as session:
                result = engine.register(
                    session=session,
                    clock=clock,
                    routings=routings,
                    data=_intake(base, clock.now()),
                    actor="demo",
                )
            refs.append(result.reference)
            start_case_flow(ledger, result.reference)
            print(f"  registered {result.reference} and started its flow run", flush=True)
        for ref in refs:
            _await_announcement(root, ref, 1)
        deadline = time.monotonic() + seconds
        decided = 0
        watcher: Any = None
        while time.monotonic() < deadline:
            time.sleep(5)
            # The first two cases move on; the third is left to run late and escalate.
            for ref in refs[:2]:
                view = read_case_view(ledger, ref)
                if view.status != "open" or decided >= 4 or view.hop is None:
                    continue
                with ledger.transaction() as session:
                    engine.decide(
                        session=session,
                        clock=clock,
                        routings=routings,
                        reference=ref,
                        outcome="forwarded",
                        hop=view.hop,
                        actor="demo",
                    )
                decided += 1
                after = read_case_view(ledger, ref)
                if view.flow_run_id:
                    wake_case_flow(view.flow_run_id, after)
                if after.status == "open" and after.hop is not None:
                    _await_announcement(root, ref, after.hop)
            # One clock sweep at a time; the first also works off the simulated backlog.
            if watcher is None or _finished(watcher.id):
                watcher = run_deployment(
                    "watch_clock/watch-clock",
                    parameters={"reconcile": False},
                    timeout=0,
                    as_subflow=False,
                )
            counts = Counter(m["title"].split(":")[0] for m in _outbox(root))
            print(
                f"  {clock.now():%Y-%m-%d} (demo time)  outbox: "
                + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
                flush=True,
            )
        if watcher is not None:
            _await(lambda: _finished(watcher.id), 120, "the last clock sweep to finish")
    return refs


def _await(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo FAILED: no sign of {what} within {seconds:.0f} s")
        time.sleep(0.5)


def _await_announcement(root: Path, reference: str, hop: int) -> None:
    title = f"New: {reference} hop {hop} is now with you"
    _await(lambda: any(m["title"] == title for m in _outbox(root)), 90, f"'{title}'")
    print(f"  {reference} hop {hop}: its holder was told", flush=True)


def _check_live_runs(refs: list[str]) -> None:
    """Every live case's flow run is waiting on its hop or finished, never failed or crashed."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from models.ledger import Ledger
    from models.queries import read_case_view

    with Ledger() as ledger:
        views = [read_case_view(ledger, ref) for ref in refs]
    with get_client(sync_client=True) as client:
        for view in views:
            if view.flow_run_id is None:
                raise SystemExit(f"demo FAILED: {view.reference} has no flow run")
            state = client.read_flow_run(UUID(view.flow_run_id)).state
            name = state.name if state else "unknown"
            if state is None or not (state.is_paused() or state.is_completed()):
                message = state.message if state else ""
                raise SystemExit(f"demo FAILED: {view.reference}'s flow run is {name}: {message}")
            print(f"  {view.reference}: flow run {name}", flush=True)


_TITLE = re.compile(r"^(\w+): ([A-Z]{2}-\d{4}-\d{6}) hop (\d+) ")


def _check_outbox(root: Path, refs: list[str]) -> None:
    """One "new hop" notice per live hop, no reminder for a late hop, nothing sent twice."""
    sent = _outbox(root)
    twice = [k for k, n in Counter((m["recipient"], m["title"]) for m in sent).items() if n > 1]
    if twice:
        raise SystemExit(f"demo FAILED: {len(twice)} message(s) sent twice, e.g. {twice[0]}")
    late_reminders = [
        m["title"]
        for m in sent
        if m["title"].startswith("Reminder:") and "Days late: 0 " not in m["body"]
    ]
    if late_reminders:
        raise SystemExit(f"demo FAILED: a reminder for a late hop: {late_reminders[0]}")
    opened: Counter[tuple[str, int]] = Counter()
    per_rung: Counter[tuple[str, str, str, str]] = Counter()
    for m in sent:
        found = _TITLE.match(m["title"])
        if found and found[1] == "New":
            opened[(found[2], int(found[3]))] += 1
        elif found:
            per_rung[(m["recipient"], found[2], found[3], found[1])] += 1
    repeats = sum(n - 1 for n in per_rung.values())
    live = {key: n for key, n in opened.items() if key[0] in refs}
    if not live or max(live.values()) != 1:
        raise SystemExit(f"demo FAILED: 'new hop' notices per live hop: {live}")
    print(
        f"  outbox checked: {len(sent)} messages, none twice; {len(live)} live hops, each "
        f"announced once; no reminder for a hop already late; {repeats} repeat(s) of a rung "
        "that its ladder asks to repeat (`repeat:`), each saying how late the hop is by then",
        flush=True,
    )


def _finished(run_id: Any) -> bool:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    return state is None or state.is_final()


def _outbox(root: Path) -> list[dict[str, Any]]:
    path = root / "outbox" / "outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _audit_report() -> Path:
    """Run the served audit_report deployment; the folder it wrote."""
    from prefect.deployments import run_deployment

    reports = Path(os.environ["ROGATORY_VAR"]) / "reports"
    run = cast(
        "FlowRun",
        run_deployment(
            "audit_report/audit-report",
            parameters={"out_dir": str(reports)},
            timeout=300,
            as_subflow=False,
        ),
    )
    state = run.state
    if state is None or not state.is_completed():
        raise SystemExit(f"audit_report did not complete: {state}")
    print(f"  flow run {run.name}: {state.name}", flush=True)
    return max(reports.iterdir())


def _finale(folder: Path, root: Path, started: float) -> None:
    report = folder / "report.html"
    data = json.loads((folder / "report.json").read_text())
    print(f"  report: {report.resolve()}")
    print("  headlines:")
    for line in data["headlines"][:5]:
        print(f"    - {line}")
    print("  where delays build up (share of business days late, closed cases):")
    for row in [r for r in data["tables"]["delay_attribution"] if r["scope"] == "all"][:5]:
        print(f"    {row['share']:>6.1%}  {row['country']}  {row['authority_name']}")
    print("  open cases most at risk of prescription (not yet prescribed):")
    risky = [r for r in data["tables"]["risk_register"] if not r.get("prescribed")]
    for row in risky[:5]:
        print(
            f"    {row['reference']:<16} risk {row['risk']:>4.0%}  prescribes "
            f"{row['prescription_date']}  P90 finish {row['p90_completion']}  at {row['step']}"
        )
    print(f"  outbox: {len(_outbox(root))} messages in {root / 'outbox' / 'outbox.jsonl'}")
    print(f"  finished in {time.monotonic() - started:.0f} s")

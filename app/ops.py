"""Operating commands: `serve` (Prefect server and deployments), `watch`, `notify`, and the
calls that start or wake a case's flow after a ledger command."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from app.cli import emit

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

Sub = Any


def register(sub: Sub) -> None:
    p = sub.add_parser("serve", help="start (or join) a Prefect server and serve the deployments")
    p.add_argument("--port", type=int, default=int(os.environ.get("ROGATORY_PREFECT_PORT", 4200)))
    p.add_argument(
        "--poll",
        type=float,
        default=float(os.environ.get("ROGATORY_POLL", 10)),
        help="seconds between the runner's polls (a resumed case waits for it)",
    )
    p.add_argument(
        "--watch-every",
        type=float,
        default=5.0,
        help="minutes between watch_clock runs (default 5)",
    )
    p.add_argument("--limit", type=int, default=8, help="flow runs executing at once")
    p.set_defaults(handler=serve)

    w = sub.add_parser("watch", help="sweep the clock once without Prefect (cron, debugging)")
    w.add_argument(
        "--thresholds",
        help="prescription slack thresholds in days (default: the sweep's own)",
    )
    w.add_argument(
        "--reconcile",
        action="store_true",
        help="also give every open case a live flow run (needs a Prefect server)",
    )
    w.add_argument("--json", action="store_true")
    w.set_defaults(handler=watch)

    d = sub.add_parser("db", help="the ledger database")
    ds = d.add_subparsers(metavar="ACTION")
    u = ds.add_parser(
        "upgrade", help="create or upgrade the ledger's tables (the one migration step)"
    )
    u.set_defaults(handler=db_upgrade)

    n = sub.add_parser("notify", help="notifications through apprise")
    ns = n.add_subparsers(metavar="ACTION")
    t = ns.add_parser("test", help="send a test message to an apprise tag")
    t.add_argument("tag")
    t.set_defaults(handler=notify_test)
    c = ns.add_parser(
        "config",
        help="add an offline outbox line for every contact tag the apprise config does not "
        "serve yet (existing lines are left as they are)",
    )
    c.add_argument("--print", action="store_true", help="print a complete offline config instead")
    c.set_defaults(handler=notify_config)
    q = ns.add_parser("pending", help="deliveries not sent yet, with each recipient's error")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=notify_pending)

    g = sub.add_parser(
        "digest",
        help="record today's digest for each country's coordinator (once a day), send what is owed",
    )
    g.add_argument("--country", help="only this country (default: every one with open cases)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(handler=digest)

    pr = sub.add_parser("problems", help="cases the system could not process, and why")
    pr.add_argument("--all", action="store_true", help="also the problems since resolved")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(handler=problems_list)


# -- case flows ----------------------------------------------------------------------------------


def start_flow(reference: str, *, quiet: bool = False) -> None:
    """After a registration: start the case's flow run, or say the watcher will."""
    from app.prefect_env import discover_api_url, server_reachable
    from models.ledger import Ledger

    url = discover_api_url()
    if not server_reachable(url):
        _say(
            quiet,
            f"{reference}: no Prefect server answers, so its flow is not started yet; "
            "the watcher's reconciliation starts it once `rogatory serve` runs.",
        )
        return
    from tasks.orchestration import start_case_flow

    with Ledger() as ledger:
        run_id = start_case_flow(ledger, reference)
    _say(quiet, f"{reference}: flow run {run_id} started")


def wake_flow(reference: str, *, quiet: bool = False) -> None:
    """After a command on a case: resume its flow run so it acts on what the ledger says now.

    Every command that moves, stops or closes a case calls this: a withdrawn case's run must
    end, a reassigned hop's new holder must be told, and a form typed meanwhile is applied.
    """
    from app.prefect_env import discover_api_url, server_reachable
    from models.ledger import Ledger
    from models.queries import read_case_view

    # Prefect is imported only once a server is known to answer (a second and more).
    answers = server_reachable(discover_api_url())
    view = None
    if answers:
        with Ledger() as ledger:
            view = read_case_view(ledger, reference)
    if view is None or view.flow_run_id is None:
        _say(
            quiet,
            "recorded. No Prefect server answers (or the case has no flow run yet): the "
            "case's flow picks the change up once the server is back, and the watcher's "
            "reconciliation makes sure it does.",
        )
        return
    from tasks.orchestration import case_run_tags, wake_case_flow

    try:
        with Ledger() as ledger, ledger.session() as session:
            tags = case_run_tags(session=session, reference=reference)
        woken = wake_case_flow(view.flow_run_id, view, tags=tags)
    except Exception as exc:  # the command stands; reconciliation wakes the run later
        _say(quiet, f"recorded, but its flow run could not be woken ({exc}); the watcher will")
        return
    if woken:
        _say(quiet, f"{reference}: its flow run was resumed")


def _say(quiet: bool, text: str) -> None:
    """A note about the case's flow run: on stderr, so stdout stays the command's answer."""
    if not quiet:
        print(f"note: {text}", file=sys.stderr)


# -- serve ---------------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    from app.prefect_env import QUIET, api_url_file, var_dir

    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    os.environ["PREFECT_RUNNER_POLL_FREQUENCY"] = str(max(1, round(args.poll)))
    server: subprocess.Popen[bytes] | None = None
    if not os.environ.get("PREFECT_API_URL"):
        server = start_local_server(port=args.port, home=var_dir() / "prefect")
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{args.port}/api"
        api_url_file().write_text(os.environ["PREFECT_API_URL"])
    ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
    print(f"Prefect UI: {ui}   (API {os.environ['PREFECT_API_URL']})", flush=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_RUNNER_POLL_FREQUENCY,
        temporary_settings,
    )

    from app.health import watch_the_watcher

    # Prefect reads its settings at import: hand it the server and poll explicitly.
    updates = {
        PREFECT_API_URL: os.environ["PREFECT_API_URL"],
        PREFECT_RUNNER_POLL_FREQUENCY: max(1, round(args.poll)),
    }
    try:
        with temporary_settings(updates=updates):
            watch_the_watcher(watch_every=timedelta(minutes=args.watch_every))
            serve_deployments(watch_every=timedelta(minutes=args.watch_every), limit=args.limit)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        if server is not None:
            api_url_file().unlink(missing_ok=True)
            stop_process(server)
    return 0


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve_deployments(*, watch_every: timedelta, limit: int) -> None:
    from prefect import serve as prefect_serve

    prefect_serve(
        *served_deployments(watch_every=watch_every), limit=limit, pause_on_shutdown=False
    )


def served_deployments(*, watch_every: timedelta) -> list[RunnerDeployment]:
    """The deployments `rogatory serve` serves: prefect.yaml's, without a work pool."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from flows.audit_report import audit_report
    from flows.route_request import route_request
    from flows.watch_clock import watch_clock

    # As in prefect.yaml: one sweep at a time (one due while another runs is dropped, the next
    # comes minutes later), one report at a time (a second one waits its turn).
    one_sweep = ConcurrencyLimitConfig(
        limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
    )
    # `to_deployment` is sync here (no running event loop): Prefect types it as either.
    return [
        cast("RunnerDeployment", route_request.to_deployment(name="route-request")),
        cast(
            "RunnerDeployment",
            watch_clock.to_deployment(
                name="watch-clock",
                interval=watch_every,
                parameters={"daily_digest": True},
                concurrency_limit=one_sweep,
            ),
        ),
        cast(
            "RunnerDeployment",
            audit_report.to_deployment(name="audit-report", cron="0 6 * * 1", concurrency_limit=1),
        ),
    ]


def start_local_server(*, port: int, home: Path) -> subprocess.Popen[bytes]:
    """`prefect server start` on SQLite under `home`, ready when its health check answers."""
    import httpx

    home.mkdir(parents=True, exist_ok=True)
    database = home / "prefect.db"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home.resolve()),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database.resolve()}",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
    }
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "ab")  # noqa: SIM115 (the server keeps writing to it)
    prefect = str(Path(sys.executable).parent / "prefect")
    process = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/health"
    print(f"starting the Prefect server (log: {home / 'server.log'}) ...", flush=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the Prefect server stopped at start: see {home / 'server.log'}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_process(process)
    raise SystemExit(f"the Prefect server did not answer within 120 s: see {home / 'server.log'}")


def spawn_serve(
    log: Path, *, poll: float, watch_every: float, limit: int = 8, timeout: float = 120
) -> subprocess.Popen[bytes]:
    """`rogatory serve` as a child process (with this process's environment), once it serves."""
    out = open(log, "ab")  # noqa: SIM115 (the child keeps writing to it)
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "rogatory"),
            "serve",
            "--poll",
            str(poll),
            "--watch-every",
            str(watch_every),
            "--limit",
            str(limit),
        ],
        env=os.environ.copy(),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while "deployments are being served" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise SystemExit(f"rogatory serve did not start: see {log}")
        time.sleep(0.5)
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


# -- the database --------------------------------------------------------------------------------


def db_upgrade(args: argparse.Namespace) -> int:
    from models.ledger import create_schema, make_engine
    from models.migrations import HEAD, current_revision

    engine = make_engine()
    where = engine.url.render_as_string(hide_password=True)
    try:
        before = current_revision(engine)
        create_schema(engine)
    finally:
        engine.dispose()
    if before == HEAD:
        print(f"ledger {where} already at revision {HEAD}: nothing to do")
    else:
        print(f"ledger {where} upgraded from {before or 'empty'} to revision {HEAD}")
    return 0


# -- watch and notify ------------------------------------------------------------------------------


def watch(args: argparse.Namespace) -> int:
    from models.clock import clock_from_env
    from models.ledger import Ledger
    from models.sweep import DEFAULT_SLACK_THRESHOLDS
    from tasks.notify import send_pending
    from tasks.sweep import sweep_now

    given = args.thresholds
    if given is None:
        given = ",".join(map(str, DEFAULT_SLACK_THRESHOLDS))
    thresholds = [int(x) for x in given.split(",") if x.strip()]
    with Ledger() as ledger:
        rungs, alerts = sweep_now(ledger, thresholds=thresholds)
        sent = send_pending(ledger=ledger, now=clock_from_env().now())
    summary = {
        "hops_due": rungs.due_hops,
        "rungs_recorded": rungs.created,
        "rungs_superseded": rungs.superseded,
        "prescription_alerts_recorded": alerts.created,
        "cases_with_problems": len(rungs.failures) + len(alerts.failures),
        "sent": sent.sent,
        "send_failures": sent.failed,
    }
    if args.reconcile:
        from app.prefect_env import discover_api_url, server_reachable

        if not server_reachable(discover_api_url()):
            print("no Prefect server answers: nothing reconciled", file=sys.stderr)
            return 1
        from tasks.orchestration import reconcile

        with Ledger() as ledger:
            fixed = reconcile(ledger)
        summary.update(flows_started=fixed.started, flows_woken=fixed.woken)
    emit(args, summary, "  ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def digest(args: argparse.Namespace) -> int:
    from models.clock import clock_from_env
    from models.ledger import Ledger
    from tasks.digest import digest_now
    from tasks.notify import send_pending

    now = clock_from_env().now()
    with Ledger() as ledger:
        recorded = digest_now(
            ledger, now=now, countries=[args.country.upper()] if args.country else None
        )
        sent = send_pending(ledger=ledger, now=now)
    summary = {"digests_recorded": recorded, "sent": sent.sent, "send_failures": sent.failed}
    emit(args, summary, "  ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def notify_test(args: argparse.Namespace) -> int:
    from tasks.notify import load_apprise, send
    from tasks.notify_sources import apprise_source

    ok = send(
        load_apprise(),
        tags=[args.tag],
        title=f"rogatory test message to {args.tag}",
        body="This is a test of rogatory's notifications.\nNo action is needed.",
    )
    if ok:
        print(f"sent to tag {args.tag!r}")
        return 0
    print(
        f"nothing delivered to tag {args.tag!r}: see `rogatory notify pending` for the errors "
        f"of real deliveries, and check {apprise_source()}",
        file=sys.stderr,
    )
    return 1


def notify_config(args: argparse.Namespace) -> int:
    from models.contacts import (
        add_missing_tags,
        apprise_config_path,
        contact_tags,
        outbox_config,
        served_in,
    )
    from models.loader import load_available
    from tasks.notify_sources import apprise_source, read_secret

    routings, _ = load_available()
    tags = contact_tags(routings.values())
    if args.print:
        print(outbox_config(tags), end="")
        return 0
    source = apprise_source()
    if source.secret is not None:
        # The config in force lives in the Secret block: it is not this command's to rewrite.
        missing = sorted(set(tags) - served_in(read_secret(source.secret)))
        if not missing:
            print(f"every contact tag already has a line in {source}: nothing to add")
            return 0
        print(f"{source} has no line for {len(missing)} tag(s); add these (offline outbox shown):")
        print("\n".join(f"{t}=outbox://local?recipient={t}" for t in missing))
        return 1
    added = add_missing_tags(tags)
    where = apprise_config_path()
    if added:
        print(f"added {len(added)} tag(s) to {where}, each to the offline outbox:")
        print("\n".join(f"  {t}" for t in added))
        print("Put a real apprise URL on their lines to reach people.")
    else:
        print(f"every contact tag already has a line in {where}: nothing changed")
    return 0


def notify_pending(args: argparse.Namespace) -> int:
    from models.deliveries import not_sent
    from models.ledger import Ledger

    with Ledger() as ledger, ledger.session() as session:
        items = not_sent(session)
    lines = []
    for r in items:
        lines.append(
            f"{r['key']:<36} {','.join(r['tags']):<28} tries {r['attempts']:>2}  "
            f"next {r['next_attempt_at']:%Y-%m-%d %H:%M}"
        )
        for rid, recipient in sorted((r["recipients"] or {}).items()):
            state = "sent" if recipient.get("sent_at") else f"failed: {recipient.get('error')}"
            lines.append(f"    {rid}  {state}")
        if not r["recipients"] and r["last_error"]:
            lines.append(f"    {r['last_error']}")
    emit(args, items, "\n".join(lines) or "nothing pending.")
    return 0


def problems_list(args: argparse.Namespace) -> int:
    from models.ledger import Ledger
    from models.problems import listed

    with Ledger() as ledger, ledger.session() as session:
        items = listed(session, include_resolved=args.all)
    text = "\n".join(
        f"{r['reference']:<16} {r['stage']:<12} seen {r['occurrences']}x, last "
        f"{r['last_seen_at']:%Y-%m-%d %H:%M}"
        f"{'  (resolved)' if r['resolved_at'] else ''}\n    {r['message']}"
        for r in items
    )
    emit(args, items, text or "no problem recorded.")
    return 0

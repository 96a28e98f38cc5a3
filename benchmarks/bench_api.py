"""The HTTP API under load: a real `rogatory web` (uvicorn) over a 200,000-case SQLite ledger.

The ledger is written by the caseload simulator (4 years x 50,000 requests through the engine's
own commands, ending a month before the benchmark was written), cached under var/bench/ and
copied for each run, since the run decides cases in it. The server runs as a child process
with the wall clock and no Prefect server (PREFECT_API_URL unset, ROGATORY_VAR a fresh folder),
so each command's wake finds none and stops there. Every request goes over loopback HTTP with a
coordinator's Bearer token, one client at a time for the latencies, then 50 at once:

    api_inbox_p95_ms        GET /api/inbox/{country}/{authority} of the busiest authorities
    api_timeline_p95_ms     GET /api/cases/{reference} of random cases
    api_decide_p95_ms       POST /api/cases/{reference}/decide (forwarded, hop and seq read
                            from the timeline first, untimed) on distinct open cases
    api_concurrent_*        50 clients for 60 s, each reading an inbox, a timeline and deciding
                            a case's open hop with the seq it read: responses that are neither
                            2xx nor the intended 409 (someone decided first) are errors; every
                            accepted decision must then be in the ledger and the chain verify.

Timelines and decisions are timed after the inbox requests, once the server holds the country
files (before any inbox or registration, it parses a case's pinned routing on every request).
`python -m benchmarks.bench_api --build` builds the cached ledger alone (about 5 minutes).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks import Result

YEARS = 4
PER_YEAR = 50_000
CASES = YEARS * PER_YEAR
SEED = 2046
START = datetime(2022, 11, 1, tzinfo=UTC)
LAYOUT = "v1"
"""Bump when the cached ledger must be built again (simulator, schema or parameters changed)."""
FOLDER = Path(os.environ.get("ROGATORY_BENCH_DIR", "var/bench"))

BUSY = 10
"""The authorities with the most open hops whose inboxes are read."""
INBOX_REQUESTS = 200
TIMELINE_REQUESTS = 300
DECIDE_REQUESTS = 200
WARM_UP = 10
CLIENTS = 50
CONCURRENT_S = 60.0
TIMEOUT_S = 60.0
ACCOUNT = "bench-coordinator"


# -- the ledger -----------------------------------------------------------------------------------


def ledger_file() -> Path:
    """The cached simulated ledger, built on first use (a few minutes)."""
    path = FOLDER / f"api-{CASES}-{SEED}-{LAYOUT}.db"
    if not path.exists():
        build_ledger(path)
    return path


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def build_ledger(path: Path) -> None:
    from models.engine import Routings
    from models.ledger import Ledger
    from models.loader import load_all
    from models.simulation import simulate

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.db")
    for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        leftover.unlink(missing_ok=True)
    print(f"building {path} ({YEARS} years x {PER_YEAR:,} cases) ...", file=sys.stderr, flush=True)
    began = time.perf_counter()
    ledger = Ledger(f"sqlite:///{partial}", migrate=True)
    try:
        summary = simulate(
            start=START,
            ledger=ledger,
            routings=Routings(load_all()),
            years=YEARS,
            per_year=PER_YEAR,
            seed=SEED,
        )
    finally:
        ledger.dispose()
    seconds = time.perf_counter() - began
    if summary.cases != CASES:
        raise AssertionError(f"the simulator registered {summary.cases} cases, not {CASES}")
    _sidecar(path).write_text(
        json.dumps(
            {
                "cases": summary.cases,
                "transitions": summary.transitions,
                "open_cases": summary.open_cases,
                "build_s": round(seconds, 1),
                "start": START.isoformat(),
                "end": summary.end.isoformat(),
            }
        )
        + "\n"
    )
    partial.replace(path)
    print(f"built in {seconds:.0f} s", file=sys.stderr, flush=True)


def _built(path: Path) -> dict[str, Any]:
    sidecar = _sidecar(path)
    return json.loads(sidecar.read_text()) if sidecar.exists() else {}


# -- what the clients work on ---------------------------------------------------------------------


@dataclass
class World:
    """What the run reads from its copy of the ledger before the server starts."""

    busy: list[tuple[str, str, int]]
    """(country, authority, open hops): the busiest authorities, whose inboxes are timed."""
    deciding: list[tuple[str, str, int]]
    """(country, authority, open hops that may be forwarded): the busiest such authorities,
    whose inboxes the concurrent clients read to pick a case to decide."""
    references: list[str]
    """Every case."""
    forwardable: list[str]
    """Open cases whose open hop may be forwarded."""
    steps: set[tuple[str, str, str]]
    """(routing version, route, step) that allow `forwarded`."""
    step_ids: dict[tuple[str, str], set[str]]
    """(country, authority): the ids of its route steps that allow `forwarded` on some route."""


def _world(url: str) -> World:
    from sqlalchemy import select

    from models.domain import Outcome
    from models.engine import Routings
    from models.ledger import Ledger, Request, RoutingVersion, Step

    ledger = Ledger(url)
    routings = Routings({})
    steps: set[tuple[str, str, str]] = set()
    step_ids: dict[tuple[str, str], set[str]] = {}
    open_hops: Counter[tuple[str, str]] = Counter()
    deciding: Counter[tuple[str, str]] = Counter()
    forwardable: list[str] = []
    try:
        with ledger.session() as session:
            for version in session.scalars(select(RoutingVersion.version)):
                routing = routings.pinned(session, version)
                for route in routing.config.routes:
                    for index, step in enumerate(route.steps):
                        if Outcome.FORWARDED in route.decisions_for(index):
                            steps.add((version, route.id, step.id))
                            key = (routing.country, step.holder)
                            step_ids.setdefault(key, set()).add(step.id)
            references = list(session.scalars(select(Request.reference).order_by(Request.id)))
            rows = session.execute(
                select(
                    Request.reference,
                    Request.routing_version,
                    Request.route_id,
                    Request.status,
                    Request.current_hop,
                    Step.hop,
                    Step.route_step,
                    Step.country,
                    Step.holder,
                )
                .join(Request, Step.request_id == Request.id)
                .where(Step.closed_at.is_(None))
                .order_by(Request.id)
            )
            for ref, version, route_id, status, current, hop, step_id, country, holder in rows:
                open_hops[country, holder] += 1
                if status == "open" and current == hop and (version, route_id, step_id) in steps:
                    forwardable.append(ref)
                    deciding[country, holder] += 1
    finally:
        ledger.dispose()

    def busiest(counts: Counter[tuple[str, str]]) -> list[tuple[str, str, int]]:
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(country, holder, n) for (country, holder), n in ordered[:BUSY]]

    return World(
        busy=busiest(open_hops),
        deciding=busiest(deciding),
        references=references,
        forwardable=forwardable,
        steps=steps,
        step_ids=step_ids,
    )


def _accounts(url: str, tokens: int) -> list[str]:
    """A coordinator of every country of the ledger, and `tokens` API tokens of theirs."""
    from models import queries
    from models.identity import Grant, RoleName, Scope, add_account, issue_token
    from models.ledger import Ledger

    now = datetime.now(UTC)
    ledger = Ledger(url)
    try:
        with ledger.transaction() as session:
            grants = [Grant(RoleName.COORDINATOR, c) for c in queries.countries(session)]
            add_account(session, name=ACCOUNT, grants=grants, now=now, actor="bench")
            return [
                issue_token(
                    session,
                    name=ACCOUNT,
                    label=f"bench client {i}",
                    scopes=list(Scope),
                    expires_in=timedelta(days=1),
                    now=now,
                    actor="bench",
                )[1]
                for i in range(tokens)
            ]
    finally:
        ledger.dispose()


# -- the server -----------------------------------------------------------------------------------


def _start_server(root: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    from app.prefect_env import QUIET, free_port

    env = {
        **os.environ,
        **QUIET,
        "ROGATORY_DATABASE_URL": url,
        "ROGATORY_VAR": str(root / "var"),
    }
    for name in ("PREFECT_API_URL", "ROGATORY_CLOCK"):
        env.pop(name, None)
    port = free_port()
    log = open(root / "web.log", "ab")  # noqa: SIM115 (the child keeps writing to it)
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "rogatory"),
            "web",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"rogatory web stopped at start: see {root / 'web.log'}")
        try:
            if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"rogatory web did not answer within 60 s: see {root / 'web.log'}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    from app.ops import stop_process

    stop_process(process)


# -- one client at a time -------------------------------------------------------------------------


def p95(samples: Iterable[float]) -> float:
    """The nearest-rank 95th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _timed(send: Any, *args: Any, **kwargs: Any) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = send(*args, **kwargs)
    return response, (time.perf_counter() - began) * 1000


def _expect(response: httpx.Response, what: str) -> Any:
    if not response.is_success:
        raise AssertionError(f"{what}: {response.status_code} {response.text[:500]}")
    return response.json()


def _open_hop(timeline: dict[str, Any], steps: set[tuple[str, str, str]]) -> int | None:
    """The open hop of a case if it may be forwarded."""
    if timeline["status"] != "open":
        return None
    for hop in timeline["hops"]:
        if hop["closed_at"] is None:
            key = (timeline["routing_version"], timeline["route"], hop["step"])
            return int(hop["hop"]) if key in steps else None
    return None


@dataclass
class Sequential:
    inbox_ms: list[float] = field(default_factory=list)
    inbox_items: list[int] = field(default_factory=list)
    timeline_ms: list[float] = field(default_factory=list)
    decide_ms: list[float] = field(default_factory=list)
    decided: list[tuple[str, int]] = field(default_factory=list)
    """(reference, seq of the `decided` event) of every accepted decision."""


def _sequential(base: str, token: str, world: World, rng: random.Random) -> Sequential:
    out = Sequential()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT_S) as http:
        # Warm up: the first requests load the country files and the pinned routings.
        for country, authority, _ in world.busy[:WARM_UP]:
            _expect(http.get(f"/api/inbox/{country}/{authority}"), "warm-up inbox")
        for reference in rng.sample(world.references, WARM_UP):
            _expect(http.get(f"/api/cases/{reference}"), "warm-up timeline")

        for i in range(INBOX_REQUESTS):
            country, authority, _ = world.busy[i % len(world.busy)]
            response, ms = _timed(http.get, f"/api/inbox/{country}/{authority}")
            out.inbox_items.append(len(_expect(response, f"inbox {country}/{authority}")))
            out.inbox_ms.append(ms)

        for reference in rng.sample(world.references, TIMELINE_REQUESTS):
            response, ms = _timed(http.get, f"/api/cases/{reference}")
            _expect(response, f"timeline {reference}")
            out.timeline_ms.append(ms)

        if len(world.forwardable) < DECIDE_REQUESTS:
            raise AssertionError(f"only {len(world.forwardable)} open cases may be forwarded")
        chosen = rng.sample(world.forwardable, DECIDE_REQUESTS)
        taken = set(chosen)
        world.forwardable = [r for r in world.forwardable if r not in taken]
        for reference in chosen:
            timeline = _expect(http.get(f"/api/cases/{reference}"), f"timeline {reference}")
            hop = _open_hop(timeline, world.steps)
            if hop is None:
                raise AssertionError(f"{reference} has no open hop to forward: {timeline}")
            body = {"outcome": "forwarded", "hop": hop, "seq": timeline["seq"]}
            response, ms = _timed(http.post, f"/api/cases/{reference}/decide", json=body)
            result = _expect(response, f"decide {reference}")
            out.decide_ms.append(ms)
            out.decided.append((reference, int(result["seq"])))
    return out


# -- many clients at once -------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    conflicts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    decided: list[tuple[str, int]] = field(default_factory=list)
    skipped: int = 0
    """Timelines read whose case had no open hop that may be forwarded (no decide sent)."""
    ms: dict[str, list[float]] = field(
        default_factory=lambda: {"inbox": [], "case": [], "decide": []}
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, what: str, detail: str) -> None:
        with self.lock:
            self.errors[what] += 1
            if len(self.samples) < 10:
                self.samples.append(detail[:300])


def _client(base: str, token: str, world: World, seed: int, until: float, tally: Tally) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    mine: dict[str, list[float]] = {"inbox": [], "case": [], "decide": []}
    requests = conflicts = skipped = 0
    decided: list[tuple[str, int]] = []

    def send(kind: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        nonlocal requests
        try:
            response, ms = _timed(http.request, method, path, **kwargs)
        except httpx.HTTPError as exc:
            requests += 1
            tally.error(f"{kind} {type(exc).__name__}", f"{method} {path}: {exc!r}")
            return None
        requests += 1
        mine[kind].append(ms)
        return response

    with httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT_S) as http:
        while time.monotonic() < until:
            country, authority, _ = rng.choice(world.deciding)
            response = send("inbox", "GET", f"/api/inbox/{country}/{authority}")
            if response is None:
                continue
            if not response.is_success:
                tally.error(f"inbox {response.status_code}", response.text)
                continue
            ids = world.step_ids.get((country, authority), set())
            items = [i for i in response.json() if i["step"] in ids]
            if not items:
                skipped += 1
                continue
            reference = rng.choice(items)["reference"]
            response = send("case", "GET", f"/api/cases/{reference}")
            if response is None:
                continue
            if not response.is_success:
                tally.error(f"timeline {response.status_code}", response.text)
                continue
            timeline = response.json()
            hop = _open_hop(timeline, world.steps)
            if hop is None:
                skipped += 1
                continue
            body = {"outcome": "forwarded", "hop": hop, "seq": timeline["seq"]}
            response = send("decide", "POST", f"/api/cases/{reference}/decide", json=body)
            if response is None:
                continue
            if response.status_code == 409:
                conflicts += 1
            elif response.is_success:
                decided.append((reference, int(response.json()["seq"])))
            else:
                tally.error(f"decide {response.status_code}", response.text)
    with tally.lock:
        tally.requests += requests
        tally.conflicts += conflicts
        tally.skipped += skipped
        tally.decided += decided
        for kind, samples in mine.items():
            tally.ms[kind] += samples


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of process `pid` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _concurrent(base: str, tokens: list[str], world: World) -> tuple[Tally, float]:
    tally = Tally()
    began = time.monotonic()
    until = began + CONCURRENT_S
    threads = [
        threading.Thread(
            target=_client, args=(base, token, world, 1000 + i, until, tally), daemon=True
        )
        for i, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(until - time.monotonic() + 3 * TIMEOUT_S)
    seconds = time.monotonic() - began
    if any(thread.is_alive() for thread in threads):
        raise AssertionError("a client did not finish within its timeouts")
    return tally, seconds


@dataclass
class Cpu:
    """CPU seconds the server and this process (the clients) used during the concurrent run."""

    server: float
    clients: float


# -- the checks -----------------------------------------------------------------------------------


@dataclass
class Checked:
    decided_events: int
    missing: list[tuple[str, int]]
    broken: list[str]
    verify_s: float


def _check(url: str, accepted: list[tuple[str, int]]) -> Checked:
    """Every accepted decision has its `decided` event, by the bench account; the chain verifies."""
    from sqlalchemy import select

    from models.ledger import Event, Ledger, Request
    from models.queries import verify_chain

    ledger = Ledger(url)
    try:
        with ledger.session() as session:
            found = {
                (reference, seq)
                for reference, seq in session.execute(
                    select(Request.reference, Event.seq)
                    .join(Request, Event.request_id == Request.id)
                    .where(Event.kind == "decided", Event.actor == ACCOUNT)
                )
            }
            missing = [pair for pair in accepted if pair not in found]
            began = time.perf_counter()
            broken = [str(link) for link in verify_chain(session=session)]
            seconds = time.perf_counter() - began
    finally:
        ledger.dispose()
    return Checked(len(found), missing, broken, seconds)


# -- the run --------------------------------------------------------------------------------------


def measure(source: Path) -> list[Result]:
    from models.ledger import Ledger

    load = os.getloadavg()[0]
    built = _built(source)
    root = Path(tempfile.mkdtemp(prefix="rogatory-api-"))
    try:
        db = root / "ledger.db"
        shutil.copyfile(source, db)
        url = f"sqlite:///{db}"
        Ledger(url, migrate=True).dispose()
        world = _world(url)
        tokens = _accounts(url, 1 + CLIENTS)
        rng = random.Random(SEED)
        server, base = _start_server(root, url)
        try:
            one = _sequential(base, tokens[0], world, rng)
            server_cpu, client_cpu = _cpu_s(server.pid), time.process_time()
            many, seconds = _concurrent(base, tokens[1:], world)
            cpu = Cpu(_cpu_s(server.pid) - server_cpu, time.process_time() - client_cpu)
        finally:
            _stop(server)
        checked = _check(url, one.decided + many.decided)
        return _results(source, built, load, world, one, many, seconds, cpu, checked)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _results(
    source: Path,
    built: dict[str, Any],
    load: float,
    world: World,
    one: Sequential,
    many: Tally,
    seconds: float,
    cpu: Cpu,
    checked: Checked,
) -> list[Result]:
    ledger = (
        f"SQLite ledger of {built.get('cases', CASES):,} simulated cases "
        f"({YEARS} years x {PER_YEAR:,}, seed {SEED}, {built.get('transitions', 0):,} engine "
        f"commands, {built.get('open_cases', 0):,} open at the end; {source.name}, a fresh copy "
        "per run)"
    )
    where = (
        f"real `rogatory web` (uvicorn, one process) on loopback, coordinator Bearer token, no "
        f"Prefect server; load average {load:.2f} at start, {os.cpu_count()} CPUs"
    )
    busy = ", ".join(f"{c}/{a} ({n:,})" for c, a, n in world.busy)
    deciding = ", ".join(f"{c}/{a} ({n:,})" for c, a, n in world.deciding)
    errors = sum(many.errors.values())
    accepted = len(one.decided) + len(many.decided)
    total = {kind: len(samples) for kind, samples in many.ms.items()}
    checks = (
        f"after the run: {accepted:,} accepted decisions ({len(one.decided)} sequential + "
        f"{len(many.decided):,} concurrent), {checked.decided_events:,} `decided` events by "
        f"{ACCOUNT} in the ledger, {len(checked.missing)} accepted decisions without their "
        f"event; verify_chain over every case: {len(checked.broken)} broken "
        f"({checked.verify_s:.0f} s)"
    )
    failed = []
    if checked.missing:
        failed.append(f"accepted decisions without their event: {checked.missing[:5]}")
    if checked.decided_events != accepted:
        failed.append(f"{checked.decided_events} decided events for {accepted} accepted")
    if checked.broken:
        failed.append(f"the chain does not verify: {checked.broken[:5]}")
    if failed:
        raise AssertionError("; ".join(failed))
    concurrent = (
        f"{CLIENTS} threads each with its own httpx.Client and token for {seconds:.0f} s, each "
        f"looping: inbox of one of the {BUSY} authorities with the most open hops that may "
        f"be forwarded ({deciding}) -> timeline of a random case of it at such a step -> "
        f"decide its open hop (forwarded, with the seq read; not sent {many.skipped:,} times, "
        f"when the inbox had no such case or the timeline showed none open); "
        f"{many.requests:,} requests ({total['inbox']:,} "
        f"inbox p95 {_p95(many.ms['inbox'])}, {total['case']:,} timeline p95 "
        f"{_p95(many.ms['case'])}, {total['decide']:,} decide p95 {_p95(many.ms['decide'])}); "
        f"CPU meanwhile: server {cpu.server:.0f} s, clients {cpu.clients:.0f} s of "
        f"{seconds * (os.cpu_count() or 1):.0f} s on {os.cpu_count()} CPUs; {ledger}; {where}"
    )
    error_note = (
        f"responses neither 2xx nor the intended 409: {dict(many.errors) or 'none'}"
        + (f" (e.g. {many.samples[:3]})" if many.samples else "")
        + f"; {checks}; {concurrent}"
    )
    return [
        Result(
            "api_inbox_p95_ms",
            round(p95(one.inbox_ms), 2),
            "ms",
            100.0,
            "lower",
            f"{len(one.inbox_ms)} GET /api/inbox, one client, round-robin over the {BUSY} "
            f"authorities with the most open hops: {busy}; {min(one.inbox_items):,} to "
            f"{max(one.inbox_items):,} items a response; after {WARM_UP} untimed warm-up "
            f"requests; {ledger}; {where}",
        ),
        Result(
            "api_timeline_p95_ms",
            round(p95(one.timeline_ms), 2),
            "ms",
            50.0,
            "lower",
            f"{len(one.timeline_ms)} GET /api/cases/{{reference}} of random cases (seeded), one "
            f"client, after the inbox requests (the server then holds the routings); {ledger}; "
            f"{where}",
        ),
        Result(
            "api_decide_p95_ms",
            round(p95(one.decide_ms), 2),
            "ms",
            50.0,
            "lower",
            f"{len(one.decide_ms)} POST /api/cases/{{reference}}/decide (forwarded, hop and seq "
            f"from a timeline read just before, untimed) on distinct random open cases whose "
            f"open hop may be forwarded, one client; each a durable commit (synchronous=FULL); "
            f"{ledger}; {where}",
        ),
        Result("api_concurrent_errors", errors, "count", 0, "lower", error_note),
        Result(
            "api_concurrent_requests_per_s",
            round(many.requests / seconds, 1),
            "per_s",
            None,
            "higher",
            concurrent,
        ),
        Result(
            "api_concurrent_conflicts",
            many.conflicts,
            "count",
            None,
            "lower",
            f"decides refused with 409 because another client moved the case first, out of "
            f"{total['decide']:,} decides; {concurrent}",
        ),
    ]


def _p95(samples: list[float]) -> str:
    return f"{p95(samples):.0f} ms" if samples else "-"


def run() -> list[Result]:
    return measure(ledger_file())


if __name__ == "__main__":
    if sys.argv[1:] == ["--build"]:
        ledger_file()
    else:
        for result in run():
            print(result)

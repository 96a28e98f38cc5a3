"""The web pages under load: a real `rogatory web` over bench_api's 200,000-case SQLite ledger.

A fresh copy of the cached ledger is brought to the newest schema (`rogatory db upgrade`) and
given password accounts: a clerk of the domestic authority with the most open hops (with some of
its hops assigned to them), a coordinator of every country, an auditor of all countries, a
ministry of SV and an admin. Each signs in through the sign-in form, then its pages are read one
request at a time over loopback HTTP, after a few untimed requests; every answer must be a 200
in HTML:

    pages_<name>_p95_ms     the 95th percentile of a page's GETs, against the issue's 200 ms
    pages_audit*_first_ms   the audit page's first request, before its five-minute report cache
                            holds anything (the timed requests after it are served from it)
    pages_audit_uncached_*  the audit page with a new filter each request, so none is cached
    pages_missing           pages whose route does not exist yet (404 on the first GET): skipped

`python -m benchmarks.bench_pages` runs it alone; `python -m benchmarks.run pages` records it.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

from benchmarks import Result
from benchmarks.bench_api import (
    CASES,
    PER_YEAR,
    SEED,
    START,
    YEARS,
    World,
    _built,
    _start_server,
    _stop,
    _world,
    ledger_file,
    p95,
)

BUDGET_MS = 200.0
"""The issue's budget: every page's p95 on the 200,000-case ledger."""
REQUESTS = 50
CASE_REQUESTS = 200
WARM_UP = 3
"""Untimed requests of each page first (the first also tells whether the route exists)."""
CASE_WARM_UP = 10
ASSIGNED = 40
"""Open hops of the clerk's authority assigned to the clerk, so that /my-work lists some."""
MINISTRY_COUNTRY = "SV"
CALENDAR_YEAR = 2026
TIMEOUT_S = 120.0
PASSWORD = "bench-pages-password"

CLERK = "bench-clerk"
COORDINATOR = "bench-coordinator"
AUDITOR = "bench-auditor"
MINISTRY = "bench-ministry"
ADMIN = "bench-admin"


@dataclass(frozen=True)
class Page:
    """One page to time: the paths requested in turn, by one signed-in account."""

    name: str
    account: str
    paths: list[str]
    requests: int
    read: str
    """What the page shows, in words, for the note (e.g. which inbox, how many items)."""
    warm_up: list[str] = field(default_factory=list)
    """Untimed requests first (default: the first path, WARM_UP times); the first of them also
    tells whether the route exists."""
    first_result: bool = False
    """Whether the first request's time is a result of its own: the page caches what it
    computes, so that request is the one a visitor waits for."""


@dataclass
class Timed:
    page: Page
    ms: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    """<tr> elements in each response: the table rows the page drew."""
    kilobytes: list[float] = field(default_factory=list)
    first_ms: float = 0.0
    """The first (untimed) request: before anything was cached for it."""


@dataclass(frozen=True)
class Prepared:
    """What the run reads of its copy of the ledger before the server starts."""

    world: World
    cases_by_country: dict[str, int]
    busiest: tuple[str, str, int]
    """(country, authority, open hops) of the busiest inbox of all, read by the coordinator."""
    clerk_of: tuple[str, str, int]
    """(country, authority, open hops) of the clerk: the domestic authority with the most."""
    assigned: int


# -- the ledger and its accounts ------------------------------------------------------------------


def _upgrade(url: str) -> None:
    """The cached ledger may predate the newest migration: upgrade the copy as an operator would."""
    env = {**os.environ, "ROGATORY_DATABASE_URL": url}
    rogatory = str(Path(sys.executable).parent / "rogatory")
    done = subprocess.run(
        [rogatory, "db", "upgrade"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rogatory db upgrade failed: {done.stdout}{done.stderr}")


def _open_hops(url: str) -> list[tuple[str, str, int]]:
    """(country, authority, open hops) of every authority holding some, the most first."""
    from sqlalchemy import func, select

    from models.ledger import Ledger as Store
    from models.ledger import Step

    store = Store(url)
    try:
        with store.session() as session:
            rows = session.execute(
                select(Step.country, Step.holder, func.count())
                .where(Step.closed_at.is_(None))
                .group_by(Step.country, Step.holder)
            )
            counted = [(country, holder, int(n)) for country, holder, n in rows]
    finally:
        store.dispose()
    return sorted(counted, key=lambda row: (-row[2], row[0], row[1]))


def _clerk_authority(open_hops: list[tuple[str, str, int]]) -> tuple[str, str, int]:
    """The authority with the most open hops that has clerks: a domestic one (the hops held
    abroad, the busiest of all, are read by the coordinator)."""
    from models.loader import load_all

    routings = load_all()
    for country, authority, hops in open_hops:
        routing = routings.get(country)
        if routing and routing.config.authorities[authority].kind != "foreign":
            return country, authority, hops
    raise AssertionError(f"no domestic authority holds an open hop: {open_hops[:10]}")


def _accounts(url: str, world: World) -> Prepared:
    from sqlalchemy import func, select

    from models import queries
    from models.identity import Grant, RoleName, add_account
    from models.ledger import Ledger as Store
    from models.ledger import Request

    open_hops = _open_hops(url)
    clerk_of = _clerk_authority(open_hops)
    country, authority, _ = clerk_of
    now = datetime.now(UTC)
    store = Store(url)
    try:
        with store.transaction() as session:
            countries = queries.countries(session)
            wanted = {
                CLERK: [Grant(RoleName.CLERK, country, authority)],
                COORDINATOR: [Grant(RoleName.COORDINATOR, c) for c in countries],
                AUDITOR: [Grant(RoleName.AUDITOR)],
                MINISTRY: [Grant(RoleName.MINISTRY, MINISTRY_COUNTRY)],
                ADMIN: [Grant(RoleName.ADMIN)],
            }
            for name, grants in wanted.items():
                add_account(
                    session, name=name, grants=grants, now=now, actor="bench", password=PASSWORD
                )
        with store.session() as session:
            counts = session.execute(
                select(Request.country, func.count()).group_by(Request.country)
            )
            cases_by_country = {c: int(n) for c, n in counts}
    finally:
        store.dispose()
    assigned = _assign(url, country, authority)
    return Prepared(world, cases_by_country, open_hops[0], clerk_of, assigned)


def _assign(url: str, country: str, authority: str) -> int:
    """Give the clerk the most urgent open hops of their inbox, as they would claim them."""
    from app.service import Service
    from models.commands import Assign
    from models.errors import CommandRejected
    from models.identity import Caller, Grant, RoleName
    from models.ledger import Ledger as Store

    store = Store(url)
    try:
        service = Service(store)
        clerk = Caller(name=CLERK, grants=(Grant(RoleName.CLERK, country, authority),))
        assigned = 0
        for item in service.inbox(country, authority, clerk):
            if assigned == ASSIGNED:
                break
            try:
                service.submit(Assign(reference=item.reference, hop=item.hop, officer=CLERK), clerk)
            except CommandRejected:
                continue
            assigned += 1
    finally:
        store.dispose()
    return assigned


# -- the pages ------------------------------------------------------------------------------------


def _pages(ledger: Prepared, rng: random.Random) -> list[Page]:
    from app.web.clerk import PAGE_SIZE
    from models.loader import load_all

    country, authority, hops = ledger.clerk_of
    top_country, top_authority, top_hops = ledger.busiest
    inbox_pages = max(1, math.ceil(hops / PAGE_SIZE))
    inbox_later = max(2, inbox_pages // 2)
    most = max(ledger.cases_by_country, key=lambda c: ledger.cases_by_country[c])
    found = ledger.cases_by_country[most]
    search_later = max(2, math.ceil(found / PAGE_SIZE) // 2)
    sv = load_all()[MINISTRY_COUNTRY]
    sv_authority = next(a for a, spec in sv.config.authorities.items() if spec.kind != "foreign")
    inbox = f"/inbox/{country}/{authority}"
    # The first case pages parse the pinned routings: the warm-up reads other cases.
    sampled = rng.sample(ledger.world.references, CASE_REQUESTS + CASE_WARM_UP)
    cases, other_cases = sampled[:CASE_REQUESTS], sampled[CASE_REQUESTS:]
    # The live report is cached per filters: a different first day per request misses it.
    days = [START.date() + timedelta(days=i) for i in range(WARM_UP + REQUESTS)]
    since = [f"/audit?country={most}&since={day.isoformat()}" for day in days]
    return [
        Page(
            "inbox",
            CLERK,
            [inbox],
            REQUESTS,
            f"{inbox} page 1 of {inbox_pages} ({hops:,} open hops)",
        ),
        Page(
            "inbox_later",
            CLERK,
            [f"{inbox}?page={inbox_later}"],
            REQUESTS,
            f"{inbox}?page={inbox_later} of {inbox_pages} ({hops:,} open hops)",
        ),
        Page(
            "inbox_busiest",
            COORDINATOR,
            [f"/inbox/{top_country}/{top_authority}"],
            REQUESTS,
            f"/inbox/{top_country}/{top_authority} page 1 ({top_hops:,} open hops, the most of "
            "any inbox: hops held abroad), as a coordinator of every country",
        ),
        Page(
            "my_work",
            CLERK,
            ["/my-work"],
            REQUESTS,
            f"/my-work of a clerk of {country}/{authority} with {ledger.assigned} of its "
            f"{hops:,} open hops assigned to them",
        ),
        Page(
            "case",
            COORDINATOR,
            [f"/cases/{reference}" for reference in cases],
            CASE_REQUESTS,
            f"/cases/{{reference}} of {CASE_REQUESTS} distinct random cases (seeded), as a "
            "coordinator of every country",
            warm_up=[f"/cases/{reference}" for reference in other_cases],
        ),
        Page(
            "search",
            COORDINATOR,
            [f"/search?country={most}"],
            REQUESTS,
            f"/search?country={most} page 1 ({found:,} cases of {most}, the most of any "
            "country), as its coordinator",
        ),
        Page(
            "search_later",
            COORDINATOR,
            [f"/search?country={most}&page={search_later}"],
            REQUESTS,
            f"/search?country={most}&page={search_later} of {math.ceil(found / PAGE_SIZE):,} "
            f"({found:,} cases), as its coordinator",
        ),
        Page(
            "board",
            COORDINATOR,
            ["/board"],
            REQUESTS,
            "/board (every country's escalations, first page) as a coordinator of every country",
        ),
        Page(
            "audit",
            AUDITOR,
            ["/audit"],
            REQUESTS,
            f"/audit without filters: the report over all {CASES:,} cases, as an auditor of "
            "all countries; the page serves the report computed for the same roles and filters "
            "while under five minutes old, so every timed request after the first is served "
            "from it",
            first_result=True,
        ),
        Page(
            "audit_country",
            AUDITOR,
            [f"/audit?country={most}"],
            REQUESTS,
            f"/audit?country={most}: the report over its {found:,} cases, as an auditor of "
            "all countries, served from the page's five-minute cache after the first request",
            first_result=True,
        ),
        Page(
            "audit_uncached",
            AUDITOR,
            since[WARM_UP:],
            REQUESTS,
            f"/audit?country={most}&since=<day>, a different first day of registration per "
            f"request ({days[WARM_UP]} to {days[-1]}), so that each computes the report anew "
            f"(about {found:,} cases each), as an auditor of all countries",
            warm_up=since[:WARM_UP],
        ),
        Page(
            "ministry",
            MINISTRY,
            [f"/ministry/{MINISTRY_COUNTRY}"],
            REQUESTS,
            f"/ministry/{MINISTRY_COUNTRY}: the chains in force and their publications",
        ),
        Page(
            "ministry_calendar",
            MINISTRY,
            [
                f"/ministry/{MINISTRY_COUNTRY}/calendar?authority={sv_authority}&year={CALENDAR_YEAR}"
            ],
            REQUESTS,
            f"/ministry/{MINISTRY_COUNTRY}/calendar?authority={sv_authority}&year="
            f"{CALENDAR_YEAR}: a year of the authority's business calendar",
        ),
        Page("admin", ADMIN, ["/admin"], REQUESTS, "/admin: every account and token"),
    ]


# -- the requests ---------------------------------------------------------------------------------


def _sign_in(base: str, name: str) -> httpx.Client:
    http = httpx.Client(base_url=base, timeout=TIMEOUT_S)
    response = http.post("/login", data={"username": name, "password": PASSWORD, "next": "/"})
    if response.status_code != 303 or not http.cookies:
        http.close()
        raise AssertionError(
            f"{name} could not sign in: {response.status_code} {response.text[:500]}"
        )
    return http


def _get(http: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = http.get(path)
    return response, (time.perf_counter() - began) * 1000


def _expect_html(response: httpx.Response, path: str) -> None:
    kind = response.headers.get("content-type", "")
    if response.status_code != 200 or not kind.startswith("text/html"):
        raise AssertionError(
            f"GET {path}: {response.status_code} {kind or 'no content-type'}: {response.text[:500]}"
        )


def _time(http: httpx.Client, page: Page) -> Timed | None:
    """The page's timings, or None when its route does not exist yet."""
    timed = Timed(page)
    for i, path in enumerate(page.warm_up or [page.paths[0]] * WARM_UP):
        response, ms = _get(http, path)
        if i == 0:
            timed.first_ms = ms
        if i == 0 and response.status_code == 404:
            print(
                f"warning: skipping pages_{page.name}: GET {path} is 404, its page does not "
                f"exist yet ({response.text[:200]!r})",
                file=sys.stderr,
                flush=True,
            )
            return None
        _expect_html(response, path)
    for i in range(page.requests):
        path = page.paths[i % len(page.paths)]
        response, ms = _get(http, path)
        _expect_html(response, path)
        timed.ms.append(ms)
        timed.rows.append(response.text.count("<tr"))
        timed.kilobytes.append(len(response.content) / 1024)
    return timed


def _read(base: str, pages: list[Page]) -> list[Timed | None]:
    clients: dict[str, httpx.Client] = {}
    try:
        for account in dict.fromkeys(p.account for p in pages):
            clients[account] = _sign_in(base, account)
        out: list[Timed | None] = []
        for page in pages:
            print(f"  pages_{page.name} ...", file=sys.stderr, flush=True)
            out.append(_time(clients[page.account], page))
        return out
    finally:
        for http in clients.values():
            http.close()


@contextmanager
def _plain_cookies() -> Iterator[None]:
    """The session cookie without `Secure`, since the server is reached over plain loopback."""
    with mock.patch.dict(os.environ, {"ROGATORY_COOKIE_SECURE": "0"}):
        yield


# -- the run --------------------------------------------------------------------------------------


def measure(source: Path) -> list[Result]:
    load = os.getloadavg()[0]
    built = _built(source)
    root = Path(tempfile.mkdtemp(prefix="rogatory-pages-"))
    try:
        db = root / "ledger.db"
        shutil.copyfile(source, db)
        url = f"sqlite:///{db}"
        _upgrade(url)
        ledger = _accounts(url, _world(url))
        rng = random.Random(SEED)
        pages = _pages(ledger, rng)
        with _plain_cookies():
            server, base = _start_server(root, url)
        try:
            timed = _read(base, pages)
        finally:
            _stop(server)
        return _results(source, built, load, pages, timed)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _results(
    source: Path,
    built: dict[str, Any],
    load: float,
    pages: list[Page],
    timed: list[Timed | None],
) -> list[Result]:
    ledger = (
        f"SQLite ledger of {built.get('cases', CASES):,} simulated cases "
        f"({YEARS} years x {PER_YEAR:,}, seed {SEED}, {built.get('open_cases', 0):,} open at the "
        f"end; {source.name}, a fresh copy per run, upgraded by `rogatory db upgrade`)"
    )
    where = (
        f"real `rogatory web` (uvicorn, one process) on loopback, signed in through /login "
        f"(session cookie), one client, one request at a time; load average {load:.2f} at "
        f"start, {os.cpu_count()} CPUs"
    )
    results = []
    for page, t in zip(pages, timed, strict=True):
        if t is None:
            continue
        warm = len(page.warm_up) or WARM_UP
        results.append(
            Result(
                f"pages_{page.name}_p95_ms",
                round(p95(t.ms), 2),
                "ms",
                BUDGET_MS,
                "lower",
                f"{len(t.ms)} GET {page.read}; median {statistics.median(t.ms):.0f} ms, max "
                f"{max(t.ms):.0f} ms; {_span(t.rows)} table rows (<tr>) and "
                f"{_span(t.kilobytes)} KB of HTML a response; after {warm} untimed requests "
                f"(the first took {t.first_ms:,.0f} ms); {ledger}; {where}",
            )
        )
        if page.first_result:
            results.append(
                Result(
                    f"pages_{page.name}_first_ms",
                    round(t.first_ms, 2),
                    "ms",
                    None,
                    "lower",
                    f"the first GET {page.read.split(':')[0]} of the run, with nothing cached: "
                    f"what its first visitor waits for; {ledger}; {where}",
                )
            )
    skipped = [f"pages_{p.name} ({p.paths[0]})" for p, t in zip(pages, timed, strict=True) if not t]
    results.append(
        Result(
            "pages_missing",
            len(skipped),
            "count",
            0,
            "lower",
            f"pages skipped because their route answered 404: {', '.join(skipped) or 'none'}",
        )
    )
    return results


def _span(values: list[int] | list[float]) -> str:
    low, high = f"{min(values):,.0f}", f"{max(values):,.0f}"
    return low if low == high else f"{low} to {high}"


def run() -> list[Result]:
    return measure(ledger_file())


if __name__ == "__main__":
    for result in run():
        print(result)

"""Concurrent clerks: eight processes registering and deciding at once all succeed (both backends).

Each clerk is a forked process with its own connections, started together behind a barrier so
their first commands collide: the first registrations pin the same routing version and take
reference numbers from the same counter. Nothing may fail, no number may be taken twice, and
every chain must verify afterwards.
"""

from __future__ import annotations

import multiprocessing
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models import engine
from models.clock import SystemClock
from models.engine import Routings
from models.errors import SchemaOutdated
from models.ledger import Ledger, ReferenceCounter, Request, make_engine
from models.loader import load_country
from models.migrations import HEAD, current_revision, upgrade
from models.queries import verify_chain
from tests.samples import intake

REPO = Path(__file__).resolve().parents[2]
CLERKS = 8
COMMANDS = 25
FORK = multiprocessing.get_context("fork")


def _clerk(url: str, number: int, barrier: Any, results: Any) -> None:
    """Register COMMANDS cases and decide the first hop of every other one."""
    try:
        routings = Routings({"SV": load_country(REPO / "config" / "countries" / "sv.yaml")})
        ledger = Ledger(url)
        clock = SystemClock()
        barrier.wait(timeout=60)
        for n in range(COMMANDS):
            with ledger.transaction() as session:
                result = engine.register(
                    session=session,
                    clock=clock,
                    routings=routings,
                    data=intake(subject=f"clerk {number} case {n}"),
                    actor=f"clerk-{number}",
                )
            if n % 2:
                with ledger.transaction() as session:
                    engine.decide(
                        session=session,
                        clock=clock,
                        routings=routings,
                        reference=result.reference,
                        outcome="forwarded",
                        hop=1,
                        actor=f"clerk-{number}",
                    )
        ledger.dispose()
        results.put((number, "ok"))
    except BaseException:  # report anything, the parent asserts
        results.put((number, traceback.format_exc()))


def test_eight_clerks_registering_at_once_all_succeed(database_url: str) -> None:
    Ledger(database_url, migrate=True).dispose()  # the operator's one upgrade step
    barrier = FORK.Barrier(CLERKS)
    results = FORK.Queue()
    clerks = [
        FORK.Process(target=_clerk, args=(database_url, n, barrier, results)) for n in range(CLERKS)
    ]
    for process in clerks:
        process.start()
    outcomes = dict(results.get(timeout=300) for _ in clerks)
    for process in clerks:
        process.join(timeout=60)
    failures = {n: text for n, text in outcomes.items() if text != "ok"}
    assert failures == {}, "\n".join(failures.values())

    with Ledger(database_url) as ledger, ledger.session() as session:
        references = session.scalars(select(Request.reference)).all()
        assert len(references) == CLERKS * COMMANDS == len(set(references))
        year = datetime.now(UTC).year
        numbers = sorted(int(r.rsplit("-", 1)[1]) for r in references)
        assert numbers == list(range(1, CLERKS * COMMANDS + 1))  # no gap, no number twice
        assert session.scalar(
            select(ReferenceCounter.last).where(ReferenceCounter.year == year)
        ) == (CLERKS * COMMANDS)
        decided = session.scalar(select(func.count()).where(Request.current_hop == 2))
        assert decided == CLERKS * (COMMANDS // 2)
        assert verify_chain(session=session) == []


def _upgrade(url: str, barrier: Any, results: Any) -> None:
    try:
        engine_ = make_engine(url)
        barrier.wait(timeout=60)
        upgrade(engine_)
        engine_.dispose()
        results.put("ok")
    except BaseException:
        results.put(traceback.format_exc())


def test_upgrades_started_at_once_on_a_fresh_database_run_one_after_the_other(
    database_url: str,
) -> None:
    barrier = FORK.Barrier(4)
    results = FORK.Queue()
    workers = [FORK.Process(target=_upgrade, args=(database_url, barrier, results)) for _ in "1234"]
    for process in workers:
        process.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(timeout=30)
    assert outcomes == ["ok"] * 4, "\n".join(o for o in outcomes if o != "ok")
    assert current_revision(make_engine(database_url)) == HEAD


def test_a_command_on_a_database_never_upgraded_says_how_to_upgrade(database_url: str) -> None:
    with pytest.raises(SchemaOutdated) as info:
        Ledger(database_url)
    assert "rogatory db upgrade" in str(info.value)
    assert "no rogatory tables yet" in str(info.value)
    # ...and it created nothing: the upgrade step is still the one that creates the tables.
    assert current_revision(make_engine(database_url)) is None

"""A kill -9 in the middle of a command leaves the ledger consistent.

A child process registers cases and decides on them, one transaction per command, as fast as it
can. It is killed with SIGKILL at seeded random moments and a fresh one started; each carries on
with the cases the ledger holds. Afterwards every invariant that ties the projections to the
events must hold: each chain verifies, each case's head matches its last event, each open case
has exactly its current hop open, reference numbers have no gaps, and no event lacks the
projection change it stands for.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import distinct, func, text
from sqlalchemy import select as query

from models import engine
from models.clock import FixedClock
from models.engine import Routings
from models.ledger import Event, Ledger, ReferenceCounter, Request, Step
from models.loader import load_country
from models.queries import verify_chain
from tests.samples import intake

REPO = Path(__file__).resolve().parents[2]
KILLS = 8
SEED = 20261127
INTAKE = intake(facts_summary="payments routed through a foreign account")

# The clerk: registers and decides without pause, one transaction per command. It starts from
# the unfinished cases the ledger holds, so each new clerk carries on where the killed one left
# off, and it reads a case's state in the transaction of the command that acts on it. Importing
# rogatory takes about two seconds, so one warm parent process forks a fresh clerk per round;
# each clerk opens its own connections and is killed on its own.
CLERKS = r"""
import json, os, random, sys, traceback
from pathlib import Path
from sqlalchemy import select
from models import engine
from models.clock import SystemClock
from models.engine import Routings
from models.ledger import Ledger, Request, Step
from models.loader import load_country

url, config, INTAKE = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
routing = load_country(Path(config) / "countries" / "sv.yaml")
routings = Routings({"SV": routing})
route = routing.config.route("mla-outgoing")
clock = SystemClock()
WEIGHTS = {"forwarded": 8, "executed": 3, "partially_executed": 1, "returned": 1,
           "refused": 1, "postponed": 1}
EXTRA = {"refused": {"ground": "de_minimis"}, "returned": {"cause": "incomplete_request"}}


def clerk(run):
    ledger = Ledger(url)
    rng = random.Random(run)

    def command(session, name, **kwargs):
        return getattr(engine, name)(
            session=session, clock=clock, routings=routings, actor=f"run-{run}", **kwargs
        )

    def one_command(session):
        if len(unfinished) < 5 or rng.random() < 0.25:
            return command(session, "register", data={**INTAKE, "coercive": rng.random() < 0.3})
        reference = rng.choice(unfinished)
        status, index, stopped = session.execute(
            select(Request.status, Step.step_index, Step.stopped_since)
            .outerjoin(Step, (Step.request_id == Request.id) & (Step.hop == Request.current_hop))
            .where(Request.reference == reference)
        ).one()
        if status == "with_requester":
            return command(session, "resubmit", reference=reference)
        if rng.random() < 0.1:
            name = "resume_clock" if stopped else "stop_clock"
            return command(session, name, reference=reference, reason="awaiting_clarification")
        allowed = [str(o) for o in route.decisions_for(index)]
        outcome = rng.choices(allowed, [WEIGHTS.get(o, 1) for o in allowed])[0]
        extra = EXTRA.get(outcome, {})
        return command(session, "decide", reference=reference, outcome=outcome, **extra)

    with ledger.session() as session:
        query = select(Request.reference).where(Request.status != "closed")
        unfinished = list(session.scalars(query))
    while True:
        os.write(1, b"<")  # a command under way: the test counts the kills that land inside one
        with ledger.transaction() as session:
            result = one_command(session)
        os.write(1, b">")
        if result.status == "closed":
            unfinished.remove(result.reference)
        elif result.reference not in unfinished:
            unfinished.append(result.reference)


print("ready", flush=True)
for line in sys.stdin:
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.read(go_read, 1)  # wait until the parent has announced this pid
        try:
            clerk(int(line))
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)
    os.write(1, f"pid {pid}\n".encode())
    os.write(go_write, b"g")
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    os.write(1, f"ended {code}\n".encode())
    os.close(go_read)
    os.close(go_write)
"""


class Clerks:
    """The warm parent process; `kill_one` starts a fresh clerk and kills it with SIGKILL."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CLERKS, url, str(REPO / "config"), json.dumps(INTAKE)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.buffer = b""
        self.read_until(b"ready\n")

    def read_until(self, token: bytes, timeout: float = 60) -> bytes:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while token not in self.buffer:
            assert time.monotonic() < deadline, f"no {token!r} within {timeout} s: {self.fail()}"
            readable, _, _ = select.select([self.process.stdout], [], [], 1)
            if readable:
                chunk = os.read(self.process.stdout.fileno(), 4096)
                assert chunk, f"the clerks' parent exited: {self.fail()}"
                self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(token)
        return head

    def kill_one(self, run: int, delay: float) -> tuple[int, bool]:
        """A fresh clerk, killed `delay` s after its first command.

        Returns how many further commands it completed and whether it died inside one.
        """
        assert self.process.stdin is not None
        self.process.stdin.write(f"{run}\n".encode())
        self.process.stdin.flush()
        pid = int(self.read_until(b"\n").removeprefix(b"pid "))
        self.read_until(b">")  # the delay runs from the first completed command
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        marks = self.read_until(b"ended ")
        code = int(self.read_until(b"\n"))
        assert code == -signal.SIGKILL, f"clerk {run} ended by itself ({code}): {self.fail()}"
        return marks.count(b">"), marks.endswith(b"<")

    def fail(self) -> str:
        """Stop the parent and return what it and its clerks wrote to stderr."""
        self.process.kill()
        self.process.wait()
        return self.process.stderr.read().decode() if self.process.stderr else ""

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.fail()


def test_kill_9_at_random_points_leaves_the_ledger_consistent(database_url):
    ledger = Ledger(database_url, migrate=True)  # the schema exists before the first clerk starts
    rng = random.Random(SEED)
    events_after: list[int] = []
    completed = inside = 0
    clerks = Clerks(database_url)
    try:
        for run in range(1, KILLS + 1):
            done, mid_command = clerks.kill_one(run, rng.uniform(0.2, 1.5))
            completed += done
            inside += mid_command
            with ledger.session() as session:
                events_after.append(len(session.scalars(query(Event.id)).all()))
        with ledger.session() as session:
            assert verify_chain(session=session) == []
            check_invariants(session)
            clerks_per_case = session.execute(
                query(func.count(distinct(Event.actor))).group_by(Event.request_id)
            ).scalars()
            assert max(clerks_per_case) > 1, "no clerk carried on a case a killed one began"
    finally:
        clerks.close()
        ledger.dispose()
    assert events_after == sorted(events_after) and completed >= KILLS
    assert inside >= KILLS // 2, f"only {inside} of {KILLS} kills landed inside a command"


@pytest.mark.parametrize(
    "corruption",
    [
        "UPDATE steps SET closed_at = NULL WHERE hop = 1",
        "UPDATE steps SET outcome = 'refused' WHERE hop = 1",
        "DELETE FROM steps WHERE hop = 2",
        "UPDATE requests SET current_hop = 1 WHERE current_hop = 2",
        "UPDATE requests SET last_seq = last_seq + 1 WHERE id = 1",
        "UPDATE reference_counters SET last = last + 1",
    ],
)
def test_the_invariant_checks_catch_a_projection_out_of_step(tmp_path, corruption):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)
    routings = Routings({"SV": load_country(REPO / "config" / "countries" / "sv.yaml")})
    clock = FixedClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    try:
        with ledger.transaction() as session:
            first = engine.register(
                session=session, clock=clock, routings=routings, data=INTAKE
            ).reference
            engine.register(session=session, clock=clock, routings=routings, data=INTAKE)
            engine.decide(
                session=session,
                clock=clock,
                routings=routings,
                reference=first,
                outcome="forwarded",
            )
        with ledger.session() as session:
            check_invariants(session)  # intact: passes
        with ledger.transaction() as session:
            session.execute(text(corruption))
        with ledger.session() as session, pytest.raises(AssertionError):
            check_invariants(session)
    finally:
        ledger.dispose()


def test_a_case_withdrawn_while_with_the_requester_holds_the_invariants(tmp_path):
    """A return answered by a withdrawal, not a resubmission, is a consistent ledger."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)
    routings = Routings({"SV": load_country(REPO / "config" / "countries" / "sv.yaml")})
    clock = FixedClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    common: dict[str, Any] = {"clock": clock, "routings": routings}
    try:
        with ledger.transaction() as session:
            reference = engine.register(session=session, data=INTAKE, **common).reference
            engine.decide(
                session=session,
                reference=reference,
                outcome="returned",
                cause="incomplete_request",
                **common,
            )
            engine.withdraw(session=session, reference=reference, **common)
        with ledger.session() as session:
            assert session.scalar(query(Request.status)) == "closed"
            check_invariants(session)
    finally:
        ledger.dispose()


def check_invariants(session: Any) -> None:
    cases = session.scalars(query(Request).order_by(Request.id)).all()
    events: dict[int, list[Event]] = defaultdict(list)
    for event in session.scalars(query(Event).order_by(Event.request_id, Event.seq)):
        events[event.request_id].append(event)
    steps: dict[int, dict[int, Step]] = defaultdict(dict)
    for step in session.scalars(query(Step)):
        steps[step.request_id][step.hop] = step
    assert cases, "the child registered nothing"
    assert set(events) == {c.id for c in cases}, "events of a case that does not exist"

    for case in cases:
        chain, hops = events[case.id], steps[case.id]
        where = f"{case.reference} ({[e.kind for e in chain]})"
        assert [e.seq for e in chain] == list(range(1, len(chain) + 1)), where
        assert case.last_seq == len(chain), where
        assert case.head_hash == chain[-1].hash, where
        assert chain[0].kind == "registered" and chain[1].kind == "hop_opened", where

        assert sorted(hops) == list(range(1, len(hops) + 1)), where
        assert case.hop_count == max(hops), where
        open_hops = [h for h, s in hops.items() if s.closed_at is None]
        if case.status == "open":
            assert open_hops == [case.current_hop], where
        else:
            assert open_hops == [] and case.current_hop is None, where
        assert (case.status == "closed") == (chain[-1].kind == "case_closed"), where

        check_events_against_hops(case, chain, hops, where)

    check_reference_numbers(session, cases)


def check_events_against_hops(
    case: Request, chain: list[Event], hops: dict[int, Step], where: str
) -> None:
    """Every event's change is in the projection, and every projected change has its event."""
    opened = [json.loads(e.payload) for e in chain if e.kind == "hop_opened"]
    assert [p["hop"] for p in opened] == sorted(hops), where
    for payload in opened:
        step = hops[payload["hop"]]
        assert (step.route_step, step.holder) == (payload["step"], payload["holder"]), where

    closing = {
        json.loads(e.payload)["hop"]: (e, json.loads(e.payload))
        for e in chain
        if e.kind in ("decided", "withdrawn", "reassigned") and json.loads(e.payload)["hop"]
    }
    closed = {h for h, s in hops.items() if s.closed_at is not None}
    assert set(closing) == closed, where
    for hop, (event, payload) in closing.items():
        step = hops[hop]
        assert step.closed_at == event.occurred_at, where
        if event.kind == "decided":
            assert step.outcome == payload["outcome"], where
            assert (step.ground, step.cause) == (payload["ground"], payload["cause"]), where

    stops = Counter(json.loads(e.payload)["hop"] for e in chain if e.kind == "clock_stopped")
    resumes = Counter(json.loads(e.payload)["hop"] for e in chain if e.kind == "clock_resumed")
    for hop, step in hops.items():
        still_stopped = stops[hop] > resumes[hop]
        assert stops[hop] - resumes[hop] in (0, 1), where
        if step.closed_at is None:
            assert (step.stopped_since is not None) == still_stopped, where
            if still_stopped:
                assert step.next_rung_at is None, where

    # Every return to the requester is answered by a resubmission, but for one still awaited
    # and one the requester withdrew while it was with them (a withdrawal of no hop).
    kinds = Counter(e.kind for e in chain)
    withdrawn_waiting = any(
        e.kind == "withdrawn" and not json.loads(e.payload)["hop"] for e in chain
    )
    assert (
        kinds["resubmitted"]
        == sum(1 for s in hops.values() if s.target == "requester")
        - (case.status == "with_requester")
        - withdrawn_waiting
    ), where
    if case.status == "closed":
        last_decision = next(e for e in reversed(chain) if e.kind in ("decided", "withdrawn"))
        assert case.outcome == json.loads(last_decision.payload).get("outcome", "withdrawn")


def check_reference_numbers(session: Any, cases: list[Request]) -> None:
    numbers: dict[tuple[str, int], list[int]] = defaultdict(list)
    for case in cases:
        country, year, number = case.reference.split("-")
        numbers[(country, int(year))].append(int(number))
    counters = {(c.country, c.year): c.last for c in session.scalars(query(ReferenceCounter)).all()}
    assert set(counters) == set(numbers)
    for key, taken in numbers.items():
        assert sorted(taken) == list(range(1, len(taken) + 1)), key
        assert counters[key] == len(taken), key

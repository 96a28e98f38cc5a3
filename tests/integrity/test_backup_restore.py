"""`rogatory backup` of a ledger that commands keep writing to, and `rogatory restore` into an
empty place: the restored ledger holds exactly the events the copy caught, with the same chains
and the same signed checkpoint, and verifies."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models import engine
from models.clock import SystemClock
from models.ledger import Checkpoint, Event, Ledger, Request
from tests.integrity.conftest import World
from tests.samples import intake


def _events(url: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    ledger = Ledger(url)
    try:
        with ledger.session() as session:
            rows = session.execute(
                select(
                    Request.reference,
                    Event.seq,
                    Event.kind,
                    Event.actor,
                    Event.payload,
                    Event.occurred_at,
                    Event.recorded_at,
                    Event.prev_hash,
                    Event.hash,
                ).join(Request, Request.id == Event.request_id)
            ).all()
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}
    finally:
        ledger.dispose()


def _checkpoints(url: str) -> list[tuple[int, str, str | None]]:
    ledger = Ledger(url)
    try:
        with ledger.session() as session:
            return [
                (c.number, c.statement, c.signature)
                for c in session.scalars(select(Checkpoint).order_by(Checkpoint.number))
            ]
    finally:
        ledger.dispose()


class Writers:
    """Clerks registering and forwarding cases until told to stop."""

    def __init__(self, world: World, count: int = 2) -> None:
        self.world = world
        self.stop = threading.Event()
        self.done = 0
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._work) for _ in range(count)]

    def _work(self) -> None:
        clock = SystemClock()
        try:
            while not self.stop.is_set():
                with self.world.ledger.transaction() as session:
                    made = engine.register(
                        session=session, clock=clock, routings=self.world.routings, data=intake()
                    )
                with self.world.ledger.transaction() as session:
                    engine.decide(
                        session=session,
                        clock=clock,
                        routings=self.world.routings,
                        reference=made.reference,
                        outcome="forwarded",
                    )
                self.done += 1
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.errors.append(exc)

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


@pytest.fixture
def empty_place(database_url: str, tmp_path_factory: pytest.TempPathFactory, request: Any) -> str:
    """Another, empty ledger of the same kind."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path_factory.mktemp('restored') / 'ledger.db'}"
    return str(request.getfixturevalue("postgres").create_database())


def test_backup_of_a_busy_ledger_restores_identical_events_chains_and_checkpoint(
    world: World, empty_place: str, database_url: str
) -> None:
    for _ in range(3):
        world.forward(world.register())
    assert world.seal().checkpoint == 1
    folder = world.folder / "backup"
    with Writers(world) as writers:
        while writers.done < 5 and not writers.errors:
            threading.Event().wait(0.05)
        made = world.cli("backup", str(folder), "--json")
        during = writers.done
    assert writers.errors == []
    assert made.code == 0, made.err
    assert writers.done > during or during >= 5  # they kept writing while it copied

    restored = world.cli("restore", str(folder), "--to", empty_place)
    assert restored.code == 0, restored.out + restored.err
    assert "every chain and projection verifies; checkpoint 1" in restored.out

    source, copy = _events(database_url), _events(empty_place)
    assert len(copy) == made.json()["events"]
    assert {key: source[key] for key in copy} == copy  # identical, event for event
    assert len(source) > len(copy)  # the writers went on after the copy was taken
    cases = {reference for reference, _ in copy}
    for reference in cases:  # each chain is the source's, cut where the copy was taken
        seqs = sorted(seq for ref, seq in copy if ref == reference)
        assert seqs == list(range(1, len(seqs) + 1))
    assert _checkpoints(empty_place) == _checkpoints(database_url)[:1]
    assert made.json()["checkpoint"]["checkpoint"] == 1

    verified = world.cli("audit", "verify")  # the source, still intact
    assert verified.code == 0, verified.out


def test_restore_refuses_a_place_that_is_not_empty(world: World) -> None:
    world.register()
    folder = world.folder / "backup"
    assert world.cli("backup", str(folder)).code == 0
    refused = world.cli("restore", str(folder))  # into the ledger it came from
    assert refused.code == 1
    assert "restore into an empty" in refused.err


def test_restore_refuses_a_backup_whose_files_were_altered(world: World, empty_place: str) -> None:
    world.register()
    folder = world.folder / "backup"
    assert world.cli("backup", str(folder)).code == 0
    copy = next(p for p in folder.iterdir() if p.name.startswith("ledger."))
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    refused = world.cli("restore", str(folder), "--to", empty_place)
    assert refused.code == 1
    assert "does not match the manifest" in refused.err


def test_a_restored_ledger_that_does_not_verify_is_not_reported_restored(
    world: World, empty_place: str, tmp_path: Path
) -> None:
    """A copy made of a ledger already tampered with restores, and says it does not verify."""
    target = world.register()
    world.forward(target)
    assert world.seal().checkpoint == 1
    with world.ledger.transaction() as session:
        session.execute(
            Event.__table__.update()
            .where(Event.request_id == world.case_id(target), Event.seq == 3)
            .values(actor="someone-else")
        )
    folder = world.folder / "backup"
    assert world.cli("backup", str(folder)).code == 0
    ran = world.cli("restore", str(folder), "--to", empty_place)
    assert ran.code == 1
    assert f"BROKEN {target} event 3: content altered (decided)" in ran.out

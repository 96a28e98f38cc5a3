"""Signed checkpoints: the key kept apart, one witness line per checkpoint, signatures and roots
that an auditor holding only the public key can check, and a ledger whose own record of its
checkpoints was changed held to the witness instead."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from models.checkpoints import Verifier, merkle_root, seal
from models.engine import Routings
from models.errors import LedgerTampered
from models.integrity import Seal
from models.ledger import CaseSeal, Checkpoint, Delivery, Event, Request
from tests.integrity.conftest import World
from tests.integrity.test_tampering import rewrite_chain


def _lines(world: World) -> list[dict[str, Any]]:
    text = (world.witness / "checkpoints.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_the_first_checkpoint_creates_the_key_private_and_apart(world: World) -> None:
    world.register()
    assert world.seal().signed
    assert stat.S_IMODE(world.key.stat().st_mode) == 0o600
    public = world.key.with_name("checkpoint.key.pub").read_text().strip()
    line = _lines(world)[0]
    statement = json.dumps(line["statement"], sort_keys=True, separators=(",", ":"))
    assert Verifier.from_text(public).verify(statement, line["signature"])


def test_a_key_or_witness_inside_the_ledgers_folder_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROGATORY_CHECKPOINT_KEY", str(world.folder / "var" / "checkpoint.key"))
    ran = world.cli("audit", "checkpoint")
    assert ran.code == 1
    assert "is inside the ledger's folder" in ran.err
    assert not (world.folder / "var" / "checkpoint.key").exists()


def test_each_checkpoint_is_one_signed_witness_line_whose_heads_fold_into_its_root(
    world: World,
) -> None:
    first, second = world.register(), world.register()
    assert world.cli("audit", "checkpoint").code == 0
    world.forward(first)
    world.clock.advance(timedelta(minutes=5))
    ran = world.cli("audit", "checkpoint", "--json")
    assert ran.code == 0, ran.out
    assert ran.json()["checkpoint"] == 2 and ran.json()["signed"]
    lines = _lines(world)
    assert [line["statement"]["checkpoint"] for line in lines] == [1, 2]
    assert set(lines[0]["heads"]) == {first, second}
    assert set(lines[1]["heads"]) == {first}  # only what moved since
    folded = {**lines[0]["heads"], **lines[1]["heads"]}
    seals = {r: Seal(0, seq, head) for r, (seq, head) in folded.items()}
    assert merkle_root(seals) == lines[1]["statement"]["root"]
    assert lines[1]["statement"]["cases"] == 2


def test_an_auditor_with_only_the_public_key_verifies_the_signatures(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.register()
    world.seal()
    public = world.key.with_name("checkpoint.key.pub")
    monkeypatch.delenv("ROGATORY_CHECKPOINT_KEY")
    monkeypatch.setenv("ROGATORY_CHECKPOINT_PUBLIC_KEY", str(public))
    assert world.cli("audit", "verify").code == 0
    path = world.witness / "checkpoints.jsonl"
    line = json.loads(path.read_text())
    line["statement"]["cases"] = 7  # a forged statement
    path.write_text(json.dumps(line) + "\n")
    ran = world.cli("audit", "verify")
    assert ran.code == 1
    assert "checkpoint 1 is not signed by the key" in ran.out


def test_a_rewrite_hidden_in_the_ledgers_seals_is_caught_by_the_witness(world: World) -> None:
    target, other = world.register(), world.register()
    world.forward(target)
    world.seal()
    case = world.case_id(target)
    rewrite_chain(world, case, {"reference": target})
    with world.ledger.transaction() as session:  # the insider moves the seal along
        head = session.scalar(select(Request.head_hash).where(Request.id == case))
        session.execute(update(CaseSeal).where(CaseSeal.reference == target).values(hash=head))
    world.clock.advance(timedelta(minutes=5))
    found = [str(f) for f in world.seal().findings]
    assert any("case_seals was changed" in f for f in found)
    assert (
        f"{target} checkpoint: rewritten since checkpoint 1: event 4 is not the one it sealed"
        in (found)
    )
    with pytest.raises(LedgerTampered):
        world.run("decide", reference=target, outcome="forwarded")
    world.run("decide", reference=other, outcome="forwarded")
    ran = world.cli("audit", "verify")
    assert f"BROKEN {target} checkpoint: rewritten since checkpoint 1" in ran.out


def test_checkpoints_deleted_from_the_ledger_are_named(world: World) -> None:
    world.register()
    world.seal()
    world.clock.advance(timedelta(minutes=5))
    world.seal()
    with world.ledger.transaction() as session:
        session.execute(delete(Checkpoint).where(Checkpoint.number == 2))
    ran = world.cli("audit", "verify")
    assert ran.code == 1
    assert "checkpoints were deleted from the ledger" in ran.out


def test_a_witness_that_missed_a_line_is_caught_up_from_the_ledger(world: World) -> None:
    world.register()
    world.seal()
    world.clock.advance(timedelta(minutes=5))
    world.seal()
    path = world.witness / "checkpoints.jsonl"
    path.write_text(path.read_text().splitlines(keepends=True)[0])  # line 2 never written
    world.clock.advance(timedelta(minutes=5))
    done = world.seal()
    assert done.checkpoint == 3 and done.witnessed == [3]
    assert [line["statement"]["checkpoint"] for line in _lines(world)] == [1, 2, 3]
    assert world.cli("audit", "verify").code == 0


def test_without_a_key_checkpoints_are_recorded_unsigned_and_say_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROGATORY_CHECKPOINT_KEY")
    monkeypatch.delenv("ROGATORY_WITNESS")
    world.register()
    ran = world.cli("audit", "checkpoint")
    assert ran.code == 0
    assert "UNSIGNED (no key" in ran.out and "not witnessed" in ran.out
    verified = world.cli("audit", "verify")
    assert verified.code == 0
    assert "no witness configured" in verified.err


def test_checkpoints_can_be_told_to_the_auditors(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROGATORY_WITNESS_NOTIFY", "1")
    world.register()
    world.seal()
    with world.ledger.session() as session:
        told = session.execute(
            select(Delivery.key, Delivery.tags, Delivery.body).where(Delivery.kind == "checkpoint")
        ).all()
    assert [(key, tags) for key, tags, _ in told] == [("checkpoint:1", ["auditors"])]
    assert '"root":' in told[0][2] and "Signature (Ed25519): " in told[0][2]


def test_the_key_may_come_from_a_prefect_secret_block(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks import system

    from models.checkpoints import create_key
    from tasks.checkpoint import checkpoint_signer

    pem = create_key(world.witness / "elsewhere.key").pem()

    class FakeSecret:
        @classmethod
        def load(cls, name: str) -> Any:
            assert name == "rogatory-checkpoint-key"
            return cls()

        def get(self) -> str:
            return pem

    monkeypatch.setattr(system, "Secret", FakeSecret)
    monkeypatch.setenv("ROGATORY_CHECKPOINT_KEY_SECRET", "rogatory-checkpoint-key")
    signer = checkpoint_signer(ledger_url=str(world.ledger.engine.url))
    assert signer is not None and signer.pem() == pem
    assert not os.path.exists(world.key)  # the file was not needed


def test_an_edited_event_in_a_case_that_did_not_move_is_found_by_the_rolling_slice(
    world: World,
) -> None:
    cases = [world.register() for _ in range(4)]
    world.seal()
    with world.ledger.transaction() as session:
        session.execute(
            update(Event)
            .where(Event.request_id == world.case_id(cases[3]), Event.seq == 1)
            .values(actor="someone-else")
        )
    found: list[str] = []
    for _ in range(2):  # two cases a sweep: the fourth case's turn comes in the second
        world.clock.advance(timedelta(minutes=5))
        done = seal(
            world.ledger,
            routings=Routings({}),
            now=world.clock.now(),
            signer=None,
            witness=None,
            found_by="test",
            rolling=2,
        )
        found += [str(f) for f in done.findings]
    assert found == [f"{cases[3]} event 1: content altered (registered)"]

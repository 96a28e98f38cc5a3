"""Each way an insider with database access could alter a case is named by `rogatory audit
verify`, and every command on that case is then refused (LedgerTampered); the other cases go on.

The case tampered with has six events (registered, hop 1 opened, decided, hop 2 opened,
decided, hop 3 opened) and was sealed by checkpoint 1, signed and witnessed outside the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update

from models.errors import LedgerTampered
from models.ledger import (
    CaseProblem,
    Delivery,
    Document,
    Event,
    Request,
    Step,
    TamperedCase,
    event_hash,
)
from tests.integrity.conftest import World


def _events(world: World, case: int) -> list[Any]:
    with world.ledger.session() as session:
        return list(
            session.scalars(select(Event).where(Event.request_id == case).order_by(Event.seq))
        )


def edit_event(world: World, case: int, saved: dict[str, Any]) -> None:
    with world.ledger.transaction() as session:
        session.execute(
            text(
                "UPDATE events SET payload = replace(payload, '\"forwarded\"', '\"refused\"') "
                "WHERE request_id = :case AND seq = 3"
            ),
            {"case": case},
        )


def delete_event(world: World, case: int, saved: dict[str, Any]) -> None:
    with world.ledger.transaction() as session:
        session.execute(delete(Event).where(Event.request_id == case, Event.seq == 3))


def backdate(world: World, case: int, saved: dict[str, Any]) -> None:
    third = _events(world, case)[2]
    with world.ledger.transaction() as session:
        session.execute(
            update(Event)
            .where(Event.request_id == case, Event.seq == 3)
            .values(occurred_at=third.occurred_at - timedelta(days=10))
        )


def mark_executed(world: World, case: int, saved: dict[str, Any]) -> None:
    with world.ledger.transaction() as session:
        session.execute(
            update(Request)
            .where(Request.id == case)
            .values(
                status="closed", outcome="executed", closed_at=world.clock.now(), current_hop=None
            )
        )
        session.execute(
            update(Step)
            .where(Step.request_id == case, Step.hop == 3)
            .values(closed_at=world.clock.now(), outcome="executed", next_rung_at=None)
        )


def silence_escalations(world: World, case: int, saved: dict[str, Any]) -> None:
    with world.ledger.transaction() as session:
        session.execute(
            update(Step).where(Step.request_id == case, Step.hop == 3).values(next_rung_at=None)
        )


def truncate_and_rewind(world: World, case: int, saved: dict[str, Any]) -> None:
    """Decision on hop 2 and hop 3 gone, everything rewound to match: the chain verifies."""
    fourth = _events(world, case)[3]
    with world.ledger.transaction() as session:
        session.execute(delete(Event).where(Event.request_id == case, Event.seq > 4))
        session.execute(delete(Delivery).where(Delivery.request_id == case))
        session.execute(delete(Step).where(Step.request_id == case, Step.hop == 3))
        hop2 = {k: v for k, v in saved["hop 2 before its decision"].items() if k != "id"}
        session.execute(update(Step).where(Step.request_id == case, Step.hop == 2).values(**hop2))
        session.execute(
            update(Request)
            .where(Request.id == case)
            .values(last_seq=4, head_hash=fourth.hash, current_hop=2, hop_count=2)
        )


def rewrite_chain(world: World, case: int, saved: dict[str, Any]) -> None:
    """Who decided hop 1 changed, every later hash recomputed: the chain verifies."""
    reference = saved["reference"]
    prev = None
    with world.ledger.transaction() as session:
        for ev in _events(world, case):
            actor = "someone-else" if ev.seq == 3 else ev.actor
            prev = prev or ev.prev_hash
            digest = event_hash(
                prev_hash=prev,
                reference=reference,
                seq=ev.seq,
                kind=ev.kind,
                actor=actor,
                payload=ev.payload,
                occurred_at=ev.occurred_at,
                recorded_at=ev.recorded_at,
            )
            session.execute(
                update(Event)
                .where(Event.id == ev.id)
                .values(actor=actor, prev_hash=prev, hash=digest)
            )
            prev = digest
        session.execute(update(Request).where(Request.id == case).values(head_hash=prev))


def delete_case(world: World, case: int, saved: dict[str, Any]) -> None:
    with world.ledger.transaction() as session:
        for table in (Delivery, CaseProblem, Document, Event, Step):
            session.execute(delete(table).where(table.request_id == case))
        session.execute(delete(Request).where(Request.id == case))


TAMPERS: dict[str, tuple[Callable[[World, int, dict[str, Any]], None], str]] = {
    "event edit": (edit_event, "event 3: content altered (decided)"),
    "event deletion": (delete_event, "event 3: event missing (deleted?)"),
    "backdating": (backdate, "event 3: content altered (decided)"),
    "projection only: case marked executed": (
        mark_executed,
        "projection: requests status is 'closed', its events say 'open'",
    ),
    "projection only: escalations silenced": (
        silence_escalations,
        "projection: steps hop 3 next_rung_at is None, its ladder says",
    ),
    "truncation with head rewind": (
        truncate_and_rewind,
        "checkpoint: truncated since checkpoint 1: it sealed event 6, the ledger ends at event 4",
    ),
    "consistent chain rewrite": (
        rewrite_chain,
        "checkpoint: rewritten since checkpoint 1: event 6 is not the one it sealed",
    ),
    "case deletion": (
        delete_case,
        "checkpoint: missing from the ledger: checkpoint 1 sealed it at event 6",
    ),
}


def _sealed_world(world: World) -> tuple[str, str, dict[str, Any]]:
    target = world.register()
    other = world.register()
    world.forward(target)
    saved = {"reference": target, "hop 2 before its decision": world.step_row(target, 2)}
    world.forward(target)
    first = world.seal()
    assert first.checkpoint == 1 and first.signed and first.witnessed == [1]
    assert first.findings == []
    return target, other, saved


@pytest.mark.parametrize("kind", list(TAMPERS))
def test_each_tamper_kind_is_named_by_audit_verify_and_refuses_commands(
    world: World, kind: str
) -> None:
    tamper, named = TAMPERS[kind]
    target, other, saved = _sealed_world(world)
    assert world.cli("audit", "verify").code == 0
    tamper(world, world.case_id(target), saved)

    ran = world.cli("audit", "verify")
    assert ran.code == 1, ran.out
    assert f"BROKEN {target} {named}" in ran.out
    assert other not in ran.out
    with pytest.raises(LedgerTampered, match=target):
        world.run("decide", reference=target, outcome="forwarded")
    world.run("decide", reference=other, outcome="forwarded")  # the others go on
    assert world.cli("audit", "verify", "--reference", other).code == 0


@pytest.mark.parametrize("kind", list(TAMPERS))
def test_the_sweep_finds_each_tamper_kind_and_tells_admin_and_auditors_once(
    world: World, kind: str
) -> None:
    tamper, named = TAMPERS[kind]
    target, _, saved = _sealed_world(world)
    tamper(world, world.case_id(target), saved)
    world.clock.advance(timedelta(minutes=5))
    found = world.seal()
    texts = [str(f) for f in found.findings]
    assert all(t.startswith(f"{target} ") for t in texts), texts
    assert any(t.startswith(f"{target} {named}") for t in texts), texts
    assert found.checkpoint == 2, found.skipped  # the others are sealed all the same
    world.clock.advance(timedelta(minutes=5))
    assert world.seal().checkpoint == 3
    with world.ledger.session() as session:
        told = session.execute(
            select(Delivery.tags, Delivery.title).where(Delivery.kind == "tampered")
        ).all()
        marked = session.scalars(select(TamperedCase.reference)).all()
    assert [(sorted(t), title) for t, title in told] == [
        (["admin", "auditors"], f"Records altered: {target} does not verify")
    ]
    assert marked == [target]
    with pytest.raises(LedgerTampered):
        world.run("decide", reference=target, outcome="forwarded")


def test_an_edited_last_event_is_refused_at_once_without_any_verification(world: World) -> None:
    target = world.register()
    world.forward(target)
    with world.ledger.transaction() as session:
        session.execute(
            text("UPDATE events SET actor = 'someone-else' WHERE seq = 4 AND request_id = :case"),
            {"case": world.case_id(target)},
        )
    with pytest.raises(LedgerTampered, match="event 4 was altered"):
        world.run("decide", reference=target, outcome="forwarded")


def test_a_restored_case_verifies_again_and_its_commands_are_accepted(world: World) -> None:
    target, _, saved = _sealed_world(world)
    hop3 = world.step_row(target, 3)
    silence_escalations(world, world.case_id(target), saved)
    assert world.cli("audit", "verify").code == 1
    with world.ledger.transaction() as session:
        session.execute(
            update(Step).where(Step.id == hop3["id"]).values(next_rung_at=hop3["next_rung_at"])
        )
    assert world.cli("audit", "verify").code == 0
    world.run("decide", reference=target, outcome="forwarded")
    with world.ledger.session() as session:
        assert session.scalar(select(func.count()).select_from(TamperedCase)) == 0
        resolved = session.scalar(
            select(CaseProblem.resolved_at).where(CaseProblem.reference == target)
        )
    assert resolved is not None


def test_a_projection_changed_alone_has_every_differing_field_named(world: World) -> None:
    target, _, saved = _sealed_world(world)
    mark_executed(world, world.case_id(target), saved)
    ran = world.cli("audit", "verify", "--json")
    assert ran.code == 1
    named = {(f["table"], f.get("hop"), f["field"]) for f in ran.json() if f["reference"] == target}
    assert named == {
        ("requests", None, "status"),
        ("requests", None, "outcome"),
        ("requests", None, "closed_at"),
        ("requests", None, "current_hop"),
        ("steps", 3, "closed_at"),
        ("steps", 3, "outcome"),
    }

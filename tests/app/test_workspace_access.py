"""The workspace's role boundaries, through the HTTP API and the service, on SQLite and
PostgreSQL: who may claim, assign and release a hop, acknowledge or snooze its escalation, see
the escalation board, attach and download documents. Every refusal leaves the ledger as it was.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.service import Service
from models import identity
from models.errors import CommandRejected, Forbidden, NotFound
from models.identity import Caller
from models.sweep import sweep_rungs
from tests.app.access_world import World, build_world
from tests.app.test_access import accepted_as, refused


@pytest.fixture
def world(ledger, clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("ROGATORY_DOCUMENTS", str(tmp_path / "documents"))
    return build_world(ledger, clock)


def _caller(world: World, name: str) -> Caller:
    with world.ledger.session() as session:
        return identity.caller_of(session, identity.account(session, name))


def _service(world: World) -> Service:
    return Service(world.ledger, clock=world.clock)


def _assign(world: World, who: str, officer: str | None, case: str = "sv"):
    return world.command(who, case, "assign", {"officer": officer})


# -- assignment -----------------------------------------------------------------------------------


def test_a_clerk_claims_a_free_hop_and_releases_it_as_themself(world: World) -> None:
    before = world.seq("sv")
    accepted_as(world, _assign(world, "clerk-fgr", "clerk-fgr"), "clerk-fgr", after=before)
    assert [i.reference for i in _service(world).my_work(_caller(world, "clerk-fgr"))] == [
        world.refs["sv"]
    ]
    before = world.seq("sv")
    accepted_as(world, _assign(world, "clerk-fgr", None), "clerk-fgr", after=before)
    assert _service(world).my_work(_caller(world, "clerk-fgr")) == []


@pytest.mark.parametrize(
    ("first", "attempt", "why"),
    [
        (None, "head-fgr", "may not assign"),  # a clerk gives the hop to someone else
        ("head-fgr", "clerk-fgr", "may not claim"),  # a clerk takes it from a colleague
        ("head-fgr", None, "may not release"),  # a clerk releases a colleague's hop
    ],
)
def test_a_clerk_may_not_assign_others_nor_take_or_release_theirs(
    world: World, first: str | None, attempt: str | None, why: str
) -> None:
    if first is not None:
        assert _assign(world, "head-fgr", first).status_code == 200
    before = world.seq("sv")
    body = refused(_assign(world, "clerk-fgr", attempt), 403)
    assert why in body["detail"] and "ask the head of fgr" in body["detail"]
    assert world.seq("sv") == before


@pytest.mark.parametrize("who", ["head-fgr", "coord-sv"])
def test_the_head_and_the_coordinator_assign_to_any_officer_and_release(
    world: World, who: str
) -> None:
    for officer in ("clerk-fgr", "head-fgr", None):
        before = world.seq("sv")
        accepted_as(world, _assign(world, who, officer), who, after=before)


def test_an_officer_of_another_authority_is_refused_and_nothing_is_written(world: World) -> None:
    before = world.seq("sv")
    body = refused(_assign(world, "coord-sv", "clerk-mjsp"), 422)
    assert "not a clerk or head of SV/fgr" in body["detail"]
    assert world.seq("sv") == before
    refused(_assign(world, "clerk-mjsp", "clerk-mjsp"), 403)  # nor may they claim it
    assert world.seq("sv") == before


# -- acknowledging and snoozing ------------------------------------------------------------------


def _escalate(world: World) -> None:
    later = world.clock.now() + timedelta(days=25)  # within the tokens' lifetime
    with world.ledger.transaction() as session:
        sweep_rungs(session=session, routings=_service(world).routings(), now=later)
    world.clock.set(later)


@pytest.mark.parametrize(
    "who", ["clerk-fgr", "clerk-mjsp", "auditor-sv", "ministry-sv", "coord-gt"]
)
def test_only_the_head_and_the_coordinator_acknowledge_or_snooze(world: World, who: str) -> None:
    _escalate(world)
    before = world.seq("sv")
    refused(world.command(who, "sv", "acknowledge", {"note": "seen"}), 403)
    refused(world.command(who, "sv", "snooze", {"until": "2026-06-01", "reason": "r"}), 403)
    assert world.seq("sv") == before


def test_the_head_acknowledges_and_the_coordinator_snoozes(world: World) -> None:
    _escalate(world)
    before = world.seq("sv")
    accepted_as(
        world,
        world.command("head-fgr", "sv", "acknowledge", {"note": "called"}),
        "head-fgr",
        after=before,
    )
    before = world.seq("sv")
    until = (world.clock.now() + timedelta(days=10)).date().isoformat()
    accepted_as(
        world,
        world.command("coord-sv", "sv", "snooze", {"until": until, "reason": "minister away"}),
        "coord-sv",
        after=before,
    )
    assert [k for k, _ in world.events_after(world.refs["sv"], before)] == ["escalation_snoozed"]


def test_the_board_shows_confidential_cases_only_to_who_sees_them_one_by_one(
    world: World,
) -> None:
    _escalate(world)
    service = _service(world)
    refs = world.refs
    mine = {refs["sv"], refs["sv-confidential"], refs["sv-sealed"]}
    for who in ("coord-sv", "ministry-sv"):
        assert {i.reference for i in service.board(_caller(world, who), "SV")} == mine
    assert {i.reference for i in service.board(_caller(world, "auditor-sv"), "SV")} == {refs["sv"]}
    assert {i.reference for i in service.board(_caller(world, "auditor-all"))} == {
        refs["sv"],
        refs["gt"],
    }
    assert {i.reference for i in service.board(_caller(world, "coord-gt"))} == {refs["gt"]}
    for who in ("clerk-fgr", "head-fgr", "coord-gt"):
        with pytest.raises(Forbidden):
            service.board(_caller(world, who), "SV")


# -- documents ------------------------------------------------------------------------------------


PDF = b"%PDF-1.7 the request, signed\n"


def _attach(world: World, who: str, case: str, content: bytes = PDF):
    return _service(world).attach(
        world.refs[case],
        content,
        filename="request.pdf",
        media_type="application/pdf",
        kind="request",
        caller=_caller(world, who),
    )


def test_documents_are_attached_on_the_record_and_read_back_by_readers(world: World) -> None:
    before = world.seq("sv")
    result = _attach(world, "clerk-mjsp", "sv")  # mjsp is on the route, not the holder
    assert world.events_after(world.refs["sv"], before) == [("document_attached", "clerk-mjsp")]
    service = _service(world)
    (listed,) = service.documents(world.refs["sv"], _caller(world, "auditor-sv"))
    assert (listed.filename, listed.size, listed.seq) == ("request.pdf", len(PDF), result.seq)
    row, content = service.document(world.refs["sv"], listed.sha256, _caller(world, "auditor-sv"))
    assert content == PDF and row.kind == "request"


def test_attaching_the_same_content_twice_to_a_case_is_refused(world: World) -> None:
    _attach(world, "clerk-fgr", "sv")
    before = world.seq("sv")
    with pytest.raises(CommandRejected, match="already attached"):
        _attach(world, "head-fgr", "sv")
    assert world.seq("sv") == before
    _attach(world, "coord-sv", "sv-confidential")  # another case may hold the same content


@pytest.mark.parametrize(("who", "case"), [("clerk-mjsp", "sv-sealed"), ("auditor-sv", "sv")])
def test_who_is_not_on_the_route_may_not_attach(world: World, who: str, case: str) -> None:
    before = world.seq(case)
    with pytest.raises(Forbidden):
        _attach(world, who, case)
    assert world.seq(case) == before


def test_a_document_is_not_downloaded_by_an_unrelated_clerk_nor_through_another_case(
    world: World,
) -> None:
    _attach(world, "coord-sv", "sv-sealed")
    service = _service(world)
    (sealed,) = service.documents(world.refs["sv-sealed"], _caller(world, "coord-sv"))
    # mjsp is not on the sealed extradition's route; Guatemala's coordinator is abroad.
    for who in ("clerk-mjsp", "coord-gt", "auditor-sv"):
        with pytest.raises(Forbidden):
            service.document(world.refs["sv-sealed"], sealed.sha256, _caller(world, who))
        with pytest.raises(Forbidden):
            service.documents(world.refs["sv-sealed"], _caller(world, who))
    # A case the clerk may read does not lend them a document attached to another one.
    with pytest.raises(NotFound):
        service.document(world.refs["sv"], sealed.sha256, _caller(world, "clerk-mjsp"))


def test_a_hash_alone_attaches_nothing(world: World) -> None:
    before = world.seq("sv")
    body = {
        "sha256": "a" * 64,
        "kind": "request",
        "filename": "x.pdf",
        "media_type": "application/pdf",
        "size": 1,
    }
    # No route takes a hash alone: documents come with their bytes (POST .../documents).
    answer = world.command("coord-sv", "sv", "attach", body)
    assert answer.status_code in (404, 405)
    assert world.seq("sv") == before

"""Moving open cases onto a new version: `rogatory routing diff | publish | migrate`.

A simulated Salvadoran ledger's open cases are moved to a version without the Ministry of
Justice hop: the dry run says case by case where each open hop lands and which cases cannot
move (their open hop is that very step) and why; the move leaves every case consistent (the
crash test's invariants), the chains intact, and the moved cases carry on on the new chain.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models import engine, publishing, rerouting
from models.clock import FixedClock
from models.engine import Routings
from models.errors import NotFound
from models.ledger import Event, Ledger, Request, Step
from models.loader import load_country
from models.queries import verify_chain
from models.simulation import simulate
from tests.models.test_crash import check_invariants

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def without_ministry_of_justice(text: str) -> str:
    """The country file with every step the Ministry of Justice (mjsp) holds taken out."""
    return "".join(line for line in text.splitlines(keepends=True) if "holder: mjsp" not in line)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A simulated SV ledger (two years) and a config folder with the draft published."""
    folder = tmp_path_factory.mktemp("rerouting")
    root = folder / "config"
    shutil.copytree(REPO / "config", root)
    url = f"sqlite:///{folder / 'ledger.db'}"
    current = load_country(root / "countries" / "sv.yaml")
    ledger = Ledger(url, migrate=True)
    simulate(
        ledger=ledger,
        routings=Routings({"SV": current}),
        years=2,
        per_year=600,
        seed=20261201,
        countries=["SV"],
        start=datetime(2024, 6, 1, tzinfo=UTC),
    )
    draft = without_ministry_of_justice((root / "countries" / "sv.yaml").read_text())
    checked = publishing.check_draft(draft.encode(), country="SV", root=root)
    assert checked.routing is not None, checked.problems
    publishing.publish(
        draft.encode(),
        ledger=ledger,
        country="SV",
        root=root,
        actor="local:ministry",
        now=NOW,
        note="para 86: without the Ministry of Justice",
        reviewed=checked.routing.version,
        based_on=current.version,
    )
    target = load_country(root / "countries" / "sv.yaml")
    yield ledger, current, target, root
    ledger.dispose()


def open_steps(ledger: Ledger) -> dict[str, tuple[str, str, str]]:
    with ledger.session() as session:
        rows = session.execute(
            select(Request.reference, Request.routing_version, Step.route_step, Request.status)
            .outerjoin(Step, (Step.request_id == Request.id) & (Step.hop == Request.current_hop))
            .where(Request.status != "closed")
        ).all()
    return {r.reference: (r.routing_version, r.route_step, r.status) for r in rows}


def test_the_dry_run_says_where_each_open_case_lands_and_which_cannot_move(world):
    ledger, _, target, _ = world
    with ledger.session() as session:
        plan = rerouting.plan(session=session, country="SV", target=target, pinned=Routings({}))
    before = open_steps(ledger)
    at_ministry = {ref for ref, (_, step, status) in before.items() if step == "transmit"}
    assert at_ministry, "the simulated ledger should hold cases open at the Ministry"
    blocked = {b.reference: b.reason for b in plan.blocked}
    assert at_ministry <= set(blocked)
    assert all("'transmit'" in blocked[ref] for ref in at_ministry)
    landed = {landing.reference: landing for landing in plan.landings}
    assert set(landed) | set(blocked) == set(before)
    court = next(x for x in plan.landings if x.step == "court" and x.route == "mla-outgoing")
    assert "diplomatic-channel" in " ".join(court.notes) and "transmit" in " ".join(court.notes)
    assert open_steps(ledger) == before  # a dry run writes nothing


def test_a_bulk_migration_leaves_every_case_consistent_and_the_chains_intact(world):
    ledger, _, target, _ = world
    with ledger.session() as session:
        plan = rerouting.plan(session=session, country="SV", target=target, pinned=Routings({}))
    before = open_steps(ledger)
    with ledger.session() as session:
        check_invariants(session)  # as simulated
    moved = rerouting.move(
        ledger=ledger,
        country="SV",
        target=target,
        clock=FixedClock(NOW),
        actor="local:ministry",
        references=[landing.reference for landing in plan.landings],
        blocked=plan.blocked,
    )
    assert sorted(moved) == sorted(landing.reference for landing in plan.landings)
    after = open_steps(ledger)
    for reference, (version, step, status) in after.items():
        was = before[reference]
        if reference in moved:
            assert version == target.version and (step, status) == was[1:]
        else:
            assert (version, step, status) == was
    with ledger.session() as session:
        assert verify_chain(session=session) == []
        check_invariants(session)
        migrated = session.scalars(select(Event.payload).where(Event.kind == "migrated")).all()
    assert len(migrated) == len(moved)
    with ledger.session() as session:
        again = rerouting.plan(session=session, country="SV", target=target, pinned=Routings({}))
    assert again.landings == [] and again.current == len(moved)


def test_a_moved_case_carries_on_on_the_new_chain(world):
    ledger, _, target, _ = world
    with ledger.session() as session:
        plan = rerouting.plan(session=session, country="SV", target=target, pinned=Routings({}))
        refs = [
            x.reference for x in plan.landings if x.step == "court" and x.route == "mla-outgoing"
        ]
    if refs:  # not yet moved by the test before
        rerouting.move(
            ledger=ledger,
            country="SV",
            target=target,
            clock=FixedClock(NOW),
            actor="local:ministry",
            references=refs[:1],
            blocked=[],
        )
    moved_at_court = [
        ref
        for ref, (version, step, _) in open_steps(ledger).items()
        if version == target.version and step == "court"
    ]
    with ledger.session() as session:
        routes = dict(session.execute(select(Request.reference, Request.route_id)).all())
    reference = next(r for r in moved_at_court if routes[r] == "mla-outgoing")
    with ledger.transaction() as session:
        result = engine.decide(
            session=session,
            clock=FixedClock(NOW),
            routings=Routings({"SV": target}),
            reference=reference,
            outcome="forwarded",
        )
    assert "rree" in result.message  # straight to Foreign Affairs: no Ministry of Justice hop
    with ledger.session() as session:
        check_invariants(session)


def test_migrating_to_a_version_not_in_force_is_refused(world):
    _, current, target, _ = world
    with pytest.raises(NotFound, match="not the routing of SV in force"):
        rerouting.resolve_version(target, current.version)
    rerouting.resolve_version(target, target.version[:10])


def test_the_cli_diff_names_the_removed_hop_in_every_route(tmp_path, monkeypatch, capsys):
    from app.cli import main

    root = tmp_path / "config"
    shutil.copytree(REPO / "config", root)
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(root))
    monkeypatch.delenv("ROGATORY_API_URL", raising=False)
    draft = tmp_path / "sv.yaml"
    draft.write_text(without_ministry_of_justice((root / "countries" / "sv.yaml").read_text()))
    assert main(["routing", "diff", "SV", str(draft)]) == 0
    out = capsys.readouterr().out
    assert out.count("step transmit (Ministerio de Justicia y Seguridad Pública): removed") == 3
    assert "route mla-outgoing (Outgoing MLA request): changed" in out


def test_the_cli_publishes_only_the_draft_that_was_reviewed(tmp_path, monkeypatch, capsys):
    from app.cli import main

    root = tmp_path / "config"
    shutil.copytree(REPO / "config", root)
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(root))
    monkeypatch.setenv("ROGATORY_VAR", str(tmp_path / "var"))
    monkeypatch.delenv("ROGATORY_API_URL", raising=False)
    Ledger(migrate=True).dispose()
    draft = tmp_path / "sv.yaml"
    draft.write_text(without_ministry_of_justice((root / "countries" / "sv.yaml").read_text()))
    args = ["routing", "publish", "SV", str(draft), "--note", "para 86"]
    assert main([*args, "--reviewed", "00000000"]) == 1
    assert "not the draft 00000000 you reviewed" in capsys.readouterr().err
    assert main(args) == 0
    assert "published SV version" in capsys.readouterr().out
    assert "holder: mjsp" not in (root / "countries" / "sv.yaml").read_text()

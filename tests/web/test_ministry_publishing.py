"""What the ministry's pages stand on, without HTTP: a draft checked as `rogatory validate`
checks a file, a diff that names each change where it is, and a publication that leaves the
file as it was when its transaction fails."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import publishing
from models.ledger import Ledger, RoutingPublication
from models.loader import Routing
from models.publishing import Change, check_draft, diff_routings

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 15, tzinfo=UTC)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path / "config"


def sv(root: Path) -> str:
    return (root / "countries" / "sv.yaml").read_text(encoding="utf-8")


def draft_of(text: str, root: Path) -> Routing:
    draft = check_draft(text.encode(), country="SV", root=root)
    assert draft.problems == []
    assert draft.routing is not None
    return draft.routing


def test_a_draft_is_refused_for_what_rogatory_validate_refuses(root: Path) -> None:
    empty = check_draft(b"", country="SV", root=root)
    assert [str(p) for p in empty.problems] == ["countries/sv.yaml:1:1: the file is empty"]
    latin1 = check_draft("name: Perú\n".encode("latin-1"), country="SV", root=root)
    assert "not UTF-8 text" in str(latin1.problems[0])
    huge = check_draft(b"#" * (600 * 1024), country="SV", root=root)
    assert "over the 524288-byte limit" in str(huge.problems[0])


def test_a_draft_posted_from_a_textarea_keeps_the_files_line_ends(root: Path) -> None:
    in_force = publishing.in_force("SV", root=root)
    draft = check_draft(sv(root).replace("\n", "\r\n").encode(), country="SV", root=root)
    assert draft.routing is not None and in_force is not None
    assert "\r" not in draft.text
    assert draft.routing.version == in_force.version


def test_the_diff_names_steps_added_removed_and_changed_where_they_are(root: Path) -> None:
    before = publishing.in_force("SV", root=root)
    text = sv(root)
    text = text.replace(
        "      - {id: transmit, holder: mjsp, sla: 5bd}       # paras 47, 86: the Ministry",
        "      - {id: transmit, holder: rree, sla: 5bd, escalation: [{at: 50%, notify: [head], "
        "kind: reminder}]}  #",
    )
    text = text.replace(
        "      - {id: register, holder: rree, sla: 3bd}       # para 25: numbered",
        "      - {id: registry, holder: rree, sla: 3bd}       # para 25: numbered",
    )
    diff = diff_routings(before, draft_of(text, root))
    routes = {r.id: r for r in diff.routes}
    assert set(routes) == {"mla-outgoing", "mla-incoming"}
    transmit = {s.id: s for s in routes["mla-outgoing"].steps}["transmit"]
    assert transmit.status == "changed"
    assert (
        Change(
            "holder",
            "Ministerio de Justicia y Seguridad Pública",
            "Ministerio de Relaciones Exteriores",
        )
        in transmit.changes
    )
    assert Change("step escalation ladder", "", "50%: head (reminder)") in transmit.changes
    incoming = routes["mla-incoming"]
    assert [(s.id, s.status) for s in incoming.steps] == [
        ("register", "removed"),
        ("registry", "added"),
    ]
    assert incoming.changes[0].what == "steps in order"
    assert incoming.changes[0].after.startswith("registry → transmit")


def test_the_diff_names_routes_added_and_removed_and_country_settings(root: Path) -> None:
    before = publishing.in_force("SV", root=root)
    text = sv(root).replace("  - id: extradition-outgoing\n", "  - id: extradition-out\n")
    text = text.replace("timezone: America/El_Salvador", "timezone: America/Guatemala")
    diff = diff_routings(before, draft_of(text, root))
    assert [(r.id, r.status) for r in diff.routes] == [
        ("extradition-outgoing", "removed"),
        ("extradition-out", "added"),
    ]
    assert Change("timezone", "America/El_Salvador", "America/Guatemala") in diff.changes
    assert "+timezone: America/Guatemala" in diff.text


def test_a_first_routing_is_all_new(root: Path) -> None:
    diff = diff_routings(None, draft_of(sv(root), root))
    assert diff.before is None
    assert {r.status for r in diff.routes} == {"added"}


def test_a_failed_publication_puts_the_file_back(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)
    before = publishing.in_force("SV", root=root)
    assert before is not None
    original = sv(root)
    changed = original.replace("sla: 90d", "sla: 80d")
    reviewed = draft_of(changed, root).version

    def fail(self: object, values: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(publishing.CaseStore, "pin", fail)
    with pytest.raises(RuntimeError):
        publishing.publish(
            changed.encode(),
            ledger=ledger,
            country="SV",
            root=root,
            actor="ministry-sv",
            now=NOW,
            note="n",
            reviewed=reviewed,
            based_on=before.version,
        )
    assert sv(root) == original
    assert not list((root / "countries").glob(".*.tmp"))
    with ledger.session() as session:
        assert session.scalar(select(func.count()).select_from(RoutingPublication)) == 0
    ledger.dispose()

"""`rogatory attach`, `assign`, `acknowledge` and `snooze` on the command line, and `rogatory
audit verify` catching a stored document that was altered or lost."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from models.documents import sha256_of
from models.ledger import Document, Step
from models.privacy import CaseKeys
from tests.app import test_cli
from tests.app.test_cli import Cli

cli = test_cli.cli  # the command line in this process, on a fresh ledger

SCAN = b"%PDF-1.7 a scanned letter rogatory\n" * 100


@pytest.fixture
def documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ROGATORY_DOCUMENTS", str(tmp_path / "documents"))
    return tmp_path / "documents"


def _scan(folder: Path, content: bytes = SCAN) -> Path:
    path = folder / "solicitud firmada.pdf"
    path.write_bytes(content)
    return path


def test_a_file_is_attached_stored_privately_and_refused_the_second_time(
    cli: Cli, documents: Path, tmp_path: Path
) -> None:
    reference = cli.register()
    ran = cli("attach", reference, str(_scan(tmp_path)), "--kind", "request", "--json")
    assert ran.code == 0, ran.err
    sha256 = sha256_of(SCAN)
    stored = documents / sha256[:2] / sha256
    assert stored.read_bytes() == SCAN
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(stored.parent).st_mode) == 0o700
    with cli.ledger.session() as session:
        row = session.execute(select(Document)).scalar_one()
        filename = CaseKeys(session).open_value(reference, "filename", row.filename)
    assert row.filename.startswith("enc:v1:")  # sealed at rest, as its event's
    assert (filename, row.media_type, row.size, row.kind, row.seq) == (
        "solicitud firmada.pdf",
        "application/pdf",
        len(SCAN),
        "request",
        ran.json()["seq"],
    )
    assert cli.events(reference)[-1].kind == "document_attached"
    again = cli.refused("attach", reference, str(_scan(tmp_path)), "--kind", "reply")
    assert "already attached" in again.err


def test_attach_refuses_an_unknown_kind_and_a_missing_file(
    cli: Cli, documents: Path, tmp_path: Path
) -> None:
    reference = cli.register()
    cli.refused("attach", reference, str(_scan(tmp_path)), "--kind", "memo", code=2)
    missing = cli.refused("attach", reference, str(tmp_path / "none.pdf"), "--kind", "other")
    assert "cannot read" in missing.err


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_audit_verify_names_a_stored_document_altered_or_lost(
    cli: Cli, documents: Path, tmp_path: Path, damage: str
) -> None:
    reference = cli.register()
    assert cli("attach", reference, str(_scan(tmp_path)), "--kind", "request").code == 0
    assert cli("audit", "verify").code == 0
    sha256 = sha256_of(SCAN)
    stored = documents / sha256[:2] / sha256
    if damage == "altered":
        stored.write_bytes(SCAN.replace(b"letter", b"lettre"))
    else:
        stored.unlink()
    ran = cli("audit", "verify")
    assert ran.code == 1
    assert f"BROKEN {reference} event 3: document {sha256}" in ran.out
    assert ("was altered" if damage == "altered" else "is missing") in ran.out
    assert cli("audit", "verify", "--json").json()[0]["sha256"] == sha256


def test_assign_acknowledge_and_snooze_from_the_command_line(cli: Cli) -> None:
    reference = cli.register("--on", (datetime.now(UTC) - timedelta(days=40)).isoformat())
    refused = cli.refused("assign", reference, "--officer", "nobody")
    assert "no account 'nobody'" in refused.err
    assert "nothing to release" in cli.refused("assign", reference).err
    cli("watch")
    ran = cli("acknowledge", reference, "--note", "the head of unit was called")
    assert ran.code == 0, ran.err
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    ran = cli("snooze", reference, "--until", tomorrow, "--reason", "minister away", "--json")
    assert ran.code == 0, ran.err
    with cli.ledger.session() as session:
        step = session.execute(select(Step)).scalar_one()
    assert step.acknowledged_at is not None and step.acknowledged_by.startswith("local:")
    assert step.snoozed_until is not None
    assert step.next_rung_at is None, "every rung fired and was acknowledged: nothing is left"
    assert [e.kind for e in cli.events(reference)][-2:] == [
        "escalation_acknowledged",
        "escalation_snoozed",
    ]

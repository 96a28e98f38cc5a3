"""The other users' journeys in a real browser: a coordinator acknowledges an escalation and the
next sweep repeats nothing; a document attached on a case is covered by `rogatory audit verify`."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from models.clock import SystemClock
from models.ledger import Delivery, Request
from tasks.sweep import sweep_now
from tests.web.conftest import Workspace, shoot


def _rungs_sent(workspace: Workspace, reference: str) -> set[str]:
    """The keys of the rungs recorded for the case's hops: `step:<id>:rung:<n>:<repeat>`."""
    with workspace.ledger() as ledger, ledger.session() as session:
        keys = session.scalars(
            select(Delivery.key)
            .join(Request, Delivery.request_id == Request.id)
            .where(Request.reference == reference, Delivery.key.contains(":rung:"))
        )
        return set(keys)


def test_a_coordinator_acknowledges_an_escalation_and_the_next_sweep_repeats_nothing(
    sign_in: Any, workspace: Workspace
) -> None:
    reference = workspace.refs["overdue"]
    page = sign_in("coord-sv")
    expect(page.get_by_role("heading", name="Escalations")).to_be_visible()
    row = page.locator("tbody tr", has_text=reference)
    expect(row).to_be_visible()
    shoot(page, "coordinator-board")
    row.get_by_text(f"Acknowledge {reference}").click()
    row.get_by_label("Note").fill("called the prosecutor's office: the draft is ready on Monday")
    before = _rungs_sent(workspace, reference)
    fired = max(int(k.split(":rung:")[1].split(":")[0]) for k in before)
    row.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_contain_text("Recorded")
    expect(page.locator("tbody")).not_to_contain_text(reference)  # seen to: off the list

    with workspace.ledger() as ledger:
        sweep_now(ledger, thresholds=[], now=SystemClock().now() + timedelta(days=60))
    repeats = [
        k
        for k in _rungs_sent(workspace, reference) - before
        if int(k.split(":rung:")[1].split(":")[0]) <= fired
    ]
    assert repeats == []
    page.goto(f"{workspace.base_url}/cases/{reference}")
    expect(page.locator("#events")).to_contain_text("coord-sv")


def test_a_document_attached_on_a_case_verifies_in_the_audit(
    sign_in: Any, workspace: Workspace, tmp_path: Path
) -> None:
    reference = workspace.refs["recent"]
    letter = tmp_path / "letter-rogatory.txt"
    letter.write_text("Letter rogatory: bank records of the account ending 4242.\n")
    page = sign_in("clerk-fgr")
    page.goto(f"{workspace.base_url}/cases/{reference}")
    page.get_by_label("File").set_input_files(str(letter))
    page.get_by_label("What the document is").select_option("request")
    page.get_by_role("button", name="Attach document").click()
    expect(page.locator("#documents")).to_contain_text("letter-rogatory.txt")
    with page.expect_download() as download:
        page.get_by_role("link", name="letter-rogatory.txt").click()
    assert Path(download.value.path()).read_bytes() == letter.read_bytes()

    rogatory = str(Path(sys.executable).parent / "rogatory")
    audit = subprocess.run(
        [rogatory, "audit", "verify"], env=workspace.env, capture_output=True, text=True
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr

    digest = hashlib.sha256(letter.read_bytes()).hexdigest()
    kept = next(p for p in workspace.root.rglob(digest) if p.is_file())
    original = kept.read_bytes()
    kept.chmod(0o600)
    kept.write_bytes(original.replace(b"4242", b"9999"))  # an insider edits the stored copy
    try:
        tampered = subprocess.run(
            [rogatory, "audit", "verify"], env=workspace.env, capture_output=True, text=True
        )
        assert tampered.returncode != 0
        assert digest[:12] in tampered.stdout + tampered.stderr
    finally:
        kept.write_bytes(original)


def test_a_ministry_fixes_a_broken_draft_at_its_line_and_publishes_it(
    sign_in: Any, workspace: Workspace
) -> None:
    country_file = workspace.root / "config" / "countries" / "sv.yaml"
    text = country_file.read_text()
    assert "sla: 10bd" in text
    broken = text.replace("sla: 10bd", "sla: ten business days", 1)
    line = next(n for n, t in enumerate(broken.split("\n"), 1) if "ten business days" in t)
    page = sign_in("ministry-sv")
    page.goto(f"{workspace.base_url}/ministry/SV")
    shoot(page, "ministry-routing")
    page.get_by_role("link", name="Check and publish a draft").click()
    page.get_by_label("Text of the country file").fill(broken)
    page.get_by_role("button", name="Check the draft").click()
    problems = page.get_by_role("alert")
    expect(problems).to_contain_text(f"sv.yaml:{line}:")
    expect(page.get_by_role("button", name="Publish")).to_have_count(0)

    page.get_by_label("Text of the country file").fill(text.replace("sla: 10bd", "sla: 12bd", 1))
    page.get_by_role("button", name="Check the draft").click()
    expect(page.locator("body")).to_contain_text("10bd → 12bd")
    page.get_by_label("Note for the record").fill("Constitutional review gets two more days")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status")).to_contain_text("Published")
    expect(page.locator("body")).to_contain_text("ministry-sv")
    assert "sla: 12bd" in country_file.read_text()

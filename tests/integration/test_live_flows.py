"""Cases driven through real Prefect flows: a real server, a real serving process, real apprise."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models.ledger import Delivery, Event, Ledger, Request
from tests.conftest import _free_port
from tests.integration.conftest import BIN, Site, stop, wait_for
from tests.samples import intake as sample_intake

pytestmark = pytest.mark.integration

PERSON = "Juan Pérez Ramírez"


def intake(**changes: Any) -> dict[str, Any]:
    """The sample request, naming a person and a place that no message may repeat."""
    return sample_intake(
        subject="bribery in public procurement",
        facts_summary="payments routed through an account in Madrid",
        persons=[PERSON],
        **changes,
    )


def ledger_of(site: Site) -> Ledger:
    return Ledger(site.env["ROGATORY_DATABASE_URL"])


def case_row(site: Site, reference: str) -> Any:
    ledger = ledger_of(site)
    try:
        with ledger.session() as session:
            return session.execute(
                select(Request.status, Request.current_hop, Request.flow_run_id).where(
                    Request.reference == reference
                )
            ).one()
    finally:
        ledger.dispose()


def flow_run_state(site: Site, run_id: str) -> Any:
    code = (
        "import sys; from uuid import UUID; from prefect.client.orchestration import get_client\n"
        "with get_client(sync_client=True) as c:\n"
        "    s = c.read_flow_run(UUID(sys.argv[1])).state\n"
        "    print(s.name, s.state_details.pause_key)\n"
    )
    done = subprocess.run(
        [str(BIN / "python"), "-c", code, run_id],
        env=site.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def resume_with(site: Site, run_id: str, run_input: dict[str, Any], *, check: bool = True) -> str:
    """Answer the run's resume form as the Prefect UI does; the server's refusal, if any."""
    code = (
        "import sys, json; from uuid import UUID; from prefect.flow_runs import resume_flow_run\n"
        "resume_flow_run(UUID(sys.argv[1]), run_input=json.loads(sys.argv[2]))\n"
    )
    done = subprocess.run(
        [str(BIN / "python"), "-c", code, run_id, json.dumps(run_input)],
        env=site.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )
    return done.stderr if done.returncode else ""


def test_case_is_driven_through_three_decisions_by_suspend_and_resume(site: Site) -> None:
    site.serve()
    ref = site.register(intake())
    wait_for(lambda: len(site.notices(ref)) == 1, timeout=60, what="hop 1 announced")
    for hop in (1, 2, 3):
        site.cli("decide", ref, "--outcome", "forwarded", "--hop", str(hop))
        wait_for(
            lambda n=hop: len(site.notices(ref)) == n + 1,
            timeout=60,
            what=f"hop {hop + 1} announced",
        )
    notices = site.notices(ref)
    assert [m["recipient"] for m in notices] == ["sv-fgr", "sv-csj", "sv-mjsp", "sv-rree"]
    assert all(m["title"].startswith(f"New: {ref} hop") for m in notices)
    assert not any(PERSON in m["body"] or "Madrid" in m["body"] for m in notices)
    status, hop, run_id = case_row(site, ref)
    assert (status, hop) == ("open", 4)
    state, key = flow_run_state(site, run_id)
    assert state == "Suspended" and key.startswith(f"{ref.lower()}-h4-")


def test_decision_typed_in_the_prefect_ui_form_goes_through_the_engine(site: Site) -> None:
    site.serve()
    ref = site.register(intake())
    wait_for(lambda: len(site.notices(ref)) == 1, timeout=60, what="hop 1 announced")
    run_id = case_row(site, ref).flow_run_id
    wait_for(
        lambda: flow_run_state(site, run_id)[0] == "Suspended",
        timeout=60,
        what="the run to suspend",
    )
    # The route does not allow "executed" on the first hop: its form does not offer it, and
    # the server refuses the answer before the run sees it.
    refused = resume_with(site, run_id, {"hop": 1, "outcome": "executed"}, check=False)
    assert "'executed' is not one of" in refused
    assert flow_run_state(site, run_id)[0] == "Suspended"
    # A decision the form accepts but the engine refuses (another hop): logged and told.
    resume_with(site, run_id, {"hop": 2, "outcome": "forwarded"})
    wait_for(
        lambda: (
            "not applied" in site.log("serve.log")
            and flow_run_state(site, run_id)[0] == "Suspended"
        ),
        timeout=60,
        what="the refused input to be reported",
    )
    assert case_row(site, ref).current_hop == 1
    told = [m for m in site.notices(ref) if m["title"].startswith("Not applied:")]
    assert len(told) == 2 and "hop 2 is no longer open" in told[0]["body"]  # desk, coordinator
    resume_with(site, run_id, {"hop": 1, "outcome": "forwarded", "note": "from the UI"})
    wait_for(
        lambda: [m["title"][:4] for m in site.notices(ref)].count("New:") == 2,
        timeout=60,
        what="hop 2 announced",
    )
    assert case_row(site, ref).current_hop == 2
    # The refused form was read again on that wake, but neither applied nor told twice.
    assert len([m for m in site.notices(ref) if m["title"].startswith("Not applied:")]) == 2


def _move_ledger_without_waking(site: Site, command: str, reference: str, **kwargs: Any) -> None:
    """A command written straight to the ledger, as a second clerk's machine would: no wake."""
    from models import engine
    from models.clock import SystemClock
    from models.engine import Routings

    ledger = ledger_of(site)
    try:
        with ledger.transaction() as session:
            getattr(engine, command)(
                session=session,
                clock=SystemClock(),
                routings=Routings({}),
                reference=reference,
                actor="other-clerk",
                **kwargs,
            )
    finally:
        ledger.dispose()


def _suspended_run(site: Site, ref: str) -> str:
    wait_for(lambda: len(site.notices(ref)) >= 1, timeout=60, what="hop 1 announced")
    run_id = str(case_row(site, ref).flow_run_id)
    wait_for(
        lambda: flow_run_state(site, run_id)[0] == "Suspended",
        timeout=60,
        what="the run to suspend",
    )
    return run_id


def test_a_form_answered_after_the_ledger_moved_on_is_still_applied(site: Site) -> None:
    site.serve()
    ref = site.register(intake())
    run_id = _suspended_run(site, ref)
    stale_key = flow_run_state(site, run_id)[1]
    # Someone stops and resumes the clock elsewhere: the run still waits under the old key.
    _move_ledger_without_waking(site, "stop_clock", ref, reason="awaiting clarification")
    _move_ledger_without_waking(site, "resume_clock", ref, reason="answer received")
    resume_with(site, run_id, {"hop": 1, "outcome": "forwarded", "note": "typed in the form"})
    wait_for(lambda: case_row(site, ref).current_hop == 2, timeout=60, what="the decision applied")
    wait_for(lambda: len(site.notices(ref)) == 2, timeout=60, what="hop 2 announced")
    state, key = flow_run_state(site, run_id)
    assert state == "Suspended" and key != stale_key and key.startswith(f"{ref.lower()}-h2-")
    ledger = ledger_of(site)
    try:
        with ledger.session() as session:
            actors = session.scalars(
                select(Event.actor).join(Request).where(Request.reference == ref)
            ).all()
    finally:
        ledger.dispose()
    assert actors.count("prefect-ui") == 2  # the decision and the hop it opened, once each


def test_a_form_decision_overtaken_by_another_is_refused_logged_and_told(site: Site) -> None:
    site.serve()
    ref = site.register(intake())
    run_id = _suspended_run(site, ref)
    _move_ledger_without_waking(site, "decide", ref, outcome="forwarded", hop=1)
    resume_with(site, run_id, {"hop": 1, "outcome": "refused", "ground": "de_minimis"})
    wait_for(
        lambda: any(m["title"].startswith("Not applied:") for m in site.notices(ref)),
        timeout=60,
        what="the holder told that the form's decision was not applied",
    )
    told = [m for m in site.notices(ref) if m["title"].startswith("Not applied:")]
    assert {m["recipient"] for m in told} == {"sv-csj", "sv-coordination"}
    assert "hop 1 is no longer open" in told[0]["body"]
    # The notice goes out from inside the task; the run logs the refusal just after.
    wait_for(lambda: "not applied" in site.log("serve.log"), timeout=30, what="the refusal logged")
    assert case_row(site, ref).status == "open"  # hop 2 stands; the refusal changed nothing


def test_withdrawing_a_case_ends_its_run(site: Site) -> None:
    site.serve()
    ref = site.register(intake())
    run_id = _suspended_run(site, ref)
    site.cli("withdraw", ref, "--note", "no longer needed")
    wait_for(
        lambda: flow_run_state(site, run_id)[0] == "Completed",
        timeout=60,
        what="the withdrawn case's run to complete",
    )


def _smtp(messages: list[str]) -> Any:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            messages.append(envelope.content.decode("utf-8", errors="replace"))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    return controller


def test_escalation_reaches_a_real_smtp_server_through_apprise(site: Site) -> None:
    messages: list[str] = []
    smtp = _smtp(messages)
    try:
        config = site.root / "apprise.conf"
        lines = (Path(__file__).parents[2] / "config" / "apprise.conf").read_text().splitlines()
        lines = [x for x in lines if not x.startswith("sv-coordination=")]
        lines.append(
            f"sv-coordination=mailto://127.0.0.1:{smtp.port}"
            "?from=rogatory@example.org&to=coordination@example.org"
        )
        config.write_text("\n".join(lines) + "\n")
        site.env["ROGATORY_APPRISE_CONFIG"] = str(config)
        site.serve()
        # Registered (late) 40 days ago: its first hop is long overdue.
        opened = (datetime.now(UTC) - timedelta(days=40)).isoformat()
        path = site.root / "late.json"
        path.write_text(json.dumps(intake()))
        done = site.cli("request", "register", str(path), "--on", opened, "--json")
        ref = json.loads(done.stdout)["reference"]
        subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "watch_clock/watch-clock"],
            env=site.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        wait_for(
            lambda: any("Escalation" in m for m in messages),
            timeout=120,
            what="the escalation mail",
        )
    finally:
        smtp.stop()
    mail = next(m for m in messages if "Escalation" in m)
    assert f"Subject: Escalation: {ref} hop 1 is" in mail
    assert "To: coordination@example.org" in mail
    assert "Days late:" in mail and "Prescription slack:" in mail
    assert PERSON not in mail and "Madrid" not in mail
    # 40 days late, the hop owes its reminder, overdue and escalation rungs at once: only the
    # escalation goes out, the others are superseded.
    assert not [m for m in messages if f"Overdue: {ref}" in m or f"Reminder: {ref}" in m]
    assert len([m for m in messages if f"Escalation: {ref}" in m]) == 1


def test_serving_process_killed_mid_case_restarts_and_finishes_without_duplicates(
    site: Site,
) -> None:
    site.env["ROGATORY_STUCK_AFTER_S"] = "3"
    server = site.serve()
    ref = site.register(intake())
    wait_for(lambda: len(site.notices(ref)) == 1, timeout=60, what="hop 1 announced")
    site.cli("decide", ref, "--outcome", "forwarded", "--hop", "1")
    # Kill the whole serving process group while hop 2's run is being resumed.
    time.sleep(1.5)
    stop(server, signal.SIGKILL)
    site.serve()
    time.sleep(4)  # longer than ROGATORY_STUCK_AFTER_S: a run left "running" counts as dead
    site.cli("watch", "--reconcile")
    wait_for(lambda: len(site.notices(ref)) >= 2, timeout=90, what="hop 2 announced after restart")
    for hop in (2, 3, 4):
        site.cli("decide", ref, "--outcome", "forwarded", "--hop", str(hop))
        wait_for(
            lambda n=hop: len(site.notices(ref)) >= n + 1,
            timeout=90,
            what=f"hop {hop + 1} announced",
        )
    site.cli("decide", ref, "--outcome", "executed", "--hop", "5")
    run_id = case_row(site, ref).flow_run_id
    wait_for(
        lambda: flow_run_state(site, run_id)[0] == "Completed",
        timeout=90,
        what="the case's run to complete",
    )
    assert case_row(site, ref).status == "closed"
    titles = Counter(m["title"] for m in site.notices(ref))
    assert titles and max(titles.values()) == 1, titles
    assert len(titles) == 5


def test_two_watchers_at_once_deliver_each_rung_once(site: Site) -> None:
    ledger = ledger_of(site)
    ledger.dispose()  # creates the schema
    opened = (datetime.now(UTC) - timedelta(days=60)).isoformat()
    for i in range(30):
        path = site.root / f"late-{i}.json"
        path.write_text(json.dumps(intake()))
        site.env.pop("PREFECT_API_URL", None)
        site.cli("request", "register", str(path), "--on", opened, "--json")
    watchers = [
        subprocess.Popen(
            [str(BIN / "rogatory"), "watch"],
            env=site.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    for w in watchers:
        assert w.wait(timeout=180) == 0, w.stdout.read() if w.stdout else ""
    site.cli("watch")  # a third pass finds nothing new
    ledger = ledger_of(site)
    try:
        with ledger.session() as session:
            deliveries = session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status != "superseded")
            )
            sent = session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status == "sent")
            )
            tags = sum(
                len(t)
                for t in session.scalars(select(Delivery.tags).where(Delivery.status == "sent"))
            )
    finally:
        ledger.dispose()
    lines = Counter((m["recipient"], m["title"]) for m in site.outbox)
    assert deliveries and deliveries == sent
    # Every recipient of every delivery got it once (missed repeats collapse into one notice).
    assert sum(lines.values()) == tags
    assert max(lines.values()) == 1, [k for k, v in lines.items() if v > 1][:3]
    # Each hop, 60 days late: its "new hop" notice (holder), then only its highest rung, the
    # escalation (head + coordinator); every delivery reached each of its tags once.
    assert sum(lines.values()) == 30 * 3


def test_reassigning_a_hop_wakes_the_run_so_the_new_holder_is_told_at_once(site: Site) -> None:
    site.serve()
    ref = site.register(intake())
    run_id = _suspended_run(site, ref)
    site.cli("reassign", ref, "--to", "mjsp", "--note", "reached the wrong desk")
    wait_for(
        lambda: any(
            m["title"] == f"New: {ref} hop 2 is now with you" and m["recipient"] == "sv-mjsp"
            for m in site.notices(ref)
        ),
        timeout=60,
        what="the new holder told (no sweep runs in this test)",
    )
    wait_for(
        lambda: flow_run_state(site, run_id)[1].startswith(f"{ref.lower()}-h2-"),
        timeout=60,
        what="the run waiting on hop 2",
    )


def test_migrating_a_case_wakes_its_run_onto_the_new_state(site: Site, tmp_path: Path) -> None:
    import re
    import shutil

    site.serve()
    ref = site.register(intake())
    run_id = _suspended_run(site, ref)
    before = flow_run_state(site, run_id)[1]
    edited = tmp_path / "config"
    shutil.copytree(Path(__file__).parents[2] / "config", edited)
    sv = edited / "countries" / "sv.yaml"
    sv.write_text(re.sub(r"sla: (\d+)bd", lambda m: f"sla: {int(m[1]) + 5}bd", sv.read_text()))
    site.env["ROGATORY_CONFIG_DIR"] = str(edited)
    done = site.cli("migrate", ref)
    assert "moved from routing" in done.stdout
    _, key = wait_for(
        lambda: (
            (found := flow_run_state(site, run_id))[0] == "Suspended"
            and found[1] != before
            and found
        ),
        timeout=60,
        what="the run to wait under the migrated case's new state",
    )
    assert key.startswith(f"{ref.lower()}-h1-")

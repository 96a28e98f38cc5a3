"""The `rogatory` command line, run in-process: every ledger command's success and refusal.

Each test runs `app.cli.main` against a fresh ledger (a SQLite file, then a PostgreSQL database),
with no Prefect server to be found, and checks the exit code (0 done, 1 refused, 2 usage), what
was printed, and what the ledger holds afterwards: a refused command leaves it untouched.
"""

from __future__ import annotations

import getpass
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select, text

from app.cli import main
from models.ledger import Event, Ledger, ReferenceCounter, Request, RoutingVersion, Step
from tests.samples import intake

REPO = Path(__file__).resolve().parents[2]
NO_FLOW_YET = (
    "no Prefect server answers, so its flow is not started yet; the watcher's "
    "reconciliation starts it once `rogatory serve` runs."
)
DECISION_RECORDED = (
    "note: recorded. No Prefect server answers (or the case has no flow run yet): the case's "
    "flow picks the change up once the server is back, and the watcher's reconciliation makes "
    "sure it does."
)


def stamp(moment: datetime) -> str:
    """An instant as the clerk types it for --on."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """`rogatory ...` in this process, plus a look at the ledger it wrote to."""

    def __init__(self, capsys: pytest.CaptureFixture[str], ledger: Ledger, folder: Path) -> None:
        self.capsys = capsys
        self.ledger = ledger
        self.folder = folder
        self.files = 0

    def __call__(self, *argv: str) -> Ran:
        self.capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse refuses bad usage with exit status 2
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = self.capsys.readouterr()
        return Ran(code, out, err)

    def request_file(self, suffix: str = ".yaml", **changes: Any) -> Path:
        self.files += 1
        path = self.folder / f"request-{self.files}{suffix}"
        data = intake(**changes)
        if suffix == ".json":
            path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return path

    def register(self, *extra: str, **changes: Any) -> str:
        ran = self("request", "register", str(self.request_file(**changes)), "--json", *extra)
        assert ran.code == 0, ran.err
        return str(ran.json()["reference"])

    def state(self) -> tuple[Any, ...]:
        """Everything a command could have written, to compare before and after a refusal."""
        with self.ledger.session() as session:
            counts = tuple(
                session.scalar(select(func.count()).select_from(model))
                for model in (Event, Request, Step, RoutingVersion)
            )
            cases = session.execute(
                select(
                    Request.reference,
                    Request.last_seq,
                    Request.head_hash,
                    Request.status,
                    Request.current_hop,
                    Request.routing_version,
                ).order_by(Request.id)
            ).all()
            hops = session.execute(
                select(
                    Step.request_id, Step.hop, Step.closed_at, Step.stopped_since, Step.due_at
                ).order_by(Step.request_id, Step.hop)
            ).all()
            counters = session.execute(select(ReferenceCounter.last)).scalars().all()
        return counts, tuple(cases), tuple(hops), tuple(counters)

    def events(self, reference: str) -> list[Event]:
        with self.ledger.session() as session:
            return list(
                session.scalars(
                    select(Event)
                    .join(Request, Request.id == Event.request_id)
                    .where(Request.reference == reference)
                    .order_by(Event.seq)
                )
            )

    def refused(self, *argv: str, code: int = 1) -> Ran:
        """Run a command that must be refused and must leave the ledger as it was."""
        before = self.state()
        ran = self(*argv)
        assert ran.code == code, (ran.out, ran.err)
        assert self.state() == before
        return ran


@pytest.fixture
def cli(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    monkeypatch.setenv("ROGATORY_DATABASE_URL", database_url)
    monkeypatch.setenv("ROGATORY_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(REPO / "config"))
    monkeypatch.setenv("ROGATORY_ACTOR", "clerk-7")  # a claim: must not become the actor
    monkeypatch.delenv("ROGATORY_CLOCK", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    ledger = Ledger(database_url, migrate=True)
    yield Cli(capsys, ledger, tmp_path)
    ledger.dispose()


@pytest.fixture
def offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """The CLI for commands that read configuration only: no ledger is ever opened."""
    monkeypatch.setenv("ROGATORY_DATABASE_URL", "sqlite:////nonexistent/never-opened.db")
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(REPO / "config"))
    return Cli(capsys, None, tmp_path)  # type: ignore[arg-type]


def this_year(country: str, number: int) -> str:
    return f"{country}-{datetime.now(UTC).year}-{number:06d}"


# -- request register ------------------------------------------------------------------------------


def test_register_prints_the_reference_and_that_no_flow_runs_yet(cli):
    ran = cli("request", "register", str(cli.request_file()))
    reference = this_year("SV", 1)
    assert ran.code == 0, ran.err
    assert ran.out.startswith(f"registered {reference} on route mla-outgoing; hop 1 at fgr, due ")
    assert f"note: {reference}: {NO_FLOW_YET}" in ran.err
    events = cli.events(reference)
    assert [e.kind for e in events] == ["registered", "hop_opened"]
    # The command line on the server records who runs it, never a name it is told.
    assert {e.actor for e in events} == {f"local:{getpass.getuser()}"}


def test_register_reads_json_files_and_json_output_parses(cli):
    ran = cli("request", "register", str(cli.request_file(".json")), "--json")
    assert ran.code == 0, ran.err
    result = ran.json()  # the Prefect notice is not mixed into JSON output
    assert (result["reference"], result["hop"], result["status"]) == (this_year("SV", 1), 1, "open")
    assert result["replayed"] is False


def test_register_refuses_a_bad_request_listing_reasons_and_writes_nothing(cli):
    cli.register()
    ran = cli.refused(
        "request", "register", str(cli.request_file(offence_date="2099-01-01", counterpart="XX"))
    )
    assert ran.err.startswith("request refused:")
    assert "offence_date: 2099-01-01 is in the future" in ran.err
    assert "counterpart: 'XX' is not an ISO 3166 country code" in ran.err
    assert NO_FLOW_YET not in ran.err
    assert cli.register() == this_year("SV", 2)  # the refusal used no reference number


def test_register_refuses_unreadable_files_without_a_traceback(cli):
    missing = cli.refused("request", "register", str(cli.folder / "nowhere.yaml"))
    assert "nowhere.yaml" in missing.err and "No such file" in missing.err
    assert "Traceback" not in missing.err
    broken = cli.folder / "broken.json"
    broken.write_text('{"country": ', encoding="utf-8")
    ran = cli.refused("request", "register", str(broken))
    assert ran.err.startswith("request refused:") and "broken.json" in ran.err


def test_register_with_the_same_key_registers_once(cli):
    path = str(cli.request_file())
    first = cli("request", "register", path, "--key", "intake-7", "--json")
    again = cli("request", "register", path, "--key", "intake-7", "--json")
    assert first.code == again.code == 0
    assert again.json()["reference"] == first.json()["reference"]
    assert again.json()["replayed"] is True
    assert cli.state()[0][1] == 1  # one case
    other = cli.refused(
        "request", "register", str(cli.request_file(counterpart="FR")), "--key", "intake-7"
    )
    assert "idempotency key 'intake-7' was already used for a different command" in other.err


def test_register_on_a_past_day_opens_the_hop_then(cli):
    then = datetime.now(UTC) - timedelta(days=40)
    reference = cli.register("--on", stamp(then))
    assert reference.split("-")[1] == str(then.year)
    events = cli.events(reference)
    assert events[0].occurred_at == then.replace(microsecond=0)
    assert events[0].recorded_at - events[0].occurred_at > timedelta(days=39)
    future = stamp(datetime.now(UTC) + timedelta(days=1))
    ran = cli.refused("request", "register", str(cli.request_file()), "--on", future)
    assert "is in the future" in ran.err


# -- decide ----------------------------------------------------------------------------------------


def test_decide_forwards_to_the_next_hop_and_says_the_flow_picks_it_up(cli):
    reference = cli.register()
    ran = cli("decide", reference, "--outcome", "forwarded", "--note", "all in order")
    assert ran.code == 0, ran.err
    assert ran.out.startswith(f"{reference}: hop 1 (draft at fgr) forwarded; hop 2 opened at csj")
    assert DECISION_RECORDED in ran.err
    decided = [e for e in cli.events(reference) if e.kind == "decided"]
    assert len(decided) == 1 and '"note":"enc:v1:' in decided[0].payload  # sealed at rest
    assert "all in order" not in decided[0].payload


def test_decide_json_output_parses(cli):
    reference = cli.register()
    ran = cli("decide", reference, "--outcome", "forwarded", "--hop", "1", "--json")
    assert ran.code == 0, ran.err
    assert {k: ran.json()[k] for k in ("reference", "hop", "status")} == {
        "reference": reference,
        "hop": 2,
        "status": "open",
    }


def test_decide_refusals_write_nothing(cli):
    reference = cli.register()
    not_allowed = cli.refused("decide", reference, "--outcome", "executed")
    assert "executed is not allowed on step 'draft'" in not_allowed.err
    no_ground = cli.refused("decide", reference, "--outcome", "refused")
    assert "a refusal needs --ground" in no_ground.err
    no_cause = cli.refused("decide", reference, "--outcome", "returned")
    assert "a return needs --cause" in no_cause.err
    stray = cli.refused("decide", reference, "--outcome", "forwarded", "--ground", "de_minimis")
    assert "--ground applies to refusals only" in stray.err
    unknown = cli.refused("decide", "SV-2026-999999", "--outcome", "forwarded")
    assert "no case 'SV-2026-999999'" in unknown.err
    for ran in (not_allowed, no_ground, no_cause, stray, unknown):
        assert ran.err.startswith("error: ") and DECISION_RECORDED not in ran.err


def test_decide_on_a_hop_no_longer_open_is_a_conflict(cli):
    reference = cli.register()
    assert cli("decide", reference, "--outcome", "forwarded", "--hop", "1").code == 0
    ran = cli.refused("decide", reference, "--outcome", "forwarded", "--hop", "1")
    assert "hop 1 is no longer open (the open hop is 2, court at csj)" in ran.err


def test_decide_usage_errors_exit_2_and_write_nothing(cli):
    reference = cli.register()
    bad_outcome = cli.refused("decide", reference, "--outcome", "approved", code=2)
    assert "invalid choice: 'approved'" in bad_outcome.err
    missing = cli.refused("decide", reference, code=2)
    assert "the following arguments are required: --outcome" in missing.err
    bad_on = cli.refused("decide", reference, "--outcome", "forwarded", "--on", "someday", code=2)
    assert "'someday' is not a date (2026-10-15) or a date-time" in bad_on.err
    bad_hop = cli.refused("decide", reference, "--outcome", "forwarded", "--hop", "two", code=2)
    assert "invalid int value: 'two'" in bad_hop.err


def test_decide_with_the_same_key_decides_once(cli):
    reference = cli.register()
    first = cli("decide", reference, "--outcome", "forwarded", "--key", "d-1", "--json")
    events = len(cli.events(reference))
    again = cli("decide", reference, "--outcome", "forwarded", "--key", "d-1", "--json")
    assert first.code == again.code == 0
    assert again.json()["replayed"] is True and again.json()["seq"] == first.json()["seq"]
    assert again.json()["hop"] == 2  # not moved on to hop 3
    assert len(cli.events(reference)) == events
    ran = cli.refused(
        "decide", reference, "--outcome", "refused", "--ground", "de_minimis", "--key", "d-1"
    )
    assert "was already used for a different command" in ran.err


def test_decide_on_a_past_day_keeps_both_when_it_happened_and_when_recorded(cli):
    now = datetime.now(UTC)
    reference = cli.register("--on", stamp(now - timedelta(days=10)))
    happened = (now - timedelta(days=3)).replace(microsecond=0)
    ran = cli("decide", reference, "--outcome", "forwarded", "--on", stamp(happened))
    assert ran.code == 0, ran.err
    decided = next(e for e in cli.events(reference) if e.kind == "decided")
    assert decided.occurred_at == happened
    assert decided.recorded_at >= now
    hops = cli("status", reference, "--json").json()["hops"]
    assert hops[0]["closed_at"] == happened.isoformat()
    assert hops[1]["opened_at"] == happened.isoformat()


def test_decide_on_refuses_the_future_and_before_the_hop_opened(cli):
    now = datetime.now(UTC)
    reference = cli.register("--on", stamp(now - timedelta(days=2)))
    future = cli.refused(
        "decide", reference, "--outcome", "forwarded", "--on", stamp(now + timedelta(hours=2))
    )
    assert "is in the future" in future.err
    early = cli.refused(
        "decide", reference, "--outcome", "forwarded", "--on", stamp(now - timedelta(days=5))
    )
    assert "is before the hop opened" in early.err


# -- clock, resubmit, reassign, withdraw -----------------------------------------------------------


def test_clock_stop_then_resume_and_their_refusals(cli):
    reference = cli.register()
    not_stopped = cli.refused("clock", "resume", reference, "--reason", "answer received")
    assert "the clock of hop 1 is not stopped" in not_stopped.err
    stop = cli("clock", "stop", reference, "--reason", "awaiting_clarification")
    assert (stop.code, stop.out.strip()) == (
        0,
        f"{reference}: clock of hop 1 stopped (awaiting_clarification)",
    )
    assert cli("inbox", "SV", "fgr", "--json").json()[0]["clock_stopped"] is True
    twice = cli.refused("clock", "stop", reference, "--reason", "again")
    assert "the clock of hop 1 is already stopped since" in twice.err
    cli.refused("clock", "stop", reference, code=2)  # --reason is required
    cli.refused("clock", "pause", reference, "--reason", "x", code=2)
    resume = cli("clock", "resume", reference, "--reason", "answer received", "--json")
    assert resume.code == 0 and resume.json()["hop"] == 1
    kinds = [e.kind for e in cli.events(reference)]
    assert kinds[-2:] == ["clock_stopped", "clock_resumed"]
    assert cli("inbox", "SV", "fgr", "--json").json()[0]["clock_stopped"] is False


def test_resubmit_reopens_the_returned_step_and_is_refused_while_a_hop_is_open(cli):
    reference = cli.register()
    early = cli.refused("resubmit", reference)
    assert f"{reference} is open, not waiting on the requester" in early.err
    assert cli("decide", reference, "--outcome", "forwarded").code == 0
    returned = cli("decide", reference, "--outcome", "returned", "--cause", "missing_translation")
    assert returned.code == 0 and "back with the requester until it resubmits" in returned.out
    waiting = cli.refused("decide", reference, "--outcome", "forwarded")
    assert "is with the requester: no hop is open" in waiting.err
    ran = cli("resubmit", reference, "--note", "translation attached")
    assert ran.code == 0, ran.err
    assert ran.out.startswith(f"{reference}: resubmitted; hop 3 opened at csj")
    assert DECISION_RECORDED in ran.err


def test_reassign_moves_the_hop_and_refuses_unknown_or_same_authority(cli):
    reference = cli.register()
    unknown = cli.refused("reassign", reference, "--to", "mjps")
    assert "unknown authority 'mjps' (known: fgr, csj, mjsp, rree, abroad)" in unknown.err
    same = cli.refused("reassign", reference, "--to", "fgr")
    assert "hop 1 is already held by fgr" in same.err
    cli.refused("reassign", reference, code=2)  # --to is required
    ran = cli("reassign", reference, "--to", "mjsp", "--note", "sent to the ministry by mistake")
    assert ran.code == 0, ran.err
    assert ran.out.strip() == f"{reference}: hop 1 was at the wrong authority; hop 2 at mjsp"
    inbox = cli("inbox", "SV", "mjsp", "--json").json()
    assert [(i["reference"], i["hop"]) for i in inbox] == [(reference, 2)]


def test_withdraw_closes_the_case_and_later_commands_are_refused(cli):
    reference = cli.register()
    ran = cli("withdraw", reference, "--note", "case dropped", "--json")
    assert ran.code == 0 and ran.json()["status"] == "closed"
    again = cli.refused("withdraw", reference)
    assert f"{reference} is closed (withdrawn): nothing more can be decided" in again.err
    cli.refused("decide", reference, "--outcome", "forwarded")
    assert cli("status", reference, "--json").json()["outcome"] == "withdrawn"


# -- record and migrate ----------------------------------------------------------------------------


def test_record_moves_the_prescription_date_and_refuses_impossible_days(cli):
    reference = cli.register(country="US")
    # A request pending abroad 61 days, suspended by court order (18 U.S.C. § 3292). The window
    # is closed before the order is recorded, so the date does not depend on today.
    sent = cli("record", reference, "--event", "request_sent_abroad", "--on", "2026-06-01")
    assert sent.code == 0, sent.err
    assert "request_sent_abroad on 2026-06-01 recorded; prescription date unchanged" in sent.out
    answered = cli("record", reference, "--event", "foreign_final_action", "--on", "2026-08-01")
    assert answered.code == 0 and "prescription date unchanged" in answered.out
    ordered = cli(
        "record",
        reference,
        *("--event", "suspension_ordered", "--on", "2026-06-20", "--applied-on", "2026-06-10"),
    )
    assert ordered.code == 0, ordered.err
    assert "prescription date moved from 2029-05-10 to 2029-07-10" in ordered.out
    history = cli("status", reference, "--json").json()
    assert history["prescription_date"] == "2029-07-10"
    assert history["prescription_history"][-1]["event"] == "suspension_ordered"
    future = cli.refused("record", reference, "--event", "suspension_ordered", "--on", "2099-06-20")
    assert "--on 2099-06-20 is in the future" in future.err
    early = cli.refused("record", reference, "--event", "suspension_ordered", "--on", "2020-06-20")
    assert "is before the offence date 2024-05-10" in early.err
    cli.refused("record", reference, "--event", "rumour", "--on", "2026-06-20", code=2)
    cli.refused("record", reference, "--event", "suspension_ordered", "--on", "June", code=2)
    cli.refused("record", reference, "--event", "suspension_ordered", code=2)


def edited_config(folder: Path, old: str, new: str) -> Path:
    """A copy of the shipped configuration with one edit to sv.yaml."""
    shutil.copytree(REPO / "config", folder)
    sv = folder / "countries" / "sv.yaml"
    content = sv.read_text(encoding="utf-8")
    assert old in content
    sv.write_text(content.replace(old, new, 1), encoding="utf-8")
    return folder


def test_migrate_moves_a_case_to_the_routing_in_force_once(cli, monkeypatch):
    reference = cli.register()
    pinned = cli("status", reference, "--json").json()["routing_version"]
    same = cli.refused("migrate", reference)
    assert f"{reference} already runs on the current routing ({pinned})" in same.err
    slower = edited_config(
        cli.folder / "config-v2",
        "{id: draft, holder: fgr, sla: 10bd}",
        "{id: draft, holder: fgr, sla: 15bd}",
    )
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(slower))
    ran = cli("migrate", reference)
    assert ran.code == 0, ran.err
    current = cli("status", reference, "--json").json()["routing_version"]
    assert current != pinned
    assert ran.out.strip() == f"{reference}: moved from routing {pinned} to {current}"
    assert cli.events(reference)[-1].kind == "migrated"
    again = cli.refused("migrate", reference)
    assert "already runs on the current routing" in again.err


def test_migrate_refuses_a_routing_that_lost_the_open_step(cli, monkeypatch):
    reference = cli.register()
    assert cli("decide", reference, "--outcome", "forwarded").code == 0  # now at the court
    renamed = edited_config(cli.folder / "config-v2", "{id: court,", "{id: court-review,")
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(renamed))
    ran = cli.refused("migrate", reference)
    assert "step 'court' (the open hop) no longer exists in route 'mla-outgoing'" in ran.err
    cli.refused("migrate", reference, "--on", "2026-01-01", code=2)  # migrate is never late


# -- queries ---------------------------------------------------------------------------------------


def test_status_shows_each_hop_and_refuses_unknown_cases(cli):
    reference = cli.register()
    cli("decide", reference, "--outcome", "forwarded")
    ran = cli("status", reference)
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0].startswith(f"{reference}  SV  route mla-outgoing  (open)")
    assert "prescription 2039-05-10" in lines[1]
    hop_rows = [line.split() for line in lines if line.strip().startswith(("1 ", "2 "))]
    assert [row[:3] for row in hop_rows] == [["1", "draft", "fgr"], ["2", "court", "csj"]]
    assert hop_rows[0][-1] == "forwarded" and hop_rows[1][5] == "open"
    view = cli("status", reference, "--json").json()
    assert [h["holder"] for h in view["hops"]] == ["fgr", "csj"]
    missing = cli.refused("status", "SV-2026-999999")
    assert missing.err.strip() == "error: no case 'SV-2026-999999': check the reference"


def test_inbox_lists_overdue_hops_first_and_refuses_unknown_authorities(cli):
    fresh = cli.register()
    late = cli.register("--on", stamp(datetime.now(UTC) - timedelta(days=40)))
    ran = cli("inbox", "SV", "fgr")
    assert ran.code == 0, ran.err
    rows = ran.out.splitlines()[1:]
    assert [r.split()[0] for r in rows] == [late, fresh]
    assert rows[0].rstrip().endswith("OVERDUE") and "OVERDUE" not in rows[1]
    items = cli("inbox", "SV", "fgr", "--json").json()
    assert [(i["reference"], i["overdue"]) for i in items] == [(late, True), (fresh, False)]
    assert items[0]["days_late"] > 0
    assert cli("inbox", "SV", "csj").out.strip() == "nothing open."
    unknown = cli.refused("inbox", "SV", "nobody")
    assert "SV has no authority 'nobody' (known: fgr, csj, mjsp, rree, abroad)" in unknown.err
    assert "no routing for country 'ZZ'" in cli.refused("inbox", "ZZ", "fgr").err


def test_inbox_shows_due_dates_in_the_holders_own_timezone(cli):
    reference = cli.register()
    item = cli("inbox", "SV", "fgr", "--json").json()[0]
    # The deadline is the end of a local business day in El Salvador (UTC-6).
    local_due = datetime.fromisoformat(item["due_at"]) - timedelta(hours=6)
    assert local_due.strftime("%H:%M:%S") == "23:59:59"
    row = cli("inbox", "SV", "fgr").out.splitlines()[1].split()
    assert row[0] == reference and row[4] == local_due.date().isoformat()


def test_overdue_lists_only_late_hops_and_refuses_unknown_countries(cli):
    cli.register()
    assert cli("overdue", "SV").out.strip() == "nothing open."
    late = cli.register("--on", stamp(datetime.now(UTC) - timedelta(days=40)))
    ran = cli("overdue", "SV", "--json")
    assert ran.code == 0, ran.err
    assert [i["reference"] for i in ran.json()] == [late]
    assert "no routing for country 'ZZ'" in cli.refused("overdue", "ZZ").err


# -- audit -----------------------------------------------------------------------------------------


def test_audit_verify_passes_an_intact_ledger(cli):
    reference = cli.register()
    cli("decide", reference, "--outcome", "forwarded")
    ran = cli("audit", "verify")
    assert (ran.code, ran.out.strip()) == (0, "ledger intact: every event hash checks out")
    assert cli("audit", "verify", "--json").json() == []


def test_audit_verify_names_the_first_broken_link_after_tampering(cli):
    intact = cli.register()
    reference = cli.register()
    for _ in range(2):
        assert cli("decide", reference, "--outcome", "forwarded").code == 0
    with cli.ledger.transaction() as session:
        case_id = session.scalar(select(Request.id).where(Request.reference == reference))
        session.execute(
            text(
                "UPDATE events SET payload = replace(payload, 'forwarded', 'refused') "
                "WHERE request_id = :case AND kind = 'decided'"
            ),
            {"case": case_id},
        )
    ran = cli("audit", "verify")
    assert ran.code == 1
    assert ran.out.strip() == f"BROKEN {reference} event 3: content altered (decided)"
    assert cli("audit", "verify", "--reference", intact).code == 0
    broken = cli("audit", "verify", "--json")
    assert broken.code == 1
    assert broken.json() == [
        {"reference": reference, "seq": 3, "reason": "content altered (decided)"}
    ]


def test_audit_verify_notices_a_deleted_event(cli):
    reference = cli.register()
    cli("decide", reference, "--outcome", "forwarded")
    with cli.ledger.transaction() as session:
        session.execute(text("DELETE FROM events WHERE seq = 2"))
    ran = cli("audit", "verify")
    assert ran.code == 1
    assert ran.out.strip() == f"BROKEN {reference} event 2: event missing (deleted?)"


# -- configuration commands (no ledger) ------------------------------------------------------------


def test_validate_accepts_the_shipped_configuration(offline):
    ran = offline("validate")
    assert ran.code == 0, ran.err
    countries = sorted(p.stem.upper() for p in (REPO / "config" / "countries").glob("*.yaml"))
    assert ran.out.splitlines()[-1] == f"{len(countries)} country file(s) valid."
    listed = [line.split()[2] for line in ran.out.splitlines() if line.startswith("ok  ")]
    assert listed == countries
    one = offline("validate", str(REPO / "config" / "countries" / "sv.yaml"))
    assert one.code == 0 and one.out.startswith("ok  ")


def test_validate_lists_every_problem_as_file_line_column(offline):
    folder = offline.folder / "countries"
    folder.mkdir()
    broken = folder / "sv.yaml"
    lines = (REPO / "config" / "countries" / "sv.yaml").read_text(encoding="utf-8").splitlines()
    weekend = next(i for i, line in enumerate(lines) if "weekend: [sat, sun]" in line)
    sla = next(i for i, line in enumerate(lines) if "{id: draft, holder: fgr, sla: 10bd}" in line)
    lines[weekend] = lines[weekend].replace("[sat, sun]", "[sat, sunday]")
    lines[sla] = lines[sla].replace("sla: 10bd", "sla: 10 weeks")
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ran = offline("validate", str(offline.folder / "countries"))  # a folder: every file in it
    assert ran.code == 1
    assert ran.err.splitlines() == [
        f"{broken}:{weekend + 1}:{lines[weekend].index('sunday') + 1}: calendar.weekend[1]: "
        "'sunday' is not allowed: input should be 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' "
        "or 'sun'",
        f"{broken}:{sla + 1}:{lines[sla].index('sla: 10 weeks') + 1}: routes[0].steps[0].sla: "
        "'10 weeks' is not a duration: write a whole number followed by bd (business days), "
        "d (calendar days) or h (hours), e.g. 10bd, 30d, 48h",
        "2 problem(s) found.",
    ]
    assert ran.out == ""
    missing = offline("validate", str(folder / "xx.yaml"))
    assert (missing.code, missing.err.splitlines()[0]) == (
        1,
        f"{folder / 'xx.yaml'}:1:1: no such file",
    )


def test_routes_draws_the_chain_with_slas(offline):
    ran = offline("routes", "SV")
    assert ran.code == 0, ran.err
    assert ran.out.startswith("El Salvador (SV), routing version ")
    assert (
        "  Fiscalía General de la República (10 bd) -> Corte Suprema de Justicia (20 bd) "
        "[if coercive=True] -> Corte Suprema de Justicia (10 bd) -> Ministerio de Justicia y "
        "Seguridad Pública (5 bd) -> Ministerio de Relaciones Exteriores (5 bd) -> "
        "Requested state (90 d)"
    ) in ran.out.splitlines()
    chain = offline("routes", "sv", "--json").json()
    assert [s["holder"] for s in chain["routes"][0]["steps"]] == [
        "fgr",
        "csj",
        "csj",
        "mjsp",
        "rree",
        "abroad",
    ]
    unknown = offline("routes", "ZZ")
    assert unknown.code == 1 and "no routing for 'ZZ' (configured: " in unknown.err


def test_calendar_prints_the_due_date_and_every_skipped_day_with_its_reason(offline):
    ran = offline("calendar", "SV", "--from", "2026-12-23", "--add", "10bd")
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0] == "from      2026-12-23T00:00:00-06:00 (America/El_Salvador)"
    assert lines[2] == "due       2027-01-15T23:59:59-06:00  (Friday 15 January 2027, end of day)"
    assert "business days counted: 10" in lines
    skipped = lines[lines.index("skipped 13 day(s):") + 1 :]
    # The public employees' end-of-year vacation, 24 December to 2 January, recurring.
    vacation = "vacación de fin de año (Ley de Asuetos, Vacaciones y Licencias de los Empleados"
    assert skipped[0] == f"  2026-12-24 Thu  {vacation} Públicos)"
    assert f"  2027-01-02 Sat  {vacation} Públicos)" in skipped
    assert "  2026-12-25 Fri  Christmas Day (public holiday)" in skipped
    assert "  2027-01-01 Fri  New Year's Day (public holiday)" in skipped
    assert "  2027-01-09 Sat  Saturday (weekend)" in skipped
    as_json = offline("calendar", "SV", "--from", "2026-12-23", "--add", "10bd", "--json").json()
    assert as_json["due"] == "2027-01-15T23:59:59-06:00" and len(as_json["skipped"]) == 13


def test_calendar_refuses_bad_durations_dates_and_authorities(offline):
    duration = offline("calendar", "SV", "--from", "2026-12-23", "--add", "10xx")
    assert duration.code == 1 and "'10xx' is not a duration" in duration.err
    start = offline("calendar", "SV", "--from", "someday", "--add", "10bd")
    assert start.code == 1 and "'someday' is not a date or date-time" in start.err
    assert "Traceback" not in start.err
    authority = offline(
        "calendar", "SV", "--from", "2026-12-23", "--add", "1bd", "--authority", "x"
    )
    assert authority.code == 1 and "no authority 'x'" in authority.err
    assert offline("calendar", "SV", "--add", "10bd").code == 2

"""A name planted in every free-text field is sealed wherever rogatory writes: the ledger (file,
WAL, tables), the outbox, reports, exports, logs; a reader of the case sees it; after `erase`
nothing recovers it and the chain still verifies."""

from __future__ import annotations

import json
import logging
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app.cli import main
from app.service import Service
from models import engine, identity, queries
from models.access import authorise_erase
from models.clock import FixedClock
from models.engine import Routings
from models.errors import CommandRejected, Forbidden
from models.identity import Caller, Grant, RoleName, local_caller
from models.ledger import Ledger
from models.sweep import sweep_rungs
from tasks.notify import load_apprise, send_pending
from tests.conftest import REPO
from tests.samples import intake

NAME = "Zebulon Quxworthy"
PASSPORT = "PX7719304"
PLANTED = f"{NAME}, passport {PASSPORT}"
OPENED = datetime(2026, 3, 2, 15, tzinfo=UTC)  # a Monday, 09:00 in San Salvador


class Desk:
    def __init__(self, ledger: Ledger, routings: Routings, folder: Path, capsys: Any) -> None:
        self.ledger, self.routings, self.folder = ledger, routings, folder
        self.clock, self.capsys = FixedClock(OPENED), capsys

    def run(self, command: str, **kw: Any) -> Any:
        with self.ledger.transaction() as session:
            return getattr(engine, command)(
                session=session, clock=self.clock, routings=self.routings, actor="tester", **kw
            )

    def sweep(self, now: datetime) -> None:
        with self.ledger.transaction() as session:
            sweep_rungs(session=session, routings=self.routings, now=now)
        send_pending(
            ledger=self.ledger, now=now, notifier=load_apprise(REPO / "config" / "apprise.conf")
        )

    def cli(self, *argv: str) -> tuple[int, str]:
        self.capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = self.capsys.readouterr()
        return code, out + err


@pytest.fixture
def desk(database_url, tmp_path, tmp_path_factory, monkeypatch, capsys, routings):
    var = tmp_path / "var"
    monkeypatch.setenv("ROGATORY_DATABASE_URL", database_url)
    monkeypatch.setenv("ROGATORY_VAR", str(var))
    monkeypatch.setenv("ROGATORY_DOCUMENTS", str(var / "documents"))
    monkeypatch.setenv("ROGATORY_OUTBOX", str(var / "outbox"))
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(REPO / "config"))
    # Outside the ledger's folder, as they must be.
    keys, witness = tmp_path_factory.mktemp("keys"), tmp_path_factory.mktemp("witness")
    monkeypatch.setenv("ROGATORY_CHECKPOINT_KEY", str(keys / "checkpoint.key"))
    monkeypatch.setenv("ROGATORY_WITNESS", str(witness / "checkpoints.jsonl"))
    for name in ("ROGATORY_CLOCK", "PREFECT_API_URL", "ROGATORY_CHECKPOINT_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    ledger = Ledger(database_url, migrate=True)
    yield Desk(ledger, routings, tmp_path, capsys)
    ledger.dispose()


def _planted_everywhere(desk: Desk) -> tuple[str, str]:
    """A case with the name in every free-text field its commands take, closed; and an EAW
    whose deadline reasons name it."""
    data = intake(
        subject=f"bribery by {PLANTED}",
        facts_summary=f"{PLANTED} paid the official",
        assistance_sought=f"bank records of {PLANTED}",
        purpose=f"trace {NAME}'s payments",
        procedure=f"hear {NAME} as a witness",
        persons=[PLANTED],
        urgent=True,
        urgency_reason=f"{NAME} is leaving the country",
        requesting_authority=f"Fiscalía, prosecutor for {NAME}",
    )
    ref = str(desk.run("register", data=data).reference)
    escalated = OPENED + timedelta(days=30)
    desk.sweep(escalated)
    desk.clock.set(escalated)
    desk.run("acknowledge", reference=ref, note=f"called about {PLANTED}")
    desk.run("snooze", reference=ref, until=date(2026, 5, 4), reason=f"waiting for {NAME}")
    desk.sweep(datetime(2026, 5, 4, 6, tzinfo=UTC))
    desk.clock.set(datetime(2026, 5, 5, 15, tzinfo=UTC))
    with desk.ledger.transaction() as session:
        identity.add_account(
            session, name="ana", grants=[Grant(RoleName.CLERK, "SV", "fgr")], now=OPENED, actor="t"
        )
    desk.run("assign", reference=ref, officer="ana", note=f"about {NAME}")
    desk.run("stop_clock", reference=ref, reason=f"asked {NAME}'s lawyer")
    desk.clock.advance(timedelta(days=6))
    desk.run("resume_clock", reference=ref, reason=f"{NAME} answered")
    Service(desk.ledger, clock=desk.clock).attach(
        ref,
        b"%PDF-1.4 a scanned statement",
        filename=f"{NAME} {PASSPORT}.pdf",
        media_type="application/pdf",
        kind="request",
        caller=local_caller("clerk"),
        note=f"statement of {PLANTED}",
    )
    desk.run("decide", reference=ref, outcome="forwarded", note=f"{PLANTED} identified")
    desk.clock.advance(timedelta(days=1))
    desk.run("reassign", reference=ref, to="mjsp", note=f"{NAME} lives abroad")
    desk.clock.advance(timedelta(days=1))
    desk.run("decide", reference=ref, outcome="returned", cause="missing_translation", note=PLANTED)
    desk.clock.advance(timedelta(days=2))
    desk.run("resubmit", reference=ref, note=f"translated for {NAME}")
    desk.run(
        "record",
        reference=ref,
        event="request_sent_abroad",
        on=date(2026, 5, 10),
        note=f"sent about {PLANTED}",
    )
    desk.clock.advance(timedelta(days=2))
    desk.run("withdraw", reference=ref, note=f"{NAME} died")

    desk.clock.set(datetime(2026, 3, 2, 8, tzinfo=UTC))
    eaw = intake(
        country="IT",
        direction="incoming",
        legal_basis="eu_instrument",
        counterpart="FR",
        kind="extradition",
        persons=[PLANTED],
    )
    other = str(desk.run("register", data=eaw).reference)
    desk.clock.set(datetime(2026, 3, 2, 8, 30, tzinfo=UTC))
    desk.run("deadline_event", reference=other, event="arrest", on=date(2026, 3, 1))
    for day in (3, 4):
        desk.clock.set(datetime(2026, 3, day, 9, tzinfo=UTC))
        desk.run("decide", reference=other, outcome="forwarded")
    desk.clock.set(datetime(2026, 3, 20, 9, tzinfo=UTC))
    desk.run(
        "deadline_event",
        reference=other,
        event="extended",
        deadline="decision-no-consent",
        reasons=f"{NAME} was in hospital",
    )
    desk.sweep(datetime(2026, 5, 20, tzinfo=UTC))
    return ref, other


def _files(desk: Desk, database_url: str) -> list[Path]:
    found = [p for p in desk.folder.rglob("*") if p.is_file()]
    assert any(p.name == "outbox.jsonl" for p in found)
    if database_url.startswith("sqlite"):
        assert any(p.name == "ledger.db" for p in found)
    return found


def _plain_in(paths: list[Path]) -> list[str]:
    needles = [NAME.encode(), PASSPORT.encode(), NAME.encode("utf-16-le")]
    return [str(p) for p in paths if any(n in p.read_bytes() for n in needles)]


def _database_text(ledger: Ledger) -> str:
    """Every row of every table, as text: what an insider with database access reads."""
    with ledger.engine.connect() as connection:
        tables = ledger.engine.dialect.get_table_names(connection)
        return "\n".join(
            repr(list(connection.execute(text(f'SELECT * FROM "{t}"')))) for t in tables
        )


def test_a_planted_name_is_nowhere_in_plaintext_and_gone_after_erasure(desk, database_url, caplog):
    caplog.set_level(logging.DEBUG)
    ref, other = _planted_everywhere(desk)
    reports, export = desk.folder / "reports", desk.folder / "exports" / "log.csv"
    code, said = desk.cli("report", "--format", "json", "--out", str(reports))
    assert code == 0, said
    assert desk.cli("report", "--format", "html", "--out", str(reports))[0] == 0
    assert desk.cli("export-log", "--format", "csv", "--out", str(export))[0] == 0
    assert (
        desk.cli("export-log", "--format", "xes", "--out", str(export.with_suffix(".xes")))[0] == 0
    )
    code, verified = desk.cli("audit", "verify")
    assert code == 0, verified

    assert NAME not in _database_text(desk.ledger)
    assert _plain_in(_files(desk, database_url)) == []
    assert NAME not in caplog.text and NAME not in said + verified

    # A reader of the case sees it: the timeline, the case's events, its documents.
    service = Service(desk.ledger, clock=desk.clock)
    timeline = service.timeline(ref, local_caller("clerk"))
    assert any(NAME in (s.reason or "") for h in timeline.hops for s in h.stops)
    with desk.ledger.session() as session:
        events = queries.case_events(session, ref)
        shown = json.dumps([e.payload for e in events])
    assert PLANTED in shown and f"{NAME} died" in shown
    registered = next(e.payload for e in events if e.kind == "registered")
    assert registered["intake"]["persons"] == [PLANTED]
    assert registered["intake"]["country"] == "SV"  # routing fields stay as they were
    assert service.documents(ref, local_caller("clerk"))[0].filename == f"{NAME} {PASSPORT}.pdf"
    code, status = desk.cli("status", ref, "--json")
    assert code == 0 and NAME in status

    # Erasure: refused before the retention period is over, with the day it becomes allowed.
    with pytest.raises(CommandRejected, match="can be erased from 2036-05-"):
        service.erase(ref, reason="retention over", caller=local_caller("coord"))
    desk.clock.set(datetime(2036, 6, 1, tzinfo=UTC))
    with pytest.raises(CommandRejected, match="only a closed case"):
        service.erase(other, reason="retention over", caller=local_caller("coord"))
    code, said = desk.cli("erase", ref, "--reason", "retention period over")
    # The command line runs on the real clock: ten years have not passed yet.
    assert code != 0 and "can be erased from" in said
    result = service.erase(ref, reason="retention period over", caller=local_caller("coord"))
    assert "erased" in result.message
    with pytest.raises(CommandRejected, match="already erased"):
        service.erase(ref, reason="again", caller=local_caller("coord"))

    with desk.ledger.session() as session:
        after = json.dumps([e.payload for e in queries.case_events(session, ref)])
        kinds = [e.kind for e in queries.case_events(session, ref)]
    assert NAME not in after and "[erased]" in after and kinds[-1] == "erased"
    assert NAME in json.dumps(
        [e.payload for e in queries.case_events(desk.ledger.session(), other)]
    )  # the other case keeps its key
    if database_url.startswith("sqlite"):
        with desk.ledger.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    assert _plain_in(_files(desk, database_url)) == []
    code, verified = desk.cli("audit", "verify")
    assert code == 0, verified


def test_erasure_is_for_the_country_coordinator_or_an_admin():
    coordinator = Caller("carla", (Grant(RoleName.COORDINATOR, "SV"),))
    admin = Caller("root", (Grant(RoleName.ADMIN),))
    authorise_erase(coordinator, "SV")
    authorise_erase(admin, "SV")
    authorise_erase(local_caller("ops"), "SV")
    for caller in (
        Caller("other", (Grant(RoleName.COORDINATOR, "IT"),)),
        Caller("head", (Grant(RoleName.HEAD, "SV", "fgr"),)),
        Caller("minister", (Grant(RoleName.MINISTRY, "SV"),)),
        Caller("auditor", (Grant(RoleName.AUDITOR, None),)),
    ):
        with pytest.raises(Forbidden, match="erase a case of SV"):
            authorise_erase(caller, "SV")


def test_var_and_its_files_are_private_to_their_owner(tmp_path, monkeypatch):
    from models.ledger import database_url
    from models.privacy import master_key

    var = tmp_path / "var"
    monkeypatch.setenv("ROGATORY_VAR", str(var))
    monkeypatch.delenv("ROGATORY_DATABASE_URL", raising=False)
    monkeypatch.delenv("ROGATORY_MASTER_KEY", raising=False)
    monkeypatch.delenv("ROGATORY_MASTER_KEY_SECRET", raising=False)
    ledger = Ledger(database_url(), migrate=True)
    ledger.dispose()
    assert len(master_key()) == 32
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    for name in ("ledger.db", "master.key"):
        assert stat.S_IMODE((var / name).stat().st_mode) == 0o600, name
    assert master_key() == master_key()  # read again, not made anew


def test_prefect_receives_references_never_free_text():
    """Unit level (no Prefect server): the case flow's parameters, the resume forms."""
    from flows.route_request import Resubmitted, route_request
    from tasks.cases import decision_form

    assert list(route_request.parameters.properties) == ["reference"]
    assert "note" not in decision_form(None).model_fields
    assert Resubmitted.model_fields == {}


def test_a_wrong_or_malformed_master_key_is_refused_by_name(ledger, routings, monkeypatch):
    from models.errors import KeyUnavailable

    desk = Desk(ledger, routings, Path("."), None)
    ref = str(desk.run("register", data=intake(persons=[PLANTED])).reference)
    monkeypatch.setenv("ROGATORY_MASTER_KEY", "not base64 of 32 bytes")
    with pytest.raises(KeyUnavailable, match=r"\$ROGATORY_MASTER_KEY is not a master key"):
        desk.run("decide", reference=ref, outcome="forwarded", note=PLANTED)
    monkeypatch.setenv("ROGATORY_MASTER_KEY", "b3RoZXItbWFzdGVyLWtleS1vZi0zMi1ieXRlcy0uLi4=")
    with ledger.session() as session, pytest.raises(KeyUnavailable, match=ref):
        queries.case_events(session, ref)


def test_an_intake_sealed_as_one_value_or_field_by_field_opens_the_same(ledger):
    """Intakes are sealed as one value under `personal` since December 2026; one sealed field
    by field before that still opens, and each form reads "[erased]" without its key."""
    from models.privacy import INTAKE_PERSONAL, PERSONAL_KEY, CaseKeys

    submitted = intake(persons=[PLANTED], facts_summary=f"{NAME} paid the official")
    at = datetime(2026, 3, 2, tzinfo=UTC)
    with ledger.session() as session:
        keys = CaseKeys(session)
        keys.fresh("SV-2026-000001")
        now = keys.seal("SV-2026-000001", "registered", {"intake": submitted}, at=at)["intake"]
        before = {
            k: keys._seal_value("SV-2026-000001", f"intake.{k}", v, at=at)
            if k in ("persons", "facts_summary")
            else v
            for k, v in submitted.items()
        }
        assert NAME not in json.dumps(now) and NAME not in json.dumps(before)
        assert set(now) == set(submitted) - set(INTAKE_PERSONAL) | {PERSONAL_KEY}
        assert now["country"] == submitted["country"]  # routing fields stay in clear
        for stored in (now, before):
            assert keys.reveal_intake("SV-2026-000001", stored) == submitted
        keys.keys["SV-2026-000001"] = None  # as after erasure: the key is gone
        assert keys.reveal_intake("SV-2026-000001", now)[PERSONAL_KEY] == "[erased]"
        assert keys.reveal_intake("SV-2026-000001", before)["persons"] == "[erased]"


def test_the_master_key_from_a_prefect_secret_block(prefect_harness, tmp_path, monkeypatch):
    """Several machines share one key through a Secret block; a missing block or one that does
    not hold a key is refused by name, and no key file is made instead."""
    import base64
    import os

    from prefect.blocks.system import Secret

    from models.errors import KeyUnavailable
    from models.privacy import master_key

    key = os.urandom(32)
    Secret(value=base64.b64encode(key).decode()).save("rogatory-master-test", overwrite=True)
    Secret(value="not a key").save("rogatory-master-bad", overwrite=True)
    monkeypatch.setenv("ROGATORY_VAR", str(tmp_path / "var"))
    monkeypatch.delenv("ROGATORY_MASTER_KEY", raising=False)
    monkeypatch.setenv("ROGATORY_MASTER_KEY_SECRET", "rogatory-master-test")
    assert master_key() == key
    monkeypatch.setenv("ROGATORY_MASTER_KEY_SECRET", "rogatory-master-missing")
    with pytest.raises(KeyUnavailable, match="Secret block 'rogatory-master-missing'"):
        master_key()
    monkeypatch.setenv("ROGATORY_MASTER_KEY_SECRET", "rogatory-master-bad")
    with pytest.raises(KeyUnavailable, match="'rogatory-master-bad' is not a master key"):
        master_key()
    assert not (tmp_path / "var" / "master.key").exists()


def test_a_process_that_cannot_read_secret_blocks_says_so_and_makes_no_key(tmp_path, monkeypatch):
    """models/ reads Secret blocks only through the reader tasks/ gives it; without one the
    master key is refused by name, never replaced by a key file of the process's own."""
    from models import secrets
    from models.errors import KeyUnavailable
    from models.privacy import master_key

    monkeypatch.setattr(secrets, "_reader", None)
    monkeypatch.setenv("ROGATORY_VAR", str(tmp_path / "var"))
    monkeypatch.delenv("ROGATORY_MASTER_KEY", raising=False)
    monkeypatch.setenv("ROGATORY_MASTER_KEY_SECRET", "rogatory-master-unread")
    with pytest.raises(KeyUnavailable, match="no reader of Secret blocks"):
        master_key()
    assert not (tmp_path / "var" / "master.key").exists()

"""Projections rebuilt from events agree with what the engine and the sweep wrote, whatever the
commands: no finding on an honest ledger (the other side of naming every tampered field)."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from models import engine, identity
from models.checkpoints import audit, snapshot
from models.clock import FixedClock
from models.engine import Routings
from models.identity import Grant, RoleName
from models.integrity import ids_of, load_cases
from models.ledger import Ledger, Request
from models.loader import load_country
from models.replay import UNKNOWN, rebuild
from models.store import CaseStore
from models.sweep import sweep_rungs
from tests.conftest import REPO
from tests.samples import intake

OPENED = datetime(2026, 3, 2, 15, tzinfo=UTC)  # a Monday, 09:00 in San Salvador
ROME = ZoneInfo("Europe/Rome")


class Desk:
    def __init__(self, ledger: Ledger, routings: Routings) -> None:
        self.ledger, self.routings, self.clock = ledger, routings, FixedClock(OPENED)

    def run(self, command: str, **kw: Any) -> Any:
        with self.ledger.transaction() as session:
            return getattr(engine, command)(
                session=session, clock=self.clock, routings=self.routings, actor="tester", **kw
            )

    def sweep(self, now: datetime) -> None:
        with self.ledger.transaction() as session:
            sweep_rungs(session=session, routings=self.routings, now=now)

    def rebuilt(self, reference: str) -> tuple[Any, Any]:
        with snapshot(self.ledger) as session:
            (material,) = load_cases(session, ids_of(session, [reference]))
            pinned = Routings({})
            return rebuild(material.events, lambda v: pinned.pinned(session, v)), material


def _every_command_on_one_case(desk: Desk) -> str:
    with desk.ledger.transaction() as session:
        identity.add_account(
            session, name="ana", grants=[Grant(RoleName.CLERK, "SV", "fgr")], now=OPENED, actor="t"
        )
    ref = str(desk.run("register", data=intake()).reference)
    escalated = OPENED + timedelta(days=30)
    desk.sweep(escalated)
    desk.clock.set(escalated)
    desk.run("acknowledge", reference=ref, note="head of unit called")
    desk.run("snooze", reference=ref, until=date(2026, 5, 4), reason="on leave")
    desk.sweep(datetime(2026, 5, 4, 6, tzinfo=UTC))
    desk.clock.set(datetime(2026, 5, 5, 15, tzinfo=UTC))
    desk.run("assign", reference=ref, officer="ana")
    desk.run("stop_clock", reference=ref, reason="awaiting_clarification")
    desk.clock.advance(timedelta(days=6))
    desk.run("resume_clock", reference=ref, reason="answered")
    desk.run(
        "attach",
        reference=ref,
        sha256="a" * 64,
        kind="request",
        filename="request.pdf",
        media_type="application/pdf",
        size=10,
    )
    desk.run("decide", reference=ref, outcome="forwarded")
    desk.clock.advance(timedelta(days=1))
    desk.run("reassign", reference=ref, to="mjsp")
    desk.clock.advance(timedelta(days=1))
    desk.run("decide", reference=ref, outcome="returned", cause="missing_translation")
    desk.clock.advance(timedelta(days=2))
    desk.run("resubmit", reference=ref)
    desk.run("record", reference=ref, event="request_sent_abroad", on=date(2026, 5, 10))
    desk.clock.advance(timedelta(days=2))
    desk.run("withdraw", reference=ref, note="no longer needed")
    return ref


def _eaw_with_its_deadlines_moved(desk: Desk) -> str:
    def at(*parts: int) -> datetime:
        return datetime(*parts, tzinfo=ROME).astimezone(UTC)

    desk.clock.set(at(2026, 3, 2, 9, 0))
    data = intake(
        country="IT",
        direction="incoming",
        legal_basis="eu_instrument",
        counterpart="FR",
        kind="extradition",
        persons=["the person sought"],
    )
    ref = str(desk.run("register", data=data).reference)
    desk.clock.set(at(2026, 3, 2, 9, 30))
    desk.run("deadline_event", reference=ref, event="arrest", on=date(2026, 3, 1))
    for day in (3, 4):
        desk.clock.set(at(2026, 3, day, 10, 0))
        desk.run("decide", reference=ref, outcome="forwarded")
    desk.clock.set(at(2026, 3, 20, 10, 0))
    desk.run(
        "deadline_event",
        reference=ref,
        event="extended",
        deadline="decision-no-consent",
        reasons="the hearing was adjourned",
    )
    desk.sweep(datetime(2026, 5, 20, tzinfo=UTC))
    return ref


def test_an_honest_ledger_after_every_kind_of_command_and_sweep_has_no_finding(
    ledger: Ledger, routings: Routings
) -> None:
    desk = Desk(ledger, routings)
    sv = _every_command_on_one_case(desk)
    eaw = _eaw_with_its_deadlines_moved(desk)
    found = audit(ledger, routings=Routings({}), verifier=None, witness=None, now=desk.clock.now())
    assert [str(f) for f in found.findings] == []
    assert found.cases == 2 and found.not_compared == {}

    rebuilt, stored = desk.rebuilt(sv)
    first = rebuilt.hops[1]
    assert first["stopped_bd"] > 0 and first["stopped_bd"] is not UNKNOWN
    assert first["acknowledged_by"] == "tester" and first["assigned_to"] == "ana"
    assert first["snoozed_until"] == datetime(2026, 5, 4, 6, tzinfo=UTC)
    assert rebuilt.hops[3]["outcome"] == "returned" and rebuilt.hops[2]["target"] == "mjsp"
    assert rebuilt.request["status"] == "closed" and rebuilt.request["outcome"] == "withdrawn"
    assert set(rebuilt.documents) == {"a" * 64}
    assert stored.steps[0]["stopped_bd"] == first["stopped_bd"]

    rebuilt, _ = desk.rebuilt(eaw)
    assert rebuilt.hops[3]["due_at"] is UNKNOWN  # moved with its legal deadline: not compared


def test_a_case_with_events_this_version_does_not_replay_is_not_compared(
    ledger: Ledger, routings: Routings
) -> None:
    """An event kind added by a later version leaves its case's chain checked and its
    projections uncompared, said so, never reported as tampering."""
    desk = Desk(ledger, routings)
    ref = str(desk.run("register", data=intake()).reference)
    with ledger.transaction() as session:
        store = CaseStore.of(session)
        case = store.case(ref)
        now = desk.clock.now()
        store.append(
            case, kind="court_sealed", actor="tester", payload={}, occurred_at=now, recorded_at=now
        )
        store.flush()
    found = audit(ledger, routings=Routings({}), verifier=None, witness=None, now=now)
    assert found.findings == []
    assert "court_sealed" in found.not_compared[ref]
    with ledger.session() as session:
        assert session.scalar(select(Request.last_seq)) == 3


def test_a_case_moved_to_a_new_routing_version_still_has_no_finding(
    ledger: Ledger, routings: Routings, tmp_path: Path
) -> None:
    """The open hop's step index follows the version the case runs on; the prescription date,
    recomputed under the new rules, is not compared until an event records it again."""
    root = tmp_path / "config"
    shutil.copytree(REPO / "config", root)
    sv = root / "countries" / "sv.yaml"
    without = "".join(
        line for line in sv.read_text().splitlines(keepends=True) if "holder: mjsp" not in line
    )
    sv.write_text(without)
    desk = Desk(ledger, routings)
    ref = str(desk.run("register", data=intake(coercive=True)).reference)
    for _ in range(4):  # draft, review, court, Ministry: at the diplomatic channel (index 4)
        desk.clock.advance(timedelta(days=1))
        desk.run("decide", reference=ref, outcome="forwarded")
    moved = Desk(ledger, Routings({"SV": load_country(sv)}))
    moved.clock.set(desk.clock.now() + timedelta(days=1))
    moved.run("migrate", reference=ref)
    found = audit(ledger, routings=Routings({}), verifier=None, witness=None, now=moved.clock.now())
    assert [str(f) for f in found.findings] == []
    rebuilt, stored = moved.rebuilt(ref)
    assert rebuilt.request["prescription_date"] is UNKNOWN
    assert rebuilt.hops[5]["route_step"] == "diplomatic-channel"
    assert rebuilt.hops[5]["step_index"] == stored.steps[4]["step_index"] == 3  # mjsp gone
    assert rebuilt.hops[4]["step_index"] == stored.steps[3]["step_index"] == 3  # closed: kept
    moved.clock.advance(timedelta(days=1))
    moved.run("decide", reference=ref, outcome="forwarded")
    assert moved.rebuilt(ref)[0].hops[6]["route_step"] == "execution-abroad"
    assert (
        audit(
            ledger, routings=Routings({}), verifier=None, witness=None, now=moved.clock.now()
        ).findings
        == []
    )

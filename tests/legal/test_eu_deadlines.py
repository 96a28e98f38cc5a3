"""Every EU preset deadline, hand-worked, through the engine's public commands.

Each case registers a request on the Italian or Portuguese chain, records what happened
(decisions, an arrest, a consent, an extension...) and reads the due instant back from the
case's status and from `overdue`, never from the arithmetic alone. The expected dates are worked
out in the comments, with the article they come from and Regulation (EEC, Euratom) No 1182/71
art. 3 for the counting: the day (hour) of the event is not counted, a period of days ends at
the end of its last day, moved to the end of the next working day when that day is a Saturday,
Sunday or public holiday, and a period of hours starts with the next full hour.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.case_commands import _timeline_text
from models import engine
from models.clock import FixedClock
from models.engine import Routings
from models.errors import CommandRejected
from models.ledger import Delivery, Ledger
from models.queries import Timeline, overdue, timeline
from models.sweep import sweep_rungs
from tests.samples import intake

ROME = ZoneInfo("Europe/Rome")
LISBON = ZoneInfo("Europe/Lisbon")


def run(ledger: Ledger, clock: FixedClock, routings: Routings, command: str, **kw: Any) -> Any:
    with ledger.transaction() as session:
        return getattr(engine, command)(session=session, clock=clock, routings=routings, **kw)


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


def end_of(zone: ZoneInfo, day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=zone)


def status(ledger: Ledger, routings: Routings, reference: str, now: datetime) -> Timeline:
    with ledger.session() as session:
        country = reference[:2]
        return timeline(
            session=session, routing=routings.for_country(country), reference=reference, now=now
        )


def deadline(view: Timeline, name: str) -> dict[str, Any]:
    return next(d for d in view.deadlines if d["id"] == name)


def due(view: Timeline, name: str) -> datetime:
    return datetime.fromisoformat(deadline(view, name)["due_at"])


def register(
    ledger: Ledger, clock: FixedClock, routings: Routings, received: datetime, **fields: Any
) -> str:
    clock.set(received.astimezone(UTC))
    data = intake(country="IT", direction="incoming", legal_basis="eu_instrument", counterpart="FR")
    return str(run(ledger, clock, routings, "register", data={**data, **fields}).reference)


def decide(
    ledger: Ledger, clock: FixedClock, routings: Routings, ref: str, when: datetime, outcome: str
) -> None:
    clock.set(when.astimezone(UTC))
    run(ledger, clock, routings, "decide", reference=ref, outcome=outcome)


def record(
    ledger: Ledger, clock: FixedClock, routings: Routings, ref: str, when: datetime, **kw: Any
) -> None:
    clock.set(when.astimezone(UTC))
    run(ledger, clock, routings, "deadline_event", reference=ref, **kw)


def open_due(ledger: Ledger, routings: Routings, ref: str, now: datetime) -> datetime:
    view = status(ledger, routings, ref, now)
    return next(h.due_at for h in view.hops if h.closed_at is None)


# -- EIO, Directive 2014/41/EU --------------------------------------------------------------------


def test_eio_acknowledgement_one_week_from_receipt(ledger, clock, routings):
    # Art. 16(1), Annex B: received Monday 2 March 2026 -> 7 days -> Monday 9 March, a working
    # day: due at its end.
    ref = register(ledger, clock, routings, at(ROME, 2026, 3, 2, 10, 0))
    view = status(ledger, routings, ref, clock.now())
    assert due(view, "acknowledgement") == end_of(ROME, date(2026, 3, 9))
    assert open_due(ledger, routings, ref, clock.now()) == end_of(ROME, date(2026, 3, 9))


def test_eio_recognition_counts_from_receipt_not_from_its_hop(ledger, clock, routings):
    # Art. 12(3): 30 days from receipt, 2 March -> 1 April (Wednesday). The acknowledgement hop
    # took 7 days; the recognition hop opened on 9 March is still due on 1 April (counting from
    # the hop's opening gave 8 April, the 7 days late the issue reported).
    ref = register(ledger, clock, routings, at(ROME, 2026, 3, 2, 10, 0))
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 9, 16, 0), "forwarded")
    assert open_due(ledger, routings, ref, clock.now()) == end_of(ROME, date(2026, 4, 1))
    assert due(status(ledger, routings, ref, clock.now()), "recognition") == end_of(
        ROME, date(2026, 4, 1)
    )


def test_eio_recognition_ending_on_a_sunday_moves_to_monday(ledger, clock, routings):
    # Art. 12(3) with Reg. 1182/71 art. 3(4): received Friday 8 May 2026 -> 30 days -> Sunday
    # 7 June -> the next working day, Monday 8 June.
    ref = register(ledger, clock, routings, at(ROME, 2026, 5, 8, 9, 30))
    assert due(status(ledger, routings, ref, clock.now()), "recognition") == end_of(
        ROME, date(2026, 6, 8)
    )


def test_eio_recognition_ending_on_a_public_holiday_moves_on(ledger, clock, routings):
    # Received Sunday 8 November 2026 (a certified e-mail) -> 30 days -> Tuesday 8 December,
    # the Immacolata Concezione, a public holiday in Italy -> Wednesday 9 December.
    ref = register(ledger, clock, routings, at(ROME, 2026, 11, 8, 18, 0))
    view = status(ledger, routings, ref, clock.now())
    assert due(view, "recognition") == end_of(ROME, date(2026, 12, 9))
    assert "not a working day" in deadline(view, "recognition")["moves"][0]["why"]


def test_eio_execution_counts_from_the_recognition_decision(ledger, clock, routings):
    # Art. 12(4): 90 days from the recognition decision, taken 20 March 2026 -> 18 June
    # (Thursday). A coercive measure puts a judge's authorisation between them, 14 days: the
    # execution hop opens on 3 April and is still due on 18 June, not on 2 July.
    ref = register(ledger, clock, routings, at(ROME, 2026, 3, 2, 10, 0), coercive=True)
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 6, 10, 0), "forwarded")
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 20, 11, 0), "forwarded")
    decide(ledger, clock, routings, ref, at(ROME, 2026, 4, 3, 12, 0), "forwarded")
    view = status(ledger, routings, ref, clock.now())
    assert view.hops[-1].step == "execution"
    assert view.hops[-1].due_at == end_of(ROME, date(2026, 6, 18))
    assert deadline(view, "recognition")["state"] == "met"
    assert deadline(view, "recognition")["late"] is False


def test_eio_recognition_extended_by_thirty_days_once(ledger, clock, routings):
    # Art. 12(5): notified on 25 March, before expiry: 1 April + 30 days = Friday 1 May, Labour
    # Day, then a weekend -> Monday 4 May. A second extension is refused.
    ref = register(ledger, clock, routings, at(ROME, 2026, 3, 2, 10, 0))
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 4, 10, 0), "forwarded")
    record(
        ledger,
        clock,
        routings,
        ref,
        at(ROME, 2026, 3, 25, 10, 0),
        event="extended",
        deadline="recognition",
        reasons="the bank has not yet produced the records",
    )
    view = status(ledger, routings, ref, clock.now())
    assert due(view, "recognition") == end_of(ROME, date(2026, 5, 4))
    # The open recognition hop follows its legal deadline.
    assert open_due(ledger, routings, ref, clock.now()) == end_of(ROME, date(2026, 5, 4))
    with pytest.raises(CommandRejected, match="extended already"):
        record(
            ledger,
            clock,
            routings,
            ref,
            at(ROME, 2026, 3, 26, 10, 0),
            event="extended",
            deadline="recognition",
            reasons="again",
        )


def test_an_extension_after_expiry_or_without_reasons_is_refused_and_writes_nothing(
    ledger, clock, routings
):
    ref = register(ledger, clock, routings, at(ROME, 2026, 3, 2, 10, 0))
    seq = status(ledger, routings, ref, clock.now()).seq
    with pytest.raises(CommandRejected, match="give the reasons"):
        record(
            ledger,
            clock,
            routings,
            ref,
            at(ROME, 2026, 3, 20, 10, 0),
            event="extended",
            deadline="recognition",
        )
    with pytest.raises(CommandRejected, match="expired on 2026-04-01"):
        record(
            ledger,
            clock,
            routings,
            ref,
            at(ROME, 2026, 4, 2, 10, 0),
            event="extended",
            deadline="recognition",
            reasons="late notice",
        )
    view = status(ledger, routings, ref, clock.now())
    assert view.seq == seq
    assert due(view, "recognition") == end_of(ROME, date(2026, 4, 1))


def test_eio_shorter_deadline_asked_by_the_issuing_authority(ledger, clock, routings):
    # Art. 12(2): the issuing authority asks for a decision by 16 March (a hearing abroad).
    ref = register(ledger, clock, routings, at(ROME, 2026, 3, 2, 10, 0))
    record(
        ledger,
        clock,
        routings,
        ref,
        at(ROME, 2026, 3, 3, 10, 0),
        event="shortened",
        deadline="recognition",
        until=date(2026, 3, 16),
        reasons="trial hearing on 18 March",
    )
    assert due(status(ledger, routings, ref, clock.now()), "recognition") == end_of(
        ROME, date(2026, 3, 16)
    )


def test_eio_recognition_is_overdue_from_the_first_minute_after_its_last_day(
    ledger, clock, routings
):
    # Due at the end of 1 April (Rome): not overdue at 23:00 that day, overdue at 00:30 on 2 April
    # although the recognition hop, opened on 9 March, would have run to 8 April.
    ref = register(ledger, clock, routings, at(ROME, 2026, 3, 2, 10, 0))
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 9, 16, 0), "forwarded")
    it = routings.for_country("IT")
    with ledger.session() as session:
        before = overdue(session=session, routing=it, now=at(ROME, 2026, 4, 1, 23, 0))
        after = overdue(session=session, routing=it, now=at(ROME, 2026, 4, 2, 0, 30))
    assert [i.reference for i in before] == []
    assert [(i.reference, i.legal_overdue) for i in after] == [(ref, True)]


# -- EAW, Framework Decision 2002/584/JHA ---------------------------------------------------------


def eaw(ledger: Ledger, clock: FixedClock, routings: Routings, received: datetime) -> str:
    return register(
        ledger, clock, routings, received, kind="extradition", persons=["the person sought"]
    )


def arrested(ledger: Ledger, clock: FixedClock, routings: Routings) -> str:
    """An EAW received Monday 2 March 2026 09:00 for a person arrested on Sunday 1 March,
    the arrest recorded half an hour after receipt."""
    ref = eaw(ledger, clock, routings, at(ROME, 2026, 3, 2, 9, 0))
    record(
        ledger,
        clock,
        routings,
        ref,
        at(ROME, 2026, 3, 2, 9, 30),
        event="arrest",
        on=date(2026, 3, 1),
    )
    return ref


def test_eaw_without_consent_sixty_days_from_arrest(ledger, clock, routings):
    # Art. 17(3): arrested Sunday 1 March 2026 -> 60 days -> Thursday 30 April. The hearing and
    # the consent hearing took three days; the contested decision is still due on 30 April,
    # overdue from 1 May (the day after it expired, which the issue found shown as on time).
    ref = arrested(ledger, clock, routings)
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 3, 10, 0), "forwarded")
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 4, 10, 0), "forwarded")
    view = status(ledger, routings, ref, clock.now())
    assert view.hops[-1].step == "decision-no-consent"
    assert view.hops[-1].due_at == end_of(ROME, date(2026, 4, 30))
    assert deadline(view, "decision-consent")["state"] == "moot"
    it = routings.for_country("IT")
    with ledger.session() as session:
        on_the_day = overdue(session=session, routing=it, now=at(ROME, 2026, 4, 30, 20, 0))
        day_after = overdue(session=session, routing=it, now=at(ROME, 2026, 5, 1, 9, 0))
    assert on_the_day == []
    assert [i.reference for i in day_after] == [ref]


def test_eaw_with_consent_ten_days_from_consent(ledger, clock, routings):
    # Art. 17(2): consent given Thursday 5 March -> 10 days -> Sunday 15 March -> Monday 16.
    ref = arrested(ledger, clock, routings)
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 3, 10, 0), "forwarded")
    record(ledger, clock, routings, ref, at(ROME, 2026, 3, 5, 11, 0), event="consent")
    view = status(ledger, routings, ref, clock.now())
    assert due(view, "decision-consent") == end_of(ROME, date(2026, 3, 16))
    assert view.hops[-1].due_at == end_of(ROME, date(2026, 3, 16))  # the hop follows it


def test_eaw_no_consent_extended_by_thirty_days(ledger, clock, routings):
    # Art. 17(4): 30 April + 30 days = Saturday 30 May -> Monday 1 June.
    ref = arrested(ledger, clock, routings)
    record(
        ledger,
        clock,
        routings,
        ref,
        at(ROME, 2026, 4, 20, 9, 0),
        event="extended",
        deadline="decision-no-consent",
        reasons="appeal pending before the Corte di cassazione",
    )
    assert due(status(ledger, routings, ref, clock.now()), "decision-no-consent") == end_of(
        ROME, date(2026, 6, 1)
    )


def test_eaw_surrender_ten_days_from_the_final_decision_and_a_new_date(ledger, clock, routings):
    # Art. 23(2): final decision (no consent) Friday 10 April 14:00 -> 10 days -> Monday 20 April.
    # Art. 23(3): surrender prevented, new date agreed, Saturday 25 April -> 10 days from it ->
    # Tuesday 5 May.
    ref = arrested(ledger, clock, routings)
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 3, 10, 0), "forwarded")
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 4, 10, 0), "forwarded")
    decide(ledger, clock, routings, ref, at(ROME, 2026, 4, 10, 14, 0), "forwarded")
    view = status(ledger, routings, ref, clock.now())
    assert view.hops[-1].step == "surrender"
    assert view.hops[-1].due_at == end_of(ROME, date(2026, 4, 20))
    assert deadline(view, "decision-no-consent")["state"] == "met"
    record(
        ledger,
        clock,
        routings,
        ref,
        at(ROME, 2026, 4, 17, 9, 0),
        event="new_date_agreed",
        deadline="surrender",
        until=date(2026, 4, 25),
        reasons="flight cancelled: strike",
    )
    view = status(ledger, routings, ref, clock.now())
    assert due(view, "surrender") == end_of(ROME, date(2026, 5, 5))
    assert view.hops[-1].due_at == end_of(ROME, date(2026, 5, 5))


def test_eaw_surrender_after_a_decision_on_consent(ledger, clock, routings):
    # Consent on 5 March, final decision on it (executed) Tuesday 10 March 12:00 -> surrender
    # within 10 days -> Friday 20 March; the 60-day deadline is met by that decision too.
    ref = arrested(ledger, clock, routings)
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 3, 10, 0), "forwarded")
    record(ledger, clock, routings, ref, at(ROME, 2026, 3, 5, 11, 0), event="consent")
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 10, 12, 0), "executed")
    view = status(ledger, routings, ref, clock.now())
    assert view.hops[-1].step == "surrender"
    assert view.hops[-1].due_at == end_of(ROME, date(2026, 3, 20))
    assert [deadline(view, d)["state"] for d in ("decision-consent", "decision-no-consent")] == [
        "met",
        "met",
    ]


def test_an_arrest_no_deadline_waits_for_is_refused(ledger, clock, routings):
    ref = eaw(ledger, clock, routings, at(ROME, 2026, 3, 2, 9, 0))
    record(ledger, clock, routings, ref, at(ROME, 2026, 3, 2, 9, 30), event="arrest")
    with pytest.raises(CommandRejected, match="started already"):
        record(ledger, clock, routings, ref, at(ROME, 2026, 3, 2, 9, 40), event="arrest")


# -- Regulation (EU) 2018/1805 --------------------------------------------------------------------


def test_urgent_freezing_48_hours_to_recognise_then_48_to_execute(ledger, clock, routings):
    # Art. 9(3): certificate received Monday 2 March 10:20 CET; the hour of receipt is not
    # counted, so the 48 hours run from 11:00 -> Wednesday 4 March 11:00. Art. 9(4): recognised
    # Tuesday 3 March 15:45 -> from 16:00 -> Thursday 5 March 16:00.
    ref = register(
        ledger,
        clock,
        routings,
        at(ROME, 2026, 3, 2, 10, 20),
        kind="asset_freezing",
        urgent=True,
        urgency_reason="funds about to be moved",
        assets="account IT60X0542811101000000123456",
    )
    view = status(ledger, routings, ref, clock.now())
    assert due(view, "recognition") == at(ROME, 2026, 3, 4, 11, 0)
    assert view.hops[-1].due_at == at(ROME, 2026, 3, 4, 11, 0)
    decide(ledger, clock, routings, ref, at(ROME, 2026, 3, 3, 15, 45), "forwarded")
    view = status(ledger, routings, ref, clock.now())
    assert due(view, "execution") == at(ROME, 2026, 3, 5, 16, 0)
    assert view.hops[-1].due_at == at(ROME, 2026, 3, 5, 16, 0)


def test_confiscation_45_days_from_receipt(ledger, clock, routings):
    # Art. 20(1): received Monday 2 March 2026 -> 45 days -> Thursday 16 April.
    ref = register(
        ledger,
        clock,
        routings,
        at(ROME, 2026, 3, 2, 10, 0),
        kind="confiscation",
        assets="villa in Portofino",
        order_reference="Tribunal de Paris, 2025/123",
    )
    assert due(status(ledger, routings, ref, clock.now()), "recognition") == end_of(
        ROME, date(2026, 4, 16)
    )


def test_outgoing_eio_counts_from_its_receipt_abroad(ledger, clock, routings):
    # Portugal issues an EIO; it reaches the executing state when the hop abroad opens, on
    # Tuesday 10 March 2026 09:00 in Lisbon -> 30 days -> Thursday 9 April; the issue hop's own
    # 10 days of drafting do not count against the executing state.
    clock.set(at(LISBON, 2026, 2, 27, 9, 0).astimezone(UTC))
    data = intake(country="PT", direction="outgoing", legal_basis="eu_instrument", counterpart="ES")
    ref = str(run(ledger, clock, routings, "register", data=data).reference)
    clock.set(at(LISBON, 2026, 3, 10, 9, 0).astimezone(UTC))
    run(ledger, clock, routings, "decide", reference=ref, outcome="forwarded")
    view = status(ledger, routings, ref, clock.now())
    assert due(view, "recognition") == end_of(LISBON, date(2026, 4, 9))
    assert due(view, "acknowledgement") == end_of(LISBON, date(2026, 3, 17))
    assert deadline(view, "execution")["state"] == "waiting"


# -- escalation, status -------------------------------------------------------------------------


def test_a_legal_deadline_escalates_while_an_earlier_hop_holds_the_case(ledger, clock, routings):
    # The hearing hop is never decided: the 60 days from the arrest still run out on 30 April,
    # and the sweep tells the court's head and the coordinator once, citing art. 17(3).
    ref = arrested(ledger, clock, routings)
    now = at(ROME, 2026, 5, 1, 8, 0).astimezone(UTC)
    for _ in range(2):
        with ledger.transaction() as session:
            sweep_rungs(session=session, routings=routings, now=now)
    with ledger.session() as session:
        legal = session.scalars(
            select(Delivery).where(Delivery.kind.like("legal_%"), Delivery.status == "pending")
        ).all()
    assert [(d.kind, d.title) for d in legal] == [
        (
            "legal_escalation",
            f"Legal deadline passed: {ref} decision-no-consent expired on 2026-04-30, 1 day(s) ago",
        )
    ]
    assert "art. 17(3)" in legal[0].body
    assert sorted(legal[0].tags) == ["it-coordination", "it-corte-appello", "it-corte-appello-head"]


def test_status_shows_each_legal_deadline_with_its_article_and_moves(ledger, clock, routings):
    ref = register(ledger, clock, routings, at(ROME, 2026, 3, 2, 10, 0))
    text = _timeline_text(status(ledger, routings, ref, clock.now()))
    assert "legal deadlines" in text
    assert "recognition" in text and "art. 12(3)" in text
    assert "runs 30 calendar days from receipt of the request on 2026-03-02 10:00 CET" in text
    assert "waits for: decided:recognition" in text

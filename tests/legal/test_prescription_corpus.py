"""Prescription dates, hand-worked for the United States, Italy, Germany and France, through the
engine's public commands on SQLite and PostgreSQL.

Each case registers a request, forwards its first hop, records what happened (`record`), and
reads the date and its reasons back from the case's status, never from the arithmetic alone.
The dates are the first day the tool counts as barred: offence (or discovery) + period, plus the
days suspended (`models.prescription`; `status` states each law's own counting beside it). The
arithmetic and its source are in each case's comment. Germany and France have no shipped
routing: their cases run on the files in `prescription_countries/`, which carry the law's
periods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.case_commands import _timeline_text
from models import engine
from models.clock import FixedClock
from models.engine import Routings
from models.errors import CommandRejected
from models.ledger import Event, Ledger
from models.loader import load_all, load_country, load_presets
from models.queries import Timeline, timeline
from tests.samples import intake

REPO = Path(__file__).resolve().parents[2]
COUNTRIES = Path(__file__).resolve().parent / "prescription_countries"
TODAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
D = date.fromisoformat

SENT = "request_sent_abroad"
ORDERED = "suspension_ordered"
FINAL = "foreign_final_action"
ACT = "interrupting_act"


@dataclass(frozen=True)
class Rec:
    """One `record` command: the event, its day, and the fields its rule needs."""

    event: str
    on: str
    request: str | None = None
    applied: str | None = None
    by: str | None = None


@dataclass(frozen=True)
class Case:
    id: str
    country: str
    offence: str
    records: list[Rec]
    expected: str
    says: list[str] = field(default_factory=list)
    """Words the status must show (the history's reasons, the rules applied or not)."""
    discovery: str | None = None
    running: bool = False


def ordered(on: str, applied: str, request: str | None = None) -> Rec:
    return Rec(ORDERED, on, request, applied=applied)


CASES = [
    # --- United States: 18 U.S.C. § 3282(a), five years; § 3292 ------------------------------
    Case(
        # § 3282(a): 2020-03-01 + 5 y = 2025-03-01; nothing recorded
        "us-plain-five-years",
        "US",
        "2020-03-01",
        [],
        "2025-03-01",
        ["us-3292: a court order on application suspends", "Fed. R. Crim. P. 45(a)(1)(A)"],
    ),
    Case(
        # § 3292(b): request 2023-01-10 → final action 2023-09-01 = 234 days; (c)(2): every final
        # action before the expiry 2025-03-01, so at most 6 months → 2025-03-01 + 6 m = 2025-09-01
        "us-six-month-cap",
        "US",
        "2020-03-01",
        [Rec(SENT, "2023-01-10"), ordered("2023-02-01", "2023-01-25"), Rec(FINAL, "2023-09-01")],
        "2025-09-01",
        ["capped at 6 months", "before the ordinary expiry 2025-03-01"],
    ),
    Case(
        # § 3292(b): 2024-01-10 → 2024-03-01 = 51 days, under the cap → 2025-03-01 + 51 d
        # = 2025-04-21
        "us-short-suspension",
        "US",
        "2020-03-01",
        [Rec(SENT, "2024-01-10"), ordered("2024-01-20", "2024-01-15"), Rec(FINAL, "2024-03-01")],
        "2025-04-21",
        ["§ 3292 2024-01-10 → 2024-03-01: 51 days"],
    ),
    Case(
        # § 3292(c)(1): final action 2025-08-01 after the expiry 2025-03-01, so only the 3-year
        # cap: 2024-06-01 → 2025-08-01 = 426 days → 2025-03-01 + 426 d = 2026-05-01
        "us-final-action-after-expiry",
        "US",
        "2020-03-01",
        [Rec(SENT, "2024-06-01"), ordered("2024-07-01", "2024-06-20"), Rec(FINAL, "2025-08-01")],
        "2026-05-01",
        ["§ 3292 2024-06-01 → 2025-08-01: 426 days"],
    ),
    Case(
        # Kozeny, 541 F.3d 166: the application (2025-02-15) precedes the expiry 2025-03-01; the
        # order (2025-03-20) may follow it. § 3292(b) runs from the request: 2024-06-01 →
        # 2025-08-01 = 426 days → 2026-05-01
        "us-kozeny-timely-application-late-order",
        "US",
        "2020-03-01",
        [Rec(SENT, "2024-06-01"), ordered("2025-03-20", "2025-02-15"), Rec(FINAL, "2025-08-01")],
        "2026-05-01",
        ["on the application of 2025-02-15, from the day the request was made, 2024-06-01"],
    ),
    Case(
        # Kozeny: applied 2025-03-05, after the expiry 2025-03-01 → no suspension: 2025-03-01
        "us-kozeny-late-application",
        "US",
        "2020-03-01",
        [Rec(SENT, "2024-06-01"), ordered("2025-03-10", "2025-03-05")],
        "2025-03-01",
        ["applied for on 2025-03-05, after prescription on 2025-03-01: no effect"],
    ),
    Case(
        # Atiyeh, 402 F.3d 354: the foreign authority acted 2023-09-01; an order of 2024-01-15
        # (applied for 2023-12-01) suspends nothing → 2025-03-01
        "us-atiyeh-order-after-final-action",
        "US",
        "2020-03-01",
        [Rec(SENT, "2023-01-10"), Rec(FINAL, "2023-09-01"), ordered("2024-01-15", "2023-12-01")],
        "2025-03-01",
        ["before this order: no suspension (United States v. Atiyeh"],
    ),
    Case(
        # two requests, each named: 'ch' 2023-01-10 → 2023-03-01 = 50 days; 'uk' 2024-10-01 →
        # 2025-04-01 = 182 days; 'uk' answered after the expiry → no 6-month cap:
        # 2025-03-01 + 232 d = 2025-10-19
        "us-two-requests-named",
        "US",
        "2020-03-01",
        [
            Rec(SENT, "2023-01-10", "ch"),
            ordered("2023-01-20", "2023-01-15", "ch"),
            Rec(FINAL, "2023-03-01", "ch"),
            Rec(SENT, "2024-10-01", "uk"),
            ordered("2024-10-15", "2024-10-10", "uk"),
            Rec(FINAL, "2025-04-01", "uk"),
        ],
        "2025-10-19",
    ),
    Case(
        # both pending at once: 'ch' 2023-01-10 → 2023-06-01 (142 days) holds 'uk' 2023-02-01 →
        # 2023-04-01; overlapping windows count once; all answered before the expiry, 142 days
        # under 6 months → 2025-03-01 + 142 d = 2025-07-21 (answers paired by name; unnamed,
        # the first answer would close 'ch' on 2023-04-01, 61 days early)
        "us-overlapping-requests",
        "US",
        "2020-03-01",
        [
            Rec(SENT, "2023-01-10", "ch"),
            Rec(SENT, "2023-02-01", "uk"),
            ordered("2023-02-10", "2023-02-05", "ch"),
            ordered("2023-02-10", "2023-02-05", "uk"),
            Rec(FINAL, "2023-04-01", "uk"),
            Rec(FINAL, "2023-06-01", "ch"),
        ],
        "2025-07-21",
    ),
    # --- Italy: c.p. art. 157 (bribery, art. 319: 10 years), arts. 159(1) n. 3-ter, 160, 161 --
    Case(
        # offence 2016-05-01 predates L. 103/2017 (in force 2017-08-03; art. 1(15): later offences
        # only): the rogatory 2018-01-15 → 2018-04-15 suspends nothing → 2016-05-01 + 10 y
        "it-rogatory-before-l-103-2017",
        "IT",
        "2016-05-01",
        [Rec(SENT, "2018-01-15"), Rec(FINAL, "2018-04-15")],
        "2026-05-01",
        [
            "it-159-3ter not applied: the offence (2016-05-01) predates L. 103/2017 art. 1(11), "
            "(15) (in force 2017-08-03)",
            "letter rogatory: no suspension",
        ],
    ),
    Case(
        # art. 159(1) n. 3-ter: 2020-01-15 → documents 2020-04-15 = 91 days
        # 2018-05-10 + 10 y = 2028-05-10, + 91 d = 2028-08-09
        "it-rogatory-suspends",
        "IT",
        "2018-05-10",
        [Rec(SENT, "2020-01-15"), Rec(FINAL, "2020-04-15")],
        "2028-08-09",
        ["art. 159 n. 3-ter 2020-01-15 → 2020-04-15: 91 days"],
    ),
    Case(
        # "non oltre sei mesi": documents 2021-03-01, cut at 2020-01-15 + 6 months = 2020-07-15,
        # 182 days (calendar months, not a fixed count) → 2028-05-10 + 182 d = 2028-11-08
        "it-rogatory-six-month-cap",
        "IT",
        "2018-05-10",
        [Rec(SENT, "2020-01-15"), Rec(FINAL, "2021-03-01")],
        "2028-11-08",
        ["cut at 6 months"],
    ),
    Case(
        # the first offence day L. 103/2017 binds: 2017-08-03 + 10 y = 2027-08-03; rogatory
        # 2019-02-01 → 2019-03-01 = 28 days → 2027-08-31
        "it-offence-on-the-day-l-103-2017-came-in",
        "IT",
        "2017-08-03",
        [Rec(SENT, "2019-02-01"), Rec(FINAL, "2019-03-01")],
        "2027-08-31",
    ),
    Case(
        # the day before: 2017-08-02 + 10 y = 2027-08-02, the rogatory suspends nothing
        "it-offence-the-day-before",
        "IT",
        "2017-08-02",
        [Rec(SENT, "2019-02-01"), Rec(FINAL, "2019-03-01")],
        "2027-08-02",
        ["it-159-3ter not applied: the offence (2017-08-02) predates"],
    ),
    Case(
        # art. 160: act 2022-01-01 → 2032-01-01; act 2025-01-01 → 2035-01-01, over the art. 161
        # cap 2018-05-10 + 1.5 × 10 y = 2033-05-10 → 2033-05-10
        "it-interruptions-capped-by-art-161",
        "IT",
        "2018-05-10",
        [Rec(ACT, "2022-01-01"), Rec(ACT, "2025-01-01")],
        "2033-05-10",
        ["(c.p. art. 161)"],
    ),
    Case(
        # two rogatories at once, named: 'ch' 2020-01-15 → 2020-03-15; 'de' 2020-02-01 →
        # 2020-09-01, cut at 2020-08-01. Union 2020-01-15 → 2020-08-01 = 199 days
        # 2028-05-10 + 199 d = 2028-11-25
        "it-two-rogatories-named",
        "IT",
        "2018-05-10",
        [
            Rec(SENT, "2020-01-15", "ch"),
            Rec(SENT, "2020-02-01", "de"),
            Rec(FINAL, "2020-03-15", "ch"),
            Rec(FINAL, "2020-09-01", "de"),
        ],
        "2028-11-25",
    ),
    Case(
        # rogatory 2026-01-15 unanswered on 2026-03-02: 46 days so far, provisional
        # 2028-05-10 + 46 d = 2028-06-25
        "it-rogatory-pending",
        "IT",
        "2018-05-10",
        [Rec(SENT, "2026-01-15")],
        "2028-06-25",
        ["provisional"],
        running=True,
    ),
    # --- Germany: StGB § 78(3) Nr. 4 (five years), § 78c -------------------------------------
    Case(
        # § 78(3) Nr. 4: 2019-04-01 + 5 y = 2024-04-01
        "de-plain-five-years",
        "DE",
        "2019-04-01",
        [],
        "2024-04-01",
        ["de-78c: a judge's request abroad interrupts", "counting (de-78c): StGB § 78a"],
    ),
    Case(
        # § 78c(1) Nr. 12, a judge's request 2021-09-15: the period runs again → 2026-09-15
        "de-judge-request-interrupts",
        "DE",
        "2019-04-01",
        [Rec(SENT, "2021-09-15", by="judge")],
        "2026-09-15",
        ["interrupts (StGB § 78c(1) Nr. 12)"],
    ),
    Case(
        # "jedes richterliche Ersuchen": the prosecutor's request interrupts nothing → 2024-04-01
        "de-prosecutor-request-does-not-interrupt",
        "DE",
        "2019-04-01",
        [Rec(SENT, "2021-09-15", by="prosecutor")],
        "2024-04-01",
        ["made by the prosecutor: no interruption (StGB § 78c(1) Nr. 12 counts only"],
    ),
    Case(
        # the police's request interrupts nothing; the accused's first questioning ordered
        # 2022-02-01 does (§ 78c(1) Nr. 1) → 2027-02-01
        "de-police-request-then-questioning",
        "DE",
        "2019-04-01",
        [Rec(SENT, "2021-09-15", by="police"), Rec(ACT, "2022-02-01")],
        "2027-02-01",
        ["made by the police: no interruption", "interrupts (StGB § 78c(1))"],
    ),
    Case(
        # judge's request 2021-09-15 → 2026-09-15; act 2025-02-01 → 2030-02-01, over § 78c(3):
        # 2019-04-01 + 2 × 5 y = 2029-04-01
        "de-absolute-cap-twice-the-period",
        "DE",
        "2019-04-01",
        [Rec(SENT, "2021-09-15", by="judge"), Rec(ACT, "2025-02-01")],
        "2029-04-01",
        ["(StGB § 78c(3))"],
    ),
    Case(
        # a judge's request 2024-05-01, after the period ran out on 2024-04-01: no effect
        "de-request-after-prescription",
        "DE",
        "2019-04-01",
        [Rec(SENT, "2024-05-01", by="judge")],
        "2024-04-01",
        ["came after prescription on 2024-04-01: no effect"],
    ),
    Case(
        # the foreign final action is no event of German law: 2026-09-15 stands
        "de-final-action-changes-nothing",
        "DE",
        "2019-04-01",
        [Rec(SENT, "2021-09-15", by="judge"), Rec(FINAL, "2022-01-10")],
        "2026-09-15",
        ["no effect: no configured rule (de-78c)"],
    ),
    # --- France: CPP arts. 8, 9-1 to 9-3 (délit: six years, hidden: from discovery) ----------
    Case(
        # discovery 2016-06-01 + 6 y = 2022-06-01, under 2012-03-01 + 12 y = 2024-03-01
        "fr-hidden-offence-from-discovery",
        "FR",
        "2012-03-01",
        [],
        "2022-06-01",
        ["fr-9: acts of investigation", "counting (fr-9): CPP arts. 7-8, 9-1"],
        discovery="2016-06-01",
    ),
    Case(
        # discovery 2020-01-01 + 6 y = 2026-01-01 > 2012-03-01 + 12 y → 2024-03-01 (art. 9-1)
        "fr-twelve-year-limit",
        "FR",
        "2012-03-01",
        [],
        "2024-03-01",
        ["capped at 2012-03-01 + 12 years = 2024-03-01 (CPP art. 9-1)"],
        discovery="2020-01-01",
    ),
    Case(
        # art. 9-2: the request abroad 2021-10-01, before the limit 2024-03-01, starts a new
        # period equal to the initial one → 2021-10-01 + 6 y = 2027-10-01, past the limit
        "fr-interruption-before-the-limit",
        "FR",
        "2012-03-01",
        [Rec(SENT, "2021-10-01", by="prosecutor")],
        "2027-10-01",
        ["not capped at 2024-03-01"],
        discovery="2016-06-01",
    ),
    Case(
        # request 2019-01-02 interrupts → 2025-01-02; obstacle (art. 9-3) ordered 2019-01-10
        # until the final action 2019-05-01 = 111 days → 2025-01-02 + 111 d = 2025-04-23
        "fr-interruption-and-suspension",
        "FR",
        "2015-01-01",
        [Rec(SENT, "2019-01-02"), Rec(ORDERED, "2019-01-10"), Rec(FINAL, "2019-05-01")],
        "2025-04-23",
        ["art. 9-3 2019-01-10 → 2019-05-01: 111 days"],
        discovery="2015-06-01",
    ),
    Case(
        # the limit 2024-03-01 passed before the act of 2024-05-01: no effect
        "fr-act-after-the-limit",
        "FR",
        "2012-03-01",
        [Rec(ACT, "2024-05-01")],
        "2024-03-01",
        ["came after prescription on 2024-03-01: no effect"],
        discovery="2020-01-01",
    ),
    Case(
        # act 2020-01-01 → 2026-01-01; act 2025-06-01 → 2031-06-01: each act restarts the
        # initial period (art. 9-2); no overall cap once interrupted
        "fr-successive-interruptions",
        "FR",
        "2012-03-01",
        [Rec(ACT, "2020-01-01"), Rec(ACT, "2025-06-01")],
        "2031-06-01",
        discovery="2016-06-01",
    ),
    Case(
        # no discovery date given: counted from the offence, 2015-01-01 + 6 y = 2021-01-01
        "fr-no-discovery-date",
        "FR",
        "2015-01-01",
        [],
        "2021-01-01",
        ["no discovery date given"],
    ),
]


@pytest.fixture(scope="module")
def routings() -> Routings:
    presets = load_presets(REPO / "config")
    current = load_all(REPO / "config")
    for path in sorted(COUNTRIES.glob("*.yaml")):
        routing = load_country(path, presets=presets)
        current[routing.country] = routing
    return Routings(current)


def run(ledger: Ledger, clock: FixedClock, routings: Routings, command: str, **kw: Any) -> Any:
    with ledger.transaction() as session:
        return getattr(engine, command)(session=session, clock=clock, routings=routings, **kw)


def register(ledger: Ledger, clock: FixedClock, routings: Routings, case: Case) -> str:
    data = intake(country=case.country, counterpart="CH", offence_date=case.offence)
    data["offence_category"] = "bribery"
    if case.discovery is not None:
        data["discovery_date"] = case.discovery
    reference: str = run(ledger, clock, routings, "register", data=data).reference
    run(ledger, clock, routings, "decide", reference=reference, outcome="forwarded")
    return reference


def record(ledger: Ledger, clock: FixedClock, routings: Routings, reference: str, rec: Rec) -> Any:
    return run(
        ledger,
        clock,
        routings,
        "record",
        reference=reference,
        event=rec.event,
        on=D(rec.on),
        request_abroad=rec.request,
        applied_on=None if rec.applied is None else D(rec.applied),
        by=rec.by,
    )


def status(ledger: Ledger, clock: FixedClock, routings: Routings, reference: str) -> Timeline:
    with ledger.session() as session:
        version = session.scalar(
            select(engine.Request.routing_version).where(engine.Request.reference == reference)
        )
        return timeline(
            session=session,
            routing=routings.pinned(session, version),
            reference=reference,
            now=clock.now(),
        )


def events(ledger: Ledger) -> int:
    with ledger.session() as session:
        return int(session.scalar(select(func.count()).select_from(Event)) or 0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_prescription_corpus(ledger, routings, case):
    clock = FixedClock(TODAY)
    reference = register(ledger, clock, routings, case)
    for rec in case.records:
        record(ledger, clock, routings, reference, rec)
    view = status(ledger, clock, routings, reference)
    assert view.prescription_date == D(case.expected)
    assert view.prescription_running is case.running
    shown = _timeline_text(view)
    assert f"prescription {case.expected}" in shown
    for words in case.says:
        assert words in shown, shown
    assert [m["event"] for m in view.prescription_history] == [
        "registered",
        *(r.event for r in case.records),
    ]


def test_the_corpus_covers_each_country_seven_times():
    per_country = {c: sum(case.country == c for case in CASES) for c in ("US", "IT", "DE", "FR")}
    assert min(per_country.values()) >= 7, per_country


# --- refusals: what the law needs is asked for, and nothing is written -----------------------


def refused(ledger, clock, routings, reference, rec: Rec) -> str:
    before = events(ledger)
    with pytest.raises(CommandRejected) as caught:
        record(ledger, clock, routings, reference, rec)
    assert events(ledger) == before
    return str(caught.value)


def test_us_order_without_its_application_day_is_refused_citing_kozeny(ledger, routings):
    clock = FixedClock(TODAY)
    case = Case("us", "US", "2020-03-01", [], "")
    reference = register(ledger, clock, routings, case)
    record(ledger, clock, routings, reference, Rec(SENT, "2023-01-10"))
    message = refused(ledger, clock, routings, reference, Rec(ORDERED, "2023-02-01"))
    assert "give --applied-on, the day the United States applied for this suspension" in message
    assert "United States v. Kozeny, 541 F.3d 166 (2d Cir. 2008)" in message
    late = Rec(ORDERED, "2023-02-01", applied="2023-02-05")
    assert "is after the order on 2023-02-01" in refused(ledger, clock, routings, reference, late)


def test_de_request_without_who_made_it_is_refused(ledger, routings):
    clock = FixedClock(TODAY)
    reference = register(ledger, clock, routings, Case("de", "DE", "2019-04-01", [], ""))
    message = refused(ledger, clock, routings, reference, Rec(SENT, "2021-09-15"))
    assert "give --by judge, prosecutor or police" in message
    assert "only a judge's request" in message


def test_an_unnamed_answer_while_two_requests_are_pending_is_refused_with_the_list(
    ledger, routings
):
    clock = FixedClock(TODAY)
    reference = register(ledger, clock, routings, Case("it", "IT", "2018-05-10", [], ""))
    record(ledger, clock, routings, reference, Rec(SENT, "2020-01-15", "ch"))
    unnamed = refused(ledger, clock, routings, reference, Rec(SENT, "2020-02-01"))
    assert "name this one with --request-abroad" in unnamed
    record(ledger, clock, routings, reference, Rec(SENT, "2020-02-01", "de"))
    message = refused(ledger, clock, routings, reference, Rec(FINAL, "2020-03-15"))
    assert "2 requests abroad are pending on 2020-03-15 ('ch' sent 2020-01-15; 'de' sent " in (
        message
    )
    assert "--request-abroad" in message


def test_an_unnamed_answer_with_one_request_pending_is_stored_under_its_name(ledger, routings):
    clock = FixedClock(TODAY)
    reference = register(ledger, clock, routings, Case("it", "IT", "2018-05-10", [], ""))
    record(ledger, clock, routings, reference, Rec(SENT, "2020-01-15", "ch"))
    record(ledger, clock, routings, reference, Rec(FINAL, "2020-04-15"))
    # 2028-05-10 + 91 days: the answer closed 'ch'
    assert status(ledger, clock, routings, reference).prescription_date == D("2028-08-09")

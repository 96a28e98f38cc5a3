"""Prescription arithmetic, worked by hand for each rule; then properties over random histories.

Dates are the first day on which prosecution is barred: offence + period, plus suspended days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.config import Prescription, PrescriptionPeriod, PrescriptionRule
from models.domain import OffenceCategory, PrescriptionEffect, PrescriptionStart, RequestMaker
from models.prescription import (
    EventKind,
    PrescriptionEvent,
    PrescriptionResult,
    describe_rules,
    period_for,
    prescription_date,
    request_meant,
    rules_in_force,
)

US = PrescriptionEffect.US_3292
IT = PrescriptionEffect.IT_159_3TER
DE = PrescriptionEffect.DE_78C
FR = PrescriptionEffect.FR_9

SENT = EventKind.REQUEST_SENT_ABROAD
ORDERED = EventKind.SUSPENSION_ORDERED
FINAL = EventKind.FOREIGN_FINAL_ACTION
ACT = EventKind.INTERRUPTING_ACT

D = date.fromisoformat


JUDGE = RequestMaker.JUDGE


def ev(
    kind: EventKind,
    on: str,
    request: str | None = None,
    *,
    applied: str | None = None,
    by: RequestMaker | None = None,
) -> PrescriptionEvent:
    return PrescriptionEvent(
        kind, D(on), request, applied_on=None if applied is None else D(applied), by=by
    )


def period(years: float, **kwargs: object) -> PrescriptionPeriod:
    return PrescriptionPeriod.model_validate({"offences": ["bribery"], "years": years, **kwargs})


def reckon(
    rules: Sequence[PrescriptionEffect | PrescriptionRule],
    offence: str,
    events: Sequence[PrescriptionEvent] = (),
    *,
    years: float = 5,
    as_of: str = "2040-01-01",
    discovery: str | None = None,
    **period_kwargs: object,
) -> PrescriptionResult:
    return prescription_date(
        period=period(years, **period_kwargs),
        effects=rules,
        offence_date=D(offence),
        discovery_date=None if discovery is None else D(discovery),
        events=events,
        as_of=D(as_of),
    )


# --- the base date -------------------------------------------------------------------------------


def test_base_is_offence_plus_period():
    # 2020-03-01 + 5 y = 2025-03-01
    result = reckon([], "2020-03-01")
    assert (result.date, result.base, result.running) == (D("2025-03-01"),) * 2 + (False,)
    assert result.history[0].cause == "base"
    assert result.history[0].why == "2020-03-01 (offence) + 5 years = 2025-03-01"


def test_fractional_years_count_as_whole_months():
    # 7.5 y = 90 months; 2020-01-31 + 90 months = 2027-07-31
    assert reckon([], "2020-01-31", years=7.5).date == D("2027-07-31")


def test_leap_day_offence_clamps_to_month_end():
    # 2020-02-29 + 5 y: 2025 has no 29 February → 2025-02-28 (the earlier, safer day)
    assert reckon([], "2020-02-29").date == D("2025-02-28")


def test_discovery_date_before_offence_is_refused():
    with pytest.raises(ValueError, match="precedes the offence date"):
        reckon([], "2020-03-01", discovery="2019-01-01")


def test_period_for_finds_the_offence_or_none():
    bribery = period(10)
    laundering = PrescriptionPeriod(offences=[OffenceCategory.MONEY_LAUNDERING], years=8)
    prescription = Prescription(periods=[bribery, laundering])
    day = D("2020-01-01")
    assert (
        period_for(prescription, OffenceCategory.MONEY_LAUNDERING, offence_date=day) is laundering
    )
    assert period_for(prescription, OffenceCategory.BRIBERY, offence_date=day) is bribery
    assert period_for(prescription, OffenceCategory.OBSTRUCTION, offence_date=day) is None


def test_period_for_picks_the_period_in_force_on_the_offence_date():
    # a reform lengthening the period from 2019-01-01 binds only later offences
    old = period(6, offences_until="2018-12-31")
    new = period(10, offences_from="2019-01-01")
    prescription = Prescription(periods=[old, new])
    bribery = OffenceCategory.BRIBERY
    assert period_for(prescription, bribery, offence_date=D("2018-12-31")) is old
    assert period_for(prescription, bribery, offence_date=D("2019-01-01")) is new
    assert period_for(Prescription(periods=[new]), bribery, offence_date=D("2018-06-01")) is None


def test_a_rule_given_by_name_applies_to_every_offence():
    plain = Prescription.model_validate(
        {"periods": [{"offences": ["bribery"], "years": 5}], "effects": ["us-3292"]}
    )
    assert plain.effects == [PrescriptionRule(rule=US)]
    assert plain.model_dump(mode="json")["effects"] == ["us-3292"]  # versions keep their hash
    assert rules_in_force(plain.effects, offence_date=D("1990-01-01")) == (frozenset({US}), ())


def test_a_dated_rule_is_not_applied_to_an_earlier_offence_and_says_why():
    rule = PrescriptionRule(rule=IT, offences_from=D("2017-08-03"), source="L. 103/2017")
    assert rules_in_force([rule], offence_date=D("2016-05-01")) == (
        frozenset(),
        (
            "it-159-3ter not applied: the offence (2016-05-01) predates L. 103/2017 "
            "(in force 2017-08-03)",
        ),
    )
    assert rules_in_force([rule], offence_date=D("2017-08-03")) == (frozenset({IT}), ())


# --- United States, 18 U.S.C. § 3292 -----------------------------------------------------------


def test_us_request_without_suspension_order_changes_nothing():
    # no court order → the request abroad does not suspend: 2020-03-01 + 5 y = 2025-03-01
    result = reckon([US], "2020-03-01", [ev(SENT, "2023-01-10"), ev(FINAL, "2023-09-01")])
    assert result.date == D("2025-03-01")
    assert "only if a court so orders" in result.history[1].why


def test_us_final_action_before_expiry_caps_extension_at_six_months():
    # offence 2020-03-01 + 5 y = 2025-03-01; request 2023-01-10, final action 2023-09-01
    # = 234 days, but final action precedes 2025-03-01 so capped at 6 months → 2025-09-01
    events = [ev(SENT, "2023-01-10"), ev(ORDERED, "2023-02-01"), ev(FINAL, "2023-09-01")]
    result = reckon([US], "2020-03-01", events)
    assert result.date == D("2025-09-01")
    why = result.history[-1].why
    assert "234 days" in why
    assert "capped at 6 months" in why
    assert "before the ordinary expiry 2025-03-01" in why


def test_us_short_suspension_before_expiry_adds_only_its_days():
    # request 2024-01-10 → final action 2024-03-01 = 51 days (< 6 months)
    # 2025-03-01 + 51 days = 2025-04-21
    events = [ev(SENT, "2024-01-10"), ev(ORDERED, "2024-01-20"), ev(FINAL, "2024-03-01")]
    assert reckon([US], "2020-03-01", events).date == D("2025-04-21")


def test_us_final_action_after_expiry_adds_the_full_suspension():
    # request 2024-06-01 → final action 2025-08-01 = 426 days; final action comes after the
    # ordinary expiry 2025-03-01, so the 6-month cap does not apply (only the 3-year one)
    # 2025-03-01 + 426 days = 2026-05-01
    events = [ev(SENT, "2024-06-01"), ev(ORDERED, "2024-07-01"), ev(FINAL, "2025-08-01")]
    assert reckon([US], "2020-03-01", events).date == D("2026-05-01")


def test_us_suspensions_together_capped_at_three_years():
    # request 2022-01-01 → final action 2026-01-01 = 1461 days > 3 years
    # 2025-03-01 + 3 y = 2028-03-01
    events = [ev(SENT, "2022-01-01"), ev(ORDERED, "2022-02-01"), ev(FINAL, "2026-01-01")]
    result = reckon([US], "2020-03-01", events)
    assert result.date == D("2028-03-01")
    assert "1461 days capped at 36 months = 1096 days" in result.history[-1].why


def test_us_three_year_cap_spans_several_requests():
    # 'ch' 2021-01-01 → 2023-01-01 = 730 days; 'uk' 2023-06-01 → 2025-06-01 = 731 days;
    # together 1461 days > 1096 (3 y from 2025-03-01) → 2025-03-01 + 3 y = 2028-03-01
    events = [
        ev(SENT, "2021-01-01", "ch"),
        ev(ORDERED, "2021-02-01", "ch"),
        ev(FINAL, "2023-01-01", "ch"),
        ev(SENT, "2023-06-01", "uk"),
        ev(ORDERED, "2023-07-01", "uk"),
        ev(FINAL, "2025-06-01", "uk"),
    ]
    assert reckon([US], "2020-03-01", events).date == D("2028-03-01")


def test_us_requests_pair_by_name_and_the_six_month_rule_needs_every_final_action_early():
    # 'ch' 2023-01-10 → 2023-03-01 = 50 days; 'uk' 2024-10-01 → final action X
    # X = 2025-04-01 (after the expiry 2025-03-01): 182 days, no 6-month cap
    #     → 2025-03-01 + 50 + 182 = 232 days = 2025-10-19
    # X = 2025-02-01 (before it): 123 days; all final action early → capped at 6 months
    #     (184 days), 50 + 123 = 173 is under it → 2025-03-01 + 173 days = 2025-08-21
    def events(uk_final: str) -> list[PrescriptionEvent]:
        return [
            ev(SENT, "2023-01-10", "ch"),
            ev(ORDERED, "2023-01-20", "ch"),
            ev(FINAL, "2023-03-01", "ch"),
            ev(SENT, "2024-10-01", "uk"),
            ev(ORDERED, "2024-10-15", "uk"),
            ev(FINAL, uk_final, "uk"),
        ]

    assert reckon([US], "2020-03-01", events("2025-04-01")).date == D("2025-10-19")
    assert reckon([US], "2020-03-01", events("2025-02-01")).date == D("2025-08-21")


def test_us_suspension_order_covers_only_its_own_request():
    # 'ch' sent 2023-01-10, 'uk' sent 2023-02-01; 'ch' answered 2023-03-01, 'uk' 2023-06-01;
    # only 'uk' has a § 3292 order: 2023-02-01 → 2023-06-01 = 120 days (not 2023-03-01's 28)
    # 2025-03-01 + 120 days = 2025-06-29
    events = [
        ev(SENT, "2023-01-10", "ch"),
        ev(SENT, "2023-02-01", "uk"),
        ev(ORDERED, "2023-02-10", "uk"),
        ev(FINAL, "2023-03-01", "ch"),
        ev(FINAL, "2023-06-01", "uk"),
    ]
    assert reckon([US], "2020-03-01", events).date == D("2025-06-29")


def test_us_order_after_final_action_suspends_nothing():
    # United States v. Atiyeh, 402 F.3d 354 (3d Cir. 2005): ordered 2024-01-15, after the final
    # action of 2023-09-01 on the request of 2023-01-10 → no suspension → 2025-03-01
    events = [ev(SENT, "2023-01-10"), ev(FINAL, "2023-09-01"), ev(ORDERED, "2024-01-15")]
    result = reckon([US], "2020-03-01", events)
    assert result.date == D("2025-03-01")
    assert "took final action on the request on 2023-09-01, before this order" in (
        result.history[-1].why
    )
    assert "Atiyeh" in result.history[-1].why


def test_us_application_before_expiry_keeps_a_later_order():
    # Kozeny: the application (2025-02-15) precedes the expiry 2025-03-01, the order
    # (2025-03-20) follows it: valid. § 3292(b): from the request 2024-06-01 to the final action
    # 2025-08-01 = 426 days, final action after the expiry → 3-year cap only
    # 2025-03-01 + 426 days = 2026-05-01
    events = [
        ev(SENT, "2024-06-01"),
        ev(ORDERED, "2025-03-20", applied="2025-02-15"),
        ev(FINAL, "2025-08-01"),
    ]
    result = reckon([US], "2020-03-01", events)
    assert result.date == D("2026-05-01")
    assert "on the application of 2025-02-15, from the day the request was made, 2024-06-01" in (
        result.history[2].why
    )


def test_us_application_after_expiry_suspends_nothing():
    # Kozeny: applied 2025-03-05, after the expiry 2025-03-01 → no effect, whatever the request
    events = [ev(SENT, "2024-06-01"), ev(ORDERED, "2025-03-10", applied="2025-03-05")]
    result = reckon([US], "2020-03-01", events, as_of="2025-06-01")
    assert result.date == D("2025-03-01")
    assert result.history[-1].why.startswith(
        "applied for on 2025-03-05, after prescription on 2025-03-01: no effect"
    )


def test_us_order_after_prescription_does_nothing():
    # request 2024-06-01 → 2024-12-01, but the order comes 2025-04-01, after the period ran out
    # on 2025-03-01: no suspension (the application must precede expiry)
    events = [ev(SENT, "2024-06-01"), ev(FINAL, "2024-12-01"), ev(ORDERED, "2025-04-01")]
    result = reckon([US], "2020-03-01", events)
    assert result.date == D("2025-03-01")
    assert result.history[-1].why == "came after prescription on 2025-03-01: no effect"


def test_us_pending_request_counts_to_as_of_and_is_running():
    # request 2024-01-10, still pending on 2025-06-01: as if final action came 2025-06-01,
    # after the expiry 2025-03-01 → 508 days, no 6-month cap → 2025-03-01 + 508 = 2026-07-22
    events = [ev(SENT, "2024-01-10", "ch"), ev(ORDERED, "2024-02-01", "ch")]
    result = reckon([US], "2020-03-01", events, as_of="2025-06-01")
    assert (result.date, result.running) == (D("2026-07-22"), True)
    last = result.history[-1]
    assert (last.cause, last.on, last.after) == ("pending", D("2025-06-01"), D("2026-07-22"))
    assert "provisional" in last.why


def test_us_pending_request_before_expiry_is_provisionally_capped_at_six_months():
    # request 2024-01-10, pending on 2024-12-01: as if final action came 2024-12-01, before
    # 2025-03-01 → 326 days capped at 6 months → 2025-09-01, still running (a later final
    # action would lift the cap to 3 years)
    events = [ev(SENT, "2024-01-10"), ev(ORDERED, "2024-02-01")]
    result = reckon([US], "2020-03-01", events, as_of="2024-12-01")
    assert (result.date, result.running) == (D("2025-09-01"), True)


def test_us_pending_request_past_the_three_year_cap_is_not_running():
    # request 2022-01-01, pending on 2026-01-01: 1461 days, capped at 3 y → 2028-03-01
    events = [ev(SENT, "2022-01-01"), ev(ORDERED, "2022-02-01")]
    result = reckon([US], "2020-03-01", events, as_of="2026-01-01")
    assert (result.date, result.running) == (D("2028-03-01"), False)
    assert "reached their 3-year cap" in result.history[-1].why


def test_us_ignores_interrupting_acts_and_says_so():
    result = reckon([US], "2020-03-01", [ev(ACT, "2024-01-01")])
    assert result.date == D("2025-03-01")
    assert result.history[-1].why.startswith("no effect: no configured rule (us-3292)")


# --- Italy, c.p. arts. 159(1) n. 3-ter, 160, 161 --------------------------------------------

IT_PERIOD = {"years": 6, "cap_factor": 1.5}


def test_it_rogatory_suspends_until_documents_arrive():
    # 2018-05-10 + 6 y = 2024-05-10; rogatory 2020-01-15, documents 2020-04-15 = 91 days
    # 2024-05-10 + 91 days = 2024-08-09
    events = [ev(SENT, "2020-01-15"), ev(FINAL, "2020-04-15")]
    assert reckon([IT], "2018-05-10", events, **IT_PERIOD).date == D("2024-08-09")


def test_it_each_rogatory_capped_at_six_months():
    # 'a' 2020-01-15, documents 2021-03-01: capped at 2020-07-15 = 182 days
    # 'b' 2021-06-01, never answered (as of 2023-01-01): capped at 2021-12-01 = 183 days
    # 2024-05-10 + 182 + 183 = 365 days = 2025-05-10
    events = [
        ev(SENT, "2020-01-15", "a"),
        ev(FINAL, "2021-03-01", "a"),
        ev(SENT, "2021-06-01", "b"),
    ]
    result = reckon([IT], "2018-05-10", events, as_of="2023-01-01", **IT_PERIOD)
    assert (result.date, result.running) == (D("2025-05-10"), False)
    assert "cut at 6 months" in result.history[-1].why
    assert "ended at the 6-month cap on 2021-12-01" in result.history[-1].why


def test_it_pending_rogatory_is_running():
    # rogatory 2023-01-01, unanswered on 2023-03-01 = 59 days so far
    # 2024-05-10 + 59 days = 2024-07-08, provisional
    result = reckon([IT], "2018-05-10", [ev(SENT, "2023-01-01")], as_of="2023-03-01", **IT_PERIOD)
    assert (result.date, result.running) == (D("2024-07-08"), True)


def test_it_interruption_restarts_within_one_and_a_half_times_the_period():
    # act 2021-01-01 → 2021-01-01 + 6 y = 2027-01-01, under the cap 2018-05-10 + 9 y = 2027-05-10
    # act 2022-01-01 → 2028-01-01, over it → 2027-05-10 (art. 161: at most one half more)
    one = reckon([IT], "2018-05-10", [ev(ACT, "2021-01-01")], **IT_PERIOD)
    assert one.date == D("2027-01-01")
    two = reckon([IT], "2018-05-10", [ev(ACT, "2021-01-01"), ev(ACT, "2022-01-01")], **IT_PERIOD)
    assert two.date == D("2027-05-10")
    assert (
        "capped at 2018-05-10 + 1.5 × 6 years = 2027-05-10 (c.p. art. 161)" in two.history[-1].why
    )


def test_it_without_cap_factor_interruptions_are_uncapped():
    # act 2022-01-01 → 2028-01-01, nothing to cap it
    assert reckon([IT], "2018-05-10", [ev(ACT, "2022-01-01")], years=6).date == D("2028-01-01")


def test_it_suspension_before_a_restart_only_extends_the_cap():
    # rogatory 2021-01-01 → 2021-04-01 = 90 days; act 2022-01-01 restarts: 2028-01-01;
    # the suspension lies before the restart so adds nothing there, but lifts the art. 161 cap
    # to 2027-05-10 + 90 days = 2027-08-08 → 2027-08-08
    events = [ev(SENT, "2021-01-01"), ev(FINAL, "2021-04-01"), ev(ACT, "2022-01-01")]
    assert reckon([IT], "2018-05-10", events, **IT_PERIOD).date == D("2027-08-08")


def test_it_restart_wipes_earlier_suspension_and_waits_for_an_open_one():
    # no cap. rogatory 2021-01-01 → 2021-04-01 lies before the act 2022-01-01: it no longer
    # counts → 2022-01-01 + 6 y = 2028-01-01. A rogatory 2021-12-01 → 2022-03-01 spans the
    # act: the new period runs only once the suspension ends → 2022-03-01 + 6 y = 2028-03-01
    before = [ev(SENT, "2021-01-01"), ev(FINAL, "2021-04-01"), ev(ACT, "2022-01-01")]
    assert reckon([IT], "2018-05-10", before, years=6).date == D("2028-01-01")
    spanning = [ev(SENT, "2021-12-01"), ev(ACT, "2022-01-01"), ev(FINAL, "2022-03-01")]
    result = reckon([IT], "2018-05-10", spanning, years=6)
    assert result.date == D("2028-03-01")
    assert (
        "2022-01-01 (interruption) during a suspension, so from 2022-03-01"
        in result.history[-1].why
    )


IT_2017 = PrescriptionRule(rule=IT, offences_from=D("2017-08-03"), source="L. 103/2017")


def test_it_rogatory_before_l_103_2017_suspends_nothing_but_acts_still_interrupt():
    # offence 2016-05-01 + 6 y = 2022-05-01; n. 3-ter binds offences from 2017-08-03 only, so
    # the rogatory 2020-01-15 → 2020-04-15 suspends nothing; an act 2021-01-01 still
    # interrupts (art. 160) → 2027-01-01, cap (art. 161) 2016-05-01 + 9 y = 2025-05-01
    events = [ev(SENT, "2020-01-15"), ev(FINAL, "2020-04-15"), ev(ACT, "2021-01-01")]
    result = reckon([IT_2017], "2016-05-01", events, **IT_PERIOD)
    assert result.date == D("2025-05-01")
    assert "it-159-3ter not applied: the offence (2016-05-01) predates L. 103/2017" in (
        result.history[0].why
    )
    assert result.history[1].why.startswith("letter rogatory: no suspension, it-159-3ter not")
    assert "(c.p. art. 161)" in result.history[-1].why


def test_it_rogatory_suspends_for_an_offence_from_the_day_l_103_2017_came_in():
    # offence 2017-08-03 + 6 y = 2023-08-03; rogatory 2020-01-15 → 2020-04-15 = 91 days
    # 2023-08-03 + 91 days = 2023-11-02
    events = [ev(SENT, "2020-01-15"), ev(FINAL, "2020-04-15")]
    assert reckon([IT_2017], "2017-08-03", events, **IT_PERIOD).date == D("2023-11-02")


def test_it_rogatory_does_not_interrupt():
    # a rogatory suspends only: 2020-01-15 → 2020-01-25 = 10 days → 2024-05-20, not a restart
    events = [ev(SENT, "2020-01-15"), ev(FINAL, "2020-01-25")]
    assert reckon([IT], "2018-05-10", events, **IT_PERIOD).date == D("2024-05-20")


# --- Germany, StGB § 78c -----------------------------------------------------------------------


def test_de_request_abroad_restarts_the_full_period():
    # 2019-04-01 + 5 y = 2024-04-01; request abroad 2021-09-15 → 2021-09-15 + 5 y = 2026-09-15
    result = reckon([DE], "2019-04-01", [ev(SENT, "2021-09-15", by=JUDGE)])
    assert result.date == D("2026-09-15")
    assert "StGB § 78c(1) Nr. 12" in result.history[-1].why


@pytest.mark.parametrize("by", [RequestMaker.PROSECUTOR, RequestMaker.POLICE, None])
def test_de_request_abroad_not_made_by_a_judge_does_not_interrupt(by):
    # § 78c(1) Nr. 12 "jedes richterliche Ersuchen": a prosecutor's or the police's request (or
    # one whose maker is not recorded) leaves 2019-04-01 + 5 y = 2024-04-01
    result = reckon([DE], "2019-04-01", [ev(SENT, "2021-09-15", by=by)])
    assert result.date == D("2024-04-01")
    assert "no interruption (StGB § 78c(1) Nr. 12 counts only" in result.history[-1].why


def test_de_restarts_stop_at_twice_the_period():
    # request 2021-09-15 → 2026-09-15; act 2025-02-01 → 2030-02-01, but § 78c(3):
    # 2019-04-01 + 2 × 5 y = 2029-04-01 → 2029-04-01 (2× applies though the config sets no factor)
    events = [ev(SENT, "2021-09-15", by=JUDGE), ev(ACT, "2025-02-01")]
    result = reckon([DE], "2019-04-01", events)
    assert result.date == D("2029-04-01")
    assert "(StGB § 78c(3))" in result.history[-1].why


def test_de_configured_cap_factor_wins_over_the_default():
    # act 2023-01-01 → 2028-01-01; cap 2019-04-01 + 1.5 × 5 y = 2026-10-01
    result = reckon([DE], "2019-04-01", [ev(ACT, "2023-01-01")], cap_factor=1.5)
    assert result.date == D("2026-10-01")


def test_de_interruption_on_or_after_prescription_does_nothing():
    # period ran out 2024-04-01: an act that day or later restarts nothing
    events = [ev(ACT, "2024-04-01"), ev(SENT, "2024-06-01", by=JUDGE)]
    result = reckon([DE], "2019-04-01", events)
    assert result.date == D("2024-04-01")
    assert [m.why for m in result.history[1:]] == [
        "came after prescription on 2024-04-01: no effect"
    ] * 2
    assert all(m.before == m.after == D("2024-04-01") for m in result.history[1:])


def test_de_foreign_final_action_is_no_rule_of_german_law():
    result = reckon([DE], "2019-04-01", [ev(FINAL, "2020-01-01")])
    assert result.date == D("2024-04-01")
    assert result.history[-1].why.startswith("no effect: no configured rule (de-78c)")


# --- France, CPP arts. 9-1 to 9-3 --------------------------------------------------------------

FR_HIDDEN = {"years": 6, "start": PrescriptionStart.DISCOVERY_DATE, "cap_years": 12}


def test_fr_hidden_offence_runs_from_discovery():
    # discovery 2016-06-01 + 6 y = 2022-06-01 (under 2012-03-01 + 12 y = 2024-03-01)
    result = reckon([FR], "2012-03-01", discovery="2016-06-01", **FR_HIDDEN)
    assert result.date == result.base == D("2022-06-01")


def test_fr_late_discovery_capped_at_twelve_years_from_offence():
    # discovery 2020-01-01 + 6 y = 2026-01-01 > 2012-03-01 + 12 y = 2024-03-01 → 2024-03-01
    result = reckon([FR], "2012-03-01", discovery="2020-01-01", **FR_HIDDEN)
    assert result.date == result.base == D("2024-03-01")
    assert "capped at 2012-03-01 + 12 years = 2024-03-01 (CPP art. 9-1)" in result.history[0].why


def test_fr_hidden_offence_without_discovery_date_counts_from_offence():
    result = reckon([FR], "2012-03-01", **FR_HIDDEN)
    assert result.date == D("2018-03-01")
    assert "no discovery date given" in result.history[0].why


def test_fr_act_of_investigation_restarts_the_period():
    # discovery 2015-06-01 → 2021-06-01; act 2017-03-01 → 2023-03-01 (cap 2027-01-01)
    result = reckon(
        [FR], "2015-01-01", [ev(ACT, "2017-03-01")], discovery="2015-06-01", **FR_HIDDEN
    )
    assert result.date == D("2023-03-01")


def test_fr_interruption_before_the_twelve_year_limit_starts_a_full_new_period():
    # discovery 2016-06-01 → 2022-06-01 (under 2012-03-01 + 12 y = 2024-03-01); request abroad
    # 2021-10-01 interrupts (art. 9-2): a new period equal to the initial one, which the limit
    # of art. 9-1 does not bound → 2021-10-01 + 6 y = 2027-10-01
    result = reckon(
        [FR], "2012-03-01", [ev(SENT, "2021-10-01")], discovery="2016-06-01", **FR_HIDDEN
    )
    assert result.date == D("2027-10-01")
    assert "not capped at 2024-03-01" in result.history[-1].why


def test_fr_interruption_after_the_twelve_year_limit_comes_too_late():
    # discovery 2020-01-01 → capped at 2024-03-01; an act 2024-05-01 comes after it: no effect
    result = reckon(
        [FR], "2012-03-01", [ev(ACT, "2024-05-01")], discovery="2020-01-01", **FR_HIDDEN
    )
    assert result.date == D("2024-03-01")
    assert result.history[-1].why == "came after prescription on 2024-03-01: no effect"


def test_fr_request_interrupts_and_obstacle_suspends():
    # request 2019-01-02 interrupts (art. 9-2): 2019-01-02 + 6 y = 2025-01-02;
    # obstacle ordered 2019-01-10 until final action 2019-05-01 = 111 days (art. 9-3)
    # 2025-01-02 + 111 days = 2025-04-23
    events = [ev(SENT, "2019-01-02"), ev(ORDERED, "2019-01-10"), ev(FINAL, "2019-05-01")]
    result = reckon([FR], "2015-01-01", events, discovery="2015-06-01", **FR_HIDDEN)
    assert result.date == D("2025-04-23")
    assert "art. 9-3 2019-01-10 → 2019-05-01: 111 days" in result.history[-1].why


def test_fr_events_before_discovery_are_ignored():
    result = reckon(
        [FR], "2015-01-01", [ev(ACT, "2015-03-01")], discovery="2015-06-01", **FR_HIDDEN
    )
    assert result.date == D("2021-06-01")
    assert result.history[-1].why == "came before the period started on 2015-06-01: no effect"


def test_fr_open_obstacle_stops_running_once_the_absolute_limit_binds():
    # discovery 2016-06-01 → 2022-06-01; obstacle from 2021-01-01, still open 2024-06-01:
    # 1247 days would give 2025-10-30, but 2012-03-01 + 12 y = 2024-03-01 holds
    events = [ev(ORDERED, "2021-01-01")]
    result = reckon(
        [FR], "2012-03-01", events, discovery="2016-06-01", as_of="2024-06-01", **FR_HIDDEN
    )
    assert (result.date, result.running) == (D("2024-03-01"), False)
    assert "the absolute limit holds" in result.history[-1].why


# --- history ------------------------------------------------------------------------------------


def test_every_event_leaves_one_movement_in_date_order():
    events = [ev(FINAL, "2023-09-01"), ev(SENT, "2023-01-10"), ev(ORDERED, "2023-02-01")]
    result = reckon([US], "2020-03-01", events)
    assert [m.cause for m in result.history] == [
        "base",
        "request_sent_abroad",
        "suspension_ordered",
        "foreign_final_action",
    ]
    assert result.history[-1].after == result.date


def test_same_day_request_and_final_action_close_a_zero_day_window():
    events = [ev(FINAL, "2023-01-10"), ev(ORDERED, "2023-01-10"), ev(SENT, "2023-01-10")]
    result = reckon([US], "2020-03-01", events, as_of="2024-01-01")
    assert (result.date, result.running) == (D("2025-03-01"), False)


def test_events_after_as_of_are_not_counted_yet():
    result = reckon([DE], "2019-04-01", [ev(ACT, "2022-01-01")], as_of="2021-12-31")
    assert result.date == D("2024-04-01")
    assert result.history[-1].why == "dated after as_of 2021-12-31: not counted yet"


# --- properties ---------------------------------------------------------------------------------

RULE_SETS = [(US,), (IT,), (DE,), (FR,)]
days = st.dates(date(2012, 1, 1), date(2045, 12, 31))
requests = st.sampled_from([None, "a", "b"])
events = st.lists(st.builds(PrescriptionEvent, st.sampled_from(list(EventKind)), days, requests))
years = st.sampled_from([3.0, 5.0, 6.0, 7.5, 10.0])


def _run(
    rules: Sequence[PrescriptionEffect],
    history: Sequence[PrescriptionEvent],
    *,
    offence: date,
    as_of: date,
    years: float,
    cap_factor: float | None = None,
    cap_years: float | None = None,
) -> PrescriptionResult:
    return prescription_date(
        period=PrescriptionPeriod(
            offences=[OffenceCategory.BRIBERY],
            years=years,
            cap_factor=cap_factor,
            cap_years=cap_years,
        ),
        effects=rules,
        offence_date=offence,
        discovery_date=None,
        events=history,
        as_of=as_of,
    )


@settings(max_examples=300)
@given(history=events, offence=days, as_of=days, years=years)
def test_suspensions_never_bring_the_date_before_base(history, offence, as_of, years):
    no_acts = [e for e in history if e.kind is not ACT]
    for rules in [(US,), (IT,)]:
        result = _run(rules, no_acts, offence=offence, as_of=as_of, years=years)
        assert result.date >= result.base


# Found by the property below: a suspension from the offence day itself, across the 2020 leap
# day, was capped as "36 months = 1096 days" counted from the expiry and carried the date a day
# past expiry + 3 years. The cap bounds the date in months.
@example(
    history=[
        PrescriptionEvent(EventKind.REQUEST_SENT_ABROAD, date(2012, 1, 1)),
        PrescriptionEvent(EventKind.REQUEST_SENT_ABROAD, date(2012, 1, 1)),
        PrescriptionEvent(EventKind.REQUEST_SENT_ABROAD, date(2016, 3, 1)),
        PrescriptionEvent(EventKind.SUSPENSION_ORDERED, date(2016, 3, 1)),
    ],
    offence=date(2016, 3, 1),
    as_of=date(2020, 1, 1),
    years=3.0,
)
@settings(max_examples=300)
@given(history=events, offence=days, as_of=days, years=years)
def test_caps_are_never_passed(history, offence, as_of, years):
    def plus(months: float) -> date:
        return _run([], [], offence=offence, as_of=as_of, years=months / 12).date

    us = _run([US], history, offence=offence, as_of=as_of, years=years)
    assert us.date <= plus(years * 12 + 36)
    de = _run([DE], history, offence=offence, as_of=as_of, years=years)
    assert de.date <= plus(years * 24)
    # France: the limit binds as long as nothing interrupts (art. 9-2 then starts a new period)
    quiet = [e for e in history if e.kind not in (SENT, ACT)]
    fr = _run([FR], quiet, offence=offence, as_of=as_of, years=years, cap_years=12)
    assert fr.date <= plus(144)
    # Italy: 1.5 × the period, plus at most 6 months for each letter rogatory
    it = _run([IT], history, offence=offence, as_of=as_of, years=years, cap_factor=1.5)
    rogatories = sum(e.kind is SENT for e in history)
    assert it.date <= plus(years * 18 + 6 * rogatories + rogatories)  # + a day a month, rounding


@settings(max_examples=300)
@given(
    history=events,
    offence=days,
    as_of=days,
    years=years,
    kind=st.sampled_from(list(EventKind)),
    rules=st.sampled_from(RULE_SETS),
    lag=st.integers(0, 3000),
)
def test_an_event_after_prescription_changes_nothing(
    history, offence, as_of, years, kind, rules, lag
):
    before = _run(rules, history, offence=offence, as_of=as_of, years=years)
    late = PrescriptionEvent(kind, date.fromordinal(before.date.toordinal() + lag), "a")
    after = _run(rules, [*history, late], offence=offence, as_of=as_of, years=years)
    assert after.date == before.date


@settings(max_examples=300)
@given(
    history=events,
    offence=days,
    as_of=days,
    years=years,
    kind=st.sampled_from([SENT, ACT, ORDERED]),
    on=days,
    rules=st.sampled_from(RULE_SETS),
)
def test_a_new_request_or_act_never_brings_the_date_earlier(
    history, offence, as_of, years, kind, on, rules
):
    before = _run(rules, history, offence=offence, as_of=as_of, years=years, cap_factor=1.5)
    added = PrescriptionEvent(kind, on, "fresh")
    after = _run(
        rules, [*history, added], offence=offence, as_of=as_of, years=years, cap_factor=1.5
    )
    assert after.date >= before.date


@settings(max_examples=200)
@given(history=events, offence=days, as_of=days, years=years, rules=st.sampled_from(RULE_SETS))
def test_history_has_base_then_one_movement_per_event(history, offence, as_of, years, rules):
    result = _run(rules, history, offence=offence, as_of=as_of, years=years)
    causes = [m.cause for m in result.history if m.cause not in ("base", "pending")]
    assert sorted(causes) == sorted(e.kind.value for e in history)
    assert result.history[0].cause == "base"


# --- which request an event belongs to ------------------------------------------------------


def test_an_answer_without_a_name_goes_to_the_only_pending_request():
    events = [ev(SENT, "2023-01-10", "ch")]
    assert request_meant(FINAL, None, events, on=D("2023-03-01")) == "ch"


def test_an_answer_without_a_name_is_refused_while_several_requests_are_pending():
    events = [ev(SENT, "2023-01-10", "ch"), ev(SENT, "2023-02-01", "uk")]
    with pytest.raises(ValueError, match="2 requests abroad are pending on 2023-03-01") as caught:
        request_meant(FINAL, None, events, on=D("2023-03-01"))
    assert "'ch' sent 2023-01-10; 'uk' sent 2023-02-01" in str(caught.value)
    # on a day only one was pending, the unnamed answer is that one's
    assert request_meant(ORDERED, None, events, on=D("2023-01-20")) == "ch"


def test_a_second_pending_request_must_be_named_and_so_must_the_first():
    pending = [ev(SENT, "2023-01-10", "ch")]
    with pytest.raises(ValueError, match="name this one with --request-abroad"):
        request_meant(SENT, None, pending, on=D("2023-02-01"))
    with pytest.raises(ValueError, match="'ch' is already pending"):
        request_meant(SENT, "ch", pending, on=D("2023-02-01"))
    unnamed = [ev(SENT, "2023-01-10")]
    with pytest.raises(ValueError, match="has no name and no answer on record"):
        request_meant(SENT, "uk", unnamed, on=D("2023-02-01"))
    # once the unnamed one's answer is on record, the second is told apart by its name
    answered = [*unnamed, ev(FINAL, "2023-05-01")]
    assert request_meant(SENT, "uk", answered, on=D("2023-02-01")) == "uk"


def test_a_final_action_for_no_pending_request_is_refused():
    with pytest.raises(ValueError, match="no request abroad is pending on 2023-03-01"):
        request_meant(FINAL, None, [], on=D("2023-03-01"))
    with pytest.raises(ValueError, match="no request 'xx' is pending"):
        request_meant(FINAL, "xx", [ev(SENT, "2023-01-10", "ch")], on=D("2023-03-01"))


def test_describe_rules_states_period_rules_left_out_and_counting():
    prescription = Prescription.model_validate(
        {
            "periods": [{"offences": ["bribery"], "years": 6, "source": "c.p. art. 157"}],
            "effects": [
                {"rule": "it-159-3ter", "offences_from": "2017-08-03", "source": "L. 103/2017"}
            ],
        }
    )
    lines = describe_rules(
        prescription, offence=OffenceCategory.BRIBERY, offence_date=D("2016-05-01")
    )
    assert lines[0] == "period: 6 years from the offence (c.p. art. 157)"
    assert lines[1] == (
        "it-159-3ter not applied: the offence (2016-05-01) predates L. 103/2017 (in force "
        "2017-08-03)"
    )
    assert lines[2].startswith("counting (it-159-3ter): c.p. art. 14")
    assert "never a number of days" in lines[3]

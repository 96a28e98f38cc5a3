"""The prescription-risk register: calibration on simulated caseloads, SLA fallback, the ledger."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from audit_scenario import play, sv

from models import risk
from models.ledger import Ledger
from models.metrics import Filters, load_audit
from models.risk import MIN_HISTORY, DwellHistory, HopAhead, Pending, forecast, sla_draws

# -- a synthetic caseload with known dwell distributions ---------------------------------------

STEPS = ("s1", "s2", "s3")


def true_dwell(step: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if step == "s1":
        return np.rint(rng.lognormal(np.log(10), 0.6, n)).astype(np.int64)
    if step == "s2":
        return np.rint(rng.gamma(2.0, 7.0, n)).astype(np.int64)
    return np.rint(rng.lognormal(np.log(40), 0.5, n)).astype(np.int64)


def true_remaining(step: str, elapsed: int, rng: np.random.Generator) -> int:
    """One draw of the hop's dwell given it has lasted `elapsed` days, minus those days."""
    while True:
        draws = true_dwell(step, rng, 256)
        kept = draws[draws >= elapsed]
        if kept.size:
            return int(kept[0]) - elapsed


def synthetic_caseload(seed: int, cases: int) -> tuple[DwellHistory, list[Pending], np.ndarray]:
    rng = np.random.default_rng(seed)
    history = DwellHistory(
        observed={("XX", h, s): true_dwell(s, rng, 600) for h, s in zip("abc", STEPS, strict=True)}
    )
    pending, prescribed = [], []
    for _ in range(cases):
        stage = int(rng.integers(3))
        elapsed = int(rng.integers(0, 26))
        ahead = [
            HopAhead("XX", "abc"[k], STEPS[k], sla_days=10, elapsed=elapsed if k == stage else 0)
            for k in range(stage, 3)
        ]
        margin = int(rng.integers(0, 160))
        actual = true_remaining(STEPS[stage], elapsed, rng) + sum(
            int(true_dwell(s, rng, 1)[0]) for s in STEPS[stage + 1 :]
        )
        pending.append(Pending(today=20_000, prescription_day=20_000 + margin, ahead=tuple(ahead)))
        prescribed.append(actual >= margin)
    return history, pending, np.array(prescribed)


def test_forecast_risk_is_calibrated_on_a_simulated_caseload():
    history, pending, prescribed = synthetic_caseload(seed=7, cases=6000)
    predicted = np.array([f.risk for f in forecast(pending=pending, history=history)])
    assert {f.basis for f in forecast(pending=pending[:50], history=history)} == {"history"}
    bins = np.minimum((predicted * 10).astype(int), 9)
    checked = 0
    for b in range(10):
        mine = bins == b
        n = int(mine.sum())
        if n < 150:
            continue
        expected = float(predicted[mine].mean())
        observed = float(prescribed[mine].mean())
        tolerance = 0.04 + 3 * np.sqrt(max(expected * (1 - expected), 0.01) / n)
        assert abs(observed - expected) <= tolerance, (b, n, expected, observed)
        checked += 1
    assert checked >= 6
    # Of the cases forecast at about 30%, about 30% prescribe.
    near = (predicted >= 0.2) & (predicted < 0.4)
    assert near.sum() >= 150
    assert abs(prescribed[near].mean() - 0.3) <= 0.07


def test_forecast_is_reproducible_and_independent_of_the_other_cases():
    history, pending, _ = synthetic_caseload(seed=11, cases=300)
    alone = forecast(pending=pending[:1], history=history)
    together = forecast(pending=pending, history=history)
    assert alone[0] == together[0]
    assert forecast(pending=pending, history=history) == together


def test_thin_history_falls_back_to_the_sla():
    hop = HopAhead("XX", "a", "s1", sla_days=30)
    case = Pending(today=0, prescription_day=45, ahead=(hop,))
    for observed in ({}, {("XX", "a", "s1"): np.full(MIN_HISTORY - 1, 5)}):
        (fc,) = forecast(pending=[case], history=DwellHistory(observed=observed))
        assert fc.basis == "sla"
        assert 29 <= fc.p50_day <= 31  # the SLA is the median
        assert 56 <= fc.p90_day <= 64  # twice the SLA is the 90th percentile
        assert fc.slack_days == 45 - fc.p50_day
        # P(lognormal > 45 days) with median 30 and P90 60: 1 - Phi(ln 1.5 / sigma) ~ 0.247.
        assert fc.risk == pytest.approx(0.247, abs=0.03)
    enough = DwellHistory(observed={("XX", "a", "s1"): np.full(MIN_HISTORY, 5)})
    (fc,) = forecast(pending=[case], history=enough)
    assert (fc.basis, fc.p50_day, fc.p90_day, fc.risk) == ("history", 5, 5, 0.0)


def test_a_hop_held_past_its_sla_is_drawn_from_the_tail():
    rng = np.random.default_rng(3)
    draws = sla_draws(sla_days=30, elapsed=60, u=rng.random(20_000))
    assert draws.min() >= 0
    # 60 days is the 90th percentile, so the median of what is left is the 95th percentile.
    assert np.median(draws) == pytest.approx(30 * 2 ** (1.6449 / 1.2816) - 60, abs=2)


def test_norm_ppf_matches_the_standard_library():
    u = np.array([1e-9, 0.001, 0.02, 0.2, 0.5, 0.77, 0.975, 0.999999])
    expected = [statistics.NormalDist().inv_cdf(x) for x in u]
    assert risk.norm_ppf(u) == pytest.approx(expected, abs=1e-7)


def test_open_hop_days_already_spent_shift_the_forecast():
    history = DwellHistory(observed={("XX", "a", "s1"): np.arange(1, 101)})
    fresh = Pending(today=0, prescription_day=None, ahead=(HopAhead("XX", "a", "s1", 10),))
    late = Pending(today=0, prescription_day=None, ahead=(HopAhead("XX", "a", "s1", 10, 80),))
    f_fresh, f_late = forecast(pending=[fresh, late], history=history)
    assert f_fresh.risk is None and f_fresh.slack_days is None
    assert 48 <= f_fresh.p50_day <= 53  # median of 1..100
    assert 8 <= f_late.p50_day <= 12  # median of 80..100, less the 80 days spent


# -- the register over a ledger ------------------------------------------------------------------

NOW = datetime(2026, 3, 11, 15, tzinfo=UTC)


def at(month: int, day: int, hour: int = 15) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def italy(**changes: Any) -> dict[str, Any]:
    return sv(
        country="IT",
        requesting_authority="Procura della Repubblica di Milano",
        conducting_authority="Procura",
        **changes,
    )


def test_register_lists_open_cases_worst_first_with_why(ledger: Ledger, routings):
    feb2 = at(2, 2, 9)
    refs = play(
        ledger,
        routings,
        [
            (feb2, "old", "register", {"data": sv(offence_date="2011-03-20")}),
            (feb2, "new", "register", {"data": sv(offence_date="2020-06-01")}),
            (feb2, "done", "register", {"data": sv(offence_date="2011-03-20")}),
            (feb2, "back", "register", {"data": sv(offence_date="2015-01-01")}),
            # c.p. art. 159(1) n. 3-ter binds offences from 2017-08-03 (L. 103/2017): a 6-year
            # offence of 2020 reaches the same date as El Salvador's 15-year money laundering of
            # 2011 (CPP art. 32), 2026-04-20.
            (
                feb2,
                "it",
                "register",
                {"data": italy(offence_date="2020-04-20", offence_category="trading_in_influence")},
            ),
            (at(2, 5), "done", "decide", {"outcome": "refused", "ground": "de_minimis"}),
            (at(2, 6), "back", "decide", {"outcome": "forwarded"}),
            (at(2, 9), "back", "decide", {"outcome": "returned", "cause": "missing_translation"}),
        ],
    )
    with ledger.transaction() as session:
        from models import engine
        from models.clock import FixedClock

        engine.record(
            session=session,
            clock=FixedClock(at(3, 2)),
            routings=routings,
            reference=refs["it"],
            event="request_sent_abroad",
            on=datetime(2026, 3, 2).date(),
        )
    with ledger.session() as session:
        data = load_audit(session=session, routings=routings, filters=Filters(), now=NOW)
        rows = risk.risk_register(data=data, session=session)
        again = risk.risk_register(data=data, session=session)
    assert rows == again
    by_ref = {r["reference"]: r for r in rows}
    assert refs["done"] not in by_ref
    # Both old cases will surely prescribe; the one with less slack comes first.
    assert {r["reference"] for r in rows[:2]} == {refs["old"], refs["it"]}
    assert [r["risk"] for r in rows[:2]] == [1.0, 1.0]
    assert rows[0]["slack_days"] <= rows[1]["slack_days"]
    old = by_ref[refs["old"]]
    assert (old["prescription_date"], old["days_to_prescription"], old["risk"]) == (
        "2026-03-20",
        9,
        1.0,
    )
    assert old["slack_days"] < 0 and old["basis"] == "sla"
    assert old["remaining"][0] == "draft @ fgr" and len(old["remaining"]) == 5
    assert "2011-03-20 (offence) + 15 years" in old["prescription_why"]
    assert by_ref[refs["new"]]["risk"] == 0.0
    assert rows[-1]["risk"] == 0.0
    back = by_ref[refs["back"]]
    assert (back["status"], back["step"], back["authority"]) == (
        "with_requester",
        "with requester",
        None,
    )
    assert back["remaining"][0] == "court @ csj"
    assert "not counted" in back["note"]
    moved = by_ref[refs["it"]]
    assert [h["event"] for h in moved["prescription_history"]] == [
        "registered",
        "request_sent_abroad",
    ]
    assert "159" in moved["prescription_why"]
    # The letter rogatory suspends the period from 2 March: the date can only move later.
    assert (moved["prescription_date"], moved["prescription_running"]) == ("2026-04-20", True)
    assert old["prescription_running"] is False


def test_register_uses_observed_dwell_once_history_is_deep(ledger: Ledger, routings):
    feb2 = at(2, 2, 9)
    script = [(feb2, f"c{n}", "register", {"data": sv()}) for n in range(MIN_HISTORY + 1)]
    # Twenty drafts each forwarded after 4 calendar days (Friday 6 February).
    script += [(at(2, 6), f"c{n}", "decide", {"outcome": "forwarded"}) for n in range(MIN_HISTORY)]
    refs = play(ledger, routings, script)
    with ledger.session() as session:
        data = load_audit(session=session, routings=routings, filters=Filters(), now=at(2, 6, 16))
        rows = {r["reference"]: r for r in risk.risk_register(data=data, session=session)}
    waiting = rows[refs[f"c{MIN_HISTORY}"]]
    assert waiting["basis"] == "mixed"  # draft from history, the rest from SLAs
    assert waiting["step"] == "draft"


def test_already_prescribed_needs_the_date_come_and_no_suspension_running():
    assert risk.already_prescribed(days_left=0, running=False)  # the date is the first day lost
    assert risk.already_prescribed(days_left=-30, running=False)
    assert not risk.already_prescribed(days_left=1, running=False)
    assert not risk.already_prescribed(days_left=-3, running=True)  # the date moves on each day
    assert not risk.already_prescribed(days_left=None, running=False)


def test_register_flags_the_cases_already_prescribed(ledger: Ledger, routings):
    feb2 = at(2, 2, 9)
    refs = play(
        ledger,
        routings,
        [
            (feb2, "past", "register", {"data": sv(offence_date="2011-03-01")}),
            (feb2, "today", "register", {"data": sv(offence_date="2011-03-11")}),
            (feb2, "soon", "register", {"data": sv(offence_date="2011-03-20")}),
            (
                feb2,
                "held",
                "register",
                {"data": italy(offence_date="2020-03-01", offence_category="trading_in_influence")},
            ),
        ],
    )
    with ledger.transaction() as session:
        from models import engine
        from models.clock import FixedClock

        # Sent abroad on 20 February, before the date: the suspension still runs on 11 March,
        # though the date worked out on 21 February (2 March) is behind us.
        engine.record(
            session=session,
            clock=FixedClock(at(2, 21)),
            routings=routings,
            reference=refs["held"],
            event="request_sent_abroad",
            on=datetime(2026, 2, 20).date(),
        )
    with ledger.session() as session:
        data = load_audit(session=session, routings=routings, filters=Filters(), now=NOW)
        register = risk.risk_register(data=data, session=session)
    rows = {r["reference"]: r for r in register}
    flags = {label: rows[ref]["prescribed"] for label, ref in refs.items()}
    assert flags == {"past": True, "today": True, "soon": False, "held": False}
    held = rows[refs["held"]]
    assert held["prescription_running"] and held["days_to_prescription"] < 0
    assert [r["prescribed"] for r in register] == [True, True, False, False]  # listed first

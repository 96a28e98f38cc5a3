"""Audit metrics against hand-computed values, on small ledgers driven through the real engine
(the caseload and its business-day ranks are in tests/audit_scenario.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from audit_scenario import NOW, Script, at, play, sv, sv_script, us_script
from hypothesis import given, settings
from hypothesis import strategies as st

from models import metrics
from models.engine import Routings
from models.ledger import Ledger
from models.metrics import AuditData, Filters, attribute_delay, group_stats, load_audit


@pytest.fixture
def audited(ledger: Ledger, routings: Routings) -> tuple[Ledger, Routings, dict[str, str]]:
    refs = play(ledger, routings, sv_script() + us_script())
    return ledger, routings, refs


def audit(ledger: Ledger, routings: Routings, **filters: Any) -> AuditData:
    with ledger.session() as session:
        return load_audit(session=session, routings=routings, filters=Filters(**filters), now=NOW)


def by(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


def test_dwell_per_authority_in_business_and_calendar_days(audited):
    data = audit(*audited[:2], countries=("SV",))
    rows = metrics.dwell_by_authority(data=data)
    # fgr closed hops: C1 3 bd/3 cd, B1 9/11, C2 12/16, D1 12/16, A1 14/18.
    fgr = by(rows, authority="fgr")
    assert (fgr["hops"], fgr["open_hops"]) == (5, 1)
    assert (fgr["bd_median"], fgr["bd_p90"], fgr["bd_max"]) == (12, 13.2, 14)
    assert (fgr["cd_median"], fgr["cd_p90"], fgr["cd_max"]) == (16, 17.2, 18)
    assert fgr["authority_name"] == "Fiscalía General de la República"
    # csj: A2 2/4, C3 3/5, B2 12/18, D2 14/20 (the stopped days count: the hop still held it).
    csj = by(rows, authority="csj")
    assert (csj["hops"], csj["bd_median"], csj["bd_p90"], csj["bd_max"]) == (4, 7.5, 13.4, 14)
    assert (csj["cd_median"], csj["cd_p90"], csj["cd_max"]) == (11.5, 19.4, 20)
    mjsp = by(rows, authority="mjsp")
    assert (mjsp["hops"], mjsp["open_hops"], mjsp["bd_median"]) == (0, 1, None)


def test_dwell_per_route_step_and_histogram(audited):
    data = audit(*audited[:2], countries=("SV",))
    steps = metrics.dwell_by_step(data=data)
    draft = by(steps, step="draft")
    assert (draft["hops"], draft["sla"], draft["bd_median"]) == (5, "10bd", 12)
    court = by(steps, step="court")
    assert (court["hops"], court["cd_max"]) == (4, 20)
    histogram = {
        (r["authority"], r["business_days"]): r["hops"] for r in metrics.dwell_histogram(data=data)
    }
    assert histogram == {
        ("fgr", 3): 1,
        ("fgr", 9): 1,
        ("fgr", 12): 2,
        ("fgr", 14): 1,
        ("csj", 2): 1,
        ("csj", 3): 1,
        ("csj", 12): 1,
        ("csj", 14): 1,
    }


def test_clock_stops_count_business_and_calendar_days(audited):
    rows = metrics.stops_by_authority(data=audit(*audited[:2], countries=("SV",)))
    assert rows == [
        {
            "country": "SV",
            "authority": "csj",
            "authority_name": "Corte Suprema de Justicia",
            "outside_national_control": False,
            "hops_stopped": 1,
            "stops": 1,
            "running_now": 0,
            "business_days_stopped": 2,
            "calendar_days_stopped": 4,
            "share_of_dwell": round(2 / (2 + 3 + 12 + 14), 4),
        }
    ]


def test_sla_breaches_rates_and_hops_overdue_now(audited):
    data = audit(*audited[:2], countries=("SV",))
    rows = metrics.breaches_by_authority(data=data)
    fgr = by(rows, authority="fgr")  # A1 4 late, C2 2 late, D1 2 late; B1 and C1 on time
    assert (fgr["closed_hops"], fgr["breached"], fgr["breach_rate"]) == (5, 3, 0.6)
    assert (fgr["days_late_median"], fgr["days_late_max"], fgr["overdue_now"]) == (2, 4, 0)
    csj = by(rows, authority="csj")  # B2 and D2 two days late (D2's due moved by its stop)
    assert (csj["breached"], csj["breach_rate"], csj["days_late_max"]) == (2, 0.5, 2)
    mjsp = by(rows, authority="mjsp")
    assert (mjsp["open_hops"], mjsp["overdue_now"]) == (1, 1)
    overdue = metrics.overdue_now(data=data)
    assert [(r["reference"], r["hop"], r["step"], r["days_late"]) for r in overdue] == [
        (audited[2]["A"], 3, "transmit", 6)  # due Tue 3 March, now Wed 11 March
    ]
    months = metrics.breaches_by_month(data=data)
    assert [(m["month"], m["closed_hops"], m["breached"]) for m in months] == [
        ("2026-02", 6, 3),
        ("2026-03", 3, 2),
    ]


def test_handoff_gaps_show_the_wait_on_the_requester(audited):
    rows = metrics.handoffs(data=audit(*audited[:2], countries=("SV",)))
    again = by(rows, from_step="draft", to_step="draft")
    assert (again["handoffs"], again["via_requester"]) == (1, 1)
    assert (again["gap_bd_median"], again["gap_cd_median"]) == (2, 4)  # Thu 5 -> Mon 9 Feb
    onward = by(rows, from_step="draft", to_step="court")
    assert (onward["handoffs"], onward["gap_bd_max"], onward["via_requester"]) == (4, 0, 0)
    assert by(rows, from_step="court", to_step="transmit")["handoffs"] == 1


def test_rework_counts_returns_with_their_delay_causes(audited):
    data = audit(*audited[:2], countries=("SV",))
    fgr = by(metrics.rework_by_authority(data=data), authority="fgr")
    assert (fgr["returned"], fgr["reassigned"], fgr["rework_rate"]) == (1, 0, 0.2)
    assert (fgr["repeated_hops"], fgr["repeated_business_days"]) == (1, 12)
    assert metrics.rework_by_cause(data=data) == [
        {"cause": "incomplete_request", "returned": 1, "reassigned": 0, "total": 1, "share": 1.0}
    ]
    assert metrics.returned_cases(data=data) == 1


def test_a_reassigned_hop_counts_at_the_authority_that_held_it(ledger, routings):
    refs = play(ledger, routings, [
        (at(2, 2, 9), "R", "register", {"data": sv()}),
        (at(2, 4), "R", "reassign", {"to": "mjsp", "note": "sent to the ministry by mistake"}),
        (at(2, 9), "R", "decide", {"outcome": "forwarded"}),
    ])  # fmt: skip
    data = audit(ledger, routings)
    held = [(h["authority"], h["hop"], h["business_days"]) for h in metrics.hop_dwell(data=data)]
    assert held == [("fgr", 1, 2), ("mjsp", 2, 3)]  # Mon 2 -> Wed 4, Wed 4 -> Mon 9 Feb
    fgr = by(metrics.rework_by_authority(data=data), authority="fgr")
    assert (fgr["reassigned"], fgr["rework_rate"]) == (1, 1.0)
    assert metrics.rework_by_cause(data=data)[0]["cause"] == "wrong_authority"
    # After the ministry forwarded it, the route goes on at the Court, not back to fgr.
    overdue = metrics.overdue_now(data=data)
    assert [(r["reference"], r["hop"], r["step"], r["authority"]) for r in overdue] == [
        (refs["R"], 3, "court", "csj")
    ]


def test_refusals_flag_grounds_uncac_prohibits(audited):
    rows = metrics.refusals(data=audit(*audited[:2]))
    assert [
        (r["authority"], r["ground"], r["refusals"], r["prohibited_by_uncac"]) for r in rows
    ] == [
        ("csj", "bank_secrecy", 1, True),
        ("csj", "no_dual_criminality", 1, False),
    ]
    assert metrics.summary(data=audit(*audited[:2]))["prohibited_refusals"] == 1


def test_execution_rate_counts_full_and_partial_execution(audited):
    data = audit(*audited[:2])
    us = by(metrics.execution(data=data), country="US")
    assert (us["closed_cases"], us["executed"], us["partially_executed"]) == (2, 1, 1)
    assert (us["execution_rate"], us["partial_rate"], us["executed_any_rate"]) == (0.5, 0.5, 1.0)
    sv_row = by(metrics.execution(data=data), country="SV")
    assert (sv_row["closed_cases"], sv_row["refused"], sv_row["withdrawn"]) == (3, 2, 1)
    assert sv_row["execution_rate"] == 0.0
    summary = metrics.summary(data=data)
    assert (summary["closed_cases"], summary["execution_rate"], summary["partial_rate"]) == (
        5,
        0.2,
        0.2,
    )


def test_late_entries_are_counted_per_authority(audited):
    rows = metrics.late_entries(data=audit(*audited[:2], countries=("SV",)))
    fgr = by(rows, authority="fgr")
    assert (fgr["decisions"], fgr["late_decisions"], fgr["late_share"]) == (5, 1, 0.2)
    assert (fgr["late_entries"], fgr["lag_days_median"]) == (1, 2)
    assert by(rows, authority="csj")["late_entries"] == 0


def test_delay_attribution_splits_each_late_case_over_its_late_hops(audited):
    rows = metrics.delay_attribution(data=audit(*audited[:2], countries=("SV",)))
    # B: fgr -1, csj +2 -> 1 day, all csj. D: fgr +2, csj +2 -> 4 days, 2 each.
    # C: -7 +2 -7 (withdrawn, early overall) and A (open) add nothing.
    overall = [
        (r["authority"], r["delay_business_days"], r["share"]) for r in rows if r["scope"] == "all"
    ]
    assert overall == [("csj", 3, 0.6), ("fgr", 2, 0.4)]
    scoped = [r for r in rows if r["scope"] == "outgoing mla"]
    assert [(r["rank"], r["authority"], r["share"]) for r in scoped] == [
        (1, "csj", 0.6),
        (2, "fgr", 0.4),
    ]


def test_attribute_delay_shares_net_lateness_in_proportion_to_overruns():
    case = np.array([0, 0, 0, 1, 1, 2], dtype=np.int64)
    late = np.array([3, 1, -2, -5, 4, 6], dtype=np.int64)
    eligible = np.array([True, True, True, True, True, False])
    out = attribute_delay(case=case, late_bd=late, eligible=eligible)
    # case 0: net 2 over overruns 3 and 1 -> 1.5 and 0.5; case 1 net -1: nothing; case 2 open.
    assert out.tolist() == [1.5, 0.5, 0.0, 0.0, 0.0, 0.0]


def test_statistics_count_every_dimension_and_uncac_use(audited):
    data = audit(*audited[:2], countries=("SV",))
    counts = {(r["legal_basis"], r["year"]): r["requests"] for r in metrics.statistics(data=data)}
    assert counts == {("bilateral_treaty", 2026): 1, ("uncac", 2026): 3, ("untoc", 2026): 1}
    assert metrics.uncac_usage(data=data) == [
        {
            "country": "SV",
            "direction": "outgoing",
            "year": 2026,
            "requests": 5,
            "uncac": 3,
            "uncac_share": 0.6,
        }
    ]


def test_filters_select_cases_by_country_and_registration_period(audited):
    assert len(audit(*audited[:2], countries=("US",)).cases) == 2
    march = audit(*audited[:2], since=date(2026, 3, 1))
    assert march.cases.reference == [audited[2]["G"]]
    assert len(audit(*audited[:2], until=date(2026, 3, 8)).cases) == 6
    assert len(audit(*audited[:2], kinds=("extradition",)).cases) == 0
    assert len(audit(*audited[:2], counterparts=("ES",), directions=("outgoing",)).cases) == 7


def _register_many(ledger, routings, year, rows):
    script: Script = []
    for n, (changes, count) in enumerate(rows):
        for k in range(count):
            when = datetime(year, 3, 2 + n, 15, k, tzinfo=UTC)
            script.append((when, f"{year}-{n}-{k}", "register", {"data": sv(**changes)}))
    play(ledger, routings, script)


def test_statistics_reproduce_seed_hand_counts(ledger, routings):
    # Italy 2018: 19 new UNCAC procedures, 10 issued by Italy, 9 by foreign authorities
    # (CAC/COSP/2019/7 para 67); one UNTOC request and a 2017 request must not be counted.
    italy = {"country": "IT", "offence_date": "2016-01-10", "counterpart": "AL"}
    incoming = {**italy, "direction": "incoming"}
    _register_many(
        ledger, routings, 2018, [(italy, 10), (incoming, 9), ({**italy, "legal_basis": "untoc"}, 1)]
    )
    _register_many(ledger, routings, 2017, [(italy, 1)])
    # Algeria-like, 2016: 10 MLA requests sent, 4 on UNCAC, 1 on UNTOC, 5 bilateral (para 63).
    sent = {"offence_date": "2014-01-10", "counterpart": "FR"}
    _register_many(
        ledger,
        routings,
        2016,
        [
            (sent, 4),
            ({**sent, "legal_basis": "untoc"}, 1),
            ({**sent, "legal_basis": "bilateral_treaty"}, 5),
        ],
    )
    with ledger.session() as session:
        data = load_audit(
            session=session,
            routings=routings,
            filters=Filters(),
            now=datetime(2019, 1, 1, tzinfo=UTC),
        )
    counts = {
        (r["country"], r["direction"], r["legal_basis"], r["year"]): r["requests"]
        for r in metrics.statistics(data=data)
    }
    assert counts == {
        ("IT", "outgoing", "uncac", 2018): 10,
        ("IT", "incoming", "uncac", 2018): 9,
        ("IT", "outgoing", "untoc", 2018): 1,
        ("IT", "outgoing", "uncac", 2017): 1,
        ("SV", "outgoing", "uncac", 2016): 4,
        ("SV", "outgoing", "untoc", 2016): 1,
        ("SV", "outgoing", "bilateral_treaty", 2016): 5,
    }
    uncac = {
        (r["country"], r["direction"], r["year"]): (r["uncac"], r["requests"])
        for r in metrics.uncac_usage(data=data)
    }
    assert uncac[("IT", "outgoing", 2018)] == (10, 11)
    assert uncac[("IT", "incoming", 2018)] == (9, 9)
    assert uncac[("SV", "outgoing", 2016)] == (4, 10)


def test_chain_lists_route_steps_with_observed_medians(audited):
    rows = metrics.chains(data=audit(*audited[:2], countries=("SV",)))
    assert [(r["position"], r["step"], r["authority"], r["conditional"]) for r in rows] == [
        (1, "draft", "fgr", False),
        (2, "constitutional-review", "csj", True),
        (3, "court", "csj", False),
        (4, "transmit", "mjsp", False),
        (5, "diplomatic-channel", "rree", False),
        (6, "execution-abroad", "abroad", False),
    ]
    assert [r["bd_median"] for r in rows[:4]] == [12, None, 7.5, None]


def test_an_empty_ledger_gives_empty_tables(ledger, routings):
    data = audit(ledger, routings)
    assert metrics.dwell_by_authority(data=data) == []
    assert metrics.delay_attribution(data=data) == []
    assert metrics.breaches_by_month(data=data) == []
    assert metrics.summary(data=data)["cases"] == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 400)), min_size=1, max_size=60))
def test_group_stats_match_numpy_percentiles(pairs):
    groups = np.array([g for g, _ in pairs], dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.int64)
    stats = group_stats(values=values, groups=groups, n_groups=4)
    for g in range(4):
        mine = values[groups == g]
        assert stats["count"][g] == mine.size
        if mine.size:
            assert stats["q0.5"][g] == pytest.approx(np.percentile(mine, 50))
            assert stats["q0.9"][g] == pytest.approx(np.percentile(mine, 90))
            assert stats["max"][g] == mine.max()
        else:
            assert np.isnan(stats["q0.5"][g])


def test_hop_times_agree_with_the_timeline_view(audited):
    from models.queries import timeline

    ledger, routings, refs = audited
    data = audit(ledger, routings)
    dwell = {(r["reference"], r["hop"]): r for r in metrics.hop_dwell(data=data)}
    with ledger.session() as session:
        for ref in refs.values():
            view = timeline(
                session=session, routing=routings.current[ref[:2]], reference=ref, now=NOW
            )
            for h in view.hops:
                if h.closed_at is None:
                    continue
                mine = dwell[(ref, h.hop)]
                assert (mine["business_days"], mine["calendar_days"]) == (
                    h.business_days,
                    h.calendar_days,
                )
                assert mine["elapsed_s"] == int((h.closed_at - h.opened_at) / timedelta(seconds=1))


# -- hops outside national control, ranking, local time ----------------------------------------


def abroad_script() -> Script:
    """Three outgoing Salvadoran cases that reach the requested state on Friday 6 February."""
    script: Script = []
    for label, state in (("es1", "ES"), ("es2", "ES"), ("fr", "FR")):
        script.append((at(2, 2, 9), label, "register", {"data": sv(counterpart=state)}))
        script += [(at(2, day), label, "decide", {"outcome": "forwarded"}) for day in (3, 4, 5, 6)]
    return script


def test_foreign_hops_are_told_apart_per_counterpart(ledger, routings):
    play(ledger, routings, [
        *abroad_script(),
        (at(2, 20), "es1", "decide", {"outcome": "executed"}),  # 14 days abroad
        (at(6, 10), "es2", "decide", {"outcome": "executed"}),  # 124 days: past the 90d SLA
    ])  # fmt: skip
    with ledger.session() as session:
        data = load_audit(session=session, routings=routings, filters=Filters(), now=at(7, 1))
    held = metrics.outside_national_control(data)
    assert {data.hops.holder.label(int(i)) for i in np.flatnonzero(held)} == {"abroad"}
    assert int(held.sum()) == 3
    rows = metrics.foreign_by_counterpart(data=data, min_to_rank=2)
    assert rows == [
        {
            "rank": 1,
            "counterpart": "ES",
            "closed_hops": 2,
            "cd_median": 69,
            "cd_p90": 113,
            "cd_max": 124,
            "over_sla": 1,
            "over_sla_share": 0.5,
            "open_hops": 0,
            "overdue_now": 0,
        },
        {
            "rank": None,  # still held in France, past its due instant: nothing closed to rank
            "counterpart": "FR",
            "closed_hops": 0,
            "cd_median": None,
            "cd_p90": None,
            "cd_max": None,
            "over_sla": 0,
            "over_sla_share": None,
            "open_hops": 1,
            "overdue_now": 1,
        },
    ]
    # Where the foreign state stands among the authorities, it is marked as not national.
    marked = {
        r["authority"]: r["outside_national_control"]
        for table in (metrics.dwell_by_authority, metrics.breaches_by_authority)
        for r in table(data=data)
    }
    assert marked == {"fgr": False, "csj": False, "mjsp": False, "rree": False, "abroad": True}
    (overdue,) = metrics.overdue_now(data=data)
    assert (overdue["authority"], overdue["outside_national_control"]) == ("abroad", True)


def test_a_rate_is_ranked_only_over_enough_observations(audited):
    data = audit(*audited[:2], countries=("SV",))
    assert metrics.MIN_TO_RANK == 20
    # fgr closed 5 hops, csj 4, mjsp none: with the default none is ranked.
    for table in (metrics.breaches_by_authority, metrics.rework_by_authority):
        rows = table(data=data)
        assert [r["rank"] for r in rows] == [None] * len(rows)
        assert [r["authority"] for r in rows] == sorted(r["authority"] for r in rows)
    rows = metrics.breaches_by_authority(data=data, min_to_rank=5)
    assert [(r["authority"], r["rank"], r["breach_rate"]) for r in rows] == [
        ("fgr", 1, 0.6),
        ("csj", None, 0.5),  # too few to rank, however high its rate
        ("mjsp", None, None),
    ]
    rows = metrics.late_entries(data=data, min_to_rank=5)
    assert (rows[0]["authority"], rows[0]["rank"]) == ("fgr", 1)
    assert metrics.summary(data=data)["min_to_rank"] == 20


def test_rank_by_rate_puts_a_small_group_with_a_high_rate_apart():
    rows = [
        {"name": "small", "rate": 1.0, "n": 3},
        {"name": "big", "rate": 0.1, "n": 40},
        {"name": "bigger", "rate": 0.3, "n": 50},
    ]
    ranked = metrics.rank_by_rate(
        rows,
        rate="rate",
        observed="n",
        min_count=20,
        tie=lambda r: r["name"],
        order=lambda r: r["name"],
    )
    assert [(r["name"], r["rank"]) for r in ranked] == [
        ("bigger", 1),
        ("big", 2),
        ("small", None),
    ]


def test_overdue_hops_give_their_due_instant_in_the_holders_local_time(ledger, routings):
    us = sv(country="US", requesting_authority="US Attorney", conducting_authority="FBI")
    play(ledger, routings, [
        (at(2, 2, 9), "S", "register", {"data": sv()}),
        (at(2, 2, 14), "U", "register", {"data": us}),
    ])  # fmt: skip
    data = audit(ledger, routings)
    rows = {r["country"]: r for r in metrics.overdue_now(data=data)}
    for country, zone, offset in (
        ("SV", "America/El_Salvador", timedelta(hours=-6)),
        ("US", "America/New_York", timedelta(hours=-5)),  # standard time on the due day
    ):
        row = rows[country]
        local = datetime.fromisoformat(row["due_local"])
        assert row["timezone"] == zone
        assert local.utcoffset() == offset
        assert local == datetime.fromisoformat(row["due_at"])
        assert datetime.fromisoformat(row["due_at"]).utcoffset() == timedelta(0)

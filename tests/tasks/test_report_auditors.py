"""What auditors stumbled on in the HTML report: a table of contents, how each section is
computed, hops held abroad apart from national authorities, prescribed cases apart from those at
risk, rates ranked only over enough hops, local times, and kind and direction of execution."""

from __future__ import annotations

import json
import re
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from audit_scenario import NOW, at, play, sv, sv_script, us_script

from models.engine import Routings
from models.ledger import Ledger
from models.metrics import MIN_TO_RANK, Filters
from tasks.report import build_report, render_html, render_json

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())


@pytest.fixture
def played(ledger: Ledger, routings: Routings) -> tuple[Ledger, Routings, dict[str, str]]:
    return ledger, routings, play(ledger, routings, sv_script() + us_script())


def report_of(ledger: Ledger, routings: Routings, now: datetime = NOW) -> dict[str, Any]:
    with ledger.session() as session:
        return build_report(session=session, routings=routings, filters=Filters(), now=now)


def sections(page: str) -> dict[str, str]:
    """Each section's HTML (its heading included) by anchor."""
    found = {}
    for chunk in page.split("<h2 id='")[1:]:
        anchor = chunk.split("'", 1)[0]
        found[anchor] = chunk.split("</body>", 1)[0]
    return found


def table_rows(html: str) -> list[list[str]]:
    """The cells of each body row of the tables in `html`."""
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", html)]
    return [cells for cells in rows if cells]


def test_contents_link_to_every_section(played):
    page = render_html(report_of(*played[:2]))
    anchors = re.findall(r"<h2 id='([^']+)'>", page)
    links = re.findall(r"<a href='#([^']+)'>", page)
    assert links == anchors and len(anchors) >= 12
    assert page.index("<nav aria-label='Contents'>") < page.index("<h2 id=")


def test_every_section_heading_says_how_it_is_computed(played):
    page = render_html(report_of(*played[:2]))
    headings = re.findall(r"<h2 id='[^']+'>[^<]*</h2>\n<p class='how'>([^<]+)</p>", page)
    assert len(headings) == page.count("<h2 ")
    for sentence in headings:
        assert len(sentence) > 60 and sentence.endswith(".")
    text = {anchor: unescape(html) for anchor, html in sections(page).items()}
    assert "business days on the holder's calendar" in text["dwell"]
    assert "decided after its due instant" in text["deadlines"]


def test_hops_held_abroad_are_shown_per_state_outside_national_control(played):
    report = report_of(*played[:2])
    # E and F (US, outgoing to Spain) were executed abroad two days after they left.
    assert report["tables"]["foreign_by_counterpart"] == [
        {
            "rank": None,
            "counterpart": "ES",
            "closed_hops": 2,
            "cd_median": 2,
            "cd_p90": 2,
            "cd_max": 2,
            "over_sla": 0,
            "over_sla_share": 0.0,
            "open_hops": 0,
            "overdue_now": 0,
        }
    ]
    page = render_html(report)
    dwell = sections(page)["dwell"]
    assert "Requested or requesting state (outside national control)</td><td class=''>US" in dwell
    assert "Fiscalía General de la República</td>" in dwell
    abroad = sections(page)["abroad"]
    assert "outside national control" in abroad.split("</h2>")[0]
    assert ["ES", "2", "2", "2", "2", "0", "0%", "0", "0"] in table_rows(abroad)
    assert f"Too few to rank</b> (fewer than {MIN_TO_RANK} closed hops)" in abroad


def test_rates_are_ranked_only_over_enough_hops_and_the_threshold_is_stated(played):
    report = report_of(*played[:2])
    assert report["summary"]["min_to_rank"] == MIN_TO_RANK == 20
    # No authority of this small caseload closed 20 hops: no ranking, no "missed its deadline".
    assert all(r["rank"] is None for r in report["tables"]["breaches_by_authority"])
    assert not any("missed its deadline" in h for h in report["headlines"])
    deadlines = sections(render_html(report))["deadlines"]
    assert "No row has at least 20 closed hops yet: none is ranked." in deadlines
    assert "Too few to rank</b> (fewer than 20 closed hops)" in deadlines


def test_due_instants_are_shown_in_the_holders_local_time(played):
    report = report_of(*played[:2])
    (row,) = report["tables"]["overdue_now"]
    local = datetime.fromisoformat(row["due_local"])
    assert local == datetime.fromisoformat(row["due_at"])
    shown = f"{local:%Y-%m-%d %H:%M} America/El_Salvador (UTC-06:00)"
    page = render_html(report)
    overdue = sections(page)["deadlines"].split("<h3>Overdue now</h3>")[1]
    assert shown in overdue
    assert row["due_at"] not in page
    assert "Ledger as of 2026-03-11 15:00 UTC" in page


def test_execution_table_has_kind_and_direction(played):
    execution = sections(render_html(report_of(*played[:2])))["execution"]
    assert "<th>Kind</th><th>Direction</th>" in execution
    assert ["SV", "mla-outgoing", "MLA", "outgoing", "3", "0", "0", "2", "1", "0%", "0%"] in (
        table_rows(execution)
    )


def test_already_prescribed_is_counted_and_listed_apart_from_likely(ledger, routings):
    feb2 = at(2, 2, 9)
    refs = play(ledger, routings, [
        (feb2, "past", "register", {"data": sv(offence_date="2011-03-01")}),
        (feb2, "soon", "register", {"data": sv(offence_date="2011-03-20")}),
        (feb2, "later", "register", {"data": sv(offence_date="2020-06-01")}),
    ])  # fmt: skip
    report = report_of(ledger, routings)
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(render_json(report)))
    summary = report["summary"]
    assert (summary["already_prescribed"], summary["likely_to_prescribe"]) == (1, 1)
    assert (
        f"1 open case has already prescribed; the oldest is {refs['past']}."
        in (report["headlines"])
    )
    assert any(h.startswith("1 open case will probably prescribe") for h in report["headlines"])
    page = render_html(report)
    assert "<div class='figure'><b>1</b>Already prescribed</div>" in page
    assert "<div class='figure'><b>1</b>Likely to prescribe</div>" in page
    prescribed, at_risk = sections(page)["prescription"].split("<h3>At risk")
    assert refs["past"] in prescribed and refs["soon"] not in prescribed
    assert refs["past"] not in at_risk and refs["soon"] in at_risk and refs["later"] in at_risk
    assert [r[4] for r in table_rows(prescribed)] == ["10"]  # 1 March to 11 March

"""The audit report: JSON valid against docs/report-schema.json, one self-contained HTML page with
inline SVG charts, one CSV per table, plain-language headlines, and the `rogatory report` command.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from audit_scenario import NOW, at, play, sv, sv_script, us_script

from app.cli import main
from models.engine import Routings
from models.ledger import Ledger
from models.metrics import Filters
from tasks.report import TABLES, build_report, render_html, render_json, write_csv

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.fixture
def played(ledger: Ledger, routings: Routings) -> tuple[Ledger, Routings, dict[str, str]]:
    return ledger, routings, play(ledger, routings, sv_script() + us_script())


def report_of(ledger: Ledger, routings: Routings, **filters: Any) -> dict[str, Any]:
    with ledger.session() as session:
        return build_report(session=session, routings=routings, filters=Filters(**filters), now=NOW)


def test_json_report_validates_against_the_documented_schema(played):
    report = json.loads(render_json(report_of(*played[:2])))
    validator().validate(report)
    assert set(SCHEMA["properties"]["tables"]["properties"]) == set(TABLES) == set(report["tables"])
    assert report["summary"]["cases"] == 7
    assert report["tables"]["overdue_now"][0]["reference"] == played[2]["A"]


def test_schema_refuses_a_report_that_drifts_from_it(played):
    report = json.loads(render_json(report_of(*played[:2])))
    missing = copy.deepcopy(report)
    del missing["tables"]["risk_register"]
    extra = copy.deepcopy(report)
    extra["tables"]["dwell_by_authority"][0]["colour"] = "red"
    wrong = copy.deepcopy(report)
    wrong["tables"]["refusals"][0]["prohibited_by_uncac"] = "yes"
    for broken in (missing, extra, wrong):
        assert list(validator().iter_errors(broken))


def test_a_filter_that_matches_nothing_still_gives_a_valid_report(played):
    report = report_of(*played[:2], countries=("KE",))
    validator().validate(json.loads(render_json(report)))
    assert report["headlines"] == ["No case matches this report's filters."]
    assert all(rows == [] for rows in report["tables"].values())


def test_headlines_say_where_delay_builds_up_in_plain_words(played):
    headlines = report_of(*played[:2])["headlines"]
    assert headlines[0] == (
        "Corte Suprema de Justicia (SV) accounts for 60% of total delay in outgoing MLA "
        "(3 of 5 business days late, in closed cases)."
    )
    assert "1 hop is overdue now, at Ministerio de Justicia y Seguridad Pública (SV)." in headlines
    assert (
        "1 refusal rested on grounds UNCAC forbids (bank secrecy, art. 46(8); fiscal offence, "
        "art. 46(22))." in headlines
    )
    assert "UNCAC was the legal basis of 5 of 7 requests (71%)." in headlines


def test_html_is_one_self_contained_page_with_inline_svg_charts(played):
    report = report_of(*played[:2])
    page = render_html(report)
    for outside in ("<script", "src=", "@import", "url(", "http://", "https://"):
        assert outside not in page, outside
    links = re.findall(r"href='([^']*)'", page)
    assert links and all(link.startswith("#") for link in links)  # the contents, in the page
    charts = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    labels = [ET.fromstring(svg).get("aria-label") for svg in charts]  # each is well-formed
    assert labels[:3] == ["Delay attribution", "Dwell time per authority", "Chain of mla-outgoing"]
    assert "Breach trend by month" in labels
    assert "Corte Suprema de Justicia (SV) accounts for 60% of total delay" in page
    assert played[2]["A"] in page  # overdue now and in the risk register
    assert page.count("<h2 id=") >= 10


def test_csv_writes_one_file_per_table(played, tmp_path):
    report = report_of(*played[:2])
    written = write_csv(report, tmp_path)
    assert {p.stem for p in written} == {*TABLES, "summary", "headlines"}
    for name in TABLES:
        with (tmp_path / f"{name}.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == len(report["tables"][name]), name
    with (tmp_path / "delay_attribution.csv").open(newline="", encoding="utf-8") as f:
        first = next(csv.DictReader(f))
    assert (first["authority"], first["share"], first["delay_business_days"]) == ("csj", "0.6", "3")
    with (tmp_path / "risk_register.csv").open(newline="", encoding="utf-8") as f:
        risk = next(r for r in csv.DictReader(f) if r["reference"] == played[2]["A"])
    assert risk["remaining"].startswith("transmit @ mjsp; diplomatic-channel @ rree")
    assert "registered: 2039-05-10" in risk["prescription_history"]


def test_outputs_name_no_persons_and_no_facts_of_cases(ledger, routings, tmp_path):
    secret = {
        "persons": ["Ana Example"],
        "subject": "secret subject of the investigation",
        "facts_summary": "secret summary of the facts",
        "assistance_sought": "secret measures sought",
        "purpose": "secret purpose",
    }
    play(ledger, routings, [
        (at(2, 2, 14), "X", "register",
         {"data": sv(country="US", kind="extradition", requesting_authority="US Attorney",
                     conducting_authority="FBI", **secret)}),
        (at(2, 3), "X", "decide", {"outcome": "forwarded"}),
    ])  # fmt: skip
    report = report_of(ledger, routings)
    write_csv(report, tmp_path)
    texts = [render_json(report), render_html(report)]
    texts += [p.read_text(encoding="utf-8") for p in tmp_path.glob("*.csv")]
    assert report["summary"]["cases"] == 1
    for text in texts:
        for value in ["Ana Example", *(v for v in secret.values() if isinstance(v, str))]:
            assert value not in text


def test_report_command_writes_each_format(played, database_url, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ROGATORY_DATABASE_URL", database_url)
    common = ["--country", "sv,us", "--as-of", "2026-03-11T15:00:00Z"]
    assert main(["report", "--format", "json", "--out", str(tmp_path / "j"), *common]) == 0
    report = json.loads((tmp_path / "j" / "report.json").read_text(encoding="utf-8"))
    validator().validate(report)
    assert report["filters"]["countries"] == ["SV", "US"]
    assert report["as_of"] == NOW.isoformat()
    assert main(["report", "--out", str(tmp_path / "h"), "--direction", "outgoing"]) == 0
    assert (tmp_path / "h" / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE")
    assert main(["report", "--format", "csv", "--out", str(tmp_path / "c"), *common]) == 0
    assert len(list((tmp_path / "c").glob("*.csv"))) == len(TABLES) + 2
    out = capsys.readouterr().out
    assert "accounts for 60% of total delay in outgoing MLA" in out
    assert f"wrote {tmp_path / 'c' / 'risk_register.csv'}" in out

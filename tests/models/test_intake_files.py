"""Hostile request files are refused quickly, with short located messages, and write nothing.

Request files come from clerks' desks and other states' e-mails: they get the same hardened
reader as the country files (no aliases, YAML 1.2 scalars, size, depth and node limits, JSON
read the same way) and every field has a cap.
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import engine
from models.errors import IntakeError
from models.intake import MAX_REQUEST_BYTES, RequestIntake, read_request
from models.ledger import Event, Ledger, Request
from tests.samples import intake

TODAY = date(2026, 3, 2)
SAMPLE_YAML = "\n".join(f"{k}: {json.dumps(v)}" for k, v in intake().items()) + "\n"


def _refusal(path: Path) -> str:
    started = time.monotonic()
    with pytest.raises(IntakeError) as info:
        read_request(path)
    assert time.monotonic() - started < 5, "a hostile file must be refused at once"
    text = str(info.value)
    assert "Traceback" not in text and len(text) < 1000, text
    return text


def test_an_alias_bomb_is_refused_at_its_first_anchor(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in "bcdefghi":
        prev = chr(ord(n) - 1)
        lines.append(f"{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    path = tmp_path / "bomb.yaml"
    path.write_text(SAMPLE_YAML + "\n".join(lines) + "\n")
    assert path.stat().st_size < 1000
    text = _refusal(path)
    line = SAMPLE_YAML.count("\n") + 1
    assert f"bomb.yaml:{line}:4: YAML anchors and aliases" in text


def test_nesting_a_hundred_thousand_deep_is_refused_without_a_recursion_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("persons: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "nested deeper than" in _refusal(path)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(SAMPLE_YAML + "notes: " + "x" * MAX_REQUEST_BYTES + "\n")
    assert f"over the {MAX_REQUEST_BYTES}-byte limit" in _refusal(path)


def test_json_files_get_the_same_limits_and_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "request.json"
    path.write_text('{"country": "SV",\n "country": "GT"}')
    assert "request.json:2:2: country: duplicate key 'country' (first at line 1)" in _refusal(path)
    path.write_text(json.dumps(intake(counterpart="NO"), indent=1))
    assert read_request(path)["counterpart"] == "NO"


def test_norway_is_a_country_not_a_boolean(tmp_path: Path) -> None:
    path = tmp_path / "request.yaml"
    path.write_text(SAMPLE_YAML.replace('counterpart: "ES"', "counterpart: NO"))
    data = read_request(path)
    assert data["counterpart"] == "NO"
    assert RequestIntake.check(data, today=TODAY, countries={"SV"}).counterpart == "NO"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"offence_date": 0}, "offence_date: 0: Value error, write the date as YYYY-MM-DD"),
        ({"offence_date": 20240510}, "write the date as YYYY-MM-DD"),
        ({"offence_date": "1850-01-01"}, "offence_date: 1850-01-01 is before 1900"),
        ({"urgent": "yes"}, "urgent: 'yes': Input should be a valid boolean"),
        ({"facts_summary": "x" * 10_000_000}, "facts_summary: 'xxxxx"),
        ({"persons": ["someone"] * 1000}, "persons: List should have at most 100 items"),
    ],
)
def test_implausible_or_oversized_fields_are_refused_in_a_short_message(
    change: dict[str, object], expected: str
) -> None:
    with pytest.raises(IntakeError) as info:
        RequestIntake.check(intake(**change), today=TODAY, countries={"SV"})
    text = str(info.value)
    assert expected in text
    assert len(text) < 600, f"the message echoes the value back ({len(text)} characters)"


def test_a_huge_field_is_named_with_its_size_not_echoed() -> None:
    with pytest.raises(IntakeError) as info:
        RequestIntake.check(intake(facts_summary="x" * 10_000_000), today=TODAY, countries={"SV"})
    assert "(10,000,000 characters)" in str(info.value)


def test_a_refused_request_writes_nothing(ledger: Ledger, routings, clock) -> None:
    for bad in (intake(offence_date=0), intake(facts_summary="x" * 30_000)):
        with pytest.raises(IntakeError), ledger.transaction() as session:
            engine.register(session=session, clock=clock, routings=routings, data=bad)
    with ledger.session() as session:
        assert session.scalar(select(func.count()).select_from(Request)) == 0
        assert session.scalar(select(func.count()).select_from(Event)) == 0


def test_registering_an_already_prescribed_offence_warns(ledger: Ledger, routings, clock) -> None:
    with ledger.transaction() as session:
        result = engine.register(
            session=session, clock=clock, routings=routings, data=intake(offence_date="1990-05-10")
        )
    assert result.warnings and "already prescribed on" in result.warnings[0]
    assert "\nwarning: the offence already prescribed" in result.message

"""`rogatory simulate`, run in-process against a fresh SQLite ledger."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.cli import main
from models.ledger import Ledger, Request


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'simulation.db'}"


def cases(url: str) -> list[tuple[str, str]]:
    ledger = Ledger(url, migrate=True)
    try:
        with ledger.session() as session:
            rows = session.execute(
                select(Request.reference, Request.country).order_by(Request.id)
            ).all()
    finally:
        ledger.dispose()
    return [(r, c) for r, c in rows]


def test_simulate_fills_the_ledger_and_prints_the_seed_figures(url, capsys):
    argv = ["simulate", "--years", "1", "--per-year", "60", "--seed", "5", "--database", url]
    assert main([*argv, "--countries", "sv,ru", "--start", "2020-01-01"]) == 0
    out = capsys.readouterr().out
    assert "60 cases from 2020-01-01 to 2021-01-01 in RU, SV (seed 5)" in out
    assert "transitions in" in out and "(seed 55/61)" in out
    found = cases(url)
    assert len(found) == 60
    assert {country for _, country in found} == {"RU", "SV"}
    assert all(ref.startswith(("RU-2020-", "SV-2020-")) for ref, _ in found)


def test_simulate_refuses_a_ledger_with_cases_unless_told_to_append(url, capsys):
    argv = ["simulate", "--per-year", "20", "--database", url, "--countries", "SV"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 1
    assert "already holds 20 cases" in capsys.readouterr().err
    assert len(cases(url)) == 20
    assert main([*argv, "--append", "--seed", "2"]) == 0
    assert len(cases(url)) == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--years", "0"], "must be at least 1"),
        (["--per-year", "many"], "'many' is not a whole number"),
        (["--start", "2020-13-01"], "is not a date"),
        (["--countries", ","], "give at least one country code"),
    ],
)
def test_simulate_refuses_bad_arguments(url, capsys, args, message):
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--database", url, *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_simulate_names_an_unknown_country(url, capsys):
    assert main(["simulate", "--per-year", "5", "--database", url, "--countries", "ZZ"]) == 1
    assert "no routing for ZZ" in capsys.readouterr().err

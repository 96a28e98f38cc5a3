"""Safe outputs of `rogatory report` and `rogatory export-log`: a bad --out ends in one line
`error: ...` (exit 1, no traceback), a symbolic link planted in the target is never written
through, files appear whole or not at all, and names from country files reach the terminal
with their control characters escaped.

The commands run in this process against a SQLite ledger holding the audit scenario's
Salvadoran cases; the output paths are what varies.
"""

from __future__ import annotations

import argparse
import csv
import errno
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from audit_scenario import play, sv_script

from app.cli import emit, main
from models.engine import Routings
from models.ledger import Ledger
from models.loader import load_all
from tasks.export import output_file

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2026-03-11T15:00:00Z"  # the audit scenario's NOW
EVIL_NAME = '=HYPERLINK("http://evil.example")\x1b[31m'


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def ledger_with_cases(folder: Path, routings: Routings) -> str:
    """A fresh SQLite ledger under `folder` holding the Salvadoran cases; its URL."""
    url = f"sqlite:///{folder / 'ledger.db'}"
    ledger = Ledger(url, migrate=True)
    try:
        play(ledger, routings, sv_script())
    finally:
        ledger.dispose()
    return url


@pytest.fixture
def rogatory(
    tmp_path: Path, routings: Routings, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> Callable[..., Ran]:
    """`rogatory ...` in this process, over a ledger with cases."""
    monkeypatch.setenv("ROGATORY_DATABASE_URL", ledger_with_cases(tmp_path, routings))
    monkeypatch.delenv("ROGATORY_CLOCK", raising=False)

    def run(*argv: str) -> Ran:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def assert_one_line_error(ran: Ran, path: Path, *words: str) -> None:
    assert ran.code == 1, ran
    assert ran.err.startswith("error: ") and ran.err.count("\n") == 1, ran.err
    assert "Traceback" not in ran.err
    assert str(path) in ran.err
    for word in words:
        assert word in ran.err, ran.err


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[Path]:
    """A file outside every output folder that a planted link points at; it must not change."""
    path = tmp_path / "victim.txt"
    path.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    yield path
    assert path.read_text(encoding="utf-8") == "root:x:0:0:root:/root:/bin/bash\n"


# -- symbolic links --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("html", "report.html"), ("json", "report.json"), ("csv", "risk_register.csv")],
)
def test_report_refuses_to_write_through_a_link_planted_in_the_out_folder(
    rogatory, tmp_path, victim, fmt, name
):
    out = tmp_path / "reports"
    out.mkdir()
    (out / name).symlink_to(victim)
    ran = rogatory("report", "--format", fmt, "--out", str(out), "--as-of", AS_OF)
    assert_one_line_error(ran, out / name, "symbolic link", "remove the link")
    assert (out / name).is_symlink()
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("fmt", ["xes", "csv"])
def test_export_log_refuses_a_file_that_is_a_link(rogatory, tmp_path, victim, fmt):
    out = tmp_path / f"events.{fmt}"
    out.symlink_to(victim)
    ran = rogatory("export-log", "--format", fmt, "--out", str(out))
    assert_one_line_error(ran, out, "symbolic link")
    assert out.is_symlink()


def test_a_link_planted_while_the_file_is_written_is_replaced_not_followed(tmp_path, victim):
    path = tmp_path / "report.html"
    with output_file(path) as stream:
        stream.write("<!DOCTYPE html>")
        path.symlink_to(victim)
    assert not path.is_symlink()
    assert path.read_text(encoding="utf-8") == "<!DOCTYPE html>"


# -- bad --out paths -------------------------------------------------------------------------


def test_report_into_an_existing_file_says_a_folder_is_needed(rogatory, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("not a folder", encoding="utf-8")
    ran = rogatory("report", "--out", str(out), "--as-of", AS_OF)
    assert_one_line_error(ran, out, "is not a folder", "name a folder")
    assert out.read_text(encoding="utf-8") == "not a folder"


def test_export_log_onto_an_existing_folder_says_a_file_is_needed(rogatory, tmp_path):
    out = tmp_path / "logs"
    out.mkdir()
    ran = rogatory("export-log", "--out", str(out))
    assert_one_line_error(ran, out, "is a folder", "name a file")


@pytest.mark.parametrize(
    ("command", "below"),
    [("report", "reports"), ("export-log", "events.xes"), ("export-log", "more/events.xes")],
)
def test_a_path_through_a_file_is_refused_with_a_message(rogatory, tmp_path, command, below):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    ran = rogatory(command, "--out", str(blocker / below))
    assert_one_line_error(ran, blocker, "not a folder")


@pytest.mark.parametrize(("command", "name"), [("report", "r"), ("export-log", "e.xes")])
def test_a_name_too_long_for_the_file_system_is_refused_with_a_message(
    rogatory, tmp_path, command, name
):
    out = tmp_path / (name * 300)
    ran = rogatory(command, "--out", str(out))
    assert_one_line_error(ran, out, "too long", "choose a shorter one")


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EACCES, ("permission denied", "ask for access")),
        (errno.EROFS, ("read-only", "writable")),
        (errno.ENOSPC, ("no space", "free some")),
    ],
)
@pytest.mark.parametrize(("command", "name"), [("report", "report.html"), ("export-log", "e.xes")])
def test_a_file_system_that_refuses_the_file_gives_a_message(
    rogatory, tmp_path, monkeypatch, code, words, command, name
):
    # Running as root (as CI containers do) bypasses permissions and no read-only mount is at
    # hand, so the file system's refusal is made at the one call that creates the file.
    out = tmp_path / "out"
    out.mkdir()
    real_open = os.open

    def refusing_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if Path(path).parent == out:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    target = out / name
    ran = rogatory(command, "--out", str(target if command == "export-log" else out))
    assert_one_line_error(ran, target, *words)
    assert list(out.iterdir()) == []


# -- atomic replacement ------------------------------------------------------------------------


def test_a_failed_write_leaves_the_previous_report_whole(rogatory, tmp_path, monkeypatch):
    out = tmp_path / "reports"
    assert rogatory("report", "--format", "json", "--out", str(out), "--as-of", AS_OF).code == 0
    before = (out / "report.json").read_text(encoding="utf-8")

    def disk_full(_descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    ran = rogatory("report", "--format", "json", "--out", str(out), "--as-of", "2026-04-01")
    assert_one_line_error(ran, out / "report.json", "no space")
    assert (out / "report.json").read_text(encoding="utf-8") == before
    assert [p.name for p in out.iterdir()] == ["report.json"]


def test_a_second_report_replaces_the_first_private_to_its_owner(rogatory, tmp_path):
    out = tmp_path / "reports"
    for as_of in (AS_OF, "2026-04-01T00:00:00Z"):
        assert rogatory("report", "--format", "json", "--out", str(out), "--as-of", as_of).code == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["as_of"].startswith("2026-04-01")
    assert [p.name for p in out.iterdir()] == ["report.json"]
    assert stat.S_IMODE((out / "report.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


# -- names from hostile country files ----------------------------------------------------------


def test_human_output_escapes_control_characters_and_json_keeps_them_exact(capsys):
    name = "Corte \x1b[31mSuprema\x07\r\x9b2J"
    emit(argparse.Namespace(json=False), {"name": name}, f"holder: {name}\n\tnext line")
    assert (
        capsys.readouterr().out == "holder: Corte \\x1b[31mSuprema\\x07\\x0d\\x9b2J\n\tnext line\n"
    )
    emit(argparse.Namespace(json=True), {"name": name}, "")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert json.loads(out) == {"name": name}


def test_a_hostile_authority_name_is_neutralised_in_csv_and_escaped_on_the_terminal(
    tmp_path, monkeypatch, capsys
):
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    country = config / "countries" / "sv.yaml"
    text = country.read_text(encoding="utf-8")
    hostile = '{name: "=HYPERLINK(\\"http://evil.example\\")\\e[31m", kind: judiciary}'
    country.write_text(
        text.replace("{name: Corte Suprema de Justicia, kind: judiciary}", hostile),
        encoding="utf-8",
    )
    routings = Routings(load_all(config))
    assert routings.current["SV"].config.authorities["csj"].name == EVIL_NAME
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(config))
    monkeypatch.setenv("ROGATORY_DATABASE_URL", ledger_with_cases(tmp_path, routings))
    out = tmp_path / "reports"
    capsys.readouterr()
    assert main(["report", "--format", "csv", "--out", str(out), "--as-of", AS_OF]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed
    assert '=HYPERLINK("http://evil.example")\\x1b[31m (SV) accounts for 60%' in printed
    with (out / "delay_attribution.csv").open(newline="", encoding="utf-8") as f:
        first = next(csv.DictReader(f))
    assert (first["authority_name"], first["delay_business_days"]) == ("'" + EVIL_NAME, "3")
    for path in out.glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in row), row

"""Holiday tables kept on disk between processes: the same table, without importing `holidays`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PROBE = (
    "import sys; from models.calendar import _holiday_names; "
    "names = _holiday_names('SV', None, 2025, 2027); "
    "print('holidays' in sys.modules, len(names), names[__import__('datetime').date(2026, 9, 15)])"
)


def _probe(var: Path) -> list[str]:
    env = {**os.environ, "ROGATORY_VAR": str(var)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split(maxsplit=2)


def test_a_second_process_reads_the_table_without_importing_holidays(tmp_path: Path) -> None:
    first = _probe(tmp_path)
    second = _probe(tmp_path)
    assert first[0] == "True" and second[0] == "False"
    assert first[1:] == second[1:]  # the same table: as many days, Independence Day named alike
    assert "Independencia" in first[2] or "Independence" in first[2]
    (cached,) = (tmp_path / "cache" / "holidays").iterdir()
    assert cached.name.startswith("SV-_-2025-2027-")


def test_a_damaged_cache_file_is_read_afresh_not_trusted(tmp_path: Path) -> None:
    first = _probe(tmp_path)
    (cached,) = (tmp_path / "cache" / "holidays").iterdir()
    cached.write_text("{not json")
    again = _probe(tmp_path)
    assert again[0] == "True" and again[1:] == first[1:]
    assert len(json.loads(cached.read_text())) == int(first[1])

"""`rogatory import` of a 100,000-row register: the case-management export's layout (one row per
event), into a fresh SQLite ledger, every row checked and every case replayed through the
engine's commands in one transaction. Budget: 100,000 rows in 60 s.

The register is written from a fixed seed under var/bench/ (about 16,700 Salvadoran cases of
six events each, some still open) with the shipped mapping (examples/import). The figure is
checked before it is reported: every case imported, and a second import of the same file
finds every case already there and writes nothing.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from benchmarks import Result
from models.clock import FixedClock
from models.importer import import_register
from models.ledger import Event, Ledger, Request

FOLDER = Path(os.environ.get("ROGATORY_BENCH_DIR", "var/bench"))
MAPPING = (
    Path(__file__).resolve().parent.parent / "examples" / "import" / "expedientes_sv.mapping.yaml"
)
ROWS = 100_000
BUDGET_S = 60.0
SEED = 12
NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)
HEADER = (
    "expediente;fecha;evento;autoridad;motivo;observaciones;sentido;tipo;pais;base;delito;"
    "fecha_hecho;coercitivo;unidad;asunto;hechos;diligencias;persona"
)
CHAIN = ("RREE", "MJSP", "CSJ")
"""An incoming request's chain before the Prosecutor General executes it and RREE replies."""


def write_register(path: Path, rows: int) -> int:
    """A register of `rows` event rows; the number of cases in it."""
    rng = random.Random(SEED)
    lines = [HEADER]
    case = 0
    first = date(2016, 1, 4)
    while len(lines) - 1 < rows:
        case += 1
        number = f"DGAI-{case:06d}"
        day = first + timedelta(days=rng.randrange(0, 3500))
        offence = day - timedelta(days=rng.randrange(30, 900))
        lines.append(
            f"{number};{day};RECEPCION;RREE;;;PASIVA;AJ;ES;UNCAC;COHECHO;{offence};N;"
            "Fiscalía Adjunta;Soborno;Pagos a un funcionario;Declaración;"
        )
        steps = [*CHAIN, "FGR", "RREE"]
        stop = len(steps) if rng.random() < 0.85 else rng.randrange(1, len(steps))
        for n, authority in enumerate(steps[:stop]):
            day += timedelta(days=rng.randrange(1, 60))
            if day > NOW.date():
                break
            kind = "REMISION" if n < 3 else "EJECUCION"
            lines.append(f"{number};{day};{kind};{authority};;;;;;;;;;;;;;")
    path.write_text("\n".join(lines[: rows + 1]) + "\n", encoding="utf-8")
    return case


def run() -> list[Result]:
    FOLDER.mkdir(parents=True, exist_ok=True)
    register = FOLDER / f"import_register_{ROWS}.csv"
    if not register.exists():
        write_register(register, ROWS)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rogatory-bench-import-") as folder:
        ledger = Ledger(f"sqlite:///{Path(folder) / 'ledger.db'}", migrate=True)
        try:
            began, cpu = time.perf_counter(), time.process_time()
            report = import_register(
                path=register,
                mapping_path=MAPPING,
                ledger=ledger,
                clock=FixedClock(NOW),
                actor="bench",
            )
            seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
            again = import_register(
                path=register,
                mapping_path=MAPPING,
                ledger=ledger,
                clock=FixedClock(NOW),
                actor="bench",
            )
            with ledger.session() as session:
                cases = session.scalar(select(func.count()).select_from(Request))
                events = session.scalar(select(func.count()).select_from(Event))
        finally:
            ledger.dispose()
    if report.problems or report.rows != ROWS or cases != report.cases:
        raise AssertionError(f"{report.rows} rows, {cases} of {report.cases} cases imported")
    if again.imported or len(again.unchanged) != report.cases:
        raise AssertionError("re-importing the same register wrote something")
    end = os.getloadavg()
    note = (
        f"{ROWS:,} event rows, {report.cases:,} cases, {events:,} events written in one "
        f"transaction; re-import of the same file: {again.elapsed_s:.1f} s, nothing written"
    )
    span = (load[0], end[0], end[1])
    return [
        Result("import_100k_rows_s", seconds, "s", BUDGET_S, "lower", note, span),
        Result("import_100k_rows_cpu_s", cpu, "s", None, "lower", None, span),
        Result("import_rows_per_s", ROWS / seconds, "per_s", ROWS / BUDGET_S, "higher", None, span),
    ]

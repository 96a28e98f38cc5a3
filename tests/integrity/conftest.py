"""A ledger with a checkpoint key and a witness outside it, cases moved by the engine, and the
`rogatory` command line pointed at it (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.cli import main
from models import engine
from models.clock import FixedClock
from models.engine import Routings
from models.ledger import Ledger, Request, Step
from tasks.checkpoint import seal_now
from tests.conftest import REPO
from tests.samples import intake


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class World:
    ledger: Ledger
    clock: FixedClock
    routings: Routings
    folder: Path
    capsys: pytest.CaptureFixture[str]
    key: Path
    witness: Path

    def run(self, command: str, **kw: Any) -> Any:
        with self.ledger.transaction() as session:
            return getattr(engine, command)(
                session=session, clock=self.clock, routings=self.routings, **kw
            )

    def register(self) -> str:
        return str(self.run("register", data=intake()).reference)

    def forward(self, reference: str) -> None:
        self.clock.advance(timedelta(hours=2))
        self.run("decide", reference=reference, outcome="forwarded")

    def seal(self) -> Any:
        return seal_now(self.ledger, routings=Routings({}), now=self.clock.now(), found_by="test")

    def cli(self, *argv: str) -> Ran:
        self.capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = self.capsys.readouterr()
        return Ran(code, out, err)

    def case_id(self, reference: str) -> int:
        with self.ledger.session() as session:
            return int(session.scalar(select(Request.id).where(Request.reference == reference)))

    def step_row(self, reference: str, hop: int) -> dict[str, Any]:
        with self.ledger.session() as session:
            row = session.execute(
                select(*Step.__table__.c).where(
                    Step.request_id == self.case_id(reference), Step.hop == hop
                )
            ).one()
            return dict(row._mapping)


@pytest.fixture
def world(
    database_url: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clock: FixedClock,
    routings: Routings,
) -> Iterator[World]:
    monkeypatch.setenv("ROGATORY_DATABASE_URL", database_url)
    monkeypatch.setenv("ROGATORY_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("ROGATORY_DOCUMENTS", str(tmp_path / "var" / "documents"))
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(REPO / "config"))
    # Outside the ledger's folder (a SQLite ledger sits in tmp_path itself), as they must be.
    keys, witness = tmp_path_factory.mktemp("keys"), tmp_path_factory.mktemp("witness")
    monkeypatch.setenv("ROGATORY_CHECKPOINT_KEY", str(keys / "checkpoint.key"))
    monkeypatch.setenv("ROGATORY_WITNESS", str(witness / "checkpoints.jsonl"))
    for name in ("ROGATORY_CLOCK", "PREFECT_API_URL", "ROGATORY_CHECKPOINT_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    ledger = Ledger(database_url, migrate=True)
    yield World(ledger, clock, routings, tmp_path, capsys, keys / "checkpoint.key", witness)
    ledger.dispose()

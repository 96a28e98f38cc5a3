"""The ministry's what-if page over HTTP: the ministry replays its recorded cases on a proposal
and reads the time saved, the prescriptions avoided and the assumptions; a broken proposal or a
bad field is reported above the form; a clerk is refused."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from models import identity
from models.clock import FixedClock
from models.engine import Routings
from models.identity import Grant, RoleName
from models.ledger import Ledger
from models.loader import load_country
from models.simulation import simulate

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough passphrase"
ACCOUNTS = {
    "ministry-sv": Grant(RoleName.MINISTRY, "SV"),
    "clerk-fgr": Grant(RoleName.CLERK, "SV", "fgr"),
}


@dataclass
class World:
    client: TestClient
    config: Path

    def signed_in(self, name: str) -> TestClient:
        browser = TestClient(self.client.app, base_url="https://testserver")
        answer = browser.post("/login", data={"username": name, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return browser

    def proposal(self) -> str:
        text = (self.config / "countries" / "sv.yaml").read_text(encoding="utf-8")
        return "".join(
            line for line in text.splitlines(keepends=True) if "holder: mjsp" not in line
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("whatif-page")
    config = folder / "config"
    shutil.copytree(REPO / "config", config)
    patch = pytest.MonkeyPatch()
    patch.setenv("ROGATORY_CONFIG_DIR", str(config))
    clock = FixedClock(datetime(2026, 12, 1, 15, tzinfo=UTC))
    ledger = Ledger(f"sqlite:///{folder / 'ledger.db'}", migrate=True)
    simulate(
        ledger=ledger,
        routings=Routings({"SV": load_country(config / "countries" / "sv.yaml")}),
        years=2,
        per_year=500,
        seed=3,
        countries=["SV"],
        start=datetime(2023, 1, 1, tzinfo=UTC),
    )
    with ledger.transaction() as session:
        for name, grant in ACCOUNTS.items():
            identity.add_account(
                session, name=name, grants=[grant], now=clock.now(), actor="t", password=PASSWORD
            )
    app = create_app(ledger, clock=clock, wake=lambda command, result: None)
    yield World(TestClient(app, base_url="https://testserver"), config)
    ledger.dispose()
    patch.undo()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def test_the_ministry_replays_its_cases_on_a_proposal(world: World) -> None:
    browser = world.signed_in("ministry-sv")
    assert "/ministry/SV/whatif" in browser.get("/ministry/SV").text
    form = browser.get("/ministry/SV/whatif").text
    answer = browser.post(
        "/ministry/SV/whatif",
        data={"csrf_token": csrf_of(form), "text": world.proposal(), "runs": "50"},
    )
    assert answer.status_code == 200, answer.text
    page = answer.text
    assert "What the proposal would have done" in page
    assert "Days saved per case" in page and "Prescriptions avoided" in page
    assert "transmit" in page and "Assumptions" in page
    assert "A hop the proposal removes takes nothing" in page


def test_the_page_speaks_spanish(world: World) -> None:
    browser = world.signed_in("ministry-sv")
    browser.cookies.set("rogatory_lang", "es")
    form = browser.get("/ministry/SV/whatif").text
    page = browser.post(
        "/ministry/SV/whatif",
        data={"csrf_token": csrf_of(form), "text": world.proposal(), "runs": "20"},
    ).text
    assert "Lo que habría hecho la propuesta" in page
    assert "Un tramo que la propuesta suprime no toma nada" in page


def test_a_broken_proposal_and_a_bad_field_are_listed_above_the_form(world: World) -> None:
    browser = world.signed_in("ministry-sv")
    form = browser.get("/ministry/SV/whatif").text
    answer = browser.post(
        "/ministry/SV/whatif",
        data={"csrf_token": csrf_of(form), "text": "country: SV\nroutes: 3\n", "runs": "5"},
    )
    assert answer.status_code == 422
    assert "There is a problem" in answer.text
    assert "Give a number of runs from 20 to 2000" in answer.text
    assert "countries/sv.yaml:" in answer.text
    assert "What the proposal would have done" not in answer.text


def test_a_clerk_is_refused(world: World) -> None:
    browser = world.signed_in("clerk-fgr")
    assert browser.get("/ministry/SV/whatif").status_code == 403

"""The case page opens a case's sealed fields for those who may read it, and for nobody else."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from app.api import create_app
from app.service import Service
from models import identity
from models.clock import FixedClock
from models.commands import Register, StopClock
from models.identity import Grant, RoleName
from models.ledger import Ledger
from tests.samples import intake

NAME = "Zebulon Quxworthy"
PASSWORD = "a long enough passphrase"


def _browser(app: object, name: str) -> TestClient:
    browser = TestClient(app, base_url="https://testserver")  # type: ignore[arg-type]
    answer = browser.post(
        "/login", data={"username": name, "password": PASSWORD}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return browser


def test_the_case_page_shows_a_sealed_reason_to_its_readers_only(tmp_path):
    clock = FixedClock(datetime(2026, 11, 2, 15, tzinfo=UTC))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)
    with ledger.transaction() as session:
        for name, grant in (
            ("clerk-fgr", Grant(RoleName.CLERK, "SV", "fgr")),
            ("coord-gt", Grant(RoleName.COORDINATOR, "GT")),
        ):
            identity.add_account(
                session, name=name, grants=[grant], now=clock.now(), actor="t", password=PASSWORD
            )
    service = Service(ledger, clock=clock)
    local = identity.local_caller("test")
    ref = service.submit(Register(request=intake(persons=[NAME])), local).reference
    service.submit(StopClock(reference=ref, reason=f"{NAME} found"), local)
    app = create_app(ledger, clock=clock, wake=lambda command, result: None)

    page = _browser(app, "clerk-fgr").get(f"/cases/{ref}")
    assert page.status_code == 200 and f"{NAME} found" in page.text
    assert "enc:v1:" not in page.text
    refused = _browser(app, "coord-gt").get(f"/cases/{ref}")
    assert refused.status_code == 403 and NAME not in refused.text
    ledger.dispose()

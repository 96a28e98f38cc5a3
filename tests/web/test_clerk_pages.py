"""The clerk's pages over HTTP: sign-in, role boundaries, forms that write exactly once or not at
all, and the language switch. Fast (no browser): the same app `rogatory web` serves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.api import create_app
from app.service import Service
from models import identity
from models.clock import FixedClock
from models.commands import Register
from models.identity import Grant, RoleName
from models.ledger import Event, Ledger
from tests.samples import intake

PASSWORD = "a long enough passphrase"
ACCOUNTS = {
    "clerk-fgr": Grant(RoleName.CLERK, "SV", "fgr"),
    "clerk-csj": Grant(RoleName.CLERK, "SV", "csj"),
    "auditor-sv": Grant(RoleName.AUDITOR, "SV"),
    "coord-gt": Grant(RoleName.COORDINATOR, "GT"),
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestClient, Ledger, dict[str, str]]]:
    clock = FixedClock(datetime(2026, 11, 2, 15, tzinfo=UTC))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)
    with ledger.transaction() as session:
        for name, grant in ACCOUNTS.items():
            identity.add_account(
                session, name=name, grants=[grant], now=clock.now(), actor="t", password=PASSWORD
            )
    service = Service(ledger, clock=clock)
    local = identity.local_caller("test")
    refs = {
        "a": service.submit(Register(request=intake()), local).reference,
        "b": service.submit(Register(request=intake(counterpart="US")), local).reference,
    }
    app = create_app(ledger, clock=clock, wake=lambda command, result: None)
    yield TestClient(app, base_url="https://testserver"), ledger, refs
    ledger.dispose()


def signed_in(client: TestClient, name: str) -> TestClient:
    browser = TestClient(client.app, base_url="https://testserver")
    answer = browser.post(
        "/login", data={"username": name, "password": PASSWORD}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return browser


def events(ledger: Ledger) -> int:
    with ledger.session() as session:
        return int(session.scalar(select(func.count()).select_from(Event)) or 0)


def form_of(page: str, command: str) -> dict[str, str]:
    """The hidden fields of one command's form on a case page."""
    block = page.split(f'/{command}">', 1)[1].split("</form>", 1)[0]
    return dict(re.findall(r'type="hidden" name="([a-z_]+)" value="([^"]*)"', block))


def test_pages_need_a_sign_in_and_a_wrong_password_is_refused(world: tuple) -> None:
    client, _, refs = world
    answer = client.get(f"/cases/{refs['a']}", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/login?next=%2Fcases%2F{refs['a']}"
    refused = client.post("/login", data={"username": "clerk-fgr", "password": "wrong" * 3})
    assert refused.status_code == 401
    assert "rogatory_session" not in refused.cookies
    assert 'value="clerk-fgr"' in refused.text  # the username is kept, never the password


def test_a_sign_in_never_redirects_to_another_site(world: tuple) -> None:
    client, _, _ = world
    answer = client.post(
        "/login",
        data={"username": "clerk-fgr", "password": PASSWORD, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/"


def test_a_clerk_sees_the_forms_of_the_hop_they_hold_and_no_other(world: tuple) -> None:
    client, _, refs = world
    holder = signed_in(client, "clerk-fgr").get(f"/cases/{refs['a']}").text
    assert 'action="/cases/' + refs["a"] + '/decide"' in holder
    assert "Record decision" in holder
    outcomes = re.findall(r'<option value="([a-z_]+)"', holder.split('id="decide-outcome"')[1])
    assert set(outcomes[:3]) == {"forwarded", "returned", "refused"}  # what hop 1 allows

    other = signed_in(client, "clerk-csj").get(f"/cases/{refs['a']}").text
    assert "/decide" not in other and "Record decision" not in other
    auditor = signed_in(client, "auditor-sv").get(f"/cases/{refs['a']}").text
    assert '<form method="post" action="/cases/' not in auditor


def test_another_authoritys_inbox_and_another_countrys_case_are_refused(world: tuple) -> None:
    client, _, refs = world
    assert signed_in(client, "clerk-csj").get("/inbox/SV/fgr").status_code == 403
    refused = signed_in(client, "coord-gt").get(f"/cases/{refs['a']}")
    assert refused.status_code == 403
    assert "bribery" not in refused.text


def test_a_decision_is_recorded_once_under_its_signed_in_actor(world: tuple) -> None:
    client, ledger, refs = world
    browser = signed_in(client, "clerk-fgr")
    hidden = form_of(browser.get(f"/cases/{refs['a']}").text, "decide")
    post = {**hidden, "outcome": "forwarded", "note": "complete"}
    answer = browser.post(f"/cases/{refs['a']}/decide", data=post, follow_redirects=False)
    assert answer.status_code == 303
    before = events(ledger)
    again = browser.post(f"/cases/{refs['a']}/decide", data=post, follow_redirects=False)
    assert again.status_code == 303  # the same form twice (a double click): nothing new
    assert events(ledger) == before
    page = browser.get(f"/cases/{refs['a']}").text
    assert "clerk-fgr" in page.split('id="events"')[1]


def test_a_refused_command_writes_nothing_and_keeps_what_was_typed(world: tuple) -> None:
    client, ledger, refs = world
    browser = signed_in(client, "clerk-fgr")
    hidden = form_of(browser.get(f"/cases/{refs['a']}").text, "decide")
    before = events(ledger)
    stale = {**hidden, "seq": "0", "outcome": "forwarded", "note": "typed by hand"}
    answer = browser.post(f"/cases/{refs['a']}/decide", data=stale)
    assert answer.status_code == 422
    assert "Not recorded" in answer.text
    assert "typed by hand" in answer.text
    assert events(ledger) == before


def test_a_form_without_its_csrf_token_is_refused(world: tuple) -> None:
    client, ledger, refs = world
    browser = signed_in(client, "clerk-fgr")
    before = events(ledger)
    answer = browser.post(f"/cases/{refs['a']}/decide", data={"outcome": "forwarded"})
    assert answer.status_code == 403
    assert events(ledger) == before


def test_the_language_switch_turns_the_page_spanish(world: tuple) -> None:
    client, _, _ = world
    browser = signed_in(client, "clerk-fgr")
    browser.get("/language/es?next=/inbox/SV/fgr")
    page = browser.get("/inbox/SV/fgr").text
    assert '<html lang="es">' in page
    assert "Bandeja de entrada" in page
    assert signed_in(client, "clerk-fgr").get("/inbox/SV/fgr").text.count("Inbox") >= 1


def test_search_lists_only_the_cases_the_caller_may_see(world: tuple) -> None:
    client, _, refs = world
    assert refs["a"] in signed_in(client, "auditor-sv").get("/search").text
    assert refs["a"] not in signed_in(client, "coord-gt").get("/search").text

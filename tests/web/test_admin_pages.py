"""The admin pages: accounts, roles and tokens managed from the browser, each action in the
security log with the admin as its actor; a token's secret shown once; anyone else refused with
nothing written; a refused form shown again with what was typed, nothing written."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect
from sqlalchemy import func, select

from app.api import create_app
from models import identity
from models.clock import FixedClock
from models.identity import Account, ApiToken, Grant, RoleGrant, RoleName, SecurityEvent
from models.ledger import Ledger
from tests.web.conftest import Workspace, shoot
from tests.web.test_browser_clerk import _serious_violations

PASSWORD = "a long enough passphrase"
NOW = datetime(2026, 11, 2, 15, tzinfo=UTC)
SECRET = re.compile(r"rgt_[A-Za-z0-9_-]{20,}")


@dataclass
class Site:
    app: Any
    ledger: Ledger
    token_id: int
    """A live token of clerk-fgr."""

    def browser(self, name: str, password: str = PASSWORD) -> TestClient:
        client = TestClient(self.app, base_url="https://testserver")
        signed = client.post(
            "/login", data={"username": name, "password": password}, follow_redirects=False
        )
        assert signed.status_code == 303, signed.text
        return client

    def events(self, kind: str) -> list[SecurityEvent]:
        with self.ledger.session() as session:
            return list(session.scalars(select(SecurityEvent).where(SecurityEvent.kind == kind)))

    def counts(self) -> dict[str, Any]:
        """What an admin action could write: accounts, grants, tokens, the security log."""
        with self.ledger.session() as session:
            return {
                "rows": [
                    session.scalar(select(func.count()).select_from(table))
                    for table in (Account, RoleGrant, ApiToken)
                ],
                "log": [
                    (e.kind, e.account)
                    for e in session.scalars(select(SecurityEvent).order_by(SecurityEvent.id))
                    if e.kind not in ("signed_in",)
                ],
                "active": [a.active for a in session.scalars(select(Account).order_by(Account.id))],
                "revoked": [t.revoked_at for t in session.scalars(select(ApiToken))],
            }


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A ledger with an admin, a clerk (holding a live token) and an auditor, made once: each
    test works on its own copy (argon2 hashing is slow on purpose)."""
    path = tmp_path_factory.mktemp("admin") / "seed.db"
    ledger = Ledger(f"sqlite:///{path}", migrate=True)
    with ledger.transaction() as session:
        for name, grant in {
            "admin": Grant(RoleName.ADMIN),
            "clerk-fgr": Grant(RoleName.CLERK, "SV", "fgr"),
            "auditor": Grant(RoleName.AUDITOR),
        }.items():
            identity.add_account(
                session, name=name, grants=[grant], now=NOW, actor="test", password=PASSWORD
            )
        token_id, _ = identity.issue_token(
            session,
            name="clerk-fgr",
            label="desk",
            scopes=list(identity.Scope),
            expires_in=timedelta(days=30),
            now=NOW,
            actor="test",
        )
    with ledger.engine.connect() as connection:  # all in the file itself, none in its WAL
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger.dispose()
    return path, token_id


@pytest.fixture
def site(seeded: tuple[Path, int], tmp_path: Path) -> Iterator[Site]:
    seed, token_id = seeded
    shutil.copy(seed, tmp_path / "ledger.db")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    app = create_app(ledger, clock=FixedClock(NOW), wake=lambda command, result: None)
    yield Site(app=app, ledger=ledger, token_id=token_id)
    ledger.dispose()


def csrf(browser: TestClient) -> str:
    token: str = browser.get("/api/session").json()["csrf_token"]
    return token


def post(browser: TestClient, path: str, **fields: str) -> Any:
    return browser.post(path, data={"csrf_token": csrf(browser), **fields}, follow_redirects=False)


NEW_ACCOUNT = {
    "name": "clerk-csj",
    "display_name": "Clerk of the Court",
    "password": "another long passphrase",
    "role": "clerk",
    "country": "sv",
    "authority": "csj",
}


def test_the_admin_page_lists_accounts_roles_and_tokens_without_secrets(site: Site) -> None:
    page = site.browser("admin").get("/admin")

    assert page.status_code == 200
    assert "<h1>Accounts</h1>" in page.text
    assert "clerk of SV/fgr" in page.text
    assert "desk" in page.text  # the token's label
    with site.ledger.session() as session:
        hashes = [a.password_hash for a in session.scalars(select(Account))]
        secret_hashes = [t.secret_hash for t in session.scalars(select(ApiToken))]
    for hidden in [*hashes, *secret_hashes, "$argon2"]:
        assert hidden and hidden not in page.text


def test_an_admin_creates_an_account_that_can_then_sign_in(site: Site) -> None:
    admin = site.browser("admin")

    created = post(admin, "/admin/accounts", **NEW_ACCOUNT)

    assert created.status_code == 303
    assert created.headers["location"] == "/admin/accounts/clerk-csj?done=created"
    shown = admin.get(created.headers["location"])
    assert "clerk of SV/csj" in shown.text
    assert "The account was created." in shown.text
    newcomer = site.browser("clerk-csj", NEW_ACCOUNT["password"])
    assert newcomer.get("/", follow_redirects=False).headers["location"] == "/inbox/SV/csj"
    assert [(e.account, e.actor) for e in site.events("account_added")][-1] == (
        "clerk-csj",
        "admin",
    )
    assert [(e.account, e.actor) for e in site.events("role_granted")][-1] == (
        "clerk-csj",
        "admin",
    )


def test_a_refused_account_keeps_what_was_typed_and_writes_nothing(site: Site) -> None:
    admin = site.browser("admin")
    before = site.counts()

    refused = post(admin, "/admin/accounts", **{**NEW_ACCOUNT, "authority": ""})

    assert refused.status_code == 422
    assert "a clerk needs --authority" in refused.text
    assert 'href="#create-authority"' in refused.text  # the summary links to the field
    assert 'value="clerk-csj"' in refused.text
    assert 'value="Clerk of the Court"' in refused.text
    assert NEW_ACCOUNT["password"] not in refused.text  # a password is never sent back
    assert site.counts() == before


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"password": "too short"}, "at least 12 characters"),
        ({"name": "clerk-fgr"}, "already exists"),
        ({"name": "two words"}, "no spaces"),
        ({"role": "emperor"}, "choose a role"),
        ({"role": "admin", "authority": ""}, "admin is not tied to a country"),
    ],
)
def test_an_account_the_rules_refuse_is_not_created(
    site: Site, changes: dict[str, str], words: str
) -> None:
    admin = site.browser("admin")
    before = site.counts()

    refused = post(admin, "/admin/accounts", **{**NEW_ACCOUNT, **changes})

    assert refused.status_code == 422
    assert words in refused.text
    assert site.counts() == before


def test_an_admin_grants_a_role_once(site: Site) -> None:
    admin = site.browser("admin")

    granted = post(
        admin, "/admin/accounts/clerk-fgr/grants", role="head", country="SV", authority="fgr"
    )
    assert granted.status_code == 303
    assert "head of SV/fgr" in admin.get(granted.headers["location"]).text
    assert site.events("role_granted")[-1].actor == "admin"

    before = site.counts()
    again = post(
        admin, "/admin/accounts/clerk-fgr/grants", role="head", country="SV", authority="fgr"
    )
    assert again.status_code == 422
    assert "already holds the role head of SV/fgr" in again.text
    assert site.counts() == before


def test_a_token_secret_is_shown_once_and_works(site: Site) -> None:
    admin = site.browser("admin")

    issued = post(
        admin, "/admin/accounts/clerk-fgr/tokens", label="laptop", scopes="read", days="30"
    )

    assert issued.status_code == 303
    page = admin.get(issued.headers["location"])
    secrets_shown = SECRET.findall(page.text)
    assert len(secrets_shown) == 1
    assert 'hx-history="false"' in page.text  # htmx keeps no copy of the page
    api = TestClient(site.app, base_url="https://testserver")
    me = api.get("/api/session", headers={"Authorization": f"Bearer {secrets_shown[0]}"})
    assert me.json()["name"] == "clerk-fgr"
    again = admin.get(issued.headers["location"])
    assert SECRET.search(again.text) is None
    assert "shown once and is not kept" in again.text
    assert SECRET.search(admin.get("/admin").text) is None
    event = site.events("token_issued")[-1]
    assert (event.account, event.actor, event.detail["scopes"]) == ("clerk-fgr", "admin", ["read"])


def test_another_admin_session_never_sees_the_secret(site: Site) -> None:
    first, second = site.browser("admin"), site.browser("admin")

    issued = post(
        first, "/admin/accounts/clerk-fgr/tokens", label="laptop", scopes="read", days="30"
    )

    assert SECRET.search(second.get(issued.headers["location"]).text) is None
    assert SECRET.search(first.get(issued.headers["location"]).text) is not None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"days": "0"}, "1 to 3650"),
        ({"days": "soon"}, "1 to 3650"),
        ({"scopes": "everything"}, "read, or read and write"),
    ],
)
def test_a_refused_token_is_not_issued(site: Site, fields: dict[str, str], words: str) -> None:
    admin = site.browser("admin")
    before = site.counts()

    refused = post(
        admin,
        "/admin/accounts/clerk-fgr/tokens",
        **{"label": "laptop", "scopes": "read", "days": "30", **fields},
    )

    assert refused.status_code == 422
    assert words in refused.text
    assert 'value="laptop"' in refused.text
    assert site.counts() == before


def test_an_admin_revokes_a_token(site: Site) -> None:
    admin = site.browser("admin")

    revoked = post(admin, f"/admin/tokens/{site.token_id}/revoke")

    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/admin/accounts/clerk-fgr?done=revoked"
    assert site.counts()["revoked"] == [NOW]
    event = site.events("token_revoked")[-1]
    assert (event.account, event.actor) == ("clerk-fgr", "admin")


def test_an_admin_closes_an_account_which_can_no_longer_sign_in(site: Site) -> None:
    admin = site.browser("admin")
    clerk = site.browser("clerk-fgr")

    closed = post(admin, "/admin/accounts/clerk-fgr/deactivate")

    assert closed.status_code == 303
    assert site.events("account_revoked")[-1].actor == "admin"
    assert clerk.get("/search", follow_redirects=False).status_code == 303  # session ended
    refused = TestClient(site.app, base_url="https://testserver").post(
        "/login", data={"username": "clerk-fgr", "password": PASSWORD}
    )
    assert refused.status_code == 401


def test_an_admin_does_not_close_their_own_account(site: Site) -> None:
    admin = site.browser("admin")
    before = site.counts()

    refused = post(admin, "/admin/accounts/admin/deactivate")

    assert refused.status_code == 422
    assert site.counts() == before


def test_an_unknown_account_page_is_not_found(site: Site) -> None:
    assert site.browser("admin").get("/admin/accounts/nobody").status_code == 404


ADMIN_ROUTES = [
    ("GET", "/admin", {}),
    ("GET", "/admin/accounts/clerk-fgr", {}),
    ("POST", "/admin/accounts", NEW_ACCOUNT),
    ("POST", "/admin/accounts/auditor/grants", {"role": "admin"}),
    ("POST", "/admin/accounts/clerk-fgr/deactivate", {}),
    ("POST", "/admin/accounts/auditor/tokens", {"label": "x", "scopes": "read", "days": "9"}),
    ("POST", "/admin/tokens/{token}/revoke", {}),
]


@pytest.mark.parametrize("who", ["clerk-fgr", "auditor"])
@pytest.mark.parametrize(("method", "path", "fields"), ADMIN_ROUTES)
def test_no_one_but_an_admin_reaches_an_admin_route(
    site: Site, who: str, method: str, path: str, fields: dict[str, str]
) -> None:
    browser = site.browser(who)
    path = path.format(token=site.token_id)
    before = site.counts()

    if method == "GET":
        answer = browser.get(path, follow_redirects=False)
    else:
        answer = post(browser, path, **fields)

    assert answer.status_code == 403
    assert "not an admin" in answer.text
    assert site.counts() == before


@pytest.mark.parametrize(("method", "path", "fields"), [r for r in ADMIN_ROUTES if r[0] == "POST"])
def test_an_admin_form_without_its_csrf_token_is_refused(
    site: Site, method: str, path: str, fields: dict[str, str]
) -> None:
    admin = site.browser("admin")
    before = site.counts()

    for token in ({}, {"csrf_token": "forged"}):
        answer = admin.post(
            path.format(token=site.token_id), data={**fields, **token}, follow_redirects=False
        )
        assert answer.status_code == 403

    assert site.counts() == before


def test_an_admin_page_asks_to_sign_in_first(site: Site) -> None:
    anonymous = TestClient(site.app, base_url="https://testserver")

    answer = anonymous.get("/admin", follow_redirects=False)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fadmin"


# -- in a real browser --------------------------------------------------------------------------


def test_an_admin_creates_an_account_and_issues_its_token_in_the_browser(
    sign_in: Any, workspace: Workspace
) -> None:
    page = sign_in("admin")
    expect(page.get_by_role("heading", name="Accounts", level=1)).to_be_visible()
    shoot(page, "admin-accounts")
    page.get_by_label("Account name").fill("clerk-new")
    page.get_by_label("Password").fill("too short")
    page.get_by_role("combobox", name="Role").select_option("clerk")
    page.get_by_label("Country").fill("SV")
    page.get_by_label("Authority").fill("csj")
    page.get_by_role("button", name="Create the account").click()

    expect(page.get_by_role("alert")).to_contain_text("at least 12 characters")
    expect(page.get_by_label("Account name")).to_have_value("clerk-new")
    expect(page.get_by_label("Authority")).to_have_value("csj")
    page.get_by_label("Password").fill("a much longer passphrase")
    page.get_by_role("button", name="Create the account").click()

    expect(page.get_by_role("heading", name="Account clerk-new")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("The account was created.")
    page.get_by_label("Label").fill("laptop")
    page.get_by_role("button", name="Issue the token").click()
    secret = page.get_by_label("Secret").input_value()
    assert SECRET.fullmatch(secret)
    page.reload()
    expect(page.get_by_label("Secret")).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text(secret)


def test_the_admin_pages_pass_axe_and_fit_a_small_screen(
    sign_in: Any, workspace: Workspace, browser: Any
) -> None:
    page = browser.new_context(bypass_csp=True).new_page()  # axe is injected inline
    sign_in("admin", page)
    problems = {}
    for path in ("/admin", "/admin/accounts/clerk-fgr"):
        for width in (1280, 360):
            page.set_viewport_size({"width": width, "height": 800})
            response = page.goto(workspace.base_url + path)
            assert response is not None and response.ok
            problems[f"{path} @{width}"] = _serious_violations(page)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a 360 px screen"
    assert not {k: v for k, v in problems.items() if v}

"""Sign-in through an identity provider: the real API against a throwaway OpenID provider.

The provider is a real HTTP server on loopback, started by each test; it signs in one fixed
person at once and checks PKCE as a real one does. The browser is played by hand: rogatory
through its TestClient, the provider through httpx, each redirect followed explicitly.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select

from app.api import SESSION_COOKIE, create_app
from app.oidc import PENDING_COOKIE, OidcSettings, OidcSettingsError, pkce_challenge
from models import identity
from models.clock import FixedClock
from models.identity import Grant, RoleName, SecurityEvent
from models.ledger import Ledger
from tests.conftest import _free_port

CLIENT_ID = "rogatory"
REDIRECT_URL = "http://testserver/api/oidc/callback"
PERSON = "c0ffee-4711"


class ThrowawayProvider:
    """An OpenID provider that signs in PERSON at once; tests bend its answers on purpose."""

    def __init__(self, *, client_secret: str | None) -> None:
        self.port = _free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_secret = client_secret
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        self.signing_key = self.key
        self.sub = PERSON
        self.claims: dict[str, Any] = {}
        """Claims that replace the true ones in the next ID tokens."""
        self.codes: dict[str, dict[str, str]] = {}
        self.refusals: list[str] = []
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return dict(KeySet([self.key]).as_dict(private=False))

        @app.get("/authorize")
        def authorize(request: Request) -> RedirectResponse:
            asked = dict(request.query_params)
            assert asked["response_type"] == "code"
            assert asked["client_id"] == CLIENT_ID
            assert asked["redirect_uri"] == REDIRECT_URL
            assert asked["code_challenge_method"] == "S256"
            assert "openid" in asked["scope"].split()
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "challenge": asked["code_challenge"],
                "nonce": asked["nonce"],
                "sub": self.sub,
            }
            back = urlencode({"code": code, "state": asked["state"]})
            return RedirectResponse(f"{REDIRECT_URL}?{back}", status_code=302)

        @app.post("/token", response_model=None)
        async def token(request: Request) -> dict[str, Any] | JSONResponse:
            form = dict(parse_qsl((await request.body()).decode()))
            granted = self.codes.pop(form.get("code", ""), None)  # a code works once
            if form.get("client_id") != CLIENT_ID or (
                self.client_secret and form.get("client_secret") != self.client_secret
            ):
                return self._refuse(401, "invalid_client", "unknown client or wrong secret")
            if granted is None:
                return self._refuse(400, "invalid_grant", "unknown or used code")
            if form.get("redirect_uri") != REDIRECT_URL:
                return self._refuse(400, "invalid_grant", "redirect_uri differs")
            if pkce_challenge(form.get("code_verifier", "")) != granted["challenge"]:
                return self._refuse(400, "invalid_grant", "PKCE verifier does not match")
            now = int(time.time())
            claims = {
                "iss": self.issuer,
                "sub": granted["sub"],
                "aud": CLIENT_ID,
                "nonce": granted["nonce"],
                "iat": now,
                "exp": now + 300,
                **self.claims,
            }
            header = {"alg": "RS256", "kid": self.signing_key.kid}
            return {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": jwt.encode(header, claims, self.signing_key),
            }

        return app

    def _refuse(self, status: int, error: str, description: str) -> JSONResponse:
        self.refusals.append(description)
        return JSONResponse({"error": error, "error_description": description}, status)


@pytest.fixture
def provider(request: pytest.FixtureRequest) -> Iterator[ThrowawayProvider]:
    """A confidential client's provider, or a public client's when parametrized "public"."""
    public = getattr(request, "param", "confidential") == "public"
    found = ThrowawayProvider(client_secret=None if public else "s3cret")
    server = uvicorn.Server(
        uvicorn.Config(found.app, host="127.0.0.1", port=found.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the throwaway provider did not start"
        time.sleep(0.02)
    yield found
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    # SQLite alone: signing in asks nothing of the database that the other tests do not prove.
    found = Ledger(f"sqlite:///{tmp_path / 'l.db'}", migrate=True)
    yield found
    found.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


@pytest.fixture
def rogatory(
    provider: ThrowawayProvider,
    ledger: Ledger,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> TestClient:
    """The API with sign-in through `provider`, and an account linked to PERSON there."""
    monkeypatch.setenv("ROGATORY_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("ROGATORY_OIDC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ROGATORY_OIDC_REDIRECT_URL", REDIRECT_URL)
    if provider.client_secret:
        monkeypatch.setenv("ROGATORY_OIDC_CLIENT_SECRET", provider.client_secret)
    else:
        monkeypatch.delenv("ROGATORY_OIDC_CLIENT_SECRET", raising=False)
    with ledger.transaction() as session:
        identity.add_account(
            session,
            name="ana",
            grants=[Grant(RoleName.CLERK, "SV", "fgr")],
            now=clock.now(),
            actor="test",
            oidc_subject=f"{provider.issuer} {PERSON}",
        )
    app = create_app(ledger, clock=clock, wake=lambda c, r: None, secure_cookies=False)
    return TestClient(app, base_url="http://testserver")


def go_to_provider(rogatory: TestClient, *, next: str = "/") -> httpx.Response:
    """The browser asks rogatory to sign in and follows it to the provider, which sends it back."""
    login = rogatory.get("/api/oidc/login", params={"next": next}, follow_redirects=False)
    assert login.status_code == 302, login.text
    authorize = httpx.get(login.headers["location"], follow_redirects=False)
    assert authorize.status_code == 302, authorize.text
    return authorize


def come_back(rogatory: TestClient, authorize: httpx.Response, **changed: str) -> httpx.Response:
    """The browser arrives at rogatory's callback, with `changed` query parameters if any."""
    back = urlsplit(authorize.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT_URL
    query = {**dict(parse_qsl(back.query)), **changed}
    return rogatory.get(f"{back.path}?{urlencode(query)}", follow_redirects=False)


def sign_in(rogatory: TestClient, *, next: str = "/") -> httpx.Response:
    return come_back(rogatory, go_to_provider(rogatory, next=next))


def security_log(ledger: Ledger, kind: str) -> list[SecurityEvent]:
    with ledger.session() as session:
        return list(
            session.scalars(
                select(SecurityEvent).where(SecurityEvent.kind == kind).order_by(SecurityEvent.id)
            )
        )


def assert_refused(
    rogatory: TestClient, ledger: Ledger, answer: httpx.Response, *, status: int, reason: str
) -> None:
    """Refused with a problem, no session, and the reason in the security log."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert reason in answer.json()["detail"]
    assert SESSION_COOKIE not in answer.cookies
    assert rogatory.get("/api/session").status_code == 401
    failures = security_log(ledger, "sign_in_failed")
    assert len(failures) == 1
    assert failures[0].detail["via"] == "oidc"
    assert reason in failures[0].detail["reason"]
    assert security_log(ledger, "signed_in") == []


@pytest.mark.parametrize("provider", ["confidential", "public"], indirect=True)
def test_linked_identity_signs_in_to_its_account_with_its_roles(
    rogatory: TestClient, ledger: Ledger
) -> None:
    login = rogatory.get(
        "/api/oidc/login", params={"next": "/cases/SV-2026-000001"}, follow_redirects=False
    )
    asked = dict(parse_qsl(urlsplit(login.headers["location"]).query))
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43  # a SHA-256 digest, base64url without padding
    pending_cookie = login.headers["set-cookie"].lower()
    # Lax, or the browser would not bring it back from the provider's cross-site redirect.
    assert all(a in pending_cookie for a in ("httponly", "samesite=lax", "path=/api/oidc"))

    back = come_back(rogatory, httpx.get(login.headers["location"], follow_redirects=False))

    assert back.status_code == 303, back.text
    assert back.headers["location"] == "/cases/SV-2026-000001"
    [session_cookie] = [
        c.lower() for c in back.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    ]
    assert all(a in session_cookie for a in ("httponly", "samesite=strict", "path=/"))
    me = rogatory.get("/api/session")
    assert me.status_code == 200
    assert me.json()["name"] == "ana"
    assert me.json()["roles"] == ["clerk of SV/fgr"]
    assert me.json()["csrf_token"]
    [signed_in] = security_log(ledger, "signed_in")
    assert (signed_in.account, signed_in.detail) == ("ana", {"via": "oidc"})
    assert security_log(ledger, "sign_in_failed") == []


def test_unlinked_identity_is_refused_and_told_how_to_be_linked(
    rogatory: TestClient, ledger: Ledger, provider: ThrowawayProvider
) -> None:
    provider.sub = "stranger"

    answer = sign_in(rogatory)

    assert_refused(rogatory, ledger, answer, status=403, reason="no rogatory account is linked")
    assert f"--oidc-subject '{provider.issuer} stranger'" in answer.json()["detail"]
    with ledger.session() as session:
        assert [a["name"] for a in identity.accounts(session)] == ["ana"]


def test_closed_account_cannot_sign_in_through_the_provider(
    rogatory: TestClient, ledger: Ledger, clock: FixedClock
) -> None:
    with ledger.transaction() as session:
        identity.deactivate(session, name="ana", now=clock.now(), actor="test")

    answer = sign_in(rogatory)

    assert_refused(rogatory, ledger, answer, status=403, reason="'ana' linked to this identity")


@pytest.mark.parametrize("state", ["forged", "état"])
def test_wrong_state_is_refused(rogatory: TestClient, ledger: Ledger, state: str) -> None:
    answer = come_back(rogatory, go_to_provider(rogatory), state=state)

    assert_refused(rogatory, ledger, answer, status=400, reason="state does not match")


def test_replayed_callback_is_refused(rogatory: TestClient, ledger: Ledger) -> None:
    authorize = go_to_provider(rogatory)
    [pending] = [c for c in rogatory.cookies.jar if c.name == PENDING_COOKIE]
    assert come_back(rogatory, authorize).status_code == 303
    # The same callback again, with everything the browser sent the first time.
    rogatory.cookies.clear()
    rogatory.cookies.jar.set_cookie(pending)

    again = come_back(rogatory, authorize)

    assert again.status_code == 400, again.text
    assert "already used" in again.json()["detail"]
    assert SESSION_COOKIE not in again.cookies
    [failed] = security_log(ledger, "sign_in_failed")
    assert "already used" in failed.detail["reason"]
    assert len(security_log(ledger, "signed_in")) == 1


def test_sign_in_left_at_the_provider_for_over_ten_minutes_has_expired(
    rogatory: TestClient, ledger: Ledger, clock: FixedClock
) -> None:
    authorize = go_to_provider(rogatory)
    clock.advance(timedelta(minutes=10, seconds=1))

    answer = come_back(rogatory, authorize)

    assert_refused(rogatory, ledger, answer, status=400, reason="expired")


@pytest.mark.parametrize("kid", ["k1", "k2"], ids=["same-key-id", "unknown-key-id"])
def test_token_signed_by_another_key_is_refused(
    rogatory: TestClient, ledger: Ledger, provider: ThrowawayProvider, kid: str
) -> None:
    provider.signing_key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})

    answer = sign_in(rogatory)

    assert_refused(rogatory, ledger, answer, status=400, reason="the ID token is refused")


@pytest.mark.parametrize(
    ("claim", "value", "reason"),
    [
        ("aud", "another-client", "'aud'"),
        ("aud", ["another-client"], "'aud'"),
        ("nonce", "a-nonce-from-elsewhere", "'nonce'"),
        ("iss", "https://impostor.example", "'iss'"),
        ("exp", timedelta(minutes=-2), "expired"),
        ("iat", timedelta(minutes=2), "issued in the future"),
    ],
    ids=["audience", "audiences", "nonce", "issuer", "expired", "issued-later"],
)
def test_token_with_a_wrong_claim_is_refused(
    rogatory: TestClient,
    ledger: Ledger,
    provider: ThrowawayProvider,
    claim: str,
    value: Any,
    reason: str,
) -> None:
    if isinstance(value, timedelta):  # well beyond the 60 s allowed for clocks that differ
        value = int(time.time() + value.total_seconds())
    provider.claims[claim] = value

    answer = sign_in(rogatory)

    assert_refused(rogatory, ledger, answer, status=400, reason=reason)


def test_stolen_code_fails_the_pkce_check_at_the_provider(
    rogatory: TestClient, ledger: Ledger, provider: ThrowawayProvider
) -> None:
    victim = go_to_provider(rogatory)
    stolen = dict(parse_qsl(urlsplit(victim.headers["location"]).query))["code"]
    # The attacker starts a sign-in of their own and pastes the victim's code into its callback:
    # the state is the attacker's own, so only the verifier gives it away.
    attacker = TestClient(rogatory.app, base_url="http://testserver")
    own = go_to_provider(attacker)

    answer = come_back(attacker, own, code=stolen)

    assert provider.refusals == ["PKCE verifier does not match"]
    assert_refused(attacker, ledger, answer, status=400, reason="PKCE verifier does not match")
    assert "invalid_grant" in answer.json()["detail"]


@pytest.mark.parametrize(
    "next_path",
    ["https://evil.example", "//evil.example/x", "/\\evil.example", "/\t/evil.example", "evil"],
)
def test_sign_in_never_sends_the_browser_off_site(rogatory: TestClient, next_path: str) -> None:
    answer = sign_in(rogatory, next=next_path)

    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"


def test_settings_are_off_without_an_issuer_and_refuse_an_unsafe_one() -> None:
    assert OidcSettings.from_env(env={}) is None
    public = {
        "ROGATORY_OIDC_ISSUER": "https://idp.example",
        "ROGATORY_OIDC_CLIENT_ID": CLIENT_ID,
        "ROGATORY_OIDC_REDIRECT_URL": REDIRECT_URL,
    }
    settings = OidcSettings.from_env(env=public)
    assert settings is not None
    assert (settings.client_secret, settings.scopes) == (None, "openid profile email")
    with pytest.raises(OidcSettingsError, match="must be an https URL"):
        OidcSettings.from_env(env={**public, "ROGATORY_OIDC_ISSUER": "http://idp.example"})
    with pytest.raises(OidcSettingsError, match="ROGATORY_OIDC_CLIENT_ID is missing"):
        OidcSettings.from_env(env={**public, "ROGATORY_OIDC_CLIENT_ID": ""})

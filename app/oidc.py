"""Sign-in through a ministry's identity provider: OpenID Connect, authorization code with PKCE.

The provider says who the person is; rogatory alone says what they may do. An identity signs in
only to an account an admin linked to it: no account or role is ever made here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import GuestProtocol, KeySet, KeySetSerialization

from app.api import problem, set_session_cookie
from models import identity
from models.clock import Clock
from models.errors import AccessError, RogatoryError
from models.identity import Account
from models.ledger import Ledger

PENDING_COOKIE = "rogatory_oidc"
PENDING_TTL = timedelta(minutes=10)
MAX_PENDING = 10_000
"""Beyond this many unfinished sign-ins the oldest go: a flood evicts itself, not memory."""
LEEWAY_SECONDS = 60
HTTP_TIMEOUT = 10.0
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class OidcSettingsError(RogatoryError):
    """The ROGATORY_OIDC_* settings are incomplete or unsafe."""


class SignInRefused(AccessError):
    """A sign-in through the identity provider was refused; answered with `status` and `kind`."""

    def __init__(
        self, reason: str, *, status: int = 400, kind: str = "sign-in-refused", **detail: str
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.kind = kind
        self.detail = detail


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OidcSettings:
    """Where the identity provider is and who rogatory is to it; checked when made."""

    issuer: str
    client_id: str
    redirect_url: str
    client_secret: str | None = None
    """None for a public client, which proves itself by PKCE alone."""
    scopes: str = "openid profile email"

    def __post_init__(self) -> None:
        problems = []
        issuer = urlsplit(self.issuer)
        # Discovery and the signing keys are trusted because TLS says who answered.
        if (
            not (
                issuer.scheme == "https"
                or (issuer.scheme == "http" and issuer.hostname in _LOOPBACK)
            )
            or not issuer.hostname
        ):
            problems.append(
                f"ROGATORY_OIDC_ISSUER {self.issuer!r} must be an https URL (http on loopback only)"
            )
        if not self.client_id:
            problems.append("ROGATORY_OIDC_CLIENT_ID is missing: the client id the provider issued")
        redirect = urlsplit(self.redirect_url)
        if redirect.scheme not in ("http", "https") or not redirect.hostname:
            problems.append(
                f"ROGATORY_OIDC_REDIRECT_URL {self.redirect_url!r} must be an absolute URL, "
                "e.g. https://rogatory.example/api/oidc/callback"
            )
        if "openid" not in self.scopes.split():
            problems.append(f"ROGATORY_OIDC_SCOPES {self.scopes!r} must include 'openid'")
        if problems:
            raise OidcSettingsError("; ".join(problems))

    @classmethod
    def from_env(cls, *, env: Mapping[str, str] | None = None) -> OidcSettings | None:
        """The settings from ROGATORY_OIDC_*, or None when no issuer is configured."""
        env = os.environ if env is None else env
        issuer = env.get("ROGATORY_OIDC_ISSUER", "").strip()
        if not issuer:
            return None
        return cls(
            issuer=issuer,
            client_id=env.get("ROGATORY_OIDC_CLIENT_ID", "").strip(),
            client_secret=env.get("ROGATORY_OIDC_CLIENT_SECRET") or None,
            redirect_url=env.get("ROGATORY_OIDC_REDIRECT_URL", "").strip(),
            scopes=env.get("ROGATORY_OIDC_SCOPES", "").strip() or "openid profile email",
        )


# -- the provider ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    jwks: str


class Provider:
    """The identity provider's endpoints and signing keys, fetched on first use and kept.

    The keys are fetched again when a token names a key id not yet seen: providers rotate keys.
    """

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._endpoints: Endpoints | None = None
        self._keys: KeySet | None = None
        self._lock = threading.Lock()

    def endpoints(self) -> Endpoints:
        with self._lock:
            if self._endpoints is None:
                issuer = self.settings.issuer
                found = _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
                # OpenID Connect Discovery 1.0, 4.3: a document naming another issuer is refused.
                if found.get("issuer") != issuer:
                    raise SignInRefused(
                        f"the provider's discovery document names issuer {found.get('issuer')!r},"
                        f" not {issuer!r}: check ROGATORY_OIDC_ISSUER",
                        status=502,
                        kind="provider-unavailable",
                    )
                try:
                    self._endpoints = Endpoints(
                        authorization=str(found["authorization_endpoint"]),
                        token=str(found["token_endpoint"]),
                        jwks=str(found["jwks_uri"]),
                    )
                except KeyError as exc:
                    raise SignInRefused(
                        f"the provider's discovery document lacks {exc.args[0]}",
                        status=502,
                        kind="provider-unavailable",
                    ) from exc
            return self._endpoints

    def key_for(self, token: GuestProtocol) -> KeySet:
        kid = token.headers().get("kid")
        jwks = self.endpoints().jwks
        with self._lock:
            if self._keys is None or (kid and all(k.kid != kid for k in self._keys)):
                try:
                    self._keys = KeySet.import_key_set(cast(KeySetSerialization, _get_json(jwks)))
                except (JoseError, KeyError, TypeError, ValueError) as exc:
                    raise SignInRefused(
                        f"the provider's signing keys ({jwks}) cannot be read: {exc}",
                        status=502,
                        kind="provider-unavailable",
                    ) from exc
            return self._keys

    def redeem(self, *, code: str, verifier: str) -> str:
        """The ID token the provider gives for `code`, proven ours by the PKCE `verifier`."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_url,
            "client_id": self.settings.client_id,
            "code_verifier": verifier,
        }
        if self.settings.client_secret:
            form["client_secret"] = self.settings.client_secret
        url = self.endpoints().token
        try:
            answer = httpx.post(url, data=form, timeout=HTTP_TIMEOUT)
        except httpx.HTTPError as exc:
            raise _unreachable(url, exc) from exc
        if answer.status_code >= 500:
            raise SignInRefused(
                f"the provider's token endpoint failed (HTTP {answer.status_code})",
                status=502,
                kind="provider-unavailable",
            )
        body = _json_object(answer)
        if answer.status_code != 200:
            error = str(body.get("error", f"HTTP {answer.status_code}"))
            described = body.get("error_description")
            raise SignInRefused(
                f"the provider refused the code: {error}" + (f" ({described})" if described else "")
            )
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("the provider's token response has no id_token")
        return id_token

    def verify(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The claims of `id_token` once its signature, issuer, audience, times and nonce hold."""
        settings = self.settings
        try:
            token = jwt.decode(id_token, self.key_for, algorithms=["RS256"])
            # Token times are the provider's wall clock, not the application's (a demo may run
            # an accelerated one).
            jwt.JWTClaimsRegistry(
                now=int(time.time()),
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": settings.issuer},
                sub={"essential": True},
                aud={"essential": True, "value": settings.client_id},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
                azp={"value": settings.client_id},
            ).validate(token.claims)
        except JoseError as exc:
            raise SignInRefused(f"the ID token is refused: {exc}") from exc
        return token.claims


def _get_json(url: str) -> dict[str, Any]:
    try:
        answer = httpx.get(url, timeout=HTTP_TIMEOUT)
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        raise _unreachable(url, exc) from exc
    return _json_object(answer)


def _json_object(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SignInRefused(
            f"the provider answered {answer.request.url} with something other than a JSON object",
            status=502,
            kind="provider-unavailable",
        )
    return body


def _unreachable(url: str, exc: httpx.HTTPError) -> SignInRefused:
    return SignInRefused(
        f"the identity provider did not answer ({url}: {exc}): try again later",
        status=502,
        kind="provider-unavailable",
    )


# -- sign-ins under way ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingSignIn:
    state: str
    nonce: str
    verifier: str
    next_path: str
    started: datetime


class PendingSignIns:
    """Sign-ins sent to the provider and not back yet, by the opaque id in their cookie.

    Kept in this process's memory: one process serves the API (`rogatory web`), and a restart
    only asks the people in the middle of signing in to start again.
    """

    def __init__(self, *, ttl: timedelta = PENDING_TTL, limit: int = MAX_PENDING) -> None:
        self._ttl = ttl
        self._limit = limit
        self._pending: dict[str, PendingSignIn] = {}
        self._lock = threading.Lock()

    def add(self, pending: PendingSignIn, *, now: datetime) -> str:
        key = secrets.token_urlsafe(32)
        with self._lock:
            self._pending = {k: p for k, p in self._pending.items() if now - p.started < self._ttl}
            while len(self._pending) >= self._limit:
                del self._pending[next(iter(self._pending))]
            self._pending[key] = pending
        return key

    def take(self, key: str, *, now: datetime) -> PendingSignIn | None:
        """The sign-in of `key`, once: a replayed callback finds nothing."""
        with self._lock:
            found = self._pending.pop(key, None)
        if found is None or now - found.started >= self._ttl:
            return None
        return found


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def safe_next(path: str | None) -> str:
    """`path` if it stays on this site, else "/": the sign-in is no open redirect."""
    # Browsers read a backslash as a slash ("/\\evil.example") and drop tabs and newlines
    # ("/\t/evil.example"): either would turn a path into another site.
    if (
        not path
        or not path.startswith("/")
        or path.startswith("//")
        or "\\" in path
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path)
    ):
        return "/"
    return path


# -- the routes ------------------------------------------------------------------------------------


def add_oidc_routes(
    app: FastAPI,
    *,
    ledger: Ledger,
    clock: Clock,
    settings: OidcSettings,
    secure_cookies: bool,
) -> None:
    """GET /api/oidc/login and GET /api/oidc/callback: sign in through the identity provider."""
    provider = Provider(settings)
    pending_sign_ins = PendingSignIns()
    cookie_path = "/api/oidc"

    @app.get("/api/oidc/login", tags=["sessions"], status_code=302, response_model=None)
    def oidc_login(next: str | None = None) -> RedirectResponse | JSONResponse:
        """Go to the identity provider to sign in; come back to `next` (a path on this site)."""
        try:
            authorize = provider.endpoints().authorization
        except SignInRefused as refused:
            return problem(refused.status, refused.kind, "Sign-in failed", str(refused))
        pending = PendingSignIn(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),
            next_path=safe_next(next),
            started=clock.now(),
        )
        key = pending_sign_ins.add(pending, now=pending.started)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": settings.client_id,
                "redirect_uri": settings.redirect_url,
                "scope": settings.scopes,
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": pkce_challenge(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if urlsplit(authorize).query else "?"
        response = RedirectResponse(authorize + separator + query, status_code=302)
        # Lax, not strict: the provider sends the browser back by a cross-site navigation.
        response.set_cookie(
            PENDING_COOKIE,
            key,
            httponly=True,
            secure=secure_cookies,
            samesite="lax",
            max_age=int(PENDING_TTL.total_seconds()),
            path=cookie_path,
        )
        return response

    @app.get("/api/oidc/callback", tags=["sessions"], status_code=303, response_model=None)
    def oidc_callback(
        request: Request,
        code: str | None = None,
        state: str | None = None,
        iss: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> RedirectResponse | JSONResponse:
        """Where the identity provider sends the browser back: open a session, go to `next`."""
        now = clock.now()
        address = request.client.host if request.client else "unknown"
        key = request.cookies.get(PENDING_COOKIE)
        pending = pending_sign_ins.take(key, now=now) if key else None
        try:
            if pending is None:
                raise SignInRefused(
                    "this sign-in has expired or was already used: start again at /api/oidc/login"
                )
            # As bytes: compare_digest refuses str with non-ASCII characters, which anyone may send.
            if not (state and secrets.compare_digest(state.encode(), pending.state.encode())):
                raise SignInRefused("the sign-in's state does not match the one sent: start again")
            # RFC 9207: a response naming another issuer was meant for another provider.
            if iss is not None and iss != settings.issuer:
                raise SignInRefused(f"the response comes from issuer {iss!r}, not ours")
            if error:
                raise SignInRefused(
                    f"the identity provider refused the sign-in: {error}"
                    + (f" ({error_description})" if error_description else "")
                )
            if not code:
                raise SignInRefused("the identity provider sent no code")
            claims = provider.verify(
                provider.redeem(code=code, verifier=pending.verifier), nonce=pending.nonce
            )
            subject = f"{claims['iss']} {claims['sub']}"
            with ledger.transaction() as session:
                account = identity.account_for_subject(session, subject)
                if account is None or not account.active:
                    raise _not_linked(subject, account)
                secret, _ = identity.open_session(session, account=account, now=now)
                next_path = pending.next_path
                identity.log(
                    session,
                    "signed_in",
                    now=now,
                    account=account.name,
                    address=address,
                    detail={"via": "oidc"},
                )
        except SignInRefused as refused:
            with ledger.transaction() as session:
                identity.log(
                    session,
                    "sign_in_failed",
                    now=now,
                    account=refused.detail.get("account"),
                    address=address,
                    detail={"via": "oidc", "reason": str(refused), **refused.detail},
                )
            answer = problem(refused.status, refused.kind, "Sign-in failed", str(refused))
            answer.delete_cookie(PENDING_COOKIE, path=cookie_path)
            return answer
        # The password sign-in's cookie, SameSite=strict included: a browser may leave it off the
        # request for `next` (this redirect chain began at the provider), not off that page's calls.
        response = RedirectResponse(next_path, status_code=303)
        set_session_cookie(response, secret, secure=secure_cookies)
        response.delete_cookie(PENDING_COOKIE, path=cookie_path)
        return response


def _not_linked(subject: str, account: Account | None) -> SignInRefused:
    if account is not None:
        return SignInRefused(
            f"the rogatory account {account.name!r} linked to this identity is closed",
            status=403,
            kind="not-linked",
            account=account.name,
            subject=subject,
        )
    return SignInRefused(
        "no rogatory account is linked to this identity: ask an admin (rogatory user add NAME "
        f"--oidc-subject '{subject}' ...)",
        status=403,
        kind="not-linked",
        subject=subject,
    )

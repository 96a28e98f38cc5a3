"""Accounts, roles and API tokens for admins: the pages over what `rogatory user` does.

Every action calls the functions of models/identity the command line calls, with the admin as
the actor the security log records. A refused action writes nothing and shows its form again
with what was typed. A new token's secret is shown once, on the page the issuing form leads to,
then forgotten: the ledger keeps only its hash.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.web.pages import Pages, Visitor, see_other
from models import identity
from models.errors import Forbidden, NotFound
from models.identity import AccountError, ApiToken, Grant, RoleName, Scope

NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
"""An account's name: it is typed at sign-in and appears in addresses, so no space or slash."""
MAX_TOKEN_DAYS = 3650
SECRET_KEPT_FOR = timedelta(minutes=5)
"""How long a new token's secret waits for the page that shows it (the redirect's GET)."""
SCOPES = {"read": [Scope.READ], "read write": [Scope.READ, Scope.WRITE]}
"""The token scopes an admin chooses from, as the command line offers them (--read-only)."""
DONE = ("created", "granted", "deactivated", "revoked")


class Secrets:
    """New token secrets waiting for the one page that shows them, per admin session.

    Held in this process's memory only, for a few minutes, and handed out once."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, int], tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def keep(self, session_key: str, token_id: int, secret: str, *, now: datetime) -> None:
        with self._lock:
            self._waiting = {k: v for k, v in self._waiting.items() if v[1] > now}
            self._waiting[(session_key, token_id)] = (secret, now + SECRET_KEPT_FOR)

    def take(self, session_key: str, token_id: int, *, now: datetime) -> str | None:
        with self._lock:
            secret, until = self._waiting.pop((session_key, token_id), (None, now))
        return secret if until > now else None


@dataclass
class Refusal:
    """Why a form was refused, for the page that shows it again: the message, and the field it
    is about when one is (the error summary links to it)."""

    form: str
    message: str
    field: str | None = None


def field_of(message: str) -> str | None:
    """The form field a refusal from models/identity is about, from its words."""
    for words, field in (
        ("password", "password"),
        ("--country", "country"),
        ("--authority", "authority"),
        ("already exists", "name"),
        ("already holds", "role"),
        ("account name", "name"),
    ):
        if words in message:
            return field
    return None


def grant_from(form: dict[str, Any]) -> Grant:
    role = str(form.get("role") or "")
    if role not in {r.value for r in RoleName}:
        raise AccountError(f"choose a role: {', '.join(r.value for r in RoleName)}")
    country = str(form.get("country") or "").strip().upper() or None
    authority = str(form.get("authority") or "").strip() or None
    return Grant(RoleName(role), country, authority)


def account_name(form: dict[str, Any]) -> str:
    name = str(form.get("name") or "").strip()
    if not NAME.fullmatch(name):
        raise AccountError(
            "an account name has 1 to 64 letters, digits or . _ @ - (no spaces): it is "
            "typed at sign-in"
        )
    return name


def token_days(form: dict[str, Any]) -> int:
    text = str(form.get("days") or "").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_TOKEN_DAYS:
        raise AccountError(f"a token lasts a whole number of days, 1 to {MAX_TOKEN_DAYS}")
    return int(text)


def add_admin_pages(app: FastAPI, pages: Pages) -> None:
    service = pages.service
    waiting = Secrets()

    def admin(request: Request) -> Visitor:
        visitor = pages.visitor(request)
        if not visitor.has(RoleName.ADMIN):
            raise Forbidden(f"{visitor.name} is not an admin: accounts are managed by admins")
        return visitor

    async def admin_form(request: Request) -> tuple[Visitor, dict[str, Any]]:
        """The admin and the posted fields: refused before the form is read for anyone else."""
        visitor = admin(request)
        return visitor, await pages.form(request, visitor)

    # -- pages ----------------------------------------------------------------------------------

    def accounts_page(
        request: Request,
        visitor: Visitor,
        *,
        refused: Refusal | None = None,
        posted: dict[str, Any] | None = None,
    ) -> Response:
        with service.ledger.session() as session:
            found = identity.accounts(session)
            every_token = identity.tokens(session)
        return pages.render(
            request,
            "admin.html",
            visitor=visitor,
            status=422 if refused else 200,
            accounts=found,
            tokens=every_token,
            now=service.clock.now(),
            roles=[r.value for r in RoleName],
            refused=refused,
            posted=posted or {},
        )

    def account_page(
        request: Request,
        visitor: Visitor,
        name: str,
        *,
        done: str = "",
        secret: str | None = None,
        issued: int | None = None,
        refused: Refusal | None = None,
        posted: dict[str, Any] | None = None,
    ) -> Response:
        with service.ledger.session() as session:
            try:
                found = identity.account(session, name)
            except AccountError as missing:
                raise NotFound(str(missing)) from None
            grants = identity.grants_of(session, found.id)
            own = identity.tokens(session, account=name)
            shown = {
                "name": found.name,
                "display_name": found.display_name,
                "active": found.active,
                "password": found.password_hash is not None,
                "oidc": found.oidc_subject,
                "created_at": found.created_at,
            }
        return pages.render(
            request,
            "admin_account.html",
            visitor=visitor,
            status=422 if refused else 200,
            account=shown,
            grants=grants,
            tokens=own,
            now=service.clock.now(),
            roles=[r.value for r in RoleName],
            done=done,
            secret=secret,
            issued=issued,
            refused=refused,
            posted=posted or {},
        )

    @app.get("/admin", include_in_schema=False)
    def accounts(request: Request) -> Response:
        return accounts_page(request, admin(request))

    @app.get("/admin/accounts/{name}", include_in_schema=False)
    def account(request: Request, name: str, done: str = "", issued: int | None = None) -> Response:
        visitor = admin(request)
        secret = None
        if issued is not None:
            secret = waiting.take(visitor.csrf, issued, now=service.clock.now())
        return account_page(
            request,
            visitor,
            name,
            done=done if done in DONE else "",
            secret=secret,
            issued=issued,
        )

    # -- actions --------------------------------------------------------------------------------

    @app.post("/admin/accounts", include_in_schema=False)
    async def create(request: Request) -> Response:
        visitor, form = await admin_form(request)
        try:
            name = account_name(form)
            with service.ledger.transaction() as session:
                identity.add_account(
                    session,
                    name=name,
                    grants=[grant_from(form)],
                    now=service.clock.now(),
                    actor=visitor.name,
                    display_name=str(form.get("display_name") or "").strip() or None,
                    password=str(form.get("password") or "") or None,
                )
        except AccountError as refused:
            why = Refusal("create", str(refused), field_of(str(refused)))
            posted = {k: v for k, v in form.items() if k != "password"}
            return accounts_page(request, visitor, refused=why, posted=posted)
        return see_other(f"/admin/accounts/{name}?done=created")

    @app.post("/admin/accounts/{name}/grants", include_in_schema=False)
    async def grant(request: Request, name: str) -> Response:
        visitor, form = await admin_form(request)
        try:
            with service.ledger.transaction() as session:
                found = identity.account(session, name)
                identity.add_grant(
                    session,
                    account=found,
                    grant=grant_from(form),
                    now=service.clock.now(),
                    actor=visitor.name,
                )
        except AccountError as refused:
            why = Refusal("grant", str(refused), field_of(str(refused)))
            return account_page(request, visitor, name, refused=why, posted=form)
        return see_other(f"/admin/accounts/{name}?done=granted")

    @app.post("/admin/accounts/{name}/deactivate", include_in_schema=False)
    async def deactivate(request: Request, name: str) -> Response:
        visitor, form = await admin_form(request)
        try:
            if name == visitor.name:
                raise AccountError("an admin does not close their own account: ask another admin")
            with service.ledger.transaction() as session:
                identity.deactivate(session, name=name, now=service.clock.now(), actor=visitor.name)
        except AccountError as refused:
            why = Refusal("deactivate", str(refused))
            return account_page(request, visitor, name, refused=why, posted=form)
        return see_other(f"/admin/accounts/{name}?done=deactivated")

    @app.post("/admin/accounts/{name}/tokens", include_in_schema=False)
    async def issue(request: Request, name: str) -> Response:
        visitor, form = await admin_form(request)
        now = service.clock.now()
        try:
            scopes = SCOPES.get(str(form.get("scopes") or ""))
            if scopes is None:
                raise AccountError("choose what the token may do: read, or read and write")
            days = token_days(form)
            with service.ledger.transaction() as session:
                token_id, secret = identity.issue_token(
                    session,
                    name=name,
                    label=str(form.get("label") or "").strip() or "web",
                    scopes=scopes,
                    expires_in=timedelta(days=days),
                    now=now,
                    actor=visitor.name,
                )
        except AccountError as refused:
            field = "days" if "days" in str(refused) else None
            why = Refusal("token", str(refused), field)
            return account_page(request, visitor, name, refused=why, posted=form)
        waiting.keep(visitor.csrf, token_id, secret, now=now)
        return see_other(f"/admin/accounts/{name}?issued={token_id}#token-secret")

    @app.post("/admin/tokens/{token_id}/revoke", include_in_schema=False)
    async def revoke(request: Request, token_id: int) -> Response:
        visitor, _ = await admin_form(request)
        try:
            with service.ledger.transaction() as session:
                token = session.get(ApiToken, token_id)
                owner = session.get(identity.Account, token.account_id) if token else None
                identity.revoke_token(
                    session, token_id=token_id, now=service.clock.now(), actor=visitor.name
                )
        except AccountError as refused:
            return accounts_page(request, visitor, refused=Refusal("revoke", str(refused)))
        if owner is None:
            return see_other("/admin")
        return see_other(f"/admin/accounts/{owner.name}?done=revoked")

"""Who is calling: accounts and their roles, passwords, sessions, API tokens, and the security log.

Identity comes from a sign-in (password or the ministry's identity provider) or a token, never
from a name the caller sends. Passwords are kept as argon2id hashes, session and token secrets
as SHA-256 hashes: the ledger holds nothing that would let its reader sign in. Every sign-in,
failure, token and role change is appended to the security log, which also drives throttling.

Roles (one account may hold several grants):

    clerk, head      of one authority of one country: work that authority's hops
    coordinator      of a country: every hop and case of that country
    ministry         of a country: its routing and its cases, read; migrations
    auditor          of some countries or all (no country): reads, and reports
    admin            accounts and tokens; no case work
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.errors import Forbidden, NotSignedIn, RogatoryError
from models.ledger import Base, UTCDateTime

SESSION_TTL = timedelta(hours=8)
"""A working day: a session not used for this long must sign in again."""
TOUCH_EVERY = timedelta(minutes=5)
"""How often use is written back (a token's last use, a session's sliding expiry): a read
should not take the ledger's write lock on every call."""
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
TOKEN_PREFIX = "rgt_"


@cache
def _hasher() -> Any:
    """argon2id with the library's defaults (RFC 9106 second recommendation); imported on first
    use, so the commands that read a case never load it."""
    from argon2 import PasswordHasher

    return PasswordHasher()


class RoleName(StrEnum):
    CLERK = "clerk"
    HEAD = "head"
    COORDINATOR = "coordinator"
    MINISTRY = "ministry"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Scope(StrEnum):
    """What a token may be used for, on top of its account's roles."""

    READ = "read"
    WRITE = "write"


# -- tables --------------------------------------------------------------------------------------


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    """`<issuer> <sub>` of the identity provider's account this one signs in as."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RoleGrant(Base):
    __tablename__ = "role_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))
    authority: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("account_id", "role", "country", "authority"),)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SecurityEvent(Base):
    """Append-only: sign-ins, failures, sessions, tokens and role changes."""

    __tablename__ = "security_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    account: Mapped[str | None] = mapped_column(String(64), index=True)
    address: Mapped[str | None] = mapped_column(String(64), index=True)
    actor: Mapped[str | None] = mapped_column(String(128))
    """Who did it, when it is not the account itself (an admin adding a role)."""
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# -- the caller ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    role: RoleName
    country: str | None = None
    authority: str | None = None

    def __str__(self) -> str:
        where = "/".join(p for p in (self.country, self.authority) if p)
        return f"{self.role}{' of ' + where if where else ''}"


@dataclass(frozen=True)
class Caller:
    """Who sends a command or a query, as a sign-in or a token established it."""

    name: str
    grants: tuple[Grant, ...] = ()
    scopes: frozenset[Scope] = field(default_factory=lambda: frozenset(Scope))
    local: bool = False
    """Runs on the server's own ledger with its credentials (the command line there)."""

    @property
    def actor(self) -> str:
        """The name recorded as the actor of every ledger event this caller causes."""
        return self.name

    def holds(self, role: RoleName, *, country: str | None = None) -> list[Grant]:
        return [
            g
            for g in self.grants
            if g.role == role and (country is None or g.country in (country, None))
        ]

    def require_scope(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this token is limited to {', '.join(sorted(self.scopes))}")


def local_caller(os_user: str) -> Caller:
    """The command line on the server itself: it holds the database, so it may do anything."""
    return Caller(name=f"local:{os_user}", local=True)


# -- accounts and roles --------------------------------------------------------------------------


class AccountError(RogatoryError):
    """An account command was refused (unknown account, a role without its country, ...)."""


def check_grant(grant: Grant) -> None:
    """A role names exactly the places it reaches."""
    needs_authority = grant.role in (RoleName.CLERK, RoleName.HEAD)
    needs_country = grant.role in (
        RoleName.CLERK,
        RoleName.HEAD,
        RoleName.COORDINATOR,
        RoleName.MINISTRY,
    )
    if needs_country and not grant.country:
        raise AccountError(f"a {grant.role} needs --country")
    if needs_authority and not grant.authority:
        raise AccountError(f"a {grant.role} needs --authority (the authority's id)")
    if not needs_authority and grant.authority:
        raise AccountError(f"a {grant.role} is not tied to one authority: drop --authority")
    if grant.role == RoleName.ADMIN and grant.country:
        raise AccountError("an admin is not tied to a country: drop --country")


def hash_password(password: str) -> str:
    if len(password) < 12:
        raise AccountError("a password needs at least 12 characters")
    hashed: str = _hasher().hash(password)
    return hashed


def add_account(
    session: Session,
    *,
    name: str,
    grants: Iterable[Grant],
    now: datetime,
    actor: str,
    display_name: str | None = None,
    password: str | None = None,
    oidc_subject: str | None = None,
) -> Account:
    """A new account with its roles; every grant is checked and logged."""
    if session.scalar(select(Account.id).where(Account.name == name)) is not None:
        raise AccountError(f"an account {name!r} already exists: use `rogatory user grant`")
    account = Account(
        name=name,
        display_name=display_name or name,
        password_hash=hash_password(password) if password else None,
        oidc_subject=oidc_subject,
        active=True,
        created_at=now,
    )
    session.add(account)
    session.flush()
    log(session, "account_added", now=now, account=name, actor=actor)
    for grant in grants:
        add_grant(session, account=account, grant=grant, now=now, actor=actor)
    return account


def account(session: Session, name: str) -> Account:
    found = session.scalar(select(Account).where(Account.name == name))
    if found is None:
        raise AccountError(f"no account {name!r} (see `rogatory user list`)")
    return found


def add_grant(
    session: Session, *, account: Account, grant: Grant, now: datetime, actor: str
) -> None:
    check_grant(grant)
    if grant in grants_of(session, account.id):
        raise AccountError(f"{account.name} already holds the role {grant}")
    session.add(
        RoleGrant(
            account_id=account.id,
            role=str(grant.role),
            country=grant.country,
            authority=grant.authority,
        )
    )
    log(
        session,
        "role_granted",
        now=now,
        account=account.name,
        actor=actor,
        detail={"grant": str(grant)},
    )


def account_for_subject(session: Session, subject: str) -> Account | None:
    """The account an admin linked to an identity provider's `<issuer> <sub>`, if any."""
    return session.scalar(select(Account).where(Account.oidc_subject == subject))


def grants_of(session: Session, account_id: int) -> tuple[Grant, ...]:
    rows = session.execute(
        select(RoleGrant.role, RoleGrant.country, RoleGrant.authority)
        .where(RoleGrant.account_id == account_id)
        .order_by(RoleGrant.id)
    ).all()
    return tuple(Grant(RoleName(r.role), r.country, r.authority) for r in rows)


def caller_of(session: Session, account: Account, scopes: Iterable[Scope] = tuple(Scope)) -> Caller:
    return Caller(
        name=account.name, grants=grants_of(session, account.id), scopes=frozenset(scopes)
    )


def deactivate(session: Session, *, name: str, now: datetime, actor: str) -> None:
    """Close an account: its sessions and tokens stop working at once."""
    found = account(session, name)
    found.active = False
    session.execute(
        update(ApiToken)
        .where(ApiToken.account_id == found.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.execute(
        update(WebSession)
        .where(WebSession.account_id == found.id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    log(session, "account_revoked", now=now, account=name, actor=actor)


# -- secrets ---------------------------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(
    session: Session,
    *,
    name: str,
    label: str,
    scopes: Iterable[Scope],
    expires_in: timedelta,
    now: datetime,
    actor: str,
) -> tuple[int, str]:
    """A new API token for account `name`: (its id, the secret, shown this once only)."""
    found = account(session, name)
    if not found.active:
        raise AccountError(f"account {name!r} is closed")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        account_id=found.id,
        secret_hash=_digest(secret),
        label=label,
        scopes=sorted(str(s) for s in scopes),
        created_at=now,
        expires_at=now + expires_in,
        revoked_at=None,
        last_used_at=None,
    )
    session.add(token)
    session.flush()
    log(
        session,
        "token_issued",
        now=now,
        account=name,
        actor=actor,
        detail={
            "token": token.id,
            "label": label,
            "scopes": token.scopes,
            "expires_at": token.expires_at.isoformat(),
        },
    )
    return token.id, secret


def revoke_token(session: Session, *, token_id: int, now: datetime, actor: str) -> None:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise AccountError(f"no token {token_id}")
    token.revoked_at = token.revoked_at or now
    owner = session.get(Account, token.account_id)
    log(
        session,
        "token_revoked",
        now=now,
        account=owner.name if owner else None,
        actor=actor,
        detail={"token": token_id},
    )


def caller_from_token(session: Session, secret: str, *, now: datetime) -> Caller:
    token = session.scalar(select(ApiToken).where(ApiToken.secret_hash == _digest(secret)))
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        why = "unknown" if token is None else "revoked" if token.revoked_at else "expired"
        raise NotSignedIn(f"the API token is {why}: ask an admin for a new one")
    owner = session.get(Account, token.account_id)
    if owner is None or not owner.active:
        raise NotSignedIn("the token's account is closed")
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        token.last_used_at = now
    return caller_of(session, owner, [Scope(s) for s in token.scopes])


# -- signing in ------------------------------------------------------------------------------------


def _recent_failures(session: Session, *, now: datetime, **where: str) -> int:
    query = (
        select(func.count())
        .select_from(SecurityEvent)
        .where(SecurityEvent.kind == "sign_in_failed", SecurityEvent.at > now - THROTTLE_WINDOW)
    )
    for column, value in where.items():
        query = query.where(getattr(SecurityEvent, column) == value)
    return int(session.scalar(query) or 0)


def sign_in(
    session: Session, *, name: str, password: str, address: str, now: datetime
) -> Account | str:
    """Check a password, throttled per account and per address: the account, or why not.

    Every attempt is logged, refusals included, so the caller commits before it refuses: the
    failures are what throttling counts.
    """
    minutes = int(THROTTLE_WINDOW.total_seconds() // 60)
    if (
        _recent_failures(session, now=now, account=name) >= MAX_FAILURES_PER_ACCOUNT
        or _recent_failures(session, now=now, address=address) >= MAX_FAILURES_PER_ADDRESS
    ):
        log(session, "sign_in_throttled", now=now, account=name, address=address)
        return f"too many failed sign-ins: wait {minutes} minutes and try again"
    found = session.scalar(select(Account).where(Account.name == name))
    ok = False
    if found is not None and found.active and found.password_hash:
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            ok = _hasher().verify(found.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        _hasher().hash(password)  # the same work as a real check: no timing tells names apart
    if not ok or found is None:
        log(session, "sign_in_failed", now=now, account=name, address=address)
        return "unknown username or wrong password"
    log(session, "signed_in", now=now, account=name, address=address)
    return found


def open_session(
    session: Session, *, account: Account, now: datetime, ttl: timedelta = SESSION_TTL
) -> tuple[str, str]:
    """A new web session for `account`: (the cookie's secret, the CSRF token for its forms)."""
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            secret_hash=_digest(secret),
            account_id=account.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + ttl,
            revoked_at=None,
        )
    )
    return secret, csrf


def caller_from_session(session: Session, secret: str, *, now: datetime) -> tuple[Caller, str]:
    """The caller of a session cookie and its CSRF token; the session slides while it is used."""
    found = session.scalar(select(WebSession).where(WebSession.secret_hash == _digest(secret)))
    if found is None or found.revoked_at is not None or found.expires_at <= now:
        raise NotSignedIn("the session has ended: sign in again")
    owner = session.get(Account, found.account_id)
    if owner is None or not owner.active:
        raise NotSignedIn("the account is closed")
    if found.expires_at - SESSION_TTL < now - TOUCH_EVERY:
        found.expires_at = now + SESSION_TTL
    return caller_of(session, owner), found.csrf_token


def close_session(session: Session, secret: str, *, now: datetime) -> None:
    session.execute(
        update(WebSession)
        .where(WebSession.secret_hash == _digest(secret), WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def log(
    session: Session,
    kind: str,
    *,
    now: datetime,
    account: str | None = None,
    address: str | None = None,
    actor: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        SecurityEvent(
            at=now, kind=kind, account=account, address=address, actor=actor, detail=detail or {}
        )
    )


def accounts(session: Session) -> list[dict[str, Any]]:
    """Every account with its roles and live tokens, for `rogatory user list`."""
    out = []
    for found in session.scalars(select(Account).order_by(Account.name)):
        tokens = session.execute(
            select(ApiToken.id, ApiToken.label, ApiToken.scopes, ApiToken.expires_at).where(
                ApiToken.account_id == found.id, ApiToken.revoked_at.is_(None)
            )
        ).all()
        out.append(
            {
                "name": found.name,
                "display_name": found.display_name,
                "active": found.active,
                "roles": [str(g) for g in grants_of(session, found.id)],
                "password": found.password_hash is not None,
                "oidc": found.oidc_subject,
                "tokens": [dict(t._mapping) for t in tokens],
            }
        )
    return out


def officers(session: Session, *, country: str, authority: str) -> list[tuple[str, str]]:
    """The active accounts that clerk or head for an authority: (name, display name), by name."""
    rows = session.execute(
        select(Account.name, Account.display_name)
        .join(RoleGrant, RoleGrant.account_id == Account.id)
        .where(
            Account.active.is_(True),
            RoleGrant.country == country,
            RoleGrant.authority == authority,
            RoleGrant.role.in_([RoleName.CLERK.value, RoleName.HEAD.value]),
        )
        .distinct()
        .order_by(Account.name)
    ).all()
    return [(r.name, r.display_name) for r in rows]


@dataclass(frozen=True)
class TokenRow:
    """An API token as an admin sees it: never its secret, which the ledger does not hold."""

    id: int
    account: str
    label: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "live"


def tokens(session: Session, *, account: str | None = None) -> list[TokenRow]:
    """Every token (of one account), revoked and expired ones included, newest last."""
    query = select(
        ApiToken.id,
        Account.name,
        ApiToken.label,
        ApiToken.scopes,
        ApiToken.created_at,
        ApiToken.expires_at,
        ApiToken.last_used_at,
        ApiToken.revoked_at,
    ).join(Account, Account.id == ApiToken.account_id)
    if account is not None:
        query = query.where(Account.name == account)
    return [TokenRow(*row) for row in session.execute(query.order_by(ApiToken.id))]

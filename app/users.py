"""`rogatory user ...` and `rogatory web`: accounts, roles and tokens on the server, and serving
the HTTP API. Account commands run on the server's own ledger (its administrator's shell) and
are recorded in the security log as `local:<os user>`."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import timedelta
from typing import Any

from app.cli import emit

Sub = Any


def register(sub: Sub) -> None:
    sub.add_parser("user", help="accounts, roles and API tokens", build=_user_options)

    web = sub.add_parser(
        "web", help="serve the web workspace and the HTTP API (OpenAPI at /api/docs)"
    )
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8800)
    web.set_defaults(handler=serve_web)


def _user_options(u: argparse.ArgumentParser) -> None:
    us = u.add_subparsers(metavar="ACTION", required=True)

    add = us.add_parser("add", help="create an account with a role")
    add.add_argument("name")
    _grant_options(add)
    add.add_argument("--display-name")
    add.add_argument(
        "--password-stdin", action="store_true", help="read a password (12+ characters) from stdin"
    )
    add.add_argument("--oidc-subject", help="'<issuer> <sub>' of its identity-provider account")
    add.set_defaults(handler=user_add)

    grant = us.add_parser("grant", help="give an existing account one more role")
    grant.add_argument("name")
    _grant_options(grant)
    grant.set_defaults(handler=user_grant)

    token = us.add_parser("token", help="issue an API token (shown once)")
    token.add_argument("name")
    token.add_argument("--label", default="command line")
    token.add_argument("--read-only", action="store_true", help="reads only, no commands")
    token.add_argument("--days", type=int, default=90, help="days until it expires (default 90)")
    token.add_argument("--json", action="store_true")
    token.set_defaults(handler=user_token)

    revoke = us.add_parser("revoke", help="close an account, or revoke one token")
    revoke.add_argument("name", nargs="?")
    revoke.add_argument("--token", type=int, help="revoke only this token (its id)")
    revoke.set_defaults(handler=user_revoke)

    listing = us.add_parser("list", help="accounts, their roles and live tokens")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=user_list)


def _grant_options(p: argparse.ArgumentParser) -> None:
    from models.identity import RoleName

    p.add_argument("--role", required=True, choices=[r.value for r in RoleName])
    p.add_argument("--country", help="the country it works for (not for admin; all for auditor)")
    p.add_argument("--authority", help="the authority's id (clerk and head)")


def _grant(args: argparse.Namespace) -> Any:
    from models.identity import Grant, RoleName

    return Grant(
        RoleName(args.role), args.country.upper() if args.country else None, args.authority
    )


def _actor() -> str:
    return f"local:{getpass.getuser()}"


def user_add(args: argparse.Namespace) -> int:
    from models.clock import clock_from_env
    from models.identity import add_account
    from models.ledger import Ledger

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    with Ledger() as ledger, ledger.transaction() as session:
        add_account(
            session,
            name=args.name,
            grants=[_grant(args)],
            now=clock_from_env().now(),
            actor=_actor(),
            display_name=args.display_name,
            password=password,
            oidc_subject=args.oidc_subject,
        )
    print(f"account {args.name} added: {_grant(args)}")
    return 0


def user_grant(args: argparse.Namespace) -> int:
    from models.clock import clock_from_env
    from models.identity import account, add_grant
    from models.ledger import Ledger

    with Ledger() as ledger, ledger.transaction() as session:
        add_grant(
            session,
            account=account(session, args.name),
            grant=_grant(args),
            now=clock_from_env().now(),
            actor=_actor(),
        )
    print(f"{args.name} is now also {_grant(args)}")
    return 0


def user_token(args: argparse.Namespace) -> int:
    from models.clock import clock_from_env
    from models.identity import Scope, issue_token
    from models.ledger import Ledger

    scopes = [Scope.READ] if args.read_only else list(Scope)
    with Ledger() as ledger, ledger.transaction() as session:
        token_id, secret = issue_token(
            session,
            name=args.name,
            label=args.label,
            scopes=scopes,
            expires_in=timedelta(days=args.days),
            now=clock_from_env().now(),
            actor=_actor(),
        )
    emit(
        args,
        {"id": token_id, "token": secret, "scopes": [str(s) for s in scopes], "days": args.days},
        f"token {token_id} for {args.name} ({', '.join(scopes)}, {args.days} days); it is shown "
        f"this once, keep it secret:\n{secret}",
    )
    return 0


def user_revoke(args: argparse.Namespace) -> int:
    from models.clock import clock_from_env
    from models.identity import deactivate, revoke_token
    from models.ledger import Ledger

    if args.token is None and not args.name:
        raise SystemExit("name an account to close, or --token ID to revoke one token")
    with Ledger() as ledger, ledger.transaction() as session:
        now = clock_from_env().now()
        if args.token is not None:
            revoke_token(session, token_id=args.token, now=now, actor=_actor())
            print(f"token {args.token} revoked")
        else:
            deactivate(session, name=args.name, now=now, actor=_actor())
            print(f"account {args.name} closed: its sessions and tokens stopped working")
    return 0


def user_list(args: argparse.Namespace) -> int:
    from models.identity import accounts
    from models.ledger import Ledger

    with Ledger() as ledger, ledger.session() as session:
        found = accounts(session)
    lines = [
        f"{a['name']:<20} {'active' if a['active'] else 'closed':<7} "
        f"{'; '.join(a['roles']) or 'no role'}  tokens: "
        f"{', '.join(str(t['id']) for t in a['tokens']) or 'none'}"
        for a in found
    ]
    emit(args, found, "\n".join(lines) or "no account yet: `rogatory user add NAME --role ...`")
    return 0


def serve_web(args: argparse.Namespace) -> int:
    import uvicorn

    from app.api import create_app

    print(
        f"rogatory workspace on http://{args.host}:{args.port}/ (API: /api, docs: /api/docs)",
        flush=True,
    )
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0

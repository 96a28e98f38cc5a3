"""`rogatory user ...`: accounts, roles and tokens from the server's command line, each change in
the security log, a revoked account's token refused at once."""

from __future__ import annotations

import getpass
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from app.cli import main
from models.errors import NotSignedIn
from models.identity import SecurityEvent, caller_from_token
from models.ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("ROGATORY_DATABASE_URL", url)
    monkeypatch.delenv("ROGATORY_CLOCK", raising=False)
    return Ledger(url, migrate=True)


def test_accounts_roles_and_tokens_from_the_command_line(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough passphrase\n"))
    assert (
        main(
            [
                "user",
                "add",
                "maria",
                "--role",
                "clerk",
                "--country",
                "sv",
                "--authority",
                "fgr",
                "--password-stdin",
            ]
        )
        == 0
    )
    assert (
        main(["user", "grant", "maria", "--role", "head", "--country", "SV", "--authority", "fgr"])
        == 0
    )
    capsys.readouterr()
    assert main(["user", "token", "maria", "--read-only", "--json"]) == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["token"].startswith("rgt_") and issued["scopes"] == ["read"]
    assert main(["user", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["roles"] == ["clerk of SV/fgr", "head of SV/fgr"] and listed["password"]
    assert issued["token"] not in json.dumps(listed)  # shown once, stored hashed

    assert main(["user", "revoke", "maria"]) == 0
    with ledger.session() as session, pytest.raises(NotSignedIn):
        caller_from_token(session, issued["token"], now=datetime.now(UTC))
    with ledger.session() as session:
        log = session.execute(select(SecurityEvent.kind, SecurityEvent.actor)).all()
    assert [k for k, _ in log] == [
        "account_added",
        "role_granted",
        "role_granted",
        "token_issued",
        "account_revoked",
    ]
    assert {a for _, a in log} == {f"local:{getpass.getuser()}"}


def test_a_role_without_the_places_it_reaches_is_refused(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["user", "add", "lopez", "--role", "clerk", "--country", "SV"]) == 1
    assert "a clerk needs --authority" in capsys.readouterr().err
    assert main(["user", "add", "root", "--role", "admin", "--country", "SV"]) == 1
    assert "an admin is not tied to a country" in capsys.readouterr().err
    with ledger.session() as session:
        assert session.execute(select(SecurityEvent.id)).first() is None

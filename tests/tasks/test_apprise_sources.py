"""Where apprise's configuration comes from: a Prefect Secret block first, then a file outside
the checkout, then the shipped outbox-only file; credentials inside a git checkout are refused.

The Secret block is read from Prefect's test harness (one server for the session); real mail goes
to an SMTP server on loopback (aiosmtpd) that asks for the password the Secret holds.
"""

from __future__ import annotations

import email
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.system import Secret

from models.errors import NotificationError
from models.ledger import Ledger
from tasks.notify import load_apprise, read_outbox, recipient_id, send_pending
from tasks.notify_sources import apprise_source, with_credentials
from tests.conftest import REPO, _free_port
from tests.tasks.test_deliveries import NOW, _owe

SECRET = "rogatory-apprise-test"


@pytest.fixture(autouse=True)
def no_source(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ROGATORY_APPRISE_SECRET",
        "ROGATORY_APPRISE_CONFIG",
        "ROGATORY_APPRISE_ALLOW_IN_REPO",
        "ROGATORY_CONFIG_DIR",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)


def _urls(notifier: Any, tag: str) -> list[str]:
    return [recipient_id(s) for s in notifier.find(tag, match_always=False)]


class AuthSmtp:
    """A real SMTP server on loopback that accepts mail only after AUTH with one password."""

    def __init__(self, *, user: str, password: str) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[email.message.Message] = []
        self.logins: list[str] = []
        self.port = _free_port()
        outer = self

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any):
            ok = auth.login.decode() == user and auth.password.decode() == password
            if ok:
                outer.logins.append(auth.login.decode())
            return AuthResult(success=ok)

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                outer.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=False,
        )

    def __enter__(self) -> AuthSmtp:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def test_the_secret_block_comes_before_the_file(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Secret(value="desk=outbox://local?recipient=from-secret\n").save(SECRET, overwrite=True)
    outside = tmp_path / "apprise.conf"
    outside.write_text("desk=outbox://local?recipient=from-file\n")
    monkeypatch.setenv("ROGATORY_APPRISE_CONFIG", str(outside))
    assert _urls(load_apprise(), "desk") == ["outbox://local?recipient=from-file"]

    monkeypatch.setenv("ROGATORY_APPRISE_SECRET", SECRET)
    assert str(apprise_source()) == f"the Prefect Secret block {SECRET!r}"
    assert _urls(load_apprise(), "desk") == ["outbox://local?recipient=from-secret"]


def test_a_secret_block_that_is_missing_is_an_error_not_the_outbox(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROGATORY_APPRISE_SECRET", "no-such-block")
    with pytest.raises(NotificationError, match="Prefect Secret block 'no-such-block'"):
        load_apprise()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_real_mail_goes_out_with_the_password_the_secret_holds(
    prefect_harness: None,
    sqlite_ledger: Ledger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROGATORY_OUTBOX", str(tmp_path / "outbox"))
    with AuthSmtp(user="rogatory", password="s3cret-pw") as smtp:
        url = (
            f"mailto://rogatory:s3cret-pw@127.0.0.1:{smtp.port}?mode=insecure"
            "&from=rogatory@example.org&to=coordination@example.org"
        )
        Secret(value=f"sv-coordination={url}\n").save(SECRET, overwrite=True)
        monkeypatch.setenv("ROGATORY_APPRISE_SECRET", SECRET)
        _owe(sqlite_ledger, "sv-coordination")
        sent = send_pending(ledger=sqlite_ledger, now=NOW)  # no notifier: the source in force
    assert (sent.sent, sent.failed) == (1, 0)
    assert smtp.logins == ["rogatory"]
    (message,) = smtp.messages
    assert message["To"] == "coordination@example.org"
    assert "SV-2026-000001" in message["Subject"]
    assert read_outbox(tmp_path / "outbox") == []


def test_a_file_outside_the_checkout_may_hold_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "etc" / "apprise.conf"
    outside.parent.mkdir()
    outside.write_text("sv-coordination=mailto://desk:pw@smtp.example.org?to=d@example.org\n")
    monkeypatch.setenv("ROGATORY_APPRISE_CONFIG", str(outside))
    notifier = load_apprise()
    assert len(with_credentials(notifier)) == 1
    assert "pw@" not in with_credentials(notifier)[0], "shown with the password masked"


@pytest.mark.parametrize(
    "line",
    [
        "sv-coordination=mailto://desk:pw@smtp.example.org?to=d@example.org",
        "sv-csj=slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
        "sv-fgr=json://user:pw@hooks.example.org/rogatory",
    ],
)
def test_credentials_in_a_config_inside_a_git_checkout_are_refused(
    line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    inside = checkout / "config" / "apprise.conf"
    inside.parent.mkdir()
    inside.write_text(f"desk=outbox://local?recipient=desk\n{line}\n")
    monkeypatch.setenv("ROGATORY_APPRISE_CONFIG", str(inside))
    with pytest.raises(NotificationError) as refused:
        load_apprise()
    message = str(refused.value)
    assert str(inside) in message and f"git checkout {checkout}" in message
    assert line.split("=", 1)[0] in message and "ROGATORY_APPRISE_SECRET" in message
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in message and ":pw@" not in message

    monkeypatch.setenv("ROGATORY_APPRISE_ALLOW_IN_REPO", "1")
    assert len(with_credentials(load_apprise())) == 1


def test_the_shipped_config_holds_only_outbox_lines_and_loads_inside_the_checkout() -> None:
    shipped = REPO / "config" / "apprise.conf"
    assert (apprise_source().path or Path()).resolve() == shipped
    notifier = load_apprise(shipped)
    services = list(notifier)
    assert services and with_credentials(notifier) == []
    assert {recipient_id(s).split("://")[0] for s in services} == {"outbox"}


def test_validate_and_notify_config_check_the_secret_block_in_force(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from app.commands import validate
    from app.ops import notify_config

    # The shipped file serves every tag; the Secret block in force serves only one of them.
    Secret(value="sv-coordination=outbox://local?recipient=sv\n").save(SECRET, overwrite=True)
    monkeypatch.setenv("ROGATORY_APPRISE_SECRET", SECRET)
    assert validate(argparse.Namespace(paths=[])) == 0
    out = capsys.readouterr().out
    assert f"warning: the Prefect Secret block {SECRET!r} has no line for" in out
    assert "admin" in out.split("would stay pending:")[1]
    assert "sv-coordination," not in out.split("would stay pending:")[1]

    # notify config does not rewrite a file nobody reads: it prints the lines the block lacks.
    assert notify_config(argparse.Namespace(print=False)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "admin=outbox://local?recipient=admin" in lines
    assert not any(line.startswith("sv-coordination=") for line in lines)

"""Alerts a coordinator trusts: each recipient once, retried only where it failed, readable mail,
the apprise type the severity calls for, superseded when moot, and no backlog left behind.

Mail goes to a real SMTP server on loopback (aiosmtpd); the offline outbox is the real
`outbox://` notification. Nothing is mocked.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models import deliveries, engine
from models.clock import FixedClock
from models.contacts import add_missing_tags, contact_tags, outbox_config, served_tags
from models.ledger import Delivery, Ledger
from models.notices import Notice
from models.sweep import sweep_rungs
from tasks.notify import load_apprise, read_outbox, send_pending
from tests.conftest import _free_port
from tests.samples import intake

NOW = datetime(2026, 3, 2, 15, tzinfo=UTC)


class Smtp:
    """A real SMTP server on loopback, in this process; `messages` holds what it received."""

    def __init__(self, port: int | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.Message] = []
        self.port = port or _free_port()
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                outer.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> Smtp:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ROGATORY_OUTBOX", str(tmp_path / "outbox"))
    return tmp_path / "outbox"


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)
    yield ledger
    ledger.dispose()


def _config(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "apprise.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def _mail(port: int, to: str) -> str:
    return f"mailto://127.0.0.1:{port}?from=rogatory@example.org&to={to}"


def _owe(ledger: Ledger, *tags: str, key: str = "test:1", severity: str = "warning") -> None:
    notice = Notice(
        key=key,
        request_id=None,
        step_id=None,
        kind="overdue",
        severity=severity,  # type: ignore[arg-type]
        tags=list(tags),
        title="Overdue: SV-2026-000001 hop 1 is 3 business day(s) late",
        body="Case: SV-2026-000001\nHop 1: draft\nDays late: 3 business day(s)",
        due_at=NOW,
    )
    with ledger.transaction() as session:
        deliveries.record(session.connection(), [notice], now=NOW)


def _delivery(ledger: Ledger, key: str = "test:1") -> Any:
    with ledger.session() as session:
        return session.execute(select(Delivery).where(Delivery.key == key)).scalar_one()


def test_a_failed_channel_is_retried_alone_and_keeps_its_own_error(
    sqlite_ledger: Ledger, tmp_path: Path, outbox: Path
) -> None:
    port = _free_port()  # nothing listens there yet
    config = _config(
        tmp_path,
        "desk=outbox://local?recipient=desk",
        f"coordination={_mail(port, 'coordination@example.org')}",
    )
    _owe(sqlite_ledger, "desk", "coordination")
    first = send_pending(ledger=sqlite_ledger, now=NOW, notifier=load_apprise(config))
    assert (first.sent, first.failed) == (0, 1)
    row = _delivery(sqlite_ledger)
    assert row.status == "pending" and row.next_attempt_at == NOW + deliveries.BACKOFF[0]
    outbox_entry = row.recipients["outbox://local?recipient=desk"]
    assert outbox_entry["sent_at"] and outbox_entry["error"] is None
    (mail_id,) = [rid for rid in row.recipients if rid.startswith("mailto://")]
    assert "Connection error" in row.recipients[mail_id]["error"]
    assert len(read_outbox(outbox)) == 1

    with Smtp(port) as smtp:
        later = NOW + timedelta(minutes=2)
        again = send_pending(ledger=sqlite_ledger, now=later, notifier=load_apprise(config))
    assert (again.sent, again.failed) == (1, 0)
    assert len(read_outbox(outbox)) == 1, "the outbox already had it: not sent twice"
    assert len(smtp.messages) == 1
    row = _delivery(sqlite_ledger)
    assert row.status == "sent" and row.recipients[mail_id]["attempts"] == 2


def test_two_tags_on_one_address_get_one_mail_that_reads_as_lines(
    sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    with Smtp() as smtp:
        same = _mail(smtp.port, "unit@example.org")
        config = _config(tmp_path, f"holder={same}", f"head={same}")
        _owe(sqlite_ledger, "holder", "head")
        sent = send_pending(ledger=sqlite_ledger, now=NOW, notifier=load_apprise(config))
    assert sent.sent == 1 and len(smtp.messages) == 1
    message = smtp.messages[0]
    # Plain text, each fact on its own line: not HTML that a mail client runs into one line.
    assert message.get_content_type() == "text/plain"
    text = message.get_payload(decode=True).decode()
    assert "Case: SV-2026-000001\nHop 1: draft\nDays late: 3" in text.replace("\r\n", "\n")


def test_each_notice_carries_the_apprise_type_of_its_severity(
    sqlite_ledger: Ledger, tmp_path: Path, outbox: Path
) -> None:
    config = _config(tmp_path, "desk=outbox://local?recipient=desk")
    for n, severity in enumerate(["info", "warning", "failure"]):
        _owe(sqlite_ledger, "desk", key=f"test:{n}", severity=severity)
    send_pending(ledger=sqlite_ledger, now=NOW, notifier=load_apprise(config))
    assert [m["type"] for m in read_outbox(outbox)] == ["info", "warning", "failure"]


def test_a_backlog_drains_fully_in_one_pass(
    sqlite_ledger: Ledger, tmp_path: Path, outbox: Path
) -> None:
    config = _config(tmp_path, "desk=outbox://local?recipient=desk")
    notices = [
        Notice(f"k:{i}", None, None, "overdue", "warning", ["desk"], "t", "b", NOW)
        for i in range(1_234)
    ]
    with sqlite_ledger.transaction() as session:
        deliveries.record(session.connection(), notices, now=NOW)
    result = send_pending(ledger=sqlite_ledger, now=NOW, limit=500, notifier=load_apprise(config))
    assert (result.claimed, result.sent) == (1_234, 1_234)
    assert len(read_outbox(outbox)) == 1_234


def test_the_new_hop_notice_goes_out_before_the_escalation_and_a_decided_hop_is_not_chased(
    sqlite_ledger: Ledger, routings, tmp_path: Path, outbox: Path
) -> None:
    config = tmp_path / "apprise.conf"
    config.write_text(outbox_config(contact_tags([routings.for_country("SV")])))
    clock = FixedClock(NOW)
    with sqlite_ledger.transaction() as session:
        late = engine.register(session=session, clock=clock, routings=routings, data=intake())
        decided = engine.register(session=session, clock=clock, routings=routings, data=intake())
    # A watcher down for 40 days: both hops owe every rung of their ladder.
    later = NOW + timedelta(days=40)
    clock.set(later)
    with sqlite_ledger.transaction() as session:
        sweep_rungs(session=session, routings=routings, now=later)
        engine.decide(
            session=session,
            clock=clock,
            routings=routings,
            reference=decided.reference,
            outcome="forwarded",
        )
    send_pending(ledger=sqlite_ledger, now=later, notifier=load_apprise(config))
    sent = read_outbox(outbox)
    about_late = [
        (m["title"].split(":")[0], m["recipient"]) for m in sent if late.reference in m["title"]
    ]
    assert about_late == [
        ("New", "sv-fgr"),
        ("Escalation", "sv-coordination"),
        ("Escalation", "sv-fgr-head"),
    ]
    about_decided = [m["title"].split(":")[0] for m in sent if decided.reference in m["title"]]
    assert about_decided == ["New", "New"]  # hop 1's notice, then hop 2's; no escalation
    with sqlite_ledger.session() as session:
        moot = session.scalars(
            select(Delivery.last_error).where(
                Delivery.status == "superseded", Delivery.kind == "escalation"
            )
        ).all()
    assert moot == ["the hop was decided before this went out"]


def test_notify_config_adds_missing_tags_and_leaves_real_urls_alone(tmp_path: Path) -> None:
    real = "sv-coordination=mailto://user:secret@smtp.example.org?to=desk@example.org"
    config = _config(tmp_path, "# ours", real, "sv-fgr, sv-fgr-head=outbox://local")
    assert served_tags(config) == {"sv-coordination", "sv-fgr", "sv-fgr-head"}
    added = add_missing_tags(["sv-coordination", "sv-fgr", "gt-new-desk", "admin"], config)
    assert added == ["admin", "gt-new-desk"]
    text = config.read_text()
    assert real in text.splitlines() and text.startswith("# ours\n")
    assert "gt-new-desk=outbox://local?recipient=gt-new-desk" in text
    assert add_missing_tags(["gt-new-desk"], config) == []

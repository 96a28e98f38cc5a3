"""The coordinators' daily digest, mailed through a real SMTP server on loopback: one message per
country coordinator per day, whatever the number of runs, with a link to each case; and the
link at the end of every alert."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from models import engine
from models.clock import FixedClock
from models.digest import DIGEST_HOUR, digest_key
from models.ledger import Delivery, Ledger
from models.notices import HopState, hop_notice, slack_notice
from models.sweep import sweep_rungs
from tasks.digest import digest_now
from tasks.notify import load_apprise, send_pending
from tests.samples import intake
from tests.tasks.test_deliveries import Smtp, _mail

BASE = "https://rogatory.example.org"
# 09:00 in San Salvador (UTC-6) and 08:00 in Guatemala (UTC-6 too), on a Monday 41 days after
# the cases were registered: every hop is overdue and escalated.
NOW = datetime(2026, 4, 13, 15, tzinfo=UTC)
REGISTERED = NOW - timedelta(days=41)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    monkeypatch.setenv("ROGATORY_BASE_URL", BASE + "/")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)
    yield ledger
    ledger.dispose()


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    with Smtp() as server:
        yield server


def _apprise(tmp_path: Path, smtp: Smtp) -> Path:
    path = tmp_path / "apprise.conf"
    path.write_text(
        f"sv-coordination={_mail(smtp.port, 'coordination@sv.example.org')}\n"
        f"gt-coordination={_mail(smtp.port, 'coordination@gt.example.org')}\n"
    )
    return path


def _cases(ledger: Ledger, routings, *countries: str) -> list[str]:
    clock = FixedClock(REGISTERED)
    with ledger.transaction() as session:
        found = [
            engine.register(
                session=session, clock=clock, routings=routings, data=intake(country=c)
            ).reference
            for c in countries
        ]
        sweep_rungs(session=session, routings=routings, now=NOW)
    return found


def _send_digests(ledger: Ledger, config: Path, now: datetime = NOW) -> int:
    with ledger.session() as session:
        keys = list(session.scalars(select(Delivery.key).where(Delivery.kind == "digest")))
    return send_pending(ledger=ledger, now=now, notifier=load_apprise(config), keys=keys).sent


def _text(message) -> str:
    return message.get_payload(decode=True).decode().replace("\r\n", "\n")


def test_each_coordinator_gets_one_digest_a_day_however_often_it_runs(
    ledger: Ledger, routings, tmp_path: Path, smtp: Smtp
) -> None:
    sv, other_sv, gt = _cases(ledger, routings, "SV", "SV", "GT")
    config = _apprise(tmp_path, smtp)
    assert digest_now(ledger, now=NOW) == 2
    assert _send_digests(ledger, config) == 2
    assert sorted(m["To"] for m in smtp.messages) == [
        "coordination@gt.example.org",
        "coordination@sv.example.org",
    ]
    (to_sv,) = [m for m in smtp.messages if m["To"] == "coordination@sv.example.org"]
    assert to_sv["Subject"].startswith("Daily digest SV 2026-04-13: 2 overdue, 2 escalation(s)")
    body = _text(to_sv)
    for reference in (sv, other_sv):
        assert f"{reference} hop 1 (draft):" in body and f"{BASE}/cases/{reference}" in body
    assert "Fiscalía General de la República (fgr): 2" in body
    assert gt not in body, "one country per message"

    for later in (NOW + timedelta(minutes=5), NOW + timedelta(hours=8)):
        assert digest_now(ledger, now=later) == 0
        assert _send_digests(ledger, config, later) == 0
    assert len(smtp.messages) == 2

    tomorrow = NOW + timedelta(days=1)
    assert digest_now(ledger, now=tomorrow, countries=["SV"]) == 1
    assert _send_digests(ledger, config, tomorrow) == 1
    assert len(smtp.messages) == 3
    with ledger.session() as session:
        keys = sorted(session.scalars(select(Delivery.key).where(Delivery.kind == "digest")))
    assert keys == [
        digest_key("GT", date(2026, 4, 13)),
        digest_key("SV", date(2026, 4, 13)),
        digest_key("SV", date(2026, 4, 14)),
    ]


def test_the_scheduled_digest_waits_for_the_countrys_morning(ledger: Ledger, routings) -> None:
    _cases(ledger, routings, "SV")
    dawn = datetime(2026, 4, 13, 6 + DIGEST_HOUR - 1, 59, tzinfo=UTC)  # 06:59 in San Salvador
    assert digest_now(ledger, now=dawn, from_hour=DIGEST_HOUR) == 0
    assert digest_now(ledger, now=dawn + timedelta(minutes=1), from_hour=DIGEST_HOUR) == 1


def test_an_acknowledged_or_snoozed_escalation_leaves_the_digest(ledger: Ledger, routings) -> None:
    acknowledged, snoozed, open_ = _cases(ledger, routings, "SV", "SV", "SV")
    clock = FixedClock(NOW)
    with ledger.transaction() as session:
        engine.acknowledge(
            session=session, clock=clock, routings=routings, reference=acknowledged, note="called"
        )
        engine.snooze(
            session=session,
            clock=clock,
            routings=routings,
            reference=snoozed,
            until=date(2026, 4, 20),
            reason="minister away",
        )
    digest_now(ledger, now=NOW)
    with ledger.session() as session:
        body = session.scalar(select(Delivery.body).where(Delivery.kind == "digest")) or ""
    escalations = body.split("Escalations to see to:")[1].split("\n\n")[0]
    assert escalations.startswith(" 1\n") and open_ in escalations
    assert acknowledged not in escalations and snoozed not in escalations
    assert acknowledged in body.split("Escalations")[0], "still overdue all the same"


def test_a_country_with_nothing_owed_gets_no_digest(ledger: Ledger, routings) -> None:
    with ledger.transaction() as session:
        engine.register(session=session, clock=FixedClock(NOW), routings=routings, data=intake())
    assert digest_now(ledger, now=NOW) == 0


def test_every_alert_ends_with_its_case_link_when_the_base_url_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = HopState("SV-2026-000007", 1, "draft", "FGR", NOW, NOW, 0, None, "America/El_Salvador")

    def bodies() -> list[str]:
        hop = hop_notice(
            key="k", kind="overdue", state=state, request_id=1, step_id=1, tags=[], at=NOW, now=NOW
        )
        slack = slack_notice(
            reference="SV-2026-000007",
            request_id=1,
            prescription_date=date(2026, 5, 1),
            running=False,
            open_hop=1,
            threshold=30,
            tags=[],
            now=NOW,
        )
        return [hop.body, slack.body]

    monkeypatch.setenv("ROGATORY_BASE_URL", BASE + "/")
    for body in bodies():
        assert body.splitlines()[-1] == f"Open: {BASE}/cases/SV-2026-000007"
    monkeypatch.delenv("ROGATORY_BASE_URL")
    for body in bodies():
        assert "/cases/" not in body

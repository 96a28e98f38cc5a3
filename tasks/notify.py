"""Deliveries through apprise: the offline `outbox://` notification, the apprise config, retries.

Owed notifications are rows in the ledger's `deliveries` table (see models/sweep.py). Sending
claims a batch (status `sending`), hands each to apprise by tag, and marks it `sent`, or puts it
back to `pending` with a growing delay. A claim left behind by a crashed sender is taken back
after `STALE_CLAIM`. A delivery is never dropped: it stays visible as pending until it goes.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apprise
from apprise.decorators import notify as apprise_plugin
from prefect import task
from sqlalchemy import select, update

from models.ledger import Delivery, Ledger
from models.loader import Routing, config_root

AUDITORS_TAG = "auditors"
"""Who receives the audit report's summary (not tied to a country)."""
STALE_CLAIM = timedelta(minutes=15)
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
    timedelta(hours=24),
)


def outbox_dir() -> Path:
    """Where `outbox://` writes: $ROGATORY_OUTBOX, else <$ROGATORY_VAR or ./var>/outbox."""
    explicit = os.environ.get("ROGATORY_OUTBOX")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("ROGATORY_VAR", "var")) / "outbox"


@apprise_plugin(on="outbox", name="rogatory offline outbox")  # type: ignore[untyped-decorator,no-untyped-call]
def _outbox(
    body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kwargs: Any
) -> bool:
    """Append the message as one JSON line to the outbox file (works with no network)."""
    folder = outbox_dir()
    folder.mkdir(parents=True, exist_ok=True)
    query = meta.get("qsd") or {}
    line = json.dumps(
        {
            "at": datetime.now(UTC).isoformat(),
            "recipient": query.get("recipient", meta.get("host", "")),
            "type": str(notify_type),
            "title": title,
            "body": body,
        },
        ensure_ascii=False,
    )
    with open(folder / "outbox.jsonl", "a", encoding="utf-8") as out:
        fcntl.flock(out, fcntl.LOCK_EX)  # several watchers may write at once
        out.write(line + "\n")
    return True


def read_outbox(folder: Path | None = None) -> list[dict[str, Any]]:
    path = (folder or outbox_dir()) / "outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def apprise_config_path() -> Path:
    """$ROGATORY_APPRISE_CONFIG, else config/apprise.conf (apprise's TEXT config format)."""
    explicit = os.environ.get("ROGATORY_APPRISE_CONFIG")
    return Path(explicit) if explicit else config_root() / "apprise.conf"


def contact_tags(routings: Iterable[Routing]) -> list[str]:
    """Every apprise tag the country files can notify."""
    tags = set()
    for routing in routings:
        config = routing.config
        for role in config.contacts:
            for authority_id in config.authorities:
                tag = config.contact(role, authority_id)
                if tag:
                    tags.add(tag)
        for authority in config.authorities.values():
            tags.update(authority.contacts.values())
    tags.add(AUDITORS_TAG)
    return sorted(tags)


def outbox_config(tags: Iterable[str]) -> str:
    """An apprise TEXT config sending every tag to the offline outbox.

    TEXT rather than YAML: apprise 2.0's YAML loader trips over custom notifications
    (KeyError 'password' in post_process_parse_url_results), the TEXT loader does not.
    """
    lines = [
        "# Apprise configuration (TEXT format): `tags=URL`, one line per contact tag of",
        "# config/countries/*.yaml. Offline default: every tag goes to the local outbox",
        "# (var/outbox/outbox.jsonl). To reach people, put a real URL on a tag's line, e.g.",
        "#   sv-coordination=mailto://user:pass@smtp.example.org?to=desk@example.org",
        "# (see https://github.com/caronc/apprise/wiki). Regenerate the offline defaults with:",
        "#   rogatory notify config > config/apprise.conf",
    ]
    lines += [f"{tag}=outbox://local?recipient={tag}" for tag in tags]
    return "\n".join(lines) + "\n"


def load_apprise(path: Path | None = None) -> apprise.Apprise:
    config = apprise.AppriseConfig()
    config.add(str(path or apprise_config_path()))
    notifier = apprise.Apprise()
    notifier.add(config)
    return notifier


def send(notifier: apprise.Apprise, *, tags: list[str], title: str, body: str) -> bool:
    if not tags:
        return False
    # A list of tags means "any of them": each service tagged with one of them gets it once.
    return bool(notifier.notify(body=body, title=title, tag=list(tags)))


@dataclass(frozen=True)
class SendResult:
    claimed: int
    sent: int
    failed: int


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def send_pending(
    *,
    ledger: Ledger,
    now: datetime,
    limit: int = 500,
    notifier: apprise.Apprise | None = None,
    keys: list[str] | None = None,
) -> SendResult:
    """Send what is owed, once: claim, deliver through apprise, then mark sent or retry later.

    With `keys`, only those deliveries (a case flow sends its own hop notice at once).
    """
    worker = _worker_name()
    with ledger.transaction() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.status == "sending", Delivery.next_attempt_at < now - STALE_CLAIM)
            .values(status="pending", last_error="claim expired: the sender stopped")
        )
        owed = select(Delivery.id).where(
            Delivery.status == "pending", Delivery.next_attempt_at <= now
        )
        if keys is not None:
            owed = owed.where(Delivery.key.in_(keys))
        ids = session.scalars(owed.order_by(Delivery.due_at).limit(limit)).all()
        if ids:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids), Delivery.status == "pending")
                .values(status="sending", claimed_by=worker, next_attempt_at=now)
            )
    if not ids:
        return SendResult(0, 0, 0)
    with ledger.session() as session:
        claimed = session.execute(
            select(
                Delivery.id, Delivery.tags, Delivery.title, Delivery.body, Delivery.attempts
            ).where(
                Delivery.id.in_(ids), Delivery.status == "sending", Delivery.claimed_by == worker
            )
        ).all()
    notifier = notifier or load_apprise()
    sent, failed = 0, 0
    for row in claimed:
        try:
            ok = send(notifier, tags=list(row.tags), title=row.title, body=row.body)
            error = (
                None if ok else f"apprise could not deliver to {', '.join(row.tags) or 'nobody'}"
            )
        except Exception as exc:  # a broken plugin must not lose the delivery
            ok, error = False, f"{type(exc).__name__}: {exc}"
        with ledger.transaction() as session:
            if ok:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == row.id)
                    .values(status="sent", sent_at=now, attempts=row.attempts + 1, last_error=None)
                )
                sent += 1
            else:
                delay = BACKOFF[min(row.attempts, len(BACKOFF) - 1)]
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == row.id)
                    .values(
                        status="pending",
                        attempts=row.attempts + 1,
                        next_attempt_at=now + delay,
                        last_error=error,
                        claimed_by=None,
                    )
                )
                failed += 1
    return SendResult(len(claimed), sent, failed)


@task(name="send-deliveries", retries=2, retry_delay_seconds=[2, 10])
def send_deliveries(now: datetime | None = None) -> SendResult:
    """Prefect task: send owed deliveries (the ledger's rows make a retry harmless)."""
    with Ledger() as ledger:
        return send_pending(ledger=ledger, now=now or datetime.now(UTC))

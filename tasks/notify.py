"""Deliveries through apprise: the offline `outbox://` notification, the apprise config, sending.

Which notifications are owed, and their life from recorded to sent, is kept in the ledger by
`models.deliveries`; this module does the talking. Each claimed delivery's tags are resolved to
apprise services, each service gets the message once (two tags on one address: one message),
as plain text that apprise turns into lines for HTML services such as e-mail, with the
notification type its severity calls for. What apprise logs when a service fails is kept as
that recipient's error, and the next attempt goes only where it failed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apprise
from apprise.decorators import notify as apprise_plugin
from prefect import task

from models import deliveries
from models.deliveries import Outcome, Owed
from models.ledger import Ledger
from models.notices import opened_key
from models.var import private_file, private_folder
from tasks.notify_sources import AppriseSource, apprise_source, load_source


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
    folder = private_folder(outbox_dir())
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
    path = private_file(folder / "outbox.jsonl")
    with open(path, "a", encoding="utf-8") as out:
        fcntl.flock(out, fcntl.LOCK_EX)  # several watchers may write at once
        out.write(line + "\n")
    return True


def read_outbox(folder: Path | None = None) -> list[dict[str, Any]]:
    path = (folder or outbox_dir()) / "outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def load_apprise(path: Path | None = None) -> apprise.Apprise:
    """Apprise with the services of the config file `path`, else of the source in force."""
    return load_source(AppriseSource(path=path) if path else apprise_source())


def recipient_id(service: Any) -> str:
    """One apprise service as a recipient: its URL with secrets masked (two tags, one address).

    A custom notification (`outbox://`) reports only its scheme as its URL; the URL it was
    configured with, kept in its arguments, tells its recipients apart.
    """
    custom = getattr(service, "_default_args", None)
    if isinstance(custom, dict) and custom.get("url"):
        return str(custom["url"])
    return str(service.url(privacy=True))


def send_to(service: Any, *, title: str, body: str, severity: str) -> str | None:
    """Send one message to one apprise service; None when it went, else apprise's error."""
    try:
        with apprise.LogCapture(level=logging.WARNING) as log:  # type: ignore[no-untyped-call]
            ok = service.notify(
                title=title,
                body=body,
                notify_type=apprise.NotifyType(severity),
                body_format=apprise.NotifyFormat.TEXT,
            )
        said = [line.split(" - ", 2)[-1] for line in log.getvalue().splitlines() if line.strip()]
    except Exception as exc:  # a broken plugin must not lose the delivery
        return f"{type(exc).__name__}: {exc}"
    if ok:
        return None
    return (said[-1] if said else "apprise reported a failure")[:500]


def deliver(notifier: apprise.Apprise, owed: Owed) -> dict[str, Outcome]:
    """Send `owed` to every service its tags reach and that has not had it yet, once each."""
    had = owed.already_sent()
    outcomes: dict[str, Outcome] = {}
    services: dict[str, tuple[str, Any]] = {}
    for tag in owed.tags:
        found = list(notifier.find(tag, match_always=False))
        if not found:
            outcomes[f"tag:{tag}"] = Outcome(
                tag,
                f"no apprise service serves tag {tag!r} in {apprise_source()}: "
                "add a line for it, or run `rogatory notify config`",
            )
        for service in found:
            services.setdefault(recipient_id(service), (tag, service))
    for rid, (tag, service) in services.items():
        if rid not in had:
            error = send_to(service, title=owed.title, body=owed.body, severity=owed.severity)
            outcomes[rid] = Outcome(tag, error)
    return outcomes


def send(notifier: apprise.Apprise, *, tags: list[str], title: str, body: str) -> bool:
    """Send a message that is not a ledger delivery (a test message) to every service once."""
    owed = Owed(0, "", "test", "info", tags, title, body, 0, {})
    outcomes = deliver(notifier, owed)
    return bool(outcomes) and all(o.ok for o in outcomes.values())


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
    """Send everything owed at `now`, batch after batch, until nothing is left to claim.

    With `keys`, only those deliveries (a case flow sends its own hop notice at once). A
    delivery that fails is booked with a later attempt time, so the loop always ends.
    """
    worker = _worker_name()
    claimed = sent = failed = 0
    while True:
        batch = deliveries.claim(ledger, now=now, worker=worker, limit=limit, keys=keys)
        if not batch:
            break
        notifier = notifier or load_apprise()
        for owed in batch:
            if deliveries.finish(ledger, owed, deliver(notifier, owed), now=now):
                sent += 1
            else:
                failed += 1
        claimed += len(batch)
    return SendResult(claimed, sent, failed)


def announce_opened(ledger: Ledger, reference: str, hop: int) -> SendResult:
    """Send, now, the notice of a hop a command just opened (written in the command's own
    transaction). The case's flow run and the sweep stay the backstop: a notice this cannot
    send stays pending for them, and one they already sent is not claimed twice."""
    return send_pending(
        ledger=ledger, now=datetime.now(UTC), keys=[opened_key(reference, hop)], limit=1
    )


@task(name="send-deliveries", retries=2, retry_delay_seconds=[2, 10])
def send_deliveries(now: datetime | None = None) -> SendResult:
    """Prefect task: send owed deliveries (the ledger's rows make a retry harmless)."""
    with Ledger() as ledger:
        return send_pending(ledger=ledger, now=now or datetime.now(UTC))

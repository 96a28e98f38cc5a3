"""What each notification says, and how loud it is: one home for every message text.

A notice names the case reference, the hop, the authority, the dates and the figures, and what
to do; never names of persons or facts of the case. It is worded from the hop's state when it
is recorded (a reminder for a hop already late reads as overdue) and carries a severity that
becomes apprise's notification type.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from models.domain import Role
from models.loader import Routing

Severity = Literal["info", "warning", "failure"]
RUNG_KINDS = ("reminder", "overdue", "escalation")
"""Notices of a hop's escalation ladder: superseded by a higher one or by the hop closing."""
ADMIN_TAG = "admin"
"""Who runs the installation: told of cases the system could not process."""
AUDITORS_TAG = "auditors"
"""Who receives the audit report's summary (not tied to a country)."""
SEVERITY: dict[str, Severity] = {
    "opened": "info",
    "reminder": "info",
    "overdue": "warning",
    "escalation": "failure",
    "problem": "failure",
    "input_refused": "warning",
    "report": "info",
    "legal_reminder": "warning",
    "legal_overdue": "failure",
    "legal_escalation": "failure",
}


LATE_WORDS = {"bd": "business day(s)", "d": "day(s)", "h": "hour(s)"}
BASE_URL_VARIABLE = "ROGATORY_BASE_URL"
"""Where people open rogatory's web pages (`https://rogatory.example.org`): alerts link there."""


def case_link(reference: str) -> str | None:
    """The case page's address, when the installation says where its pages are."""
    base = os.environ.get(BASE_URL_VARIABLE, "").strip().rstrip("/")
    return f"{base}/cases/{reference}" if base else None


def with_link(lines: list[str], reference: str) -> str:
    """An alert's lines, ending with the link to its case's page when there is one."""
    link = case_link(reference)
    return "\n".join([*lines, f"Open: {link}"] if link else lines)


@dataclass(frozen=True)
class Notice:
    """One notification owed: who gets it (apprise tags), what it says, how loud it is."""

    key: str
    request_id: int | None
    step_id: int | None
    kind: str
    severity: Severity
    tags: list[str]
    title: str
    body: str
    due_at: datetime
    """When what it reports happened: notices go out in this order."""


def worded_kind(kind: str, *, due_at: datetime, now: datetime) -> str:
    """The kind a rung's notice is worded as now: "due soon" makes no sense once it is late."""
    return "overdue" if kind == "reminder" and now > due_at else kind


_ACTIONS = {
    "opened": "Acknowledge receipt and decide within the deadline: forward, return with a cause, "
    "refuse with a ground, postpone or execute, with `rogatory decide`.",
    "reminder": "Decide before the deadline, or stop the clock while waiting on the requester.",
    "overdue": "The deadline has passed: decide now, or record why it is waiting.",
    "escalation": "The hop is well past its deadline: the head of unit and the coordinator are "
    "asked to unblock it.",
}


@dataclass(frozen=True)
class HopState:
    """What a hop notice reports: the hop as it stands when the notice is recorded."""

    reference: str
    hop: int
    step: str
    holder_name: str
    opened_at: datetime
    due_at: datetime
    days_late: int
    prescription_date: date | None
    timezone: str
    late_unit: str = "bd"
    """What `days_late` counts: business days (`bd`), calendar days (`d`) or hours (`h`), as
    the hop's deadline (or a repeating rung) is counted."""


def hop_title(kind: str, state: HopState, *, today: date) -> str:
    """One line that says what happened to which hop; two rungs of one hop never read alike."""
    reference, hop = state.reference, state.hop
    if kind == "reminder":
        due = state.due_at.astimezone(ZoneInfo(state.timezone)).date()
        days = (due - today).days
        when = "today" if days <= 0 else f"in {days} day(s)"
        return f"Reminder: {reference} hop {hop} is due {when}, on {due}"
    if kind == "opened":
        return f"New: {reference} hop {hop} is now with you"
    return (
        f"{'Overdue' if kind == 'overdue' else 'Escalation'}: {reference} hop {hop} is "
        f"{state.days_late} {LATE_WORDS[state.late_unit]} late"
    )


def hop_notice(
    *,
    key: str,
    kind: str,
    state: HopState,
    request_id: int | None,
    step_id: int | None,
    tags: list[str],
    at: datetime,
    now: datetime,
) -> Notice:
    """A notice about one hop: opened, or a rung of its ladder (`at`: when it fell due)."""
    today = now.astimezone(ZoneInfo(state.timezone)).date()  # the holder's today
    return Notice(
        key=key,
        request_id=request_id,
        step_id=step_id,
        kind=kind,
        severity=SEVERITY[kind],
        tags=tags,
        title=hop_title(kind, state, today=today),
        body=hop_body(kind=kind, state=state, today=today),
        due_at=at,
    )


def hop_body(*, kind: str, state: HopState, today: date) -> str:
    """What is due, where, since when and what to do; one fact per line."""
    zone = ZoneInfo(state.timezone)
    return with_link(
        [
            f"Case: {state.reference}",
            f"Hop {state.hop}: {state.step}",
            f"Held by: {state.holder_name}",
            f"With you since: {local_time(state.opened_at, zone)}",
            f"Due: {local_time(state.due_at, zone)}",
            f"Days late: {state.days_late} {LATE_WORDS[state.late_unit]}",
            f"Prescription slack: {slack_text(state.prescription_date, today)}",
            f"What to do: {_ACTIONS.get(kind, _ACTIONS['overdue'])}",
        ],
        state.reference,
    )


@dataclass(frozen=True)
class DeadlineState:
    """What a legal deadline's notice reports (models.legal)."""

    reference: str
    deadline: str
    source: str
    runs_from: str
    anchored_at: datetime
    due_at: datetime
    late: str | None
    """How late, in the deadline's unit ("3 day(s)"), or None while it has not passed."""
    holder_name: str
    prescription_date: date | None
    timezone: str


def deadline_notice(
    *,
    key: str,
    kind: str,
    state: DeadlineState,
    request_id: int,
    tags: list[str],
    at: datetime,
    now: datetime,
) -> Notice:
    """A rung of a legal deadline's ladder: the article, the event it runs from, the due."""
    zone = ZoneInfo(state.timezone)
    today = now.astimezone(zone).date()
    due = state.due_at.astimezone(zone).date()
    if state.late is None:
        kind = "legal_reminder"
        title = f"Legal deadline: {state.reference} {state.deadline} expires on {due}"
        action = (
            "Decide before the legal deadline; if it cannot be met, inform the issuing "
            "authority with the reasons and record the extension the law allows "
            "(`rogatory deadline REF --event extended --deadline ID --reasons ...`)."
        )
    else:
        kind = "legal_escalation" if kind == "escalation" else "legal_overdue"
        title = (
            f"Legal deadline passed: {state.reference} {state.deadline} expired on {due}, "
            f"{state.late} ago"
        )
        action = (
            "The deadline the law sets has passed: decide now, and inform the issuing "
            "authority (a person held past an EAW surrender deadline is to be released, "
            "FD 2002/584/JHA art. 23(5))."
        )
    body = with_link(
        [
            f"Case: {state.reference}",
            f"Legal deadline: {state.deadline} ({state.source})",
            f"Runs from: {state.runs_from}, {local_time(state.anchored_at, zone)}",
            f"Due: {local_time(state.due_at, zone)}",
            f"Late: {state.late or 'not yet'}",
            f"Held now by: {state.holder_name}",
            f"Prescription slack: {slack_text(state.prescription_date, today)}",
            f"What to do: {action}",
        ],
        state.reference,
    )
    return Notice(
        key=key,
        request_id=request_id,
        step_id=None,
        kind=kind,
        severity=SEVERITY[kind],
        tags=tags,
        title=title,
        body=body,
        due_at=at,
    )


def opened_notice(
    *,
    routing: Routing,
    reference: str,
    request_id: int,
    hop: int,
    step: str,
    holder: str,
    opened_at: datetime,
    due_at: datetime,
    prescription_date: date | None,
    now: datetime,
) -> Notice:
    """The notice that tells a holder a hop is now theirs (recorded when the hop opens)."""
    calendar = routing.calendar(holder)
    return hop_notice(
        key=opened_key(reference, hop),
        kind="opened",
        state=HopState(
            reference=reference,
            hop=hop,
            step=step,
            holder_name=routing.config.authorities[holder].name,
            opened_at=opened_at,
            due_at=due_at,
            days_late=0,
            prescription_date=prescription_date,
            timezone=calendar.timezone,
        ),
        request_id=request_id,
        step_id=None,
        tags=role_tags(routing, [Role.HOLDER.value], holder),
        at=opened_at,
        now=now,
    )


def opened_key(reference: str, hop: int) -> str:
    return f"hop:{reference}:{hop}:opened"


def role_tags(routing: Routing, roles: Sequence[str], holder: str) -> list[str]:
    """The apprise tags of `roles` for a hop held by `holder`, under `routing`'s contacts."""
    tags = [routing.config.contact(Role(r), holder) for r in roles]
    return sorted({t for t in tags if t})


def slack_text(prescription_date: date | None, today: date) -> str:
    if prescription_date is None:
        return "not configured"
    return f"{(prescription_date - today).days} day(s) (prescription {prescription_date})"


def local_time(instant: datetime, zone: ZoneInfo) -> str:
    """`%Y-%m-%d %H:%M %Z` in `zone`, without strftime (the sweep formats thousands)."""
    t = instant.astimezone(zone)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d} {t.tzname()}"


def slack_notice(
    *,
    reference: str,
    request_id: int,
    prescription_date: date,
    running: bool,
    open_hop: int | None,
    threshold: int,
    tags: list[str],
    now: datetime,
) -> Notice:
    """The coordinator's alert that a case's prescription slack fell under `threshold` days."""
    slack = (prescription_date - now.date()).days
    state = "has PRESCRIBED" if slack < 0 else f"prescribes in {slack} day(s)"
    provisional = " (provisional: a suspension is running)" if running else ""
    return Notice(
        key=f"case:{reference}:slack:{threshold}",
        request_id=request_id,
        step_id=None,
        kind="prescription",
        severity="failure" if slack < 0 else "warning",
        tags=tags,
        title=f"Prescription risk: {reference} {state}",
        body=with_link(
            [
                f"Case: {reference}",
                f"Prescription date: {prescription_date}{provisional}",
                f"Slack: {slack} day(s), under the {threshold}-day threshold",
                f"Open hop: {open_hop if open_hop else 'none (with the requester)'}",
                "What to do: check where the request is stuck and whether a suspension or "
                "interruption can be recorded (`rogatory record`).",
            ],
            reference,
        ),
        due_at=now,
    )


def problem_digest(stage: str, message: str) -> str:
    return hashlib.sha256(f"{stage}\x1f{message}".encode()).hexdigest()[:24]


def problem_notice(
    *,
    reference: str,
    request_id: int | None,
    stage: str,
    message: str,
    tags: list[str],
    now: datetime,
) -> Notice:
    """Tell the admin and the coordinator, once, that a case could not be processed."""
    return Notice(
        key=f"problem:{reference}:{problem_digest(stage, message)}",
        request_id=request_id,
        step_id=None,
        kind="problem",
        severity="failure",
        tags=tags,
        title=f"Problem: {reference} could not be processed ({stage})",
        body=with_link(
            [
                f"Case: {reference}",
                f"Stage: {stage}",
                f"Problem: {message[:600]}",
                "Other cases carry on; this one is retried at every sweep.",
                "What to do: see `rogatory problems`, fix the cause (often the case's routing "
                "version), and check the case with `rogatory status`.",
            ],
            reference,
        ),
        due_at=now,
    )


def input_refused_notice(
    *,
    reference: str,
    request_id: int,
    hop: int | None,
    pause_key: str,
    reason: str,
    tags: list[str],
    now: datetime,
) -> Notice:
    """Tell the holder that a decision typed into the Prefect form was not applied, and why."""
    return Notice(
        key=input_refused_key(reference, pause_key),
        request_id=request_id,
        step_id=None,
        kind="input_refused",
        severity="warning",
        tags=tags,
        title=f"Not applied: a decision on {reference} typed into the Prefect form",
        body=with_link(
            [
                f"Case: {reference}",
                f"Hop it named: {hop if hop is not None else 'none'}",
                f"Why it was not applied: {reason[:600]}",
                "What to do: check the case with `rogatory status` and record the decision "
                "again if it still stands.",
            ],
            reference,
        ),
        due_at=now,
    )


def input_refused_key(reference: str, pause_key: str) -> str:
    return f"input:{reference}:{pause_key}:refused"


def report_message(*, headlines: list[str], folder: str) -> tuple[str, str]:
    """The auditors' note that a report is ready: its headlines and where the files are."""
    lines = ["The audit report is ready.", *(f"- {h}" for h in headlines[:6]), f"Files: {folder}"]
    return "rogatory audit report", "\n".join(lines)


def tampered_notice(
    *,
    reference: str,
    request_id: int | None,
    stage: str,
    message: str,
    tags: list[str],
    now: datetime,
) -> Notice:
    """Tell the admin and the auditors, once, that a case (or the ledger) does not verify."""
    whole = reference == "ledger"
    return Notice(
        key=f"problem:{reference}:{problem_digest(stage, message)}",
        request_id=request_id,
        step_id=None,
        kind="tampered",
        severity="failure",
        tags=sorted({ADMIN_TAG, *tags}),
        title="Ledger does not verify"
        if whole
        else f"Records altered: {reference} does not verify",
        body=with_link(
            [
                "The ledger's checkpoints" if whole else f"Case: {reference}",
                f"Found: {message[:600]}",
                "Nothing is sealed until this is seen to."
                if whole
                else "Every command on this case is refused until it verifies again.",
                "What to do: run `rogatory audit verify` to list everything that differs, find "
                "who had write access to the database, and restore from a verified backup "
                "(`rogatory restore`).",
            ],
            reference,
        ),
        due_at=now,
    )


def checkpoint_notice(statement: str, signature: str | None, *, now: datetime) -> Notice:
    """A checkpoint told to the auditors: a second witness, in their mailboxes."""
    data = json.loads(statement)
    return Notice(
        key=f"checkpoint:{data['checkpoint']}",
        request_id=None,
        step_id=None,
        kind="checkpoint",
        severity="info",
        tags=[AUDITORS_TAG],
        title=f"Ledger checkpoint {data['checkpoint']}: {data['cases']} cases",
        body="\n".join(
            [
                f"Statement: {statement}",
                f"Signature (Ed25519): {signature or 'unsigned: no key configured'}",
                "Keep this message: `rogatory audit verify` holds the ledger to its checkpoints.",
            ]
        ),
        due_at=now,
    )

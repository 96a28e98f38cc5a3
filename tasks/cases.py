"""Prefect tasks over the ledger: read where a case stands, apply a decision, announce a hop,
and the resume forms a case's run waits on.

Each task reads or writes the ledger and is safe to run twice: a flow re-runs from the top on
every resume, so everything here acts on what the ledger says, never on what the flow remembers.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import count
from typing import Any, Literal
from zoneinfo import ZoneInfo

from prefect import task
from prefect.input import RunInput
from pydantic import ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from models import deliveries, queries
from models.clock import clock_from_env
from models.commands import Decide
from models.domain import Outcome, Role
from models.engine import Routings
from models.errors import CommandRejected
from models.identity import Caller
from models.ledger import Ledger
from models.notices import (
    LATE_WORDS,
    case_link,
    input_refused_key,
    input_refused_notice,
    local_time,
    opened_notice,
    role_tags,
    slack_text,
)
from models.queries import CaseView, read_case_view
from tasks.notify import send_pending


def input_key(reference: str, view: CaseView, attempt: int = 0) -> str:
    """The suspend key for the case's current state: lowercase letters, digits and dashes only.

    It changes whenever the ledger moves (the event sequence is in it), so a resumed flow that
    finds a new hop open waits under a new key, and a rejected input is retried under `attempt`.
    """
    where = f"h{view.hop}" if view.hop is not None else "requester"
    return f"{reference.lower()}-{where}-s{view.last_seq}-a{attempt}"


@task(name="read-case", retries=3, retry_delay_seconds=[1, 5, 15])
def read_case(reference: str) -> CaseView:
    with Ledger() as ledger:
        return read_case_view(ledger, reference)


def announce_hop_now(ledger: Ledger, reference: str, *, now: datetime) -> int:
    """Send the holder's "new hop" notice for the open hop. Returns how many went.

    The command that opened the hop recorded the notice with it; recording it again here is a
    no-op, except for hops opened by code that records none (the backstop).
    """
    routings = Routings({})  # the case runs on its pinned routing, read from the ledger
    with ledger.transaction() as session:
        row = queries.open_hop(session, reference)
        if row is None:
            return 0
        notice = opened_notice(
            routing=routings.pinned(session, row.routing_version),
            reference=reference,
            request_id=row.request_id,
            hop=row.hop,
            step=row.step,
            holder=row.holder,
            opened_at=row.opened_at,
            due_at=row.due_at,
            prescription_date=row.prescription_date,
            now=now,
        )
        deliveries.record(session.connection(), [notice], now=now)
    return send_pending(ledger=ledger, now=now, keys=[notice.key]).sent


@task(name="announce-hop", retries=3, retry_delay_seconds=[1, 5, 15])
def announce_hop(reference: str) -> int:
    with Ledger() as ledger:
        return announce_hop_now(ledger, reference, now=clock_from_env().now())


# -- the resume forms -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HopOnDesk:
    """The open hop as its resume form shows it, dates in the holder's timezone."""

    reference: str
    hop: int
    step: str
    holder_name: str
    timezone: str
    opened_at: datetime
    due_at: datetime
    days_late: int
    """Business days past due; 0 when on time."""
    prescription_date: date | None
    today: date
    """The holder's today: the prescription slack counts from it."""
    outcomes: tuple[str, ...]
    """The decisions the route allows on this hop."""


def hop_on_desk(ledger: Ledger, reference: str, *, now: datetime) -> HopOnDesk | None:
    """The case's open hop with what its form needs; None when no hop is open."""
    with ledger.session() as session:
        row = queries.open_hop(session, reference)
        if row is None:
            return None
        routing = Routings({}).pinned(session, row.routing_version)
        timeline = queries.timeline(session=session, routing=routing, reference=reference, now=now)
    hop = next(h for h in timeline.hops if h.hop == row.hop)
    route = routing.config.route(timeline.route)
    return HopOnDesk(
        reference=reference,
        hop=hop.hop,
        step=hop.step,
        holder_name=hop.holder_name,
        timezone=hop.timezone,
        opened_at=hop.opened_at,
        due_at=hop.due_at,
        days_late=hop.days_late,
        prescription_date=timeline.prescription_date,
        today=now.astimezone(ZoneInfo(hop.timezone)).date(),
        outcomes=tuple(str(o) for o in route.decisions_for(route.step_index(hop.step))),
    )


@task(name="read-hop-on-desk", retries=3, retry_delay_seconds=[1, 5, 15])
def read_hop_on_desk(reference: str) -> HopOnDesk | None:
    with Ledger() as ledger:
        return hop_on_desk(ledger, reference, now=clock_from_env().now())


def form_description(on_desk: HopOnDesk) -> str:
    """The markdown above the resume form: the case as its holder's notice describes it."""
    zone = ZoneInfo(on_desk.timezone)
    lines = [
        f"### {on_desk.reference}, hop {on_desk.hop}: {on_desk.step}",
        "",
        f"- **Held by:** {on_desk.holder_name}",
        f"- **Since:** {local_time(on_desk.opened_at, zone)}",
        f"- **Due:** {local_time(on_desk.due_at, zone)}",
        f"- **Days late:** {on_desk.days_late} {LATE_WORDS['bd']}",
        f"- **Prescription slack:** {slack_text(on_desk.prescription_date, on_desk.today)}",
        f"- **Decisions allowed here:** {', '.join(on_desk.outcomes)}",
    ]
    link = case_link(on_desk.reference)
    if link:
        lines.append(f"- **Case page:** [{on_desk.reference}]({link})")
    lines += [
        "",
        "Your decision goes through the same checks as `rogatory decide`; if they refuse it, "
        "the holder and the coordinator are told why.",
    ]
    return "\n".join(lines)


LEGACY_WAKE_OUTCOME: Outcome | None = None
"""An outcome every form must admit beside its hop's own: none, since the waker resumes a run
with no input (the server validates a resume's input against the form the run waits on)."""


class Wake(RunInput):
    """The internal wake-up of earlier versions (`recorded: true`), which may still lie under
    the pause key of a run suspended before an upgrade: recognised and applied as nothing. The
    waker now resumes with no input at all."""

    model_config = ConfigDict(extra="ignore")
    recorded: Literal[True]


class _DecisionInput(RunInput):
    # Unlisted keys pass the server's check (the waker's `recorded`); the run reads them as a
    # `Wake`, and `Decide` refuses any other.
    model_config = ConfigDict(extra="ignore")


_FORM_SKIPS = {"reference", "idempotency_key", "seq", "note"}
"""`note` too: Prefect's database receives references and choices, never free text that could
name a person (a note goes through the web page or the command line, sealed in the ledger)."""


def _described(info: FieldInfo) -> FieldInfo:
    """`info`, carrying the description its optional type holds inside (`Note | None`)."""
    if info.description:
        return info
    for arg in typing.get_args(info.annotation):
        for meta in getattr(arg, "__metadata__", ()):
            if isinstance(meta, FieldInfo) and meta.description:
                return FieldInfo.merge_field_infos(info, description=meta.description)
    return info


def decision_form(
    on_desk: HopOnDesk | None, *, admit: Outcome | None = LEGACY_WAKE_OUTCOME
) -> type[RunInput]:
    """The resume form of the open hop, built from `Decide`: only the hop's decisions, the hop
    filled in, every field described; the case above it. Without an open hop (the ledger moved
    on meanwhile), every outcome and no case."""
    fields: dict[str, Any] = {
        name: (info.annotation, _described(info))
        for name, info in Decide.model_fields.items()
        if name not in _FORM_SKIPS
    }
    outcome = Decide.model_fields["outcome"]
    choices = [o.value for o in Outcome]
    if on_desk is not None:
        choices = [o for o in choices if o in on_desk.outcomes or o == admit]
        hop = Decide.model_fields["hop"]
        fields["hop"] = (hop.annotation, FieldInfo.merge_field_infos(hop, default=on_desk.hop))
    # Not required, so that a resume with no input (a plain wake) passes the server's check; a
    # form answered without an outcome is refused with a notice like any invalid decision.
    offered: Any = Literal.__getitem__(tuple(choices))
    fields["outcome"] = (
        offered | None,
        Field(None, description=outcome.description or Outcome.__doc__),
    )
    fields = {"outcome": fields.pop("outcome"), **fields}  # the first question first
    form = create_model(
        "HopDecision",
        __base__=_DecisionInput,
        __doc__="The decision on the open hop.",
        **fields,
    )
    return form.with_initial_data(
        description=form_description(on_desk) if on_desk is not None else None
    )


@dataclass(frozen=True)
class LeftInput:
    """A decision typed into the case run's resume form, under the key it was given."""

    pause_key: str
    value: dict[str, Any]


def inputs_left(flow_run_id: str, reference: str) -> list[LeftInput]:
    """Every decision typed into this run's resume forms, oldest first, whatever its key.

    A form answered after the ledger moved on (a `clock resume` meanwhile) holds its input under
    a key the run no longer waits on: read by key alone, that decision would be lost.
    """
    from uuid import UUID

    from prefect.client.orchestration import get_client

    prefix = f"suspended-{reference.lower()}-"
    with get_client(sync_client=True) as client:
        found = client.filter_flow_run_input(
            UUID(flow_run_id), key_prefix=prefix, limit=10_000, exclude_keys=set()
        )
    out = []
    for item in sorted(found, key=lambda i: i.created or datetime.min.replace(tzinfo=UTC)):
        if not item.key.endswith("-response"):
            continue
        try:
            value = json.loads(item.value)
        except ValueError:
            continue
        pause_key = item.key.removeprefix("suspended-").removesuffix("-response")
        if isinstance(value, dict) and is_decision(pause_key, value):
            out.append(LeftInput(pause_key, value))
    return out


def is_decision(pause_key: str, value: dict[str, Any]) -> bool:
    """Whether an answer left under `pause_key` is a hop's decision to apply: not a wake-up,
    not the requester's form (`rogatory resubmit` writes its ledger event itself)."""
    if "-requester-" in pause_key:
        return False
    try:
        Wake.model_validate(value)
    except ValidationError:
        return True
    return False


def used_keys(flow_run_id: str, reference: str) -> set[str]:
    """The pause keys this run has already suspended under (a key can be used once)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = client.filter_flow_run_input(
            UUID(flow_run_id),
            key_prefix=f"suspended-{reference.lower()}-",
            limit=10_000,
            exclude_keys=set(),
        )
    return {
        i.key.removeprefix("suspended-").removesuffix("-schema")
        for i in found
        if i.key.endswith("-schema")
    }


PREFECT_UI = Caller(name="prefect-ui", local=True)
"""Whoever types into a resume form: the Prefect UI is an operator's tool on the server's side
(Prefect's open-source server has no sign-in), so its decisions are trusted like the server's
own command line, and recorded as `prefect-ui`."""


def apply_input(ledger: Ledger, reference: str, left: LeftInput, *, now: datetime) -> str:
    """Apply one form decision through the application service, once; "" when applied (or
    already), else why not.

    The pause key is the idempotency key, so a decision applied before is not applied again.
    A refusal is logged by the caller and told to the holder once (its notice has a unique key).
    """
    from app.service import Service, no_wake  # the form is one more adapter over the service

    fields = {k: v for k, v in left.value.items() if k != "recorded"}
    routings = Routings({})
    try:
        command = Decide.model_validate(
            {**fields, "reference": reference, "idempotency_key": f"ui:{left.pause_key}"}
        )
        # The run applying it is the one that would be woken: nothing to wake.
        Service(ledger, waker=no_wake).submit(command, PREFECT_UI)
        return ""
    except CommandRejected as exc:
        reason = str(exc)
    except ValidationError as exc:
        reason = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
    with ledger.transaction() as session:
        case = queries.last_holder(session, reference)
        routing = routings.pinned(session, case.routing_version)
        roles = [Role.HOLDER.value, Role.COORDINATOR.value]
        notice = input_refused_notice(
            reference=reference,
            request_id=case.request_id,
            hop=fields.get("hop"),
            pause_key=left.pause_key,
            reason=reason,
            tags=role_tags(routing, roles, case.holder) if case.holder else [],
            now=now,
        )
        new = deliveries.record(session.connection(), [notice], now=now)
    return reason if new else ""


@task(name="apply-form-decisions", retries=2, retry_delay_seconds=[1, 5])
def apply_form_decisions(reference: str, flow_run_id: str) -> list[str]:
    """Apply every decision left in this run's resume forms; the refusals not told before.

    Each new refusal's notice is sent at once, like a hop's: the clerk who typed the form is
    waiting for something to happen.
    """
    refused = []
    with Ledger() as ledger:
        now = clock_from_env().now()
        keys = []
        for left in inputs_left(flow_run_id, reference):
            reason = apply_input(ledger, reference, left, now=now)
            if reason:
                refused.append(f"{left.pause_key}: {reason}")
                keys.append(input_refused_key(reference, left.pause_key))
        if keys:
            send_pending(ledger=ledger, now=now, keys=keys)
    return refused


@task(name="next-pause-key", retries=2, retry_delay_seconds=[1, 5])
def next_pause_key(reference: str, flow_run_id: str, view: CaseView) -> str:
    """The first key for the ledger's current state that this run has not suspended under."""
    used = used_keys(flow_run_id, reference)
    for attempt in count():
        key = input_key(reference, view, attempt)
        if key not in used:
            return key
    raise AssertionError("unreachable")

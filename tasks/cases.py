"""Prefect tasks over the ledger: read where a case stands, apply a decision, announce a hop.

Each task reads or writes the ledger and is safe to run twice: a flow re-runs from the top on
every resume, so everything here acts on what the ledger says, never on what the flow remembers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any

from prefect import task
from pydantic import ValidationError

from models import deliveries, queries
from models.clock import clock_from_env
from models.commands import Decide
from models.domain import Role
from models.engine import Routings
from models.errors import CommandRejected
from models.identity import Caller
from models.ledger import Ledger
from models.notices import (
    input_refused_key,
    input_refused_notice,
    opened_notice,
    role_tags,
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
        if isinstance(value, dict) and "outcome" in value and not value.get("recorded"):
            pause_key = item.key.removeprefix("suspended-").removesuffix("-response")
            out.append(LeftInput(pause_key, value))
    return out


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

"""Prefect tasks over the ledger: read where a case stands, apply a decision, announce a hop.

Each task reads or writes the ledger and is safe to run twice: a flow re-runs from the top on
every resume, so everything here acts on what the ledger says, never on what the flow remembers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect import task
from sqlalchemy import select

from models import deliveries
from models.clock import clock_from_env
from models.engine import Routings, decide
from models.errors import CommandRejected
from models.ledger import Ledger, Request, Step
from models.notices import opened_notice
from tasks.notify import send_pending


@dataclass(frozen=True)
class CaseView:
    """Where a case stands, as its flow needs to know it."""

    reference: str
    status: str
    outcome: str | None
    hop: int | None
    last_seq: int
    flow_run_id: str | None


def read_case_view(ledger: Ledger, reference: str) -> CaseView:
    with ledger.session() as session:
        row = session.execute(
            select(
                Request.status,
                Request.outcome,
                Request.current_hop,
                Request.last_seq,
                Request.flow_run_id,
            ).where(Request.reference == reference)
        ).first()
    if row is None:
        raise CommandRejected(f"no case {reference!r} in the ledger")
    return CaseView(
        reference, row.status, row.outcome, row.current_hop, row.last_seq, row.flow_run_id
    )


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
        row = session.execute(
            select(
                Request.id,
                Request.routing_version,
                Request.prescription_date,
                Step.hop,
                Step.route_step,
                Step.holder,
                Step.opened_at,
                Step.due_at,
            )
            .join(Step, (Step.request_id == Request.id) & (Step.hop == Request.current_hop))
            .where(Request.reference == reference)
        ).first()
        if row is None:
            return 0
        notice = opened_notice(
            routing=routings.pinned(session, row.routing_version),
            reference=reference,
            request_id=row.id,
            hop=row.hop,
            step=row.route_step,
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


@task(name="apply-decision", retries=2, retry_delay_seconds=[1, 5])
def apply_decision(reference: str, decision: dict[str, Any], key: str) -> str:
    """Apply a decision typed into the Prefect UI, through the same engine command as the CLI.

    The suspend key is the idempotency key, so a re-run applies it once. Returns "" when
    applied, else why the engine refused it (the flow then asks again).
    """
    try:
        with Ledger() as ledger, ledger.transaction() as session:
            decide(
                session=session,
                clock=clock_from_env(),
                routings=Routings({}),
                reference=reference,
                outcome=decision["outcome"],
                hop=decision["hop"],
                ground=decision.get("ground"),
                cause=decision.get("cause"),
                note=decision.get("note"),
                actor="prefect-ui",
                idempotency_key=f"ui:{key}",
            )
        return ""
    except CommandRejected as exc:
        return str(exc)

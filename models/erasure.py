"""Erasing a closed case's personal data once its country's retention period is over.

The erasure is an `erased` event on the case's chain (who, when, why), then the case key is
destroyed: its row keeps only the tombstone. Every sealed field of the case is then noise to
anyone, the master key's holder included, while the chain, sealed text and all, still verifies.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import update
from sqlalchemy.orm import Session

from models.clock import Clock
from models.engine import Result, Routings
from models.errors import CommandRejected
from models.ledger import CaseKey, insert_if_absent
from models.store import CaseStore


def erasable_from(closed_on: date, retention_years: int) -> date:
    """The first day a case closed on `closed_on` may be erased (29 February: 1 March)."""
    year = closed_on.year + retention_years
    try:
        return closed_on.replace(year=year)
    except ValueError:
        return date(year, 3, 1)


def erase(
    *, session: Session, clock: Clock, routings: Routings, reference: str, reason: str, actor: str
) -> Result:
    """Record the erasure of `reference` and destroy its case key."""
    if not reason.strip():
        raise CommandRejected("erase: give the reason (e.g. the retention period is over)")
    store = CaseStore.of(session)
    case = store.case(reference)
    if case.status != "closed" or case.closed_at is None:
        raise CommandRejected(
            f"{reference} is {case.status}: only a closed case's personal data can be erased",
            reference=reference,
        )
    now = clock.now()
    years = routings.for_country(case.country).config.retention_years
    allowed = erasable_from(case.closed_at.date(), years)
    if now.date() < allowed:
        raise CommandRejected(
            f"{reference} closed on {case.closed_at.date()} and {case.country} keeps a case's "
            f"personal data {years} years: it can be erased from {allowed}",
            reference=reference,
        )
    keys = session.get(CaseKey, reference)
    if keys is not None and keys.erased_at is not None:
        raise CommandRejected(
            f"{reference} was already erased on {keys.erased_at.date()} by {keys.erased_by}",
            reference=reference,
        )
    seq = store.append(
        case,
        kind="erased",
        actor=actor,
        payload={
            "reason": reason,
            "retention_years": years,
            "closed_on": case.closed_at.date().isoformat(),
        },
        occurred_at=now,
        recorded_at=now,
    )
    store.command_done()
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # The wrapped key's bytes are overwritten, not left in a free page of the file.
        connection.exec_driver_sql("PRAGMA secure_delete=ON")
    tombstone = {"wrapped": None, "erased_at": now, "erased_by": actor}
    if not insert_if_absent(
        connection, CaseKey, {"reference": reference, "created_at": now, **tombstone}
    ):
        connection.execute(
            update(CaseKey).where(CaseKey.reference == reference).values(**tombstone)
        )
    store.keys.keys[reference] = None
    return Result(
        reference,
        seq,
        case.current_hop,
        case.status,
        f"{reference}: personal data erased (its key destroyed); the record of the case stays",
    )

"""Is the ledger still what the engine wrote? Heads, hash chains and projections, case by case.

Two prices. `check_head` is what every command pays when it loads its case: the case's last
event hashed again and compared with the head stored on the case, plus the mark an earlier
verification left (`tampered_cases`). That catches an edited or deleted last event and a head
moved by hand at once, for the cost of one hash. Everything else (an older event edited, a
chain cut short with its head rewound, a projection changed alone) needs the whole case:
`check_cases` recomputes each chain from its first event, holds it to the head the latest
checkpoint sealed, and rebuilds the projections from the events (models.replay). The sweep runs
it on the cases that moved since the last checkpoint and on a rolling slice of the others;
`rogatory audit verify` runs it on every case.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from models.errors import LedgerTampered
from models.ledger import (
    GENESIS,
    CaseSeal,
    Document,
    Event,
    Request,
    Step,
    TamperedCase,
    event_hash,
)

if TYPE_CHECKING:
    from models.engine import Routings

CHUNK = 500
"""Cases read per round trip: bounded memory, and an IN list every backend takes."""


@dataclass(frozen=True)
class Finding:
    """One thing about one case that does not verify."""

    reference: str
    seq: int | None
    reason: str
    where: str = "event"
    """event (the chain), head (the stored head), projection, checkpoint, ledger."""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.reference} {self.what}"

    @property
    def what(self) -> str:
        """The finding without the case's reference."""
        if self.where == "event":
            return f"event {self.seq}: {self.reason}"
        return f"{self.where}: {self.reason}"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reference": self.reference, "seq": self.seq, "reason": self.reason}
        if self.where != "event":
            out["where"] = self.where
        return {**out, **self.detail}


def refusal(reference: str, reason: str) -> LedgerTampered:
    return LedgerTampered(
        f"{reference}: its records do not verify ({reason}); commands on it are refused until "
        f"they do. An auditor should run `rogatory audit verify --reference {reference}` and "
        "restore the case from a backup (`rogatory restore`)"
    )


# -- the hot path -------------------------------------------------------------------------------


def check_head(
    *,
    reference: str,
    last_seq: int,
    head_hash: str,
    marked: str | None,
    last_event: Sequence[Any],
) -> None:
    """Refuse a case marked tampered, or whose last event no longer hashes to its stored head.

    `last_event` is the event at `last_seq` as loaded with the case: seq, kind, actor, payload,
    occurred_at, recorded_at, prev_hash, hash (all None when there is no such event).
    """
    if marked is not None:
        raise refusal(reference, marked)
    seq, kind, actor, payload, occurred_at, recorded_at, prev_hash, stored = last_event
    if seq is None:
        raise refusal(reference, f"its head says event {last_seq}, which is missing")
    digest = event_hash(
        prev_hash=prev_hash,
        reference=reference,
        seq=seq,
        kind=kind,
        actor=actor,
        payload=payload,
        occurred_at=occurred_at,
        recorded_at=recorded_at,
    )
    if digest != stored:
        raise refusal(reference, f"event {seq} was altered ({kind})")
    if stored != head_hash:
        raise refusal(reference, f"its stored head is not the hash of event {seq}")


def check_missing(session: Session, reference: str) -> None:
    """Refuse a reference the ledger no longer holds although a checkpoint sealed it.

    Only on the path where the case was not found, so it costs a found case nothing."""

    marked = session.scalar(select(TamperedCase.reason).where(TamperedCase.reference == reference))
    if marked is not None:
        raise refusal(reference, marked)
    sealed = session.execute(
        select(CaseSeal.seq, CaseSeal.checkpoint).where(CaseSeal.reference == reference)
    ).first()
    if sealed is not None:
        raise refusal(
            reference,
            f"checkpoint {sealed.checkpoint} sealed it at event {sealed.seq}, and the ledger "
            "no longer holds it",
        )


# -- whole cases --------------------------------------------------------------------------------


class Seal(NamedTuple):
    """A case's head as a checkpoint sealed it (a tuple: every sweep reads one per case)."""

    request_id: int
    seq: int
    hash: str
    checkpoint: int | None = None
    """The checkpoint that sealed it (findings name it, so a finding reads the same each time
    it is found and is told once)."""

    def holds(self, other: Seal | None) -> bool:
        """Whether `other` seals the same head (same last event, same hash)."""
        return other is not None and (other.seq, other.hash) == (self.seq, self.hash)


@dataclass
class CaseMaterial:
    """One case as the ledger holds it: its row, its events, its hops and its documents."""

    request: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CheckedCases:
    """What `check_cases` found: per case, its findings (none: it verifies) and its head."""

    findings: dict[str, list[Finding]] = field(default_factory=dict)
    heads: dict[str, Seal] = field(default_factory=dict)
    """Each checked case's stored head (request id, last seq, head hash)."""
    not_compared: dict[str, str] = field(default_factory=dict)
    """Cases whose projections could not be rebuilt (an unreadable routing), and why."""

    @property
    def intact(self) -> list[str]:
        return sorted(r for r, f in self.findings.items() if not f)

    def broken(self) -> list[Finding]:
        return [f for r in sorted(self.findings) for f in self.findings[r]]


_REQUEST_COLUMNS = [c for c in Request.__table__.c]
# A hop's ladder is read only for open hops (models.replay): decoded there, on demand.
_STEP_COLUMNS = [
    type_coerce(c, NullType()).label(c.key) if c.key == "rungs" else c for c in Step.__table__.c
]
_DOCUMENT_COLUMNS = [c for c in Document.__table__.c if c.key not in ("id",)]
_EVENT_COLUMNS = [
    Event.request_id,
    Event.seq,
    Event.kind,
    Event.actor,
    Event.payload,
    Event.occurred_at,
    Event.recorded_at,
    Event.prev_hash,
    Event.hash,
]


def load_cases(session: Session, request_ids: Sequence[int]) -> Iterator[CaseMaterial]:
    """The cases with these ids, with their events, hops and documents, in id order."""
    # Through the connection: the ORM's per-row bookkeeping would cost more than the reads.
    execute = session.connection().execute
    for start in range(0, len(request_ids), CHUNK):
        ids = sorted(request_ids[start : start + CHUNK])
        result = execute(select(*_REQUEST_COLUMNS).where(Request.id.in_(ids)))
        keys = list(result.keys())
        cases = {row.id: CaseMaterial(dict(zip(keys, row, strict=True))) for row in result}
        for table, columns, order, into in (
            (Event, _EVENT_COLUMNS, Event.seq, "events"),
            (Step, _STEP_COLUMNS, Step.hop, "steps"),
            (Document, _DOCUMENT_COLUMNS, Document.seq, "documents"),
        ):
            result = execute(select(*columns).where(table.request_id.in_(ids)).order_by(order))
            keys = list(result.keys())
            for row in result:
                found = cases.get(row.request_id)
                if found is not None:
                    getattr(found, into).append(dict(zip(keys, row, strict=True)))
        for request_id in ids:
            if request_id in cases:
                yield cases[request_id]


def chain_findings(material: CaseMaterial) -> list[Finding]:
    """The first broken link of the case's chain, and a stored head that is not its end."""
    request = material.request
    reference = request["reference"]
    prev = GENESIS
    expected = 1
    for ev in material.events:
        if ev["seq"] != expected:
            return [Finding(reference, expected, "event missing (deleted?)")]
        if ev["prev_hash"] != prev:
            return [Finding(reference, ev["seq"], "does not follow the previous event")]
        digest = event_hash(
            prev_hash=prev,
            reference=reference,
            seq=ev["seq"],
            kind=ev["kind"],
            actor=ev["actor"],
            payload=ev["payload"],
            occurred_at=ev["occurred_at"],
            recorded_at=ev["recorded_at"],
        )
        if digest != ev["hash"]:
            return [Finding(reference, ev["seq"], f"content altered ({ev['kind']})")]
        prev = digest
        expected += 1
    if request["last_seq"] != expected - 1 or request["head_hash"] != prev:
        return [Finding(reference, expected, "events missing after the last one")]
    return []


def seal_findings(material: CaseMaterial, seal: Seal) -> list[Finding]:
    """The case no longer extends the head a checkpoint sealed: cut short, or rewritten."""
    reference = material.request["reference"]
    since = _since(seal)
    detail = {"checkpoint": seal.checkpoint, "sealed_seq": seal.seq, "sealed_hash": seal.hash}
    last = material.events[-1]["seq"] if material.events else 0
    if last < seal.seq:
        return [
            Finding(
                reference,
                seal.seq,
                f"truncated since {since}: it sealed event {seal.seq}, the ledger ends at "
                f"event {last}",
                "checkpoint",
                {**detail, "last_seq": last},
            )
        ]
    event = next((e for e in material.events if e["seq"] == seal.seq), None)
    if event is None or event["hash"] != seal.hash:
        return [
            Finding(
                reference,
                seal.seq,
                f"rewritten since {since}: event {seal.seq} is not the one it sealed",
                "checkpoint",
                detail,
            )
        ]
    return []


def missing_finding(reference: str, seal: Seal) -> Finding:
    return Finding(
        reference,
        None,
        f"missing from the ledger: {_since(seal)} sealed it at event {seal.seq}",
        "checkpoint",
        {"checkpoint": seal.checkpoint, "sealed_seq": seal.seq, "sealed_hash": seal.hash},
    )


def _since(seal: Seal) -> str:
    return "a checkpoint" if seal.checkpoint is None else f"checkpoint {seal.checkpoint}"


def check_cases(
    session: Session,
    *,
    request_ids: Sequence[int],
    routings: Routings,
    seals: Mapping[str, Seal] | None = None,
) -> CheckedCases:
    """Verify these cases: chain, stored head, the sealed head, then projections from events.

    The projections of a case whose chain is broken are not compared: its events are what is
    in doubt, and the chain finding says so.
    """
    from models.replay import differences

    out = CheckedCases()
    for material in load_cases(session, request_ids):
        request = material.request
        reference = request["reference"]
        out.heads[reference] = Seal(request["id"], request["last_seq"], request["head_hash"])
        found = chain_findings(material)
        seal = (seals or {}).get(reference)
        if seal is not None:
            found += seal_findings(material, seal)
        if not found:
            compared = differences(material, routings=routings, session=session)
            found = compared.findings
            if compared.not_compared:
                out.not_compared[reference] = compared.not_compared
        out.findings[reference] = found
    return out


def orphans(session: Session) -> list[Finding]:
    """Events, hops or documents whose case row is gone (its events keep no reference)."""
    found = []
    known = select(Request.id)
    for table, what in ((Event, "events"), (Step, "hops"), (Document, "documents")):
        ids = session.scalars(
            select(table.request_id).where(table.request_id.not_in(known)).distinct()
        ).all()
        for request_id in ids:
            found.append(
                Finding(
                    f"case #{request_id}",
                    None,
                    f"{what} of a case whose row is gone (request id {request_id})",
                    "ledger",
                )
            )
    return found


def all_case_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Request.id).order_by(Request.id)))


def ids_of(session: Session, references: Iterable[str]) -> list[int]:
    wanted = sorted(set(references))
    out: list[int] = []
    for start in range(0, len(wanted), CHUNK):
        out += session.scalars(
            select(Request.id).where(Request.reference.in_(wanted[start : start + CHUNK]))
        ).all()
    return sorted(out)


def instant(value: Any) -> datetime | None:
    """An instant from an event payload (ISO text) or a row (aware datetime)."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def payload_of(event: Mapping[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(event["payload"])
    return parsed

"""Projections rebuilt from events: what a case's `requests`, `steps` and `documents` rows must
hold if only the engine wrote them, compared field by field with what they hold.

`rebuild` replays one case's events in order. It reads nothing but the events and the routing
versions they pin (for a hop's step index and the business days a stopped clock counted), so it
says what the events determine and nothing more. `differences` compares the rebuilt case with
the stored rows and names every field that differs. Fields no event determines are not
compared; `SKIPPED` says which and why. Two of them, kept by the sweep, are held to the rest of
their row instead: a hop's `next_rung_at` must be what its ladder, snooze and clock give (an
escalation silenced by hand is not), and a case's legal-deadline pointers what its deadlines
give.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from models.integrity import CaseMaterial, Finding, instant, payload_of

if TYPE_CHECKING:
    from models.engine import Routings
    from models.loader import Routing


class _Unknown:
    """A field the events do not determine at this point of the case."""

    def __repr__(self) -> str:
        return "unknown"


UNKNOWN: Any = _Unknown()

SKIPPED = {
    "requests.flow_run_id": "which Prefect run drives the case: an operational pointer no "
    "event records",
    "requests.deadlines": "legal deadlines are worked out by models.legal from the routing's "
    "presets and their ladders advanced by the sweep; events record what was said. Checked "
    "instead: deadline_next_at and legal_due_at are what the stored deadlines give",
    "requests.prescription_date, prescription_running (after a migration, until the next "
    "prescription event)": "recomputed under the new routing's rules; no event records the result",
    "steps.rungs": "the ladder's instants come from the routing's calendar and its fired counts "
    "from the sweep, which records deliveries, not events. Checked instead: next_rung_at is "
    "what the ladder, the snooze and the clock give",
    "steps.fired_at": "when the sweep first recorded one of the hop's rungs (the escalation "
    "board's index); the deliveries keep that",
    "steps.due_at (a hop following a legal deadline, after a deadline event)": "it moves with "
    "the deadline, whose event records the deadline's new due, not the hop's",
}

_REQUEST_FIELDS = (
    "country",
    "direction",
    "kind",
    "legal_basis",
    "offence_category",
    "counterpart",
    "urgent",
    "coercive",
    "confidential",
    "offence_date",
    "discovery_date",
    "intake",
    "route_id",
    "routing_version",
    "registered_at",
    "status",
    "outcome",
    "closed_at",
    "current_hop",
    "hop_count",
    "prescription_date",
    "prescription_running",
)
_FROM_INTAKE = (
    "country",
    "direction",
    "kind",
    "legal_basis",
    "offence_category",
    "counterpart",
    "urgent",
    "coercive",
    "confidential",
)
_STEP_FIELDS = (
    "route_step",
    "step_index",
    "holder",
    "country",
    "sla",
    "opened_at",
    "due_at",
    "stopped_since",
    "stopped_bd",
    "closed_at",
    "outcome",
    "target",
    "ground",
    "cause",
    "assigned_to",
    "acknowledged_at",
    "acknowledged_by",
    "snoozed_until",
)
_DOCUMENT_FIELDS = ("kind", "filename", "media_type", "size", "seq", "actor", "recorded_at")


@dataclass
class Rebuilt:
    """A case's projections as its events leave them (UNKNOWN where they do not say)."""

    request: dict[str, Any] = field(default_factory=dict)
    hops: dict[int, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreplayed: set[str] = field(default_factory=set)
    """Event kinds this replay does not know: the case is not compared."""
    unreadable: str | None = None
    """Why a routing version the events pin could not be read, if one could not."""


class _Routings:
    """The pinned routing versions, read once per version; None for one that cannot be read."""

    def __init__(self, routings: Routings, session: Session) -> None:
        self.routings = routings
        self.session = session
        self.failed: dict[str, str] = {}

    def __call__(self, version: Any) -> Routing | None:
        if not isinstance(version, str) or version in self.failed:
            return None
        try:
            return self.routings.pinned(self.session, version)
        except Exception as exc:  # unreadable snapshot: compare what needs no routing
            self.failed[version] = f"routing version {version} cannot be read ({exc})"
            return None


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(value)


def rebuild(events: list[dict[str, Any]], routing_of: Any) -> Rebuilt:
    """Replay one case's events (rows with a JSON `payload`) into its projections."""
    out = Rebuilt()
    request = out.request
    hops = out.hops
    for event in events:
        kind = event["kind"]
        p = payload_of(event)
        at = event["occurred_at"]
        if kind == "registered":
            intake = p["intake"]
            request.update({name: intake.get(name) for name in _FROM_INTAKE})
            prescription = p.get("prescription") or {}
            request.update(
                offence_date=_day(intake.get("offence_date")),
                discovery_date=_day(intake.get("discovery_date")),
                intake=intake,
                route_id=p["route"],
                routing_version=p["routing_version"],
                registered_at=at,
                status="open",
                outcome=None,
                closed_at=None,
                current_hop=None,
                hop_count=0,
                prescription_date=_day(prescription.get("date")),
                prescription_running=bool(prescription.get("running", False)),
            )
        elif kind == "hop_opened":
            number = p["hop"]
            hops[number] = {
                "route_step": p["step"],
                "step_index": _step_index(routing_of, request, p["step"]),
                "holder": p["holder"],
                "country": request.get("country"),
                "sla": p["sla"],
                "opened_at": at,
                "due_at": instant(p["due_at"]),
                "stopped_since": None,
                "stopped_bd": 0,
                "closed_at": None,
                "outcome": None,
                "target": None,
                "ground": None,
                "cause": None,
                "assigned_to": None,
                "acknowledged_at": None,
                "acknowledged_by": None,
                "snoozed_until": None,
            }
            request.update(status="open", current_hop=number, hop_count=number)
        elif kind == "decided":
            _close(hops, p["hop"], at, p["outcome"], p.get("target"), p.get("ground"), p["cause"])
            if p.get("target") == "requester":
                request.update(status="with_requester", current_hop=None)
        elif kind == "reassigned":
            _close(hops, p["hop"], at, "reassigned", p["to"], None, p.get("cause"))
        elif kind == "withdrawn":
            if p.get("hop") is not None:
                _close(hops, p["hop"], at, "withdrawn", None, None, None)
        elif kind == "case_closed":
            request.update(status="closed", outcome=p["outcome"], closed_at=at, current_hop=None)
        elif kind == "clock_stopped":
            hops[p["hop"]]["stopped_since"] = at
        elif kind == "clock_resumed":
            hop = hops[p["hop"]]
            routing = routing_of(request.get("routing_version"))
            since = hop["stopped_since"]
            if routing is None or since is None or hop["stopped_bd"] is UNKNOWN:
                hop["stopped_bd"] = UNKNOWN
            else:
                counted = routing.calendar(hop["holder"]).business_days_between(since, at)
                hop["stopped_bd"] += counted
            hop["stopped_since"] = None
            hop["due_at"] = instant(p["due_at"])
        elif kind == "hop_assigned":
            hops[p["hop"]]["assigned_to"] = p["officer"]
        elif kind == "escalation_acknowledged":
            hops[p["hop"]].update(acknowledged_at=at, acknowledged_by=event["actor"])
        elif kind == "escalation_snoozed":
            hops[p["hop"]]["snoozed_until"] = instant(p["from"])
        elif kind == "migrated":
            request["routing_version"] = p["to"]
            # Recomputed under the new rules; the next prescription event says it again.
            request.update(prescription_date=UNKNOWN, prescription_running=UNKNOWN)
            current = request.get("current_hop")
            if current is not None:
                hop = hops[current]
                hop["step_index"] = _step_index(routing_of, request, hop["route_step"])
        elif kind == "prescription_event":
            after = p.get("after") or {}
            request.update(
                prescription_date=_day(after.get("date")),
                prescription_running=bool(after.get("running", False)),
            )
        elif kind == "deadline_event":
            current = request.get("current_hop")
            if current is not None and _follows_deadline(routing_of, request, hops[current]):
                hops[current]["due_at"] = UNKNOWN
        elif kind == "document_attached":
            out.documents[p["sha256"]] = {
                "kind": p["kind"],
                "filename": p["filename"],
                "media_type": p["media_type"],
                "size": p["size"],
                "seq": event["seq"],
                "actor": event["actor"],
                "recorded_at": event["recorded_at"],
            }
        elif kind not in ("resubmitted", "erased"):  # these two change no projection
            out.unreplayed.add(kind)
    return out


def _close(
    hops: dict[int, dict[str, Any]],
    number: int,
    at: datetime,
    outcome: str,
    target: str | None,
    ground: str | None,
    cause: str | None,
) -> None:
    hops[number].update(
        closed_at=at,
        outcome=outcome,
        target=target,
        ground=ground,
        cause=cause,
        stopped_since=None,
    )


def _step_index(routing_of: Any, request: dict[str, Any], step: str) -> Any:
    routing = routing_of(request.get("routing_version"))
    if routing is None:
        return UNKNOWN
    try:
        return routing.config.route(request["route_id"]).step_index(step)
    except KeyError:
        return UNKNOWN


def _follows_deadline(routing_of: Any, request: dict[str, Any], hop: dict[str, Any]) -> bool:
    routing = routing_of(request.get("routing_version"))
    if routing is None or hop["step_index"] is UNKNOWN:
        return True  # cannot tell: do not claim to know its due
    route = routing.config.route(request["route_id"])
    return route.steps[hop["step_index"]].deadline is not None


# -- comparing ----------------------------------------------------------------------------------


@dataclass
class Compared:
    findings: list[Finding]
    not_compared: str = ""
    """Why some fields (or the whole case) could not be compared; empty when all were."""


def differences(material: CaseMaterial, *, routings: Routings, session: Session) -> Compared:
    """Every field of the case's stored projections that its events contradict."""
    routing_of = _Routings(routings, session)
    rebuilt = rebuild(material.events, routing_of)
    request = material.request
    reference = request["reference"]
    if rebuilt.unreplayed:
        kinds = ", ".join(sorted(rebuilt.unreplayed))
        return Compared([], f"events of kinds this version does not replay: {kinds}")
    found: list[Finding] = []

    def differ(where: str, name: str, stored: Any, expected: Any) -> None:
        found.append(
            Finding(
                reference,
                None,
                f"{where} {name} is {_shown(stored)}, its events say {_shown(expected)}",
                "projection",
                {
                    "table": where.split()[0],
                    "field": name,
                    "stored": _json(stored),
                    "events": _json(expected),
                    **({"hop": int(where.split()[-1])} if where.startswith("steps") else {}),
                },
            )
        )

    for name in _REQUEST_FIELDS:
        expected = rebuilt.request.get(name, UNKNOWN)
        if expected is not UNKNOWN and not _same(request[name], expected):
            differ("requests", name, request[name], expected)
    stored_hops = {row["hop"]: row for row in material.steps}
    for number in sorted(set(stored_hops) | set(rebuilt.hops)):
        row, hop = stored_hops.get(number), rebuilt.hops.get(number)
        if row is None:
            differ(f"steps hop {number}", "row", None, "opened")
            continue
        if hop is None:
            differ(f"steps hop {number}", "row", "present", None)
            continue
        for name in _STEP_FIELDS:
            expected = hop[name]
            if expected is not UNKNOWN and not _same(row[name], expected):
                differ(f"steps hop {number}", name, row[name], expected)
    stored_documents = {row["sha256"]: row for row in material.documents}
    for sha256 in sorted(set(stored_documents) | set(rebuilt.documents)):
        document, attached = stored_documents.get(sha256), rebuilt.documents.get(sha256)
        if document is None or attached is None:
            differ(
                f"documents {sha256[:12]}",
                "row",
                None if document is None else "present",
                None if attached is None else "attached",
            )
            continue
        for name in _DOCUMENT_FIELDS:
            if not _same(document[name], attached[name]):
                differ(f"documents {sha256[:12]}", name, document[name], attached[name])
    found += _pointers(material, routing_of)
    return Compared(found, "; ".join(sorted(routing_of.failed.values())))


def _pointers(material: CaseMaterial, routing_of: _Routings) -> list[Finding]:
    """The sweep's pointers, held to the rows they point from."""
    from models import legal
    from models.engine import hop_next_rung_at
    from models.store import Hop

    request = material.request
    reference = request["reference"]
    found = []
    following, earliest = legal.summary(request["deadlines"])
    for name, stored, expected in (
        ("deadline_next_at", request["deadline_next_at"], following),
        ("legal_due_at", request["legal_due_at"], earliest),
    ):
        if not _same(stored, expected):
            found.append(
                Finding(
                    reference,
                    None,
                    f"requests {name} is {_shown(stored)}, its legal deadlines say "
                    f"{_shown(expected)}",
                    "projection",
                    {"table": "requests", "field": name, "stored": _json(stored)},
                )
            )
    routing = routing_of(request["routing_version"])
    for row in material.steps:
        if row["closed_at"] is None and row["stopped_since"] is None and routing is None:
            continue  # its ladder's repeats need the calendar
        hop = Hop(**{name: row[name] for name in Hop.__dataclass_fields__})
        if isinstance(hop.rungs, str):
            hop.rungs = json.loads(hop.rungs)
        calendar = routing.calendar(hop.holder) if routing is not None else None
        expected = hop_next_rung_at(hop, calendar) if calendar is not None else None
        if not _same(row["next_rung_at"], expected):
            found.append(
                Finding(
                    reference,
                    None,
                    f"steps hop {row['hop']} next_rung_at is {_shown(row['next_rung_at'])}, its "
                    f"ladder says {_shown(expected)} (escalations silenced or forced?)",
                    "projection",
                    {
                        "table": "steps",
                        "hop": row["hop"],
                        "field": "next_rung_at",
                        "stored": _json(row["next_rung_at"]),
                    },
                )
            )
    return found


def _same(stored: Any, expected: Any) -> bool:
    # Aware instants compare as instants whatever their zones; dates and the rest as values.
    return bool(stored == expected)


def _shown(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return "{...}"
    return repr(value)


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value

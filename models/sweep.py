"""The clock sweep: which escalation rungs and prescription alerts are due, recorded exactly once.

Finding work is one indexed range query (`steps.next_rung_at <= now`, `requests.prescription_date
<= horizon`), so its cost grows with what is due, not with how many hops are open. Each due
notification becomes a `deliveries` row whose key is unique per hop, rung and occurrence (or per
case and threshold): two sweeps running at once, or one re-run after a crash, insert the same
keys and the database keeps one. What a notice says lives in `models.notices`, its life after
recording in `models.deliveries`; sending is a separate, retried stage (tasks/notify.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Connection, Row, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from models import deliveries, legal
from models.calendar import Calendar, Duration
from models.config import anchor_words
from models.deliveries import Binder
from models.domain import Role
from models.engine import Routings, rung_due, silenced
from models.ledger import Request, Step
from models.loader import Routing
from models.notices import (
    DeadlineState,
    HopState,
    Notice,
    deadline_notice,
    hop_notice,
    role_tags,
    slack_notice,
    worded_kind,
)
from models.problems import Failure

DEFAULT_SLACK_THRESHOLDS = (180, 90, 30)


@dataclass(frozen=True)
class SweepResult:
    due_hops: int
    created: int
    already_recorded: int
    superseded: int = 0
    """Lower rungs of a hop that owed several at once: recorded as superseded, never sent."""
    failures: list[Failure] = field(default_factory=list)
    """Cases that could not be swept: recorded as problems, the others went through."""
    worked: set[str] = field(default_factory=set)
    """The cases swept without a problem (a problem recorded for one of them is resolved)."""
    due_deadlines: int = 0
    """Cases with a legal deadline's rung due (models.legal), counted apart from the hops."""


def _raw(column: Any) -> Any:
    """A column read as the driver returns it, without SQLAlchemy's result processing."""
    return type_coerce(column, NullType()).label(column.key)


def _instant(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return cast(datetime, value).replace(tzinfo=UTC)


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _rungs(value: Any) -> list[dict[str, Any]]:
    """The hop's ladder as a fresh list of dicts this sweep may change."""
    if isinstance(value, str):
        return cast(list[dict[str, Any]], json.loads(value))
    return [dict(r) for r in value]


class _Holders:
    """What every notice to one holder under one routing shares, worked out once per sweep."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[Calendar, str]] = {}
        self._tags: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}

    def calendar_and_name(self, routing: Routing, holder: str) -> tuple[Calendar, str]:
        key = (routing.version, holder)
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = (
                routing.calendar(holder),
                routing.config.authorities[holder].name,
            )
        return found

    def tags(self, routing: Routing, roles: Sequence[str], holder: str) -> list[str]:
        key = (routing.version, holder, tuple(roles))
        found = self._tags.get(key)
        if found is None:
            found = self._tags[key] = role_tags(routing, roles, holder)
        return list(found)


def find_due_hops(*, connection: Connection, now: datetime, limit: int) -> Sequence[Row[Any]]:
    """The hops with a rung due at `now`, earliest first, with their case: one indexed range."""
    return connection.execute(
        select(
            Step.id,
            Step.request_id,
            Step.hop,
            Step.route_step,
            Step.holder,
            Step.sla,
            _raw(Step.rungs),
            _raw(Step.due_at),
            _raw(Step.opened_at),
            _raw(Step.next_rung_at),
            _raw(Step.acknowledged_at),
            _raw(Step.snoozed_until),
            Request.reference,
            Request.country,
            Request.routing_version,
            _raw(Request.prescription_date),
        )
        .join(Request, Request.id == Step.request_id)
        .where(Step.next_rung_at <= now)
        .order_by(Step.next_rung_at)
        .limit(limit)
    ).all()


def sweep_rungs(
    *, session: Session, routings: Routings, now: datetime, limit: int = 50_000
) -> SweepResult:
    """Record every rung due at `now` as a pending delivery, once, and move each hop's pointer.

    When a hop owes several rungs at once (a watcher down for days, a backlog imported late),
    only the highest goes out, worded from the hop's state now; the others are recorded as
    superseded, and so is any lower rung of that hop still waiting to be sent. A hop that
    cannot be swept (its pinned routing unreadable, a deadline past the calendar) is returned
    as a failure and left for the next sweep: the other hops go through.
    """
    connection = session.connection()
    rows = find_due_hops(connection=connection, now=now, limit=limit)
    stamp = int(now.timestamp())
    holders = _Holders()
    bind = Binder.of(connection)
    notices: list[Notice] = []
    moot: list[Notice] = []
    kept: dict[int, str] = {}
    moves: list[tuple[Any, ...]] = []
    fired: list[tuple[Any, ...]] = []
    failures: list[Failure] = []
    worked: set[str] = set()
    for row in rows:
        try:
            due, following, rungs = _due_rungs(row, routings, session, holders, stamp, now)
        except Exception as exc:  # one bad case must not stop the sweep for the others
            failures.append(_failure(exc, row, request_id=row.request_id))
            continue
        worked.add(row.reference)
        if due:
            notices.append(due[-1])
            moot += due[:-1]
            kept[row.id] = due[-1].key
            fired.append((bind.instant(now), row.id))
        # Compare-and-set on the pointer as read (raw, so it matches exactly): a concurrent
        # sweep that moved the hop first wins, and this one's deliveries are duplicates. An
        # acknowledgement or a snooze recorded meanwhile wins too: its ladder is the newer.
        moves.append(
            (
                bind.json(rungs),
                bind.instant(following),
                row.id,
                row.next_rung_at,
                row.acknowledged_at,
                row.snoozed_until,
            )
        )
    superseded = deliveries.supersede_lower_rungs(connection, kept)
    superseded += deliveries.record(
        connection, moot, now=now, status="superseded", why="a higher rung was due at once"
    )
    created = deliveries.record(connection, notices, now=now)
    if moves:
        same = "IS" if bind.sqlite else "IS NOT DISTINCT FROM"
        connection.exec_driver_sql(
            f"UPDATE steps SET rungs = {bind.mark}, next_rung_at = {bind.mark} "
            f"WHERE id = {bind.mark} AND next_rung_at = {bind.mark} "
            f"AND acknowledged_at {same} {bind.mark} AND snoozed_until {same} {bind.mark}",
            moves,
        )
    if fired:  # the escalation board reads the open hops whose ladder has fired, by index
        connection.exec_driver_sql(
            f"UPDATE steps SET fired_at = {bind.mark} WHERE id = {bind.mark} AND fired_at IS NULL",
            fired,
        )
    hops = SweepResult(len(rows), created, len(notices) - created, superseded, failures, worked)
    laws = sweep_deadlines(session=session, routings=routings, now=now, limit=limit)
    return SweepResult(
        hops.due_hops,
        hops.created + laws.created,
        hops.already_recorded + laws.already_recorded,
        hops.superseded + laws.superseded,
        hops.failures + laws.failures,
        hops.worked | laws.worked,
        laws.due_hops,
    )


def sweep_deadlines(
    *, session: Session, routings: Routings, now: datetime, limit: int = 50_000
) -> SweepResult:
    """Record every rung of a legal deadline due at `now` (models.legal), once.

    The same rules as a hop's ladder: occurrences missed while nobody swept collapse into the
    latest; lower rungs due at once are recorded as superseded; a case changed by a command
    meanwhile (its sequence moved) keeps the command's view, and the next sweep looks again.
    """
    connection = session.connection()
    rows = connection.execute(
        select(
            Request.id,
            Request.reference,
            Request.country,
            Request.route_id,
            Request.routing_version,
            Request.last_seq,
            _raw(Request.deadlines),
            _raw(Request.deadline_next_at),
            _raw(Request.prescription_date),
            Step.holder,
        )
        .outerjoin(Step, (Step.request_id == Request.id) & (Step.hop == Request.current_hop))
        .where(Request.deadline_next_at <= now)
        .order_by(Request.deadline_next_at)
        .limit(limit)
    ).all()
    stamp = int(now.timestamp())
    bind = Binder.of(connection)
    notices: list[Notice] = []
    moot: list[Notice] = []
    moves: list[tuple[Any, ...]] = []
    failures: list[Failure] = []
    worked: set[str] = set()
    for row in rows:
        try:
            due, items = _due_deadlines(row, routings, session, stamp, now)
        except Exception as exc:  # one bad case must not stop the sweep for the others
            failures.append(_failure(exc, row, request_id=row.id))
            continue
        worked.add(row.reference)
        for owed in due:
            notices.append(owed[-1])
            moot += owed[:-1]
        following, _ = legal.summary(items)
        moves.append(
            (
                bind.json(items),
                bind.instant(following),
                row.id,
                row.last_seq,
                row.deadline_next_at,
            )
        )
    superseded = deliveries.record(
        connection, moot, now=now, status="superseded", why="a higher rung was due at once"
    )
    created = deliveries.record(connection, notices, now=now)
    if moves:
        connection.exec_driver_sql(
            f"UPDATE requests SET deadlines = {bind.mark}, deadline_next_at = {bind.mark} "
            f"WHERE id = {bind.mark} AND last_seq = {bind.mark} "
            f"AND deadline_next_at = {bind.mark}",
            moves,
        )
    return SweepResult(len(rows), created, len(notices) - created, superseded, failures, worked)


def _due_deadlines(
    row: Any, routings: Routings, session: Session, stamp: int, now: datetime
) -> tuple[list[list[Notice]], list[dict[str, Any]]]:
    """Per running legal deadline of one case, its due rung notices (the latest last), and
    the deadlines with their ladders advanced."""
    routing = routings.pinned(session, row.routing_version)
    route = routing.config.route(row.route_id)
    calendar = routing.calendar(None)
    items = _rungs(row.deadlines)
    owed: list[list[Notice]] = []
    for item in items:
        if item["state"] != "running":
            continue
        holder = row.holder or route.steps[route.step_index(item["met_by"][0].split(":")[0])].holder
        due_at = datetime.fromisoformat(item["due_at"])
        anchored = datetime.fromisoformat(item["anchored_at"])
        found: list[tuple[int, int, Notice]] = []
        for rung in item["rungs"]:
            at = legal.next_occurrence(rung)
            latest: int | None = None
            while at is not None and at <= stamp:
                latest = at
                rung["fired"] += 1
                at = legal.next_occurrence(rung)
            if latest is None:
                continue
            occurrence = datetime.fromtimestamp(latest, UTC)
            # Worded from the deadline's state now, as a hop's rung is.
            late = legal.lateness(due_at, now, item["length"], calendar) if now > due_at else None
            state = DeadlineState(
                reference=row.reference,
                deadline=item["id"],
                source=item["source"],
                runs_from=anchor_words(item["anchor"]),
                anchored_at=anchored,
                due_at=due_at,
                late=late,
                holder_name=routing.config.authorities[holder].name,
                prescription_date=_day(row.prescription_date),
                timezone=calendar.timezone,
            )
            notice = deadline_notice(
                key=f"deadline:{row.id}:{item['id']}:rung:{rung['n']}:{rung['fired'] - 1}",
                kind=rung["kind"],
                state=state,
                request_id=row.id,
                tags=role_tags(routing, rung["notify"], holder),
                at=occurrence,
                now=now,
            )
            found.append((latest, rung["n"], notice))
        if found:
            owed.append([n for _, _, n in sorted(found, key=lambda f: (f[0], f[1]))])
    return owed, items


def _failure(exc: Exception, row: Any, *, request_id: int) -> Failure:
    """A case the sweep could not work: recorded as a problem, the others go through."""
    return Failure.of(
        exc, reference=row.reference, request_id=request_id, country=row.country, stage="sweep"
    )


def _due_rungs(
    row: Any,
    routings: Routings,
    session: Session,
    holders: _Holders,
    stamp: int,
    now: datetime,
) -> tuple[list[Notice], datetime | None, list[dict[str, Any]]]:
    """One hop's due rung notices (lowest first), its next pointer and its advanced ladder."""
    routing = routings.pinned(session, row.routing_version)
    calendar, holder_name = holders.calendar_and_name(routing, row.holder)
    due_at = _instant(row.due_at)
    unit = Duration.parse(row.sla).unit
    state = HopState(
        reference=row.reference,
        hop=row.hop,
        step=row.route_step,
        holder_name=holder_name,
        opened_at=_instant(row.opened_at),
        due_at=due_at,
        days_late=lateness(calendar, due_at, now, unit),
        prescription_date=_day(row.prescription_date),
        timezone=calendar.timezone,
        late_unit=unit,
    )
    rungs = _rungs(row.rungs)
    if row.snoozed_until is not None and _instant(row.snoozed_until) > now:
        # Snoozed: nothing fires before the snooze ends (the engine points the hop there, so
        # this is seen only when a pointer was set by an older view of the hop).
        return [], _instant(row.snoozed_until), rungs
    pending: list[int] = []
    due: list[tuple[int, int, Notice]] = []
    for rung in rungs:
        # Each occurrence of a repeating rung follows from the one before, so walk them
        # forward instead of recounting from the first (what `rung_due` does).
        at = rung_due(rung, rung["fired"], calendar)
        latest: int | None = None
        while at is not None and at <= stamp:
            latest = at
            rung["fired"] += 1
            at = _following(rung, at, calendar)
        if latest is not None:
            # Repeats missed while nobody swept collapse into one notice, the latest; its key
            # is that occurrence's, so it stays unique.
            kind = worded_kind(rung["kind"], due_at=due_at, now=now)
            occurrence = datetime.fromtimestamp(latest, UTC)
            said = state
            if rung["repeat"] and occurrence > due_at:
                # A repeat says how late the hop was when it fell due, counted in the repeat's
                # own unit ("the 18th business day late"), so two repeats never read alike; the
                # latest one is never older than one repeat: this is the hop's state now.
                every = _duration(rung["repeat"]).unit
                said = replace(
                    state,
                    days_late=lateness(calendar, due_at, occurrence, every),
                    late_unit=every,
                )
            notice = hop_notice(
                key=f"step:{row.id}:rung:{rung['n']}:{rung['fired'] - 1}",
                kind=kind,
                state=said,
                request_id=row.request_id,
                step_id=row.id,
                tags=holders.tags(routing, rung["notify"], row.holder),
                at=occurrence,
                now=now,
            )
            due.append((latest, rung["n"], notice))
        if at is not None:
            pending.append(at)
    following = datetime.fromtimestamp(min(pending), UTC) if pending else None
    return [n for _, _, n in sorted(due, key=lambda d: (d[0], d[1]))], following, rungs


def lateness(calendar: Calendar, due_at: datetime, at: datetime, unit: str) -> int:
    """How late a hop due at `due_at` is at `at`, in business days, calendar days or hours."""
    if at <= due_at:
        return 0
    if unit == "bd":
        return calendar.business_days_between(due_at, at)
    if unit == "d":
        return (calendar.local_date(at) - calendar.local_date(due_at)).days
    return int((at - due_at).total_seconds() // 3600)


def _following(rung: dict[str, Any], at: int, calendar: Calendar) -> int | None:
    """The occurrence of `rung` after the one at `at` (`rung_due(rung, k + 1)` from the k-th,
    `rung["fired"]` being k + 1); None when it does not repeat or was acknowledged."""
    if not rung["repeat"] or silenced(rung, rung["fired"]):
        return None
    return calendar.add_ts(at, _duration(rung["repeat"]))


@lru_cache(maxsize=64)
def _duration(text: str) -> Duration:
    return Duration.parse(text)


def sweep_prescription(
    *,
    session: Session,
    routings: Routings,
    now: datetime,
    thresholds: Sequence[int] = DEFAULT_SLACK_THRESHOLDS,
) -> SweepResult:
    """Alert the coordinator once per case and threshold when prescription slack falls under it."""
    if not thresholds:
        return SweepResult(0, 0, 0)
    today = now.date()
    horizon = today + timedelta(days=max(thresholds))
    rows = (
        session.connection()
        .execute(
            select(
                Request.id,
                Request.reference,
                Request.country,
                Request.routing_version,
                Request.prescription_date,
                Request.prescription_running,
                Request.current_hop,
            ).where(Request.prescription_date <= horizon, Request.status != "closed")
        )
        .all()
    )
    notices = []
    failures = []
    worked: set[str] = set()
    for row in rows:
        slack = (row.prescription_date - today).days
        try:
            coordinator = routings.pinned(session, row.routing_version).config.contacts.get(
                Role.COORDINATOR
            )
        except Exception as exc:  # one bad case must not stop the alerts for the others
            failures.append(
                Failure.of(
                    exc,
                    reference=row.reference,
                    request_id=row.id,
                    country=row.country,
                    stage="prescription",
                )
            )
            continue
        worked.add(row.reference)
        for threshold in sorted(thresholds):
            if slack <= threshold:
                notices.append(
                    slack_notice(
                        reference=row.reference,
                        request_id=row.id,
                        prescription_date=row.prescription_date,
                        running=row.prescription_running,
                        open_hop=row.current_hop,
                        threshold=threshold,
                        tags=[coordinator] if coordinator else [],
                        now=now,
                    )
                )
                break  # the tightest threshold crossed; looser ones are moot
    created = deliveries.record(session.connection(), notices, now=now)
    return SweepResult(len(rows), created, len(notices) - created, failures=failures, worked=worked)

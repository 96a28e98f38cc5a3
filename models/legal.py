"""Legal deadlines: counted from the event the law names, beside the hops' own SLAs.

An EU instrument sets deadlines on the executing state that do not start when a hop opens: the
EIO's 30 days run from receipt (Directive 2014/41/EU art. 12(3)), its 90 days from the
recognition decision (art. 12(4)); the EAW's 60 days from the arrest (Framework Decision
2002/584/JHA art. 17(3)), its 10 days to surrender from the final decision (art. 23(2)). A route
declares them under `deadlines`; each is kept on its case as a small record (the `deadlines`
column of `requests`):

- `waiting` until the first of its `runs_from` events happens (receipt is known at
  registration; an arrest or a consent is recorded with `rogatory deadline`; a step's decision
  is seen when it is taken), then `running`;
- `met` by a decision of one of its `met_by` steps that settles it (any outcome but `returned`
  and `postponed`), on time or late; `moot` when such a decision comes before it started (the
  person never consented); `closed` when the case ends first;
- moved only by what the law provides: an extension notified before expiry (EIO art. 12(5),
  EAW art. 17(4)), a new surrender date agreed (EAW art. 23(3)-(4)), a shorter deadline asked
  by the issuing authority (EIO art. 12(2)). Every move is kept with its arithmetic.

Counting follows Regulation (EEC, Euratom) No 1182/71, the EU's rule for periods in its acts:
the day (or hour) of the event is not counted (art. 3(1)); a period of days ends with the last
hour of its last day, and one whose last day is a Saturday, Sunday or public holiday of the
executing state ends with the next working day (art. 3(2)(b), 3(4)); a period of hours starts
with the next full hour and ends when its last hour expires (art. 3(2)(a)), whatever the day.
Days are counted on the country's calendar, whose closures are not the law's: national
judicial vacations do not suspend an EU deadline.

A legal deadline escalates on its own ladder (the deadline's `escalation`, else `LADDER`), swept
like a hop's (models.sweep.sweep_deadlines); a step with `deadline: <id>` makes its hop due
when the legal deadline is due. The legal deadlines run on while the hop's clock is stopped:
the law stops them only where it says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from models.calendar import Calendar, Duration
from models.config import Route, Rung, anchor_words
from models.errors import CommandRejected
from models.loader import LegalTerms, Routing

COUNTING = (
    "Reg. 1182/71 art. 3: the day or hour of the event is not counted; a period of days ends "
    "at the end of its last day, moved to the next working day when that day is a weekend or "
    "public holiday; a period of hours ends when its last full hour expires"
)
UNSETTLING = ("returned", "postponed")
"""Outcomes that neither settle a deadline's step nor start a deadline that runs from it."""
LADDER = [
    Rung.model_validate({"at": "80%", "notify": ["holder", "coordinator"], "kind": "reminder"}),
    Rung.model_validate(
        {
            "at": "100%",
            "notify": ["holder", "head", "coordinator"],
            "kind": "escalation",
            "repeat": "1d",
        }
    ),
]
"""Unless a deadline says otherwise: a warning when four fifths have run, then every day."""
EVENTS = ("arrest", "consent", "extended", "new_date_agreed", "shortened")


def start(routing: Routing, route: Route, *, received_at: datetime) -> list[dict[str, Any]] | None:
    """The legal deadlines of a new case on `route`, those running from receipt started."""
    if not route.deadlines:
        return None
    items = [_item(routing.legal(route, d.id)) for d in route.deadlines]
    calendar = routing.calendar(None)
    for item in items:
        if "received" in item["from"]:
            _anchor(item, "received", received_at, calendar, route)
    return items


def _item(terms: LegalTerms) -> dict[str, Any]:
    return {
        "id": terms.id,
        "source": terms.source,
        "length": str(terms.length),
        "from": list(terms.anchors),
        "met_by": list(terms.met_by),
        "extension": None if terms.extension is None else str(terms.extension.by),
        "extension_source": None if terms.extension is None else terms.extension.source,
        "state": "waiting",
        "anchor": None,
        "anchored_at": None,
        "base_due_at": None,
        "due_at": None,
        "shortened_to": None,
        "extended": False,
        "ended_at": None,
        "late": None,
        "moves": [],
        "rungs": [],
    }


def due(length: Duration | str, at: datetime, calendar: Calendar) -> tuple[datetime, datetime]:
    """When a period of `length` from an event at `at` ends (Reg. 1182/71 art. 3), before and
    after moving a last day that is not a working day; both aware, in the calendar's zone."""
    length = length if isinstance(length, Duration) else Duration.parse(length)
    if length.unit == "h":
        hour = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = (hour + timedelta(hours=1 + length.amount)).astimezone(calendar.tz)
        return end, end
    days = length.amount if length.unit == "d" else None
    if days is None:  # business days already end on a working day
        end = calendar.add(at, length)
        return end, end
    last = calendar.local_date(at) + timedelta(days=days)
    base = _end_of(last, calendar)
    while not calendar.is_business_day(last):
        last += timedelta(days=1)
    return base, _end_of(last, calendar)


def _end_of(day: Any, calendar: Calendar) -> datetime:
    following = datetime.combine(day + timedelta(days=1), time(0), calendar.tz)
    return (following.astimezone(UTC) - timedelta(seconds=1)).astimezone(calendar.tz)


def _anchor(
    item: dict[str, Any], event: str, at: datetime, calendar: Calendar, route: Route
) -> None:
    base, end = due(item["length"], at, calendar)
    item.update(
        state="running", anchor=event, anchored_at=at.isoformat(), base_due_at=base.isoformat()
    )
    why = (
        f"runs {Duration.parse(item['length']).words()} from {anchor_words(event)} "
        f"on {_local(at, calendar)}: due {_local(end, calendar)}"
    )
    if end != base:
        why += f" (the last day, {base.date()}, is not a working day)"
    _set_due(item, end, calendar, route, why=why, at=at)
    if item["shortened_to"] is not None:
        _shorten(item, datetime.fromisoformat(item["shortened_to"]), calendar, route, at=at)


def _set_due(
    item: dict[str, Any],
    end: datetime,
    calendar: Calendar,
    route: Route,
    *,
    why: str,
    at: datetime,
) -> None:
    """Move the deadline to `end`, with its ladder over the window from its start to `end`."""
    item["due_at"] = end.isoformat()
    item["moves"].append({"at": at.isoformat(), "due_at": end.isoformat(), "why": why})
    item["rungs"] = window_rungs(
        route.deadline(item["id"]).escalation or LADDER,
        datetime.fromisoformat(item["anchored_at"]),
        end,
        calendar,
        before=item["rungs"],
    )


def window_rungs(
    ladder: list[Rung],
    start: datetime,
    end: datetime,
    calendar: Calendar,
    *,
    before: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """A ladder over the window `start`..`end` (a share of it, or an offset from its start),
    as a hop's rungs are kept. A rung already sent stays sent unless it moved later."""
    sent = {r["n"]: r for r in before or ()}
    rungs = []
    for n, rung in enumerate(ladder):
        share = rung.share
        if share is not None:
            instant = int(start.timestamp() + share * (end.timestamp() - start.timestamp()))
        else:
            assert rung.offset is not None
            instant = int(calendar.add(start, rung.offset).timestamp())
        old = sent.get(n)
        keep = old is not None and old["fired"] and old["at"] >= instant
        rungs.append(
            {
                "n": n,
                "kind": rung.kind.value,
                "notify": [r.value for r in rung.notify],
                "repeat": str(rung.repeat) if rung.repeat else None,
                "fired": old["fired"] if keep and old else 0,
                "at": instant,
            }
        )
    return rungs


def _local(instant: datetime, calendar: Calendar) -> str:
    return f"{instant.astimezone(calendar.tz):%Y-%m-%d %H:%M %Z}"


def on_decision(
    items: list[dict[str, Any]] | None,
    *,
    step: str,
    outcome: str,
    at: datetime,
    routing: Routing,
    route: Route,
) -> list[str]:
    """A decision of `step`: the deadlines it meets, then those it starts. Returns what
    happened, worded for the command's confirmation."""
    if not items or outcome in UNSETTLING:
        return []
    calendar = routing.calendar(None)
    said = []
    for item in items:
        meets = step in item["met_by"] or f"{step}:{outcome}" in item["met_by"]
        if not meets or item["state"] not in ("waiting", "running"):
            continue
        if item["state"] == "waiting":
            item.update(state="moot", ended_at=at.isoformat())
            item["moves"].append(
                {
                    "at": at.isoformat(),
                    "due_at": None,
                    "why": f"{step} decided ({outcome}) "
                    "before the deadline started: it does not apply",
                }
            )
            continue
        end = datetime.fromisoformat(item["due_at"])
        late = at > end
        item.update(state="met", ended_at=at.isoformat(), late=late)
        item["moves"].append(
            {
                "at": at.isoformat(),
                "due_at": item["due_at"],
                "why": f"met by the decision of {step} ({outcome})"
                + (
                    f", {lateness(end, at, item['length'], calendar)} late" if late else ", in time"
                ),
            }
        )
        said.append(f"legal deadline {item['id']} met" + (" LATE" if late else " in time"))
    for item in items:
        if item["state"] != "waiting":
            continue
        for anchor in item["from"]:
            if anchor in (f"decided:{step}", f"decided:{step}:{outcome}"):
                _anchor(item, anchor, at, calendar, route)
                said.append(f"legal deadline {item['id']} runs to {item['due_at'][:16]}")
                break
    return said


def on_opening(
    items: list[dict[str, Any]] | None, *, step: str, at: datetime, routing: Routing, route: Route
) -> None:
    """A hop of `step` opened: the deadlines that run from the request reaching it start."""
    for item in items or ():
        if item["state"] == "waiting" and f"opened:{step}" in item["from"]:
            _anchor(item, f"opened:{step}", at, routing.calendar(None), route)


def lateness(due_at: datetime, at: datetime, length: str, calendar: Calendar) -> str:
    """How late `at` is against `due_at`, in the deadline's own unit."""
    if Duration.parse(length).unit == "h":
        return f"{int((at - due_at).total_seconds() // 3600)} hour(s)"
    return f"{(calendar.local_date(at) - calendar.local_date(due_at)).days} day(s)"


def close(items: list[dict[str, Any]] | None, *, at: datetime, why: str) -> None:
    """The case ended: what had not run its course no longer runs."""
    for item in items or ():
        if item["state"] in ("waiting", "running"):
            item.update(state="closed", ended_at=at.isoformat())
            item["moves"].append({"at": at.isoformat(), "due_at": item["due_at"], "why": why})


def record(
    items: list[dict[str, Any]] | None,
    *,
    event: str,
    at: datetime,
    routing: Routing,
    route: Route,
    deadline: str | None = None,
    until: Any = None,
    reasons: str | None = None,
) -> str:
    """An event the law attaches to a deadline; returns what it did. Refuses, writing nothing,
    an event the case's deadlines cannot take."""
    if not items:
        raise CommandRejected(f"route {route.id!r} has no legal deadline: nothing to record")
    calendar = routing.calendar(None)
    if event in ("arrest", "consent"):
        started = [i for i in items if i["state"] == "waiting" and event in i["from"]]
        if not started:
            known = [i["id"] for i in items if event in i["from"]]
            raise CommandRejected(
                f"no legal deadline waits for {event}"
                + (f" ({', '.join(known)} started already)" if known else "")
            )
        for item in started:
            _anchor(item, event, at, calendar, route)
        return "; ".join(f"{i['id']} runs to {i['due_at'][:16]}" for i in started)
    item = _named(items, deadline, event)
    if event == "shortened":
        day = _day(until, "--until", event)
        end = _end_of(day, calendar)
        if item["state"] == "waiting":
            item["shortened_to"] = end.isoformat()
            item["moves"].append(
                {
                    "at": at.isoformat(),
                    "due_at": None,
                    "why": f"shorter deadline asked: {day}"
                    f"{_reason(reasons)}; applies once the deadline starts",
                }
            )
            return f"{item['id']}: shorter deadline {day} noted; it applies once it starts"
        _require_running(item, event)
        _shorten(item, end, calendar, route, at=at, reasons=reasons)
        return f"{item['id']} now due {item['due_at'][:16]}"
    _require_running(item, event)
    current = datetime.fromisoformat(item["due_at"])
    if event == "extended":
        if item["extension"] is None:
            raise CommandRejected(f"the law gives {item['id']} no extension ({item['source']})")
        if item["extended"]:
            raise CommandRejected(f"{item['id']} was extended already; the law allows it once")
        if at > current:
            raise CommandRejected(
                f"{item['id']} expired on {_local(current, calendar)}: an extension is notified "
                f"before the deadline runs out ({item['extension_source']})"
            )
        if not reasons:
            raise CommandRejected(
                f"give the reasons notified to the issuing authority ({item['extension_source']})"
            )
        base = datetime.fromisoformat(item["base_due_at"])
        new_base, end = due(item["extension"], base, calendar)
        item.update(extended=True, base_due_at=new_base.isoformat())
        _set_due(
            item,
            end,
            calendar,
            route,
            why=f"extended by {Duration.parse(item['extension']).words()} "
            f"({item['extension_source']}){_reason(reasons)}",
            at=at,
        )
        return f"{item['id']} extended to {item['due_at'][:16]}"
    day = _day(until, "--until", event)
    agreed = datetime.combine(day, time(12), calendar.tz)
    new_base, end = due(item["length"], agreed, calendar)
    item.update(base_due_at=new_base.isoformat())
    _set_due(
        item,
        end,
        calendar,
        route,
        why=f"new date agreed, {day}: {Duration.parse(item['length']).words()} from it"
        f"{_reason(reasons)}",
        at=at,
    )
    return f"{item['id']} now due {item['due_at'][:16]}"


def _shorten(
    item: dict[str, Any],
    end: datetime,
    calendar: Calendar,
    route: Route,
    *,
    at: datetime,
    reasons: str | None = None,
) -> None:
    item["shortened_to"] = None
    if end >= datetime.fromisoformat(item["due_at"]):
        item["moves"].append(
            {
                "at": at.isoformat(),
                "due_at": item["due_at"],
                "why": f"the shorter deadline asked ({end.date()}) is not shorter: unchanged",
            }
        )
        return
    _set_due(
        item,
        end,
        calendar,
        route,
        at=at,
        why=f"shorter deadline asked by the issuing authority: {end.date()} (Directive "
        f"2014/41/EU art. 12(2), taken into account as fully as possible){_reason(reasons)}",
    )


def _reason(reasons: str | None) -> str:
    # The reasons themselves may name a person: they stay in the event, sealed (models.privacy),
    # not in the `deadlines` projection that lists, reports and notices read.
    return "; reasons given with the event" if reasons else ""


def _named(items: list[dict[str, Any]], deadline: str | None, event: str) -> dict[str, Any]:
    ids = [i["id"] for i in items]
    if deadline is None:
        raise CommandRejected(
            f"{event}: name the deadline with --deadline (one of {', '.join(ids)})"
        )
    for item in items:
        if item["id"] == deadline:
            return item
    raise CommandRejected(f"no legal deadline {deadline!r} on this case (known: {', '.join(ids)})")


def _require_running(item: dict[str, Any], event: str) -> None:
    if item["state"] != "running":
        raise CommandRejected(f"{item['id']} is {item['state']}: {event} does not apply")


def _day(value: Any, name: str, event: str) -> Any:
    if value is None:
        raise CommandRejected(f"{event}: give the date with {name}")
    return value


def summary(items: Iterable[dict[str, Any]] | None) -> tuple[datetime | None, datetime | None]:
    """The case's next legal rung and its earliest running due: the sweep's and overdue's keys."""
    following: int | None = None
    earliest: datetime | None = None
    for item in items or ():
        if item["state"] != "running":
            continue
        end = datetime.fromisoformat(item["due_at"])
        earliest = end if earliest is None or end < earliest else earliest
        for rung in item["rungs"]:
            at = next_occurrence(rung)
            if at is not None and (following is None or at < following):
                following = at
    return (
        None if following is None else datetime.fromtimestamp(following, UTC),
        None if earliest is None else earliest.astimezone(UTC),
    )


def next_occurrence(rung: dict[str, Any]) -> int | None:
    """When the rung fires next (epoch seconds); repeats run on the wall clock, in whole days
    or hours, since a legal deadline's lateness counts calendar time."""
    if rung["fired"] == 0:
        return int(rung["at"])
    if not rung["repeat"]:
        return None
    every = Duration.parse(rung["repeat"])
    step = every.amount * (3600 if every.unit == "h" else 86_400)
    return int(rung["at"]) + step * int(rung["fired"])


def linked(items: list[dict[str, Any]] | None, deadline: str) -> dict[str, Any] | None:
    """The running legal deadline a hop's step follows, if it has started."""
    for item in items or ():
        if item["id"] == deadline and item["state"] == "running":
            found: dict[str, Any] = item
            return found
    return None

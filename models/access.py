"""What each role may touch: the one place that says whether a caller may run a command or read.

Every interface asks here before it acts, with the facts of the case as the ledger holds them
(its country, the authority holding its open hop, the authorities on its route, whether it is
confidential), never as the caller describes them. A refusal is `Forbidden`, saying what the
caller's roles do allow, so the clerk knows whom to ask.

    command                         who may
    register                        a clerk or head of the country, its coordinator
    decide, clock, reassign         the clerk or head of the authority holding the open hop,
                                    the country's coordinator
    resubmit                        the clerk or head of the authority it was returned from,
                                    the coordinator
    record                          the holder's clerk or head, the coordinator
    withdraw                        the holder's head, the coordinator
    migrate                         the coordinator, the ministry
    assign                          the holder's head, the coordinator: to any officer of the
                                    holder, or release; the holder's clerk: claim it for
                                    themself, or release it when it is theirs
    attach                          the clerks and heads of the authorities on the route
                                    (the holder's included), the coordinator
    acknowledge, snooze             the holder's head, the coordinator
    deadline                        the holder's clerks and head, the coordinator (as record)
    erase                           the country's coordinator, an admin

    reading a case                  its country's coordinator and ministry; its country's
                                    clerks, heads and auditors unless it is confidential;
                                    a confidential case, only the authorities on its route
                                    (auditors see it only in aggregates)
    an authority's inbox            its clerks and heads, the coordinator, the ministry
    a case's documents              whoever may read the case
    one's own work                  the hops assigned to the caller, of authorities they serve
    a country's escalation board    the coordinator, the ministry, the country's auditors
                                    (confidential cases only for those who see them one by one)
    a country's overdue list,       the coordinator, the ministry, the country's auditors
    reports and the event log

The command line on the server itself (`local:<os user>`) holds the database credentials and
may do anything; an admin manages accounts and does no case work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.errors import Forbidden
from models.identity import Caller, Grant, RoleName, Scope

if TYPE_CHECKING:
    from models.commands import Assign, Command

CLERKS = (RoleName.CLERK, RoleName.HEAD)
OVERSIGHT = (RoleName.COORDINATOR, RoleName.MINISTRY)


@dataclass(frozen=True)
class CaseFacts:
    """What deciding access needs to know about a case, read from the ledger."""

    reference: str
    country: str
    confidential: bool
    holder: str | None
    """The authority holding the open hop; the last one to hold it when none is open."""
    route_holders: frozenset[str]
    """Every authority on the case's pinned route or that has held one of its hops."""
    assigned_to: str | None = None
    """The officer the open hop is assigned to (read for `assign` only)."""


def _deny(caller: Caller, action: str) -> Forbidden:
    roles = ", ".join(str(g) for g in caller.grants) or "no role"
    return Forbidden(f"{caller.name} ({roles}) may not {action}")


def _of_authority(
    caller: Caller, country: str, authority: str | None, roles: Iterable[RoleName]
) -> bool:
    return any(
        g.role in roles and g.country == country and g.authority == authority for g in caller.grants
    )


def _of_country(caller: Caller, country: str, roles: Iterable[RoleName]) -> bool:
    return any(g.role in roles and g.country == country for g in caller.grants)


def authorise_command(caller: Caller, command: Command, facts: CaseFacts | None) -> None:
    """Refuse, with `Forbidden`, a command the caller's roles do not reach."""
    # Imported here: reading a case (its status, its page) never loads the commands.
    from models.commands import (
        Acknowledge,
        Assign,
        AttachDocument,
        Deadline,
        Decide,
        Migrate,
        Reassign,
        Record,
        Register,
        Resubmit,
        ResumeClock,
        Snooze,
        StopClock,
        Withdraw,
    )

    if caller.local:
        return
    caller.require_scope(Scope.WRITE)
    if isinstance(command, Register):
        country = str(command.request.get("country", ""))
        if _of_country(caller, country, (*CLERKS, RoleName.COORDINATOR)):
            return
        raise _deny(caller, f"register requests for {country or 'that country'}")
    assert facts is not None, "a case command is authorised against its case"
    coordinator = _of_country(caller, facts.country, (RoleName.COORDINATOR,))
    holder = facts.holder
    if isinstance(
        command, Decide | StopClock | ResumeClock | Reassign | Resubmit | Record | Deadline
    ):
        allowed = coordinator or _of_authority(caller, facts.country, holder, CLERKS)
    elif isinstance(command, Withdraw):
        allowed = coordinator or _of_authority(caller, facts.country, holder, (RoleName.HEAD,))
    elif isinstance(command, Migrate):
        allowed = _of_country(caller, facts.country, OVERSIGHT)
    elif isinstance(command, Assign):
        allowed = coordinator or _of_authority(caller, facts.country, holder, (RoleName.HEAD,))
        if not allowed and _of_authority(caller, facts.country, holder, (RoleName.CLERK,)):
            _authorise_claim(caller, command, facts)
            return
    elif isinstance(command, AttachDocument):
        allowed = coordinator or any(
            g.role in CLERKS and g.country == facts.country and g.authority in facts.route_holders
            for g in caller.grants
        )
    elif isinstance(command, Acknowledge | Snooze):
        allowed = coordinator or _of_authority(caller, facts.country, holder, (RoleName.HEAD,))
    else:
        allowed = False
    if not allowed:
        where = f"held by {holder}" if holder else "of that country"
        raise _deny(caller, f"{command.name} on {facts.reference} ({facts.country}, {where})")


def _authorise_claim(caller: Caller, command: Assign, facts: CaseFacts) -> None:
    """A clerk of the holder takes a free hop for themself, or releases their own."""
    mine = facts.assigned_to == caller.name
    if command.officer == caller.name and (facts.assigned_to is None or mine):
        return
    if command.officer is None and mine:
        return
    if command.officer is None:
        action = f"release {facts.reference}'s hop, assigned to {facts.assigned_to or 'nobody'}"
    elif command.officer != caller.name:
        action = (
            f"assign {facts.reference}'s hop to {command.officer} (a clerk claims for themself)"
        )
    else:
        action = f"claim {facts.reference}'s hop, already assigned to {facts.assigned_to}"
    raise _deny(caller, f"{action}: ask the head of {facts.holder} or the coordinator")


def may_work(caller: Caller, country: str, authority: str) -> bool:
    """Whether the caller is a clerk or head of the authority (the local command line is)."""
    return caller.local or _of_authority(caller, country, authority, CLERKS)


def authorise_case_read(caller: Caller, facts: CaseFacts) -> None:
    if caller.local:
        return
    caller.require_scope(Scope.READ)
    if _of_country(caller, facts.country, OVERSIGHT):
        return
    if facts.confidential:
        if any(
            g.role in CLERKS and g.country == facts.country and g.authority in facts.route_holders
            for g in caller.grants
        ):
            return
        raise _deny(
            caller,
            f"read {facts.reference}: it is confidential, seen only by the authorities on its "
            "route and the coordinators (auditors see it in aggregates)",
        )
    if _of_country(caller, facts.country, (*CLERKS, RoleName.AUDITOR)) or _all_countries(caller):
        return
    raise _deny(caller, f"read {facts.reference} ({facts.country})")


def authorise_erase(caller: Caller, country: str) -> None:
    """Erasing a case's personal data: its country's coordinator or an admin (the retention
    period is the engine's check, not a role's)."""
    if caller.local:
        return
    caller.require_scope(Scope.WRITE)
    if _of_country(caller, country, (RoleName.COORDINATOR,)) or any(
        g.role == RoleName.ADMIN for g in caller.grants
    ):
        return
    raise _deny(caller, f"erase a case of {country}: ask its coordinator or an admin")


def _all_countries(caller: Caller) -> bool:
    return any(g.role == RoleName.AUDITOR and g.country is None for g in caller.grants)


def authorise_inbox(caller: Caller, country: str, authority: str) -> None:
    if caller.local:
        return
    caller.require_scope(Scope.READ)
    if _of_authority(caller, country, authority, CLERKS) or _of_country(caller, country, OVERSIGHT):
        return
    raise _deny(caller, f"read the inbox of {country}/{authority}")


def authorise_country_view(caller: Caller, country: str, what: str) -> None:
    """Overdue lists, reports and event logs of one country."""
    if caller.local:
        return
    caller.require_scope(Scope.READ)
    if _of_country(caller, country, (*OVERSIGHT, RoleName.AUDITOR)) or _all_countries(caller):
        return
    raise _deny(caller, f"read {what} of {country}")


def countries_in_view(caller: Caller) -> tuple[str, ...] | None:
    """The countries whose aggregates the caller may read; None: all of them."""
    if caller.local or _all_countries(caller):
        return None
    found = {
        g.country for g in caller.grants if g.country and g.role in (*OVERSIGHT, RoleName.AUDITOR)
    }
    if not found:
        raise _deny(caller, "read reports")
    return tuple(sorted(found))


def sees_confidential_cases(caller: Caller, country: str) -> bool:
    """Whether the caller may see a confidential case of `country` one by one (not only in
    aggregates): the local command line, the coordinators and the ministry."""
    return caller.local or _of_country(caller, country, OVERSIGHT)


def reachable_cases(caller: Caller) -> list[Grant] | None:
    """The grants that make cases visible in a search; None: every case (the command line)."""
    if caller.local:
        return None
    return [g for g in caller.grants if g.role != RoleName.ADMIN]

"""A small caseload played through the real engine, shared by the audit tests.

The El Salvador chain runs from Monday 2 February to Wednesday 11 March 2026: no public holiday
or closure falls in that span, so business days are the weekdays. Instants at 15:00 UTC are
09:00 in San Salvador (UTC-6), on the same local day. Business-day ranks, counted from Monday
2 February = 0: Fri 13 Feb = 9, Mon 16 = 10, Wed 18 = 12, Fri 20 = 14, Tue 24 = 16,
Wed 25 = 17, Fri 27 = 19, Tue 3 Mar = 21, Fri 6 = 24, Tue 10 = 26, Wed 11 = 27.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from models import engine
from models.clock import FixedClock
from models.engine import Routings
from models.ledger import Ledger
from tests.samples import intake as sv

NOW = datetime(2026, 3, 11, 15, tzinfo=UTC)


def at(month: int, day: int, hour: int = 15) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


Script = list[tuple[datetime, str, str, dict[str, Any]]]


def play(ledger: Ledger, routings: Routings, script: Script) -> dict[str, str]:
    """Run (instant, case label, command, arguments) in time order; labels map to references."""
    clock = FixedClock(script[0][0])
    refs: dict[str, str] = {}
    for when, label, command, kwargs in sorted(script, key=lambda s: s[0]):
        clock.set(when)
        with ledger.transaction() as session:
            if command == "register":
                result = engine.register(session=session, clock=clock, routings=routings, **kwargs)
                refs[label] = result.reference
            else:
                getattr(engine, command)(
                    session=session,
                    clock=clock,
                    routings=routings,
                    reference=refs[label],
                    **kwargs,
                )
    return refs


def sv_script() -> Script:
    feb2 = at(2, 2, 9)
    return [
        (feb2, "A", "register", {"data": sv()}),
        (feb2, "B", "register", {"data": sv(legal_basis="bilateral_treaty")}),
        (feb2, "C", "register", {"data": sv()}),
        (feb2, "D", "register", {"data": sv()}),
        (at(2, 5), "C", "decide", {"outcome": "returned", "cause": "incomplete_request"}),
        (at(2, 9), "C", "resubmit", {}),
        (at(2, 13), "B", "decide", {"outcome": "forwarded"}),
        (at(2, 18), "D", "decide", {"outcome": "forwarded"}),
        (at(2, 20), "A", "decide", {"outcome": "forwarded"}),
        (at(2, 20, 16), "D", "stop_clock", {"reason": "awaiting_clarification"}),
        (at(2, 24), "A", "decide", {"outcome": "forwarded"}),
        (at(2, 24, 16), "D", "resume_clock", {"reason": "answer received"}),
        # Entered on Friday, decided on Wednesday: a late entry of two days.
        (at(2, 27), "C", "decide", {"outcome": "forwarded", "on": at(2, 25)}),
        (at(3, 2), "C", "withdraw", {}),
        (at(3, 3), "B", "decide", {"outcome": "refused", "ground": "no_dual_criminality"}),
        (at(3, 9, 9), "G", "register", {"data": sv(legal_basis="untoc")}),
        (at(3, 10), "D", "decide", {"outcome": "refused", "ground": "bank_secrecy"}),
    ]


def us_script() -> Script:
    us = sv(country="US", requesting_authority="US Attorney", conducting_authority="FBI")
    feb2 = at(2, 2, 14)
    out: Script = [(feb2, "E", "register", {"data": us}), (feb2, "F", "register", {"data": us})]
    for label, last in (("E", "executed"), ("F", "partially_executed")):
        out += [
            (at(2, 3), label, "decide", {"outcome": "forwarded"}),
            (at(2, 4), label, "decide", {"outcome": "forwarded"}),
            (at(2, 6), label, "decide", {"outcome": last}),
        ]
    return out

"""Every error rogatory raises on purpose, in one tree.

    RogatoryError                    base of all of them
    ├── ConfigError                  a country or preset file is wrong (holds ConfigProblem list)
    ├── CalendarError                a duration or instant the calendar cannot handle
    ├── IntakeError                  a request refused at registration (holds the reasons)
    ├── CommandRejected              an engine command refused; nothing was written
    │   ├── NotFound                 no such case, step or routing version
    │   ├── DecisionNotAllowed       the route does not allow that decision here
    │   ├── NoRouteMatches           no route's `when` fits the request
    │   └── Conflict                 another command changed the case first
    ├── LedgerTampered               the hash chain of a case is broken
    ├── SchemaOutdated               the ledger's tables are not at this code's revision
    └── NotificationError            apprise could not deliver a message

Messages name what was wrong, where, and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass


class RogatoryError(Exception):
    """Base class of every error rogatory raises on purpose."""


@dataclass(frozen=True, order=True)
class ConfigProblem:
    """One problem in one file, located like a compiler diagnostic."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class ConfigError(RogatoryError):
    """A configuration file is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class CalendarError(RogatoryError):
    """A duration or instant the business calendar cannot handle."""


class IntakeError(RogatoryError):
    """A request was refused at registration; `reasons` says why, field by field."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("request refused:\n" + "\n".join(f"  - {r}" for r in reasons))


class CommandRejected(RogatoryError):
    """An engine command was refused; nothing was written."""


class NotFound(CommandRejected):
    """No such case, step or routing version."""


class DecisionNotAllowed(CommandRejected):
    """The route does not allow that decision on this step."""


class NoRouteMatches(CommandRejected):
    """No route of the country fits the request."""


class Conflict(CommandRejected):
    """Another command changed the case first; read it again and retry."""


class LedgerTampered(RogatoryError):
    """The hash chain of a case's events is broken."""


class SchemaOutdated(RogatoryError):
    """The ledger's schema is missing or older than this code: run `rogatory db upgrade`."""


class NotificationError(RogatoryError):
    """Apprise could not deliver a message."""

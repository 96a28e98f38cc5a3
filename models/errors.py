"""Every error rogatory raises on purpose, in one tree.

    RogatoryError                    base of all of them
    ├── ConfigError                  a country or preset file is wrong (holds ConfigProblem list)
    ├── CalendarError                a duration or instant the calendar cannot handle
    ├── IntakeError                  a request refused at registration (holds the reasons)
    ├── RegisterRejected             a register import refused, nothing written (holds the
    │                                problems, each `file:sheet:row:column: message`)
    ├── CommandRejected              an engine command refused; nothing was written
    │   ├── NotFound                 no such case, step or routing version
    │   ├── DecisionNotAllowed       the route does not allow that decision here
    │   ├── NoRouteMatches           no route's `when` fits the request
    │   └── Conflict                 another command changed the case first
    ├── AccessError                  who is calling, and whether they may
    │   ├── NotSignedIn              no valid sign-in, session or token
    │   └── Forbidden                the caller's role does not reach this case or action
    ├── LedgerTampered               the hash chain of a case is broken
    ├── SchemaOutdated               the ledger's tables are not at this code's revision
    ├── KeyUnavailable               the master key is missing, malformed or not the ledger's
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


@dataclass(frozen=True)
class RegisterProblem:
    """One problem in one cell (or row) of a register being imported."""

    file: str
    sheet: str
    row: int
    column: str
    """The spreadsheet column letter (A, B, ... AA); empty when the problem is the whole row."""
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.sheet}:{self.row}:{self.column}: {self.message}"


class RegisterRejected(RogatoryError):
    """A register import was refused and nothing was written; `problems` lists every one."""

    def __init__(self, problems: list[RegisterProblem], *, rows: int, cases: int) -> None:
        self.problems = problems
        self.rows = rows
        self.cases = cases
        super().__init__(
            "\n".join(str(p) for p in problems)
            + f"\n{len(problems)} problem(s) in {rows} row(s); nothing was written "
            "(--skip-invalid imports the cases without problems)"
        )


class CommandRejected(RogatoryError):
    """An engine command was refused; nothing was written.

    The keyword-only context (the case, the hop, the sequence expected and found, the reasons)
    travels with the message, so every interface reports the refusal the same way.
    """

    def __init__(
        self,
        message: str,
        *,
        reference: str | None = None,
        hop: int | None = None,
        expected_seq: int | None = None,
        actual_seq: int | None = None,
        reasons: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.reference = reference
        self.hop = hop
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq
        self.reasons = reasons or []

    def fields(self) -> dict[str, object]:
        """The context that was given, for machine-readable error bodies."""
        found = {
            "reference": self.reference,
            "hop": self.hop,
            "expected_seq": self.expected_seq,
            "actual_seq": self.actual_seq,
            "reasons": self.reasons or None,
        }
        return {k: v for k, v in found.items() if v is not None}


class NotFound(CommandRejected):
    """No such case, step or routing version."""


class DecisionNotAllowed(CommandRejected):
    """The route does not allow that decision on this step."""


class NoRouteMatches(CommandRejected):
    """No route of the country fits the request."""


class Conflict(CommandRejected):
    """Another command changed the case first; read it again and retry."""


class AccessError(RogatoryError):
    """Who is calling, and whether they may: identity comes from a sign-in or a token only."""


class NotSignedIn(AccessError):
    """No valid sign-in, session or token came with the call."""


class Forbidden(AccessError):
    """The caller is known, but their role does not reach this case or this action."""


class LedgerTampered(RogatoryError):
    """The hash chain of a case's events is broken."""


class SchemaOutdated(RogatoryError):
    """The ledger's schema is missing or older than this code: run `rogatory db upgrade`."""


class KeyUnavailable(RogatoryError):
    """The master key that wraps the case keys cannot be read, or does not open them."""


class NotificationError(RogatoryError):
    """Apprise could not deliver a message."""

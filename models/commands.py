"""Every change to a case as a typed command: one pydantic model per command, every field the
engine accepts, and the one place that says which engine function runs it.

The command line's options, the HTTP API's bodies, the Prefect resume forms and the simulator
are all built from these models, so a field added here appears in each of them. A command
says nothing about who sends it: the caller is established by sign-in or token and passed
beside the command (see `app.service`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from models import engine
from models.clock import Clock
from models.documents import MAX_DOCUMENT_BYTES, DocumentKind
from models.domain import DelayCause, Outcome, RefusalGround, RequestMaker
from models.engine import Result, Routings
from models.prescription import EventKind

Note = Annotated[str, Field(max_length=4000, description="Free text kept with the event")]
Reason = Annotated[
    str, Field(min_length=1, max_length=1000, description="Why, in a sentence (required)")
]
Reference = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}-\d{4}-\d{6}$",
        description="The case reference, e.g. SV-2026-000001",
    ),
]
When = Annotated[
    date | datetime | None,
    Field(
        description="When it happened, if entered late: a date (read in the holder's timezone) "
        "or a date-time; empty for now",
    ),
]


class Command(BaseModel):
    """What every command has: an optional idempotency key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]
    """The command's name in the CLI, the API and the security log."""
    idempotency_key: Annotated[
        str | None,
        Field(
            max_length=200,
            description="Repeating the command with the same key does nothing the second time",
        ),
    ] = None

    def engine_arguments(self) -> dict[str, Any]:
        """The fields as the engine function takes them."""
        return self.model_dump(exclude_none=False)

    def run(self, *, session: Session, clock: Clock, routings: Routings, actor: str) -> Result:
        function: Callable[..., Result] = getattr(engine, ENGINE_FUNCTIONS[type(self)])
        return function(
            session=session, clock=clock, routings=routings, actor=actor, **self.engine_arguments()
        )


class CaseCommand(Command):
    """A command on a case that exists; `seq` guards against acting on a stale view of it."""

    reference: Reference
    seq: Annotated[
        int | None,
        Field(
            ge=0,
            description="The case's event sequence the caller saw: refused (conflict) if the "
            "case has moved since",
        ),
    ] = None


class Register(Command):
    """Register a request (UNCAC art. 46(15) fields) and open its first hop."""

    name: ClassVar[str] = "register"
    request: Annotated[
        dict[str, Any], Field(description="The request's fields, as in a request file")
    ]
    on: When = None

    def engine_arguments(self) -> dict[str, Any]:
        return {"data": self.request, "on": self.on, "idempotency_key": self.idempotency_key}


class Decide(CaseCommand):
    """Record the holder's decision on the open hop."""

    name: ClassVar[str] = "decide"
    outcome: Annotated[Outcome, Field(description="The holder's decision on the hop")]
    hop: Annotated[
        int | None, Field(ge=1, description="The hop decided; refused if another is open now")
    ] = None
    ground: Annotated[RefusalGround | None, Field(description="A refusal's ground")] = None
    cause: Annotated[DelayCause | None, Field(description="A return's cause")] = None
    reasons_given: Annotated[
        bool | None, Field(description="UNCAC art. 46(23): reasons given for a refusal")
    ] = None
    consulted: Annotated[
        bool | None,
        Field(description="UNCAC art. 46(26): the requester consulted before refusing"),
    ] = None
    note: Note | None = None
    on: When = None


class Resubmit(CaseCommand):
    """The requester answered a return: reopen the step it was returned from."""

    name: ClassVar[str] = "resubmit"
    note: Note | None = None
    on: When = None


class StopClock(CaseCommand):
    """Stop the open hop's SLA while the case waits on the requester."""

    name: ClassVar[str] = "clock-stop"
    reason: Reason
    hop: Annotated[int | None, Field(ge=1)] = None
    on: When = None


class ResumeClock(CaseCommand):
    """Restart the open hop's SLA; the time it stood still pushes its deadlines back."""

    name: ClassVar[str] = "clock-resume"
    reason: Reason
    hop: Annotated[int | None, Field(ge=1)] = None
    on: When = None


class Reassign(CaseCommand):
    """The request reached the wrong authority: move the open hop to the right one."""

    name: ClassVar[str] = "reassign"
    to: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$", description="The authority's id")]
    hop: Annotated[int | None, Field(ge=1)] = None
    note: Note | None = None
    on: When = None


class Withdraw(CaseCommand):
    """The requester no longer needs the assistance (UNCAC art. 46(24)): close the case."""

    name: ClassVar[str] = "withdraw"
    note: Note | None = None
    on: When = None


class Record(CaseCommand):
    """Record a fact that may move the prescription date (a request sent abroad, an order...)."""

    name: ClassVar[str] = "record"
    event: EventKind
    on: Annotated[date, Field(description="The day it happened")]
    request_abroad: Annotated[
        str | None,
        Field(
            max_length=120,
            description="Which request abroad it concerns; required when several are pending",
        ),
    ] = None
    applied_on: Annotated[
        date | None,
        Field(
            description="suspension_ordered under 18 U.S.C. § 3292: the day the application "
            "was filed (it must precede expiry; required for US cases)"
        ),
    ] = None
    by: Annotated[
        RequestMaker | None,
        Field(
            description="request_sent_abroad: who made it (StGB § 78c(1) Nr. 12 counts a "
            "judge's request only; required where that rule applies)"
        ),
    ] = None
    note: Note | None = None


class Migrate(CaseCommand):
    """Move the case to the routing version now in force, on the record."""

    name: ClassVar[str] = "migrate"


Hop = Annotated[
    int | None, Field(ge=1, description="The hop meant; refused if another is open now")
]


class Assign(CaseCommand):
    """Give the open hop to an officer of its holding authority, or release it."""

    name: ClassVar[str] = "assign"
    officer: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=64,
            description="The account that works the hop (a clerk or head of the holding "
            "authority); empty releases it",
        ),
    ] = None
    hop: Hop = None
    note: Note | None = None


def _plain_filename(name: str) -> str:
    if name in (".", "..") or any(c in name for c in "/\\") or not name.isprintable():
        raise ValueError("a file name only: no folder, no path separator, no control character")
    return name


class AttachDocument(CaseCommand):
    """Attach a document, already kept in the document store under its SHA-256, to the case."""

    name: ClassVar[str] = "attach"
    sha256: Annotated[
        str, Field(pattern=r"^[0-9a-f]{64}$", description="The content's SHA-256, lowercase hex")
    ]
    kind: Annotated[DocumentKind, Field(description="What the document is")]
    filename: Annotated[
        str,
        Field(min_length=1, max_length=255, description="The file's name, without any folder"),
        AfterValidator(_plain_filename),
    ]
    media_type: Annotated[
        str,
        Field(
            max_length=100,
            pattern=r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$",
            description="The content's media type, e.g. application/pdf",
        ),
    ]
    size: Annotated[int, Field(ge=0, le=MAX_DOCUMENT_BYTES, description="Bytes")]
    note: Note | None = None


class Acknowledge(CaseCommand):
    """The escalation of the open hop is seen to: the rungs fired so far repeat no more."""

    name: ClassVar[str] = "acknowledge"
    hop: Hop = None
    note: Reason


class Snooze(CaseCommand):
    """No rung of the open hop's ladder fires before a day; then the ladder carries on."""

    name: ClassVar[str] = "snooze"
    until: Annotated[
        date,
        Field(
            description="The first day rungs fire again (from its start, in the holder's timezone)"
        ),
    ]
    reason: Reason
    hop: Hop = None


class Deadline(CaseCommand):
    """Record an event a legal deadline runs from or moves by.

    EU instruments: the arrest, the person's consent, an extension notified, a new surrender
    date agreed, a shorter deadline asked by the issuing authority."""

    name: ClassVar[str] = "deadline"
    event: Annotated[
        Literal["arrest", "consent", "extended", "new_date_agreed", "shortened"],
        Field(description="What happened"),
    ]
    on: When = None
    deadline: Annotated[
        str | None,
        Field(
            max_length=64,
            description="The legal deadline it moves (extended, new_date_agreed, shortened)",
        ),
    ] = None
    until: Annotated[
        date | None,
        Field(description="The new date agreed, or the shorter deadline asked (a day)"),
    ] = None
    reasons: Annotated[
        str | None,
        Field(max_length=1000, description="The reasons notified (required for an extension)"),
    ] = None


ENGINE_FUNCTIONS: dict[type[Command], str] = {
    Register: "register",
    Decide: "decide",
    Resubmit: "resubmit",
    StopClock: "stop_clock",
    ResumeClock: "resume_clock",
    Reassign: "reassign",
    Withdraw: "withdraw",
    Record: "record",
    Migrate: "migrate",
    Assign: "assign",
    AttachDocument: "attach",
    Acknowledge: "acknowledge",
    Snooze: "snooze",
    Deadline: "deadline_event",
}
COMMANDS: dict[str, type[Command]] = {c.name: c for c in ENGINE_FUNCTIONS}
CaseCommandName = Literal[
    "decide",
    "resubmit",
    "clock-stop",
    "clock-resume",
    "reassign",
    "withdraw",
    "record",
    "migrate",
    "assign",
    "attach",
    "acknowledge",
    "snooze",
    "deadline",
]

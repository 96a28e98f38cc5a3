"""The case subcommands of `rogatory`: each command's options are built from its typed model.

`rogatory decide REF --outcome forwarded ...` parses into `models.commands.Decide` and goes
to the client (this machine's ledger, or the API with ROGATORY_API_URL): a field added to a
command model appears here as an option without touching this file. Queries (status, inbox,
overdue, cases) go the same way.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import asdict
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from app.cli import day, emit
from models.errors import CommandRejected, RogatoryError

if TYPE_CHECKING:
    from models.commands import Command

Sub = Any  # argparse's private _SubParsersAction

OPTION_NAMES = {"idempotency_key": "--key", "request_abroad": "--request"}
"""Options whose name differs from the field's (kept from earlier versions of the CLI)."""


def register(sub: Sub) -> None:
    # Options are made from the command models (pydantic, the engine): built only for the
    # command chosen, so `rogatory status` and `--help` never import them.
    sub.add_parser("request", help="register requests", build=_request_options)
    _case(sub, "Decide", "decide", "record the holder's decision on the open hop")
    sub.add_parser("clock", help="stop or resume the open hop's SLA clock", build=_clock_options)
    _case(sub, "Resubmit", "resubmit", "the requester answered a return: reopen the hop")
    _case(sub, "Reassign", "reassign", "the request reached the wrong authority: move it")
    _case(sub, "Withdraw", "withdraw", "the requester no longer needs the assistance")
    _case(sub, "Record", "record", "record a prescription-relevant event")
    _case(sub, "Migrate", "migrate", "move a case to the routing version now in force")
    _case(sub, "Assign", "assign", "give the open hop to an officer (no --officer: release it)")
    _case(sub, "Acknowledge", "acknowledge", "the hop's escalation is seen to: no more repeats")
    _case(sub, "Snooze", "snooze", "no rung of the hop's ladder fires before a day")
    _case(sub, "Deadline", "deadline", "an arrest, a consent or a move of a legal deadline")
    sub.add_parser("attach", help="attach a document to a case", build=_attach_options)
    e = sub.add_parser(
        "erase", help="destroy a closed case's personal data once its retention period is over"
    )
    e.add_argument("reference")
    e.add_argument("--reason", required=True, help="why (kept in clear: name no person)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(handler=erase)

    s = sub.add_parser("status", help="a case's timeline: hops, days taken, lateness, stops")
    s.add_argument("reference")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=status)

    i = sub.add_parser("inbox", help="an authority's open hops, overdue first")
    i.add_argument("country")
    i.add_argument("authority")
    i.add_argument("--json", action="store_true")
    i.set_defaults(handler=inbox)

    o = sub.add_parser("overdue", help="every overdue hop of a country")
    o.add_argument("country")
    o.add_argument("--json", action="store_true")
    o.set_defaults(handler=overdue)

    c = sub.add_parser("cases", help="search the cases you may see")
    for name in ("reference", "country", "authority", "status", "counterpart", "kind"):
        c.add_argument(f"--{name}")
    c.add_argument("--direction", choices=["incoming", "outgoing"])
    c.add_argument("--since", type=day, help="registered on or after this day")
    c.add_argument("--until", type=day, help="registered on or before this day")
    c.add_argument("--page", type=int, default=1)
    c.add_argument("--size", type=int, default=50)
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cases)


def _command(name: str) -> type[Command]:
    """The command model named `name`, from models.commands (imported on first use)."""
    from models import commands

    found: type[Command] = getattr(commands, name)
    return found


def _case(sub: Sub, model: str, name: str, help: str) -> None:
    sub.add_parser(name, help=help, build=lambda p: _case_options(p, _command(model)))


def _case_options(p: argparse.ArgumentParser, command: type[Command]) -> None:
    p.description = (command.__doc__ or "").strip()
    p.add_argument("reference")
    command_options(p, command, skip={"reference"})
    p.set_defaults(handler=lambda args: _submit(args, command))


def _request_options(p: argparse.ArgumentParser) -> None:
    rs = p.add_subparsers(metavar="ACTION")
    r = rs.add_parser("register", help="register a request from a YAML or JSON file")
    r.add_argument("file", type=Path)
    command_options(r, _command("Register"), skip={"request"})
    r.set_defaults(handler=request_register)


def _clock_options(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(metavar="ACTION", required=True)
    stop = "stop the clock while the case waits on the requester"
    resume = "restart the clock; deadlines move by the time stopped"
    _case_options(actions.add_parser("stop", help=stop), _command("StopClock"))
    _case_options(actions.add_parser("resume", help=resume), _command("ResumeClock"))


def _attach_options(a: argparse.ArgumentParser) -> None:
    command = _command("AttachDocument")
    a.description = (command.__doc__ or "").strip()
    a.add_argument("reference")
    a.add_argument("file", type=Path)
    a.add_argument("--filename", help="the name it is kept under (default: the file's)")
    a.add_argument("--media-type", help="e.g. application/pdf (default: guessed from the name)")
    command_options(a, command, skip={"reference", "sha256", "size", "filename", "media_type"})
    a.set_defaults(handler=attach)


# -- options from a command's fields ---------------------------------------------------------------


def local_when(text: str) -> date | datetime:
    """`--on`: a day (`2026-10-15`) or a date-time (`2026-10-15T15:30`, zone optional).

    Without a zone it is left naive: the engine reads it in the timezone of the hop's holder,
    where the clerk's "15 October" happened, and prints the instant it was read as.
    """
    try:
        if len(text.strip()) == 10:
            return date.fromisoformat(text.strip())
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (2026-10-15) or a date-time (2026-10-15T15:30, "
            "optionally with a zone such as +02:00)"
        ) from None


def _plain(annotation: Any) -> tuple[Any, bool]:
    """The type behind `X | None`, and whether None was allowed."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if set(args) == {date, datetime}:
            return local_when, optional
        return (args[0] if len(args) == 1 else str), optional
    return annotation, False


def command_options(p: argparse.ArgumentParser, command: type[Command], *, skip: set[str]) -> None:
    """One option per field of `command`, typed, with its description as help."""
    for name, info in command.model_fields.items():
        if name in skip:
            continue
        flag = OPTION_NAMES.get(name, "--" + name.replace("_", "-"))
        kind, _ = _plain(info.annotation)
        options: dict[str, Any] = {"dest": name, "help": info.description}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif isinstance(kind, type) and issubclass(kind, Enum):
            options["choices"] = [e.value for e in kind]
        elif kind is int:
            options["type"] = int
        elif kind is date and name == "on":
            options["type"] = day
        elif kind is local_when:
            options["type"] = local_when
        if info.is_required():
            options["required"] = True
        p.add_argument(flag, **options)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def build(command: type[Command], args: argparse.Namespace, **extra: Any) -> Command:
    """The typed command from the parsed options; invalid values are refused with their field."""
    from pydantic import ValidationError

    values = {
        name: getattr(args, name)
        for name in command.model_fields
        if getattr(args, name, None) is not None
    }
    try:
        return command.model_validate({**values, **extra})
    except ValidationError as exc:
        reasons = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        raise CommandRejected("; ".join(reasons), reasons=reasons) from None


def _submit(args: argparse.Namespace, command: type[Command], **extra: Any) -> int:
    from app.client import client

    typed = build(command, args, **extra)
    result = client(quiet=args.json).submit(typed)
    emit(args, {**asdict(result), "warnings": list(result.warnings)}, result.message)
    return 0


def erase(args: argparse.Namespace) -> int:
    """On this machine's ledger only: erasure is not offered through the API."""
    from app.client import LocalClient

    local = LocalClient(quiet=args.json)
    result = local.service.erase(args.reference, reason=args.reason, caller=local.caller)
    emit(args, {**asdict(result), "warnings": list(result.warnings)}, result.message)
    return 0


def request_register(args: argparse.Namespace) -> int:
    from models.intake import read_request

    return _submit(args, _command("Register"), request=read_request(args.file))


def attach(args: argparse.Namespace) -> int:
    """Store the file's bytes and attach them to the case (here, or through the API)."""
    import mimetypes

    from app.client import client
    from models.documents import MAX_DOCUMENT_BYTES

    target = client(quiet=args.json)
    try:
        size = args.file.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise CommandRejected(
                f"{args.file} has {size} bytes; at most {MAX_DOCUMENT_BYTES} are accepted"
            )
        content = args.file.read_bytes()
    except OSError as exc:
        raise RogatoryError(f"cannot read {args.file}: {exc.strerror}") from None
    filename = args.filename or args.file.name
    media_type = args.media_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    result = target.attach(
        args.reference,
        content,
        filename=filename,
        media_type=media_type,
        kind=args.kind,
        note=args.note,
        idempotency_key=args.idempotency_key,
    )
    emit(args, {**asdict(result), "warnings": list(result.warnings)}, result.message)
    return 0


# -- queries ---------------------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    from app.client import client

    view = client().timeline(args.reference)
    emit(args, view.as_json(), _timeline_text(view))
    return 0


def _timeline_text(view: Any) -> str:
    pres = view.prescription_date.isoformat() if view.prescription_date else "not configured"
    if view.prescription_date is None:
        # The law's own reason where the country file gives one ("... does not prescribe").
        why = next((m.get("why") for m in view.prescription_history if m.get("why")), None)
        pres = f"none ({why})" if why else pres
    if view.prescription_running:
        pres += " (provisional: a suspension is running)"
    lines = [
        f"{view.reference}  {view.country}  route {view.route}  ({view.status}"
        f"{', ' + view.outcome if view.outcome else ''})",
        f"registered {view.registered_at:%Y-%m-%d}   prescription {pres}",
        "",
        f"{'hop':>3}  {'step':<22} {'holder':<8} {'opened':<10} {'due':<10} {'closed':<10} "
        f"{'bd':>4} {'cd':>4} {'late':>4} {'stop':>4}  decision",
    ]
    for h in view.hops:
        zone = ZoneInfo(h.timezone)
        opened, due = h.opened_at.astimezone(zone), h.due_at.astimezone(zone)
        closed = f"{h.closed_at.astimezone(zone):%Y-%m-%d}" if h.closed_at else "open"
        decision = h.outcome or ""
        if h.ground:
            decision += f" ({h.ground})"
        if h.cause:
            decision += f" ({h.cause})"
        lines.append(
            f"{h.hop:>3}  {h.step:<22} {h.holder:<8} {opened:%Y-%m-%d} {due:%Y-%m-%d} "
            f"{closed:<10} {h.business_days:>4} {h.calendar_days:>4} {h.days_late:>4} "
            f"{h.stopped_business_days:>4}  {decision}"
        )
    lines += _deadlines_text(view.deadlines, view.hops[-1].timezone if view.hops else "UTC")
    if view.prescription_rules:
        lines += ["", "the limitation rules applied:"]
        lines += [f"  {rule}" for rule in view.prescription_rules]
    if view.prescription_history:
        # Even with nothing recorded, the registration's line says how the date was counted.
        lines += ["", "why the prescription date moved:"]
        lines += [
            f"  {m['on']}  {m['event']}: {m.get('date')}  {m.get('why', '')}"
            for m in view.prescription_history
        ]
    return "\n".join(lines)


def _deadlines_text(deadlines: list[dict[str, Any]], timezone: str) -> list[str]:
    """The legal deadlines: each with its article, state, due day and how it moved."""
    if not deadlines:
        return []
    zone = ZoneInfo(timezone)
    lines = ["", "legal deadlines (counted from the event the law names; Reg. 1182/71 art. 3):"]
    for d in deadlines:
        due = (
            f"due {datetime.fromisoformat(d['due_at']).astimezone(zone):%Y-%m-%d %H:%M}"
            if d["due_at"]
            else "not started"
        )
        state = d["state"] + (" LATE" if d.get("late") else "")
        lines.append(f"  {d['id']:<20} {d['length']:>4}  {state:<12} {due}  ({d['source']})")
        if d["state"] == "waiting":
            lines.append(f"      waits for: {', '.join(d['from'])}")
        lines += [f"      {m['at'][:10]}  {m['why']}" for m in d["moves"]]
    return lines


def _items_text(items: list[Any]) -> str:
    if not items:
        return "nothing open."
    lines = [
        f"{'reference':<16} {'hop':>3} {'step':<22} {'holder':<8} {'due':<10} "
        f"{'late':>4} {'slack':>6}  flags"
    ]
    for i in items:
        flags = ",".join(
            f
            for f, on in (
                ("OVERDUE", i.overdue),
                ("LEGAL-DEADLINE-PASSED", i.legal_overdue),
                ("stopped", i.clock_stopped),
                ("urgent", i.urgent),
            )
            if on
        )
        slack = "-" if i.slack_days is None else str(i.slack_days)
        # A deadline is the end of the holder's business day: show that day, not UTC's.
        due = i.due_at.astimezone(ZoneInfo(i.timezone))
        lines.append(
            f"{i.reference:<16} {i.hop:>3} {i.step:<22} {i.holder:<8} "
            f"{due:%Y-%m-%d} {i.days_late:>4} {slack:>6}  {flags}"
        )
    return "\n".join(lines)


def inbox(args: argparse.Namespace) -> int:
    from app.client import client

    items = client().inbox(args.country.upper(), args.authority)
    emit(args, [asdict(i) for i in items], _items_text(items))
    return 0


def overdue(args: argparse.Namespace) -> int:
    from app.client import client

    items = client().overdue(args.country.upper())
    emit(args, [asdict(i) for i in items], _items_text(items))
    return 0


def cases(args: argparse.Namespace) -> int:
    from app.client import client
    from models.queries import CaseSearch

    search = CaseSearch(
        reference=args.reference,
        country=args.country.upper() if args.country else None,
        authority=args.authority,
        status=args.status,
        counterpart=args.counterpart.upper() if args.counterpart else None,
        kind=args.kind,
        direction=args.direction,
        registered_since=args.since,
        registered_until=args.until,
    )
    found = client().search(search, page=args.page, size=args.size)
    lines = [
        f"{c.reference:<16} {c.status:<15} {c.route:<24} "
        f"{(c.holder or '-'):<10} {c.counterpart}  {'confidential' if c.confidential else ''}"
        for c in found.cases
    ]
    first = (found.page - 1) * found.size + 1 if found.cases else 0
    lines.append(f"{first}-{first + len(found.cases) - 1 if found.cases else 0} of {found.total}")
    emit(args, asdict(found), "\n".join(lines))
    return 0

"""The subcommands of `rogatory`, each a thin layer over models/ (no SQL here)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from app.cli import actor, config_paths, day, emit, instant
from models.clock import clock_from_env
from models.domain import DelayCause, Outcome, RefusalGround
from models.errors import CalendarError, ConfigError, ConfigProblem, NotFound
from models.loader import Routing, load_all, load_country, load_presets

Sub = Any  # argparse's private _SubParsersAction


def register(sub: Sub) -> None:
    for add in (
        _validate,
        _routes,
        _calendar,
        _request,
        _decide,
        _clock,
        _resubmit,
        _reassign,
        _withdraw,
        _record,
        _migrate,
        _status,
        _inbox,
        _overdue,
        _audit,
    ):
        add(sub)


@contextmanager
def ledger_session() -> Iterator[tuple[Any, Any]]:
    """A committed-or-nothing transaction on the ledger, with the routings in force."""
    from models.engine import Routings
    from models.ledger import Ledger

    with Ledger() as ledger, ledger.transaction() as session:
        yield session, Routings(load_all())


def _execute(name: str, args: argparse.Namespace, **kwargs: Any) -> Any:
    """Run engine command `name` in its own transaction and print what it did."""
    from models import engine

    with ledger_session() as (session, routings):
        result = getattr(engine, name)(
            session=session,
            clock=clock_from_env(),
            routings=routings,
            actor=actor(args),
            idempotency_key=args.key,
            **kwargs,
        )
    emit(args, asdict(result), result.message)
    return result


def _run(name: str, args: argparse.Namespace, **kwargs: Any) -> int:
    """A command on an existing case: record it, then wake the case's flow run."""
    _execute(name, args, **kwargs)
    from app.ops import wake_flow

    wake_flow(kwargs["reference"], quiet=args.json)
    return 0


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


def _common(p: argparse.ArgumentParser, *, on: bool = True) -> None:
    p.add_argument("--key", help="idempotency key: repeating the command with it does nothing")
    p.add_argument("--actor", help="who acts (default: $ROGATORY_ACTOR or $USER)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    if on:
        p.add_argument(
            "--on",
            type=local_when,
            help="when it happened, if entered late; a date is read in the holder's timezone",
        )


# -- configuration ------------------------------------------------------------------------------


def _validate(sub: Sub) -> None:
    p = sub.add_parser("validate", help="check country routing files; exit 1 listing every problem")
    p.add_argument("paths", nargs="*", help="files or folders (default: config/countries)")
    p.set_defaults(handler=validate)


def validate(args: argparse.Namespace) -> int:
    if not args.paths:
        routings = load_all()
        for code, routing in sorted(routings.items()):
            print(
                f"ok  {routing.file}  {code}  version {routing.version}  "
                f"{len(routing.config.routes)} routes"
            )
        print(f"{len(routings)} country file(s) valid.")
        _warn_unserved_tags(routings.values())
        return 0
    presets = load_presets()
    problems: list[ConfigProblem] = []
    loaded = []
    for path in config_paths(args.paths):
        if not path.is_file():
            problems.append(ConfigProblem(str(path), 1, 1, "", "no such file"))
            continue
        try:
            routing = load_country(path, presets=presets)
        except ConfigError as exc:
            problems += exc.problems
        else:
            loaded.append(routing)
            print(f"ok  {routing.file}  {routing.country}  version {routing.version}")
    if problems:
        raise ConfigError(problems)
    _warn_unserved_tags(loaded)
    return 0


def _warn_unserved_tags(routings: Iterable[Routing]) -> None:
    """Name the contact tags no apprise line serves: their alerts would stay pending."""
    from models.contacts import apprise_config_path, contact_tags, served_tags

    path = apprise_config_path()
    missing = sorted(set(contact_tags(routings)) - served_tags(path))
    if missing:
        print(
            f"warning: {path} has no line for {len(missing)} contact tag(s), so their alerts "
            f"would stay pending: {', '.join(missing)}\n"
            "  run `rogatory notify config` to send them to the offline outbox, then put real "
            "apprise URLs on their lines"
        )


def _routing(code: str) -> Routing:
    routings = load_all()
    try:
        return routings[code.upper()]
    except KeyError:
        known = ", ".join(sorted(routings))
        raise NotFound(f"no routing for {code!r} (configured: {known})") from None


def _routes(sub: Sub) -> None:
    p = sub.add_parser("routes", help="draw each route of a country as a chain with its SLAs")
    p.add_argument("country")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=routes)


def routes(args: argparse.Namespace) -> int:
    routing = _routing(args.country)
    config = routing.config
    out = []
    lines = [f"{config.name} ({config.country}), routing version {routing.version}", ""]
    for route in config.routes:
        links = []
        for i, step in enumerate(route.steps):
            name = config.authorities[step.holder].name
            cond = f" [if {_matcher_text(step.when)}]" if step.when else ""
            sla = routing.sla(route, i)
            preset = f" {step.preset}" if step.preset else ""
            links.append(f"{name} ({sla.amount} {sla.unit}{preset}){cond}")
        when = _matcher_text(route.when) or "any request"
        lines.append(f"{route.id}: {route.name or ''} — when {when}")
        lines.append("  " + " -> ".join(links))
        lines.append("")
        out.append(
            {
                "id": route.id,
                "when": route.when.model_dump(mode="json", exclude_none=True),
                "steps": [
                    {"id": s.id, "holder": s.holder, "sla": str(routing.sla(route, i))}
                    for i, s in enumerate(route.steps)
                ],
            }
        )
    emit(
        args,
        {"country": config.country, "version": routing.version, "routes": out},
        "\n".join(lines).rstrip(),
    )
    return 0


def _matcher_text(matcher: Any) -> str:
    if matcher is None:
        return ""
    parts = []
    for key, value in matcher.model_dump(mode="json", exclude_none=True).items():
        shown = "|".join(str(v) for v in value) if isinstance(value, list) else str(value)
        parts.append(f"{key}={shown}")
    return ", ".join(parts)


def _calendar(sub: Sub) -> None:
    p = sub.add_parser("calendar", help="compute a due instant and show the days it skipped")
    p.add_argument("country")
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        help="a date (read in the country's timezone) or a date-time with zone",
    )
    p.add_argument("--add", required=True, help="10bd (business days), 30d or 48h")
    p.add_argument("--authority", help="use this authority's own calendar")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=calendar)


def calendar(args: argparse.Namespace) -> int:
    routing = _routing(args.country)
    if args.authority and args.authority not in routing.config.authorities:
        known = ", ".join(routing.config.authorities)
        raise NotFound(f"no authority {args.authority!r} (known: {known})")
    cal = routing.calendar(args.authority)
    try:
        start = instant(args.start, tz=cal.timezone).astimezone(cal.tz)
    except argparse.ArgumentTypeError as exc:
        raise CalendarError(f"--from {exc}") from None
    due = cal.add(start, args.add)
    skipped = cal.skipped(start, due)
    lines = [
        f"from      {start.isoformat()} ({cal.timezone})",
        f"add       {args.add}",
        f"due       {due.isoformat()}  ({due.strftime('%A %d %B %Y, end of day')})",
        f"business days counted: {cal.business_days_between(start, due)}",
    ]
    if skipped:
        lines.append(f"skipped {len(skipped)} day(s):")
        lines += [f"  {s.day.isoformat()} {s.day.strftime('%a')}  {s.reason}" for s in skipped]
    emit(
        args,
        {
            "from": start.isoformat(),
            "add": args.add,
            "due": due.isoformat(),
            "skipped": [{"day": s.day.isoformat(), "reason": s.reason} for s in skipped],
        },
        "\n".join(lines),
    )
    return 0


# -- cases ---------------------------------------------------------------------------------------


def _request(sub: Sub) -> None:
    p = sub.add_parser("request", help="register requests")
    rs = p.add_subparsers(metavar="ACTION")
    r = rs.add_parser("register", help="register a request from a YAML or JSON file")
    r.add_argument("file", type=Path)
    _common(r)
    r.set_defaults(handler=request_register)


def request_register(args: argparse.Namespace) -> int:
    from models.intake import read_request

    result = _execute("register", args, data=read_request(args.file), on=args.on)
    from app.ops import start_flow

    start_flow(result.reference, quiet=args.json)
    return 0


def _decide(sub: Sub) -> None:
    p = sub.add_parser("decide", help="record the holder's decision on the open hop")
    p.add_argument("reference")
    p.add_argument("--outcome", required=True, choices=[o.value for o in Outcome])
    p.add_argument("--hop", type=int, help="the hop decided (refused if another is open now)")
    p.add_argument("--ground", choices=[g.value for g in RefusalGround])
    p.add_argument("--cause", choices=[c.value for c in DelayCause])
    p.add_argument("--note")
    _common(p)
    p.set_defaults(handler=decide)


def decide(args: argparse.Namespace) -> int:
    return _run(
        "decide",
        args,
        reference=args.reference,
        outcome=args.outcome,
        hop=args.hop,
        ground=args.ground,
        cause=args.cause,
        note=args.note,
        on=args.on,
    )


def _clock(sub: Sub) -> None:
    p = sub.add_parser("clock", help="stop or resume the open hop's SLA clock")
    p.add_argument("action", choices=["stop", "resume"])
    p.add_argument("reference")
    p.add_argument("--reason", required=True)
    p.add_argument("--hop", type=int)
    _common(p)
    p.set_defaults(handler=clock)


def clock(args: argparse.Namespace) -> int:
    name = "stop_clock" if args.action == "stop" else "resume_clock"
    return _run(name, args, reference=args.reference, reason=args.reason, hop=args.hop, on=args.on)


def _resubmit(sub: Sub) -> None:
    p = sub.add_parser("resubmit", help="the requester answered a return: reopen the hop")
    p.add_argument("reference")
    p.add_argument("--note")
    _common(p)
    p.set_defaults(handler=resubmit)


def resubmit(args: argparse.Namespace) -> int:
    return _run("resubmit", args, reference=args.reference, note=args.note, on=args.on)


def _reassign(sub: Sub) -> None:
    p = sub.add_parser("reassign", help="the request reached the wrong authority: move it")
    p.add_argument("reference")
    p.add_argument("--to", required=True, help="the authority id that should hold it")
    p.add_argument("--hop", type=int)
    p.add_argument("--note")
    _common(p)
    p.set_defaults(
        handler=lambda a: _run(
            "reassign", a, reference=a.reference, to=a.to, hop=a.hop, note=a.note, on=a.on
        )
    )


def _withdraw(sub: Sub) -> None:
    p = sub.add_parser("withdraw", help="the requester no longer needs the assistance")
    p.add_argument("reference")
    p.add_argument("--note")
    _common(p)
    p.set_defaults(
        handler=lambda a: _run("withdraw", a, reference=a.reference, note=a.note, on=a.on)
    )


def _record(sub: Sub) -> None:
    from models.prescription import EventKind

    p = sub.add_parser("record", help="record a prescription-relevant event")
    p.add_argument("reference")
    p.add_argument("--event", required=True, choices=[k.value for k in EventKind])
    p.add_argument("--on", type=day, required=True, help="the day it happened (YYYY-MM-DD)")
    p.add_argument("--request", dest="request_abroad", help="which request abroad it concerns")
    p.add_argument("--note")
    _common(p, on=False)
    p.set_defaults(
        handler=lambda a: _run(
            "record",
            a,
            reference=a.reference,
            event=a.event,
            on=a.on,
            request_abroad=a.request_abroad,
            note=a.note,
        )
    )


def _migrate(sub: Sub) -> None:
    p = sub.add_parser("migrate", help="move a case to the routing version now in force")
    p.add_argument("reference")
    _common(p, on=False)
    p.set_defaults(handler=lambda a: _run("migrate", a, reference=a.reference))


# -- queries ---------------------------------------------------------------------------------------


def _status(sub: Sub) -> None:
    p = sub.add_parser("status", help="a case's timeline: hops, days taken, lateness, stops")
    p.add_argument("reference")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=status)


def status(args: argparse.Namespace) -> int:
    from models.engine import Routings
    from models.ledger import Ledger, Request
    from models.queries import timeline

    with Ledger() as ledger, ledger.session() as session:
        request = session.query(Request).filter_by(reference=args.reference).first()
        if request is None:
            raise NotFound(f"no case {args.reference!r}")
        # The case runs on its pinned version, stored in the ledger: no need to parse every file.
        routing = Routings({}).pinned(session, request.routing_version)
        view = timeline(
            session=session, routing=routing, reference=args.reference, now=clock_from_env().now()
        )
    emit(args, view.as_json(), _timeline_text(view))
    return 0


def _timeline_text(view: Any) -> str:
    pres = view.prescription_date.isoformat() if view.prescription_date else "not configured"
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
    if len(view.prescription_history) > 1:
        lines += ["", "why the prescription date moved:"]
        lines += [
            f"  {m['on']}  {m['event']}: {m.get('date')}  {m.get('why', '')}"
            for m in view.prescription_history
        ]
    return "\n".join(lines)


def _inbox(sub: Sub) -> None:
    p = sub.add_parser("inbox", help="an authority's open hops, overdue first")
    p.add_argument("country")
    p.add_argument("authority")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=inbox)


def _items_text(items: list[Any], routing: Routing) -> str:
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
                ("stopped", i.clock_stopped),
                ("urgent", i.urgent),
            )
            if on
        )
        slack = "-" if i.slack_days is None else str(i.slack_days)
        # A deadline is the end of the holder's business day: show that day, not UTC's.
        due = i.due_at.astimezone(routing.calendar(i.holder).tz)
        lines.append(
            f"{i.reference:<16} {i.hop:>3} {i.step:<22} {i.holder:<8} "
            f"{due:%Y-%m-%d} {i.days_late:>4} {slack:>6}  {flags}"
        )
    return "\n".join(lines)


def _query(args: argparse.Namespace, fn: Callable[..., list[Any]], **kwargs: Any) -> int:
    from models.ledger import Ledger

    routing = _routing(args.country)
    now = clock_from_env().now()
    with Ledger() as ledger, ledger.session() as session:
        items = fn(session=session, routing=routing, now=now, **kwargs)
    emit(args, [asdict(i) for i in items], _items_text(items, routing))
    return 0


def inbox(args: argparse.Namespace) -> int:
    from models.queries import inbox as inbox_query

    return _query(args, inbox_query, holder=args.authority)


def _overdue(sub: Sub) -> None:
    p = sub.add_parser("overdue", help="every overdue hop of a country")
    p.add_argument("country")
    p.add_argument("--json", action="store_true")

    def handler(args: argparse.Namespace) -> int:
        from models.queries import overdue

        return _query(args, overdue)

    p.set_defaults(handler=handler)


def _audit(sub: Sub) -> None:
    p = sub.add_parser("audit", help="check the ledger")
    a = p.add_subparsers(metavar="ACTION")
    v = a.add_parser("verify", help="recompute every event hash; exit 1 at the first broken link")
    v.add_argument("--reference")
    v.add_argument("--json", action="store_true")
    v.set_defaults(handler=audit_verify)


def audit_verify(args: argparse.Namespace) -> int:
    from models.ledger import Ledger
    from models.queries import verify_chain

    with Ledger() as ledger, ledger.session() as session:
        broken = verify_chain(session=session, reference=args.reference)
    if broken:
        emit(args, [asdict(b) for b in broken], "\n".join(f"BROKEN {b}" for b in broken))
        return 1
    emit(args, [], "ledger intact: every event hash checks out")
    return 0

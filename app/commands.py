"""The configuration and audit subcommands of `rogatory` (cases: app/case_commands.py)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

from app.cli import config_paths, emit, instant
from models.errors import CalendarError, ConfigError, ConfigProblem, NotFound

if TYPE_CHECKING:
    from models.loader import Routing

Sub = Any  # argparse's private _SubParsersAction


def register(sub: Sub) -> None:
    for add in (_validate, _routes, _calendar, _audit):
        add(sub)


# -- configuration ------------------------------------------------------------------------------


def _validate(sub: Sub) -> None:
    p = sub.add_parser("validate", help="check country routing files; exit 1 listing every problem")
    p.add_argument("paths", nargs="*", help="files or folders (default: config/countries)")
    p.set_defaults(handler=validate)


def validate(args: argparse.Namespace) -> int:
    from models.loader import load_all, load_country, load_presets

    if not args.paths:
        routings = load_all()
        for code, routing in sorted(routings.items()):
            print(
                f"ok  {routing.file}  {code}  version {routing.version}  "
                f"{len(routing.config.routes)} routes"
            )
        print(f"{len(routings)} country file(s) valid.")
        _warn_config(routings.values())
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
    _warn_config(loaded)
    _warn_unserved_tags(loaded)
    return 0


def _warn_config(routings: Iterable[Routing]) -> None:
    """Name what valid files will get wrong (closures that run out, offences without a
    prescription period); warnings leave the exit code at 0."""
    from models.loader import config_warnings

    today = date.today()
    for routing in routings:
        for warning in config_warnings(routing, today=today):
            print(f"warning: {warning}")


def _warn_unserved_tags(routings: Iterable[Routing]) -> None:
    """Name the contact tags no apprise line serves: their alerts would stay pending. The
    config checked is the one in force: the Prefect Secret block when one is named."""
    from models.contacts import contact_tags, served_in, served_tags
    from models.errors import NotificationError
    from tasks.notify_sources import apprise_source, read_secret

    source = apprise_source()
    if source.secret is not None:
        try:
            served = served_in(read_secret(source.secret))
        except NotificationError as exc:
            print(f"warning: the contact tags were not checked: {exc}")
            return
        fix = f"add a `tag=URL` line for each to {source}"
    else:
        assert source.path is not None
        served = served_tags(source.path)
        fix = (
            "run `rogatory notify config` to send them to the offline outbox, then put real "
            "apprise URLs on their lines"
        )
    missing = sorted(set(contact_tags(routings)) - served)
    if missing:
        print(
            f"warning: {source} has no line for {len(missing)} contact tag(s), so their alerts "
            f"would stay pending: {', '.join(missing)}\n  {fix}"
        )


def _routing(code: str) -> Routing:
    """The routing in force of one country, read from its own file alone."""
    from models.loader import configured_countries, load_country_code

    routing = load_country_code(code)
    if routing is None:
        known = ", ".join(configured_countries())
        raise NotFound(f"no routing for {code!r} (configured: {known})")
    return routing


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


# -- the ledger ---------------------------------------------------------------------------------


def _audit(sub: Sub) -> None:
    from app import audit_cli  # audit verify|checkpoint|keygen, backup, restore (issue 14)

    audit_cli.register(sub)

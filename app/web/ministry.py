"""The ministry's routing pages: the chains in force drawn, a calendar year previewed, a draft
checked and compared, and published on the record.

    /ministry                           the countries whose routing the caller looks after
    /ministry/{CC}                      the chains in force, the version and its publications
    /ministry/{CC}/calendar             a year of an authority's business calendar
    /ministry/{CC}/draft                check a draft file; if valid, what it would change
    /ministry/{CC}/publish              make the checked draft the routing in force

A country's ministry and its coordinator see these pages and may check drafts; only the
ministry publishes (`models.publishing` says who may, checks, compares and publishes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from app.web.pages import Pages, see_other
from models import publishing
from models.calendar import Calendar, Duration
from models.config import CalendarSpec, Rung
from models.errors import ConfigError, ConfigProblem, Forbidden, NotFound
from models.identity import Caller, RoleName
from models.loader import Routing, config_root
from models.safe_yaml import MAX_BYTES

Country = Annotated[str, Path(pattern=r"^[A-Za-z]{2}$")]
ONE_DAY = timedelta(days=1)


def add_ministry_pages(app: FastAPI, pages: Pages) -> None:
    service = pages.service

    @app.get("/ministry", include_in_schema=False)
    def ministry(request: Request) -> Response:
        visitor = pages.visitor(request)
        roles = publishing.routing_roles(visitor.caller)
        if not roles:
            raise Forbidden(
                f"{visitor.name} looks after no country's routing: the routing pages are for a "
                "country's ministry and its coordinator"
            )
        rows = [(code, role, *_in_force(code)) for code, role in roles.items()]
        return pages.render(request, "ministry.html", visitor=visitor, rows=rows)

    @app.get("/ministry/{country}", include_in_schema=False)
    def country_page(request: Request, country: Country, published: str = "") -> Response:
        visitor = pages.visitor(request)
        code = country.upper()
        publishing.authorise_routing_view(visitor.caller, code)
        routing, problems = _in_force(code)
        with service.ledger.session() as session:
            history = publishing.publications(session, country=code)
        return pages.render(
            request,
            "ministry_country.html",
            visitor=visitor,
            country=code,
            routing=routing,
            problems=problems,
            routes=chains(routing) if routing else [],
            country_ladder=routing.config.escalation if routing else [],
            history=history,
            may_publish=_may_publish(visitor.caller, code),
            published=published,
        )

    @app.get("/ministry/{country}/calendar", include_in_schema=False)
    def calendar_page(
        request: Request,
        country: Country,
        authority: str = "",
        year: Annotated[int | None, Query(ge=1, le=9999)] = None,
    ) -> Response:
        visitor = pages.visitor(request)
        code = country.upper()
        publishing.authorise_routing_view(visitor.caller, code)
        routing = publishing.in_force(code, root=config_root())
        if routing is None:
            raise NotFound(f"no routing of {code} in force: its calendar is not known")
        if authority and authority not in routing.config.authorities:
            known = ", ".join(routing.config.authorities)
            raise NotFound(f"{code} has no authority {authority!r} (known: {known})")
        cal = routing.calendar(authority or None)
        shown = year or service.clock.now().astimezone(cal.tz).year
        return pages.render(
            request,
            "ministry_calendar.html",
            visitor=visitor,
            country=code,
            routing=routing,
            authority=authority,
            year=shown,
            preview=preview_year(routing, authority or None, shown),
        )

    @app.get("/ministry/{country}/draft", include_in_schema=False)
    def draft_page(request: Request, country: Country) -> Response:
        visitor = pages.visitor(request)
        code = country.upper()
        publishing.authorise_routing_view(visitor.caller, code)
        return pages.render(
            request,
            "ministry_draft.html",
            visitor=visitor,
            country=code,
            draft=None,
            diff=None,
            broken=[],
            may_publish=_may_publish(visitor.caller, code),
        )

    @app.post("/ministry/{country}/draft", include_in_schema=False)
    async def check_draft(request: Request, country: Country) -> Response:
        visitor = pages.visitor(request)
        form = await pages.form(request, visitor)
        code = country.upper()
        publishing.authorise_routing_view(visitor.caller, code)
        draft = publishing.check_draft(await _draft_content(form), country=code, root=config_root())
        current, broken = _in_force(code)
        diff = publishing.diff_routings(current, draft.routing) if draft.routing else None
        return pages.render(
            request,
            "ministry_draft.html",
            visitor=visitor,
            country=code,
            draft=draft,
            diff=diff,
            broken=broken,
            may_publish=_may_publish(visitor.caller, code),
        )

    @app.post("/ministry/{country}/publish", include_in_schema=False)
    async def publish(request: Request, country: Country) -> Response:
        visitor = pages.visitor(request)
        form = await pages.form(request, visitor)
        code = country.upper()
        publishing.authorise_publish(visitor.caller, code)
        done = publishing.publish(
            str(form.get("text", "")).encode(),
            ledger=service.ledger,
            country=code,
            root=config_root(),
            actor=visitor.caller.actor,
            now=service.clock.now(),
            note=str(form.get("note", "")).strip(),
            reviewed=str(form.get("reviewed", "")),
            based_on=str(form.get("based_on", "")) or None,
        )
        service.reload_routings()
        return see_other(f"/ministry/{code}?published={done.version}")


def _in_force(country: str) -> tuple[Routing | None, list[ConfigProblem]]:
    """The routing in force, or the problems of a file on disk that no longer loads."""
    try:
        return publishing.in_force(country, root=config_root()), []
    except ConfigError as broken:
        return None, broken.problems


def _may_publish(caller: Caller, country: str) -> bool:
    return publishing.routing_roles(caller).get(country) == RoleName.MINISTRY


async def _draft_content(form: dict[str, Any]) -> bytes:
    """The uploaded file if one was chosen, else the pasted text (a file over the size limit is
    kept one byte too long, so the check refuses it by its size)."""
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        content = await upload.read(MAX_BYTES + 1)
        if content:
            return content
    return str(form.get("text", "")).encode()


# -- the chains, as the page draws them ---------------------------------------------------------


@dataclass(frozen=True)
class StepView:
    number: int
    id: str
    holder: str
    holder_id: str
    sla: Duration
    preset: str
    when: list[tuple[str, list[str]]]
    decisions: list[tuple[str, str]]
    ladder_from: str
    """Where its escalation ladder is set: step, route or country."""
    rungs: list[Rung]
    note: str


@dataclass(frozen=True)
class RouteView:
    id: str
    name: str
    when: list[tuple[str, list[str]]]
    steps: list[StepView]


def chains(routing: Routing) -> list[RouteView]:
    """Each route of the routing, its steps in order with all a holder needs to know."""
    config = routing.config
    found = []
    for route in config.routes:
        steps = []
        for i, step in enumerate(route.steps):
            ladder_from, rungs = publishing.ladder_of(routing, route, i)
            steps.append(
                StepView(
                    number=i + 1,
                    id=step.id,
                    holder=config.authorities[step.holder].name,
                    holder_id=step.holder,
                    sla=routing.sla(route, i),
                    preset=step.preset or "",
                    when=publishing.matcher_fields(step.when),
                    decisions=[(str(o), t) for o, t in route.decisions_for(i).items()],
                    ladder_from=ladder_from,
                    rungs=rungs,
                    note=step.note or "",
                )
            )
        found.append(
            RouteView(
                route.id, route.name or route.id, publishing.matcher_fields(route.when), steps
            )
        )
    return found


# -- a year of a calendar -------------------------------------------------------------------


@dataclass(frozen=True)
class Day:
    day: date
    kind: str
    """business, weekend, holiday or closure."""
    name: str = ""


@dataclass(frozen=True)
class ClosedSpan:
    """Consecutive days closed for the same reason: a holiday, or days of one closure."""

    first: date
    last: date
    kind: str
    name: str


@dataclass(frozen=True)
class Month:
    number: int
    weeks: list[list[Day | None]]
    """Monday to Sunday; None before the first and after the last day of the month."""
    business_days: int
    closed: list[ClosedSpan]
    """Its public holidays and closures, with their names (weekends go without saying)."""


@dataclass(frozen=True)
class YearPreview:
    covered: bool
    """Whether the calendar reaches this year at all (else there are no months)."""
    first_year: int
    last_year: int
    months: list[Month] = field(default_factory=list)
    business_days: int = 0
    holidays: str | None = None
    """The country whose public holidays count (None: none are configured)."""
    holiday_years: tuple[int, int] = (0, 0)
    """The years the holidays package knows that country's holidays for."""
    closure_years: list[int] = field(default_factory=list)
    """The years the file lists dated closures (judicial vacations) for: another year's may be
    missing."""
    recurring: bool = False
    """The calendar has closures that come back every year: no year lacks them."""


def preview_year(routing: Routing, authority: str | None, year: int) -> YearPreview:
    """A year of the calendar that counts the deadlines of `authority` (None: the country's)."""
    import holidays as holidays_pkg

    cal = routing.calendar(authority)
    first, last = cal.first.year, cal.last.year
    if not first <= year <= last:
        return YearPreview(False, first, last)
    days = _classified_days(cal, year, _closure_names(routing.text))
    months = []
    for number in range(1, 13):
        of_month = [d for d in days if d.day.month == number]
        cells: list[Day | None] = [None] * of_month[0].day.weekday()
        cells += of_month
        cells += [None] * (-len(cells) % 7)
        months.append(
            Month(
                number,
                [cells[i : i + 7] for i in range(0, len(cells), 7)],
                sum(d.kind == "business" for d in of_month),
                _spans(d for d in of_month if d.kind in ("holiday", "closure")),
            )
        )
    config = routing.config
    own = config.authorities[authority].calendar if authority else None
    spec: CalendarSpec = own or config.calendar
    source = spec.holidays
    known = (0, 0)
    if source is not None:
        table = holidays_pkg.country_holidays(source.country, subdiv=source.subdiv)
        known = (table.start_year, table.end_year)
    closures = config.calendar.closures + (own.closures if own else [])
    return YearPreview(
        True,
        first,
        last,
        months,
        sum(m.business_days for m in months),
        source.country if source else None,
        known,
        sorted({y for c in closures for y in _years(c)}),
        bool(config.calendar.recurring or (own.recurring if own else [])),
    )


def _classified_days(cal: Calendar, year: int, names: dict[str, str]) -> list[Day]:
    """Every day of `year`, with the calendar's own reason for each closed day (a closure by
    its name in `names`, when it has one)."""

    def noon(day: date) -> datetime:
        return datetime.combine(day, time(12), cal.tz)

    first = date(year, 1, 1)
    # The calendar names the closed days after the one it counts from: the eve of the year.
    eve = max(first - ONE_DAY, cal.first)
    reasons = {s.day: s.reason for s in cal.skipped(noon(eve), noon(date(year, 12, 31)))}
    out = []
    day = first
    while day.year == year:
        if cal.is_business_day(day):
            out.append(Day(day, "business"))
        else:
            out.append(_closed(day, reasons.get(day), names, weekend=day.weekday() in cal.weekend))
        day += ONE_DAY
    return out


def _closed(day: date, reason: str | None, names: dict[str, str], *, weekend: bool) -> Day:
    if reason is None:  # the calendar's very first day, which has no eve to count from
        return Day(day, "weekend" if weekend else "closure")
    if reason.endswith(" (public holiday)"):
        return Day(day, "holiday", reason.removesuffix(" (public holiday)"))
    if reason.endswith(" (weekend)"):
        return Day(day, "weekend")
    closure = reason.removeprefix("closure ")
    return Day(day, "closure", names.get(closure, closure))


def _spans(days: Iterable[Day]) -> list[ClosedSpan]:
    spans: list[ClosedSpan] = []
    for d in days:
        last = spans[-1] if spans else None
        if last and (last.kind, last.name) == (d.kind, d.name) and last.last + ONE_DAY == d.day:
            spans[-1] = replace(last, last=d.day)
        else:
            spans.append(ClosedSpan(d.day, d.day, d.kind, d.name))
    return spans


def _closure_names(text: str) -> dict[str, str]:
    """The comment beside each closure in the file (`- 2026-08-03/2026-08-06  # Fiestas
    Agostinas`): the only name a closure has."""
    found = {}
    for line in text.splitlines():
        item, hash_, comment = line.partition("#")
        item = item.strip().removeprefix("- ").strip().strip("'\"")
        if (
            hash_
            and comment.strip()
            and re.fullmatch(r"\d{4}-\d{2}-\d{2}(/\d{4}-\d{2}-\d{2})?", item)
        ):
            found[item] = f"{item}: {comment.strip()}"
    return found


def _years(closure: str) -> range:
    first, _, last = closure.partition("/")
    return range(int(first[:4]), int((last or first)[:4]) + 1)

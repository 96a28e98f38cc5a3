"""The ministry's what-if page: a proposed chain replayed on the country's recorded caseload.

    /ministry/{CC}/whatif       GET: the form; POST: the proposal checked, then replayed

A country's ministry and its coordinator (those who see its routing pages) may run it: it reads
the country's cases in aggregate only. The answer is drawn by `whatif_macros.html`, the same
tables `rogatory whatif --format html` writes to a file.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.responses import Response

from app.web.i18n import translator
from app.web.ministry import _draft_content
from app.web.pages import Pages, _environment
from models import publishing
from models.engine import Routings
from models.loader import config_root
from models.metrics import Filters, load_audit
from models.whatif import RUNS, SEED, WhatIf, whatif

Country = Annotated[str, Path(pattern=r"^[A-Za-z]{2}$")]
MAX_RUNS = 2000


def add_whatif_pages(app: FastAPI, pages: Pages) -> None:
    service = pages.service

    @app.get("/ministry/{country}/whatif", include_in_schema=False)
    def whatif_form(request: Request, country: Country) -> Response:
        visitor = pages.visitor(request)
        code = country.upper()
        publishing.authorise_routing_view(visitor.caller, code)
        return pages.render(
            request,
            "ministry_whatif.html",
            visitor=visitor,
            country=code,
            routes=_routes(code),
            asked={"runs": RUNS, "routes": []},
            draft=None,
            answer=None,
            errors=[],
        )

    @app.post("/ministry/{country}/whatif", include_in_schema=False)
    async def whatif_run(request: Request, country: Country) -> Response:
        visitor = pages.visitor(request)
        form = await pages.form(request, visitor)
        code = country.upper()
        publishing.authorise_routing_view(visitor.caller, code)
        _ = translator(visitor.lang)
        asked, errors = _asked(request, form, _)
        draft = publishing.check_draft(await _draft_content(form), country=code, root=config_root())
        answer = None
        if draft.routing is not None and not errors:
            current = publishing.in_force(code, root=config_root())
            filters = Filters(
                countries=(code,),
                routes=tuple(asked["routes"]),
                since=asked["since"],
                until=asked["until"],
            )
            with service.ledger.session() as session:
                data = load_audit(
                    session=session,
                    routings=Routings({}),
                    filters=filters,
                    now=service.clock.now(),
                )
            answer = whatif(
                data=data,
                country=code,
                current=current,
                proposal=draft.routing,
                routes=asked["routes"],
                runs=asked["runs"],
                seed=SEED,
            )
        return pages.render(
            request,
            "ministry_whatif.html",
            visitor=visitor,
            status=200 if answer is not None else 422,
            country=code,
            routes=_routes(code),
            asked=asked,
            draft=draft,
            answer=answer,
            errors=errors,
        )


def _routes(country: str) -> list[tuple[str, str]]:
    routing = publishing.in_force(country, root=config_root())
    return [(r.id, r.name or r.id) for r in routing.config.routes] if routing else []


def _asked(request: Request, form: dict[str, Any], _: Any) -> tuple[dict[str, Any], list[Any]]:
    """The form's choices, and a (field, message) for each one that cannot be used."""
    errors: list[tuple[str, str]] = []
    asked: dict[str, Any] = {"routes": [], "since": None, "until": None, "runs": RUNS}
    asked["routes"] = [str(v) for k, v in form.items() if k == "route" and v]
    for name in ("since", "until"):
        text = str(form.get(name, "")).strip()
        if text:
            try:
                asked[name] = date.fromisoformat(text)
            except ValueError:
                errors.append((name, _("Write the date as YYYY-MM-DD, e.g. 2024-01-31")))
    text = str(form.get("runs", "")).strip() or str(RUNS)
    if not text.isdigit() or not 20 <= int(text) <= MAX_RUNS:
        errors.append(("runs", _("Give a number of runs from 20 to 2000")))
    else:
        asked["runs"] = int(text)
    if asked["since"] and asked["until"] and asked["since"] > asked["until"]:
        errors.append(("until", _("The last day comes before the first")))
    return asked, errors


def standalone_html(answer: WhatIf, *, lang: str = "en") -> str:
    """The answer as a page of its own (the command line's `--format html`)."""
    page = _environment().get_template("whatif_report.html")
    return page.render(answer=answer, _=translator(lang), lang=lang)

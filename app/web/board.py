"""The coordinator's escalation board: every open hop whose ladder has fired, loudest and oldest
first, with acknowledge (a note, which stops its repeats) and snooze (a reason, until a day) in
place. Both are ordinary case commands posted to the case's command route, which comes back
here."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.web.pages import Pages


def add_board_pages(app: FastAPI, pages: Pages) -> None:
    service = pages.service

    @app.get("/board", include_in_schema=False)
    def board(request: Request, country: str = "", show: str = "owed", done: str = "") -> Response:
        visitor = pages.visitor(request)
        items = service.board(visitor.caller, country or None)
        owed = [i for i in items if not i.acknowledged]
        shown = owed if show != "all" else items
        return pages.render(
            request,
            "board.html",
            visitor=visitor,
            items=shown,
            owed=len(owed),
            total=len(items),
            country=country.upper(),
            show=show,
            zones={i.country: pages.timezone(i.country) for i in shown},
            done=done in ("acknowledge", "snooze"),
            today=service.clock.now(),
        )

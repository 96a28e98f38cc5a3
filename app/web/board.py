"""The coordinator's escalation board: every open hop whose ladder has fired, loudest and oldest
first, with acknowledge (a note, which stops its repeats) and snooze (a reason, until a day) in
place. Both are ordinary case commands posted to the case's command route, which comes back
here."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from app.web.clerk import PAGE_SIZE
from app.web.pages import Pages


def add_board_pages(app: FastAPI, pages: Pages) -> None:
    service = pages.service

    @app.get("/board", include_in_schema=False)
    def board(
        request: Request,
        country: str = "",
        show: str = "owed",
        done: str = "",
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> Response:
        visitor = pages.visitor(request)
        items = service.board(visitor.caller, country or None)
        owed = [i for i in items if not i.acknowledged]
        listed = owed if show != "all" else items
        shown = listed[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
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
            page=page,
            pages_count=max(1, -(-len(listed) // PAGE_SIZE)),
            today=service.clock.now(),
        )

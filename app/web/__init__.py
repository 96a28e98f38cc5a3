"""The web workspace: a place for each user group, served by `rogatory web` beside the API.

    /login, /logout, /language/{code}   sign in and out; English or Spanish
    /inbox/{country}/{authority}        a clerk's inbox: overdue first, then least slack
    /my-work                            the hops assigned to me
    /cases/{reference}                  the route, the timeline, events, forms for my commands
    /search                             every case my roles reach, by any field
    /board                              escalations: acknowledge, snooze
    /audit                              the audit report, live, with its downloads
    /ministry                           the country's chains, calendars, drafts, publishing
    /ministry/{country}/whatif          a proposed chain replayed on the recorded cases
    /admin                              accounts, roles, tokens

Pages never touch the database directly: they ask the application service, which authorises
the caller as it does for the API.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from app.service import Service
from app.web.admin import add_admin_pages
from app.web.audit import add_audit_pages
from app.web.board import add_board_pages
from app.web.clerk import add_clerk_pages
from app.web.ministry import add_ministry_pages
from app.web.pages import STATIC, Pages
from app.web.whatif import add_whatif_pages


def add_web_pages(app: FastAPI, service: Service, *, secure_cookies: bool) -> Pages:
    """Mount the workspace's pages and static files on `app`."""
    pages = Pages(service, secure_cookies=secure_cookies)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_clerk_pages(app, pages)
    add_board_pages(app, pages)
    add_ministry_pages(app, pages)
    add_whatif_pages(app, pages)
    add_audit_pages(app, pages)
    add_admin_pages(app, pages)
    return pages


def is_page(request: Request) -> bool:
    """A request for a page (answered in HTML), not for the API (answered in JSON)."""
    return not request.url.path.startswith("/api/")


__all__ = ["Response", "add_web_pages", "is_page"]

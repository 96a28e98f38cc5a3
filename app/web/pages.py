"""What every page shares: templates, the signed-in caller, CSRF on forms, errors as pages.

Pages are server-rendered (Jinja2, autoescaped) and every action is a plain form post that
answers with a redirect (303), so nothing needs JavaScript; htmx, vendored, only boosts links
and forms. A page is shown to a signed-in caller only: the session cookie identifies them
exactly as for the API, and a form post carries the session's CSRF token in a hidden field.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.api import SESSION_COOKIE, identify
from app.service import Service
from app.web.i18n import LANG_COOKIE, LANGUAGES, Translate, negotiate, translator
from models.errors import Forbidden, NotSignedIn
from models.identity import Caller, RoleName
from models.loader import Routing, load_all

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


class SignInFirst(Exception):
    """A page was asked for without a session: answered with the sign-in page."""


@dataclass(frozen=True)
class Visitor:
    """The signed-in caller of a page, with their session's CSRF token and language."""

    caller: Caller
    csrf: str
    lang: str

    @property
    def name(self) -> str:
        return self.caller.name

    def has(self, *roles: RoleName) -> bool:
        return any(g.role in roles for g in self.caller.grants)

    def authorities(self) -> list[tuple[str, str]]:
        """(country, authority) of each clerk or head grant: the inboxes that are theirs."""
        return sorted(
            {
                (g.country, g.authority)
                for g in self.caller.grants
                if g.role in (RoleName.CLERK, RoleName.HEAD) and g.country and g.authority
            }
        )

    def countries(self, *roles: RoleName) -> list[str]:
        return sorted({g.country for g in self.caller.grants if g.country and g.role in roles})


def _local(value: datetime | str | None, zone: str = "UTC", *, with_time: bool = True) -> str:
    """An instant as the holder reads it: in their timezone, with the zone's name."""
    if value is None:
        return ""
    if isinstance(value, str):  # an instant kept in JSON (a legal deadline's due)
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(ZoneInfo(zone))
    text = local.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")
    return f"{text} {local.tzname()}" if with_time else text


def _day(value: date | datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = _local
    env.filters["day"] = _day
    env.filters["urlquote"] = lambda v: quote(str(v), safe="")
    return env


class Pages:
    """Renders templates for one app: the service, the cookie policy, the language."""

    def __init__(self, service: Service, *, secure_cookies: bool) -> None:
        self.service = service
        self.secure_cookies = secure_cookies
        self.env = _environment()
        self._routings: dict[str, Routing] | None = None

    # -- who is asking --------------------------------------------------------------------------

    def language(self, request: Request) -> str:
        return negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))

    def visitor(self, request: Request) -> Visitor:
        """The signed-in caller, or `SignInFirst` (answered by the sign-in page)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise SignInFirst
        try:
            caller, csrf = identify(
                self.service.ledger, now=self.service.clock.now(), bearer=None, cookie=cookie
            )
        except NotSignedIn:
            raise SignInFirst from None
        return Visitor(caller=caller, csrf=csrf or "", lang=self.language(request))

    async def form(self, request: Request, visitor: Visitor) -> dict[str, Any]:
        """A posted form's fields (files as UploadFile), once its CSRF token is checked."""
        data = await request.form()
        token = str(data.get("csrf_token", ""))
        if not (visitor.csrf and secrets.compare_digest(token, visitor.csrf)):
            raise Forbidden("this form has expired or did not come from this site: reload it")
        return {k: v for k, v in data.multi_items() if k != "csrf_token"}

    # -- answers --------------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        *,
        visitor: Visitor | None = None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        lang = visitor.lang if visitor else self.language(request)
        _: Translate = translator(lang)
        page = self.env.get_template(template).render(
            request=request,
            me=visitor,
            lang=lang,
            languages=LANGUAGES,
            _=_,
            nav=self.navigation(visitor, _) if visitor else [],
            RoleName=RoleName,
            **context,
        )
        return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)

    def timezone(self, country: str, authority: str | None = None) -> str:
        """The timezone an authority (or a country) reads its dates in, from the files in force."""
        if self._routings is None:
            self._routings = load_all()
        routing = self._routings.get(country)
        return routing.calendar(authority).timezone if routing else "UTC"

    def translate(self, visitor: Visitor) -> Translate:
        return translator(visitor.lang)

    def navigation(self, visitor: Visitor, _: Translate) -> list[tuple[str, str]]:
        """The links of the caller's roles, in the order they use them."""
        links: list[tuple[str, str]] = []
        for country, authority in visitor.authorities():
            links.append((f"/inbox/{country}/{authority}", f"{_('Inbox')} {country}/{authority}"))
        if visitor.authorities():
            links.append(("/my-work", _("My work")))
        if visitor.has(RoleName.COORDINATOR, RoleName.MINISTRY, RoleName.AUDITOR):
            links.append(("/board", _("Escalations")))
        if visitor.has(RoleName.COORDINATOR, RoleName.MINISTRY, RoleName.AUDITOR):
            links.append(("/audit", _("Audit")))
        if visitor.has(RoleName.MINISTRY, RoleName.COORDINATOR):
            links.append(("/ministry", _("Routing")))
        if visitor.has(RoleName.ADMIN):
            links.append(("/admin", _("Accounts")))
        if not visitor.has(RoleName.ADMIN) or len(visitor.caller.grants) > 1:
            links.append(("/search", _("Search")))
        return links

    def error(self, request: Request, status: int, title: str, detail: str) -> HTMLResponse:
        try:
            visitor: Visitor | None = self.visitor(request)
        except SignInFirst:
            visitor = None
        return self.render(
            request, "error.html", visitor=visitor, status=status, title=title, detail=detail
        )


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def see_other(url: str) -> Response:
    """The answer to a form post: the page to show next (the browser GETs it)."""
    return RedirectResponse(url, status_code=303)


def sign_in_page(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return see_other(f"/login?next={quote(target, safe='')}")


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to someone else's."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target

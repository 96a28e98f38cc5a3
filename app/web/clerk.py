"""The pages everyone starts from: sign-in, the authority's inbox, my work, the case page with its
forms, and search.

Every page asks the application service, which authorises the caller exactly as for the API;
every form post builds the typed command from its fields and submits it through the service,
then redirects to the case page, so a reload never records twice (each form also carries an
idempotency key and the sequence the clerk saw).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from app.api import set_session_cookie, sign_in_with_password, sign_out_session
from app.web import forms
from app.web.i18n import LANG_COOKIE, LANGUAGES
from app.web.pages import Pages, SignInFirst, Visitor, safe_next, see_other
from models import access, identity, queries, workspace
from models.commands import (
    COMMANDS,
    Assign,
    AttachDocument,
    CaseCommand,
    Decide,
    Reassign,
    Record,
    Resubmit,
    ResumeClock,
    StopClock,
)
from models.documents import MAX_DOCUMENT_BYTES, DocumentKind
from models.errors import CommandRejected, Forbidden, NotFound, NotSignedIn
from models.identity import RoleName
from models.queries import CaseSearch, InboxItem

PAGE_SIZE = 50
LABELS = {"on": "Date (late entry)", "to": "Move to authority"}


@dataclass(frozen=True)
class CommandForm:
    name: str
    title: str
    inputs: list[forms.Input]
    submit: str


def add_clerk_pages(app: FastAPI, pages: Pages) -> None:
    service = pages.service

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> Response:
        return pages.render(request, "login.html", next=safe_next(next), problem=None)

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1000)],
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        address = request.client.host if request.client else "unknown"
        try:
            _, secret, _ = sign_in_with_password(
                service.ledger,
                now=service.clock.now(),
                username=username,
                password=password,
                address=address,
            )
        except NotSignedIn as refused:
            return pages.render(
                request,
                "login.html",
                status=401,
                next=safe_next(next),
                problem=str(refused),
                username=username,
            )
        response = see_other(safe_next(next))
        set_session_cookie(response, secret, secure=pages.secure_cookies)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        visitor = pages.visitor(request)
        await pages.form(request, visitor)
        response = see_other("/login")
        sign_out_session(
            service.ledger, request, response, name=visitor.name, now=service.clock.now()
        )
        return response

    @app.get("/language/{code}", include_in_schema=False)
    def language(code: str, next: str = "/") -> Response:
        response = see_other(safe_next(next))
        if code in LANGUAGES:
            response.set_cookie(
                LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", httponly=True
            )
        return response

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        visitor = pages.visitor(request)
        return see_other(start_page(visitor))

    # -- inbox and my work ----------------------------------------------------------------------

    @app.get("/inbox/{country}/{authority}", include_in_schema=False)
    def inbox(
        request: Request,
        country: str,
        authority: str,
        route: str = "",
        kind: str = "",
        counterpart: str = "",
        due: str = "",
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> Response:
        visitor = pages.visitor(request)
        items = service.inbox(country.upper(), authority, visitor.caller)
        shown = _filter(
            items,
            route=route,
            kind=kind,
            counterpart=counterpart,
            due=due,
            today=service.clock.now().date(),
        )
        return pages.render(
            request,
            "inbox.html",
            visitor=visitor,
            country=country.upper(),
            authority=authority,
            items=shown[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
            total=len(shown),
            all_items=len(items),
            page=page,
            pages_count=max(1, -(-len(shown) // PAGE_SIZE)),
            filters={"route": route, "kind": kind, "counterpart": counterpart, "due": due},
            options={
                "route": sorted({i.route for i in items}),
                "kind": sorted({i.kind for i in items}),
                "counterpart": sorted({i.counterpart for i in items}),
            },
            today=service.clock.now(),
        )

    @app.get("/my-work", include_in_schema=False)
    def my_work(request: Request) -> Response:
        visitor = pages.visitor(request)
        items = [
            item
            for country, authority in visitor.authorities()
            for item in service.inbox(country, authority, visitor.caller)
            if item.assigned_to == visitor.name
        ]
        return pages.render(
            request, "my_work.html", visitor=visitor, items=items, today=service.clock.now()
        )

    # -- the case -------------------------------------------------------------------------------

    @app.get("/cases/{reference}", include_in_schema=False)
    def case(request: Request, reference: str, done: str = "") -> Response:
        visitor = pages.visitor(request)
        return case_page(request, visitor, reference, done=done if done in COMMANDS else "")

    def case_page(
        request: Request,
        visitor: Visitor,
        reference: str,
        *,
        done: str = "",
        problem: CommandRejected | None = None,
        failed: str = "",
        posted: dict[str, Any] | None = None,
    ) -> Response:
        timeline = service.timeline(reference, visitor.caller)
        attached = service.documents(reference, visitor.caller)
        with service.ledger.session() as session:
            events = queries.case_events(session, reference)
            routing = service.routings().pinned(session, timeline.routing_version)
            facts = queries.case_facts(session, reference, routings=service.routings())
            officers = (
                identity.officers(session, country=timeline.country, authority=facts.holder)
                if facts.holder
                else []
            )
            assigned = workspace.assigned_officer(session, reference)
        route = routing.config.route(timeline.route)
        open_hop = next((h for h in timeline.hops if h.closed_at is None), None)
        _ = pages.translate(visitor)
        may_attach = _may(visitor, AttachDocument, facts)
        return pages.render(
            request,
            "case.html",
            visitor=visitor,
            status=422 if problem else 200,
            case=timeline,
            route=route,
            routing=routing,
            open_hop=open_hop,
            events=events,
            forms=command_forms(
                visitor, timeline.status, facts, routing, route, open_hop, officers, _
            ),
            documents=attached,
            may_attach=may_attach,
            document_kinds=[str(k) for k in DocumentKind],
            assigned=assigned,
            done=done,
            problem=problem,
            failed=failed,
            posted=posted or {},
            idempotency=secrets.token_urlsafe(16),
        )

    # -- documents ------------------------------------------------------------------------------

    @app.post("/cases/{reference}/documents", include_in_schema=False)
    async def attach(request: Request, reference: str) -> Response:
        visitor = pages.visitor(request)
        form = await pages.form(request, visitor)
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            problem = CommandRejected("choose a file to attach", reference=reference)
            return case_page(request, visitor, reference, problem=problem, failed="attach")
        content = await upload.read(MAX_DOCUMENT_BYTES + 1)
        try:
            service.attach(
                reference,
                content,
                filename=upload.filename.replace("\\", "/").rsplit("/", 1)[-1],
                media_type=upload.content_type or "application/octet-stream",
                kind=str(form.get("kind") or "other"),
                note=str(form.get("note") or "") or None,
                caller=visitor.caller,
                idempotency_key=str(form.get("idempotency_key") or "") or None,
            )
        except CommandRejected as refused:
            return case_page(
                request, visitor, reference, problem=refused, failed="attach", posted=form
            )
        return see_other(f"/cases/{reference}?done=attach#documents")

    @app.get("/cases/{reference}/documents/{sha256}", include_in_schema=False)
    def download(request: Request, reference: str, sha256: str) -> Response:
        visitor = pages.visitor(request)
        document, content = service.document(reference, sha256, visitor.caller)
        return Response(
            content,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(document.filename)}",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    @app.post("/cases/{reference}/{command}", include_in_schema=False)
    async def run(request: Request, reference: str, command: str) -> Response:
        visitor = pages.visitor(request)
        kind = COMMANDS.get(command)
        if kind is None or not issubclass(kind, CaseCommand):
            raise NotFound(f"no command {command!r}")
        form = await pages.form(request, visitor)
        fixed = {
            "reference": reference,
            "seq": _int(form.get("seq")),
            "hop": _int(form.get("hop")) if "hop" in kind.model_fields else None,
            "idempotency_key": form.get("idempotency_key") or None,
        }
        try:
            result = service.submit(forms.read(kind, form, **fixed), visitor.caller)
        except CommandRejected as refused:
            return case_page(
                request, visitor, reference, problem=refused, failed=command, posted=form
            )
        back = form.get("back")
        if back:
            target = safe_next(str(back))
            return see_other(f"{target}{'&' if '?' in target else '?'}done={command}")
        return see_other(f"/cases/{result.reference}?done={command}#events")

    # -- search ---------------------------------------------------------------------------------

    @app.get("/search", include_in_schema=False)
    def search(
        request: Request,
        reference: str = "",
        country: str = "",
        authority: str = "",
        status: str = "",
        counterpart: str = "",
        kind: str = "",
        direction: str = "",
        since: str = "",
        until: str = "",
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> Response:
        visitor = pages.visitor(request)
        registered_since, registered_until = _day_or_none(since), _day_or_none(until)
        asked = {
            "reference": reference.strip().upper(),
            "country": country.strip().upper(),
            "authority": authority.strip(),
            "status": status,
            "counterpart": counterpart.strip().upper(),
            "kind": kind,
            "direction": direction,
        }
        found = service.search(
            CaseSearch(
                **{k: v or None for k, v in asked.items()},
                registered_since=registered_since,
                registered_until=registered_until,
            ),
            visitor.caller,
            page=page,
            size=PAGE_SIZE,
        )
        query = urlencode({k: v for k, v in {**asked, "since": since, "until": until}.items() if v})
        return pages.render(
            request,
            "search.html",
            visitor=visitor,
            found=found,
            asked={**asked, "since": registered_since or "", "until": registered_until or ""},
            query=query,
            pages_count=max(1, -(-found.total // PAGE_SIZE)),
        )

    @app.exception_handler(SignInFirst)
    def _sign_in(request: Request, exc: SignInFirst) -> Response:
        from app.web.pages import sign_in_page

        return sign_in_page(request)


def start_page(visitor: Visitor) -> str:
    """Where a caller lands: their inbox, else their role's main page."""
    if visitor.authorities():
        country, authority = visitor.authorities()[0]
        return f"/inbox/{country}/{authority}"
    if visitor.has(RoleName.COORDINATOR):
        return "/board"
    if visitor.has(RoleName.AUDITOR):
        return "/audit"
    if visitor.has(RoleName.MINISTRY):
        return "/ministry"
    if visitor.has(RoleName.ADMIN):
        return "/admin"
    return "/search"


def command_forms(
    visitor: Visitor,
    status: str,
    facts: access.CaseFacts,
    routing: Any,
    route: Any,
    open_hop: Any,
    officers: list[tuple[str, str]],
    _: Any,
) -> list[CommandForm]:
    """A form for every case command the caller's role may run on this case now, offering
    only the choices the hop allows."""
    found = []
    for kind in COMMANDS.values():
        if not issubclass(kind, CaseCommand) or kind.name == "attach":
            continue
        if not _may(visitor, kind, facts):
            continue
        choices: dict[str, list[str]] = {}
        if kind is Assign:
            choices["officer"] = [name for name, _display in officers]
        if kind is Decide:
            if open_hop is None:
                continue
            step_index = next(i for i, s in enumerate(route.steps) if s.id == open_hop.step)
            choices["outcome"] = [str(o) for o in route.decisions_for(step_index)]
        if kind is Reassign:
            if open_hop is None:
                continue
            choices["to"] = [a for a in routing.config.authorities if a != open_hop.holder]
        if not _applies(kind, status, open_hop):
            continue
        found.append(
            CommandForm(
                name=kind.name,
                title=_((kind.__doc__ or kind.name).strip().split("\n")[0]),
                inputs=forms.inputs(kind, _, choices=choices, labels=LABELS),
                submit=_("Record decision") if kind is Decide else _("Submit"),
            )
        )
    return found


def _may(visitor: Visitor, kind: type[CaseCommand], facts: access.CaseFacts) -> bool:
    """Whether the caller's roles reach this kind of command on this case (as the holder's
    officer, for an assignment: claiming is the least a clerk may do)."""
    fields: dict[str, Any] = {"reference": facts.reference}
    if kind is Assign:
        fields["officer"] = visitor.name
    try:
        access.authorise_command(visitor.caller, kind.model_construct(**fields), facts)
    except (Forbidden, AssertionError, AttributeError):
        return False
    return True


def _applies(kind: type[CaseCommand], status: str, open_hop: Any) -> bool:
    """Whether a command makes sense in the case's state: no form that can only be refused."""
    if status == "closed":
        return kind is Record
    if open_hop is None:
        return "hop" not in kind.model_fields
    stopped = bool(open_hop.stops) and open_hop.stops[-1].until is None
    if kind is StopClock:
        return not stopped
    if kind is ResumeClock:
        return stopped
    return kind is not Resubmit


def _filter(
    items: list[InboxItem],
    *,
    route: str,
    kind: str,
    counterpart: str,
    due: str,
    today: date,
) -> list[InboxItem]:
    def keep(item: InboxItem) -> bool:
        if route and item.route != route:
            return False
        if kind and item.kind != kind:
            return False
        if counterpart and item.counterpart != counterpart:
            return False
        if due == "overdue":
            return item.overdue
        if due == "week":
            return item.overdue or (item.due_at.date() - today) <= timedelta(days=7)
        return True

    return [i for i in items if keep(i)]


def _day_or_none(text: str) -> date | None:
    """A date field of a GET form: empty is no filter; anything else must be a day."""
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CommandRejected(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None

"""The HTTP API: every command and query of the application service, for signed-in callers only.

    POST   /api/session                      sign in (username, password): a session cookie
    GET    /api/session                      who is signed in, their roles, the CSRF token
    DELETE /api/session                      sign out
    GET    /api/cases                        search (filters, paging), only the visible cases
    POST   /api/cases                        register a request
    GET    /api/cases/{reference}            the case's timeline
    POST   /api/cases/{reference}/{command}  decide, clock-stop, clock-resume, resubmit,
                                             reassign, withdraw, record, migrate, assign,
                                             acknowledge, snooze
    POST   /api/cases/{reference}/documents  attach a document (multipart)
    GET    /api/cases/{reference}/documents  the documents attached, and each one's bytes
                                             at .../documents/{sha256}
    GET    /api/inbox/{country}/{authority}  an authority's open hops, overdue first
    GET    /api/overdue/{country}            a country's overdue hops
    GET    /api/report                       the audit report (JSON), for the caller's countries
    GET    /api/export-log                   the event log (XES or CSV)
    GET    /api/health                       liveness and the sweep's age, without signing in
                                             (`?strict=1`: 503 when the sweep is stale)

A caller is identified by an `Authorization: Bearer <token>` header or by the session cookie;
a cookie-authenticated call that changes anything also carries the session's CSRF token in
`X-CSRF-Token`. `Idempotency-Key` maps to the engine's key. Every error is
`application/problem+json` (RFC 9457) with the fields that explain it; never a traceback.
The API runs without a Prefect server: commands are recorded and their flow runs woken in the
background when a server answers (reconciliation catches up otherwise).
"""

import logging
import os
import secrets
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, Header, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.background import BackgroundTask

from app.client import EVENTS_HEADER
from app.service import Service
from models import identity
from models.clock import Clock, clock_from_env
from models.commands import (
    COMMANDS,
    AttachDocument,
    CaseCommand,
    Command,
    Decide,
    Migrate,
    Reassign,
    Register,
    Resubmit,
)
from models.documents import MAX_DOCUMENT_BYTES, AttachedDocument, DocumentKind
from models.engine import Result
from models.errors import (
    AccessError,
    CommandRejected,
    Conflict,
    Forbidden,
    IntakeError,
    NotFound,
    NotSignedIn,
    RogatoryError,
)
from models.identity import Caller
from models.ledger import Ledger
from models.metrics import Filters
from models.queries import CasePage, CaseSearch, InboxItem, Timeline

SESSION_COOKIE = "rogatory_session"
log = logging.getLogger("rogatory.api")
PROBLEMS = "/api/problems/"


# -- errors as problem details ---------------------------------------------------------------------


def problem(status: int, kind: str, title: str, detail: str, **fields: Any) -> JSONResponse:
    body = {"type": PROBLEMS + kind, "title": title, "status": status, "detail": detail, **fields}
    headers = {"WWW-Authenticate": 'Bearer realm="rogatory"'} if status == 401 else None
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


_STATUS: list[tuple[type[Exception], int, str, str]] = [
    (NotSignedIn, 401, "not-signed-in", "Sign in first"),
    (Forbidden, 403, "forbidden", "Not allowed for your role"),
    (NotFound, 404, "not-found", "No such thing"),
    (Conflict, 409, "conflict", "The case moved on"),
    (IntakeError, 422, "request-refused", "The request was refused"),
    (CommandRejected, 422, "command-refused", "The command was refused"),
    (AccessError, 403, "forbidden", "Not allowed"),
    (RogatoryError, 422, "refused", "Refused"),
]


def problem_for(exc: Exception) -> JSONResponse:
    for kind, status, slug, title in _STATUS:
        if isinstance(exc, kind):
            fields: dict[str, Any] = {}
            if isinstance(exc, CommandRejected):
                fields = exc.fields()
            if isinstance(exc, IntakeError):
                fields = {"reasons": exc.reasons}
            return problem(status, slug, title, str(exc), **fields)
    return problem(500, "internal", "Internal error", "the server failed; it is logged")


def set_session_cookie(response: Response, secret: str, *, secure: bool) -> None:
    """The session cookie, however the sign-in happened: HttpOnly, SameSite=Strict, Secure."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        secure=secure,
        samesite="strict",
        max_age=int(identity.SESSION_TTL.total_seconds()),
        path="/",
    )


def identify(
    ledger: Ledger, *, now: datetime, bearer: str | None, cookie: str | None
) -> tuple[Caller, str | None]:
    """The caller a Bearer token or a session cookie stands for, and the session's CSRF token.

    Reads first; writes back only when the token's last use or the session's sliding expiry is
    stale (every few minutes), so reads do not queue for the write lock."""

    def find(session: Any) -> tuple[Caller, str | None]:
        if bearer is not None:
            return identity.caller_from_token(session, bearer, now=now), None
        return identity.caller_from_session(session, str(cookie), now=now)

    with ledger.session() as session, session.no_autoflush:
        found = find(session)
        stale = bool(session.dirty)  # left unwritten here: the session rolls back
    if stale:
        with ledger.transaction() as session:
            found = find(session)
    return found


def sign_in_with_password(
    ledger: Ledger, *, now: datetime, username: str, password: str, address: str
) -> tuple[Caller, str, str]:
    """Check a password and open a session: the caller, the session's secret and CSRF token.
    A refusal raises `NotSignedIn` after its commit, so it is logged and counts towards
    throttling."""
    with ledger.transaction() as session:
        account = identity.sign_in(
            session, name=username, password=password, address=address, now=now
        )
        if isinstance(account, str):
            refusal = account
        else:
            refusal = ""
            secret, csrf = identity.open_session(session, account=account, now=now)
            me = identity.caller_of(session, account)
    if refusal:
        raise NotSignedIn(refusal)
    return me, secret, csrf


def sign_out_session(
    ledger: Ledger, request: Request, response: Response, *, name: str, now: datetime
) -> None:
    """Close the request's session (if it came with one), log it, and drop its cookie."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with ledger.transaction() as session:
            identity.close_session(session, cookie, now=now)
            identity.log(session, "signed_out", now=now, account=name)
    response.delete_cookie(SESSION_COOKIE, path="/")


# -- bodies -------------------------------------------------------------------------------------


class ResultOut(BaseModel):
    """What a command did."""

    reference: str
    seq: int
    hop: int | None
    status: str
    message: str
    replayed: bool
    warnings: list[str]

    @classmethod
    def of(cls, result: Result) -> "ResultOut":
        data = asdict(result)
        data["warnings"] = list(result.warnings)
        return cls(**data)


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=1000)]


class Me(BaseModel):
    name: str
    roles: list[str]
    csrf_token: str | None = None


def body_model(command: type[Command]) -> type[BaseModel]:
    """The request body of a command: its fields but the case reference (in the path) and the
    idempotency key (a header)."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in command.model_fields.items()
        if name not in ("reference", "idempotency_key")
    }
    return create_model(
        f"{command.__name__}Body",
        __config__=ConfigDict(extra="forbid"),
        __doc__=command.__doc__,
        **fields,
    )


# -- the app ------------------------------------------------------------------------------------


OPENING = (Register, Decide, Resubmit, Reassign, Migrate)
"""The commands that can open a hop, whose holder is told at once."""


def _announce_then_wake(
    ledger: Ledger, wake: Callable[[Command, Result], None], command: Command, result: Result
) -> None:
    """After a command committed: tell a new hop's holder now (the notice was written with the
    command), then wake the case's flow, which stays the backstop if sending fails here."""
    if result.hop is not None and isinstance(command, OPENING):
        try:
            from tasks.notify import announce_opened

            announce_opened(ledger, result.reference, result.hop)
        except Exception:  # the flow and the sweep send it later; the command stands
            log.exception("could not send %s hop %s's notice at once", result.reference, result.hop)
    wake(command, result)


def create_app(
    ledger: Ledger | None = None,
    *,
    clock: Clock | None = None,
    wake: Callable[[Command, Result], None] | None = None,
    secure_cookies: bool | None = None,
) -> FastAPI:
    """The API over `ledger` (default: the configured one); flows woken by `wake`, in the
    background (default: start or resume through the Prefect server, if one answers)."""
    ledger = ledger or Ledger()
    clock = clock or clock_from_env()
    if secure_cookies is None:
        secure_cookies = os.environ.get("ROGATORY_COOKIE_SECURE", "1") != "0"
    background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="wake")
    wake = wake or _wake_through_prefect

    def waker(command: Command, result: Result) -> None:
        background.submit(_announce_then_wake, ledger, wake, command, result)

    service = Service(ledger, clock=clock, waker=waker)
    app = FastAPI(
        title="rogatory",
        summary="Legal-assistance requests routed through each country's chain of authorities",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.service = service

    from app.web import add_web_pages, is_page  # here: the pages import this module

    pages = add_web_pages(app, service, secure_cookies=secure_cookies)

    def answer(request: Request, exc: Exception) -> Response:
        """Problem details for the API; the same status as a page for a browser."""
        found = problem_for(exc)
        if not is_page(request):
            return found
        title = next((t for k, _, _, t in _STATUS if isinstance(exc, k)), "Internal error")
        detail = str(exc) if isinstance(exc, RogatoryError) else "the server failed; it is logged"
        return pages.error(request, found.status_code, title, detail)

    @app.exception_handler(RogatoryError)
    def _refused(request: Request, exc: RogatoryError) -> Response:
        return answer(request, exc)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> Response:
        reasons = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
        ]
        if is_page(request):
            return pages.error(request, 400, "Invalid input", "; ".join(reasons))
        return problem(422, "invalid", "Invalid input", "; ".join(reasons), reasons=reasons)

    @app.exception_handler(Exception)
    def _failed(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return answer(request, exc)

    def caller(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_csrf_token: Annotated[str | None, Header()] = None,
    ) -> Caller:
        now = clock.now()
        bearer = (
            authorization[7:].strip()
            if authorization and authorization.lower().startswith("bearer ")
            else None
        )
        cookie = request.cookies.get(SESSION_COOKIE)
        if bearer is None and not cookie:
            raise NotSignedIn("sign in (POST /api/session) or send a Bearer token")
        found, csrf = identify(ledger, now=now, bearer=bearer, cookie=cookie)
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
        if (
            csrf is not None
            and unsafe
            and not (x_csrf_token and secrets.compare_digest(x_csrf_token, csrf))
        ):
            raise Forbidden("this form or call lacks its CSRF token (X-CSRF-Token): reload it")
        return found

    Signed = Annotated[Caller, Depends(caller)]

    @app.get("/api/health", tags=["operations"], response_model=None)
    def health(strict: bool = False) -> dict[str, Any] | JSONResponse:
        """Liveness, and whether the clock is swept (its age only); `?strict=1`: 503 when stale."""
        from app.health import sweep_status

        sweep = sweep_status(ledger, now=clock.now())
        if strict and sweep["stale"]:
            return JSONResponse({"status": "stale", "sweep": sweep}, status_code=503)
        return {"status": "ok", "sweep": sweep}

    # -- sessions ---------------------------------------------------------------------------------

    @app.post("/api/session", tags=["sessions"], response_model=Me)
    def sign_in(body: SignIn, request: Request, response: Response) -> Me:
        address = request.client.host if request.client else "unknown"
        me, secret, csrf = sign_in_with_password(
            ledger, now=clock.now(), username=body.username, password=body.password, address=address
        )
        set_session_cookie(response, secret, secure=secure_cookies)
        return Me(name=me.name, roles=[str(g) for g in me.grants], csrf_token=csrf)

    @app.get("/api/session", tags=["sessions"], response_model=Me)
    def who(request: Request, me: Signed) -> Me:
        csrf = None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            with ledger.transaction() as session:
                _, csrf = identity.caller_from_session(session, cookie, now=clock.now())
        return Me(name=me.name, roles=[str(g) for g in me.grants], csrf_token=csrf)

    @app.delete("/api/session", tags=["sessions"], status_code=204)
    def sign_out(request: Request, response: Response, me: Signed) -> None:
        sign_out_session(ledger, request, response, name=me.name, now=clock.now())

    # -- cases ------------------------------------------------------------------------------------

    @app.get("/api/cases", tags=["cases"])
    def search(
        me: Signed,
        reference: str | None = None,
        country: str | None = None,
        authority: str | None = None,
        status: str | None = None,
        counterpart: str | None = None,
        kind: str | None = None,
        direction: str | None = None,
        since: date | None = None,
        until: date | None = None,
        page: Annotated[int, Query(ge=1)] = 1,
        size: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> CasePage:
        found = CaseSearch(
            reference=reference,
            country=country.upper() if country else None,
            authority=authority,
            status=status,
            counterpart=counterpart.upper() if counterpart else None,
            kind=kind,
            direction=direction,
            registered_since=since,
            registered_until=until,
        )
        return service.search(found, me, page=page, size=size)

    register_body = body_model(Register)

    def register(
        body: Any,
        me: Signed,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> ResultOut:
        command = Register.model_validate(
            {**body.model_dump(exclude_unset=True), "idempotency_key": idempotency_key}
        )
        response.status_code = 201
        return ResultOut.of(service.submit(command, me))

    register.__annotations__["body"] = register_body
    app.post("/api/cases", tags=["cases"], status_code=201, summary=Register.__doc__)(register)

    @app.get("/api/cases/{reference}", tags=["cases"])
    def case(reference: str, me: Signed) -> Timeline:
        return service.timeline(reference, me)

    @app.post("/api/cases/{reference}/documents", tags=["documents"], status_code=201)
    async def attach(
        reference: str,
        me: Signed,
        file: UploadFile,
        kind: Annotated[DocumentKind, Form()] = DocumentKind.OTHER,
        note: Annotated[str | None, Form(max_length=4000)] = None,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> ResultOut:
        """Attach a document (multipart: `file`, `kind`, `note`); its SHA-256 goes on the
        case's record, its bytes into the document store."""
        content = await file.read(MAX_DOCUMENT_BYTES + 1)
        result = service.attach(
            reference,
            content,
            filename=(file.filename or "document").replace("\\", "/").rsplit("/", 1)[-1],
            media_type=file.content_type or "application/octet-stream",
            kind=kind,
            note=note,
            caller=me,
            idempotency_key=idempotency_key,
        )
        return ResultOut.of(result)

    @app.get("/api/cases/{reference}/documents", tags=["documents"])
    def documents(reference: str, me: Signed) -> list[AttachedDocument]:
        return service.documents(reference, me)

    @app.get("/api/cases/{reference}/documents/{sha256}", tags=["documents"])
    def document(reference: str, sha256: str, me: Signed) -> Response:
        found, content = service.document(reference, sha256, me)
        return Response(
            content,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.filename)}",
                "X-Content-Type-Options": "nosniff",
            },
        )

    for command in COMMANDS.values():
        # A document comes with its bytes (the route above), never by its hash alone.
        if issubclass(command, CaseCommand) and command is not AttachDocument:
            _case_route(app, service, command, Signed)

    # -- views ------------------------------------------------------------------------------------

    @app.get("/api/inbox/{country}/{authority}", tags=["views"])
    def inbox(country: str, authority: str, me: Signed) -> list[InboxItem]:
        return service.inbox(country.upper(), authority, me)

    @app.get("/api/overdue/{country}", tags=["views"])
    def overdue(country: str, me: Signed) -> list[InboxItem]:
        return service.overdue(country.upper(), me)

    @app.get("/api/report", tags=["audit"])
    def report(
        me: Signed,
        country: Annotated[list[str] | None, Query()] = None,
        route: Annotated[list[str] | None, Query()] = None,
        kind: Annotated[list[str] | None, Query()] = None,
        direction: Annotated[list[str] | None, Query()] = None,
        counterpart: Annotated[list[str] | None, Query()] = None,
        since: date | None = None,
        until: date | None = None,
        as_of: datetime | None = None,
        late_after_hours: Annotated[float, Query(gt=0, le=24 * 365)] = 24.0,
    ) -> Any:
        filters = _filters(country, route, kind, direction, counterpart, since, until)
        return service.report(
            filters,
            me,
            now=as_of.astimezone(UTC) if as_of else None,
            late_after=timedelta(hours=late_after_hours),
        )

    @app.get("/api/export-log", tags=["audit"], response_class=FileResponse)
    def export_log(
        me: Signed,
        format: Annotated[str, Query(pattern="^(xes|csv)$")] = "xes",
        country: Annotated[list[str] | None, Query()] = None,
        route: Annotated[list[str] | None, Query()] = None,
        kind: Annotated[list[str] | None, Query()] = None,
        direction: Annotated[list[str] | None, Query()] = None,
        counterpart: Annotated[list[str] | None, Query()] = None,
        since: date | None = None,
        until: date | None = None,
    ) -> FileResponse:
        filters = _filters(country, route, kind, direction, counterpart, since, until)
        path = Path(tempfile.mkdtemp()) / f"events.{format}"
        events = service.export_log(filters, me, fmt=format, out=path)
        return FileResponse(
            path,
            filename=f"rogatory-events.{format}",
            headers={EVENTS_HEADER: str(events)},
            background=BackgroundTask(_remove, path),
        )

    from app.oidc import OidcSettings, add_oidc_routes  # here: app.oidc imports this module

    oidc = OidcSettings.from_env()
    if oidc is not None:
        add_oidc_routes(
            app,
            ledger=ledger,
            clock=clock,
            settings=oidc,
            secure_cookies=secure_cookies,
        )

    return app


def _case_route(app: FastAPI, service: Service, command: type[CaseCommand], signed: Any) -> None:
    body_type = body_model(command)

    def endpoint(
        reference: str,
        body: Any,
        me: Any,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> ResultOut:
        data = {
            **body.model_dump(exclude_unset=True),
            "reference": reference,
            "idempotency_key": idempotency_key,
        }
        return ResultOut.of(service.submit(command.model_validate(data), me))

    endpoint.__annotations__.update(body=body_type, me=signed)
    endpoint.__name__ = command.__name__.lower()
    app.post(
        f"/api/cases/{{reference}}/{command.name}",
        tags=["cases"],
        summary=(command.__doc__ or "").strip(),
        response_model=ResultOut,
    )(endpoint)


def _filters(
    country: list[str] | None,
    route: list[str] | None,
    kind: list[str] | None,
    direction: list[str] | None,
    counterpart: list[str] | None,
    since: date | None,
    until: date | None,
) -> Filters:
    return Filters(
        countries=tuple(c.upper() for c in country or ()),
        routes=tuple(route or ()),
        kinds=tuple(kind or ()),
        directions=tuple(direction or ()),
        counterparts=tuple(c.upper() for c in counterpart or ()),
        since=since,
        until=until,
    )


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.parent.rmdir()


def _wake_through_prefect(command: Command, result: Result) -> None:
    """Start a new case's flow run or wake the case's run, if a Prefect server answers."""
    from app.ops import start_flow, wake_flow

    try:
        if isinstance(command, Register):
            start_flow(result.reference, quiet=True)
        else:
            wake_flow(result.reference, quiet=True)
    except Exception:  # the command stands; reconciliation wakes the run later
        pass

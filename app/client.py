"""Where the command line sends its commands: the ledger here, or a rogatory server's API.

With `ROGATORY_API_URL` and `ROGATORY_TOKEN` set, every command and query goes through the
HTTP API as the token's account, so a clerk's machine holds no database credentials; otherwise
it runs on this machine's ledger as `local:<os user>`. Both give back the same objects and
raise the same errors, so the command line prints the same output and exits with the same code.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import TypeAdapter

from models.errors import (
    CommandRejected,
    Conflict,
    Forbidden,
    IntakeError,
    NotFound,
    NotSignedIn,
    RogatoryError,
)
from models.queries import CasePage, CaseSearch, InboxItem, Timeline

if TYPE_CHECKING:
    from models.commands import Command
    from models.engine import Result
    from models.metrics import Filters

LATE_AFTER = timedelta(hours=24)
"""An entry recorded this long after the fact counts as late in reports."""
EVENTS_HEADER = "X-Rogatory-Events"


class Client(Protocol):
    def submit(self, command: Command) -> Result: ...
    def attach(
        self,
        reference: str,
        content: bytes,
        *,
        filename: str,
        media_type: str,
        kind: str,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> Result: ...
    def timeline(self, reference: str) -> Timeline: ...
    def inbox(self, country: str, authority: str) -> list[InboxItem]: ...
    def overdue(self, country: str) -> list[InboxItem]: ...
    def search(self, search: CaseSearch, *, page: int, size: int) -> CasePage: ...
    def report(
        self, filters: Filters, *, now: datetime | None, late_after: timedelta = LATE_AFTER
    ) -> dict[str, Any]: ...
    def export_log(self, filters: Filters, *, fmt: str, out: Path) -> int: ...


def client(*, quiet: bool = False) -> Client:
    """The API if ROGATORY_API_URL is set, else the ledger on this machine."""
    url = os.environ.get("ROGATORY_API_URL")
    if url:
        token = os.environ.get("ROGATORY_TOKEN")
        if not token:
            raise NotSignedIn("ROGATORY_API_URL is set but ROGATORY_TOKEN is not: ask for a token")
        return RemoteClient(url, token)
    return LocalClient(quiet=quiet)


class LocalClient:
    """This machine's ledger, as `local:<os user>`; flows started and woken in this process."""

    def __init__(self, *, quiet: bool = False) -> None:
        from app.service import Service
        from models.identity import local_caller
        from models.ledger import Ledger

        self.ledger = Ledger()
        self.caller = local_caller(getpass.getuser())
        self.quiet = quiet
        self.service = Service(self.ledger, waker=self._wake)

    def _wake(self, command: Command, result: Result) -> None:
        from app.ops import start_flow, wake_flow
        from models.commands import CaseCommand, Register

        if isinstance(command, Register):
            start_flow(result.reference, quiet=self.quiet)
        elif isinstance(command, CaseCommand):
            wake_flow(result.reference, quiet=self.quiet)

    def submit(self, command: Command) -> Result:
        return self.service.submit(command, self.caller)

    def attach(
        self,
        reference: str,
        content: bytes,
        *,
        filename: str,
        media_type: str,
        kind: str,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> Result:
        return self.service.attach(
            reference,
            content,
            filename=filename,
            media_type=media_type,
            kind=kind,
            note=note,
            idempotency_key=idempotency_key,
            caller=self.caller,
        )

    def timeline(self, reference: str) -> Timeline:
        return self.service.timeline(reference, self.caller)

    def inbox(self, country: str, authority: str) -> list[InboxItem]:
        return self.service.inbox(country, authority, self.caller)

    def overdue(self, country: str) -> list[InboxItem]:
        return self.service.overdue(country, self.caller)

    def search(self, search: CaseSearch, *, page: int, size: int) -> CasePage:
        return self.service.search(search, self.caller, page=page, size=size)

    def report(
        self, filters: Filters, *, now: datetime | None, late_after: timedelta = LATE_AFTER
    ) -> dict[str, Any]:
        return dict(self.service.report(filters, self.caller, now=now, late_after=late_after))

    def export_log(self, filters: Filters, *, fmt: str, out: Path) -> int:
        return self.service.export_log(filters, self.caller, fmt=fmt, out=out)


_ERRORS: dict[str, type[RogatoryError]] = {
    "not-signed-in": NotSignedIn,
    "forbidden": Forbidden,
    "not-found": NotFound,
    "conflict": Conflict,
    "command-refused": CommandRejected,
    "invalid": CommandRejected,
}


class RemoteClient:
    """A rogatory server's API, as the account of the token."""

    def __init__(self, url: str, token: str) -> None:
        import httpx

        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RogatoryError(
                f"the rogatory server at {self.http.base_url} does not answer "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def submit(self, command: Command) -> Result:
        from models.commands import CaseCommand, Register
        from models.engine import Result

        body = command.model_dump(mode="json", exclude={"idempotency_key", "reference"})
        headers = {"Idempotency-Key": command.idempotency_key} if command.idempotency_key else {}
        if isinstance(command, Register):
            path = "/api/cases"
        elif isinstance(command, CaseCommand):
            path = f"/api/cases/{command.reference}/{command.name}"
        else:
            raise RogatoryError(f"no API route for {command.name}")
        data = self._call("POST", path, json=body, headers=headers).json()
        data["warnings"] = tuple(data.get("warnings", ()))
        return Result(**data)

    def attach(
        self,
        reference: str,
        content: bytes,
        *,
        filename: str,
        media_type: str,
        kind: str,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> Result:
        from models.engine import Result

        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        form = {"kind": kind, **({"note": note} if note else {})}
        data = self._call(
            "POST",
            f"/api/cases/{reference}/documents",
            files={"file": (filename, content, media_type)},
            data=form,
            headers=headers,
        ).json()
        data["warnings"] = tuple(data.get("warnings", ()))
        return Result(**data)

    def timeline(self, reference: str) -> Timeline:
        data = self._call("GET", f"/api/cases/{reference}").json()
        return TypeAdapter(Timeline).validate_python(data)

    def inbox(self, country: str, authority: str) -> list[InboxItem]:
        data = self._call("GET", f"/api/inbox/{country}/{authority}").json()
        return TypeAdapter(list[InboxItem]).validate_python(data)

    def overdue(self, country: str) -> list[InboxItem]:
        data = self._call("GET", f"/api/overdue/{country}").json()
        return TypeAdapter(list[InboxItem]).validate_python(data)

    def search(self, search: CaseSearch, *, page: int, size: int) -> CasePage:
        params = {k: v for k, v in asdict(search).items() if v is not None}
        params |= {"page": page, "size": size}
        data = self._call("GET", "/api/cases", params=params).json()
        return TypeAdapter(CasePage).validate_python(data)

    def report(
        self, filters: Filters, *, now: datetime | None, late_after: timedelta = LATE_AFTER
    ) -> dict[str, Any]:
        params = _filter_params(filters)
        params.append(("late_after_hours", str(late_after.total_seconds() / 3600)))
        if now is not None:
            params.append(("as_of", now.isoformat()))
        return dict(self._call("GET", "/api/report", params=params).json())

    def export_log(self, filters: Filters, *, fmt: str, out: Path) -> int:
        from tasks.export import output_file, output_folder

        params = [*_filter_params(filters), ("format", fmt)]
        with self.http.stream("GET", "/api/export-log", params=params) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            output_folder(out.parent)
            with output_file(out) as stream:
                for chunk in response.iter_text():
                    stream.write(chunk)
            return int(response.headers.get(EVENTS_HEADER, 0))


def _filter_params(filters: Filters) -> list[tuple[str, str | int | float | bool | None]]:
    params: list[tuple[str, str | int | float | bool | None]] = []
    for name, values in (
        ("country", filters.countries),
        ("route", filters.routes),
        ("kind", filters.kinds),
        ("direction", filters.directions),
        ("counterpart", filters.counterparts),
    ):
        params += [(name, v) for v in values]
    if filters.since:
        params.append(("since", filters.since.isoformat()))
    if filters.until:
        params.append(("until", filters.until.isoformat()))
    return params


def _error(response: Any) -> RogatoryError:
    """The exception the server raised, rebuilt from its problem details."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return RogatoryError(f"the server answered {response.status_code}: {response.text[:300]}")
    kind = str(body.get("type", "")).rsplit("/", 1)[-1]
    detail = str(body.get("detail") or body.get("title") or response.status_code)
    if kind == "request-refused":
        error: RogatoryError = IntakeError(list(body.get("reasons") or [detail]))
        return error
    cls = _ERRORS.get(kind, RogatoryError)
    if issubclass(cls, CommandRejected):
        fields = {
            k: body[k]
            for k in ("reference", "hop", "expected_seq", "actual_seq", "reasons")
            if k in body
        }
        return cls(detail, **fields)
    return cls(detail)

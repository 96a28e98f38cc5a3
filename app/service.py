"""The application service: the one way in for every command and query, whatever the interface.

A command comes with its caller, established by sign-in or token (or the server's own command
line). The service reads the facts of the case, authorises the caller against them, runs the
engine command in that same transaction, commits, and only then wakes the case's flow run, for
every command, since every one changes what the run waits on. Queries are authorised the same
way. The command line, the HTTP API and the Prefect resume forms are thin adapters over it; none
of them writes SQL or decides on its own when to wake a flow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from models import access, documents, queries
from models.clock import Clock, clock_from_env
from models.documents import AttachedDocument, DocumentKind, DocumentStore
from models.errors import CommandRejected, Forbidden, NotFound
from models.identity import Caller, Scope
from models.ledger import Ledger
from models.loader import configured_countries, load_all, load_country_code
from models.queries import CasePage, CaseSearch, InboxItem, Timeline
from models.routings import Routings

if TYPE_CHECKING:
    from models.commands import Command
    from models.engine import Result
    from models.metrics import Filters
    from models.workspace import BoardItem

# The commands, the engine and the workspace queries are imported where they are used: reading
# one case (`rogatory status`, its page) loads none of them, and answers sooner.
Waker = Callable[["Command", "Result"], None]
"""Called after a command is committed: start a new case's flow run, or wake the case's run."""


def no_wake(command: Command, result: Result) -> None:
    """For callers that drive flows themselves (tests of the engine, the simulator)."""


class Service:
    """Authorise, run, commit, wake: for one ledger, one clock, one way to wake flows."""

    def __init__(
        self, ledger: Ledger, *, clock: Clock | None = None, waker: Waker = no_wake
    ) -> None:
        self.ledger = ledger
        self.clock = clock or clock_from_env()
        self.waker = waker
        self._in_force: Routings | None = None
        self._countries: dict[str, Routings] = {}
        self._pinned = Routings({})
        """Pinned versions read so far: kept, so no case's routing is parsed twice."""

    def routings(self, command: Command | None = None) -> Routings:
        """The routings a command needs: to register, the file of the request's country alone
        (every file only to name them when that country has none); to migrate, the files in
        force; otherwise each case's pinned version, read from the ledger (no file is parsed)."""
        if command is None:
            return self._in_force or self._pinned
        from models.commands import Migrate, Register

        if isinstance(command, Register):
            country = command.request.get("country")
            if isinstance(country, str) and (one := self._country_routings(country)) is not None:
                return one
        if isinstance(command, Register | Migrate):
            if self._in_force is None:
                self._in_force = Routings(load_all())
            return self._in_force
        return self._in_force or self._pinned

    def reload_routings(self) -> None:
        """Read the routing files again on next use: a new routing was published."""
        self._in_force = None
        self._countries.clear()

    def _country_routings(self, country: str) -> Routings | None:
        """The routing in force of one country alone, from its own file; None without one."""
        code = country.upper()
        if self._in_force is not None:
            return self._in_force if code in self._in_force.current else None
        if code not in self._countries:
            routing = load_country_code(code)
            if routing is None:
                return None
            self._countries[code] = Routings({code: routing})
        return self._countries[code]

    # -- commands -------------------------------------------------------------------------------

    def submit(self, command: Command, caller: Caller) -> Result:
        """Run `command` for `caller`: refused (nothing written) unless their role reaches it."""
        from models.commands import AttachDocument

        if isinstance(command, AttachDocument):
            # A hash alone proves nobody holds the bytes: documents come in through `attach`.
            raise CommandRejected(
                "a document is attached with its content (`rogatory attach REF FILE`), "
                "not by its hash alone"
            )
        return self._submit(command, caller)

    def _submit(self, command: Command, caller: Caller, *, content: bytes | None = None) -> Result:
        from models import workspace
        from models.commands import Assign, CaseCommand

        routings = self.routings(command)
        with self.ledger.transaction() as session:
            facts = None
            if isinstance(command, CaseCommand):
                facts = queries.case_facts(session, command.reference, routings=routings)
                if isinstance(command, Assign):
                    officer = workspace.assigned_officer(session, command.reference)
                    facts = replace(facts, assigned_to=officer)
            if not _repeated_by(session, command, caller):
                access.authorise_command(caller, command, facts)
            if content is not None:
                self.documents_store().put(content)
            result = command.run(
                session=session, clock=self.clock, routings=routings, actor=caller.actor
            )
        self.waker(command, result)
        return result

    def erase(self, reference: str, *, reason: str, caller: Caller) -> Result:
        """Destroy a closed case's personal data once its country's retention period is over:
        the country's coordinator or an admin (models.erasure)."""
        from models.erasure import erase

        with self.ledger.transaction() as session:
            facts = queries.case_facts(session, reference, routings=self._pinned)
            access.authorise_erase(caller, facts.country)
            routings = self._country_routings(facts.country)
            if routings is None:
                raise CommandRejected(
                    f"{facts.country} has no routing file: its retention is unknown"
                )
            return erase(
                session=session,
                clock=self.clock,
                routings=routings,
                reference=reference,
                reason=reason,
                actor=caller.actor,
            )

    def attach(
        self,
        reference: str,
        content: bytes,
        *,
        filename: str,
        media_type: str,
        kind: DocumentKind | str,
        caller: Caller,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> Result:
        """Keep `content` in the document store and attach it to the case, on its record.

        The bytes are stored only once the caller is known to reach the case; the same content
        attached twice to one case is refused (the first attachment stands).
        """
        from models.commands import AttachDocument

        try:
            command = AttachDocument(
                reference=reference,
                sha256=documents.sha256_of(content),
                kind=kind,
                filename=filename,
                media_type=media_type,
                size=len(content),
                note=note,
                idempotency_key=idempotency_key,
            )
        except ValidationError as exc:
            reasons = [
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
            raise CommandRejected("; ".join(reasons), reasons=reasons) from None
        return self._submit(command, caller, content=content)

    def documents_store(self) -> DocumentStore:
        return DocumentStore(documents.documents_root(self.ledger.engine.url))

    # -- queries --------------------------------------------------------------------------------

    def timeline(self, reference: str, caller: Caller) -> Timeline:
        routings = self.routings()
        with self.ledger.session() as session:
            facts = queries.case_facts(session, reference, routings=routings)
            access.authorise_case_read(caller, facts)
            version = queries.pinned_version(session, reference)
            return queries.timeline(
                session=session,
                routing=routings.pinned(session, version),
                reference=reference,
                now=self.clock.now(),
            )

    def documents(self, reference: str, caller: Caller) -> list[AttachedDocument]:
        """The documents attached to a case the caller may read."""
        with self.ledger.session() as session:
            facts = queries.case_facts(session, reference, routings=self.routings())
            access.authorise_case_read(caller, facts)
            return documents.attached(session, reference=reference)

    def document(
        self, reference: str, sha256: str, caller: Caller
    ) -> tuple[AttachedDocument, bytes]:
        """One document of a case the caller may read, with its bytes (checked against their
        hash); NotFound for a document not attached to that case."""
        with self.ledger.session() as session:
            facts = queries.case_facts(session, reference, routings=self.routings())
            access.authorise_case_read(caller, facts)
            row = documents.attached_one(session, reference=reference, sha256=sha256)
        return row, self.documents_store().read(sha256)

    def my_work(self, caller: Caller) -> list[InboxItem]:
        """The open hops assigned to the caller, of the authorities they still serve."""
        from models import workspace

        if not caller.local:
            caller.require_scope(Scope.READ)
        with self.ledger.session() as session:
            return workspace.my_work(
                session,
                routings=self.routings(),
                officer=caller.name,
                now=self.clock.now(),
                serves=lambda country, authority: access.may_work(caller, country, authority),
            )

    def board(self, caller: Caller, country: str | None = None) -> list[BoardItem]:
        """The escalations of the caller's countries (or of one): confidential cases only for
        those who may see them one by one."""
        from models import workspace

        if country is not None:
            country = country.upper()
            access.authorise_country_view(caller, country, "the escalation board")
            countries: list[str] | None = [country]
        else:
            allowed = access.countries_in_view(caller)
            countries = None if allowed is None else list(allowed)
        with self.ledger.session() as session:
            items = workspace.escalation_board(
                session, countries=countries, now=self.clock.now(), routings=self.routings()
            )
        return [
            i
            for i in items
            if not i.confidential or access.sees_confidential_cases(caller, i.country)
        ]

    def inbox(self, country: str, authority: str, caller: Caller) -> list[InboxItem]:
        access.authorise_inbox(caller, country, authority)
        routing = self._country(country)
        with self.ledger.session() as session:
            items = queries.inbox(
                session=session, routing=routing, holder=authority, now=self.clock.now()
            )
        return items

    def overdue(self, country: str, caller: Caller) -> list[InboxItem]:
        access.authorise_country_view(caller, country, "the overdue hops")
        routing = self._country(country)
        with self.ledger.session() as session:
            items = queries.overdue(session=session, routing=routing, now=self.clock.now())
            if access.sees_confidential_cases(caller, country):
                return items
            # An auditor sees confidential cases in aggregates only, never one by one.
            hidden = queries.confidential_references(session, countries=[country])
        return [i for i in items if i.reference not in hidden]

    def search(self, search: CaseSearch, caller: Caller, *, page: int, size: int) -> CasePage:
        with self.ledger.session() as session:
            return queries.search_cases(
                session,
                search=search,
                grants=access.reachable_cases(caller),
                page=page,
                size=size,
            )

    def report(
        self,
        filters: Filters,
        caller: Caller,
        *,
        now: datetime | None = None,
        late_after: timedelta = timedelta(hours=24),
    ) -> Any:
        """The audit report of the countries the caller may read, as a document.

        A caller who may not see confidential cases one by one gets them in the aggregates
        only: rows naming such a case are left out of its tables and headlines.
        """
        from tasks.report import build_report, hide_cases

        allowed = access.countries_in_view(caller)
        if allowed is not None:
            asked = filters.countries or allowed
            if not set(asked) <= set(allowed):
                raise Forbidden(f"{caller.name} may read reports of {', '.join(allowed)} only")
            filters = replace(filters, countries=tuple(asked))
        with self.ledger.session() as session:
            report = build_report(
                session=session,
                routings=self._pinned,  # the pinned versions parsed once, not per report
                filters=filters,
                now=now or self.clock.now(),
                late_after=late_after,
            )
            hidden = queries.confidential_references(
                session,
                countries=[
                    c
                    for c in (filters.countries or queries.countries(session))
                    if not access.sees_confidential_cases(caller, c)
                ],
            )
        return hide_cases(report, hidden) if hidden else report

    def export_log(self, filters: Filters, caller: Caller, *, fmt: str, out: Path) -> int:
        """Write the event log of the caller's countries to `out`; the confidential cases only
        for those who may see them one by one. Returns the events written."""
        from tasks.export import export_log

        filters = self._readable(filters, caller)
        countries = filters.countries or ()
        if not caller.local and not all(
            access.sees_confidential_cases(caller, c) for c in countries or ("*",)
        ):
            filters = replace(filters, confidential=False)
        with self.ledger.session() as session:
            return export_log(session=session, filters=filters, fmt=fmt, out=out)

    def _readable(self, filters: Filters, caller: Caller) -> Filters:
        """`filters` narrowed to the countries the caller may read in aggregate."""
        allowed = access.countries_in_view(caller)
        if allowed is None:
            return filters
        asked = filters.countries or allowed
        if not set(asked) <= set(allowed):
            raise Forbidden(f"{caller.name} may read {', '.join(allowed)} only")
        return replace(filters, countries=tuple(asked))

    def _country(self, country: str) -> Any:
        routings = self._country_routings(country)
        if routings is None:
            known = ", ".join(configured_countries())
            raise NotFound(f"no routing for country {country!r} (configured: {known})")
        return routings.for_country(country.upper())


def _repeated_by(session: Any, command: Command, caller: Caller) -> bool:
    """Whether `caller` already ran this command (same idempotency key): a double click or a
    retried call gets the first result (the engine replays it) even if the case has moved on
    since, out of the caller's reach."""
    key = command.idempotency_key
    return key is not None and queries.actor_of_key(session, key) == caller.actor

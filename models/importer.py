"""Bringing a ministry's former register into the ledger (`rogatory import`).

Every row is read and checked first: numbers, dates as the register writes them (dd/mm/yyyy,
Excel serial days), labels against the mapping's value maps, the request's intake fields, the
order of each case's history. Every problem is located `file:sheet:row:column`. The cases are
then replayed through the engine's own commands (register on the day the register received
the request, then decide, resubmit, withdraw on the register's days), so their events are
hash-chained like any other and their open hop gets its due date, rungs and prescription date
from that history; the engine's own refusals are located on the row they come from. All of it
runs in one transaction that commits only when no case has a problem, or, with `skip_invalid`,
only the cases without one. Each imported event carries `import` in its payload (the file's
SHA-256, the register's number and row) and an idempotency key `import:<CC>:<number>:<n>:<hash
of the event>`: importing the same file again changes nothing, a register that grew since adds
only the new events, and one whose recorded history changed is refused, case by case.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import engine
from models.clock import Clock, FixedClock
from models.engine import Routings
from models.errors import (
    CommandRejected,
    ConfigError,
    IntakeError,
    RegisterProblem,
    RegisterRejected,
)
from models.import_mapping import check_mapping, load_mapping
from models.ledger import Event, Ledger, Request
from models.loader import Routing
from models.register import (
    KEY_PREFIX,
    Entry,
    RegisterCase,
    RegisterReader,
    Table,
    read_table,
)
from models.store import QUIET_KEY, CaseStore, Hop

CHUNK = 1000
"""Cases replayed per batch (one write of their events); the transaction still spans all."""
Progress = Callable[[str, int, int], None]
"""`progress(stage, done, total)` while reading rows and replaying cases."""


# -- replaying through the engine --------------------------------------------------------------


@dataclass(frozen=True)
class ImportedCase:
    number: str
    reference: str
    status: str
    events: int
    """Commands replayed for it by this import."""


@dataclass
class ImportReport:
    """What an import did (or, dry or refused, would do)."""

    file: str
    sheet: str
    sha256: str
    country: str
    rows: int
    cases: int
    dry_run: bool
    imported: list[ImportedCase] = field(default_factory=list)
    extended: list[ImportedCase] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Register numbers left out for their problems (with skip_invalid)."""
    problems: list[RegisterProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def written(self) -> bool:
        return not self.dry_run and bool(self.imported or self.extended)

    @property
    def open_references(self) -> list[str]:
        return [c.reference for c in (*self.imported, *self.extended) if c.status != "closed"]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sheet": self.sheet,
            "sha256": self.sha256,
            "country": self.country,
            "rows": self.rows,
            "cases": self.cases,
            "dry_run": self.dry_run,
            "imported": [c.__dict__ for c in self.imported],
            "extended": [c.__dict__ for c in self.extended],
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "problems": [str(p) for p in self.problems],
            "warnings": self.warnings,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def _existing(session: Session, country: str) -> dict[str, tuple[str, list[str]]]:
    """The cases already imported for `country`: number -> (reference, keys in order)."""
    low, high = f"{KEY_PREFIX}:{country}:", f"{KEY_PREFIX}:{country};"
    rows = session.execute(
        select(Event.idempotency_key, Request.reference)
        .join(Request, Event.request_id == Request.id)
        .where(Event.idempotency_key >= low, Event.idempotency_key < high)
    )
    found: dict[str, tuple[str, dict[int, str]]] = {}
    for key, reference in rows:
        head, n, _ = str(key).rsplit(":", 2)
        number = head.split(":", 2)[2]
        found.setdefault(number, (str(reference), {}))[1][int(n)] = str(key)
    return {k: (ref, [keys[n] for n in sorted(keys)]) for k, (ref, keys) in found.items()}


class _Replay:
    """The register's cases through the engine, in one write session."""

    def __init__(
        self,
        *,
        session: Session,
        routings: Routings,
        clock: Clock,
        actor: str,
        table: Table,
        country: str,
        reader: RegisterReader,
    ) -> None:
        self.session = session
        self.routings = routings
        self.routing = routings.for_country(country)
        self.clock = clock
        self.actor = actor
        self.table = table
        self.country = country
        self.reader = reader
        self.store = CaseStore.of(session)

    def case(
        self, case: RegisterCase, existing: tuple[str, list[str]] | None, report: ImportReport
    ) -> str | None:
        """Replay one case; its reference, or None when it has a problem (located)."""
        keys = case.keys(self.country)
        reference: str | None = None
        done = 0
        if existing is not None:
            reference, recorded = existing
            for n, key in enumerate(recorded):
                if n >= len(keys) or keys[n] != key:
                    entry = case.commands()[min(n, len(keys) - 1)]
                    what = (
                        "has fewer events than"
                        if n >= len(keys)
                        else f"differs at event {n + 1} ({entry.kind} on {entry.on:%d/%m/%Y}) from"
                    )
                    self.reader.problem(
                        entry.where if n < len(keys) else case.where,
                        f"register number {case.number} ({reference}) {what} what was imported "
                        "before: the ledger keeps what was recorded; correct it with the case "
                        "commands (decide, record, withdraw), not by importing a changed register",
                    )
                    return None
            done = len(recorded)
            if done == len(keys):
                report.unchanged.append(case.number)
                return reference
        commands = case.commands()
        checks = [e for e in case.entries if e.kind == "received"]
        for n in range(done, len(keys)):
            entry = commands[n]
            for check in [c for c in checks if c.on <= entry.on]:
                checks.remove(check)
                if reference is not None and not self._received(reference, check):
                    return None
            self.store.marks = {
                "import": {
                    "file": self.table.file,
                    "sha256": self.table.sha256,
                    "sheet": self.table.sheet,
                    "row": entry.where.row,
                    "number": case.number,
                }
            }
            try:
                reference = self._command(case, entry, keys[n], reference, report)
            except CommandRejected as exc:
                where = entry.where
                if entry.kind == "register" and "no route" in str(exc):
                    where = case.columns.get("kind", where)
                self.reader.problem(where, str(exc).split("\n")[0])
                return None
            except IntakeError as exc:
                for reason in exc.reasons:
                    name = reason.split(":", 1)[0].split(".", 1)[0]
                    self.reader.problem(case.columns.get(name, entry.where), reason)
                return None
            finally:
                self.store.marks = None
            if reference is None:
                return None
        for check in checks:
            if reference is not None and not self._received(reference, check):
                return None
        assert reference is not None
        stored = self.store.case(reference)
        made = ImportedCase(case.number, reference, stored.status, len(keys) - done)
        (report.extended if existing else report.imported).append(made)
        return reference

    def _command(
        self,
        case: RegisterCase,
        entry: Entry,
        key: str,
        reference: str | None,
        report: ImportReport,
    ) -> str | None:
        common: dict[str, Any] = {
            "session": self.session,
            "clock": self.clock,
            "routings": self.routings,
            "actor": self.actor,
            "on": entry.on,
            "idempotency_key": key,
        }
        if entry.kind == "register":
            result = engine.register(data=case.intake, **common)
            stored = self.store.case(result.reference)
            first = stored.open
            if (
                entry.authority is not None
                and first is not None
                and entry.authority != first.holder
            ):
                self.reader.problem(
                    entry.where,
                    f"received by {entry.authority}, but route {stored.route_id!r} "
                    f"starts at {first.holder} (step {first.route_step!r})",
                )
                return None
            for warning in result.warnings:
                report.warnings.append(
                    f"{result.reference} (register no. {case.number}): {warning}"
                )
            return result.reference
        assert reference is not None
        stored = self.store.case(reference)
        if entry.kind == "decide":
            hop = stored.open
            if stored.status == "closed":
                self.reader.problem(
                    entry.where,
                    f"{entry.outcome} on {entry.on:%d/%m/%Y}, but the case was already closed "
                    f"({stored.outcome}) by an earlier event",
                )
                return None
            if hop is None:
                self.reader.problem(
                    entry.where,
                    f"{entry.outcome} on {entry.on:%d/%m/%Y}, but the case is back with the "
                    "requester: its resubmission must come first",
                )
                return None
            if not self._fits(
                hop,
                entry,
                did=f"{entry.outcome} by {entry.authority}",
                early=lambda opened: (
                    f"{entry.outcome} on {entry.on:%d/%m/%Y}, before the request reached "
                    f"{hop.holder} on {opened:%d/%m/%Y}: a decision cannot precede its receipt"
                ),
            ):
                return None
            engine.decide(
                reference=reference,
                outcome=entry.outcome or "",
                ground=entry.ground,
                cause=entry.cause,
                note=entry.note,
                **common,
            )
        elif entry.kind == "resubmit":
            engine.resubmit(reference=reference, note=entry.note, **common)
        else:
            engine.withdraw(reference=reference, note=entry.note, **common)
        return reference

    def _received(self, reference: str, check: Entry) -> bool:
        """A `received` row agrees with the hop open at that point."""
        hop = self.store.case(reference).open
        if hop is None or check.authority is None:
            return True
        return self._fits(
            hop,
            check,
            did=f"received by {check.authority} on {check.on:%d/%m/%Y}",
            early=lambda opened: (
                f"received by {hop.holder} on {check.on:%d/%m/%Y}, before it was passed on to it "
                f"({opened:%d/%m/%Y})"
            ),
        )

    def _fits(self, hop: Hop, entry: Entry, *, did: str, early: Callable[[date], str]) -> bool:
        """`entry` was by the hop's holder, on or after the day the hop opened; else its
        problem is listed (`did` says what the row records, `early` words a day too early)."""
        if entry.authority is not None and entry.authority != hop.holder:
            self.reader.problem(
                entry.where,
                f"{did}, but the case is with {hop.holder} (step {hop.route_step!r}) at this "
                "point of its history",
            )
            return False
        opened = self.routing.calendar(hop.holder).local_date(hop.opened_at)
        if entry.on < opened:
            self.reader.problem(entry.where, early(opened))
            return False
        return True


def import_register(
    *,
    path: Path,
    mapping_path: Path,
    ledger: Ledger,
    routing: Routing | None = None,
    clock: Clock,
    actor: str,
    dry_run: bool = False,
    skip_invalid: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a register; RegisterRejected (nothing written) when a case has a problem and
    `skip_invalid` is off. A dry run checks everything, replays it, and writes nothing."""
    from models.loader import load_country_code

    began = time.perf_counter()
    loaded = load_mapping(mapping_path)
    country = loaded.mapping.country
    if routing is None:
        routing = load_country_code(country)
        if routing is None:
            raise ConfigError(
                [loaded.problem(("country",), f"no routing file for {country} in force")]
            )
    check_mapping(loaded, routing)
    table = read_table(path, loaded)
    now = clock.now()
    fixed = FixedClock(now)
    today = routing.calendar(None).local_date(now)
    reader = RegisterReader(table, loaded, routing, today)
    cases = reader.cases()
    if progress:
        progress("read", len(table.rows), len(table.rows))
    report = ImportReport(
        table.file, table.sheet, table.sha256, country, len(table.rows), len(cases), dry_run
    )
    routings = Routings({country: routing})
    leave_out = {c.number for c in cases if c.bad}
    for _ in range(3):
        report.imported, report.extended, report.unchanged, report.warnings = [], [], [], []
        failed = _replay_all(
            ledger=ledger,
            routings=routings,
            clock=fixed,
            actor=actor,
            table=table,
            country=country,
            reader=reader,
            cases=[c for c in cases if c.number not in leave_out],
            report=report,
            commit=not dry_run,
            all_or_nothing=not skip_invalid,
            progress=progress,
        )
        leave_out |= failed
        if not failed or not skip_invalid or dry_run:
            break
        # The failed cases' writes were rolled back with the others': replay the others alone.
    report.problems = sorted(reader.problems, key=lambda p: (p.row, _column_order(p.column)))
    report.skipped = sorted(leave_out, key=_number_order)
    report.elapsed_s = time.perf_counter() - began
    if report.problems and not skip_invalid and not dry_run:
        raise RegisterRejected(report.problems, rows=report.rows, cases=report.cases)
    return report


def _column_order(column: str) -> tuple[int, str]:
    return (len(column), column)


def _number_order(number: str) -> tuple[int, str]:
    return (0, f"{int(number):020d}") if number.isdigit() else (1, number)


def _replay_all(
    *,
    ledger: Ledger,
    routings: Routings,
    clock: Clock,
    actor: str,
    table: Table,
    country: str,
    reader: RegisterReader,
    cases: list[RegisterCase],
    report: ImportReport,
    commit: bool,
    all_or_nothing: bool,
    progress: Progress | None,
) -> set[str]:
    """Replay `cases` in one transaction; the numbers of those that failed. Commits only when
    `commit` and nothing failed (and nothing had failed before, in all-or-nothing mode)."""
    failed: set[str] = set()
    collecting = gc.isenabled()
    gc.disable()  # as the simulator: a batch's objects hold no cycles worth scanning
    session = ledger.write_session()
    try:
        session.info[QUIET_KEY] = True  # nobody is told of hops that opened years ago
        existing = _existing(session, country)
        replay = _Replay(
            session=session,
            routings=routings,
            clock=clock,
            actor=actor,
            table=table,
            country=country,
            reader=reader,
        )
        for start in range(0, len(cases), CHUNK):
            chunk = cases[start : start + CHUNK]
            touched: list[str] = []
            with engine.batch(session):
                for case in chunk:
                    reference = replay.case(case, existing.get(case.number), report)
                    if reference is None:
                        failed.add(case.number)
                    else:
                        touched.append(reference)
            replay.store.release(touched)
            if progress:
                progress("replay", min(start + CHUNK, len(cases)), len(cases))
        if commit and not failed and not (all_or_nothing and reader.problems):
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        CaseStore.of(session).discard()
        session.close()
        if collecting:
            gc.enable()
    return failed


def describe(report: ImportReport) -> Iterator[str]:
    """The import's outcome for the command line, one fact a line."""
    verb = "would import" if report.dry_run else "imported"
    yield (
        f"{report.file}:{report.sheet} ({report.sha256[:12]}): {report.rows} rows, "
        f"{report.cases} cases"
    )
    for case in report.imported:
        yield f"  {verb} {case.number} as {case.reference} ({case.status}, {case.events} events)"
    for case in report.extended:
        yield f"  {case.number} ({case.reference}): {case.events} new events ({case.status})"
    for problem in report.problems:
        yield f"{problem}"
    for warning in report.warnings:
        yield f"warning: {warning}"
    parts = [f"{len(report.imported)} new case(s) {verb}"]
    if report.extended:
        parts.append(f"{len(report.extended)} extended")
    if report.unchanged:
        parts.append(f"{len(report.unchanged)} already imported, unchanged")
    if report.skipped:
        parts.append(
            f"{len(report.skipped)} skipped for their problems: {', '.join(report.skipped)}"
        )
    if report.dry_run:
        parts.append("dry run: nothing written")
    elif not report.imported and not report.extended:
        parts.append("nothing to write: the ledger already holds this register")
    yield "; ".join(parts) + f" ({report.elapsed_s:.1f} s)"

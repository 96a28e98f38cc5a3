"""The auditor's dashboard: the audit report computed live from the ledger for the filters asked,
and the same report to download (HTML page, JSON, CSV tables zipped, XES event log).

The service restricts the report to the caller's countries and keeps confidential cases out of
the rows of readers who may see them only in aggregates. The page draws the document's figures,
headlines and tables itself (the report's HTML is a standalone page: it is offered as a
download).

A report reads the whole scope of the ledger (seconds for 200,000 cases), so the live dashboard
serves the latest report computed for the same roles and filters while it is under
`FRESH_FOR` old, and a staler one while a fresh one is computed in the background; the page
says when its figures were computed. A report as of a past day, and every download, is
computed for the request.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from app.web.pages import Pages, Visitor
from models import access
from models.domain import Direction, Kind
from models.errors import Forbidden, NotFound
from models.identity import RoleName
from models.metrics import Filters
from tasks.report import PERCENT_COLUMNS, render_html, render_json, write_csv

log = logging.getLogger("rogatory.web")
READERS = (RoleName.AUDITOR, RoleName.COORDINATOR, RoleName.MINISTRY)
ROWS_SHOWN = 50
"""Rows of a table on the page; the downloads hold every row."""
DOWNLOADS = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "csv": "application/zip",
    "xes": "application/xml",
}
SHOWN_TABLES = frozenset(
    {
        "delay_attribution",
        "dwell_by_authority",
        "dwell_by_step",
        "dwell_histogram",
        "breaches_by_authority",
        "breaches_by_step",
        "breaches_by_month",
        "overdue_now",
        "risk_register",
        "foreign_by_counterpart",
        "stops",
        "handoffs",
        "rework_by_authority",
        "rework_by_cause",
        "refusals",
        "execution",
        "late_entries",
        "uncac_usage",
        "statistics",
        "chains",
    }
)
"""The tables audit.html lays out with chosen columns; any other is shown with all of its own."""
_SEVERAL = re.compile(r"[\s,;]+")


FRESH_FOR = timedelta(minutes=5)


class ReportCache:
    """The latest live report per (roles, filters): fresh for `FRESH_FOR`, then served once
    more while one background thread computes its successor."""

    def __init__(self, *, fresh_for: timedelta = FRESH_FOR, size: int = 64) -> None:
        self.fresh_for = fresh_for
        self.size = size
        self._reports: OrderedDict[Hashable, tuple[datetime, dict[str, Any]]] = OrderedDict()
        self._refreshing: set[Hashable] = set()
        self._lock = threading.Lock()
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report")

    def get(
        self, key: Hashable, compute: Callable[[], dict[str, Any]], *, now: datetime
    ) -> dict[str, Any]:
        with self._lock:
            found = self._reports.get(key)
            if found is not None:
                self._reports.move_to_end(key)
        if found is None:
            return self._store(key, compute)
        computed_at, report = found
        if now - computed_at >= self.fresh_for:
            with self._lock:
                start = key not in self._refreshing
                self._refreshing.add(key)
            if start:
                self._background.submit(self._refresh, key, compute)
        return report

    def _store(self, key: Hashable, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        report = compute()
        with self._lock:
            self._reports[key] = (datetime.fromisoformat(report["as_of"]), report)
            self._reports.move_to_end(key)
            while len(self._reports) > self.size:
                self._reports.popitem(last=False)
        return report

    def _refresh(self, key: Hashable, compute: Callable[[], dict[str, Any]]) -> None:
        try:
            self._store(key, compute)
        except Exception:  # the stale report stays; the next request tries again
            log.exception("refreshing a cached audit report failed")
        finally:
            with self._lock:
                self._refreshing.discard(key)


class WrongFilter(ValueError):
    """A filter of the query cannot be read (a date that is not one, an unknown kind)."""


@dataclass(frozen=True)
class AuditQuery:
    """The dashboard's filters as the form sends them; several values per field where the
    report's `Filters` take several."""

    countries: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    directions: tuple[str, ...] = ()
    counterparts: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    as_of: date | None = None

    @classmethod
    def read(cls, query: Any) -> AuditQuery:
        """From a query string's parameters (`getlist`); a text field may hold several values
        separated by spaces or commas."""

        def several(name: str, *, upper: bool = False) -> tuple[str, ...]:
            values = [v for raw in query.getlist(name) for v in _SEVERAL.split(raw) if v]
            return tuple(dict.fromkeys(v.upper() if upper else v for v in values))

        kinds, directions = several("kind"), several("direction")
        _closed("kind", kinds, Kind)
        _closed("direction", directions, Direction)
        return cls(
            countries=several("country", upper=True),
            routes=several("route"),
            kinds=kinds,
            directions=directions,
            counterparts=several("counterpart", upper=True),
            since=_day(query, "since"),
            until=_day(query, "until"),
            as_of=_day(query, "as_of"),
        )

    def filters(self) -> Filters:
        return Filters(
            countries=self.countries,
            routes=self.routes,
            kinds=self.kinds,
            directions=self.directions,
            counterparts=self.counterparts,
            since=self.since,
            until=self.until,
        )

    def instant(self, now: datetime) -> datetime:
        """The report's "now": the end of the as-of day (UTC), never later than now."""
        if self.as_of is None:
            return now
        return min(now, datetime.combine(self.as_of, time.max, tzinfo=UTC))

    def query(self) -> str:
        """The filters as a query string, for the download links."""
        pairs: list[tuple[str, str]] = [
            *(("country", v) for v in self.countries),
            *(("route", v) for v in self.routes),
            *(("kind", v) for v in self.kinds),
            *(("direction", v) for v in self.directions),
            *(("counterpart", v) for v in self.counterparts),
        ]
        for name in ("since", "until", "as_of"):
            day = getattr(self, name)
            if day is not None:
                pairs.append((name, day.isoformat()))
        return urlencode(pairs)


def _day(query: Any, name: str) -> date | None:
    text = (query.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise WrongFilter(f"{name}: {text!r} is not a date; write it as YYYY-MM-DD") from None


def _closed(name: str, values: Sequence[str], vocabulary: type[Kind] | type[Direction]) -> None:
    known = [str(v) for v in vocabulary]
    wrong = [v for v in values if v not in known]
    if wrong:
        raise WrongFilter(f"{name}: {', '.join(wrong)} unknown; choose from {', '.join(known)}")


# -- what the page shows of a value -------------------------------------------------------------


def cell(value: Any, key: str = "") -> str:
    """A report value as the page writes it: shares as percentages, lists joined, none as –."""
    if value is None:
        return "–"
    if key in PERCENT_COLUMNS and isinstance(value, int | float):
        return f"{100 * value:.1f}%" if 0 < value < 0.1 else f"{round(100 * value)}%"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value if not isinstance(v, dict))
    return str(value)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def other_tables(report: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The tables the page has no layout for, each with its columns (those of its rows, named
    by their keys)."""
    found = []
    for name, rows in report["tables"].items():
        if name in SHOWN_TABLES:
            continue
        columns: dict[str, None] = {}
        for row in rows[:ROWS_SHOWN]:
            columns.update(dict.fromkeys(k for k, v in row.items() if not _nested(v)))
        found.append((name, [(key, key.replace("_", " ").capitalize()) for key in columns]))
    return found


def _nested(value: Any) -> bool:
    return isinstance(value, list | dict) and any(isinstance(v, dict) for v in value)


# -- the pages ----------------------------------------------------------------------------------


def add_audit_pages(app: FastAPI, pages: Pages) -> None:
    service = pages.service

    def reader(request: Request) -> Visitor:
        visitor = pages.visitor(request)
        if not visitor.has(*READERS):
            raise Forbidden(
                f"{visitor.name} may not read the audit report: it is for auditors, "
                "coordinators and the ministry"
            )
        return visitor

    cache = ReportCache()

    def report_for(visitor: Visitor, asked: AuditQuery, *, live: bool = False) -> dict[str, Any]:
        """The report for the caller's roles and the filters; a recent one for the live page
        (the same roles see the same report: the service hides rows by role, not by name)."""
        now = service.clock.now()

        def compute() -> dict[str, Any]:
            report: dict[str, Any] = service.report(
                asked.filters(), visitor.caller, now=asked.instant(service.clock.now())
            )
            return report

        if not live or asked.as_of is not None:
            return compute()
        access.countries_in_view(visitor.caller)  # refuse before serving anything cached
        key = (visitor.caller.grants, visitor.caller.scopes, asked)
        return cache.get(key, compute, now=now)

    @app.get("/audit", include_in_schema=False)
    def audit(request: Request) -> Response:
        visitor = reader(request)
        try:
            asked = AuditQuery.read(request.query_params)
        except WrongFilter as wrong:
            return pages.error(request, 400, "Invalid input", str(wrong))
        report = report_for(visitor, asked, live=True)
        register = report["tables"].get("risk_register", [])
        return pages.render(
            request,
            "audit.html",
            visitor=visitor,
            report=report,
            asked=asked,
            query=asked.query(),
            country_choices=access.countries_in_view(visitor.caller),
            kinds=[str(k) for k in Kind],
            directions=[str(d) for d in Direction],
            prescribed=[r for r in register if r.get("prescribed")],
            at_risk=[r for r in register if not r.get("prescribed")],
            as_of=datetime.fromisoformat(report["as_of"]),
            others=other_tables(report),
            rows_shown=ROWS_SHOWN,
            cell=cell,
            is_number=is_number,
        )

    @app.get("/audit/download.{fmt}", include_in_schema=False)
    def download(request: Request, fmt: str) -> Response:
        if fmt not in DOWNLOADS:
            raise NotFound(f"no download as {fmt!r}: choose {', '.join(DOWNLOADS)}")
        visitor = reader(request)
        try:
            asked = AuditQuery.read(request.query_params)
        except WrongFilter as wrong:
            return pages.error(request, 400, "Invalid input", str(wrong))
        folder = Path(tempfile.mkdtemp(prefix="rogatory-audit-"))
        cleanup = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
        try:
            if fmt == "xes":
                path = folder / "events.xes"
                service.export_log(asked.filters(), visitor.caller, fmt="xes", out=path)
                countries = asked.countries or access.countries_in_view(visitor.caller) or ()
                name = _file_name("events", countries, service.clock.now(), "xes")
            else:
                report = report_for(visitor, asked)
                path = _write(report, fmt, folder)
                countries = tuple(report["filters"]["countries"])
                as_of = datetime.fromisoformat(report["as_of"])
                name = _file_name("audit", countries, as_of, "zip" if fmt == "csv" else fmt)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(path, media_type=DOWNLOADS[fmt], filename=name, background=cleanup)


def _write(report: dict[str, Any], fmt: str, folder: Path) -> Path:
    """The report as one file in `folder`: the page, the JSON, or its CSV tables zipped."""
    if fmt == "csv":
        path = folder / "report.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for table in write_csv(report, folder / "csv"):
                archive.write(table, arcname=table.name)
        return path
    path = folder / f"report.{fmt}"
    text = render_json(report) if fmt == "json" else render_html(report)
    path.write_text(text, encoding="utf-8")
    return path


def _file_name(what: str, countries: Sequence[str], as_of: datetime, ext: str) -> str:
    """`rogatory-audit-SV-2026-11-02.html`: what, whose, as of when."""
    whose = "-".join(countries) or "all"
    return f"rogatory-{what}-{whose}-{as_of:%Y-%m-%d}.{ext}"

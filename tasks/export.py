"""The event log for process-mining tools (ProM, PM4Py, Celonis): XES or CSV.

Each hop becomes a `start` event when it opened and a `complete` event when it closed (an open
hop has only its start): case = reference, resource = holder, and activity (XES concept:name) =
`{country} {route}: {step} @ {holder}`, e.g. `SV mla-outgoing: court @ csj`. The activity is
unique per country, route and step, so a tool's default grouping never merges Colombia's court
with Guatemala's; the parts are also attributes of their own (XES: country and route on the
trace, step and holder on each event; CSV: a column each) for tools that regroup them. The
service time a tool computes from a start/complete pair is the hop's dwell in the audit report.

Rows are streamed from the ledger in chunks as plain columns (instants already as xs:dateTime
text, formatted by the database), and written in batches from fragments rendered once per
country, route, step and holder, so a log of millions of events needs little memory or time.
Every file rogatory hands out (this log, the audit report) is written here the same safe way:
atomically, never through a symbolic link, CSV cells neutralised, path problems as messages.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TextIO
from xml.sax.saxutils import quoteattr

from sqlalchemy import ColumnElement, String, func, select
from sqlalchemy.orm import Session

from models.errors import RogatoryError
from models.ledger import Request, Step
from models.metrics import Filters, case_conditions

XES_HEADER = """<?xml version="1.0" encoding="UTF-8" ?>
<log xes.version="1.0" xes.features="nested-attributes" xmlns="http://www.xes-standard.org/">
 <extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>
 <extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>
 <extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>
 <extension name="Organizational" prefix="org" uri="http://www.xes-standard.org/org.xesext"/>
 <global scope="trace">
  <string key="concept:name" value="__INVALID__"/>
  <string key="country" value="__INVALID__"/>
  <string key="route" value="__INVALID__"/>
 </global>
 <global scope="event">
  <string key="concept:name" value="__INVALID__"/>
  <string key="lifecycle:transition" value="complete"/>
  <string key="org:resource" value="__INVALID__"/>
  <string key="step" value="__INVALID__"/>
  <string key="holder" value="__INVALID__"/>
  <date key="time:timestamp" value="1970-01-01T00:00:00.000000+00:00"/>
  <int key="hop" value="0"/>
 </global>
 <classifier name="Activity" keys="concept:name"/>
 <classifier name="Activity and lifecycle" keys="concept:name lifecycle:transition"/>
 <classifier name="Holder" keys="org:resource"/>
 <string key="concept:name" value="rogatory: hops of legal-assistance requests"/>
"""
CSV_COLUMNS = (
    "case_id",
    "activity",
    "lifecycle",
    "resource",
    "timestamp",
    "hop",
    "country",
    "route",
    "step",
    "holder",
    "outcome",
)
BATCH = 4096
"""Hops rendered between two writes: large enough that writing costs little per event."""


class HopRecord(NamedTuple):
    """One hop as the log carries it; instants as xs:dateTime text (see `timestamp`)."""

    reference: str
    country: str
    route: str
    hop: int
    step: str
    holder: str
    opened_at: str
    closed_at: str | None
    outcome: str | None


def activity(country: str, route: str, step: str, holder: str) -> str:
    """The activity of a hop: `SV mla-outgoing: court @ csj`."""
    return f"{country} {route}: {step} @ {holder}"


def timestamp(instant: datetime) -> str:
    """xs:dateTime in UTC with microseconds, as XES and the CSV carry it."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds")


def xs_datetime(dialect: str, column: Any) -> ColumnElement[str]:
    """A UTC instant column as the text `timestamp` makes of it, formatted by the database
    (parsing millions of instants into datetimes to print them again is most of the work)."""
    if dialect == "postgresql":
        return func.to_char(column, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"', type_=String)
    # SQLAlchemy stores SQLite instants as `YYYY-MM-DD HH:MM:SS.ffffff`, here in UTC.
    return func.replace(column, " ", "T", type_=String).concat("+00:00")


def iter_hops(*, session: Session, filters: Filters, chunk: int = 50_000) -> Iterator[HopRecord]:
    """Every hop of the cases `filters` selects, case by case, hop by hop, as plain rows."""
    dialect = session.get_bind().dialect.name
    query = (
        select(
            Request.reference,
            Request.country,
            Request.route_id,
            Step.hop,
            Step.route_step,
            Step.holder,
            xs_datetime(dialect, Step.opened_at),
            xs_datetime(dialect, Step.closed_at),
            Step.outcome,
        )
        .join(Request, Request.id == Step.request_id)
        .where(*case_conditions(filters))
        .order_by(Step.request_id, Step.hop)
    )
    # Through the connection, not the ORM session: plain rows, without the ORM's per-row work.
    result = session.connection().execute(query, execution_options={"yield_per": chunk})
    for part in result.partitions():
        yield from part  # type: ignore[misc]


def write_xes(hops: Iterable[HopRecord], stream: TextIO) -> int:
    """Write the hops as an XES log; returns the number of events written."""
    stream.write(XES_HEADER)
    # Per country, route, step and holder: the start and complete events up to the timestamp.
    events_of: dict[tuple[str, str, str, str], tuple[str, str]] = {}
    outcomes: dict[str | None, str] = {None: "", "": ""}
    out: list[str] = []
    current: str | None = None
    events = 0
    for reference, country, route, hop, step, holder, opened, closed, outcome in hops:
        if reference != current:
            if current is not None:
                out.append(" </trace>\n")
            out.append(
                f' <trace>\n  <string key="concept:name" value={quoteattr(reference)}/>\n'
                f'  <string key="country" value={quoteattr(country)}/>\n'
                f'  <string key="route" value={quoteattr(route)}/>\n'
            )
            current = reference
        key = (country, route, step, holder)
        fragments = events_of.get(key)
        if fragments is None:
            fragments = events_of[key] = _xes_events(*key)
        start, complete = fragments
        out.append(f'{start}{opened}"/>\n   <int key="hop" value="{hop}"/>\n  </event>\n')
        events += 1
        if closed is not None:
            ending = outcomes.get(outcome)
            if ending is None:
                ending = outcomes[outcome] = (
                    f'   <string key="outcome" value={quoteattr(outcome or "")}/>\n'
                )
            out.append(
                f'{complete}{closed}"/>\n   <int key="hop" value="{hop}"/>\n{ending}  </event>\n'
            )
            events += 1
        if len(out) >= BATCH:
            stream.write("".join(out))
            out.clear()
    if current is not None:
        out.append(" </trace>\n")
    out.append("</log>\n")
    stream.write("".join(out))
    return events


def _xes_events(country: str, route: str, step: str, holder: str) -> tuple[str, str]:
    """A hop's start and complete events in XES, up to the value of their timestamp."""
    name = quoteattr(activity(country, route, step, holder))
    parts = (
        f'   <string key="org:resource" value={quoteattr(holder)}/>\n'
        f'   <string key="step" value={quoteattr(step)}/>\n'
        f'   <string key="holder" value={quoteattr(holder)}/>\n'
        '   <date key="time:timestamp" value="'
    )
    head = (
        f'  <event>\n   <string key="concept:name" value={name}/>\n'
        '   <string key="lifecycle:transition" value="'
    )
    return f'{head}start"/>\n{parts}', f'{head}complete"/>\n{parts}'


def write_csv_log(hops: Iterable[HopRecord], stream: TextIO) -> int:
    """Write the hops as a flat CSV event log (one row per lifecycle event)."""
    stream.write(_csv_cells(CSV_COLUMNS))
    events_of: dict[tuple[str, str, str, str], tuple[str, str, str]] = {}
    outcomes: dict[str | None, str] = {None: "", "": ""}
    out: list[str] = []
    current: str | None = None
    case = ""
    events = 0
    for reference, country, route, hop, step, holder, opened, closed, outcome in hops:
        if reference != current:
            current = reference
            case = _csv_cells([reference])[:-2]
        key = (country, route, step, holder)
        fragments = events_of.get(key)
        if fragments is None:
            fragments = events_of[key] = _csv_events(*key)
        start, complete, parts = fragments
        out.append(f"{case},{start},{opened},{hop},{parts},\r\n")
        events += 1
        if closed is not None:
            ending = outcomes.get(outcome)
            if ending is None:
                ending = outcomes[outcome] = _csv_cells([outcome or ""])[:-2]
            out.append(f"{case},{complete},{closed},{hop},{parts},{ending}\r\n")
            events += 1
        if len(out) >= BATCH:
            stream.write("".join(out))
            out.clear()
    stream.write("".join(out))
    return events


def _csv_events(country: str, route: str, step: str, holder: str) -> tuple[str, str, str]:
    """A hop's cells in CSV, rendered once: activity, lifecycle and resource for its start and
    its complete event, then country, route, step and holder."""
    name = activity(country, route, step, holder)
    start, complete = (_csv_cells([name, t, holder])[:-2] for t in ("start", "complete"))
    return start, complete, _csv_cells([country, route, step, holder])[:-2]


def _csv_cells(cells: Iterable[str]) -> str:
    """Cells as one CSV line (with its CRLF), neutralised and quoted as csv.writer does."""
    line = io.StringIO()
    csv.writer(line).writerow([neutralise(cell) for cell in cells])
    return line.getvalue()


def export_log(*, session: Session, filters: Filters, fmt: str, out: Path) -> int:
    """Write the event log of `filters` to `out` as `xes` or `csv`; returns the events written."""
    write = {"xes": write_xes, "csv": write_csv_log}.get(fmt)
    if write is None:
        raise ValueError(f"unknown event-log format {fmt!r}: use xes or csv")
    output_folder(out.parent)
    with output_file(out) as stream:
        return write(iter_hops(session=session, filters=filters), stream)


# -- writing files safely ----------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP, "CSV injection")."""
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
"""Text a spreadsheet reads as a plain number (`-3`, `2.5`, `1e-3`): no formula, left alone."""

# An OSError's errno, as the reason a path cannot be written and what to do about it.
REASONS = {
    errno.EACCES: "permission denied; choose a location you may write to, or ask for access",
    errno.EPERM: "permission denied; choose a location you may write to, or ask for access",
    errno.EROFS: "the file system is read-only; choose a location on a writable one",
    errno.ENAMETOOLONG: "a name in the path is too long; choose a shorter one",
    errno.ENOTDIR: "part of the path is a file, not a folder; choose another path",
    errno.ENOSPC: "no space is left on the device; free some or choose another location",
    errno.EDQUOT: "the disk quota is used up; free some space or choose another location",
    errno.ELOOP: "the path loops through symbolic links; choose another path",
    errno.ENOENT: "its folder is missing and cannot be created there; choose another path",
}


def neutralise(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text and never evaluates: `=HYPERLINK(...)` becomes
    `'=HYPERLINK(...)`. Names from country files reach the cells and may start with `=`;
    numbers, and text that is one (`-3`), are left as they are."""
    formula = isinstance(value, str) and value.startswith(FORMULA_STARTS)
    if formula and not NUMBER.fullmatch(value):
        return "'" + value
    return value


def refusal(path: Path, exc: OSError) -> RogatoryError:
    """The OSError that stopped writing `path`, as a one-line message saying what to do."""
    fallback = f"{(exc.strerror or 'the system refused it').lower()}; choose another path"
    reason = REASONS.get(exc.errno or 0, fallback)
    return RogatoryError(f"cannot write {path}: {reason}")


def output_folder(path: Path) -> Path:
    """`path` as a folder to write into, created with its parents if missing."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise RogatoryError(
            f"cannot write into {path}: it exists and is not a folder; name a folder (it is "
            "created if missing) or move what is there"
        ) from exc
    except OSError as exc:
        raise refusal(path, exc) from exc
    return path


@contextmanager
def output_file(path: Path) -> Iterator[TextIO]:
    """A text stream that replaces `path` in one step when the block ends without error.

    The text goes to a new file beside `path`, then takes its name: a reader sees the old file
    or the new one, never half of either. `path` must be a regular file or missing; a symbolic
    link is refused, not followed (someone could point `report.html` at a file outside the
    folder) and not silently replaced (whoever planted it should hear of it).
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = 0
    except OSError as exc:
        raise refusal(path, exc) from exc
    if stat.S_ISLNK(mode):
        raise RogatoryError(
            f"cannot write {path}: it is a symbolic link, which rogatory never writes through; "
            "remove the link or write elsewhere"
        )
    if stat.S_ISDIR(mode):
        raise RogatoryError(
            f"cannot write {path}: it is a folder, not a file; name a file to write (or move the "
            "folder away)"
        )
    if mode and not stat.S_ISREG(mode):
        raise RogatoryError(
            f"cannot write {path}: it is not a regular file (a device or a pipe); write elsewhere"
        )
    # A fresh name, created exclusively: O_EXCL (and O_NOFOLLOW where the system has it) refuse
    # a link planted at the temporary name too. Mode 0600: reports and exports are the
    # application's, whoever else shares the machine.
    temp = path.with_name(f".{path.name[:40]}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(temp, flags, 0o600)
    except OSError as exc:
        raise refusal(path, exc) from exc
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            # On disk before the rename, so a crash leaves the old file, not an empty new one.
            os.fsync(stream.fileno())
        # os.replace renames over a link planted since the check above; it never follows one.
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise refusal(path, exc) from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise

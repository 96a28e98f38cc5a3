"""The event log for process-mining tools (ProM, PM4Py, Celonis): XES or CSV.

Each hop becomes a `start` event when it opened and a `complete` event when it closed (an open
hop has only its start): case = reference, activity = `step @ holder`, resource = holder. The
service time a tool computes from a start/complete pair is the hop's dwell in the audit report.
Rows are streamed from the ledger in chunks, so a log of millions of events needs little memory.
Every file rogatory hands out (this log, the audit report) is written here the same safe way:
atomically, never through a symbolic link, CSV cells neutralised, path problems as messages.
"""

from __future__ import annotations

import csv
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from xml.sax.saxutils import quoteattr

from sqlalchemy.orm import Session

from models.errors import RogatoryError
from models.metrics import Filters
from models.queries import hop_rows

XES_HEADER = """<?xml version="1.0" encoding="UTF-8" ?>
<log xes.version="1.0" xes.features="nested-attributes" xmlns="http://www.xes-standard.org/">
 <extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>
 <extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>
 <extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>
 <extension name="Organizational" prefix="org" uri="http://www.xes-standard.org/org.xesext"/>
 <global scope="trace">
  <string key="concept:name" value="__INVALID__"/>
 </global>
 <global scope="event">
  <string key="concept:name" value="__INVALID__"/>
  <string key="lifecycle:transition" value="complete"/>
  <string key="org:resource" value="__INVALID__"/>
  <date key="time:timestamp" value="1970-01-01T00:00:00.000000+00:00"/>
 </global>
 <classifier name="Activity" keys="concept:name"/>
 <classifier name="Activity and transition" keys="concept:name lifecycle:transition"/>
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
    "outcome",
)


@dataclass(frozen=True)
class HopRecord:
    reference: str
    country: str
    route: str
    hop: int
    step: str
    holder: str
    opened_at: datetime
    closed_at: datetime | None
    outcome: str | None

    @property
    def activity(self) -> str:
        return f"{self.step} @ {self.holder}"


def timestamp(instant: datetime) -> str:
    """xs:dateTime in UTC with microseconds, as XES and the CSV carry it."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds")


def iter_hops(*, session: Session, filters: Filters, chunk: int = 50_000) -> Iterator[HopRecord]:
    """Every hop of the cases `filters` selects, case by case, hop by hop."""
    for row in hop_rows(session, filters=filters, chunk=chunk):
        yield HopRecord(*row)


def write_xes(hops: Iterable[HopRecord], stream: TextIO) -> int:
    """Write the hops as an XES log; returns the number of events written."""
    stream.write(XES_HEADER)
    current: str | None = None
    events = 0
    for h in hops:
        if h.reference != current:
            if current is not None:
                stream.write(" </trace>\n")
            current = h.reference
            stream.write(
                f' <trace>\n  <string key="concept:name" value={quoteattr(h.reference)}/>\n'
                f'  <string key="country" value={quoteattr(h.country)}/>\n'
                f'  <string key="route" value={quoteattr(h.route)}/>\n'
            )
        for transition, instant in (("start", h.opened_at), ("complete", h.closed_at)):
            if instant is None:
                continue
            outcome = ""
            if transition == "complete" and h.outcome:
                outcome = f'   <string key="outcome" value={quoteattr(h.outcome)}/>\n'
            stream.write(
                "  <event>\n"
                f'   <string key="concept:name" value={quoteattr(h.activity)}/>\n'
                f'   <string key="lifecycle:transition" value="{transition}"/>\n'
                f'   <string key="org:resource" value={quoteattr(h.holder)}/>\n'
                f'   <date key="time:timestamp" value="{timestamp(instant)}"/>\n'
                f'   <int key="hop" value="{h.hop}"/>\n'
                f"{outcome}"
                "  </event>\n"
            )
            events += 1
    if current is not None:
        stream.write(" </trace>\n")
    stream.write("</log>\n")
    return events


def write_csv_log(hops: Iterable[HopRecord], stream: TextIO) -> int:
    """Write the hops as a flat CSV event log (one row per lifecycle event)."""
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    events = 0
    for h in hops:
        for transition, instant in (("start", h.opened_at), ("complete", h.closed_at)):
            if instant is None:
                continue
            row = [
                h.reference,
                h.activity,
                transition,
                h.holder,
                timestamp(instant),
                h.hop,
                h.country,
                h.route,
                (h.outcome or "") if transition == "complete" else "",
            ]
            writer.writerow([neutralise(cell) for cell in row])
            events += 1
    return events


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
        path.mkdir(parents=True, exist_ok=True)
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
    # a link planted at the temporary name too. Mode 0o666 lets the umask decide, as open() does.
    temp = path.with_name(f".{path.name[:40]}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(temp, flags, 0o666)
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

"""The event log for process-mining tools (ProM, PM4Py, Celonis): XES or CSV.

Each hop becomes a `start` event when it opened and a `complete` event when it closed (an open
hop has only its start): case = reference, activity = `step @ holder`, resource = holder. The
service time a tool computes from a start/complete pair is the hop's dwell in the audit report.
Rows are streamed from the ledger in chunks, so a log of millions of events needs little memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from xml.sax.saxutils import quoteattr

from sqlalchemy import select
from sqlalchemy.orm import Session

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
    query = (
        select(
            Request.reference,
            Request.country,
            Request.route_id,
            Step.hop,
            Step.route_step,
            Step.holder,
            Step.opened_at,
            Step.closed_at,
            Step.outcome,
        )
        .join(Request, Request.id == Step.request_id)
        .where(*case_conditions(filters))
        .order_by(Step.request_id, Step.hop)
    )
    result = session.execute(query, execution_options={"yield_per": chunk})
    for part in result.partitions():
        for row in part:
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
            writer.writerow(
                [
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
            )
            events += 1
    return events


def export_log(*, session: Session, filters: Filters, fmt: str, out: Path) -> int:
    """Write the event log of `filters` to `out` as `xes` or `csv`; returns the events written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    hops = iter_hops(session=session, filters=filters)
    with out.open("w", encoding="utf-8", newline="") as stream:
        if fmt == "xes":
            return write_xes(hops, stream)
        if fmt == "csv":
            return write_csv_log(hops, stream)
    raise ValueError(f"unknown event-log format {fmt!r}: use xes or csv")

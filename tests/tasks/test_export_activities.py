"""The event log's activities are unique per country, route and step, its XES header declares
what a mining tool groups by, and its instants are the ledger's, as the database formats them."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

import pytest
from audit_scenario import at, play, us_script
from sqlalchemy import select

from models.engine import Routings
from models.ledger import Ledger, Request, Step
from models.metrics import Filters
from tasks.export import (
    CSV_COLUMNS,
    HopRecord,
    export_log,
    iter_hops,
    timestamp,
    write_csv_log,
    write_xes,
)
from tests.samples import intake as sv

XES = "{http://www.xes-standard.org/}"


@pytest.fixture
def abroad(ledger: Ledger, routings: Routings) -> Ledger:
    """An El Salvador and a United States request both at `execution-abroad @ abroad`, the step
    and holder their mla-outgoing routes share."""
    forwarded = [(at(2, d), "H", "decide", {"outcome": "forwarded"}) for d in (3, 4, 5, 6)]
    play(ledger, routings, [(at(2, 2, 9), "H", "register", {"data": sv()}), *forwarded])
    play(ledger, routings, us_script())
    return ledger


def events_of(xes: str) -> list[dict[str, str]]:
    """Every event with its trace's attributes under `case:`, as PM4Py flattens a log."""
    out = []
    for trace in ET.fromstring(xes).iter(f"{XES}trace"):
        case = {f"case:{a.get('key')}": a.get("value") for a in trace if a.tag != f"{XES}event"}
        for event in trace.iter(f"{XES}event"):
            out.append({**case, **{a.get("key"): a.get("value") for a in event}})
    return out


def test_two_countries_sharing_a_step_and_holder_get_two_activities(abroad, tmp_path):
    path = tmp_path / "log.xes"
    with abroad.session() as session:
        export_log(session=session, filters=Filters(), fmt="xes", out=path)
    events = events_of(path.read_text(encoding="utf-8"))
    shared = {e["concept:name"] for e in events if e["step"] == "execution-abroad"}
    assert shared == {
        "SV mla-outgoing: execution-abroad @ abroad",
        "US mla-outgoing: execution-abroad @ abroad",
    }
    parts: dict[str, set[tuple[str, ...]]] = {}
    for e in events:
        key = (e["case:country"], e["case:route"], e["step"], e["holder"], e["org:resource"])
        parts.setdefault(e["concept:name"], set()).add(key)
    assert all(len(keys) == 1 for keys in parts.values())
    assert len(parts) == len({keys.pop() for keys in parts.values()}) == 8


def test_xes_header_declares_the_extensions_and_classifiers_of_the_events(abroad):
    with abroad.session() as session:
        stream = io.StringIO()
        write_xes(iter_hops(session=session, filters=Filters()), stream)
    log = ET.fromstring(stream.getvalue())
    assert {e.get("prefix") for e in log.findall(f"{XES}extension")} == {
        "concept",
        "time",
        "lifecycle",
        "org",
    }
    classifiers = {c.get("name"): c.get("keys") for c in log.findall(f"{XES}classifier")}
    assert classifiers == {
        "Activity": "concept:name",
        "Activity and lifecycle": "concept:name lifecycle:transition",
        "Holder": "org:resource",
    }
    # The IEEE 1849 schema's order: extensions, globals, classifiers, attributes, traces.
    tags = [child.tag.removeprefix(XES) for child in log]
    assert tags[:8] == ["extension"] * 4 + ["global"] * 2 + ["classifier"] * 2
    (event_globals,) = (g for g in log.findall(f"{XES}global") if g.get("scope") == "event")
    declared = {a.get("key") for a in event_globals}
    assert {k for keys in classifiers.values() for k in keys.split()} <= declared
    for event in log.iter(f"{XES}event"):
        assert declared <= {a.get("key") for a in event}


def test_csv_log_carries_country_route_step_and_holder_beside_the_activity(abroad):
    with abroad.session() as session:
        stream = io.StringIO()
        written = write_csv_log(iter_hops(session=session, filters=Filters()), stream)
    stream.seek(0)
    reader = csv.DictReader(stream)
    rows = list(reader)
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    assert {"country", "route", "step", "holder"} <= set(CSV_COLUMNS)
    assert len(rows) == written == 21  # SV: 5 hops, 1 open; US: 2 x 3 hops
    for r in rows:
        assert r["activity"] == f"{r['country']} {r['route']}: {r['step']} @ {r['holder']}"
        assert r["resource"] == r["holder"]
    assert ("US", "mla-outgoing", "review", "oia") in {
        (r["country"], r["route"], r["step"], r["holder"]) for r in rows
    }


def test_instants_are_the_ledgers_as_the_database_formats_them(abroad):
    with abroad.session() as session:
        hops = list(iter_hops(session=session, filters=Filters()))
        steps = session.execute(
            select(Request.reference, Step.hop, Step.opened_at, Step.closed_at)
            .join(Request, Request.id == Step.request_id)
            .order_by(Step.request_id, Step.hop)
        ).all()
    assert [(h[0], h[3], h[6], h[7]) for h in hops] == [
        (ref, hop, timestamp(opened), closed and timestamp(closed))
        for ref, hop, opened, closed in steps
    ]
    assert any(h[7] is None for h in hops)


def test_csv_cells_of_every_part_are_neutralised():
    hop = HopRecord(
        reference="SV-2026-000001",
        country="SV",
        route="=route",
        hop=1,
        step="+review",
        holder="@csj",
        opened_at="2026-02-02T15:00:00.000000+00:00",
        closed_at="2026-02-03T15:00:00.000000+00:00",
        outcome="-forwarded",
    )
    stream = io.StringIO()
    assert write_csv_log([hop, hop._replace(hop=2, closed_at=None)], stream) == 3
    stream.seek(0)
    rows = list(csv.DictReader(stream))
    assert [tuple(r.values()) for r in rows] == [
        ("SV-2026-000001", "SV =route: +review @ @csj", "start", "'@csj",
         "2026-02-02T15:00:00.000000+00:00", "1", "SV", "'=route", "'+review", "'@csj", ""),
        ("SV-2026-000001", "SV =route: +review @ @csj", "complete", "'@csj",
         "2026-02-03T15:00:00.000000+00:00", "1", "SV", "'=route", "'+review", "'@csj",
         "'-forwarded"),
        ("SV-2026-000001", "SV =route: +review @ @csj", "start", "'@csj",
         "2026-02-02T15:00:00.000000+00:00", "2", "SV", "'=route", "'+review", "'@csj", ""),
    ]  # fmt: skip


def test_xes_escapes_names_once_per_activity():
    hop = HopRecord("R<1>", "SV", 'a"b', 1, "x&y", "<h>", "2026-02-02T15:00:00.000000+00:00",
                    None, None)  # fmt: skip
    stream = io.StringIO()
    assert write_xes([hop, hop._replace(hop=2)], stream) == 2
    (first, second) = events_of(stream.getvalue())
    assert first["concept:name"] == second["concept:name"] == 'SV a"b: x&y @ <h>'
    assert (first["case:concept:name"], first["step"], first["holder"]) == ("R<1>", "x&y", "<h>")

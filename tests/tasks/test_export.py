"""The process-mining event log: XES and CSV with a start and a complete event per hop, whose
service times are the report's dwell times."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime

import numpy as np
import pytest
from audit_scenario import NOW, play, sv_script, us_script

from models import metrics
from models.engine import Routings
from models.ledger import Ledger
from models.metrics import Filters, load_audit
from tasks.export import export_log, iter_hops, write_csv_log, write_xes
from tasks.report import build_report

XES = "{http://www.xes-standard.org/}"


@pytest.fixture
def played(ledger: Ledger, routings: Routings) -> tuple[Ledger, Routings, dict[str, str]]:
    return ledger, routings, play(ledger, routings, sv_script() + us_script())


def xes_events(path) -> list[dict[str, str]]:
    """Every event of the log, flattened with its trace's name (how a mining tool reads it)."""
    out = []
    for trace in ET.parse(path).getroot().iter(f"{XES}trace"):
        attrs = {a.get("key"): a.get("value") for a in trace if a.tag != f"{XES}event"}
        for event in trace.iter(f"{XES}event"):
            row = {"case": attrs["concept:name"], "country": attrs["country"]}
            row.update({a.get("key"): a.get("value") for a in event})
            out.append(row)
    return out


def service_times(events: list[dict[str, str]]) -> list[tuple[str, str, datetime, datetime]]:
    """Start/complete pairs per case and activity, first in first out, as ProM and PM4Py pair
    lifecycle transitions: (case, activity, start, complete)."""
    waiting: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    pairs = []
    for e in events:
        key = (e["case"], e["concept:name"])
        at = datetime.fromisoformat(e["time:timestamp"])
        if e["lifecycle:transition"] == "start":
            waiting[key].append(at)
        else:
            pairs.append((*key, waiting[key].pop(0), at))
    return pairs


def test_xes_service_times_are_the_report_dwell_times(played, routings, tmp_path):
    ledger, _, refs = played
    path = tmp_path / "log.xes"
    with ledger.session() as session:
        written = export_log(session=session, filters=Filters(), fmt="xes", out=path)
        data = load_audit(session=session, routings=routings, filters=Filters(), now=NOW)
        report = build_report(session=session, routings=routings, filters=Filters(), now=NOW)
    events = xes_events(path)
    assert written == len(events) == 2 * len(data.hops) - int((~data.hops.closed).sum())
    recomputed = defaultdict(list)
    mined = []
    for case, activity, start, complete in service_times(events):
        holder = activity.split(" @ ")[1]
        calendar = routings.current[case[:2]].calendar(holder)
        bd = calendar.business_days_between(start, complete)
        cd = (calendar.local_date(complete) - calendar.local_date(start)).days
        mined.append((case, holder, bd, cd, int((complete - start).total_seconds())))
        recomputed[(case[:2], holder)].append(bd)
    expected = [
        (r["reference"], r["authority"], r["business_days"], r["calendar_days"], r["elapsed_s"])
        for r in metrics.hop_dwell(data=data)
    ]
    assert sorted(mined) == sorted(expected)
    assert len(mined) == 15
    for row in report["tables"]["dwell_by_authority"]:
        days = recomputed[(row["country"], row["authority"])]
        assert len(days) == row["hops"]
        if days:
            assert np.median(days) == row["bd_median"]
            assert np.percentile(days, 90) == pytest.approx(row["bd_p90"])
            assert max(days) == row["bd_max"]
    assert refs["A"] in {e["case"] for e in events}


def test_an_open_hop_has_a_start_and_no_complete(played, tmp_path):
    ledger, _, refs = played
    path = tmp_path / "log.xes"
    with ledger.session() as session:
        export_log(session=session, filters=Filters(countries=("SV",)), fmt="xes", out=path)
    events = xes_events(path)
    assert {e["country"] for e in events} == {"SV"}
    transmit = [e for e in events if e["case"] == refs["A"] and e["hop"] == "3"]
    assert [
        (e["concept:name"], e["lifecycle:transition"], e["org:resource"]) for e in transmit
    ] == [("SV mla-outgoing: transmit @ mjsp", "start", "mjsp")]
    refused = [e for e in events if e["case"] == refs["D"] and e.get("outcome")]
    assert [e["outcome"] for e in refused] == ["forwarded", "refused"]


def test_csv_log_carries_the_same_events_as_the_xes(played, tmp_path):
    ledger, _, _ = played
    with ledger.session() as session:
        hops = list(iter_hops(session=session, filters=Filters()))
    xes, text = io.StringIO(), io.StringIO()
    assert write_xes(hops, xes) == write_csv_log(hops, text) == 32
    text.seek(0)
    rows = list(csv.DictReader(text))
    (tmp_path / "log.xes").write_text(xes.getvalue(), encoding="utf-8")
    events = xes_events(tmp_path / "log.xes")
    assert [
        (r["case_id"], r["activity"], r["lifecycle"], r["resource"], r["timestamp"])
        for r in rows
    ] == [
        (e["case"], e["concept:name"], e["lifecycle:transition"], e["org:resource"],
         e["time:timestamp"])
        for e in events
    ]  # fmt: skip


def test_export_log_command_writes_a_file_a_mining_tool_can_read(
    played, database_url, monkeypatch, tmp_path, capsys
):
    from app.cli import main

    monkeypatch.setenv("ROGATORY_DATABASE_URL", database_url)
    out = tmp_path / "hops.csv"
    assert main(["export-log", "--format", "csv", "--out", str(out), "--country", "US"]) == 0
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["country"] for r in rows} == {"US"}
    assert len(rows) == 12  # two cases, three hops, a start and a complete each
    assert f"wrote {out}: 12 events (csv)" in capsys.readouterr().out

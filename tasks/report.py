"""The audit report: every metric and the prescription-risk register as one document.

`build_report` reads the ledger once and returns a plain dict (its JSON form is described by
docs/report-schema.json). `render_html` turns it into one self-contained page an auditor can
mail: inline CSS and SVG charts drawn here, no script, no external asset. `write_csv` writes
one file per table. Files are written as tasks/export.py writes every output: atomically, never
through a symbolic link, CSV cells neutralised.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from html import escape
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from models import metrics
from models.metrics import AuditData, Filters, Row, beside, load_audit
from models.risk import SAMPLES, risk_register
from tasks.export import neutralise, output_file, output_folder

SCHEMA_ID = "rogatory-report"
SCHEMA_VERSION = 2
TABLES = (
    "dwell_by_authority",
    "dwell_by_step",
    "dwell_histogram",
    "stops",
    "breaches_by_authority",
    "breaches_by_step",
    "breaches_by_month",
    "overdue_now",
    "foreign_by_counterpart",
    "handoffs",
    "rework_by_authority",
    "rework_by_cause",
    "refusals",
    "execution",
    "late_entries",
    "delay_attribution",
    "statistics",
    "uncac_usage",
    "chains",
    "risk_register",
)
LIKELY = 0.5
"""A case whose risk is at least this will "probably prescribe"."""
KIND_WORDS = {
    "mla": "MLA",
    "extradition": "extradition",
    "asset_tracing": "asset tracing",
    "asset_freezing": "asset freezing",
    "asset_seizure": "asset seizure",
    "confiscation": "confiscation",
    "asset_return": "asset return",
}


# -- building ----------------------------------------------------------------------------------


def build_report(
    *,
    session: Session,
    routings: Any,
    filters: Filters,
    now: datetime,
    late_after: timedelta = timedelta(hours=24),
    samples: int = SAMPLES,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """Read the ledger for `filters` and compute the whole report as of `now`."""
    data = load_audit(
        session=session, routings=routings, filters=filters, now=now, late_after=late_after
    )
    # The risk register (Monte Carlo) and the other tables are independent: on a second core
    # the register is computed while this process computes the rest.
    register = beside(partial(risk_register, data=data, session=session, samples=samples))
    tables = metric_tables(data=data)
    return document(data=data, tables=tables, register=register(), generated_at=generated_at)


def assemble(
    *, data: AuditData, register: list[Row], generated_at: datetime | None = None
) -> dict[str, Any]:
    """The report document from loaded data and its risk register."""
    return document(
        data=data, tables=metric_tables(data=data), register=register, generated_at=generated_at
    )


def metric_tables(*, data: AuditData) -> dict[str, list[Row]]:
    """Every table of the report but the risk register."""
    by_step = metrics.dwell_by_step(data=data)
    tables: dict[str, list[Row]] = {
        "dwell_by_authority": metrics.dwell_by_authority(data=data),
        "dwell_by_step": by_step,
        "dwell_histogram": metrics.dwell_histogram(data=data),
        "stops": metrics.stops_by_authority(data=data),
        "breaches_by_authority": metrics.breaches_by_authority(data=data),
        "breaches_by_step": metrics.breaches_by_step(data=data),
        "breaches_by_month": metrics.breaches_by_month(data=data),
        "overdue_now": metrics.overdue_now(data=data),
        "foreign_by_counterpart": metrics.foreign_by_counterpart(data=data),
        "handoffs": metrics.handoffs(data=data),
        "rework_by_authority": metrics.rework_by_authority(data=data),
        "rework_by_cause": metrics.rework_by_cause(data=data),
        "refusals": metrics.refusals(data=data),
        "execution": metrics.execution(data=data),
        "late_entries": metrics.late_entries(data=data),
        "delay_attribution": metrics.delay_attribution(data=data),
        "statistics": metrics.statistics(data=data),
        "uncac_usage": metrics.uncac_usage(data=data),
        "chains": metrics.chains(data=data, by_step=by_step),
    }
    return tables


def document(
    *,
    data: AuditData,
    tables: dict[str, list[Row]],
    register: list[Row],
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """The report as one document: metadata, summary, headlines and the tables."""
    tables = {**tables, "risk_register": register}
    summary = metrics.summary(data=data)
    summary["already_prescribed"] = sum(1 for r in register if r["prescribed"])
    summary["likely_to_prescribe"] = len(_likely(register))
    lines = headlines(summary=summary, tables=tables)
    left_out = [
        {k: row[k] for k in ("reference", "country", "routing_version", "problem")}
        for row in data.left_out
    ]
    if left_out:
        lines.insert(
            0,
            f"{len(left_out)} case(s) are left out of this report: the routing version they "
            "are pinned to cannot be read (see `left_out` and `rogatory problems`).",
        )
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(),
        "as_of": data.now.isoformat(),
        "scope": data.filters.describe(),
        "filters": data.filters.as_json(),
        "summary": summary,
        "headlines": lines,
        "tables": tables,
        "left_out": left_out,
    }


def hide_cases(report: dict[str, Any], references: set[str]) -> dict[str, Any]:
    """The report without a row naming any of `references` (confidential cases the reader may
    see only in aggregates); the headlines are worded again from what is left."""
    tables = {
        name: [r for r in rows if r.get("reference") not in references]
        for name, rows in report["tables"].items()
    }
    left_out = [r for r in report["left_out"] if r["reference"] not in references]
    lines = headlines(summary=report["summary"], tables=tables)
    if left_out:
        lines.insert(0, report["headlines"][0])
    return {**report, "tables": tables, "left_out": left_out, "headlines": lines}


# -- headlines ----------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{round(100 * x)}%"


ABROAD = " (outside national control)"
"""Follows the name of the foreign state wherever it stands among national authorities."""


def _who(row: Row) -> str:
    abroad = ABROAD if row.get("outside_national_control") else ""
    return f"{row['authority_name']}{abroad} ({row['country']})"


def _abroad_named(row: Row) -> Row:
    if row.get("outside_national_control"):
        return {**row, "authority_name": row["authority_name"] + ABROAD}
    return row


def _scope_words(row: Row) -> str:
    if row["scope"] == "all":
        return "all cases"
    return f"{row['direction']} {KIND_WORDS.get(row['kind'], row['kind'])}"


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _past_key(row: Row) -> int:
    days: int = row["days_to_prescription"]
    return days


def _days(x: Any) -> str:
    return "1 business day" if x == 1 else f"{x:g} business days"


def _likely(register: list[Row]) -> list[Row]:
    """Cases likely to prescribe before their chain finishes; never those already prescribed."""
    return [
        r for r in register if not r["prescribed"] and r["risk"] is not None and r["risk"] >= LIKELY
    ]


def headlines(*, summary: Row, tables: dict[str, list[Row]]) -> list[str]:
    """Plain-language findings, most important first."""
    out: list[str] = []
    attribution = tables["delay_attribution"]
    scopes: dict[str, list[Row]] = {}
    for row in attribution:
        scopes.setdefault(row["scope"], []).append(row)
    specific = {k: v for k, v in scopes.items() if k != "all"}
    chosen = []
    if len(specific) > 1 and "all" in scopes:
        chosen.append(scopes["all"])
    chosen += sorted(specific.values(), key=lambda rs: -sum(r["delay_business_days"] for r in rs))
    for rows in chosen[:3]:
        top = rows[0]
        total = sum(r["delay_business_days"] for r in rows)
        out.append(
            f"{_who(top)} accounts for {_pct(top['share'])} of total delay in "
            f"{_scope_words(top)} ({top['delay_business_days']:,.0f} of {total:,.0f} business "
            "days late, in closed cases)."
        )
    register = tables["risk_register"]
    past = [r for r in register if r["prescribed"]]
    if past:
        out.append(
            f"{_count(len(past), 'open case has', 'open cases have')} already prescribed; the "
            f"oldest is {min(past, key=_past_key)['reference']}."
        )
    likely = _likely(register)
    if likely:
        worst = likely[0]
        out.append(
            f"{_count(len(likely), 'open case', 'open cases')} will probably prescribe before "
            f"the chain finishes; the most urgent is {worst['reference']} "
            f"(prescription {worst['prescription_date']}, risk {_pct(worst['risk'])})."
        )
    elif register:
        other = "other " if past else ""
        out.append(f"No {other}open case is likely to prescribe before its chain finishes.")
    overdue = tables["overdue_now"]
    if overdue:
        holders: dict[str, int] = {}
        for row in overdue:
            key = _who(row)
            holders[key] = holders.get(key, 0) + 1
        most = max(holders, key=lambda k: holders[k])
        if len(overdue) == 1:
            out.append(f"1 hop is overdue now, at {most}.")
        else:
            out.append(
                f"{len(overdue):,} hops are overdue now; {most} holds {holders[most]:,} of them."
            )
    elif summary["open_hops"]:
        out.append("No hop is overdue now.")
    breaches = [r for r in tables["breaches_by_authority"] if r["rank"] == 1]
    if breaches:
        worst = breaches[0]
        if worst["breached"]:
            out.append(
                f"{_who(worst)} missed its deadline on {_pct(worst['breach_rate'])} of "
                f"{worst['closed_hops']:,} hops (median {_days(worst['days_late_median'])} late)."
            )
    dwell = [r for r in tables["dwell_by_authority"] if r["hops"]]
    if dwell:
        slow = max(dwell, key=lambda r: (r["bd_median"], r["hops"]))
        out.append(
            f"Hops at {_who(slow)} take a median of {_days(slow['bd_median'])} "
            f"({slow['cd_median']:g} calendar days); 90% finish within {slow['bd_p90']:g}."
        )
    if summary["cases"] and summary["returned_cases"]:
        causes = tables["rework_by_cause"]
        cause = causes[0]["cause"].replace("_", " ") if causes else "unspecified"
        out.append(
            f"{summary['returned_cases']:,} of {summary['cases']:,} cases "
            f"({_pct(summary['returned_cases'] / summary['cases'])}) were sent back at least "
            f"once; the main cause is {cause}."
        )
    if summary["prohibited_refusals"]:
        n = summary["prohibited_refusals"]
        out.append(
            f"{n} refusal{'s' if n != 1 else ''} rested on grounds UNCAC forbids "
            "(bank secrecy, art. 46(8); fiscal offence, art. 46(22))."
        )
    late = [r for r in tables["late_entries"] if r["late_decisions"] and r["rank"] is not None]
    if late:
        top = late[0]
        out.append(
            f"{_who(top)} entered {_pct(top['late_share'])} of its decisions more than "
            f"{summary['late_after_hours']:g} hours after they happened: a sign of a paper "
            "register."
        )
    if summary["closed_cases"]:
        out.append(
            f"{_pct(summary['execution_rate'])} of {summary['closed_cases']:,} closed cases were "
            f"executed, {_pct(summary['partial_rate'])} partially."
        )
    if summary["cases"]:
        out.append(
            f"UNCAC was the legal basis of {summary['uncac_requests']:,} of {summary['cases']:,} "
            f"requests ({_pct(summary['uncac_share'])})."
        )
    else:
        out.append("No case matches this report's filters.")
    return out


# -- JSON and CSV ------------------------------------------------------------------------------


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, allow_nan=False)


def _cell(value: Any) -> Any:
    """A table value as one CSV cell: lists joined, None empty, formulas neutralised."""
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            value = " | ".join(
                f"{v.get('on')} {v.get('event')}: {v.get('date')} ({v.get('why')})" for v in value
            )
        else:
            value = "; ".join(str(v) for v in value)
    elif value is None:
        value = ""
    return neutralise(value)


def write_csv(report: dict[str, Any], folder: Path) -> list[Path]:
    """One CSV per table, plus summary.csv and headlines.csv; returns the files written."""
    output_folder(folder)
    written = []
    for name, rows in report["tables"].items():
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        path = folder / f"{name}.csv"
        with output_file(path) as f:
            writer = csv.writer(f)
            writer.writerow(list(columns))
            for row in rows:
                writer.writerow([_cell(row.get(c)) for c in columns])
        written.append(path)
    path = folder / "summary.csv"
    with output_file(path) as f:
        writer = csv.writer(f)
        writer.writerow(["measure", "value"])
        writer.writerows((k, _cell(v)) for k, v in report["summary"].items())
    written.append(path)
    path = folder / "headlines.csv"
    with output_file(path) as f:
        writer = csv.writer(f)
        writer.writerow(["headline"])
        writer.writerows([_cell(h)] for h in report["headlines"])
    written.append(path)
    return written


def write_report(report: dict[str, Any], *, fmt: str, out: Path) -> list[Path]:
    """Write the report in `fmt` (html, json or csv) into folder `out`."""
    output_folder(out)
    if fmt == "csv":
        return write_csv(report, out)
    path = out / f"report.{fmt}"
    text = render_json(report) if fmt == "json" else render_html(report)
    with output_file(path) as f:
        f.write(text)
    return [path]


# -- SVG charts ---------------------------------------------------------------------------------

INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
BLUE = "#2f6fb0"
LIGHT_BLUE = "#9cc3e6"
RED = "#c0392b"
AMBER = "#d68910"
GREEN = "#2e8b57"
FONT = "font-family='Helvetica, Arial, sans-serif'"


def _t(text: Any) -> str:
    return escape(str(text), quote=True)


def _fmt(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def _ticks(top: float, count: int = 5) -> list[float]:
    if top <= 0:
        return [0.0]
    raw = top / count
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks, value = [], 0.0
    while value <= top + 1e-9:
        ticks.append(value)
        value += step
    return ticks


def _size(width: float) -> str:
    """Drawn at its own width, narrower on a narrow screen: a small chart never balloons."""
    return f"width='{width:.0f}' style='max-width:100%;height:auto'"


def _short(text: str, width: int = 34) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def svg_box_plot(rows: Sequence[Row], histogram: Sequence[Row], *, limit: int = 15) -> str:
    """Dwell time per authority: box (quartiles), median line, whiskers (min to max), P90 tick,
    and a strip of the observed values (one dot per distinct day, area by number of hops)."""
    shown = [r for r in rows if r["hops"]][:limit]
    if not shown:
        return ""
    label_w, plot_w, row_h, top_pad = 260, 560, 34, 28
    height = top_pad + row_h * len(shown) + 30
    top_value = max(float(r["bd_max"]) for r in shown) or 1.0
    ticks = _ticks(top_value)
    top_value = max(top_value, ticks[-1])

    def x(v: float) -> float:
        return label_w + plot_w * v / top_value

    parts = [
        f"<svg role='img' aria-label='Dwell time per authority' viewBox='0 0 "
        f"{label_w + plot_w + 20} {height}' {_size(label_w + plot_w + 20)} {FONT} "
        "font-size='12'>",
        "<title>Dwell time per authority, business days</title>",
    ]
    for t in ticks:
        parts.append(
            f"<line x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{top_pad - 6}' y2='{height - 24}' "
            f"stroke='{GRID}'/><text x='{x(t):.1f}' y='{height - 8}' text-anchor='middle' "
            f"fill='{MUTED}'>{_fmt(t)}</text>"
        )
    parts.append(
        f"<text x='{label_w}' y='14' fill='{MUTED}'>business days each hop was held</text>"
    )
    dots: dict[tuple[str, str], list[Row]] = {}
    for h in histogram:
        dots.setdefault((h["country"], h["authority"]), []).append(h)
    for n, r in enumerate(shown):
        cy = top_pad + row_h * n + row_h / 2
        parts.append(
            f"<text x='{label_w - 8}' y='{cy + 4:.1f}' text-anchor='end' fill='{INK}'>"
            f"{_t(_short(r['authority_name']))} ({_t(r['country'])})</text>"
        )
        lo, hi = x(r["bd_min"]), x(r["bd_max"])
        q1, q3, med, p90 = x(r["bd_p25"]), x(r["bd_p75"]), x(r["bd_median"]), x(r["bd_p90"])
        mine = dots.get((r["country"], r["authority"]), [])
        most = max((d["hops"] for d in mine), default=1)
        for d in mine:
            radius = 1.5 + 3.5 * (d["hops"] / most) ** 0.5
            parts.append(
                f"<circle cx='{x(d['business_days']):.1f}' cy='{cy + 9:.1f}' r='{radius:.1f}' "
                f"fill='{BLUE}' fill-opacity='0.35'><title>{d['business_days']} business days: "
                f"{d['hops']} hops</title></circle>"
            )
        parts.append(
            f"<line x1='{lo:.1f}' x2='{hi:.1f}' y1='{cy - 3:.1f}' y2='{cy - 3:.1f}' "
            f"stroke='{MUTED}'/>"
            f"<rect x='{q1:.1f}' y='{cy - 11:.1f}' width='{max(q3 - q1, 1):.1f}' height='16' "
            f"fill='{LIGHT_BLUE}' stroke='{BLUE}'><title>{_t(r['authority_name'])}: median "
            f"{r['bd_median']}, quartiles {r['bd_p25']} to {r['bd_p75']}, P90 {r['bd_p90']}, "
            f"max {r['bd_max']} business days over {r['hops']} hops</title></rect>"
            f"<line x1='{med:.1f}' x2='{med:.1f}' y1='{cy - 11:.1f}' y2='{cy + 5:.1f}' "
            f"stroke='{INK}' stroke-width='2'/>"
            f"<line x1='{p90:.1f}' x2='{p90:.1f}' y1='{cy - 8:.1f}' y2='{cy + 2:.1f}' "
            f"stroke='{RED}' stroke-width='2'/>"
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_pareto(rows: Sequence[Row], *, limit: int = 12) -> str:
    """Delay attribution: bars of each authority's share, largest first, and the cumulative
    share as a line."""
    shown = list(rows)[:limit]
    if not shown:
        return ""
    left, bar_w, gap, plot_h, top_pad = 50, 56, 14, 220, 20
    width = left + (bar_w + gap) * len(shown) + 140
    height = top_pad + plot_h + 150

    def y(share: float) -> float:
        return top_pad + plot_h * (1 - share)

    parts = [
        f"<svg role='img' aria-label='Delay attribution' viewBox='0 0 {width} {height}' "
        f"{_size(width)} {FONT} font-size='12'><title>Share of total delay per authority</title>"
    ]
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f"<line x1='{left}' x2='{width - 30}' y1='{y(t):.1f}' y2='{y(t):.1f}' "
            f"stroke='{GRID}'/><text x='{left - 6}' y='{y(t) + 4:.1f}' text-anchor='end' "
            f"fill='{MUTED}'>{round(t * 100)}%</text>"
        )
    cumulative, points = 0.0, []
    for n, r in enumerate(shown):
        bx = left + gap + n * (bar_w + gap)
        cumulative += r["share"]
        points.append(f"{bx + bar_w / 2:.1f},{y(cumulative):.1f}")
        parts.append(
            f"<rect x='{bx}' y='{y(r['share']):.1f}' width='{bar_w}' "
            f"height='{plot_h * r['share']:.1f}' fill='{RED if n == 0 else AMBER}'>"
            f"<title>{_t(r['authority_name'])}: {r['delay_business_days']:g} business days, "
            f"{_pct(r['share'])}</title></rect>"
            f"<text x='{bx + bar_w / 2}' y='{y(r['share']) - 4:.1f}' text-anchor='middle' "
            f"fill='{INK}'>{_pct(r['share'])}</text>"
            f"<text transform='translate({bx + bar_w / 2},{top_pad + plot_h + 10}) rotate(35)' "
            f"fill='{INK}'>{_t(_short(r['authority_name'], 20))} ({_t(r['country'])})</text>"
        )
    parts.append(
        f"<polyline points='{' '.join(points)}' fill='none' stroke='{INK}' stroke-width='2'/>"
    )
    parts.append("</svg>")
    return "".join(parts)


def svg_breach_trend(rows: Sequence[Row], *, months: int = 36) -> str:
    """Share of hops closed past their deadline, by month of closing."""
    shown = list(rows)[-months:]
    if not shown:
        return ""
    left, plot_w, plot_h, top_pad = 50, 640, 200, 24
    step = plot_w / len(shown)
    height = top_pad + plot_h + 50

    def y(rate: float) -> float:
        return top_pad + plot_h * (1 - rate)

    parts = [
        f"<svg role='img' aria-label='Breach trend by month' viewBox='0 0 {left + plot_w + 20} "
        f"{height}' {_size(left + plot_w + 20)} {FONT} font-size='11'>"
        "<title>Hops closed late, by month</title>"
        f"<text x='{left}' y='10' fill='{MUTED}'>share of hops closed after their deadline, "
        "by month of closing</text>"
    ]
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f"<line x1='{left}' x2='{left + plot_w}' y1='{y(t):.1f}' y2='{y(t):.1f}' "
            f"stroke='{GRID}'/><text x='{left - 6}' y='{y(t) + 4:.1f}' text-anchor='end' "
            f"fill='{MUTED}'>{round(t * 100)}%</text>"
        )
    every = max(1, len(shown) // 12)
    for n, r in enumerate(shown):
        rate = r["breach_rate"] or 0.0
        bx = left + n * step + step * 0.15
        parts.append(
            f"<rect x='{bx:.1f}' y='{y(rate):.1f}' width='{step * 0.7:.1f}' "
            f"height='{plot_h * rate:.1f}' fill='{RED if rate > 0.5 else AMBER}'>"
            f"<title>{r['month']}: {r['breached']} of {r['closed_hops']} hops late "
            f"({_pct(rate)})</title></rect>"
        )
        if n % every == 0:
            parts.append(
                f"<text x='{bx + step * 0.35:.1f}' y='{top_pad + plot_h + 16}' "
                f"text-anchor='middle' fill='{MUTED}'>{_t(r['month'])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _over_sla(row: Row) -> bool | None:
    sla = row["sla"]
    if sla.endswith("bd") and row["bd_median"] is not None:
        return bool(row["bd_median"] > int(sla[:-2]))
    if sla.endswith("d") and row["cd_median"] is not None:
        return bool(row["cd_median"] > int(sla[:-1]))
    if sla.endswith("h") and row["cd_median"] is not None:
        return bool(row["cd_median"] * 24 > int(sla[:-1]))
    return None


def svg_chain(steps: Sequence[Row]) -> str:
    """One route's chain of authorities, each with its SLA and observed median time."""
    if not steps:
        return ""
    box_w, box_h, gap, per_row = 150, 78, 34, 5
    rows_needed = (len(steps) + per_row - 1) // per_row
    width = per_row * box_w + (per_row - 1) * gap + 20
    height = rows_needed * (box_h + 30) + 10
    parts = [
        f"<svg role='img' aria-label='Chain of {_t(steps[0]['route'])}' viewBox='0 0 {width} "
        f"{height}' {_size(width)} {FONT} font-size='11'>"
        f"<title>{_t(steps[0]['route_name'])} ({_t(steps[0]['country'])})</title>"
    ]
    for n, s in enumerate(steps):
        col, line = n % per_row, n // per_row
        bx, by = 10 + col * (box_w + gap), 10 + line * (box_h + 30)
        late = _over_sla(s)
        stroke = RED if late else (GREEN if late is False else MUTED)
        dash = " stroke-dasharray='4 3'" if s["conditional"] else ""
        median = (
            f"median {_fmt(s['bd_median'])} bd / {_fmt(s['cd_median'])} d"
            if s["bd_median"] is not None
            else "no closed hop yet"
        )
        parts.append(
            f"<rect x='{bx}' y='{by}' width='{box_w}' height='{box_h}' rx='6' fill='white' "
            f"stroke='{stroke}' stroke-width='2'{dash}><title>{_t(s['step'])} at "
            f"{_t(s['authority_name'])}: SLA {_t(s['sla'])}, {_t(median)}</title></rect>"
            f"<text x='{bx + 8}' y='{by + 16}' font-weight='bold' fill='{INK}'>"
            f"{s['position']}. {_t(_short(s['step'], 20))}</text>"
            f"<text x='{bx + 8}' y='{by + 32}' fill='{INK}'>"
            f"{_t(_short(s['authority_name'], 24))}</text>"
            f"<text x='{bx + 8}' y='{by + 50}' fill='{MUTED}'>SLA {_t(s['sla'])}, "
            f"{s['hops']} hops</text>"
            f"<text x='{bx + 8}' y='{by + 66}' fill='{stroke}'>{_t(median)}</text>"
        )
        if n + 1 < len(steps) and col + 1 < per_row:  # a new line continues the numbering
            ax = bx + box_w
            parts.append(
                f"<line x1='{ax + 2}' x2='{ax + gap - 4}' y1='{by + box_h / 2}' "
                f"y2='{by + box_h / 2}' stroke='{INK}' stroke-width='1.5'/>"
                f"<polygon points='{ax + gap - 4},{by + box_h / 2 - 4} {ax + gap},"
                f"{by + box_h / 2} {ax + gap - 4},{by + box_h / 2 + 4}' fill='{INK}'/>"
            )
    parts.append("</svg>")
    return "".join(parts)


# -- HTML ----------------------------------------------------------------------------------------

CSS = """
body{font-family:Helvetica,Arial,sans-serif;color:#1f2933;max-width:1100px;margin:2em auto;
padding:0 1em;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid
#e4e7eb;padding-bottom:.2em}h3{font-size:1.05em}
.meta{color:#7b8794}.headlines{background:#fdf6e3;border-left:4px solid #d68910;padding:.6em 1.2em}
.headlines li{margin:.3em 0}table{border-collapse:collapse;width:100%;font-size:.85em;margin:.6em 0}
th,td{border-bottom:1px solid #e4e7eb;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f5f7fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.high{color:#c0392b;font-weight:bold}.mid{color:#d68910}.low{color:#2e8b57}
.note{color:#7b8794;font-size:.85em}.figures{display:flex;flex-wrap:wrap;gap:.6em}
.figure{border:1px solid #e4e7eb;border-radius:6px;padding:.4em .8em;min-width:9em}
.figure b{display:block;font-size:1.3em}
.how{color:#3e4c59;font-size:.9em;margin-top:-.3em}nav ol{columns:2;font-size:.9em}
.toc{font-weight:bold;margin-bottom:0}
"""


PERCENT_COLUMNS = {
    "share",
    "risk",
    "breach_rate",
    "rework_rate",
    "late_share",
    "execution_rate",
    "partial_rate",
    "executed_any_rate",
    "uncac_share",
    "share_of_dwell",
    "over_sla_share",
}


def _value(value: Any, key: str = "") -> str:
    if value is None:
        return "–"
    if key in PERCENT_COLUMNS and isinstance(value, int | float):
        return f"{100 * value:.1f}%" if 0 < value < 0.1 else _pct(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def _table(
    rows: Sequence[Row],
    columns: Sequence[tuple[str, str]],
    *,
    limit: int = 200,
    name: str = "",
    classes: dict[str, Any] | None = None,
    shown: dict[str, Callable[[Row], str]] | None = None,
) -> str:
    """An HTML table of the first `limit` rows; `shown` words a column from its row."""
    if not rows:
        return "<p class='note'>Nothing to show.</p>"
    head = "".join(f"<th>{_t(title)}</th>" for _, title in columns)
    body = []
    for row in rows[:limit]:
        cells = []
        for key, _ in columns:
            value = shown[key](row) if shown and key in shown else row.get(key)
            css = "n" if isinstance(value, int | float) and not isinstance(value, bool) else ""
            if classes and key in classes:
                css += " " + classes[key](value)
            cells.append(f"<td class='{css.strip()}'>{_t(_value(value, key))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if len(rows) > limit:
        more = (
            f"<p class='note'>Showing {limit} of {len(rows)} rows; the JSON and CSV outputs "
            f"hold them all ({_t(name)}).</p>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _risk_class(value: Any) -> str:
    if value is None:
        return ""
    return "high" if value >= LIKELY else ("mid" if value >= 0.2 else "low")


AUTHORITY = [("authority_name", "Authority"), ("country", "Country")]


def _when(local: str, zone: str) -> str:
    """A local instant as the holder reads it: date, time, zone name and UTC offset."""
    instant = datetime.fromisoformat(local)
    offset = instant.strftime("%z")
    return f"{instant:%Y-%m-%d %H:%M} {zone} (UTC{offset[:3]}:{offset[3:]})"


def _utc(text: str) -> str:
    return f"{datetime.fromisoformat(text).astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _section(anchor: str, title: str, how: str, *body: str) -> tuple[str, str, str]:
    """A section of the page: its anchor, its title, and its HTML (the heading, one sentence
    saying how it is computed, then the body)."""
    html = "\n".join(
        [f"<h2 id='{anchor}'>{_t(title)}</h2>", f"<p class='how'>{_t(how)}</p>", *body]
    )
    return anchor, title, html


def _contents(sections: Sequence[tuple[str, str, str]]) -> str:
    links = "".join(f"<li><a href='#{a}'>{_t(title)}</a></li>" for a, title, _ in sections)
    return f"<nav aria-label='Contents'><p class='toc'>Contents</p><ol>{links}</ol></nav>"


def _ranked(
    rows: Sequence[Row],
    columns: Sequence[tuple[str, str]],
    *,
    name: str,
    least: str,
    classes: dict[str, Any] | None = None,
) -> str:
    """A table ranked by a rate, and apart from it the rows with too few observations to rank
    (`least` words the threshold, e.g. "20 closed hops")."""
    ranked = [r for r in rows if r["rank"] is not None]
    few = [r for r in rows if r["rank"] is None]
    if ranked:
        out = _table(ranked, [("rank", "Rank"), *columns], name=name, classes=classes)
    elif few:
        out = f"<p class='note'>No row has at least {_t(least)} yet: none is ranked.</p>"
    else:
        out = _table([], columns)
    if few:
        out += (
            f"<p class='note'><b>Too few to rank</b> (fewer than {_t(least)}): shown apart, in "
            "order of country and name, because a rate over so few says little.</p>"
            + _table(few, columns, name=name, classes=classes)
        )
    return out


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    t = {
        name: [_abroad_named(r) for r in rows]
        if rows and "outside_national_control" in rows[0]
        else rows
        for name, rows in report["tables"].items()
    }
    s = report["summary"]
    least = s["min_to_rank"]
    overall = [r for r in t["delay_attribution"] if r["scope"] == "all"]
    figures = [
        ("Cases", s["cases"]),
        ("Open", s["open_cases"]),
        ("Hops overdue now", s["overdue_now"]),
        ("Hops closed late", _pct(s["breach_rate"]) if s["breach_rate"] is not None else "–"),
        ("Executed", _pct(s["execution_rate"]) if s["execution_rate"] is not None else "–"),
        ("Already prescribed", s["already_prescribed"]),
        ("Likely to prescribe", s["likely_to_prescribe"]),
        ("UNCAC as legal basis", _pct(s["uncac_share"]) if s["uncac_share"] is not None else "–"),
    ]
    chains: dict[tuple[str, str], list[Row]] = {}
    for row in t["chains"]:
        chains.setdefault((row["country"], row["route"]), []).append(row)
    used = [steps for steps in chains.values() if any(x["hops"] for x in steps)]
    prescribed = [r for r in t["risk_register"] if r["prescribed"]]
    for_days_past = [{**r, "days_past": -r["days_to_prescription"]} for r in prescribed]
    at_risk = [r for r in t["risk_register"] if not r["prescribed"]]
    execution = [{**r, "kind": KIND_WORDS.get(r["kind"], r["kind"])} for r in t["execution"]]
    sections = [
        _section(
            "delay",
            "Where delay builds up",
            "Each closed case's lateness (the business days, on each holder's calendar, its hops "
            "ran past their deadlines, less the days early hops saved) is split over the hops that "
            "ran late in proportion to how late each ran, and totalled per authority; open cases "
            "are not counted.",
            svg_pareto(overall),
            _table(
                t["delay_attribution"],
                [
                    ("scope", "Scope"),
                    ("rank", "Rank"),
                    *AUTHORITY,
                    ("delay_business_days", "Business days late"),
                    ("share", "Share"),
                    ("hops_late", "Late hops"),
                ],
                limit=30,
                name="delay_attribution",
            ),
        ),
        _section(
            "dwell",
            "How long each authority holds a request",
            "Closed hops only, from the instant a hop opened to its decision: business days on "
            "the holder's calendar (weekends, public holidays and closures skipped, days with the "
            "clock stopped included) and calendar days between local dates.",
            "<p class='note'>Box: middle half of closed hops; black line: median; red tick: 90th "
            "percentile; whiskers: shortest to longest; dots: hops per number of days.</p>",
            svg_box_plot(t["dwell_by_authority"], t["dwell_histogram"]),
            _table(
                t["dwell_by_authority"],
                [
                    *AUTHORITY,
                    ("hops", "Closed hops"),
                    ("open_hops", "Open"),
                    ("bd_median", "Median bd"),
                    ("bd_p90", "P90 bd"),
                    ("bd_max", "Max bd"),
                    ("cd_median", "Median days"),
                    ("cd_p90", "P90 days"),
                    ("cd_max", "Max days"),
                ],
                name="dwell_by_authority",
            ),
        ),
        _section(
            "abroad",
            "Hops held abroad, by foreign state (outside national control)",
            "Hops held by the requested or requesting state (an authority of kind 'foreign' in "
            "the routing file), grouped by the case's counterpart: calendar days from the hop's "
            "opening to its decision, and the share decided after the due instant of its SLA; "
            "no national authority controls this time, so it is not any national authority's "
            f"delay, and a state is ranked only with at least {least} closed hops.",
            _ranked(
                t["foreign_by_counterpart"],
                [
                    ("counterpart", "Foreign state"),
                    ("closed_hops", "Closed hops"),
                    ("cd_median", "Median days"),
                    ("cd_p90", "P90 days"),
                    ("cd_max", "Max days"),
                    ("over_sla", "Over SLA"),
                    ("over_sla_share", "Share over SLA"),
                    ("open_hops", "Open"),
                    ("overdue_now", "Overdue now"),
                ],
                name="foreign_by_counterpart",
                least=f"{least} closed hops",
            ),
        ),
        _section(
            "chains",
            "The chains, with their median times",
            "Each route in use as configured in the routing its most recently registered case "
            "pinned, with the median of the closed hops its own holder took at each step "
            "(business days on the holder's calendar, and calendar days): green within the SLA, "
            "red over it, dashed a step that applies to some requests only.",
            *(
                f"<h3>{_t(steps[0]['route_name'])} ({_t(steps[0]['country'])})</h3>"
                + svg_chain(steps)
                for steps in used
            ),
        ),
        _section(
            "deadlines",
            "Deadlines",
            "A hop is late when it is decided after its due instant (its SLA added to its "
            "opening on the holder's calendar), and counts the business days late on that "
            "calendar; an authority's share of hops closed late is ranked only with at least "
            f"{least} closed hops.",
            svg_breach_trend(t["breaches_by_month"]),
            _ranked(
                t["breaches_by_authority"],
                [
                    *AUTHORITY,
                    ("closed_hops", "Closed hops"),
                    ("breached", "Late"),
                    ("breach_rate", "Late share"),
                    ("days_late_median", "Median bd late"),
                    ("days_late_max", "Max bd late"),
                    ("open_hops", "Open"),
                    ("overdue_now", "Overdue now"),
                ],
                name="breaches_by_authority",
                least=f"{least} closed hops",
            ),
            "<h3>Overdue now</h3>",
            "<p class='how'>Open hops past their due instant at the time of the report, the "
            "clock not stopped, with business days late on the holder's calendar; the due "
            "instant is shown in the holder's local time.</p>",
            _table(
                t["overdue_now"],
                [
                    ("reference", "Reference"),
                    ("hop", "Hop"),
                    ("step", "Step"),
                    *AUTHORITY,
                    ("due_local", "Due (holder's local time)"),
                    ("days_late", "Business days late"),
                ],
                limit=50,
                name="overdue_now",
                shown={"due_local": lambda r: _when(r["due_local"], r["timezone"])},
            ),
        ),
        _section(
            "prescription",
            "Prescription",
            "The prescription date is the first day a case can no longer be prosecuted, on the "
            "country's calendar: an open case whose date is today or earlier, with no suspension "
            "still running, has already prescribed and is listed apart; the others are forecast "
            "(cases likely to prescribe: risk 50% or more).",
            "<h3>Already prescribed</h3>",
            "<p class='how'>Open cases whose prescription date has come, with the calendar days "
            "since; nothing the chain does now can save them.</p>",
            _table(
                for_days_past,
                [
                    ("reference", "Reference"),
                    ("country", "Country"),
                    ("step", "Now at"),
                    ("prescription_date", "Prescribed on"),
                    ("days_past", "Days since"),
                    ("prescription_why", "Why this date"),
                ],
                limit=100,
                name="risk_register",
            ),
            "<h3>At risk of prescribing before they close</h3>",
            "<p class='how'>Risk: the chance that the remaining hops finish on or after the "
            "prescription date, from the calendar days each authority and step took on closed "
            "hops (their SLAs while fewer than 20 hops are on record); slack: days from the "
            "median completion to the prescription date.</p>",
            _table(
                at_risk,
                [
                    ("reference", "Reference"),
                    ("country", "Country"),
                    ("step", "Now at"),
                    ("prescription_date", "Prescription"),
                    ("p50_completion", "Completion P50"),
                    ("p90_completion", "Completion P90"),
                    ("risk", "Risk"),
                    ("slack_days", "Slack (days)"),
                    ("basis", "Basis"),
                    ("prescription_why", "Why this date"),
                ],
                limit=100,
                name="risk_register",
                classes={"risk": _risk_class},
            ),
        ),
        _section(
            "stops",
            "Clock stops",
            "Each stop runs from its clock_stopped event to its clock_resumed event (or to now "
            "while still stopped): business days on the holder's calendar and calendar days "
            "between local dates; share of time held is the business days stopped over the "
            "business days the authority held its hops.",
            _table(
                t["stops"],
                [
                    *AUTHORITY,
                    ("hops_stopped", "Hops stopped"),
                    ("stops", "Stops"),
                    ("running_now", "Stopped now"),
                    ("business_days_stopped", "Business days"),
                    ("calendar_days_stopped", "Calendar days"),
                    ("share_of_dwell", "Share of time held"),
                ],
                name="stops",
            ),
        ),
        _section(
            "handoffs",
            "Handoffs",
            "The gap between one hop's decision and the next hop's opening in the same case, in "
            "business days on the next holder's calendar and in calendar days: zero when the "
            "decision opened the next hop at once, the requester's wait after a return.",
            _table(
                t["handoffs"],
                [
                    ("country", "Country"),
                    ("from_step", "From step"),
                    ("from_authority", "From"),
                    ("to_step", "To step"),
                    ("to_authority", "To"),
                    ("handoffs", "Handoffs"),
                    ("via_requester", "Via the requester"),
                    ("gap_bd_median", "Median gap bd"),
                    ("gap_bd_max", "Max gap bd"),
                    ("gap_cd_median", "Median gap days"),
                ],
                name="handoffs",
            ),
        ),
        _section(
            "rework",
            "Rework",
            "Per authority, the closed hops it returned or reassigned over all its closed hops "
            f"(ranked only with at least {least} closed hops), and the hops that did a step of a "
            "case again with their business days on the holder's calendar; then the returns and "
            "reassignments by delay cause.",
            _ranked(
                t["rework_by_authority"],
                [
                    *AUTHORITY,
                    ("closed_hops", "Closed hops"),
                    ("returned", "Returned"),
                    ("reassigned", "Reassigned"),
                    ("rework_rate", "Rework share"),
                    ("repeated_hops", "Steps redone"),
                    ("repeated_business_days", "Business days redone"),
                ],
                name="rework_by_authority",
                least=f"{least} closed hops",
            ),
            _table(
                t["rework_by_cause"],
                [
                    ("cause", "Delay cause"),
                    ("returned", "Returned"),
                    ("reassigned", "Reassigned"),
                    ("total", "Total"),
                    ("share", "Share"),
                ],
                name="rework_by_cause",
            ),
        ),
        _section(
            "refusals",
            "Refusals",
            "Hops decided 'refused', counted per authority and ground; grounds UNCAC forbids "
            "(bank secrecy, art. 46(8); fiscal offences, art. 46(22)) are flagged.",
            _table(
                t["refusals"],
                [
                    *AUTHORITY,
                    ("ground", "Ground"),
                    ("refusals", "Refusals"),
                    ("prohibited_by_uncac", "Prohibited by UNCAC"),
                ],
                name="refusals",
                classes={"prohibited_by_uncac": lambda v: "high" if v else ""},
            ),
        ),
        _section(
            "execution",
            "Execution",
            "Closed cases counted by their final outcome, per country, route, kind and "
            "direction; each share is of the closed cases in its row.",
            _table(
                execution,
                [
                    ("country", "Country"),
                    ("route", "Route"),
                    ("kind", "Kind"),
                    ("direction", "Direction"),
                    ("closed_cases", "Closed"),
                    ("executed", "Executed"),
                    ("partially_executed", "Partly"),
                    ("refused", "Refused"),
                    ("withdrawn", "Withdrawn"),
                    ("execution_rate", "Executed share"),
                    ("executed_any_rate", "Executed at least partly"),
                ],
                name="execution",
            ),
        ),
        _section(
            "late-entries",
            "Late entries",
            f"Commands recorded more than {s['late_after_hours']:g} hours after the instant they "
            "say they happened; an authority's share of decisions entered late is ranked only "
            f"with at least {least} decisions.",
            _ranked(
                [r for r in t["late_entries"] if r["late_entries"]],
                [
                    *AUTHORITY,
                    ("decisions", "Decisions"),
                    ("late_decisions", "Entered late"),
                    ("late_share", "Late share"),
                    ("late_entries", "All late entries"),
                    ("lag_days_median", "Median lag (days)"),
                    ("lag_days_max", "Max lag (days)"),
                ],
                name="late_entries",
                least=f"{least} decisions",
            ),
        ),
        _section(
            "statistics",
            "Statistics",
            "Exact counts of requests by country, direction, counterpart, offence, legal basis, "
            "kind and year of registration (the registration day on the country's calendar), "
            "and how often UNCAC is the legal basis.",
            _table(
                t["uncac_usage"],
                [
                    ("country", "Country"),
                    ("direction", "Direction"),
                    ("year", "Year"),
                    ("requests", "Requests"),
                    ("uncac", "On UNCAC"),
                    ("uncac_share", "UNCAC share"),
                ],
                name="uncac_usage",
            ),
            _table(
                t["statistics"],
                [
                    ("country", "Country"),
                    ("direction", "Direction"),
                    ("counterpart", "Counterpart"),
                    ("offence_category", "Offence"),
                    ("legal_basis", "Legal basis"),
                    ("kind", "Kind"),
                    ("year", "Year"),
                    ("requests", "Requests"),
                ],
                name="statistics",
            ),
        ),
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>Audit report: {_t(report['scope'])}</title><style>{CSS}</style></head><body>",
        f"<h1>Audit report: {_t(report['scope'])}</h1>",
        f"<p class='meta'>Ledger as of {_t(_utc(report['as_of']))}; generated "
        f"{_t(_utc(report['generated_at']))}. Cases are identified by reference only; instants "
        "in the tables are in the local time of the authority holding the hop.</p>",
        _contents(sections),
        "<ul class='headlines'>",
        *(f"<li>{_t(h)}</li>" for h in report["headlines"]),
        "</ul><div class='figures'>",
        *(f"<div class='figure'><b>{_t(v)}</b>{_t(k)}</div>" for k, v in figures),
        "</div>",
        *(html for _, _, html in sections),
        "<p class='note'>Medians and percentiles interpolate between the two nearest values. "
        "Business days follow each authority's calendar (weekends, public holidays, closures); "
        "calendar days count local dates. Cases are selected by registration date. A rate is "
        f"ranked only over at least {least} observations.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)

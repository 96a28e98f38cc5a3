"""What the scheduled flows show in the Prefect UI: artifacts under stable keys, so the UI keeps
each one's history (one version per run).

The markdown and the rows are plain functions that tests read; `publish_*` creates the
artifacts, and only inside a flow run: a plain call of the same code publishes nothing.
Prefect UI users are not auditors: a confidential case's reference never appears here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.context import FlowRunContext

from models.notices import BASE_URL_VARIABLE

HEADLINES_KEY = "audit-headlines"
RISKIEST_KEY = "audit-riskiest-open-cases"
REPORT_LINK_KEY = "audit-report-link"
SWEEP_KEY = "watch-clock-last-sweep"
MOST_ROWS = 50
"""The riskiest-cases table and the list of prescribed cases stop here: the report has all."""

FIGURES = {
    "cases": "cases",
    "open_cases": "open cases",
    "closed_cases": "closed cases",
    "open_hops": "open hops",
    "overdue_now": "hops overdue now",
    "breach_rate": "closed hops over their SLA",
    "execution_rate": "closed cases executed",
    "partial_rate": "closed cases partly executed",
    "returned_cases": "cases returned at least once",
    "refusals": "refusals",
    "prohibited_refusals": "refusals on a ground UNCAC prohibits",
    "uncac_share": "requests on UNCAC as legal basis",
    "late_entries": "decisions entered late",
    "already_prescribed": "open cases already prescribed",
    "likely_to_prescribe": "open cases likely to prescribe",
}
RATES = {"breach_rate", "execution_rate", "partial_rate", "uncac_share"}

SWEEP_LINES = {
    "hops_due": "hops with a rung due",
    "rungs_recorded": "rungs recorded",
    "rungs_already_recorded": "rungs already recorded (by another sweep)",
    "rungs_superseded": "rungs superseded by a higher one",
    "prescription_alerts_recorded": "prescription alerts recorded",
    "digests_recorded": "coordinators' digests recorded",
    "sent": "deliveries sent",
    "send_failures": "deliveries failed (kept pending, retried with backoff)",
    "cases_with_problems": "cases with problems (see `rogatory problems`)",
    "flows_started": "case flow runs started",
    "flows_woken": "case flow runs woken",
}


def _figure(name: str, value: Any) -> str:
    if name in RATES and isinstance(value, int | float):
        return f"{round(100 * value)}%"
    return "n/a" if value is None else str(value)


def headlines_markdown(
    report: Mapping[str, Any], *, prescribed: Sequence[str], hidden_prescribed: int
) -> str:
    """The report's headline figures and headlines, and the cases already prescribed."""
    summary = report["summary"]
    lines = [
        f"# Audit report, as of {report['as_of']}",
        "",
        f"Scope: {report['scope']}",
        "",
        "## Headline figures",
        "",
        "| figure | value |",
        "|---|---|",
        *(
            f"| {words} | {_figure(name, summary[name])} |"
            for name, words in FIGURES.items()
            if name in summary
        ),
        "",
        "## Headlines",
        "",
        *(f"- {line}" for line in report["headlines"]),
    ]
    if prescribed or hidden_prescribed:
        lines += ["", "## Open cases already prescribed", ""]
        lines += [f"- {reference}" for reference in prescribed[:MOST_ROWS]]
        if len(prescribed) > MOST_ROWS:
            lines.append(f"- and {len(prescribed) - MOST_ROWS} more (see the full report)")
        if hidden_prescribed:
            lines.append(f"- and {hidden_prescribed} confidential case(s), not named here")
    return "\n".join(lines) + "\n"


def riskiest_rows(
    register: Sequence[Mapping[str, Any]], *, hidden: set[str]
) -> list[dict[str, Any]]:
    """The riskiest open cases not yet prescribed, worst first, without confidential ones."""
    rows = []
    for row in register:
        if row["prescribed"] or row["reference"] in hidden:
            continue
        rows.append(
            {
                "reference": row["reference"],
                "country": row["country"],
                "holder": row["authority"] or "",
                "step": row["step"],
                "prescription_date": row["prescription_date"] or "",
                "days_to_prescription": row["days_to_prescription"],
                "risk": row["risk"],
            }
        )
        if len(rows) == MOST_ROWS:
            break
    return rows


def riskiest_description(
    register: Sequence[Mapping[str, Any]], *, hidden: set[str], shown: int
) -> str:
    open_now = sum(1 for r in register if not r["prescribed"])
    prescribed = len(register) - open_now
    secret = sum(1 for r in register if not r["prescribed"] and r["reference"] in hidden)
    return (
        f"The {shown} riskiest of {open_now} open case(s) not yet prescribed, worst first "
        f"(risk: the forecast chance of prescribing before the chain finishes). "
        f"{secret} confidential case(s) left out; {prescribed} already prescribed, "
        f"counted apart in `{HEADLINES_KEY}`."
    )


def report_link(files: Sequence[str], folder: str) -> str:
    """The workspace's audit page when the installation says where its pages are, else the
    HTML report written (else its folder)."""
    base = os.environ.get(BASE_URL_VARIABLE, "").strip().rstrip("/")
    if base:
        return f"{base}/audit"
    html = [f for f in files if f.endswith(".html")]
    return Path(html[0] if html else folder).resolve().as_uri()


def sweep_markdown(summary: Mapping[str, Any]) -> str:
    """What one sweep recorded and sent, one figure a line."""
    lines = ["# Last clock sweep", "", "| what | count |", "|---|---|"]
    lines += [
        f"| {words} | {summary[name]} |" for name, words in SWEEP_LINES.items() if name in summary
    ]
    return "\n".join(lines) + "\n"


def in_flow_run() -> bool:
    return FlowRunContext.get() is not None


@dataclass(frozen=True)
class AuditArtifacts:
    """What `audit_report` publishes, small enough to pass from task to task."""

    headlines: str
    riskiest: list[dict[str, Any]]
    riskiest_description: str
    link: str
    link_text: str


def audit_artifacts(
    report: Mapping[str, Any], *, hidden: set[str], files: Sequence[str], folder: str
) -> AuditArtifacts:
    """The artifacts of one report; `hidden`: the confidential cases' references."""
    register = report["tables"]["risk_register"]
    prescribed = [r["reference"] for r in register if r["prescribed"]]
    rows = riskiest_rows(register, hidden=hidden)
    return AuditArtifacts(
        headlines=headlines_markdown(
            report,
            prescribed=[r for r in prescribed if r not in hidden],
            hidden_prescribed=sum(1 for r in prescribed if r in hidden),
        ),
        riskiest=rows,
        riskiest_description=riskiest_description(register, hidden=hidden, shown=len(rows)),
        link=report_link(files, folder),
        link_text=f"Audit report as of {report['as_of']}",
    )


@task(name="publish-audit-artifacts", retries=2, retry_delay_seconds=[2, 10])
def publish_audit_artifacts(artifacts: AuditArtifacts) -> list[str]:
    """The headlines, the riskiest open cases and the link to the report; their keys (none
    outside a flow run)."""
    if not in_flow_run():
        return []
    create_markdown_artifact(
        key=HEADLINES_KEY,
        markdown=artifacts.headlines,
        description="The audit report's headline figures and headlines",
    )
    create_table_artifact(
        key=RISKIEST_KEY, table=artifacts.riskiest, description=artifacts.riskiest_description
    )
    create_link_artifact(
        key=REPORT_LINK_KEY,
        link=artifacts.link,
        link_text=artifacts.link_text,
        description="The full report (every table, every case the reader may see)",
    )
    return [HEADLINES_KEY, RISKIEST_KEY, REPORT_LINK_KEY]


@task(name="publish-sweep-artifact", retries=2, retry_delay_seconds=[2, 10])
def publish_sweep_artifact(summary: Mapping[str, Any]) -> str | None:
    """What this sweep recorded and sent; its key (None outside a flow run)."""
    if not in_flow_run():
        return None
    create_markdown_artifact(
        key=SWEEP_KEY,
        markdown=sweep_markdown(summary),
        description="What the last watch_clock run recorded and sent",
    )
    return SWEEP_KEY

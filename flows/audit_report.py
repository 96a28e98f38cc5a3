"""`audit_report`: the scheduled auditor report, written under ./var/reports and announced.

It computes the report from the ledger (tasks/report.py), writes it as HTML, JSON and CSV into a
dated folder, and sends the `auditors` apprise tag a short summary: the headlines and where the
files are. The message carries references and figures only, never persons or case facts. The
run also shows the headlines, the riskiest open cases and a link to the report as Prefect
artifacts (tasks/artifacts.py), never naming a confidential case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task

from models import deliveries, problems, queries
from models.clock import clock_from_env
from models.engine import Routings
from models.ledger import Ledger
from models.metrics import Filters
from models.notices import AUDITORS_TAG, SEVERITY, Notice, report_message
from models.problems import Failure
from tasks.artifacts import audit_artifacts, publish_audit_artifacts
from tasks.notify import send_pending
from tasks.report import build_report, write_report


@task(name="write-report", retries=1, retry_delay_seconds=[10])
def write_audit_report(out_dir: str, formats: list[str]) -> dict[str, Any]:
    now = clock_from_env().now()
    folder = Path(out_dir) / now.strftime("%Y-%m-%d")
    # Every case is timed on the routing it pinned, read from the ledger: a country file being
    # edited (or broken) does not stop the report.
    routings = Routings({})
    with Ledger() as ledger:
        with ledger.session() as session:
            report = build_report(
                session=session,
                routings=routings,
                filters=Filters(),
                now=now,
                generated_at=datetime.now(UTC),
            )
            countries = sorted({row["country"] for row in report["tables"]["risk_register"]})
            hidden = queries.confidential_references(session, countries=countries)
        if report["left_out"]:
            with ledger.transaction() as session:
                problems.record_failures(
                    session,
                    [
                        Failure(
                            row["reference"],
                            None,
                            row["country"],
                            "report",
                            f"left out of the audit report: {row['problem']}",
                        )
                        for row in report["left_out"]
                    ],
                    coordinators=problems.coordinator_tags(routings.loaded()),
                    now=now,
                )
    files = [str(p) for fmt in formats for p in write_report(report, fmt=fmt, out=folder)]
    return {
        "folder": str(folder),
        "files": files,
        "headlines": report["headlines"],
        "summary": report["summary"],
        "artifacts": audit_artifacts(report, hidden=hidden, files=files, folder=str(folder)),
    }


@task(name="announce-report", retries=2, retry_delay_seconds=[5, 30])
def announce_report(written: dict[str, Any]) -> bool:
    """Tell the auditors, through a ledger delivery: a failed channel is retried, not lost."""
    title, body = report_message(headlines=written["headlines"], folder=written["folder"])
    now = clock_from_env().now()
    notice = Notice(
        key=f"report:{written['folder']}:{now.isoformat()}",
        request_id=None,
        step_id=None,
        kind="report",
        severity=SEVERITY["report"],
        tags=[AUDITORS_TAG],
        title=title,
        body=body,
        due_at=now,
    )
    with Ledger() as ledger:
        with ledger.transaction() as session:
            deliveries.record(session.connection(), [notice], now=now)
        return send_pending(ledger=ledger, now=now, keys=[notice.key]).sent == 1


@flow(
    name="audit_report",
    flow_run_name=lambda: f"audit report {clock_from_env().now():%Y-%m-%d}",
    timeout_seconds=3600,
    log_prints=True,
)
def audit_report(
    out_dir: str = "var/reports", formats: tuple[str, ...] = ("html", "json", "csv")
) -> dict[str, Any]:
    """Write the auditor report, tell the auditors where it is, and show it in the UI."""
    written = write_audit_report(out_dir, list(formats))
    written["announced"] = announce_report(written)
    written["artifacts"] = publish_audit_artifacts(written.pop("artifacts"))
    print("\n".join(written["headlines"]))
    return written

"""`audit_report`: the scheduled auditor report, written under ./var/reports and announced.

It computes the report from the ledger (tasks/report.py), writes it as HTML, JSON and CSV into a
dated folder, and sends the `auditors` apprise tag a short summary: the headlines and where the
files are. The message carries references and figures only, never persons or case facts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task

from models.clock import clock_from_env
from models.engine import Routings
from models.ledger import Ledger
from models.loader import load_all
from models.metrics import Filters
from tasks.notify import AUDITORS_TAG, load_apprise, send
from tasks.report import build_report, write_report


@task(name="write-report", retries=1, retry_delay_seconds=[10])
def write_audit_report(out_dir: str, formats: list[str]) -> dict[str, Any]:
    now = clock_from_env().now()
    folder = Path(out_dir) / now.strftime("%Y-%m-%d")
    with Ledger() as ledger, ledger.session() as session:
        report = build_report(
            session=session,
            routings=Routings(load_all()),
            filters=Filters(),
            now=now,
            generated_at=datetime.now(UTC),
        )
    files = [str(p) for fmt in formats for p in write_report(report, fmt=fmt, out=folder)]
    return {
        "folder": str(folder),
        "files": files,
        "headlines": report["headlines"],
        "summary": report["summary"],
    }


@task(name="announce-report", retries=2, retry_delay_seconds=[5, 30])
def announce_report(written: dict[str, Any]) -> bool:
    lines = [
        "The audit report is ready.",
        *(f"- {h}" for h in written["headlines"][:6]),
        f"Files: {written['folder']}",
    ]
    return send(
        load_apprise(), tags=[AUDITORS_TAG], title="rogatory audit report", body="\n".join(lines)
    )


@flow(name="audit_report", log_prints=True)
def audit_report(
    out_dir: str = "var/reports", formats: tuple[str, ...] = ("html", "json", "csv")
) -> dict[str, Any]:
    """Write the auditor report and tell the auditors where it is."""
    written = write_audit_report(out_dir, list(formats))
    written["announced"] = announce_report(written)
    print("\n".join(written["headlines"]))
    return written

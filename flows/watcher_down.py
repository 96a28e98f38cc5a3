"""`watcher_down`: run by the Prefect automation `rogatory-watcher-down` when no `watch_clock`
run completed within the watcher's threshold. It tells the admin and every country coordinator
through apprise, once an hour while the watcher stays down (the notice's key holds the hour).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.sweep import record_and_send_watcher_down


@flow(name="watcher_down", log_prints=True)
def watcher_down(
    reason: str = "no watch_clock flow run completed within the watcher's threshold",
) -> dict[str, Any]:
    """Run by the Prefect automation that watches `watch_clock`: tell who must act, once an hour."""
    summary = record_and_send_watcher_down(reason)
    print(summary)
    return summary

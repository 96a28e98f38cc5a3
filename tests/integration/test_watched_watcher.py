"""The watched watcher, live: a real Prefect server, a real `rogatory serve`, then no sweep.

With the threshold at 20 s (ROGATORY_WATCHER_STALE_AFTER_S), a sweep makes `rogatory health`
answer 0; once nothing sweeps for longer it answers 2, and the Prefect automation that
`rogatory serve` keeps (read back from the server) runs the `watcher-down` deployment, which
tells the admin and every country coordinator through apprise: once an hour, however often the
automation fires.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from app.health import AUTOMATION_NAME
from models.ledger import Delivery, Ledger, SweepRun
from tests.conftest import REPO
from tests.integration.conftest import BIN, PrefectServer, Site, wait_for

pytestmark = pytest.mark.integration

STALE_S = 20
COORDINATORS = 10  # one per country file

# `rogatory health` whether or not app/cli.py lists the command module yet.
HEALTH = (
    "import sys, app.cli as cli\n"
    "if 'app.health' not in cli.COMMAND_MODULES:\n"
    "    cli.COMMAND_MODULES = (*cli.COMMAND_MODULES, 'app.health')\n"
    "raise SystemExit(cli.main(['health', *sys.argv[1:]]))\n"
)

READ_BACK = (
    "import json\n"
    "from prefect.automations import Automation\n"
    "from prefect.client.orchestration import get_client\n"
    f"a = Automation.read(name={AUTOMATION_NAME!r})\n"
    "with get_client(sync_client=True) as c:\n"
    "    d = c.read_deployment(a.actions[0].deployment_id)\n"
    "    flows = {f.id: f.name for f in c.read_flows()}\n"
    "    done = [flows.get(r.flow_id) for r in c.read_flow_runs()\n"
    "            if r.state_type and r.state_type.value == 'COMPLETED']\n"
    "print(json.dumps({'automation': a.model_dump(mode='json'), 'deployment': d.name,\n"
    "    'completed': done}))\n"
)

ENSURE_AGAIN = (
    "import json, sys\n"
    "from datetime import timedelta\n"
    "from uuid import UUID\n"
    "from prefect.client.orchestration import get_client\n"
    "from app.health import AUTOMATION_NAME, ensure_watcher_automation, watcher_automation\n"
    "ensure_watcher_automation(watcher_automation(deployment_id=UUID(sys.argv[1]),\n"
    f"    within=timedelta(seconds={STALE_S})))\n"
    "with get_client(sync_client=True) as c:\n"
    "    print(json.dumps([str(a.id) for a in c.read_automations_by_name(AUTOMATION_NAME)]))\n"
)

DELETE = (
    "from prefect.automations import Automation\n"
    f"Automation.read(name={AUTOMATION_NAME!r}).delete()\n"
)


def python(site: Site, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "python"), "-c", code, *args],
        env=site.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def health(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return python(site, HEALTH, *args)


def read_back(site: Site) -> dict[str, Any]:
    done = python(site, READ_BACK)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def completed(site: Site, flow: str) -> int:
    return sum(1 for name in read_back(site)["completed"] if name == flow)


def ledger_rows(site: Site) -> tuple[list[str], list[tuple[str, list[str]]]]:
    ledger = Ledger(site.env["ROGATORY_DATABASE_URL"])
    try:
        with ledger.session() as session:
            sweeps = list(session.scalars(select(SweepRun.ran_by).order_by(SweepRun.id)))
            alerts = [
                (row.key, list(row.tags))
                for row in session.execute(
                    select(Delivery.key, Delivery.tags).where(Delivery.kind == "watcher_down")
                )
            ]
        return sweeps, alerts
    finally:
        ledger.dispose()


def test_a_watcher_that_stops_is_seen_stale_and_told_to_admin_and_coordinators_once(
    site: Site, prefect_server: PrefectServer
) -> None:
    site.env["ROGATORY_WATCHER_STALE_AFTER_S"] = str(STALE_S)
    try:
        site.cli("watch")  # one sweep by hand, as cron would
        ok = health(site)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.startswith("ok: last successful sweep")
        assert "by rogatory watch" in ok.stdout

        site.serve()  # watch_clock every 600 minutes: after its first run, nothing sweeps
        assert f"watcher alarm: automation '{AUTOMATION_NAME}'" in site.log("serve.log")
        found = read_back(site)
        trigger = found["automation"]["trigger"]
        assert (trigger["posture"], trigger["within"], trigger["threshold"]) == (
            "Proactive",
            float(STALE_S),
            1,
        )
        assert trigger["expect"] == ["prefect.flow-run.Completed"]
        assert trigger["match_related"]["prefect.resource.name"] == "watch_clock"
        assert found["deployment"] == "watcher-down"
        again = python(site, ENSURE_AGAIN, found["automation"]["actions"][0]["deployment_id"])
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == [found["automation"]["id"]]  # updated, not doubled

        stale = wait_for(
            lambda: (done := health(site, "--json")).returncode == 2 and done,
            timeout=STALE_S + 90,
            what="rogatory health to call the watcher stale",
            every=2,
        )
        report = json.loads(stale.stdout)
        assert report["stale"] and report["age_s"] >= STALE_S  # whole seconds, rounded down

        def told() -> Counter[str]:
            return Counter(m["recipient"] for m in site.outbox if m["title"].startswith("Watcher"))

        wait_for(lambda: told()["admin"] >= 1, timeout=180, what="the watcher-down alert", every=2)
        # The automation fires again every window while nothing sweeps: no second message.
        wait_for(
            lambda: completed(site, "watcher_down") >= 2,
            timeout=180,
            what="a second watcher-down run",
            every=3,
        )
        sweeps, alerts = ledger_rows(site)
        assert sweeps[0] == "rogatory watch"
        assert all(s == "rogatory watch" or s.startswith("flow-run:") for s in sweeps)
        hours = {key for key, _ in alerts}  # watcher:stale:<hour>: two only across an hour
        assert 1 <= len(hours) <= 2 and all(k.startswith("watcher:stale:") for k in hours)
        tags = alerts[0][1]
        assert "admin" in tags and len([t for t in tags if t.endswith("-coordination")]) == 10
        counts = told()
        assert set(counts) == set(tags) and set(counts.values()) == {len(hours)}
        assert len(counts) == COORDINATORS + 1
    finally:
        python(site, DELETE)  # the shared server keeps no alarm for the next test

"""The deployments an operator runs: prefect.yaml and `rogatory serve` agree on limits and
schedules, flow runs carry readable names and a case's run its tags, and no deployment migrates.

Runs go to Prefect's test harness (one server for the session); a case run is created from a
deployment registered there and read back.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.states import Running, Suspended
from sqlalchemy import select

from app.ops import served_deployments
from flows.audit_report import audit_report
from flows.route_request import route_request
from flows.watch_clock import watch_clock
from models import engine
from models.clock import FixedClock
from models.engine import Routings
from models.ledger import Ledger, Request
from models.queries import read_case_view
from tasks.cases import input_key
from tasks.orchestration import case_run_tags, start_case_flow, wake_case_flow
from tests.conftest import REPO
from tests.samples import intake

PREFECT_YAML = yaml.safe_load((REPO / "prefect.yaml").read_text())
DEPLOYMENTS = {d["name"]: d for d in PREFECT_YAML["deployments"]}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    monkeypatch.setenv("ROGATORY_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("ROGATORY_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    for name in ("ROGATORY_APPRISE_CONFIG", "ROGATORY_APPRISE_SECRET", "ROGATORY_CLOCK"):
        monkeypatch.delenv(name, raising=False)
    return Ledger(migrate=True)  # the test's own `rogatory db upgrade`


def test_watch_clock_and_audit_report_run_one_at_a_time_in_both_ways_of_deploying() -> None:
    assert DEPLOYMENTS["watch-clock"]["concurrency_limit"] == {
        "limit": 1,
        "collision_strategy": "CANCEL_NEW",
    }
    assert DEPLOYMENTS["audit-report"]["concurrency_limit"] == 1
    assert "concurrency_limit" not in DEPLOYMENTS["route-request"]
    served = {d.name: d for d in served_deployments(watch_every=timedelta(minutes=5))}
    assert served.keys() == {"route-request", "watch-clock", "audit-report"}
    assert served["watch-clock"].concurrency_limit == 1
    assert served["watch-clock"].concurrency_options is not None
    assert served["watch-clock"].concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert served["audit-report"].concurrency_limit == 1
    assert served["route-request"].concurrency_limit is None
    assert served["watch-clock"].parameters == DEPLOYMENTS["watch-clock"]["parameters"]


def test_only_the_sweep_and_the_report_time_out_never_a_case_that_waits_on_a_desk() -> None:
    assert watch_clock.timeout_seconds == 1800
    assert audit_report.timeout_seconds == 3600
    assert route_request.timeout_seconds is None


def test_workers_get_the_environment_they_need_from_the_deploying_one() -> None:
    env = PREFECT_YAML["definitions"]["work_pools"]["rogatory"]["job_variables"]["env"]
    for name in (
        "ROGATORY_DATABASE_URL",
        "ROGATORY_CONFIG_DIR",
        "ROGATORY_APPRISE_SECRET",
        "ROGATORY_BASE_URL",
        "ROGATORY_MASTER_KEY_SECRET",
    ):
        assert env[name] == "{{ $" + name + " }}"
    readme = (REPO / "README.md").read_text()
    running = readme[readme.index("## Running it") : readme.index("## Configuration by")]
    for name in env:  # the README's deploy step exports every one (unset stays a placeholder)
        assert re.search(rf"export .*\b{name}=", running), name
    for deployment in DEPLOYMENTS.values():
        assert deployment["work_pool"]["job_variables"]["env"] == env


def test_no_deployed_flow_migrates_the_ledger_on_start() -> None:
    for name in ("route_request", "watch_clock", "audit_report"):
        text = (REPO / "flows" / f"{name}.py").read_text()
        assert "migrate=True" not in text and "create_schema" not in text, name
    for path in (REPO / "tasks").glob("*.py"):
        if path.name != "simulation.py":  # the simulator prepares the database it is given
            assert "migrate=True" not in path.read_text(), path


def test_sweep_and_report_runs_have_readable_names(
    prefect_harness: None, site: Ledger, tmp_path: Path
) -> None:
    before = datetime.now(UTC)
    watch_clock(reconcile=False)
    audit_report(out_dir=str(tmp_path / "reports"))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=20)
    names = {run.name for run in runs if run.created and run.created >= before}
    sweep = [n for n in names if n.startswith("sweep ")]
    assert len(sweep) == 1 and re.fullmatch(r"sweep \d{4}-\d{2}-\d{2} \d{2}:\d{2}", sweep[0])
    assert f"audit report {datetime.now(UTC):%Y-%m-%d}" in names


def _case_with_a_run(site: Ledger, routings: Routings, clock: FixedClock) -> tuple[str, str]:
    """A case registered now and its flow run created from the route-request deployment (no
    worker runs it: each test moves its state by hand)."""
    route_request.to_deployment(name="route-request").apply()
    with site.transaction() as session:
        reference = engine.register(
            session=session, clock=clock, routings=routings, data=intake()
        ).reference
    return reference, start_case_flow(site, reference)


def _forward_hop_1(site: Ledger, routings: Routings, clock: FixedClock, reference: str) -> None:
    with site.transaction() as session:
        engine.decide(
            session=session,
            clock=clock,
            routings=routings,
            reference=reference,
            outcome="forwarded",
            hop=1,
        )


def test_a_case_run_carries_its_country_kind_route_and_holder_and_follows_the_holder(
    prefect_harness: None, site: Ledger, routings: Routings
) -> None:
    clock = FixedClock(datetime.now(UTC))
    reference, run_id = _case_with_a_run(site, routings, clock)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    with site.session() as session:
        route = session.scalars(select(Request.route_id)).one()
    assert run.name == reference
    assert sorted(run.tags) == sorted(
        ["case", "country:SV", "kind:mla", f"route:{route}", "holder:fgr"]
    )

    _forward_hop_1(site, routings, clock, reference)
    with site.session() as session:
        tags = case_run_tags(session=session, reference=reference)
    wake_case_flow(run_id, read_case_view(site, reference), tags=tags)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    holders = [t for t in run.tags if t.startswith("holder:")]
    assert holders == [t for t in tags if t.startswith("holder:")] != ["holder:fgr"]


def test_a_decision_made_while_the_run_is_still_announcing_wakes_it_once_it_suspends(
    prefect_harness: None, site: Ledger, routings: Routings
) -> None:
    """The run read the ledger, announced hop 1, and suspends on hop 1 just after the decision
    on hop 1 committed: the wake-up waits for the suspension instead of giving up on a run it
    found running (which would then sleep on a stale hop until the watcher's reconciliation)."""
    clock = FixedClock(datetime.now(UTC))
    reference, run_id = _case_with_a_run(site, routings, clock)
    stale = input_key(reference, read_case_view(site, reference))
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), Running(), force=True)
    _forward_hop_1(site, routings, clock, reference)

    def suspend_late() -> None:
        time.sleep(1.5)
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(
                UUID(run_id), Suspended(timeout_seconds=3600, pause_key=stale), force=True
            )

    suspending = threading.Thread(target=suspend_late)
    suspending.start()
    woken = wake_case_flow(run_id, read_case_view(site, reference), settle_s=30)
    suspending.join()
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    assert woken
    assert state is not None and not state.is_paused()


def test_a_run_running_longer_than_a_case_run_works_is_not_waited_on(
    prefect_harness: None, site: Ledger, routings: Routings
) -> None:
    """A run "running" for longer than a case run takes to suspend lost its process: the
    clerk's command does not wait for it (reconciliation replaces it)."""
    clock = FixedClock(datetime.now(UTC))
    reference, run_id = _case_with_a_run(site, routings, clock)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), Running(), force=True)
    time.sleep(5.5)  # running for longer than the 5 s a case run may take to suspend
    began = time.monotonic()
    woken = wake_case_flow(run_id, read_case_view(site, reference), settle_s=5)
    assert not woken
    assert time.monotonic() - began < 4  # it did not sit out the 5 s


def test_prefect_deploy_declares_the_watched_watcher_as_a_valid_trigger() -> None:
    from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes
    from pydantic import TypeAdapter

    (watcher,) = [d for d in PREFECT_YAML["deployments"] if d["name"] == "watcher-down"]
    assert watcher["entrypoint"] == "flows/watcher_down.py:watcher_down"
    trigger = TypeAdapter(DeploymentTriggerTypes).validate_python(watcher["triggers"][0])
    assert trigger.posture == "Proactive"
    assert trigger.expect == {"prefect.flow-run.Completed"}
    assert trigger.within.total_seconds() == 900

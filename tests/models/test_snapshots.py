"""A pinned routing reads back as it was pinned: every shipped file, random files, old snapshots.

A case runs on the snapshot of its country file stored in the ledger. If that snapshot cannot
be read back, the case cannot be shown, announced or swept (Italian and Portuguese cases once
crashed this way: EU preset deadlines were stored as `{'amount': 48, 'unit': 'h'}`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.calendar import Duration
from models.loader import (
    Routing,
    content_hash,
    load_all,
    load_country,
    load_presets,
    routing_from_snapshot,
)

REPO = Path(__file__).resolve().parents[2]
KEPT = Path(__file__).resolve().parent / "snapshots"


def _round_trip(routing: Routing) -> Routing:
    # Through JSON, as the ledger's JSON column stores the presets.
    return routing_from_snapshot(json.loads(json.dumps(routing.snapshot())))


def _assert_same(before: Routing, after: Routing) -> None:
    assert after.config == before.config
    assert after.presets == before.presets
    assert after.version == before.version
    assert content_hash(after.config, after.presets) == before.version


@pytest.mark.parametrize("code", sorted(load_all(REPO / "config")))
def test_every_shipped_country_reads_back_from_its_snapshot(code: str) -> None:
    routing = load_all(REPO / "config")[code]
    _assert_same(routing, _round_trip(routing))


def test_preset_deadlines_are_stored_as_text() -> None:
    routing = load_all(REPO / "config")["IT"]
    stored = routing.snapshot()["presets"]
    assert stored["eu-freezing.urgent-recognition"]["sla"] == "48h"
    assert stored["eu-eio.execution"]["runs_from"] == ["decision"]
    assert all(isinstance(p["sla"], str) for p in stored.values())


@pytest.mark.parametrize("kept", sorted(KEPT.glob("*.json")), ids=lambda p: p.stem)
def test_snapshots_stored_by_earlier_versions_stay_readable(kept: Path) -> None:
    """Kept copies of what the ledger held in November 2026 (durations as mappings)."""
    stored = json.loads(kept.read_text(encoding="utf-8"))
    routing = routing_from_snapshot(stored)
    assert routing.version == stored["version"]  # the case keeps the version it pinned
    for name, preset in stored["presets"].items():
        sla = preset["sla"]
        assert routing.presets[name].sla == Duration(sla["amount"], sla["unit"])
    for route in routing.config.routes:
        for index in range(len(route.steps)):
            assert isinstance(routing.sla(route, index), Duration)


# -- random valid routing files --------------------------------------------------------------

PRESETS = load_presets(REPO / "config")
durations = st.builds(
    lambda n, unit: f"{n}{unit}", st.integers(1, 400), st.sampled_from(["bd", "d", "h"])
)
rungs = st.lists(
    st.fixed_dictionaries(
        {
            "at": st.one_of(st.integers(1, 300).map(lambda p: f"{p}%"), durations),
            "notify": st.sampled_from([["holder"], ["holder", "coordinator"], ["head"]]),
            "kind": st.sampled_from(["reminder", "overdue", "escalation"]),
        },
        optional={"repeat": durations},
    ),
    max_size=3,
)


@st.composite
def country_files(draw: st.DrawFn) -> dict[str, Any]:
    holders = [f"a{i}" for i in range(draw(st.integers(1, 4)))]
    routes = []
    for r in range(draw(st.integers(1, 3))):
        steps = []
        for s in range(draw(st.integers(1, 4))):
            step: dict[str, Any] = {"id": f"s{s}", "holder": draw(st.sampled_from(holders))}
            if draw(st.booleans()):
                step["preset"] = draw(st.sampled_from(sorted(PRESETS)))
            else:
                step["sla"] = draw(durations)
            if draw(st.booleans()):
                step["escalation"] = draw(rungs)
            steps.append(step)
        route: dict[str, Any] = {"id": f"r{r}", "steps": steps}
        if r < 2:
            route["when"] = {"kind": ["mla", "extradition"][r]}
        routes.append(route)
    return {
        "country": "SV",
        "name": "Random",
        "timezone": draw(st.sampled_from(["America/El_Salvador", "Europe/Rome", "Asia/Tokyo"])),
        "authorities": {h: {"name": f"Authority {h}", "kind": "ministry"} for h in holders},
        "contacts": {"holder": "{authority}-desk", "head": "head", "coordinator": "coord"},
        "routes": routes,
        "escalation": draw(rungs),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=country_files())
def test_any_valid_routing_reads_back_from_its_snapshot(
    data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("random") / "sv.yaml"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")  # JSON is YAML too
    routing = load_country(path, presets=PRESETS)
    _assert_same(routing, _round_trip(routing))


def test_a_broken_snapshot_is_a_located_config_error() -> None:
    from models.errors import ConfigError

    stored = json.loads((KEPT / "it-2026-11.json").read_text(encoding="utf-8"))
    stored["presets"]["eu-freezing.urgent-freezing"]["sla"] = "soon"
    with pytest.raises(ConfigError) as info:
        routing_from_snapshot(stored)
    assert "presets.eu-freezing.urgent-freezing" in str(info.value)
    assert "soon" in str(info.value)

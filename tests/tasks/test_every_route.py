"""Every route of every shipped country works end to end, and keeps working when files change.

For each route a request is built that the route (and no route before it) takes. It is
registered, shown (`status`), listed in its holder's inbox, announced as the case flow does it,
and swept (`watch`), on SQLite and PostgreSQL. Then every country file is edited while those
cases are open: the sweep must still deliver every case's alerts, from old and new versions.
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models import engine
from models.clock import FixedClock
from models.config import Route
from models.contacts import contact_tags, outbox_config
from models.domain import Direction, Kind, LegalBasis
from models.engine import Routings
from models.ledger import Delivery, Ledger
from models.loader import Routing, load_all
from models.queries import inbox, timeline
from tasks.cases import announce_hop_now
from tasks.notify import read_outbox, send_pending
from tasks.sweep import sweep_now
from tests.samples import intake

REPO = Path(__file__).resolve().parents[2]
OPENED = datetime(2026, 3, 2, 15, tzinfo=UTC)
ROUTES = [
    (code, route.id)
    for code, routing in sorted(load_all(REPO / "config").items())
    for route in routing.config.routes
]


def _candidates(route: Route, country: str) -> Iterator[dict[str, Any]]:
    """Request fields the route's matcher accepts, most ordinary first."""
    when = route.when
    kinds = when.kind or list(Kind)
    directions = [when.direction] if when.direction else list(Direction)
    bases = when.legal_basis or [LegalBasis.UNCAC, *LegalBasis]
    coercive = [when.coercive] if when.coercive is not None else [False, True]
    urgent = [when.urgent] if when.urgent is not None else [False, True]
    counterparts = when.counterpart or ["ES", "US", "DE", "FR", "IT", "CH"]
    for kind, direction, basis, co, ur, cp in itertools.product(
        kinds, directions, bases, coercive, urgent, counterparts
    ):
        if cp != country:
            yield {
                "kind": str(kind),
                "direction": str(direction),
                "legal_basis": str(basis),
                "coercive": co,
                "urgent": ur,
                "counterpart": cp,
            }


def request_for(routing: Routing, route: Route) -> dict[str, Any]:
    """A valid intake that `route` is the first of its country to take."""
    for fields in _candidates(route, routing.country):
        first = next((r for r in routing.config.routes if r.when.matches(fields)), None)
        if first is route:
            extra: dict[str, Any] = {}
            if fields["kind"] == "extradition":
                extra["persons"] = ["the person sought"]
            if fields["kind"] not in ("mla", "extradition"):
                extra["assets"] = "the accounts named in the request"
            if fields["kind"] in ("confiscation", "asset_return"):
                extra["order_reference"] = "order 12/2025"
            if fields["urgent"]:
                extra["urgency_reason"] = "assets about to be moved"
            return intake(country=routing.country, **fields, **extra)
    raise AssertionError(f"{routing.country} route {route.id} is shadowed by earlier routes")


@pytest.fixture
def everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An apprise config serving every contact tag, and an outbox of this test's own."""
    config = tmp_path / "apprise.conf"
    config.write_text(outbox_config(contact_tags(load_all(REPO / "config").values())))
    monkeypatch.setenv("ROGATORY_APPRISE_CONFIG", str(config))
    monkeypatch.setenv("ROGATORY_OUTBOX", str(tmp_path / "outbox"))
    return tmp_path / "outbox"


def _register_every_route(ledger: Ledger, routings: Routings, clock: FixedClock) -> list[Any]:
    cases = []
    for code, route_id in ROUTES:
        routing = routings.for_country(code)
        route = routing.config.route(route_id)
        with ledger.transaction() as session:
            result = engine.register(
                session=session, clock=clock, routings=routings, data=request_for(routing, route)
            )
        cases.append((code, route_id, result.reference))
    return cases


def test_every_route_registers_shows_lists_announces_and_sweeps(
    ledger: Ledger, routings: Routings, everything: Path
) -> None:
    clock = FixedClock(OPENED)
    cases = _register_every_route(ledger, routings, clock)
    for code, route_id, reference in cases:
        with ledger.session() as session:
            routing = routings.pinned(session, routings.for_country(code).version)
            view = timeline(session=session, routing=routing, reference=reference, now=OPENED)
            assert view.route == route_id and view.hops and view.hops[0].closed_at is None
            listed = inbox(session=session, routing=routing, holder=view.hops[0].holder, now=OPENED)
            assert reference in [i.reference for i in listed]
        assert announce_hop_now(ledger, reference, now=OPENED) == 1, (code, route_id)
    announced = [m for m in read_outbox(everything) if m["title"].startswith("New:")]
    assert len(announced) == len(cases) == len({m["title"] for m in announced})

    later = OPENED + timedelta(days=400)
    rungs, alerts = sweep_now(ledger, thresholds=[30], now=later)
    assert rungs.failures == [] and alerts.failures == []
    # One notice per late hop, and one per legal deadline run out (the EU routes' own ladder).
    legal = _legal_notices(ledger)
    assert legal and rungs.due_deadlines == len({key.split(":")[1] for key in legal})
    assert rungs.due_hops == len(cases) and rungs.created == len(cases) + len(legal)
    sent = send_pending(ledger=ledger, now=later)
    assert sent.failed == 0
    with ledger.session() as session:
        owed = session.scalars(select(Delivery.key).where(Delivery.status == "pending")).all()
    assert owed == []


def _legal_notices(ledger: Ledger) -> list[str]:
    """The keys of the legal deadlines' notices recorded to go (not superseded)."""
    with ledger.session() as session:
        return list(
            session.scalars(
                select(Delivery.key).where(
                    Delivery.key.like("deadline:%"), Delivery.status != "superseded"
                )
            )
        )


def _edit_every_country_file(root: Path) -> Path:
    """A copy of config/ in which every country file had an ordinary edit: new versions."""
    edited = root / "config"
    shutil.copytree(REPO / "config", edited)
    for path in (edited / "countries").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"^name: (.*)$", r"name: \1 (edited)", text, count=1, flags=re.M)
        text = re.sub(r"sla: (\d+)", lambda m: f"sla: {int(m[1]) + 1}", text, count=1)
        path.write_text(text, encoding="utf-8")
    return edited


def test_editing_every_country_file_with_open_cases_leaves_every_alert_flowing(
    ledger: Ledger, routings: Routings, everything: Path, tmp_path: Path, monkeypatch
) -> None:
    clock = FixedClock(OPENED)
    before = _register_every_route(ledger, routings, clock)
    edited = Routings(load_all(_edit_every_country_file(tmp_path)))
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(tmp_path / "config"))
    assert all(edited.for_country(c).version != routings.for_country(c).version for c, _ in ROUTES)
    after = _register_every_route(ledger, edited, clock)

    later = OPENED + timedelta(days=400)
    rungs, _ = sweep_now(ledger, thresholds=[30], now=later)
    assert rungs.failures == []
    assert rungs.created == len(before) + len(after) + len(_legal_notices(ledger))
    assert send_pending(ledger=ledger, now=later).failed == 0
    late = {m["title"].split(": ")[1].split(" ")[0] for m in read_outbox(everything)}
    assert {ref for *_, ref in before + after} <= late


def test_a_route_shadowed_by_an_earlier_one_is_reported() -> None:
    routing = load_all(REPO / "config")["SV"]
    route = routing.config.routes[-1]
    with pytest.raises(AssertionError, match="is shadowed by earlier routes"):
        request_for(routing, route.model_copy(update={"when": routing.config.routes[0].when}))

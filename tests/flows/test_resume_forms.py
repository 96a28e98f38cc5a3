"""The resume form a case's run waits on: the case above it, only the hop's decisions, every
field described, and no wake-up box; the waker's payload still passes the server's check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prefect._internal.pydantic.v2_schema import create_v2_schema
from prefect.input import RunInput
from prefect.utilities.schema_tools import ValidationError, validate

from models import engine
from models.clock import FixedClock
from models.engine import Routings
from models.ledger import Ledger
from tasks.cases import (
    Wake,
    decision_form,
    hop_on_desk,
    is_decision,
)
from tests.samples import intake


def _case_at_hop(ledger: Ledger, routings: Routings, hops: int) -> str:
    """A case registered 30 days ago and forwarded until hop `hops` is open."""
    now = datetime.now(UTC)
    clock = FixedClock(now)
    with ledger.transaction() as session:
        ref = engine.register(
            session=session,
            clock=clock,
            routings=routings,
            data=intake(),
            on=now - timedelta(days=30),
        ).reference
        for hop in range(1, hops):
            engine.decide(
                session=session,
                clock=clock,
                routings=routings,
                reference=ref,
                outcome="forwarded",
                hop=hop,
            )
    return ref


def _schema(form: type[RunInput]) -> dict[str, Any]:
    """The schema Prefect stores for the form: what the UI draws and the server checks."""
    return create_v2_schema(form.__name__, model_base=form)


def _offered(schema: dict[str, Any]) -> list[str]:
    choices = schema["properties"]["outcome"]["anyOf"][0]["enum"]
    return list(choices)


def test_the_form_offers_only_the_hops_decisions_with_the_hop_filled_in(
    site: Ledger, routings: Routings
) -> None:
    ref = _case_at_hop(site, routings, hops=2)
    on_desk = hop_on_desk(site, ref, now=datetime.now(UTC))
    assert on_desk is not None and on_desk.hop == 2
    schema = _schema(decision_form(on_desk, admit=None))
    assert sorted(_offered(schema)) == sorted(on_desk.outcomes)
    assert "executed" not in _offered(schema)
    assert schema["properties"]["hop"]["default"] == 2
    assert "recorded" not in schema["properties"]
    assert next(iter(schema["properties"])) == "outcome"
    missing = [n for n, p in schema["properties"].items() if not p.get("description")]
    assert missing == []


def test_the_last_hops_form_offers_no_forwarding_once_the_waker_sends_no_outcome(
    site: Ledger, routings: Routings
) -> None:
    ref = _case_at_hop(site, routings, hops=5)
    on_desk = hop_on_desk(site, ref, now=datetime.now(UTC))
    assert on_desk is not None and "forwarded" not in on_desk.outcomes
    assert "forwarded" not in _offered(_schema(decision_form(on_desk, admit=None)))
    with pytest.raises(ValidationError, match="'forwarded' is not one of"):
        validate(
            {"outcome": "forwarded"},
            _schema(decision_form(on_desk, admit=None)),
            raise_on_error=True,
        )


def test_the_description_shows_the_case_in_its_holders_time_with_its_page(
    site: Ledger, routings: Routings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROGATORY_BASE_URL", "https://rogatory.example.org")
    ref = _case_at_hop(site, routings, hops=1)
    on_desk = hop_on_desk(site, ref, now=datetime.now(UTC))
    assert on_desk is not None
    text = decision_form(on_desk)._description
    assert isinstance(text, str)
    assert f"{ref}, hop 1: {on_desk.step}" in text
    assert f"**Held by:** {on_desk.holder_name}" in text
    assert "**Since:**" in text and " CST" in text  # El Salvador's local time
    assert "**Due:**" in text and "**Days late:**" in text
    assert "**Prescription slack:**" in text and "(prescription " in text
    assert f"(https://rogatory.example.org/cases/{ref})" in text


@pytest.mark.parametrize("hops", [1, 5])
def test_every_form_accepts_a_resume_without_input_and_offers_only_its_hops_outcomes(
    site: Ledger, routings: Routings, hops: int
) -> None:
    ref = _case_at_hop(site, routings, hops=hops)
    on_desk = hop_on_desk(site, ref, now=datetime.now(UTC))
    schema = _schema(decision_form(on_desk))
    validate({}, schema, raise_on_error=True)  # the waker's resume: no input
    offered = set(schema["properties"]["outcome"]["anyOf"][0]["enum"])
    assert offered == {str(o) for o in on_desk.outcomes}


def test_a_wake_is_told_apart_from_decisions_and_the_requesters_answer() -> None:
    key = "sv-2026-000001-h1-s3-a0"
    assert not is_decision(key, {"outcome": "forwarded", "recorded": True, "hop": 2})
    assert is_decision(key, {"outcome": "forwarded", "hop": 1})
    assert is_decision(key, {"note": "no outcome chosen"})  # refused with a notice, not lost
    assert not is_decision("sv-2026-000001-requester-s4-a0", {"note": "answered"})
    assert Wake.model_validate({"recorded": True, "outcome": "forwarded"}).recorded is True


def test_without_an_open_hop_the_form_offers_every_outcome_and_no_case() -> None:
    form = decision_form(None, admit=None)
    schema = _schema(form)
    assert len(_offered(schema)) == 6 and schema["properties"]["hop"]["default"] is None
    assert not isinstance(form._description, str)  # no description stored

"""Every role boundary of models/access.py, through the real HTTP API, on SQLite and PostgreSQL.

Each refusal is checked three ways: its status, its problem+json body, and that the ledger holds
exactly what it held before. Each acceptance is checked by the actor the ledger recorded, which
must be the account of the token or session, whatever else the call claims.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.api import SESSION_COOKIE
from models import identity
from models.clock import FixedClock
from models.identity import MAX_FAILURES_PER_ACCOUNT, SESSION_TTL, THROTTLE_WINDOW, SecurityEvent
from models.ledger import Ledger
from tests.app.access_world import PASSWORD, READ_ONLY, SIGNS_IN, World, build_world
from tests.samples import intake

WORK: dict[str, dict[str, Any]] = {
    "decide": {"outcome": "forwarded"},
    "clock-stop": {"reason": "waiting for the requester's translation"},
    "reassign": {"to": "csj", "note": "the court's desk"},
    "record": {"event": "request_sent_abroad", "on": "2026-03-02"},
}
"""A command of the holder's daily work, with a body the engine accepts on a fresh case."""
RETURN = {"outcome": "returned", "cause": "incomplete_request"}


@pytest.fixture
def world(ledger: Ledger, clock: FixedClock) -> World:
    return build_world(ledger, clock)


def refused(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert a refusal with `status`, told as RFC 9457 problem details; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


def accepted_as(world: World, response: httpx.Response, who: str, *, after: int) -> None:
    """Assert the command was recorded, every event of it with `who` as the actor."""
    assert response.status_code in (200, 201), response.text
    reference = response.json()["reference"]
    events = world.events_after(reference, after)
    assert events, "the accepted command recorded no event"
    assert {actor for _, actor in events} == {who}, events


# -- the holder's work --------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(WORK))
def test_a_clerk_cannot_work_a_hop_held_by_another_authority(world: World, command: str) -> None:
    before = world.seq("sv")
    body = refused(world.command("clerk-mjsp", "sv", command, WORK[command]), 403)
    assert "held by fgr" in body["detail"]
    assert world.seq("sv") == before


@pytest.mark.parametrize("who", ["clerk-fgr", "head-fgr"])
@pytest.mark.parametrize("command", sorted(WORK))
def test_the_holders_clerk_and_head_work_its_hop_as_themselves(
    world: World, command: str, who: str
) -> None:
    before = world.seq("sv")
    accepted_as(world, world.command(who, "sv", command, WORK[command]), who, after=before)


def test_a_clerk_cannot_resubmit_a_case_returned_from_another_authority(world: World) -> None:
    assert world.command("coord-sv", "sv", "decide", RETURN).status_code == 200
    before = world.seq("sv")
    refused(world.command("clerk-mjsp", "sv", "resubmit", {}), 403)
    assert world.seq("sv") == before


def test_the_clerk_of_the_authority_it_was_returned_from_resubmits(world: World) -> None:
    assert world.command("coord-sv", "sv", "decide", RETURN).status_code == 200
    before = world.seq("sv")
    accepted_as(world, world.command("clerk-fgr", "sv", "resubmit", {}), "clerk-fgr", after=before)


def test_a_clerk_works_a_hop_once_it_is_reassigned_to_their_authority(world: World) -> None:
    assert world.command("coord-sv", "sv", "reassign", {"to": "mjsp"}).status_code == 200
    refused(world.command("clerk-fgr", "sv", "decide", WORK["decide"]), 403)
    before = world.seq("sv")
    response = world.command("clerk-mjsp", "sv", "decide", WORK["decide"])
    accepted_as(world, response, "clerk-mjsp", after=before)


@pytest.mark.parametrize("case", ["sv", "sv-sealed"])
@pytest.mark.parametrize("command", sorted(WORK))
def test_the_coordinator_works_any_hop_of_their_country(
    world: World, command: str, case: str
) -> None:
    before = world.seq(case)
    accepted_as(
        world, world.command("coord-sv", case, command, WORK[command]), "coord-sv", after=before
    )


@pytest.mark.parametrize(
    "who",
    ["coord-gt", "ministry-sv", "auditor-sv", "auditor-all", "admin", READ_ONLY],
)
def test_callers_without_the_hop_are_refused_a_decision_and_nothing_is_written(
    world: World, who: str
) -> None:
    before = world.written()
    refused(world.command(who, "sv", "decide", WORK["decide"]), 403)
    assert world.written() == before


def test_a_coordinator_cannot_act_on_another_countrys_case(world: World) -> None:
    before = world.seq("gt")
    refused(world.command("coord-sv", "gt", "decide", WORK["decide"]), 403)
    assert world.seq("gt") == before


# -- withdraw and migrate -----------------------------------------------------------------------


def test_a_clerk_of_the_holder_may_not_withdraw(world: World) -> None:
    before = world.seq("sv")
    refused(world.command("clerk-fgr", "sv", "withdraw", {}), 403)
    assert world.seq("sv") == before


@pytest.mark.parametrize("who", ["head-fgr", "coord-sv"])
def test_the_holders_head_and_the_coordinator_withdraw(world: World, who: str) -> None:
    before = world.seq("sv")
    response = world.command(who, "sv", "withdraw", {"note": "no longer needed"})
    accepted_as(world, response, who, after=before)
    assert response.json()["status"] == "closed"


@pytest.mark.parametrize("who", ["ministry-sv", "coord-sv"])
def test_the_ministry_and_the_coordinator_may_migrate(world: World, who: str) -> None:
    response = world.command(who, "sv", "migrate", {})
    # The case already runs on the routing in force, so the engine refuses the move: the
    # point is that access let the call through to the engine.
    assert response.status_code != 403, response.text
    assert response.json()["type"].endswith("/command-refused")
    assert "already runs on the current routing" in response.json()["detail"]


@pytest.mark.parametrize("who", ["clerk-fgr", "head-fgr", "auditor-sv", "coord-gt", "admin"])
def test_migrating_is_refused_outside_the_coordinator_and_the_ministry(
    world: World, who: str
) -> None:
    before = world.seq("sv")
    refused(world.command(who, "sv", "migrate", {}), 403)
    assert world.seq("sv") == before


# -- register -----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["clerk-fgr", "clerk-mjsp", "head-fgr", "coord-sv"])
def test_a_clerk_head_or_coordinator_registers_their_countrys_requests(
    world: World, who: str
) -> None:
    accepted_as(world, world.register(who, intake()), who, after=0)


@pytest.mark.parametrize(
    ("who", "country"),
    [
        ("clerk-fgr", "GT"),
        ("coord-sv", "GT"),
        ("auditor-sv", "SV"),
        ("auditor-all", "SV"),
        ("ministry-sv", "SV"),
        ("admin", "SV"),
        (READ_ONLY, "SV"),
    ],
)
def test_registering_is_refused_outside_the_callers_country_and_roles(
    world: World, who: str, country: str
) -> None:
    before = world.written()
    refused(world.register(who, intake(country=country)), 403)
    assert world.written() == before


# -- reading cases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "case"),
    [
        ("clerk-mjsp", "sv"),  # a non-confidential case of their country
        ("clerk-mjsp", "sv-confidential"),  # confidential, mjsp on its route
        ("clerk-fgr", "sv-sealed"),  # confidential, fgr on its route though no hop yet
        ("auditor-sv", "sv"),
        ("auditor-all", "gt"),
        ("coord-sv", "sv-sealed"),
        ("ministry-sv", "sv-sealed"),
        (READ_ONLY, "sv"),
    ],
)
def test_a_case_is_read_by_those_the_rule_table_names(world: World, who: str, case: str) -> None:
    response = world.get(who, f"/api/cases/{world.refs[case]}")
    assert response.status_code == 200, response.text
    assert response.json()["reference"] == world.refs[case]


@pytest.mark.parametrize(
    ("who", "case"),
    [
        ("clerk-mjsp", "sv-sealed"),  # confidential, its route never passes mjsp
        ("clerk-fgr", "gt"),
        ("auditor-sv", "gt"),
        ("auditor-sv", "sv-confidential"),
        ("auditor-all", "sv-confidential"),
        ("coord-sv", "gt"),
        ("coord-gt", "sv"),
        ("admin", "sv"),
    ],
)
def test_a_case_is_refused_to_everyone_else(world: World, who: str, case: str) -> None:
    body = refused(world.get(who, f"/api/cases/{world.refs[case]}"), 403)
    assert who in body["detail"]


def test_a_coordinators_search_lists_only_their_countrys_cases(world: World) -> None:
    listed = world.get("coord-sv", "/api/cases").json()["cases"]
    sv = {world.refs[c] for c in ("sv", "sv-confidential", "sv-sealed")}
    assert {row["reference"] for row in listed} == sv
    assert world.get("coord-sv", "/api/cases", country="GT").json()["cases"] == []


def test_an_auditors_search_leaves_out_confidential_cases(world: World) -> None:
    listed = world.get("auditor-all", "/api/cases").json()["cases"]
    assert {row["reference"] for row in listed} == {world.refs["sv"], world.refs["gt"]}


def test_an_admins_search_finds_no_case(world: World) -> None:
    response = world.get("admin", "/api/cases")
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 0


# -- inboxes, overdue lists, reports and the event log --------------------------------------------


@pytest.mark.parametrize("who", ["clerk-fgr", "head-fgr", "coord-sv", "ministry-sv"])
def test_an_inbox_is_read_by_its_authority_the_coordinator_and_the_ministry(
    world: World, who: str
) -> None:
    response = world.get(who, "/api/inbox/SV/fgr")
    assert response.status_code == 200, response.text
    assert world.refs["sv"] in response.text


@pytest.mark.parametrize("who", ["clerk-mjsp", "auditor-sv", "auditor-all", "coord-gt", "admin"])
def test_an_inbox_is_refused_to_everyone_else(world: World, who: str) -> None:
    refused(world.get(who, "/api/inbox/SV/fgr"), 403)


@pytest.mark.parametrize("who", ["coord-sv", "ministry-sv", "auditor-sv", "auditor-all"])
def test_the_overdue_list_is_read_by_oversight_and_auditors(world: World, who: str) -> None:
    assert world.get(who, "/api/overdue/SV").status_code == 200


@pytest.mark.parametrize("who", ["clerk-fgr", "head-fgr", "coord-gt", "admin"])
def test_the_overdue_list_is_refused_to_clerks_and_other_countries(world: World, who: str) -> None:
    refused(world.get(who, "/api/overdue/SV"), 403)


@pytest.mark.parametrize("auditor", ["auditor-sv", "auditor-all"])
def test_confidential_cases_are_left_out_of_an_auditors_overdue_list(
    world: World, auditor: str
) -> None:
    world.clock.advance(timedelta(days=20))  # every first hop is overdue by then
    seen = world.get(auditor, "/api/overdue/SV")
    full = world.get("coord-sv", "/api/overdue/SV")
    assert seen.status_code == full.status_code == 200
    listed = {item["reference"] for item in seen.json()}
    assert {item["reference"] for item in full.json()} == {
        world.refs[c] for c in ("sv", "sv-confidential", "sv-sealed")
    }
    # The same auditor gets 403 on these cases one by one, and they are left out of the
    # auditor's report and event log: the overdue list must not name them either.
    assert world.refs["sv"] in listed
    assert world.refs["sv-confidential"] not in listed
    assert world.refs["sv-sealed"] not in listed


@pytest.mark.parametrize("country", ["SV", "GT"])
def test_the_auditor_of_all_countries_reads_any_countrys_report(world: World, country: str) -> None:
    response = world.get("auditor-all", "/api/report", country=country)
    assert response.status_code == 200, response.text
    assert response.json()["filters"]["countries"] == [country]


@pytest.mark.parametrize(
    ("who", "country"),
    [("auditor-sv", "GT"), ("coord-sv", "GT"), ("clerk-fgr", "SV"), ("admin", "SV")],
)
def test_a_report_is_refused_outside_the_callers_countries(
    world: World, who: str, country: str
) -> None:
    refused(world.get(who, "/api/report", country=country), 403)


@pytest.mark.parametrize("auditor", ["auditor-sv", "auditor-all"])
def test_confidential_cases_reach_an_auditors_report_only_in_aggregates(
    world: World, auditor: str
) -> None:
    seen = world.get(auditor, "/api/report", country="SV")
    full = world.get("coord-sv", "/api/report", country="SV")
    assert seen.status_code == full.status_code == 200
    for case in ("sv-confidential", "sv-sealed"):
        assert world.refs[case] in full.text
        assert world.refs[case] not in seen.text
    assert world.refs["sv"] in seen.text
    assert seen.json()["summary"]["cases"] == full.json()["summary"]["cases"] == 3


@pytest.mark.parametrize("auditor", ["auditor-sv", "auditor-all"])
def test_confidential_cases_are_left_out_of_an_auditors_event_log(
    world: World, auditor: str
) -> None:
    seen = world.get(auditor, "/api/export-log", format="csv", country="SV")
    full = world.get("coord-sv", "/api/export-log", format="csv", country="SV")
    assert seen.status_code == full.status_code == 200
    for case in ("sv-confidential", "sv-sealed"):
        assert world.refs[case] in full.text
        assert world.refs[case] not in seen.text
    assert world.refs["sv"] in seen.text


# -- tokens, sessions and sign-in ---------------------------------------------------------------


def test_a_call_without_credentials_is_not_signed_in(world: World) -> None:
    refused(world.browser().get(f"/api/cases/{world.refs['sv']}"), 401)
    bogus = {"Authorization": "Bearer rgt_not-a-token"}
    refused(world.client.get(f"/api/cases/{world.refs['sv']}", headers=bogus), 401)


def test_a_revoked_token_is_not_signed_in(world: World) -> None:
    with world.ledger.transaction() as session:
        identity.revoke_token(
            session, token_id=world.token_ids["coord-sv"], now=world.clock.now(), actor="test"
        )
    body = refused(world.get("coord-sv", f"/api/cases/{world.refs['sv']}"), 401)
    assert "revoked" in body["detail"]


def test_an_expired_token_is_not_signed_in(world: World) -> None:
    with world.ledger.transaction() as session:
        _, short = identity.issue_token(
            session,
            name="coord-sv",
            label="one hour",
            scopes=list(identity.Scope),
            expires_in=timedelta(hours=1),
            now=world.clock.now(),
            actor="test",
        )
    world.tokens["short"] = short
    assert world.get("short", f"/api/cases/{world.refs['sv']}").status_code == 200
    world.clock.advance(timedelta(hours=1, seconds=1))
    body = refused(world.get("short", f"/api/cases/{world.refs['sv']}"), 401)
    assert "expired" in body["detail"]
    assert world.get("coord-sv", f"/api/cases/{world.refs['sv']}").status_code == 200


def _signed_in(world: World) -> tuple[httpx.Client, str]:
    """A browser signed in as SIGNS_IN over the API: (the browser, the session's CSRF token)."""
    browser = world.browser()
    response = browser.post("/api/session", json={"username": SIGNS_IN, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return browser, response.json()["csrf_token"]


def test_a_closed_accounts_token_session_and_password_stop_working(world: World) -> None:
    browser, _ = _signed_in(world)
    with world.ledger.transaction() as session:
        identity.deactivate(session, name=SIGNS_IN, now=world.clock.now(), actor="test")
    refused(world.get(SIGNS_IN, f"/api/cases/{world.refs['sv']}"), 401)
    refused(browser.get("/api/session"), 401)
    again = world.browser().post("/api/session", json={"username": SIGNS_IN, "password": PASSWORD})
    refused(again, 401)


def test_a_session_left_idle_past_its_ttl_is_not_signed_in(world: World) -> None:
    browser, _ = _signed_in(world)
    assert browser.get("/api/session").json()["name"] == SIGNS_IN
    world.clock.advance(SESSION_TTL + timedelta(minutes=1))
    refused(browser.get("/api/session"), 401)


def test_a_signed_out_session_is_not_signed_in(world: World) -> None:
    browser, csrf = _signed_in(world)
    secret = browser.cookies[SESSION_COOKIE]
    assert browser.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    replayed = world.browser().get("/api/session", headers={"Cookie": f"{SESSION_COOKIE}={secret}"})
    refused(replayed, 401)


def test_a_read_only_token_reads_but_cannot_decide(world: World) -> None:
    assert world.get(READ_ONLY, f"/api/cases/{world.refs['sv']}").status_code == 200
    before = world.seq("sv")
    body = refused(world.command(READ_ONLY, "sv", "decide", WORK["decide"]), 403)
    assert "limited to read" in body["detail"]
    assert world.seq("sv") == before


@pytest.mark.parametrize("csrf", [None, "not-the-sessions-token"])
def test_a_cookie_session_write_without_its_csrf_token_is_refused(
    world: World, csrf: str | None
) -> None:
    browser, _ = _signed_in(world)
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    before = world.seq("sv")
    response = browser.post(
        f"/api/cases/{world.refs['sv']}/decide", json=WORK["decide"], headers=headers
    )
    assert "CSRF" in refused(response, 403)["detail"]
    assert world.seq("sv") == before


def test_a_cookie_session_write_with_its_csrf_token_is_recorded_as_the_account(
    world: World,
) -> None:
    browser, csrf = _signed_in(world)
    before = world.seq("sv")
    response = browser.post(
        f"/api/cases/{world.refs['sv']}/decide",
        json=WORK["decide"],
        headers={"X-CSRF-Token": csrf},
    )
    accepted_as(world, response, SIGNS_IN, after=before)


def test_sign_in_is_throttled_after_repeated_failures_until_the_window_passes(
    world: World,
) -> None:
    browser = world.browser()
    wrong = {"username": SIGNS_IN, "password": "not the passphrase"}
    right = {"username": SIGNS_IN, "password": PASSWORD}
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        refused(browser.post("/api/session", json=wrong), 401)
    body = refused(browser.post("/api/session", json=right), 401)
    assert "too many failed sign-ins" in body["detail"]
    with world.ledger.session() as session:
        logged = session.scalars(
            select(SecurityEvent.kind).where(SecurityEvent.account == SIGNS_IN)
        ).all()
    assert logged.count("sign_in_failed") == MAX_FAILURES_PER_ACCOUNT
    assert logged.count("sign_in_throttled") == 1
    assert "signed_in" not in logged

    world.clock.advance(THROTTLE_WINDOW + timedelta(seconds=1))
    assert browser.post("/api/session", json=right).status_code == 200


# -- identity comes from the token or the session only -----------------------------------------

CLAIMS = {
    "X-User": "coord-sv",
    "X-Remote-User": "coord-sv",
    "X-Forwarded-User": "coord-sv",
    "X-Actor": "coord-sv",
}


def test_a_claimed_identity_header_does_not_change_the_actor(world: World) -> None:
    before = world.seq("sv")
    response = world.command("clerk-fgr", "sv", "decide", WORK["decide"], **CLAIMS)
    accepted_as(world, response, "clerk-fgr", after=before)


def test_a_claimed_identity_header_does_not_lift_a_refusal(world: World) -> None:
    before = world.seq("sv")
    refused(world.command("clerk-mjsp", "sv", "decide", WORK["decide"], **CLAIMS), 403)
    assert world.seq("sv") == before


def test_an_actor_field_in_a_command_is_refused_and_writes_nothing(world: World) -> None:
    before = world.written()
    body = {**WORK["decide"], "actor": "coord-sv"}
    assert "actor" in refused(world.command("clerk-fgr", "sv", "decide", body), 422)["detail"]
    registered = world.client.post(
        "/api/cases",
        json={"request": intake(), "actor": "coord-sv"},
        headers=world.headers("clerk-fgr"),
    )
    assert "actor" in refused(registered, 422)["detail"]
    assert world.written() == before

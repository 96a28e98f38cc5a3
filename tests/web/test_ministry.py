"""The ministry's routing pages over HTTP: who sees them, a draft checked line by line and
compared with the routing in force, and a publication that replaces the file, goes on the
record and leaves every registered case on the version it pinned."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api import create_app
from app.service import Service
from models import identity
from models.clock import FixedClock
from models.commands import Register
from models.identity import Grant, RoleName
from models.ledger import Ledger, RoutingPublication, RoutingVersion
from models.publishing import in_force
from tests.samples import intake

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough passphrase"
ACCOUNTS = {
    "ministry-sv": Grant(RoleName.MINISTRY, "SV"),
    "coord-sv": Grant(RoleName.COORDINATOR, "SV"),
    "clerk-fgr": Grant(RoleName.CLERK, "SV", "fgr"),
    "ministry-gt": Grant(RoleName.MINISTRY, "GT"),
}
COURT = "      - {id: court, holder: csj, sla: 10bd}          # para 25"


@dataclass
class World:
    client: TestClient
    ledger: Ledger
    clock: FixedClock
    config: Path

    @property
    def sv_file(self) -> Path:
        return self.config / "countries" / "sv.yaml"

    def signed_in(self, name: str) -> TestClient:
        browser = TestClient(self.client.app, base_url="https://testserver")
        answer = browser.post("/login", data={"username": name, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return browser

    def publications(self) -> list[RoutingPublication]:
        with self.ledger.session() as session:
            return list(session.scalars(select(RoutingPublication)))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    monkeypatch.setenv("ROGATORY_CONFIG_DIR", str(config))
    clock = FixedClock(datetime(2026, 11, 2, 15, tzinfo=UTC))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)
    with ledger.transaction() as session:
        for name, grant in ACCOUNTS.items():
            identity.add_account(
                session, name=name, grants=[grant], now=clock.now(), actor="t", password=PASSWORD
            )
    app = create_app(ledger, clock=clock, wake=lambda command, result: None)
    yield World(TestClient(app, base_url="https://testserver"), ledger, clock, config)
    ledger.dispose()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


def hidden_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `action`, unescaped as a browser sends them."""
    block = page.split(f'action="{action}"', 1)[1].split("</form>", 1)[0]
    found = re.findall(r'type="hidden" name="([a-z_]+)" value="([^"]*)"', block)
    return {name: html.unescape(value) for name, value in found}


def check(browser: TestClient, text: str, country: str = "SV") -> str:
    page = browser.get(f"/ministry/{country}/draft").text
    answer = browser.post(
        f"/ministry/{country}/draft", data={"csrf_token": csrf_of(page), "text": text}
    )
    assert answer.status_code == 200, answer.text
    return answer.text


def sv_text(world: World) -> str:
    return world.sv_file.read_text(encoding="utf-8")


def slower_court(world: World) -> str:
    text = sv_text(world)
    assert COURT in text
    return text.replace(COURT, COURT.replace("sla: 10bd", "sla: 12bd"))


# -- who sees what ------------------------------------------------------------------------------


def test_the_ministry_sees_its_countrys_chains_and_the_version_in_force(world: World) -> None:
    browser = world.signed_in("ministry-sv")
    listing = browser.get("/ministry")
    assert listing.status_code == 200
    assert 'href="/ministry/SV"' in listing.text
    assert "/ministry/GT" not in listing.text

    page = browser.get("/ministry/SV")
    assert page.status_code == 200
    routing = in_force("SV", root=world.config)
    assert routing is not None
    assert f"<code>{routing.version}</code>" in page.text
    assert "<h1>Routing of El Salvador (SV)</h1>" in page.text
    route = page.text.split('id="route-mla-outgoing"', 1)[1].split("</section>", 1)[0]
    steps = re.findall(r'<span class="holder">([^<]+)</span>', route)
    assert steps == [
        "Fiscalía General de la República",
        "Corte Suprema de Justicia",
        "Corte Suprema de Justicia",
        "Ministerio de Justicia y Seguridad Pública",
        "Ministerio de Relaciones Exteriores",
        "Requested state",
    ]
    assert "10 business days" in route and "90 calendar days" in route
    assert "returned → draft" in route.replace("<li>", "\n")
    assert '<a href="#ladder-h">the country&#39;s ladder</a>' in route
    ladder = page.text.split('id="ladder-h"', 1)[1].split("</section>", 1)[0]
    assert "150%: head, coordinator (escalation, again every 10 business days)" in ladder
    assert "Nothing published here yet." in page.text


def test_the_coordinator_may_look_but_not_publish(world: World) -> None:
    browser = world.signed_in("coord-sv")
    assert browser.get("/ministry/SV").status_code == 200
    page = check(browser, slower_court(world))
    assert "Only the ministry of this country publishes" in page
    assert 'action="/ministry/SV/publish"' not in page
    before = sv_text(world)
    refused = browser.post(
        "/ministry/SV/publish",
        data={"csrf_token": csrf_of(page), "text": slower_court(world), "note": "faster"},
    )
    assert refused.status_code == 403
    assert "only its ministry may" in refused.text
    assert sv_text(world) == before
    assert world.publications() == []


@pytest.mark.parametrize(
    "path", ["/ministry", "/ministry/SV", "/ministry/SV/calendar", "/ministry/SV/draft"]
)
def test_a_clerk_is_refused_every_routing_page(world: World, path: str) -> None:
    browser = world.signed_in("clerk-fgr")
    answer = browser.get(path)
    assert answer.status_code == 403
    assert "<h1>Not allowed for your role</h1>" in answer.text


def test_another_countrys_ministry_is_refused(world: World) -> None:
    browser = world.signed_in("ministry-gt")
    assert browser.get("/ministry/SV").status_code == 403
    page = browser.get("/ministry/GT/draft")
    before = sv_text(world)
    refused = browser.post(
        "/ministry/SV/publish",
        data={"csrf_token": csrf_of(page.text), "text": slower_court(world), "note": "x"},
    )
    assert refused.status_code == 403
    assert sv_text(world) == before


def test_the_pages_need_a_sign_in(world: World) -> None:
    answer = world.client.get("/ministry/SV", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fministry%2FSV"


def test_a_post_without_its_csrf_token_is_refused_and_writes_nothing(world: World) -> None:
    browser = world.signed_in("ministry-sv")
    before = sv_text(world)
    assert browser.post("/ministry/SV/draft", data={"text": before}).status_code == 403
    fields = hidden_fields(check(browser, slower_court(world)), "/ministry/SV/publish")
    del fields["csrf_token"]
    refused = browser.post("/ministry/SV/publish", data={**fields, "note": "n"})
    assert refused.status_code == 403
    assert "did not come from this site" in refused.text
    assert sv_text(world) == before
    assert world.publications() == []


# -- checking a draft ---------------------------------------------------------------------------


def test_a_broken_draft_shows_each_problem_beside_its_line(world: World) -> None:
    text = sv_text(world)
    broken = text.replace("holder: mjsp, sla: 5bd}       # paras 47", "holder: mjsx, sla: 5bd}  #")
    line = next(n for n, t in enumerate(broken.split("\n"), 1) if "mjsx" in t)
    page = check(world.signed_in("ministry-sv"), broken)
    problem = (
        f"countries/sv.yaml:{line}:24: routes[0].steps[3].holder: unknown authority 'mjsx' "
        "(known: fgr, csj, mjsp, rree, abroad)"
    )
    summary = html.unescape(page.split('id="problems-h"', 1)[1].split("</div>", 1)[0])
    assert f'href="#L{line}"><code>{problem}</code>' in summary
    row = html.unescape(page.split(f'<tr id="L{line}" class="has-problem">', 1)[1])
    row = row.split("</tr>", 1)[0]
    assert "holder: mjsx" in row
    assert f'<p class="line-problem">{problem}</p>' in row
    assert 'action="/ministry/SV/publish"' not in page


def test_an_uploaded_file_is_checked_like_pasted_text(world: World) -> None:
    browser = world.signed_in("ministry-sv")
    page = browser.get("/ministry/SV/draft").text
    answer = browser.post(
        "/ministry/SV/draft",
        data={"csrf_token": csrf_of(page), "text": ""},
        files={"file": ("sv-draft.yaml", b"country: SV\nname: [unclosed\n", "text/yaml")},
    )
    assert answer.status_code == 200
    assert "countries/sv.yaml:3:1: YAML syntax" in answer.text


def test_a_draft_of_another_country_is_refused_at_its_country_line(world: World) -> None:
    text = (world.config / "countries" / "gt.yaml").read_text(encoding="utf-8")
    line = next(n for n, t in enumerate(text.split("\n"), 1) if t.startswith("country:"))
    page = check(world.signed_in("ministry-sv"), text)
    assert (
        f"countries/sv.yaml:{line}:1: country: this draft is the routing of GT, not of SV" in page
    )
    assert 'action="/ministry/SV/publish"' not in page


def test_a_valid_draft_shows_what_it_would_change(world: World) -> None:
    page = check(world.signed_in("ministry-sv"), slower_court(world))
    assert "This draft is valid" in page
    changed = page.split('id="d-mla-outgoing"', 1)[1].split("</section>", 1)[0]
    assert "<strong>Step court</strong> (Corte Suprema de Justicia)" in changed
    assert "SLA: <del>10bd</del> → <ins>12bd</ins>" in changed
    assert 'id="d-mla-incoming"' not in page  # an untouched route is not listed
    assert '<span class="del">-      - {id: court, holder: csj, sla: 10bd}' in page
    assert 'action="/ministry/SV/publish"' in page


def test_an_unchanged_draft_offers_nothing_to_publish(world: World) -> None:
    page = check(world.signed_in("ministry-sv"), "# reworded comment\n" + sv_text(world))
    assert "Nothing: the draft means the same as the routing in force" in page
    assert 'action="/ministry/SV/publish"' not in page


# -- publishing ---------------------------------------------------------------------------------


def test_publishing_replaces_the_file_and_records_who_and_when(world: World) -> None:
    local = identity.local_caller("test")
    before = in_force("SV", root=world.config)
    assert before is not None
    earlier = Service(world.ledger, clock=world.clock).submit(Register(request=intake()), local)

    browser = world.signed_in("ministry-sv")
    draft = slower_court(world)
    fields = hidden_fields(check(browser, draft), "/ministry/SV/publish")
    answer = browser.post(
        "/ministry/SV/publish",
        data={**fields, "note": "Circular 7/2026: the Court needs two more days"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    after = in_force("SV", root=world.config)
    assert after is not None and after.version != before.version
    assert answer.headers["location"] == f"/ministry/SV?published={after.version}"
    assert sv_text(world) == draft
    assert not list((world.config / "countries").glob(".*.tmp"))

    [record] = world.publications()
    assert (record.country, record.version, record.previous_version) == (
        "SV",
        after.version,
        before.version,
    )
    assert record.published_by == "ministry-sv"
    assert record.published_at == world.clock.now()
    assert record.note == "Circular 7/2026: the Court needs two more days"
    with world.ledger.session() as session:
        pinned = session.get(RoutingVersion, after.version)
    assert pinned is not None and pinned.yaml_text == draft

    page = browser.get(answer.headers["location"]).text
    assert f"Published: version <code>{after.version}</code>" in page
    history = page.split('id="history-h"', 1)[1]
    assert "ministry-sv" in history and "Circular 7/2026" in history

    service = Service(world.ledger, clock=world.clock)
    later = service.submit(Register(request=intake()), local)
    assert service.timeline(earlier.reference, local).routing_version == before.version
    assert service.timeline(later.reference, local).routing_version == after.version


def test_a_draft_reviewed_against_an_older_version_is_not_published(world: World) -> None:
    browser = world.signed_in("ministry-sv")
    draft = slower_court(world)
    first = hidden_fields(check(browser, draft), "/ministry/SV/publish")
    other = sv_text(world).replace("sla: 90d", "sla: 80d")
    second = hidden_fields(check(browser, other), "/ministry/SV/publish")
    assert browser.post("/ministry/SV/publish", data={**first, "note": "one"}).status_code == 200
    stale = browser.post("/ministry/SV/publish", data={**second, "note": "two"})
    assert stale.status_code == 409
    assert "check your draft again" in stale.text
    assert sv_text(world) == draft
    assert [p.note for p in world.publications()] == ["one"]


def test_a_text_changed_after_its_review_is_not_published(world: World) -> None:
    browser = world.signed_in("ministry-sv")
    fields = hidden_fields(check(browser, slower_court(world)), "/ministry/SV/publish")
    before = sv_text(world)
    fields["text"] = fields["text"].replace("sla: 12bd", "sla: 40bd")
    answer = browser.post("/ministry/SV/publish", data={**fields, "note": "n"})
    assert answer.status_code == 409
    assert sv_text(world) == before
    assert world.publications() == []


# -- the calendar -------------------------------------------------------------------------------


def test_the_calendar_names_holidays_and_closures_month_by_month(world: World) -> None:
    browser = world.signed_in("ministry-sv")
    page = browser.get("/ministry/SV/calendar?authority=csj&year=2026")
    assert page.status_code == 200
    assert "<h1>Calendar of Corte Suprema de Justicia · 2026</h1>" in page.text
    august = page.text.split('id="m8"', 1)[1].split("</section>", 1)[0]
    assert "August 2026 · 17 business days" in august
    # The public employees' August vacation, 1-6 August every year; the 6th is also a holiday.
    assert '2026-08-01</time>–<time datetime="2026-08-05">2026-08-05</time> · closure: ' in august
    assert "closure: vacación agostina (Ley de Asuetos" in august
    assert "2026-08-06</time> · public holiday: Celebrations of San Salvador" in august
    assert '<td class="cal-day weekend">8</td>' in august  # a Saturday
    assert "No closures or judicial vacations are listed for this year" not in page.text


def test_the_calendar_says_what_it_does_not_cover(world: World) -> None:
    browser = world.signed_in("ministry-sv")
    # Recurring vacations come back every year: no year is said to lack them.
    later = browser.get("/ministry/SV/calendar?year=2031").text
    assert "No closures or judicial vacations are listed" not in later
    assert "vacación agostina" in later.split('id="m8"', 1)[1].split("</section>", 1)[0]
    outside = browser.get("/ministry/SV/calendar?year=2150").text
    assert "This year is outside what the calendar covers" in outside
    assert "1990–2080" in outside
    assert 'id="m1"' not in outside
    unknown = browser.get("/ministry/SV/calendar?authority=nobody")
    assert unknown.status_code == 404

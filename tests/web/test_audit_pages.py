"""The auditor's dashboard through the web pages: the report for the filters asked and only for
the reader's countries, computed once per page, and its downloads for the same filters."""

from __future__ import annotations

import html
import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from app.api import create_app
from app.service import Service
from app.web.audit import FRESH_FOR, AuditQuery
from models import identity
from models.clock import FixedClock
from models.identity import Caller, Grant, RoleName
from models.ledger import Ledger
from models.metrics import Filters
from tests.samples import intake
from tests.web.conftest import Workspace, shoot
from tests.web.test_browser_clerk import _serious_violations

PASSWORD = "a long enough passphrase"
NOW = datetime(2026, 11, 2, 15, tzinfo=UTC)
ACCOUNTS = {
    "coord-sv": Grant(RoleName.COORDINATOR, "SV"),
    "coord-gt": Grant(RoleName.COORDINATOR, "GT"),
    "auditor-sv": Grant(RoleName.AUDITOR, "SV"),
    "auditor-all": Grant(RoleName.AUDITOR),
    "clerk-fgr": Grant(RoleName.CLERK, "SV", "fgr"),
}
XES = "{http://www.xes-standard.org/}"


@dataclass
class World:
    app: Any
    service: Service
    refs: dict[str, list[str]]
    """References by counterpart (GT's case under "GT")."""

    def browser(self, name: str) -> TestClient:
        client = TestClient(self.app, base_url="https://testserver")
        signed = client.post(
            "/login", data={"username": name, "password": PASSWORD}, follow_redirects=False
        )
        assert signed.status_code == 303, signed.text
        return client

    def caller(self, name: str) -> Caller:
        return Caller(name=name, grants=(ACCOUNTS[name],))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("audit")
    ledger = Ledger(f"sqlite:///{folder / 'ledger.db'}", migrate=True)
    clock = FixedClock(NOW)
    with ledger.transaction() as session:
        for name, grant in ACCOUNTS.items():
            identity.add_account(
                session, name=name, grants=[grant], now=NOW, actor="test", password=PASSWORD
            )
    app = create_app(ledger, clock=clock, wake=lambda command, result: None)
    refs: dict[str, list[str]] = {}
    for coordinator, requests in {
        "coord-sv": [intake(counterpart="ES"), intake(counterpart="ES"), intake(counterpart="US")],
        "coord-gt": [intake(country="GT", counterpart="ES")],
    }.items():
        api = TestClient(app, base_url="https://testserver")
        csrf = api.post("/api/session", json={"username": coordinator, "password": PASSWORD})
        for request in requests:
            made = api.post(
                "/api/cases",
                json={"request": request},
                headers={"X-CSRF-Token": csrf.json()["csrf_token"]},
            )
            assert made.status_code == 201, made.text
            key = "GT" if request["country"] == "GT" else request["counterpart"]
            refs.setdefault(key, []).append(made.json()["reference"])
    yield World(app=app, service=app.state.service, refs=refs)
    ledger.dispose()


def _tile(page: str, label: str) -> str:
    found = re.search(rf"<dt>{re.escape(label)}</dt><dd>([^<]*)</dd>", page)
    assert found, f"no tile {label!r}"
    return found.group(1)


def test_an_auditor_filtering_one_counterpart_sees_only_its_numbers(world: World) -> None:
    page = world.browser("auditor-sv").get("/audit?counterpart=es")

    assert page.status_code == 200
    expected = world.service.report(
        Filters(counterparts=("ES",)), world.caller("auditor-sv"), now=NOW
    )
    assert expected["summary"]["cases"] == len(world.refs["ES"]) == 2
    assert _tile(page.text, "Cases") == str(expected["summary"]["cases"])
    assert _tile(page.text, "Open") == str(expected["summary"]["open_cases"])
    assert '<th scope="row">ES</th>' in page.text  # the statistics row of Spain
    assert '<th scope="row">US</th>' not in page.text
    for headline in expected["headlines"]:
        assert f"<li>{headline}</li>" in page.text
    assert 'value="ES"' in page.text  # the filter is shown as asked


def test_without_filters_an_auditor_of_one_country_sees_that_country_only(world: World) -> None:
    page = world.browser("auditor-sv").get("/audit")

    assert _tile(page.text, "Cases") == "3"  # SV's three, not GT's


def test_an_auditor_of_all_countries_may_choose_several(world: World) -> None:
    page = world.browser("auditor-all").get("/audit?country=SV+gt&counterpart=ES")

    assert page.status_code == 200
    assert _tile(page.text, "Cases") == "3"  # SV's two with Spain and GT's one


def test_an_auditor_asking_for_another_country_is_refused(world: World) -> None:
    browser = world.browser("auditor-sv")

    for path in (
        "/audit?country=GT",
        "/audit/download.json?country=GT",
        "/audit/download.xes?country=GT",
    ):
        refused = browser.get(path)
        assert refused.status_code == 403, path
        assert "GT" not in refused.headers.get("content-disposition", "")


@pytest.mark.parametrize("path", ["/audit", "/audit/download.html", "/audit/download.xes"])
def test_a_clerk_may_not_read_the_audit_pages(world: World, path: str) -> None:
    refused = world.browser("clerk-fgr").get(path)

    assert refused.status_code == 403
    assert "text/html" in refused.headers["content-type"]
    assert "attachment" not in refused.headers.get("content-disposition", "")


def test_the_audit_page_asks_to_sign_in_first(world: World) -> None:
    anonymous = TestClient(world.app, base_url="https://testserver")

    answer = anonymous.get("/audit?counterpart=ES", follow_redirects=False)

    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=%2Faudit")


def test_a_date_that_is_not_one_is_refused_with_its_name(world: World) -> None:
    answer = world.browser("auditor-sv").get("/audit?since=last+week")

    assert answer.status_code == 400
    assert "since" in answer.text


def test_empty_fields_of_the_filter_form_mean_no_filter(world: World) -> None:
    page = world.browser("auditor-sv").get("/audit?route=&counterpart=&since=&until=&as_of=")

    assert page.status_code == 200
    assert _tile(page.text, "Cases") == "3"


def test_the_live_page_serves_a_recent_report_and_refreshes_a_stale_one_in_the_background(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = world.service.report

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(world.service, "report", counted)
    browser = world.browser("auditor-sv")
    browser.get("/audit?counterpart=FR&kind=mla")
    assert len(calls) == 1  # computed once for the request
    browser.get("/audit?counterpart=FR&kind=mla")
    world.browser("auditor-sv").get("/audit?counterpart=FR&kind=mla")
    assert len(calls) == 1  # the same roles and filters within five minutes: served again

    clock = world.service.clock
    assert isinstance(clock, FixedClock)
    clock.set(NOW + FRESH_FOR)
    try:
        stale = browser.get("/audit?counterpart=FR&kind=mla")
        assert stale.status_code == 200
        deadline = time.monotonic() + 30
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(calls) == 2  # the stale one was served while a fresh one was computed
    finally:
        clock.set(NOW)


def test_a_report_as_of_a_past_day_is_computed_for_each_request(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = world.service.report
    monkeypatch.setattr(world.service, "report", lambda *a, **k: calls.append(a) or real(*a, **k))
    browser = world.browser("auditor-sv")
    for _ in range(2):
        browser.get("/audit?as_of=2026-10-30")
    assert len(calls) == 2


def test_the_json_download_is_the_report_of_the_same_filters(world: World) -> None:
    answer = world.browser("auditor-sv").get("/audit/download.json?counterpart=ES")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert (
        (answer.headers["content-disposition"])
        == 'attachment; filename="rogatory-audit-SV-2026-11-02.json"'
    )
    expected = world.service.report(
        Filters(counterparts=("ES",)), world.caller("auditor-sv"), now=NOW
    )
    got = answer.json()
    assert got["summary"] == expected["summary"]
    assert got["filters"]["counterparts"] == ["ES"]


def test_the_html_download_is_the_standalone_report(world: World) -> None:
    answer = world.browser("auditor-sv").get("/audit/download.html?counterpart=ES")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-disposition"].startswith("attachment;")
    assert answer.text.startswith("<!DOCTYPE html>")
    assert "Audit report: SV with ES" in answer.text


def test_the_csv_download_zips_every_table(world: World) -> None:
    answer = world.browser("auditor-sv").get("/audit/download.csv?counterpart=ES")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-disposition"].endswith('.zip"')
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        names = set(archive.namelist())
        statistics = archive.read("statistics.csv").decode()
    assert {"summary.csv", "headlines.csv", "risk_register.csv", "statistics.csv"} <= names
    assert ",ES," in statistics
    assert ",US," not in statistics


def test_the_xes_download_holds_the_filtered_cases_only(world: World) -> None:
    answer = world.browser("auditor-sv").get("/audit/download.xes?counterpart=ES")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    assert answer.headers["content-disposition"].endswith('.xes"')
    log = ElementTree.fromstring(answer.content)
    traces = {
        attribute.get("value")
        for trace in log.iter(f"{XES}trace")
        for attribute in trace.findall(f"{XES}string")
        if attribute.get("key") == "concept:name"
    }
    assert traces == set(world.refs["ES"])


def test_downloads_leave_no_file_behind(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    browser = world.browser("auditor-sv")

    for fmt in ("html", "json", "csv", "xes"):
        assert browser.get(f"/audit/download.{fmt}").status_code == 200

    assert list(tmp_path.iterdir()) == []


def test_an_unknown_download_format_is_not_found(world: World) -> None:
    assert world.browser("auditor-sv").get("/audit/download.pdf").status_code == 404


def test_the_page_links_downloads_for_the_same_filters(world: World) -> None:
    page = world.browser("auditor-sv").get("/audit?counterpart=ES&kind=mla&since=2026-01-01")

    links = dict(re.findall(r'href="/audit/download\.(\w+)\?([^"]*)"', page.text))
    assert set(links) == {"html", "json", "csv", "xes"}
    for query in links.values():
        assert parse_qs(html.unescape(query)) == {
            "counterpart": ["ES"],
            "kind": ["mla"],
            "since": ["2026-01-01"],
        }


def test_a_report_as_of_today_is_as_of_now_not_the_end_of_the_day(world: World) -> None:
    answer = world.browser("auditor-sv").get("/audit/download.json?as_of=2026-11-02")

    assert json.loads(answer.text)["as_of"] == NOW.isoformat()


def test_an_as_of_day_in_the_past_means_the_end_of_that_day() -> None:
    asked = AuditQuery(as_of=date(2026, 10, 1))

    assert asked.instant(NOW) == datetime(2026, 10, 1, 23, 59, 59, 999999, tzinfo=UTC)


# -- in a real browser --------------------------------------------------------------------------


def _tile_in(page: Any, label: str) -> Any:
    return page.locator("dl.tiles > div").filter(has=page.get_by_text(label, exact=True))


def test_an_auditor_narrows_the_report_in_the_browser_and_sees_no_confidential_case(
    sign_in: Any, workspace: Workspace
) -> None:
    page = sign_in("auditor-sv")
    page.goto(workspace.base_url + "/audit")
    expect(page.get_by_role("heading", name="Audit report", level=1)).to_be_visible()
    shoot(page, "auditor-dashboard")
    expect(_tile_in(page, "Cases").locator("dd")).to_have_text("4")
    for sealed in ("confidential", "sealed"):
        expect(page.locator("main")).not_to_contain_text(workspace.refs[sealed])

    page.get_by_label("Counterparts").fill("US")
    page.get_by_role("button", name="Show the report").click()

    expect(_tile_in(page, "Cases").locator("dd")).to_have_text("1")
    expect(page.get_by_role("link", name="Report as data (JSON)")).to_have_attribute(
        "href", "/audit/download.json?counterpart=US"
    )


def test_the_dashboard_passes_axe_and_fits_a_small_screen(
    sign_in: Any, workspace: Workspace, browser: Any
) -> None:
    page = browser.new_context(bypass_csp=True).new_page()  # axe is injected inline
    sign_in("auditor-sv", page)
    problems = {}
    for width in (1280, 360):
        page.set_viewport_size({"width": width, "height": 800})
        response = page.goto(workspace.base_url + "/audit")
        assert response is not None and response.ok
        problems[width] = _serious_violations(page)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"/audit is {overflow}px wider than a 360 px screen"
    assert not {k: v for k, v in problems.items() if v}

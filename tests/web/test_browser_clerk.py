"""A clerk's day in a real browser: sign in, the overdue hop first, decide it, the next authority
sees it; another authority's confidential case stays closed; the clerk's, the coordinator's and
the ministry's pages pass axe-core and fit a 360 px screen (the auditor's and the admin's are
checked in test_audit_pages.py and test_admin_pages.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import Workspace, shoot

AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"


def test_clerk_decides_the_overdue_hop_first_and_the_next_authority_sees_it(
    sign_in: Any, workspace: Workspace, browser: Any
) -> None:
    page = sign_in("clerk-fgr")
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    shoot(page, "clerk-inbox")
    rows = page.locator("table tbody tr")
    first = rows.first
    expect(first).to_contain_text(workspace.refs["overdue"])
    expect(first).to_have_class(re.compile("overdue"))

    first.get_by_role("link", name=workspace.refs["overdue"]).click()
    expect(page.get_by_role("heading", name=workspace.refs["overdue"])).to_be_visible()
    shoot(page, "clerk-case")
    page.get_by_label("Outcome").select_option("forwarded")
    page.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status")).to_contain_text("Recorded")
    expect(page.locator("#events")).to_contain_text("clerk-fgr")

    other = sign_in("clerk-csj", browser.new_context().new_page())
    expect(other.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(other.locator("table tbody")).to_contain_text(workspace.refs["overdue"])
    other.context.close()


def test_a_clerk_cannot_open_another_authoritys_confidential_case(
    sign_in: Any, workspace: Workspace
) -> None:
    page = sign_in("clerk-mjsp")  # mjsp is not on the sealed extradition's route
    response = page.goto(f"{workspace.base_url}/cases/{workspace.refs['sealed']}")
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("confidential")
    expect(page.locator("body")).not_to_contain_text("the person sought")


def _serious_violations(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => v.id + ': ' + v.help + ' (' + v.nodes.length + ')')"
    )
    return list(found)


def _pages_of(workspace: Workspace) -> dict[str, list[str]]:
    refs = workspace.refs
    return {
        "clerk-fgr": [
            "/inbox/SV/fgr",
            "/my-work",
            f"/cases/{refs['recent']}",
            "/search?country=SV",
        ],
        "coord-sv": [
            "/board",
            "/board?show=all",
            f"/cases/{refs['overdue']}",
            f"/cases/{refs['sealed']}",
        ],
        "ministry-sv": [
            "/ministry",
            "/ministry/SV",
            "/ministry/SV/calendar?authority=csj&year=2026",
            "/ministry/SV/draft",
        ],
    }


def test_every_page_passes_axe_and_fits_a_small_screen(
    sign_in: Any, workspace: Workspace, browser: Any
) -> None:
    page = browser.new_context(bypass_csp=True).new_page()  # axe is injected inline
    page.goto(workspace.base_url + "/login")
    problems = {"/login": _serious_violations(page)}
    for account, paths in _pages_of(workspace).items():
        page.context.close()
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(account, page)
        for path in paths:
            for width in (1280, 360):
                page.set_viewport_size({"width": width, "height": 800})
                response = page.goto(workspace.base_url + path)
                assert response is not None and response.ok, (path, response and response.status)
                problems[f"{path} @{width}"] = _serious_violations(page)
                if width == 360:
                    overflow = page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 0, f"{path} is {overflow}px wider than a 360 px screen"
    assert not {k: v for k, v in problems.items() if v}

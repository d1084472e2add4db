"""axe-core (bundled by axe-playwright-python) on every page, with its results on show: no serious
or critical violation (WCAG 2.x A and AA rules, and axe's best practices)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Tab, count_equality_cases, example_case, serious_violations


def index(tab: Tab) -> Page:
    return tab.open("", ready=False)


def catalogue(tab: Tab) -> Page:
    page = tab.open("catalogue.html")
    page.get_by_label("Search rules").fill("concerns")
    page.locator("details.drill summary").first.click()
    return page


def case(tab: Tab) -> Page:
    page = tab.open("case.html")
    page.get_by_label("Case, as JSON").fill(example_case())
    page.get_by_role("button", name="Evaluate the case").click()
    expect(page.locator("#results")).to_be_visible()
    return page


def case_error(tab: Tab) -> Page:
    page = tab.open("case.html")
    page.get_by_label("Case, as JSON").fill('{"caseId": "x", "concerns": [{"id": "c1", "date": "no"}]}')
    page.get_by_role("button", name="Evaluate the case").click()
    expect(page.locator("#case-error")).to_be_visible()
    return page


def timeline(tab: Tab) -> Page:
    page = tab.open("timeline.html")
    page.get_by_label("Start from a made-up sample").select_option("child-protection")
    page.get_by_role("button", name="Load sample").click()
    expect(page.locator("#input-status")).to_contain_text("Loaded the sample")
    page.get_by_role("button", name="Draw the timeline").click()
    expect(page.locator("#chart svg")).to_be_visible()
    return page


def impact(tab: Tab) -> Page:
    return tab.open("impact.html")


def equality(tab: Tab) -> Page:
    count_equality_cases(tab.server)
    page = tab.open("equality.html")
    page.get_by_label("Ruleset").select_option("starter")
    page.get_by_role("button", name="Show the report").click()
    expect(page.locator("#report .ratio-chart svg").first).to_be_visible()
    page.locator("details.rule-report summary").first.click()
    return page


def equality_error(tab: Tab) -> Page:
    page = tab.open("equality.html")
    page.get_by_label("Withhold numbers under").fill("3")
    page.get_by_role("button", name="Show the report").click()
    expect(page.locator("#equality-error")).to_be_visible()
    return page


STATES: dict[str, Callable[[Tab], Page]] = {
    "index": index,
    "catalogue": catalogue,
    "case-with-flags": case,
    "case-with-a-field-error": case_error,
    "timeline-drawn": timeline,
    "impact": impact,
    "equality-report": equality,
    "equality-with-an-error": equality_error,
}


@pytest.mark.parametrize("state", STATES)
def test_axe_finds_no_serious_violations(tab: Tab, state: str) -> None:
    page = STATES[state](tab)
    assert serious_violations(page) == []

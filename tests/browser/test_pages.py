"""Each page loads cleanly; the catalogue searches and filters; a pasted case shows its flags (the
same as the service's own Evaluate), with the evidence marked in the case; an invalid case shows
the field error with its path."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import EXAMPLE, Server, Tab, example_case

PAGES = ["", "catalogue.html", "case.html", "timeline.html", "impact.html", "equality.html"]


@pytest.mark.parametrize("path", PAGES, ids=["index", "catalogue", "case", "timeline", "impact", "equality"])
def test_each_page_loads_without_console_errors(tab: Tab, path: str) -> None:
    page = tab.open(path, ready=bool(path))
    page.wait_for_load_state("networkidle")
    assert tab.errors == []
    # One banner, one navigation with this page marked, one main, one footer, one h1.
    for landmark in ("banner", "navigation", "main", "contentinfo"):
        expect(page.get_by_role(landmark)).to_have_count(1)
    expect(page.locator("h1")).to_have_count(1)
    current = page.locator('nav a[aria-current="page"]')
    expect(current).to_have_count(1)
    assert current.get_attribute("href") == (path or "./")
    # Every page says what a flag is for.
    expect(page.locator("footer")).to_contain_text("never decisions")


def test_search_filters_the_catalogue(tab: Tab) -> None:
    page = tab.open("catalogue.html")
    rules = page.locator("article.rule")
    total = rules.count()
    assert total > 50  # safeguarding and starter together
    expect(page.locator("#result-count")).to_have_text(f"Showing all {total} rules.")

    page.get_by_label("Search rules").fill("worker churn")
    visible = page.locator("article.rule:not([hidden])")
    expect(page.locator("#result-count")).to_have_text(re.compile(r"^Showing \d+ of "))
    shown = visible.count()
    assert 0 < shown < total
    # Every word is somewhere in the entry (some in its folded parts: measures, tests).
    for text in visible.evaluate_all("entries => entries.map(e => e.textContent.toLowerCase())"):
        assert "worker" in text and "churn" in text
    assert "worker" in page.url and "churn" in page.url  # the search is kept in the address

    page.get_by_label("Search rules").fill("")
    page.get_by_label("Severity").select_option("critical")
    expect(page.locator("#result-count")).to_have_text(re.compile(r"^Showing \d+ of "))
    for article in visible.all():
        expect(article.locator(".badge").first).to_have_text("Critical")
    page.get_by_label("Source").select_option("statutory")
    page.get_by_label("Theme").select_option("C1")
    if visible.count() == 0:
        expect(page.locator("#no-results")).to_be_visible()

    page.get_by_role("button", name="Clear search and filters").click()
    expect(page.locator("#result-count")).to_have_text(f"Showing all {total} rules.")


def test_the_catalogue_filters_by_theme_and_source(tab: Tab) -> None:
    page = tab.open("catalogue.html")
    page.get_by_label("Theme").select_option("W1")
    visible = page.locator("article.rule:not([hidden])")
    expect(page.locator("#result-count")).to_have_text(re.compile(r"^Showing \d+ of "))
    assert visible.count() >= 1
    for article in visible.all():
        expect(article.locator("dd").nth(2)).to_contain_text("W1")
    page.get_by_label("Theme").select_option("")
    page.get_by_label("Source").select_option("statutory")
    for article in visible.all():
        expect(article).to_contain_text("Statutory")


def test_a_composite_links_to_the_rules_it_builds_on_even_when_filtered_out(tab: Tab) -> None:
    page = tab.open("catalogue.html")
    page.get_by_label("Search rules").fill("long-running-pattern")
    composite = page.locator("#rule-safeguarding-long-running-pattern")
    expect(composite).to_be_visible()
    link = composite.locator("dt:text('Builds on') + dd a").first
    target = link.get_attribute("href")
    assert target is not None and target.startswith("#rule-safeguarding-")
    link.click()
    # The search hid the rule; following the link clears it and shows the rule, focused.
    expect(page.locator(target)).to_be_visible()
    expect(page.locator(target)).to_be_focused()
    expect(page.get_by_label("Search rules")).to_have_value("")
    assert page.url.endswith(target)


def test_a_pasted_case_shows_its_flags(tab: Tab, server: Server) -> None:
    as_of = EXAMPLE["asOf"]
    expected = server.connect("Evaluate", {**EXAMPLE, "asOf": as_of})
    page = tab.open("case.html")
    page.get_by_label("Case, as JSON").fill(example_case())
    page.get_by_label("Ruleset").select_option(EXAMPLE["ruleset"])
    page.get_by_label("Evaluate as of").fill(as_of[:10])
    page.get_by_role("button", name="Evaluate the case").click()
    results = page.locator("#results")
    expect(results).to_be_visible()
    expect(results).to_be_focused()

    shown = page.locator("#flags article.flag").evaluate_all("cards => cards.map(c => c.dataset.rule)")
    assert sorted(shown) == sorted(f["ruleId"] for f in expected["flags"]) != []
    for flag in expected["flags"]:
        card = page.locator(f'#flags article.flag[data-rule="{flag["ruleId"]}"]')
        expect(card.locator(".explanation")).to_have_text(flag["explanation"])
        # Each evidence fact is marked in the case's tables, naming the rule.
        for item in flag.get("evidence", []):
            row = page.locator(f"#fact-{item['factType']}-{item['factId']}")
            expect(row).to_have_class(re.compile(r"\bevidence\b"))
            expect(row.locator("td.cited")).to_contain_text(flag["ruleId"])
    expect(page.locator("#result-summary")).to_contain_text(f"{len(expected['flags'])} flag")
    assert tab.errors == []

    # An evidence link opens its table and points at the row.
    link = page.locator("a.evidence-link").first
    link.click()
    expect(page.locator("tr.pointed")).to_have_count(1)
    expect(page.locator("tr.pointed")).to_be_visible()


def test_a_sample_case_loads_and_shows_shadow_and_undetermined_sections(tab: Tab) -> None:
    page = tab.open("case.html")
    page.get_by_label("Start from a made-up sample").select_option("drifting")
    page.get_by_role("button", name="Load sample").click()
    expect(page.get_by_label("Case, as JSON")).to_have_value(re.compile(r'"caseId": "sample-drifting"'))
    expect(page.get_by_label("Evaluate as of")).to_have_value("2025-12-31")
    page.get_by_role("button", name="Evaluate the case").click()
    expect(page.locator("#results")).to_be_visible()
    expect(page.locator("#flags article.flag").first).to_be_visible()
    for section in ("#shadow-flags", "#undetermined", "#case-facts"):
        expect(page.locator(section)).to_be_visible()
    expect(page.locator("#case-facts table.fact-table").first).to_be_attached()


def test_an_invalid_case_shows_the_field_error(tab: Tab) -> None:
    page = tab.open("case.html")
    case = json.loads(json.dumps(EXAMPLE["case"]))
    case["concerns"][2]["date"] = "2024-13-03"
    page.get_by_label("Case, as JSON").fill(json.dumps(case))
    page.get_by_role("button", name="Evaluate the case").click()
    summary = page.locator("#case-error")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()
    expect(summary.locator("li.violation")).to_have_count(1)
    expect(summary.locator("code.field-path")).to_have_text("case.concerns[2].date")
    expect(summary.locator("li.violation")).to_contain_text("date")
    expect(page.locator("#results")).to_be_hidden()

    # Not JSON at all: said before anything is sent.
    page.get_by_label("Case, as JSON").fill('{"caseId": "x", ')
    page.get_by_role("button", name="Evaluate the case").click()
    expect(summary.locator("li.violation")).to_contain_text("not valid JSON")
    expect(page.get_by_label("Case, as JSON")).to_have_attribute("aria-invalid", "true")

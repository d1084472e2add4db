"""The equality monitoring page: the service's report for a ruleset, a table per characteristic with a
small group shown as "withheld" (never a number) and why, the ratio chart drawn without the withheld
groups, a threshold under 10 refused by the API and named, and the report asked for by keyboard."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, Tab, count_equality_cases

WITHHELD_READING = "withheld: a small number, or one a small number could be worked out from"


def show_report(page: Page, ruleset: str = "starter", threshold: str | None = None) -> dict[str, Any]:
    """Ask for a ruleset's report; the API's answer, once the page has drawn it."""
    drawn = int(page.locator("body").get_attribute("data-drawn") or 0)
    page.get_by_label("Ruleset").select_option(ruleset)
    if threshold is not None:
        page.get_by_label("Withhold numbers under").fill(threshold)
    with page.expect_response(lambda r: "/api/equality?" in r.url) as answer:
        page.get_by_role("button", name="Show the report").click()
    expect(page.locator("body")).to_have_attribute("data-drawn", str(drawn + 1))
    result: dict[str, Any] = answer.value.json()
    return result


def test_the_report_shows_each_group_withheld_ones_as_withheld_and_the_chart(tab: Tab, server: Server) -> None:
    count_equality_cases(server)
    page = tab.open("equality.html")
    expect(page.locator(".notice")).to_contain_text("Characteristics never drive a flag")
    expect(page.locator(".notice")).to_contain_text("Aggregates only")
    result = show_report(page)
    report = page.locator("#report")
    expect(report).to_be_visible()
    expect(report).to_be_focused()
    assert "?ruleset=starter&threshold=10" in page.url  # the report's address, to share

    table = page.locator("table[id$='-all-ethnicity']")
    expect(table.locator("tr.whole th")).to_have_text("Whole caseload")
    white = table.locator("tr[data-group='WBRI']")
    expect(white.locator("th")).to_have_text("White British (WBRI)")
    expect(white.locator("td").nth(0)).to_have_text("40")  # evaluated
    expect(white.locator("td").nth(1)).to_have_text("12")  # flagged
    expect(white.locator("td").nth(2)).to_have_text("30.0% (18.1% to 45.4%)")
    # The small group: every cell says "withheld" (and why, beside the table); no number at all.
    indian = table.locator("tr[data-group='AIND']")
    cells = indian.locator("td").all_text_contents()
    assert set(cells) == {"withheld", WITHHELD_READING}
    assert not re.search(r"\d", " ".join(cells))
    note = indian.locator("td.withheld").first.get_attribute("aria-describedby")
    expect(page.locator(f"#{note}")).to_have_text(re.compile(r"^Withheld: fewer than 10 cases, or a number"))

    # The flag rate chart: one point per group whose ratio is shown, the withheld ones not drawn.
    (version,) = result["versions"]
    ethnicity = next(b for b in version["all_flags"] if b["characteristic"] == "ethnicity")
    flag = ethnicity["charts"][0]
    shown = flag["spec"]["datasets"][flag["spec"]["data"]["name"]]
    chart = page.locator(f"#{page.locator('[data-measure=flag]').first.get_attribute('id')}")
    expect(chart.locator("svg g.mark-symbol.role-mark path")).to_have_count(len(shown))
    assert "White British (WBRI)" in chart.locator("svg").text_content()
    assert "Indian (AIND)" not in chart.locator("svg").text_content()
    expect(chart.locator("svg")).to_have_attribute("role", "img")
    expect(chart.locator("xpath=..").locator("figcaption")).to_contain_text("Indian (AIND)")
    charts = int(report.get_attribute("data-charts") or 0)
    expect(page.locator("#report .ratio-chart svg")).to_have_count(charts)
    assert charts >= 1

    # Each rule's tables fold away under its title.
    rule = page.locator("details.rule-report[data-rule='cumulative-concerns']")
    rule.locator("summary").click()
    expect(rule.locator("table").first.locator("tr[data-group='AIND'] td").first).to_have_text("withheld")
    assert tab.errors == []


def test_a_threshold_under_ten_is_refused_and_a_higher_one_withholds_more(tab: Tab, server: Server) -> None:
    count_equality_cases(server)
    page = tab.open("equality.html")
    page.get_by_label("Ruleset").select_option("starter")
    page.get_by_label("Withhold numbers under").fill("5")
    page.get_by_role("button", name="Show the report").click()
    summary = page.locator("#equality-error")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()
    expect(summary.locator("code.field-path")).to_have_text("threshold")
    expect(summary.locator("li.violation")).to_contain_text("at least 10")
    expect(page.get_by_label("Withhold numbers under")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#report")).to_be_hidden()

    show_report(page, threshold="15")
    white = page.locator("table[id$='-all-ethnicity'] tr[data-group='WBRI']")
    expect(white.locator("td").nth(0)).to_have_text("40")
    expect(white.locator("td").nth(1)).to_have_text("withheld")  # 12 flagged, under 15
    expect(page.locator("#equality-error")).to_be_hidden()


def test_the_report_is_asked_for_and_read_with_the_keyboard(tab: Tab, server: Server) -> None:
    count_equality_cases(server)
    page = tab.open("equality.html?ruleset=safeguarding")  # a shared address shows its report at once
    expect(page.locator("body")).to_have_attribute("data-drawn", "1")
    page.locator("#ruleset").focus()
    page.keyboard.press("End")  # "Every ruleset"
    expect(page.locator("#ruleset")).to_have_value("")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Withhold numbers under")).to_be_focused()
    page.keyboard.press("Enter")  # submits the form
    expect(page.locator("body")).to_have_attribute("data-drawn", "2")
    expect(page.locator("#report")).to_be_focused()
    expect(page.locator("#report-summary")).to_contain_text("Every ruleset")
    summary = page.locator("details.rule-report summary").first
    summary.focus()
    page.keyboard.press("Enter")
    expect(page.locator("details.rule-report").first).to_have_attribute("open", "")

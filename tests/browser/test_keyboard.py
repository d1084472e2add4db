"""Keyboard use: the skip link, the navigation in order, visible focus, and each page's main task
done with the keyboard alone (Tab, Enter, Space, arrow keys)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import Tab

NAVIGATION = [
    "Skip to main content",
    "Safeguarding rules workbench",
    "Home",
    "Catalogue",
    "Try a case",
    "Timeline",
    "Impact of a change",
    "Equality monitoring",
]


def press_tab_until(page: Page, selector: str, limit: int = 80) -> int:
    """Press Tab until the focused element matches `selector`; how many presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return presses
    raise AssertionError(f"Tab never reached {selector}")


def focus_is_visible(page: Page) -> bool:
    """The focused element draws a focus indicator (an outline or the ring's box shadow)."""
    style = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return {outline: s.outlineStyle, width: s.outlineWidth, shadow: s.boxShadow}; }"
    )
    return bool((style["outline"] != "none" and style["width"] != "0px") or style["shadow"] != "none")


def test_the_skip_link_and_the_navigation_come_first_in_order(tab: Tab) -> None:
    page = tab.open("catalogue.html")
    focused = []
    for _ in NAVIGATION:
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.textContent.trim()"))
        assert focus_is_visible(page), focused[-1]
    assert focused == NAVIGATION
    # The skip link shows when focused and moves focus to the main content.
    page.keyboard.press("Shift+Tab")
    for _ in NAVIGATION[1:-1]:
        page.keyboard.press("Shift+Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Search rules")).to_be_focused()
    # Enter on a navigation link opens its page.
    page.get_by_role("link", name="Try a case").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/case.html")


def test_the_catalogue_is_searched_and_filtered_by_keyboard(tab: Tab) -> None:
    page = tab.open("catalogue.html")
    press_tab_until(page, "#search")
    page.keyboard.type("churn")
    expect(page.locator("#result-count")).to_contain_text(" of ")
    press_tab_until(page, "#severity")
    assert focus_is_visible(page)
    page.keyboard.press("ArrowDown")  # the first severity after "All severities"
    expect(page.locator("#severity")).not_to_have_value("")
    press_tab_until(page, "#clear-filters")
    page.keyboard.press("Enter")
    expect(page.locator("#result-count")).to_have_text(f"Showing all {page.locator('article.rule').count()} rules.")


def test_a_case_is_tried_with_the_keyboard_alone(tab: Tab) -> None:
    page = tab.open("case.html")
    press_tab_until(page, "#sample")
    assert focus_is_visible(page)
    page.keyboard.press("ArrowDown")  # the first sample
    expect(page.locator("#sample")).to_have_value("early-help")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Load sample")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Case, as JSON")).to_have_value(re.compile("sample-early-help"))
    press_tab_until(page, "#case-form button[type=submit]")
    assert focus_is_visible(page)
    page.keyboard.press("Space")
    results = page.locator("#results")
    expect(results).to_be_visible()
    expect(results).to_be_focused()  # a screen reader user hears the results next
    # From the results, Tab reaches their controls (the case's fact tables fold and unfold).
    press_tab_until(page, "#results summary")
    assert focus_is_visible(page)
    opened = page.evaluate("document.activeElement.parentElement.open")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.parentElement.open") is not opened


def test_the_timeline_is_zoomed_with_the_keyboard(tab: Tab) -> None:
    page = tab.open("timeline.html")
    press_tab_until(page, "#sample")
    page.keyboard.press("End")  # the last sample
    press_tab_until(page, "#load-sample")
    page.keyboard.press("Space")
    expect(page.locator("#input-status")).to_contain_text("Loaded the sample")
    press_tab_until(page, "#case-form button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#chart svg")).to_be_visible()
    expect(page.locator("#timeline")).to_be_focused()
    press_tab_until(page, '[data-zoom="12"]')
    assert focus_is_visible(page)
    page.keyboard.press("Enter")
    expect(page.locator('[data-zoom="12"]')).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(page.locator('[data-zoom="24"]')).to_have_attribute("aria-pressed", "true")

"""The timeline page: one bar per flag episode, zoom from months to decades, SVG and PDF export,
and the same view of a case the service has stored."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, Tab

FLAG_BARS = "#chart svg g.flags_marks path"


def draw_sample(page: Page, sample: str) -> dict[str, Any]:
    """Load a sample, draw its timeline; the API's answer (as the page received it)."""
    page.get_by_label("Start from a made-up sample").select_option(sample)
    page.get_by_role("button", name="Load sample").click()
    expect(page.locator("#input-status")).to_contain_text("Loaded the sample")
    with page.expect_response(lambda r: r.url.endswith("/api/timeline")) as answer:
        page.get_by_role("button", name="Draw the timeline").click()
    expect(page.locator("#chart svg")).to_be_visible()
    result: dict[str, Any] = answer.value.json()
    return result


def domain(page: Page) -> tuple[dt.date, dt.date]:
    chart = page.locator("#chart")
    return dt.date.fromisoformat(chart.get_attribute("data-from") or ""), dt.date.fromisoformat(
        chart.get_attribute("data-to") or ""
    )


def test_the_timeline_draws_one_mark_per_flag_episode(tab: Tab) -> None:
    page = tab.open("timeline.html")
    result = draw_sample(page, "drifting")
    episodes = result["episodes"]
    assert len(episodes) > 10 and len({e["rule_id"] for e in episodes}) < len(episodes)  # rules fire more than once
    expect(page.locator(FLAG_BARS)).to_have_count(len(episodes))
    # The spec's flag data are the episodes, one row each, and the page's table lists them too.
    spec = result["spec"]
    assert len(spec["datasets"][spec["vconcat"][-1]["data"]["name"]]) == len(episodes)
    expect(page.locator("#episodes-table tbody tr")).to_have_count(len(episodes))
    # Each bar is labelled by Vega with its rule; every episode's rule has its bars.
    labels = page.locator(FLAG_BARS).evaluate_all("bars => bars.map(b => b.getAttribute('aria-label') || '')")
    for rule in {e["rule_id"] for e in episodes}:
        assert sum(f"rule: {rule};" in label for label in labels) == sum(e["rule_id"] == rule for e in episodes)
    expect(page.locator("#timeline-summary")).to_contain_text(f"{len(episodes)} flag episodes")
    assert tab.errors == []


def test_the_timeline_zooms_from_months_to_decades(tab: Tab) -> None:
    page = tab.open("timeline.html")
    result = draw_sample(page, "long-timeline")
    first, last = domain(page)
    # The whole case: the span replay_plot gives the chart (the replay, and a step past its end).
    flags_x = result["spec"]["vconcat"][-1]["encoding"]["x"]
    assert (first, last) == tuple(dt.date.fromisoformat(d) for d in flags_x["scale"]["domain"])
    assert first == dt.date.fromisoformat(result["from"]) and last > dt.date.fromisoformat(result["to"])
    assert (last - first).days > 15 * 365  # eighteen years of concerns

    def show(name: str) -> tuple[dt.date, dt.date]:
        page.get_by_role("button", name=name, exact=True).click()
        expect(page.get_by_role("button", name=name, exact=True)).to_have_attribute("aria-pressed", "true")
        return domain(page)

    axis_labels = "#chart svg g.role-axis-label text"
    whole_labels = page.locator(axis_labels).all_inner_texts()
    for name, days in (("6 months", 183), ("1 year", 365), ("2 years", 730), ("5 years", 1826), ("10 years", 3652)):
        start, end = show(name)
        assert end == last and abs((end - start).days - days) <= 3, (name, start, end)
    months = show("6 months")
    # Months are named on the axis when zoomed in; whole years on the whole case.
    assert page.locator(axis_labels).all_inner_texts() != whole_labels
    page.get_by_role("button", name="Earlier").click()
    earlier = domain(page)
    # Half a window earlier, as wide (to the day: the window's ends fall between midnights).
    assert abs((months[1] - earlier[1]).days - 91) <= 1
    assert abs((earlier[1] - earlier[0]) - (months[1] - months[0])) <= dt.timedelta(days=1)
    page.get_by_role("button", name="Later").click()
    assert all(abs(a - b) <= dt.timedelta(days=1) for a, b in zip(domain(page), months, strict=True))
    assert show("20 years") == (max(first, last - dt.timedelta(days=round(240 * 30.44))), last)
    assert show("Whole case") == (first, last)
    show("1 year")
    page.locator("#chart svg").dblclick(position={"x": 600, "y": 120})  # double-click: the whole case again
    expect(page.get_by_role("button", name="Whole case")).to_have_attribute("aria-pressed", "true")
    assert domain(page) == (first, last)
    # Bars outside the window are kept (clipped), so zooming never changes how many there are.
    expect(page.locator(FLAG_BARS)).to_have_count(len(result["episodes"]))
    assert tab.errors == []


def test_the_timeline_saves_as_svg_and_prints_to_pdf(tab: Tab, tmp_path: Path) -> None:
    page = tab.open("timeline.html")
    result = draw_sample(page, "child-protection")
    with page.expect_download() as download:
        page.get_by_role("button", name="Save as SVG").click()
    assert download.value.suggested_filename == "timeline-sample-child-protection.svg"
    saved = tmp_path / "timeline.svg"
    download.value.save_as(saved)
    svg = saved.read_text()
    assert svg.startswith("<svg") and "flags_marks" in svg
    assert svg.count('aria-roledescription="bar"') >= len(result["episodes"])

    # "Print or save as PDF" is the browser's print; its stylesheet keeps the chart and the table.
    page.emulate_media(media="print")
    expect(page.locator("#chart svg")).to_be_visible()
    expect(page.locator("#episodes-table")).to_be_visible()
    for hidden in ("header.banner", "#case-form", "#stored-form", ".toolbar", "footer"):
        expect(page.locator(hidden)).to_be_hidden()
    pdf = page.pdf(landscape=True, print_background=True)
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    page.emulate_media(media="screen")
    # The button opens the print dialog (stubbed here: headless Chromium has none).
    page.evaluate("window.print = () => { window.__printed = true; }")
    page.get_by_role("button", name="Print or save as PDF").click()
    assert page.evaluate("window.__printed") is True


def test_a_stored_case_has_the_same_timeline(tab: Tab, server: Server) -> None:
    page = tab.open("timeline.html")
    sample = page.evaluate("fetch('api/samples/drifting').then(r => r.json())")
    case = {**sample["case"], "caseId": "browser-stored-1"}
    server.connect("RecordFacts", {"case": case})
    page.get_by_label("Case id").fill("browser-stored-1")
    page.locator("#stored-ruleset").select_option("safeguarding")
    with page.expect_response(lambda r: "/api/timeline/stored/" in r.url) as answer:
        page.get_by_role("button", name="Show the stored case").click()
    stored = answer.value.json()
    assert stored["case_id"] == "browser-stored-1" and stored["episodes"]
    expect(page.locator(FLAG_BARS)).to_have_count(len(stored["episodes"]))

    page.get_by_label("Case id").fill("browser-nobody")
    page.get_by_role("button", name="Show the stored case").click()
    expect(page.locator("#timeline-error")).to_be_visible()
    expect(page.locator("#timeline-error")).to_contain_text("browser-nobody")

"""The workbench's screenshots in docs/workbench/ (README.md and docs/design/workbench.md show them).

    python -m tests.browser.screenshots [NAME ...]

A real `rules-engine serve` (as the browser tests start it) and Debian's Chromium; every page in
a state that shows what it is for, at 1280 pixels wide. Re-run after changing a page and commit
the PNG files that changed.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

from rules_engine.tools.synth import write_jsonl
from tests.browser.conftest import CHROMIUM, CONNECT, EXAMPLE, VIEWPORT, Server, start
from tests.serve_process import ROOT

OUT = ROOT / "docs" / "workbench"


def shoot(page: Page, name: str, top: str | None = None, height: int = 900) -> None:
    """The viewport, scrolled so that `top` is at its top, as docs/workbench/<name>.png."""
    page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
    if top:
        page.locator(top).first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.evaluate("window.scrollBy(0, -16)")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=OUT / f"{name}.png")
    print(OUT / f"{name}.png")


def ready(page: Page, server: Server, path: str) -> None:
    page.goto(server.url + path)
    page.wait_for_selector("body[data-ready]", state="attached")


def catalogue(page: Page, server: Server) -> None:
    ready(page, server, "catalogue.html")
    page.get_by_label("Search rules").fill("chronology")
    page.get_by_label("Severity").select_option("high")
    expect(page.locator("#result-count")).to_contain_text(" of ")
    shoot(page, "catalogue", height=1300)
    page.goto(server.url + "catalogue.html#rule-safeguarding-long-running-pattern")
    page.wait_for_selector("body[data-ready]", state="attached")
    shoot(page, "catalogue-composite", top="#rule-safeguarding-long-running-pattern", height=1000)


def case(page: Page, server: Server) -> None:
    ready(page, server, "case.html")
    page.get_by_label("Case, as JSON").fill(json.dumps(EXAMPLE, indent=2))
    page.get_by_label("Evaluate as of").fill(EXAMPLE["asOf"][:10])
    page.get_by_role("button", name="Evaluate the case").click()
    expect(page.locator("#results")).to_be_visible()
    shoot(page, "case", top="#results", height=1100)
    shoot(page, "case-evidence", top="#case-facts", height=800)
    wrong = {**EXAMPLE["case"], "concerns": [{"id": "c1", "date": "2024-13-02"}]}
    page.get_by_label("Case, as JSON").fill(json.dumps(wrong))
    page.get_by_role("button", name="Evaluate the case").click()
    expect(page.locator("#case-error")).to_be_visible()
    shoot(page, "case-field-error", top="h1", height=700)


def timeline(page: Page, server: Server) -> None:
    ready(page, server, "timeline.html")
    page.get_by_label("Start from a made-up sample").select_option("drifting")
    page.get_by_role("button", name="Load sample").click()
    expect(page.locator("#input-status")).to_contain_text("Loaded the sample")
    page.get_by_role("button", name="Draw the timeline").click()
    expect(page.locator("#chart svg")).to_be_visible()
    shoot(page, "timeline", top="#timeline", height=1400)
    page.get_by_role("button", name="2 years", exact=True).click()
    shoot(page, "timeline-zoomed", top="#timeline", height=1400)


def impact(page: Page, server: Server, work: Path) -> None:
    """The benchmark's edit (benchmarks/workbench_impact.py) over 2,000 synthetic cases."""
    edited = work / "ruleset.yaml"
    source = (ROOT / "rulesets" / "safeguarding" / "ruleset.yaml").read_text()
    edited.write_text(source.replace("absence_conferences_checked: 3", "absence_conferences_checked: 6", 1))
    caseload = work / "caseload.jsonl"
    with caseload.open("w") as out:
        write_jsonl(out, 2000, seed=1, as_of=dt.date(2025, 12, 31))
    ready(page, server, "impact.html")
    page.get_by_label("The ruleset you edited").select_option("safeguarding")
    page.get_by_label("Rule files").set_input_files(edited)
    page.get_by_label("Caseload file (JSON lines)").set_input_files(caseload)
    page.get_by_label("Evaluate as of").fill("2025-12-31")
    shoot(page, "impact-form", top="h1", height=1100)
    page.get_by_role("button", name="Preview the impact").click()
    expect(page.locator("#impact-results")).to_be_visible(timeout=120_000)
    page.locator("button.show-cases").first.click()
    shoot(page, "impact", top="#impact-results", height=1300)


def equality(page: Page, server: Server, work: Path) -> None:
    """The report of 1,500 synthetic cases evaluated by the service, every third flagged one's first
    flag acknowledged (so dismissal rates show too)."""
    caseload = work / "equality.jsonl"
    with caseload.open("w") as out:
        write_jsonl(out, 1500, seed=7, as_of=dt.date(2025, 12, 31))
    with httpx.Client(base_url=f"{server.origin}{CONNECT}", timeout=30) as client:
        for number, line in enumerate(caseload.read_text().splitlines()):
            body = {"case": json.loads(line), "ruleset": "safeguarding", "asOf": "2025-12-31"}
            answer = client.post("/Evaluate", json=body).json()
            if answer.get("flags") and number % 3 == 0:
                flag = {"ruleId": answer["flags"][0]["ruleId"], "practitionerId": "p1", "reasonCode": "REVIEWED"}
                client.post("/AcknowledgeFlag", json={"caseId": answer["caseId"], "ruleset": "safeguarding", **flag})
    ready(page, server, "equality.html?ruleset=safeguarding")
    expect(page.locator("#report")).to_be_visible(timeout=60_000)
    page.wait_for_selector("#report[data-charts]", state="attached")
    shoot(page, "equality", top="#report", height=1500)


SHOTS = ("index", "catalogue", "case", "timeline", "impact", "equality")


def main(only: list[str]) -> None:
    """Every screenshot, or those `only` names (python -m tests.browser.screenshots equality)."""
    wanted = set(only or SHOTS)
    OUT.mkdir(parents=True, exist_ok=True)
    servers = start()
    server = next(servers)
    try:
        with sync_playwright() as driver, tempfile.TemporaryDirectory(prefix="workbench-shots-") as work:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            page = browser.new_page(viewport=VIEWPORT)
            if "index" in wanted:
                page.goto(server.url)
                shoot(page, "index")
            if "catalogue" in wanted:
                catalogue(page, server)
            if "case" in wanted:
                case(page, server)
            if "timeline" in wanted:
                timeline(page, server)
            if "impact" in wanted:
                impact(page, server, Path(work))
            if "equality" in wanted:
                equality(page, server, Path(work))
            browser.close()
    finally:
        servers.close()


if __name__ == "__main__":
    main(sys.argv[1:])

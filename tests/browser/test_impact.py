"""The impact page: an edited threshold, previewed over a caseload built so that the counts are
known by hand; an edit that fails the ruleset's own tests shows where, by file, line and column."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Tab
from tests.serve_process import ROOT

STARTER = ROOT / "rulesets" / "starter"
AS_OF = "2025-06-30"
CONCERN_DATES = ["2024-08-02", "2024-10-14", "2024-12-03", "2025-02-20", "2025-04-11"]


def case(case_id: str, concerns: int, assessed: bool = False) -> dict[str, Any]:
    """A child of ten with `concerns` concerns in the 12 months before AS_OF and an up-to-date
    chronology; `assessed`: an assessment completed in those months."""
    built: dict[str, Any] = {
        "caseId": case_id,
        "child": {"birthDate": "2015-03-01"},
        "concerns": [
            {"id": f"c{n}", "date": day, "agency": "POLICE"} for n, day in enumerate(CONCERN_DATES[:concerns])
        ],
        "recordUpdates": [{"id": "ru1", "date": "2025-06-01", "kind": "CHRONOLOGY"}],
    }
    if assessed:
        built["assessments"] = [{"id": "a1", "date": "2025-03-01", "completedOn": "2025-04-20"}]
    return built


# The starter's concerns threshold goes from 5 to 4. By hand:
#   four-unassessed  4 concerns, no assessment  -> newly flagged by cumulative-concerns and
#                                                  concerns-without-assessment
#   four-assessed    4 concerns, assessed       -> newly flagged by cumulative-concerns only
#   five-unassessed  5 concerns, no assessment  -> flagged by both, before and after
#   two              2 concerns                 -> flagged by neither
CASELOAD = [
    case("four-unassessed", 4),
    case("four-assessed", 4, assessed=True),
    case("five-unassessed", 5),
    case("two", 2),
]
EXPECTED = {
    "cumulative-concerns": (2, 0, 2),
    "concerns-without-assessment": (1, 0, 3),
}


@pytest.fixture
def edited(tmp_path: Path) -> Path:
    """A copy of the starter ruleset with the threshold lowered to 4 (the edit under review)."""
    copy = tmp_path / "starter"
    shutil.copytree(STARTER, copy)
    ruleset = copy / "ruleset.yaml"
    text = ruleset.read_text()
    assert "concerns_threshold: 5 " in text
    ruleset.write_text(text.replace("concerns_threshold: 5 ", "concerns_threshold: 4 "))
    return copy


def fix_the_tests(edited: Path) -> Path:
    """The edit's companion: the test that four concerns stay below the threshold now uses three."""
    tests = edited / "tests" / "concerns.yaml"
    text = tests.read_text()
    name = "four concerns stay below the threshold"
    fourth = '        - {id: c4, date: "2025-02-20", agency: POLICE}\n'
    at = text.index(fourth, text.index(name))
    text = text[:at] + text[at + len(fourth) :]
    tests.write_text(text.replace(name, "three concerns stay below the threshold"))
    return tests


def caseload_file(tmp_path: Path) -> Path:
    path = tmp_path / "caseload.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CASELOAD))
    return path


def fill_form(page: Page, caseload: Path) -> None:
    page.get_by_label("The ruleset you edited").select_option("starter")
    page.get_by_label("Caseload file (JSON lines)").set_input_files(caseload)
    expect(page.locator("#caseload-summary")).to_have_text("caseload.jsonl: 4 cases.")
    page.get_by_label("Evaluate as of").fill(AS_OF)


def test_an_impact_preview_of_a_changed_threshold_shows_the_expected_counts(
    tab: Tab, edited: Path, tmp_path: Path
) -> None:
    fix_the_tests(edited)
    page = tab.open("impact.html")
    fill_form(page, caseload_file(tmp_path))
    # The whole edited folder, as a policy officer would choose it.
    page.get_by_label("Or a whole folder").set_input_files(edited)
    paths = page.locator("input.chosen-path").evaluate_all("inputs => inputs.map(i => i.value)")
    assert "ruleset.yaml" in paths and "tests/concerns.yaml" in paths
    page.get_by_role("button", name="Preview the impact").click()
    expect(page.locator("#impact-results")).to_be_visible(timeout=60_000)
    expect(page.locator("#impact-summary")).to_contain_text("4 cases evaluated as of 2025-06-30")
    expect(page.locator("#parameters")).to_contain_text("concerns_threshold 5 -> 4")

    rows = page.locator("#rule-table tbody tr")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.rule)")) == sorted(EXPECTED)
    for rule_id, (newly, gone, same) in EXPECTED.items():
        row = page.locator(f'#rule-table tr[data-rule="{rule_id}"]')
        expect(row.locator("td.newly")).to_have_text(str(newly))
        expect(row.locator("td.gone")).to_have_text(str(gone))
        expect(row.locator("td.same")).to_have_text(str(same))
    theme = page.locator('#theme-table tr[data-theme="rules"]')  # the starter's rules carry no theme code
    expect(theme.locator("td.newly")).to_have_text("2")
    expect(theme.locator("td.gone")).to_have_text("0")
    expect(theme.locator("td.same")).to_have_text("2")
    expect(page.locator("#total-newly .n")).to_have_text("3")
    expect(page.locator("#total-cases .n")).to_have_text("2")

    # Every rule, on request: the unchanged ones count every case as unchanged.
    page.get_by_label("Show every rule (11), not only those the edit changes").check()
    expect(rows).to_have_count(11)
    expect(page.locator('#rule-table tr[data-rule="worker-churn"] td.same')).to_have_text("4")

    # The drill-down: each newly flagged case with the rule's explanation.
    page.get_by_role("button", name="Show 2 cases for cumulative-concerns").click()
    drill = page.locator("#drill")
    expect(drill).to_be_focused()
    changes = drill.locator("li.case-change")
    assert sorted(changes.evaluate_all("items => items.map(i => i.dataset.case)")) == [
        "four-assessed",
        "four-unassessed",
    ]
    for item in changes.all():
        expect(item).to_contain_text("Newly flagged")
        expect(item).to_contain_text("4 concerns were recorded in the last 12 months (threshold 4).")
    assert tab.errors == []


def test_an_edit_that_fails_its_own_tests_shows_file_line_and_column(tab: Tab, edited: Path, tmp_path: Path) -> None:
    page = tab.open("impact.html")
    fill_form(page, caseload_file(tmp_path))
    # Only the parameter file: the ruleset's test that four concerns stay below the threshold fails.
    page.get_by_label("Rule files").set_input_files(edited / "ruleset.yaml")
    expect(page.locator("input.chosen-path")).to_have_value("ruleset.yaml")
    page.get_by_role("button", name="Preview the impact").click()
    error = page.locator("#impact-error")
    expect(error).to_be_visible(timeout=60_000)
    expect(error).to_be_focused()
    expect(error).to_contain_text("fails its own tests")
    lines = (STARTER / "tests" / "concerns.yaml").read_text().splitlines()
    start = next(n for n, line in enumerate(lines) if "four concerns stay below" in line)
    number, text = next((n + 1, line) for n, line in enumerate(lines) if n > start and "not_raised:" in line)
    for rule in ("cumulative-concerns", "concerns-without-assessment"):
        row = error.locator("tr.problem", has_text=rule)
        cells = row.locator("td")
        expect(cells.nth(0)).to_have_text("tests/concerns.yaml")
        expect(cells.nth(1)).to_have_text(str(number))
        expect(cells.nth(2)).to_have_text(str(text.index(rule) + 1))
        expect(cells.nth(3)).to_contain_text("four concerns stay below the threshold")
    expect(page.locator("#impact-results")).to_be_hidden()


def test_the_preview_says_what_is_missing_before_sending(tab: Tab) -> None:
    page = tab.open("impact.html")
    page.get_by_role("button", name="Preview the impact").click()
    error = page.locator("#impact-error")
    expect(error).to_be_focused()
    expect(error.locator("code.field-path")).to_have_text(["files", "caseload"])

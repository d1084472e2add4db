"""The equality report through the workbench's API: the report the engine gives (GetEqualityReport's),
counted by a real Engine evaluating cases whose child carries equality fields; withheld numbers null
in the report and "withheld" in the page's tables and charts; the threshold (default 10, never
lower); an unknown ruleset."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from rules_engine.engine.engine import Engine
from rules_engine.engine.equality import reading, wilson
from rules_engine.service import requests
from rules_engine.tools.fairness_report import WITHHELD
from tests.workbench.conftest import NOW, Client, concerns_case

API = "/workbench/api/equality"
AS_OF = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)
# Ethnicity: (cases flagged, cases not flagged). Indian is a small group; Chinese is shown flagged
# (10) but its cases evaluated (20) are withheld so Indian's 3 cannot be worked out from the whole.
GROUPS = {"WBRI": (12, 28), "BAFR": (20, 10), "AIND": (2, 1), "CHNE": (10, 10)}
CASES, FLAGGED = 93, 44
WITHHELD_READING = "withheld: a small number, or one a small number could be worked out from"


@pytest.fixture(scope="module", autouse=True)
def _counted(engine: Engine) -> None:
    """Eight concerns raise both of mini's rules; none raises neither."""
    for ethnicity, (flagged, plain) in GROUPS.items():
        for i in range(flagged + plain):
            case = concerns_case(f"eq-{ethnicity}-{i}", 8 if i < flagged else 0)
            case["child"] = {"ethnicity": ethnicity, "sex": "1" if i % 2 else "2"}
            facts = requests.case_model_from_proto(requests.case_from_json(case), NOW.date())
            engine.evaluate(facts, AS_OF, "mini")


def _breakdown(document: dict[str, Any], rule_id: str, characteristic: str) -> dict[str, Any]:
    (version,) = document["report"]["versions"]
    (rule,) = [r for r in version["rules"] if r["rule_id"] == rule_id]
    (breakdown,) = [b for b in rule["breakdowns"] if b["characteristic"] == characteristic]
    return {"*": breakdown["whole"], **{row["group"]: row for row in breakdown["groups"]}}


def test_the_report_is_the_engines_with_withheld_numbers_null(engine: Engine, client: Client) -> None:
    answer = client.get(API, params={"ruleset": "mini"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    document = answer.json()
    # The same report GetEqualityReport encodes and `fairness --report FILE.json` writes.
    assert document["report"] == json.loads(json.dumps(engine.equality_report("mini").to_dict()))
    assert document["ruleset"] == "mini" and document["threshold"] == 10 and document["lifecycle"] is True
    for rule_id in ("*", "cumulative-concerns", "many-concerns"):
        rows = _breakdown(document, rule_id, "ethnicity")
        assert (rows["*"]["evaluated"], rows["*"]["flagged"]) == (CASES, FLAGGED)
        white = rows["WBRI"]
        assert (white["evaluated"], white["flagged"]) == (40, 12)
        rate = white["flag"]
        whole = FLAGGED / CASES
        low, high = wilson(12, 40)
        assert rate["rate"] == pytest.approx(0.3) and rate["interval"] == pytest.approx([low, high])
        assert rate["ratio"] == pytest.approx(0.3 / whole)
        assert rate["ratio_interval"] == pytest.approx([low / whole, high / whole])
        assert rate["reading"] == reading("flagged", 0.3 / whole, (low / whole, high / whole))
        assert rate["reading"].endswith("the interval excludes 1")
        # Nothing dismissed yet: every dismissal count is under 10, so withheld, never 0.
        assert white["dismissed"] is None and white["acknowledged"] is None and white["dismissal"]["rate"] is None
        # The small group, and the group its count could be worked out from, are withheld: null.
        indian = rows["AIND"]
        assert [indian[k] for k in ("evaluated", "flagged", "acknowledged", "snoozed", "resolved", "dismissed")] == [
            None
        ] * 6
        assert indian["flag"] == {
            "numerator": None,
            "denominator": None,
            "rate": None,
            "interval": None,
            "ratio": None,
            "ratio_interval": None,
            "reading": WITHHELD_READING,
        }
        assert rows["CHNE"]["evaluated"] is None and rows["BAFR"]["evaluated"] == 30


def test_the_page_layout_is_the_fairness_reports_words_and_charts(client: Client) -> None:
    document = client.get(API, params={"ruleset": "mini"}).json()
    assert document["words"]["withheld"] == WITHHELD
    assert "fewer than 10 cases" in document["words"]["withheld_note"]
    assert "The rules never read these characteristics" in document["words"]["how_to_read"]
    (version,) = document["versions"]
    by_ethnicity = next(b for b in version["all_flags"] if b["characteristic"] == "ethnicity")
    assert by_ethnicity["name"] == "Ethnicity"
    assert by_ethnicity["columns"][:5] == ["Group", "Evaluated", "Flagged", "Flag rate (95% CI)", "Ratio to whole"]
    rows = {row["group"]: row for row in by_ethnicity["rows"]}
    assert rows["*"]["class"] == "whole" and rows["*"]["cells"][:3] == ["Whole caseload", "93", "44"]
    white = ["White British (WBRI)", "40", "12", "30.0% (18.1% to 45.4%)", "0.63 (0.38 to 0.96) *"]
    assert rows["WBRI"]["cells"][:5] == white
    assert rows["WBRI"]["class"] == "disparate"
    # A withheld cell is the word, never a number.
    assert set(rows["AIND"]["cells"][1:]) == {WITHHELD, WITHHELD_READING}
    # The chart (the HTML report's spec) draws only the groups whose ratio is shown.
    flag_chart, dismissal_chart = by_ethnicity["charts"]
    assert flag_chart["measure"] == "flag" and flag_chart["spec"]["$schema"].startswith(
        "https://vega.github.io/schema/vega-lite/v6"
    )
    drawn = [row["group"] for row in flag_chart["spec"]["datasets"][flag_chart["spec"]["data"]["name"]]]
    assert drawn == ["White British (WBRI)", "Black African (BAFR)"]
    assert flag_chart["not_drawn"] == ["Indian (AIND)", "Chinese (CHNE)"]
    assert dismissal_chart["spec"] is None and len(dismissal_chart["not_drawn"]) == 4
    # The rules' findings, each rule's tables, titled.
    findings = {(row[0], row[2]) for row in version["findings"]["rows"]}
    assert ("cumulative-concerns: 5 or more concerns recorded in 12 months", "Black African (BAFR)") in findings
    assert [r["title"] for r in version["rules"]] == [
        "cumulative-concerns: 5 or more concerns recorded in 12 months",
        "many-concerns: 7 or more concerns recorded in 12 months",
    ]
    assert document["intervals_excluding_1"] >= len(findings)


def test_the_threshold_can_rise_never_fall(client: Client) -> None:
    assert client.get(API, params={"ruleset": "mini", "threshold": ""}).json()["threshold"] == 10
    higher = client.get(API, params={"ruleset": "mini", "threshold": "15"}).json()
    assert higher["threshold"] == 15
    assert _breakdown(higher, "*", "ethnicity")["WBRI"]["flagged"] is None  # 12, under 15
    for value in ("9", "0", "-1", "ten", "12.5"):
        answer = client.get(API, params={"ruleset": "mini", "threshold": value})
        assert answer.status_code == 400, value
        (violation,) = answer.json()["violations"]
        assert violation["field"] == "threshold" and "at least 10" in violation["description"]


def test_an_unknown_ruleset_is_not_found_and_an_uncounted_one_is_empty(client: Client) -> None:
    missing = client.get(API, params={"ruleset": "no-such-ruleset"})
    assert missing.status_code == 404 and "no-such-ruleset" in missing.json()["error"]
    starter = client.get(API, params={"ruleset": "starter"}).json()  # loaded, nothing counted
    assert starter["versions"] == [] and starter["report"]["versions"] == []
    every = client.get(API).json()  # no ruleset: every one, as GetEqualityReport
    assert every["ruleset"] is None and [v["ruleset"] for v in every["versions"]] == ["mini"]
    assert client.post(API).status_code == 405

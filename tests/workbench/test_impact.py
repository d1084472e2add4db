"""The impact preview through the real ASGI app: an edited ruleset (uploaded files laid over the
served one) must pass check and its own tests, then a small synthetic caseload gives exact counts
per rule and per theme, with each changed case's explanation; refusals name file, line, column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rules_engine.engine.engine import Engine
from tests.workbench.conftest import AS_OF, HERE, Client, concerns_case, make_workbench

IMPACT = "/workbench/api/impact"
MINI = HERE / "rulesets" / "mini"
# Two cases with each count of concerns from 0 to 8 in the 12 months before AS_OF.
CASELOAD = "\n".join(json.dumps(concerns_case(f"wb-{n}-{copy}", n)) for n in range(9) for copy in "ab") + "\n"


def edited(**parameters: int) -> str:
    """mini's ruleset.yaml with some parameters changed."""
    text = (MINI / "ruleset.yaml").read_text()
    for name, value in parameters.items():
        old = next(line for line in text.splitlines() if line.strip().startswith(f"{name}:"))
        text = text.replace(old, f"  {name}: {value}")
    return text


def preview(client: Client, files: dict[str, str], caseload: str = CASELOAD, **extra: Any) -> Any:
    body = {"ruleset": "mini", "as_of": AS_OF, "files": files, "caseload": caseload, **extra}
    return client.post(IMPACT, json=body)


def test_a_changed_threshold_gives_exact_counts_per_rule_and_theme(client: Client) -> None:
    # cumulative-concerns 5 -> 4 (the 4-concern cases become flagged); many-concerns 7 -> 8 (the
    # 7-concern cases no longer are). Both rules are theme H1.
    answer = preview(client, {"ruleset.yaml": edited(concerns_threshold=4, many_threshold=8)})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["caseload"] == 18 and result["as_of"] == AS_OF and result["rulesets"] == ["mini"]
    rules = {r["rule_id"]: r for r in result["rules"]}
    counts = ("newly_flagged", "no_longer_flagged", "unchanged", "still_flagged")
    assert {k: rules["cumulative-concerns"][k] for k in counts} == {
        "newly_flagged": 2,
        "no_longer_flagged": 0,
        "unchanged": 16,
        "still_flagged": 8,
    }
    assert {k: rules["many-concerns"][k] for k in counts} == {
        "newly_flagged": 0,
        "no_longer_flagged": 2,
        "unchanged": 16,
        "still_flagged": 2,
    }
    assert rules["cumulative-concerns"]["edits"] == ["parameter concerns_threshold 5 -> 4"]
    assert rules["cumulative-concerns"]["themes"] == ["H1"]
    # Per theme, per case: the 7-concern cases are still flagged by cumulative-concerns, so under H1
    # only the 4-concern cases changed.
    (theme,) = result["themes"]
    assert theme == {
        "ruleset": "mini",
        "theme": "H1",
        "rules": ["cumulative-concerns", "many-concerns"],
        "newly_flagged": 2,
        "no_longer_flagged": 0,
        "unchanged": 16,
        "still_flagged": 8,
    }
    assert result["cases_total"] == 4
    drill = {(c["case_id"], c["rule_id"]): c for c in result["cases"]}
    assert set(drill) == {
        ("wb-4-a", "cumulative-concerns"),
        ("wb-4-b", "cumulative-concerns"),
        ("wb-7-a", "many-concerns"),
        ("wb-7-b", "many-concerns"),
    }
    newly = drill["wb-4-a", "cumulative-concerns"]
    assert newly["change"] == "newly_flagged"
    assert newly["explanation"] == "4 concerns were recorded in the last 12 months (threshold 4)."
    assert newly["before"]["flagged"] is False and newly["before"]["thresholds"] == {"concerns_threshold": 5}
    assert newly["after"]["measured"] == {"concerns_12m": 4}
    gone = drill["wb-7-b", "many-concerns"]
    assert gone["change"] == "no_longer_flagged"
    assert gone["explanation"] == "7 concerns were recorded in the last 12 months (threshold 7)."
    assert gone["after"] == {
        "exists": True,
        "flagged": False,
        "explanation": "",
        "measured": {"concerns_12m": 7},
        "thresholds": {"many_threshold": 8},
    }
    parameters = {p["name"]: p for p in result["parameters"]}
    assert parameters["concerns_threshold"]["old"] == 5 and parameters["concerns_threshold"]["new"] == 4
    assert parameters["concerns_threshold"]["near"] == 8  # cases with 3 to 6 concerns


def test_a_rule_file_error_is_refused_with_file_line_and_column(client: Client) -> None:
    broken = (MINI / "rules.yaml").read_text().replace("severity: high", "severity: [high")
    answer = preview(client, {"rules.yaml": broken})
    assert answer.status_code == 422
    result = answer.json()
    assert result["error"] == "the edited ruleset does not pass check"
    first = result["problems"][0]
    assert (first["file"], first["line"]) == ("rules.yaml", 15)  # where the parser found the list unclosed
    assert isinstance(first["column"], int) and first["message"].startswith("load_error: invalid YAML")


def test_a_schema_error_names_where_it_is(client: Client) -> None:
    wrong = (MINI / "rules.yaml").read_text().replace("severity: high", "severity: very high")
    problems = preview(client, {"rules.yaml": wrong}).json()["problems"]
    assert [(p["file"], p["line"], p["column"]) for p in problems] == [("rules.yaml", 14, 15)]


def test_an_edit_its_own_tests_refuse_names_the_failing_test(client: Client) -> None:
    # At 9, eight concerns no longer raise cumulative-concerns, which the ruleset's test expects.
    answer = preview(client, {"ruleset.yaml": edited(concerns_threshold=9)})
    assert answer.status_code == 422
    result = answer.json()
    assert result["error"] == "the edited ruleset fails its own tests (1 passed, 1 failed)"
    (failure,) = result["problems"]
    assert (failure["file"], failure["line"], failure["column"]) == ("tests/mini.yaml", 16, 16)
    assert failure["message"].startswith("test 'eight concerns raise both': rule cumulative-concerns expected raised")


def test_an_uploaded_test_file_is_run_too(client: Client) -> None:
    text = (MINI / "tests" / "mini.yaml").read_text()
    tests = text.replace("not_raised: [cumulative-concerns, many-concerns]", "not_raised: [many-concerns, nobody]")
    problems = preview(client, {"tests/mini.yaml": tests}).json()["problems"]
    assert [p["message"].split(": ", 1)[1] for p in problems] == ["unknown rule 'nobody'"]


def test_bad_files_and_caseloads_are_refused_field_by_field(client: Client) -> None:
    answer = preview(client, {"../outside.yaml": "x", "/etc/passwd.yaml": "x", "script.sh": "x", ".hidden.yaml": "x"})
    assert answer.status_code == 400
    fields = {v["field"] for v in answer.json()["violations"]}
    assert fields == {
        "files['../outside.yaml']",
        "files['/etc/passwd.yaml']",
        "files['script.sh']",
        "files['.hidden.yaml']",
    }
    bad_case = concerns_case("wb-bad", 1)
    bad_case["concerns"][0]["date"] = "yesterday"
    caseload = json.dumps(concerns_case("wb-ok", 1)) + "\n" + json.dumps(bad_case) + "\nnot json\n"
    violations = preview(client, {"ruleset.yaml": edited()}, caseload=caseload).json()["violations"]
    assert violations == [{"field": "caseload:2: case.concerns[0].date", "description": "not a date (YYYY-MM-DD)"}]
    duplicate = json.dumps(concerns_case("wb-same", 1)) + "\n" + json.dumps(concerns_case("wb-same", 2))
    violations = preview(client, {"ruleset.yaml": edited()}, caseload=duplicate).json()["violations"]
    assert violations == [{"field": "caseload:2: case.case_id", "description": "also on line 1"}]
    missing = client.post(IMPACT, json={"as_of": AS_OF})
    assert {v["field"] for v in missing.json()["violations"]} == {"ruleset", "files", "caseload"}


def test_paths_on_the_server_need_the_servers_leave(engine: Engine, client: Client, tmp_path: Path) -> None:
    body = {"base": str(MINI), "head": str(MINI), "caseload": CASELOAD, "as_of": AS_OF}
    refused = client.post(IMPACT, json=body)
    assert refused.status_code == 400  # 401 and 403 are kept for credentials
    assert [v["field"] for v in refused.json()["violations"]] == ["base", "head"]
    assert "--workbench-paths" in refused.json()["violations"][0]["description"]
    allowed = Client(make_workbench(engine, allow_paths=True))
    answer = allowed.post(IMPACT, json=body)
    assert answer.status_code == 200, answer.text
    assert all(r["newly_flagged"] == r["no_longer_flagged"] == 0 for r in answer.json()["rules"])

"""The workbench's API through its real ASGI app: the catalogue, samples, a case tried (and refused
field by field as the API refuses it), timelines of a pasted and of a stored case, and the
HTTP refusals (unknown paths, methods, content types, sizes)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from rules_engine.engine.engine import Engine
from rules_engine.service import requests
from tests.workbench.conftest import AS_OF, ROOT, Client, concerns_case, make_workbench

API = "/workbench/api"
EXAMPLE = json.loads((ROOT / "examples" / "evaluate-request.json").read_text())


def test_the_catalogue_lists_every_ruleset_with_its_rules_in_plain_words(client: Client) -> None:
    answer = client.get(f"{API}/rulesets")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    rulesets = {r["name"]: r for r in answer.json()["rulesets"]}
    assert set(rulesets) == {"mini", "starter"}
    mini = {r["id"]: r for r in rulesets["mini"]["rules"]}
    cumulative = mini["cumulative-concerns"]
    assert cumulative["title"] == "5 or more concerns recorded in 12 months"
    assert cumulative["summary"] == "Concerns recorded in the last 12 months is at least 5 (concerns_threshold)"
    assert cumulative["thresholds"] == [
        {"parameter": "concerns_threshold", "value": 5, "source": "local", "reference": "Local default"}
    ]
    assert cumulative["severity"] == "medium" and cumulative["escalation"] == "Team manager"
    assert cumulative["themes"] == ["H1"] and cumulative["shadow"] is False
    assert cumulative["tests"] == ["eight concerns raise both", "no concern raises neither"]
    assert cumulative["covered"] is True
    assert mini["many-concerns"]["source"] == {"kind": "statutory", "reference": "A statutory reference, for the test"}
    assert rulesets["mini"]["themes"] == ["H1"]
    starter = {r["id"]: r for r in rulesets["starter"]["rules"]}
    # A composite links to the rules it builds on, and they back to it.
    assert starter["long-running-pattern"]["builds_on"] == [
        "threats-to-staff",
        "cumulative-concerns",
        "concerns-without-assessment",
        "chronology-out-of-date",
    ]
    assert "long-running-pattern" in starter["threats-to-staff"]["built_on_by"]
    assert starter["infant-with-concerns"]["shadow"] is True
    # Rules without a theme code are under their file's name.
    assert starter["cumulative-concerns"]["themes"] == ["rules"]


def test_samples_are_listed_and_each_is_a_case_the_api_accepts(client: Client) -> None:
    listing = client.get(f"{API}/samples").json()["samples"]
    names = [s["name"] for s in listing]
    assert {"long-timeline", "well-managed", "slow-burn", "drifting"} <= set(names)
    for entry in listing:
        sample = client.get(f"{API}/samples/{entry['name']}").json()
        assert sample["as_of"] == entry["as_of"] and sample["case"]["caseId"] == entry["case_id"]
        day = dt.date.fromisoformat(sample["as_of"])
        requests.case_model_from_proto(requests.case_from_json(sample["case"]), day)  # raises if refused
    missing = client.get(f"{API}/samples/nobody")
    assert missing.status_code == 404 and "long-timeline" in missing.json()["error"]


def test_a_pasted_case_shows_its_flags_values_and_evidence(client: Client) -> None:
    body = {"ruleset": "starter", "as_of": AS_OF, "case": EXAMPLE["case"]}
    answer = client.post(f"{API}/evaluate", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["ruleset"] == "starter" and result["as_of"] == AS_OF
    flags = {f["rule_id"]: f for f in result["flags"]}
    assert "cumulative-concerns" in flags
    flag = flags["cumulative-concerns"]
    assert flag["severity"] == "medium"
    assert flag["thresholds"] == [{"parameter": "concerns_threshold", "value": 5}]
    assert flag["measured"]["concerns_12m"] == result["values"]["concerns_12m"] >= 5
    assert flag["explanation"].startswith(f"{result['values']['concerns_12m']} concerns")
    evidence = flag["evidence"][0]
    assert evidence["fact_type"] == "concerns" and evidence["json_field"] == "concerns"
    # The evidence names facts of the case as the page lays it out.
    assert evidence["fact_id"] in {c["id"] for c in result["facts"]["concerns"]}
    # The same flags as the service's own evaluation of the example.
    assert sorted(flags) == sorted(EXAMPLE_FLAGS)


EXAMPLE_FLAGS: list[str] = []


@pytest.fixture(autouse=True, scope="module")
def _example_flags(engine: Engine) -> None:
    # What Engine.evaluate (the API's path) raises for the example, to compare with the workbench.
    message = requests.case_from_json(EXAMPLE["case"])
    case = requests.case_model_from_proto(message, dt.date(2025, 7, 1))
    evaluation = engine.evaluate(case, dt.datetime(2025, 6, 30, tzinfo=dt.UTC), "starter")
    EXAMPLE_FLAGS[:] = [f.rule_id for f in evaluation.flags]


def test_shadow_flags_and_the_default_ruleset(client: Client) -> None:
    concern = {"id": "c1", "date": "2025-05-02", "agency": "HEALTH_VISITOR"}
    baby = {"caseId": "wb-baby", "child": {"birthDate": "2025-01-10"}, "concerns": [concern]}
    result = client.post(f"{API}/evaluate", json={"as_of": AS_OF, "case": baby}).json()
    assert result["ruleset"] == "starter"  # the server's default
    assert [f["rule_id"] for f in result["shadow_flags"]] == ["infant-with-concerns"]
    assert result["shadow_flags"][0]["shadow"] is True


def test_an_invalid_case_is_refused_with_the_apis_field_paths(client: Client) -> None:
    case = concerns_case("wb-bad", 2)
    case["concerns"][1]["date"] = "2025-02-30"
    case["concerns"][0]["agnecy"] = "POLICE"
    answer = client.post(f"{API}/evaluate", json={"ruleset": "mini", "as_of": "30/06/2025", "case": case})
    assert answer.status_code == 400
    violations = {v["field"]: v["description"] for v in answer.json()["violations"]}
    assert violations["as_of"] == "not a date (YYYY-MM-DD) or RFC 3339 timestamp"
    assert violations["case.concerns[0].agnecy"].startswith("unknown field; did you mean 'agency'?")
    # The fields the validating conversion names, as EvaluateRequest's BadRequest does.
    case["concerns"][0].pop("agnecy")
    answer = client.post(f"{API}/evaluate", json={"ruleset": "mini", "case": case})
    assert answer.json()["violations"] == [{"field": "case.concerns[1].date", "description": "not a date (YYYY-MM-DD)"}]
    assert answer.json()["error"] == "invalid request: case.concerns[1].date: not a date (YYYY-MM-DD)"


def test_a_missing_case_an_unknown_ruleset_and_a_wrong_kind_of_field(client: Client) -> None:
    answer = client.post(f"{API}/evaluate", json={"ruleset": 3})
    assert {v["field"] for v in answer.json()["violations"]} == {"ruleset", "case"}
    answer = client.post(f"{API}/evaluate", json={"ruleset": "nope", "case": concerns_case("wb-1", 1)})
    assert answer.status_code == 404 and "nope" in answer.json()["error"]


def test_the_timeline_gives_the_replay_plots_spec_and_one_episode_per_bar(client: Client) -> None:
    body = {"ruleset": "mini", "as_of": AS_OF, "case": concerns_case("wb-timeline", 8)}
    answer = client.post(f"{API}/timeline", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["to"] == AS_OF and result["step"] == "month"
    assert result["spec"]["$schema"].startswith("https://vega.github.io/schema/vega-lite/v6")
    episodes = {e["rule_id"]: e for e in result["episodes"]}
    # Concerns a day apart from 2 January: five by the end of January, seven too; live at the end.
    assert episodes["cumulative-concerns"] == {
        "rule_id": "cumulative-concerns",
        "title": "5 or more concerns recorded in 12 months",
        "severity": "medium",
        "shadow": False,
        "from": "2025-01-31",
        "to": None,
        "steps": 6,
    }
    flag_panel = result["spec"]["vconcat"][-1]
    bars = result["spec"]["datasets"][flag_panel["data"]["name"]]  # altair names each inline dataset
    assert [(b["rule"], b["start"]) for b in bars] == [(e["rule_id"], e["from"]) for e in result["episodes"]]


def test_the_timeline_refuses_a_bad_step_and_too_many_steps(client: Client) -> None:
    body = {"ruleset": "mini", "as_of": AS_OF, "case": concerns_case("wb-steps", 3), "step": "fortnight"}
    answer = client.post(f"{API}/timeline", json=body)
    assert answer.status_code == 400 and answer.json()["violations"][0]["field"] == "step"
    long = concerns_case("wb-long", 1)
    long["concerns"][0]["date"] = "2015-01-01"
    answer = client.post(f"{API}/timeline", json={**body, "case": long, "step": "day"})
    assert answer.status_code == 400
    assert "choose a longer step" in answer.json()["violations"][0]["description"]


def test_a_stored_case_timeline_comes_with_what_the_service_recorded(engine: Engine, client: Client) -> None:
    message = requests.case_from_json(concerns_case("wb-stored", 6))
    case = requests.case_model_from_proto(message, dt.date(2025, 7, 1))
    engine.evaluate_history(case, as_of=dt.datetime(2025, 6, 30, tzinfo=dt.UTC), ruleset="mini")
    answer = client.get(f"{API}/timeline/stored/wb-stored", params={"ruleset": "mini"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert [e["rule_id"] for e in result["episodes"]] == ["cumulative-concerns"]
    recorded = result["recorded"]
    assert recorded["flags_raised"] == [
        {"rule_id": "cumulative-concerns", "ruleset": "mini", "date": AS_OF, "severity": "medium"}
    ]
    assert recorded["facts"] == 6
    assert [f["rule_id"] for f in recorded["decisions"][0]["flags"]] == ["cumulative-concerns"]
    assert client.get(f"{API}/timeline/stored/wb-nobody").status_code == 404
    bad = client.get(f"{API}/timeline/stored/not%20an%20id")
    assert bad.status_code == 400 and bad.json()["violations"][0]["field"] == "case_id"


def test_http_refusals_say_what_to_do(client: Client) -> None:
    assert client.get(f"{API}/nothing").status_code == 404
    wrong_method = client.get(f"{API}/evaluate")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    form = client.post(f"{API}/evaluate", content=b"case=1", headers={"content-type": "text/plain"})
    assert form.status_code == 415
    broken = client.post(f"{API}/evaluate", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]


def test_a_body_past_the_bound_is_refused_413(engine: Engine) -> None:
    small = Client(make_workbench(engine, max_body_bytes=1000))
    answer = small.post(f"{API}/evaluate", json={"case": concerns_case("wb-big", 40)})
    assert answer.status_code == 413 and "1,000 bytes" in answer.json()["error"]

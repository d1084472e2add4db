"""The workbench through a real `rules-engine serve` on free ports, with a clients file: the pages
open, the API for operators only, a case evaluated with the served ruleset and an impact preview."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.redis_server import free_port
from tests.serve_process import serve
from tests.workbench.conftest import AS_OF, HERE, concerns_case, copy_rulesets

CALLER, OPERATOR = "caller-token-0123456789", "operator-token-0123456789"


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    directory = tmp_path_factory.mktemp("workbench-serve")
    rulesets = copy_rulesets(directory / "rulesets")
    (directory / "clients").write_text(f"{CALLER} caller case-system\n{OPERATOR} operator policy-team\n")
    port, http_port = free_port(), free_port()
    args = (
        "--http-port", str(http_port), "--metrics-port", "0", "--rulesets", str(rulesets),
        "--default-ruleset", "starter", "--clients-file", str(directory / "clients"),
    )  # fmt: skip
    with serve(port, *args), httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as client:
        yield client


def operator() -> dict[str, str]:
    return {"authorization": f"Bearer {OPERATOR}"}


def test_the_pages_open_without_a_token(http: httpx.Client) -> None:
    page = http.get("/workbench/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert http.get("/workbench", follow_redirects=False).headers["location"] == "/workbench/"


def test_the_api_is_for_operators(http: httpx.Client) -> None:
    assert http.get("/workbench/api/rulesets").status_code == 401
    assert http.get("/workbench/api/rulesets", headers={"authorization": f"Bearer {CALLER}"}).status_code == 403
    answer = http.get("/workbench/api/rulesets", headers=operator())
    assert answer.status_code == 200
    assert {r["name"] for r in answer.json()["rulesets"]} == {"mini", "starter"}


def test_a_case_is_evaluated_with_the_served_ruleset(http: httpx.Client) -> None:
    body = {"ruleset": "mini", "as_of": AS_OF, "case": concerns_case("wb-serve", 7)}
    result = http.post("/workbench/api/evaluate", json=body, headers=operator()).json()
    assert [f["rule_id"] for f in result["flags"]] == ["many-concerns", "cumulative-concerns"]
    bad = http.post(
        "/workbench/api/evaluate", json={**body, "case": {"caseId": "x", "concerns": [{}]}}, headers=operator()
    )
    assert bad.status_code == 400
    assert {v["field"] for v in bad.json()["violations"]} >= {"case.concerns[0].id", "case.concerns[0].date"}


def test_an_impact_preview_over_the_port(http: httpx.Client) -> None:
    ruleset = (
        (HERE / "rulesets" / "mini" / "ruleset.yaml")
        .read_text()
        .replace("concerns_threshold: 5", "concerns_threshold: 4")
    )
    caseload = "\n".join(json.dumps(concerns_case(f"wb-{n}", n)) for n in range(9))
    body = {"ruleset": "mini", "as_of": AS_OF, "files": {"ruleset.yaml": ruleset}, "caseload": caseload}
    answer = http.post("/workbench/api/impact", json=body, headers=operator())
    assert answer.status_code == 200, answer.text
    rules = {r["rule_id"]: r for r in answer.json()["rules"]}
    assert rules["cumulative-concerns"]["newly_flagged"] == 1
    assert [c["case_id"] for c in answer.json()["cases"]] == ["wb-4"]


def test_the_served_rulesets_are_left_as_they_were(http: httpx.Client) -> None:
    # The preview wrote its edit into a temporary copy: the served version is unchanged.
    result = http.get("/workbench/api/rulesets", headers=operator()).json()
    mini = next(r for r in result["rulesets"] if r["name"] == "mini")
    assert mini["parameters"]["concerns_threshold"] == 5

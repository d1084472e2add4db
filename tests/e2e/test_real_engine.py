"""The real engine behind a real server: the example case gives the same flags over gRPC and `rules-engine eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from tests.e2e.harness import RunningServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "case.json"


@pytest.fixture
def real(start_server: Callable[..., RunningServer]) -> Iterator[RunningServer]:
    registry = Registry(ROOT / "rulesets", compile_ruleset)
    registry.reload()
    yield start_server(Engine(registry))
    registry.close()


def example_request() -> pb.EvaluateRequest:
    request = pb.EvaluateRequest(as_of="2025-06-30", ruleset="starter")
    request.case.CopyFrom(requests.case_from_json(json.loads(EXAMPLE.read_text())))
    return request


def without_decision(response: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in response.items() if k != "decisionId"}


def test_example_case_gives_the_same_flags_over_grpc_and_the_cli(real: RunningServer) -> None:
    response = real.stub.Evaluate(example_request(), timeout=10)
    over_grpc = json_format.MessageToDict(response, always_print_fields_with_no_presence=True)
    cli = subprocess.run(
        [sys.executable, "-m", "rules_engine", "eval", str(EXAMPLE), "--as-of", "2025-06-30", "--ruleset", "starter"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert without_decision(json.loads(cli.stdout)) == without_decision(over_grpc)
    assert [f.rule_id for f in response.flags][:2] == ["long-running-pattern", "concerns-without-assessment"]
    assert response.ruleset == "starter"
    assert len(response.ruleset_version) == 12


def test_list_rulesets_reports_the_starter(real: RunningServer) -> None:
    listed = real.stub.ListRulesets(pb.ListRulesetsRequest(), timeout=5)
    starter = next(r for r in listed.rulesets if r.name == "starter")
    assert starter.rule_count >= 9
    assert starter.shadow_rule_count == 1
    assert starter.last_error == ""


def test_unknown_code_is_invalid_argument_with_its_field(real: RunningServer) -> None:
    request = example_request()
    request.case.concerns[1].agency = "POLIS"
    with pytest.raises(grpc.RpcError) as caught:
        real.stub.Evaluate(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "case.concerns[1].agency" in (caught.value.details() or "")

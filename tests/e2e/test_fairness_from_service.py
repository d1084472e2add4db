"""`rules-engine fairness --from-service` against a real `rules-engine serve`: the report read over the
HTTP door is the one GetEqualityReport gives over gRPC; a caller's token is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from typer.testing import CliRunner

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.cli.app import app
from rules_engine.service import requests
from rules_engine.tools.fairness_service import TOKEN_VARIABLE, ServiceError, fetch_report, report_from_json
from tests.redis_server import free_port
from tests.serve_process import serve

ROOT = Path(__file__).resolve().parents[2]
CALLER, OPERATOR = "caller-token-fairness-0123", "operator-token-fairness-0123"


@dataclass
class Served:
    stub: pb_grpc.RulesEngineServiceStub
    url: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("fairness")
    (directory / "clients").write_text(f"{CALLER} caller case-system\n{OPERATOR} operator equality-lead\n")
    port, http_port = free_port(), free_port()
    args = ("--http-port", str(http_port), "--metrics-port", "0", "--clients-file", str(directory / "clients"))
    with serve(port, *args), grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.RulesEngineServiceStub(channel)
        template = json.loads((ROOT / "examples" / "evaluate-request.json").read_text())
        for i in range(40):
            request = requests.request_from_json(template)
            request.case.case_id = f"fair-e2e-{i}"
            request.case.child.ethnicity = "WBRI" if i % 3 else "BAFR"
            request.case.child.sex = "1" if i % 2 else "2"
            stub.Evaluate(request, metadata=(("authorization", f"Bearer {CALLER}"),), timeout=10)
        yield Served(stub, f"http://127.0.0.1:{http_port}")


def test_the_report_over_the_http_door_is_the_grpc_one(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, OPERATOR)
    built, context = fetch_report(served.url, 10, "starter")
    over_grpc = served.stub.GetEqualityReport(
        pb.GetEqualityReportRequest(ruleset="starter", threshold=10),
        metadata=(("authorization", f"Bearer {OPERATOR}"),),
        timeout=10,
    )
    assert built == report_from_json(json_format.MessageToDict(over_grpc))
    assert built.lifecycle and built.threshold == 10
    (version,) = built.versions
    whole = version.rules[0].breakdowns[0].whole
    assert version.ruleset == "starter" and whole.evaluated == 40
    assert served.url in context.source


def test_the_cli_reads_the_service(served: Served, tmp_path: Path) -> None:
    report = tmp_path / "service.md"
    args = ["fairness", "--from-service", served.url, "--ruleset", "starter", "--report", str(report)]
    result = CliRunner().invoke(app, args, env={TOKEN_VARIABLE: OPERATOR})
    assert result.exit_code == 0, result.output
    text = report.read_text(encoding="utf-8")
    assert "the service at" in text and "Dismissal rate" in text
    assert "White British (WBRI)" in text


def test_a_callers_token_is_refused(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, CALLER)
    with pytest.raises(ServiceError, match="permission_denied"):
        fetch_report(served.url, 10, None)
    result = CliRunner().invoke(app, ["fairness", "--from-service", served.url], env={TOKEN_VARIABLE: CALLER})
    assert result.exit_code == 1
    assert CALLER not in result.output

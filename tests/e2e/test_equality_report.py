"""GetEqualityReport through a real `rules-engine serve`, on both doors: refused to a caller, answered to an
operator, the same report over gRPC and Connect JSON, with the cases callers evaluated counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import json_format

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.service import requests
from tests.redis_server import free_port
from tests.serve_process import serve

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "/rules_engine.v1.RulesEngineService"
CALLER, OPERATOR = "caller-token-equality-0123", "operator-token-equality-0123"
CLIENTS = f"{CALLER} caller case-system\n{OPERATOR} operator equality-lead\n"


@dataclass
class Served:
    stub: pb_grpc.RulesEngineServiceStub
    http: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("equality")
    (directory / "clients").write_text(CLIENTS)
    port, http_port = free_port(), free_port()
    args = ("--http-port", str(http_port), "--metrics-port", "0", "--clients-file", str(directory / "clients"))
    with (
        serve(port, *args) as _process,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as client,
    ):
        yield Served(pb_grpc.RulesEngineServiceStub(channel), client)


def _metadata(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def _request(case_id: str, ethnicity: str) -> pb.EvaluateRequest:
    request = requests.request_from_json(json.loads((ROOT / "examples" / "evaluate-request.json").read_text()))
    request.case.case_id = case_id
    request.case.child.ethnicity = ethnicity
    request.case.child.sex = "1"
    return request


def test_callers_are_refused_operators_answered_the_same_on_both_doors(served: Served) -> None:
    for i in range(25):
        served.stub.Evaluate(_request(f"eq-e2e-{i}", "WBRI" if i < 13 else "AIND"), metadata=_metadata(CALLER))

    with pytest.raises(grpc.RpcError) as denied:
        served.stub.GetEqualityReport(pb.GetEqualityReportRequest(), metadata=_metadata(CALLER), timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    http_denied = served.http.post(
        f"{SERVICE}/GetEqualityReport", json={}, headers={"authorization": f"Bearer {CALLER}"}
    )
    assert http_denied.status_code == 403
    assert http_denied.json() == {"code": "permission_denied", "message": "GetEqualityReport needs the operator role"}

    over_grpc = served.stub.GetEqualityReport(
        pb.GetEqualityReportRequest(ruleset="starter"), metadata=_metadata(OPERATOR), timeout=10
    )
    over_http = served.http.post(
        f"{SERVICE}/GetEqualityReport", json={"ruleset": "starter"}, headers={"authorization": f"Bearer {OPERATOR}"}
    )
    assert over_http.status_code == 200, over_http.text
    assert json_format.ParseDict(over_http.json(), pb.GetEqualityReportResponse()) == over_grpc

    (version,) = over_grpc.versions
    (any_flag, *rules) = version.rules
    assert any_flag.rule_id == "*" and rules  # every active rule of the loaded version has its rows
    (ethnicity,) = [b for b in any_flag.breakdowns if b.characteristic == "ethnicity"]
    assert ethnicity.whole.evaluated == 25
    assert {g.group: g.evaluated for g in ethnicity.groups} == {"WBRI": 13, "AIND": 12}


def test_a_threshold_under_ten_is_refused_on_both_doors(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        served.stub.GetEqualityReport(
            pb.GetEqualityReportRequest(threshold=5), metadata=_metadata(OPERATOR), timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    answer = served.http.post(
        f"{SERVICE}/GetEqualityReport", json={"threshold": 5}, headers={"authorization": f"Bearer {OPERATOR}"}
    )
    assert answer.status_code == 400 and "threshold: must be at least 10" in answer.json()["message"]

"""The gRPC API end to end: a real server on a free port, called through the generated stub."""

from __future__ import annotations

import logging
import random
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from tests.e2e.harness import ConcernCountService, RunningServer

SERVICE = "rules_engine.v1.RulesEngineService"


def _case(case_id: str = "case-1", concerns: int = 3) -> case_pb2.Case:
    case = case_pb2.Case(case_id=case_id)
    for i in range(concerns):
        case.concerns.add(id=f"c{i}", date=f"2024-06-{i + 1:02d}", agency="POLICE", category="NEGLECT")
    return case


def _details(error: grpc.RpcError) -> str:
    return error.details() or ""


def _bad_request(error: grpc.RpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)
    assert status is not None
    assert status.code == code_pb2.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return [(v.field, v.description) for v in bad_request.field_violations]


def test_evaluate_returns_the_flag(stub: pb_grpc.RulesEngineServiceStub) -> None:
    response = stub.Evaluate(pb.EvaluateRequest(case=_case(), as_of="2025-01-01"), timeout=5)

    assert response.case_id == "case-1"
    assert response.ruleset == "demo"
    assert response.ruleset_version == "v-demo"
    assert response.as_of == "2025-01-01T00:00:00Z"
    [flag] = response.flags
    assert flag.rule_id == "many-concerns"
    assert flag.severity == pb.SEVERITY_HIGH
    assert [(v.name, v.number) for v in flag.measured_values] == [("concerns", 3.0)]
    assert [e.fact_id for e in flag.evidence] == ["c0", "c1", "c2"]
    assert flag.threshold_source.kind == pb.THRESHOLD_SOURCE_KIND_LOCAL


def test_evaluate_without_flags(stub: pb_grpc.RulesEngineServiceStub) -> None:
    response = stub.Evaluate(pb.EvaluateRequest(case=_case(concerns=2)), timeout=5)

    assert list(response.flags) == []
    assert response.as_of  # defaults to now


def test_invalid_case_names_every_field_in_message_and_details(stub: pb_grpc.RulesEngineServiceStub) -> None:
    case = _case()
    case.concerns[2].date = "2024-13-01"
    case.conferences.add(id="k1", date="2024-06-01", kind=case_pb2.CONFERENCE_KIND_INITIAL)
    case.conferences[0].agencies.add(agency="POLICE")
    case.conferences[0].agencies.add(agency="MI5")

    with pytest.raises(grpc.RpcError) as caught:
        stub.Evaluate(pb.EvaluateRequest(case=case, as_of="yesterday"), timeout=5)

    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for path in ("as_of", "case.concerns[2].date", "case.conferences[0].agencies[1].agency"):
        assert path in _details(error)
    assert _bad_request(error) == [
        ("as_of", "not a date (YYYY-MM-DD) or RFC 3339 timestamp"),
        ("case.concerns[2].date", "not a date (YYYY-MM-DD)"),
        (
            "case.conferences[0].agencies[1].agency",
            "unknown code 'MI5'; not one of the 23 codes in rules_engine/case/codes.py",
        ),
    ]


def test_a_case_with_thousands_of_bad_fields_still_gets_invalid_argument(
    stub: pb_grpc.RulesEngineServiceStub,
) -> None:
    case = case_pb2.Case(case_id="case-1")
    for i in range(5_000):
        case.concerns.add(id=f"c{i}", date="not a date", agency="NOPE")

    with pytest.raises(grpc.RpcError) as caught:
        stub.Evaluate(pb.EvaluateRequest(case=case), timeout=10)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "case.concerns[0].agency" in _details(caught.value)
    assert len(_bad_request(caught.value)) == 20


def test_unknown_ruleset_is_not_found(stub: pb_grpc.RulesEngineServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Evaluate(pb.EvaluateRequest(case=_case(), ruleset="nope"), timeout=5)

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in _details(caught.value)


def test_store_down_is_unavailable(stub: pb_grpc.RulesEngineServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Evaluate(pb.EvaluateRequest(case=_case(), ruleset="store-down"), timeout=5)

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "10.0.0.1" not in _details(caught.value)


def test_a_bug_is_internal_and_logged_without_case_content(
    stub: pb_grpc.RulesEngineServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="rules_engine.service.servicer"),
        pytest.raises(grpc.RpcError) as caught,
    ):
        stub.Evaluate(pb.EvaluateRequest(case=_case("secret-case"), ruleset="bug"), timeout=5)

    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert _details(caught.value) == "internal error"
    assert "RuntimeError" in caplog.text
    assert "secret-case" not in caplog.text


def test_batch_answers_every_case_in_order_despite_a_bad_one(stub: pb_grpc.RulesEngineServiceStub) -> None:
    bad = _case("case-2")
    bad.concerns[0].ClearField("id")
    failing = _case("rule-fails-1")
    request = pb.EvaluateBatchRequest(cases=[_case("case-1"), bad, failing, _case("case-4", 1)], as_of="2025-01-01")

    responses = list(stub.EvaluateBatch(request, timeout=5))

    assert [r.index for r in responses] == [0, 1, 2, 3]
    assert [r.WhichOneof("result") for r in responses] == ["evaluation", "error", "error", "evaluation"]
    assert [f.rule_id for f in responses[0].evaluation.flags] == ["many-concerns"]
    assert responses[1].error.case_id == "case-2"
    assert responses[1].error.code == "INVALID_ARGUMENT"
    assert "cases[1].concerns[0].id: required" in responses[1].error.message
    assert responses[2].error.code == "INTERNAL"
    assert responses[3].evaluation.case_id == "case-4"


def test_batch_over_the_limit_is_refused(start_server: Callable[..., RunningServer]) -> None:
    running = start_server(ConcernCountService(), max_batch=2)

    with pytest.raises(grpc.RpcError) as caught:
        list(running.stub.EvaluateBatch(pb.EvaluateBatchRequest(cases=[_case()] * 3), timeout=5))

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_batch_with_unknown_ruleset_is_not_found(stub: pb_grpc.RulesEngineServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.EvaluateBatch(pb.EvaluateBatchRequest(cases=[_case()], ruleset="nope"), timeout=5))

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_rulesets(stub: pb_grpc.RulesEngineServiceStub) -> None:
    response = stub.ListRulesets(pb.ListRulesetsRequest(), timeout=5)

    [info] = response.rulesets
    assert (info.name, info.version, info.rule_count) == ("demo", "v-demo", 1)
    assert info.loaded_at == "2025-01-01T09:30:00Z"


def test_health_is_serving_until_shutdown(running: RunningServer) -> None:
    health = health_pb2_grpc.HealthStub(running.channel)
    for name in ("", SERVICE):
        response = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING

    running.health.enter_graceful_shutdown()

    response = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_reflection_lists_the_services(running: RunningServer) -> None:
    database = ProtoReflectionDescriptorDatabase(running.channel)

    assert set(database.get_services()) == {
        SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert database.FindFileContainingSymbol("rules_engine.v1.EvaluateRequest").name.endswith("rules_engine.proto")


def test_garbage_bytes_get_a_status_and_the_server_keeps_serving(running: RunningServer) -> None:
    raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] = running.channel.unary_unary(
        f"/{SERVICE}/Evaluate"
    )  # no serializers: bytes in, bytes out
    garbage = [b"\xff" * 16, random.Random(7).randbytes(4096), b"\x0a\x05\x0a\x03"]

    for payload in garbage:
        try:
            raw(payload, timeout=5)
        except grpc.RpcError as error:
            assert error.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
        else:
            pytest.fail("garbage was accepted")

    assert running.stub.Evaluate(pb.EvaluateRequest(case=_case()), timeout=5).case_id == "case-1"


_SERVE = """
import logging
from rules_engine.config import Settings
from rules_engine.server.server import serve_forever
from tests.e2e.harness import ConcernCountService
logging.basicConfig(level=logging.INFO, format="%(message)s")
serve_forever(ConcernCountService(), Settings(host="127.0.0.1", port=0, http_port=0, grace_seconds=5))
"""


def test_sigterm_stops_the_server_gracefully() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, "-c", _SERVE], cwd=root, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RulesEngineServiceStub(channel)
            assert stub.Evaluate(pb.EvaluateRequest(case=_case()), timeout=5).case_id == "case-1"

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=15) == 0
        assert "stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

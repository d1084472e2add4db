"""Issue 14's defects at the edges of valid requests, each through a real server with the real engine.

Every refusal is INVALID_ARGUMENT with `google.rpc.BadRequest` details naming the field, never
INTERNAL; a request naming no ruleset while several are loaded is refused unless a default is set.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.server.limits import Limits
from tests.e2e.harness import RunningServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    loaded = Registry(ROOT / "rulesets", compile_ruleset)
    loaded.reload()
    assert loaded.names() == ["safeguarding", "starter"]
    yield loaded
    loaded.close()


@pytest.fixture
def stub(start_server: Callable[..., RunningServer], registry: Registry) -> pb_grpc.RulesEngineServiceStub:
    limits = Limits(max_facts=50, max_string_chars=64)
    return start_server(Engine(registry), limits=limits).stub


def _case(day: str = "2025-06-01", case_id: str = "case-1") -> case_pb2.Case:
    case = case_pb2.Case(case_id=case_id)
    case.child.birth_date = "2015-03-01"
    for i, agency in enumerate(("POLICE", "EDUCATION", "HEALTH")):
        case.concerns.add(id=f"c{i}", date=day, agency=agency, category="NEGLECT")
    case.referrals.add(id="r1", date=day, source="5A")
    case.visits.add(id="v1", date=day, child_seen=True)
    return case


def _refusal(call: Callable[[], object]) -> tuple[str, list[tuple[str, str]]]:
    """The message and BadRequest field violations of a call that must be INVALID_ARGUMENT."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    status = rpc_status.from_call(error)
    assert status is not None and status.code == code_pb2.INVALID_ARGUMENT, "no google.rpc.Status details"
    bad_request = error_details_pb2.BadRequest()
    assert status.details and status.details[0].Unpack(bad_request)
    return error.details() or "", [(v.field, v.description) for v in bad_request.field_violations]


def _fields(violations: list[tuple[str, str]]) -> list[str]:
    return [field for field, _ in violations]


# -- point 2: calendar bounds --------------------------------------------------------------------


@pytest.mark.parametrize("as_of", ["0001-01-01", "0001-06-30", "0002-01-01", "9999-12-31", "9999-01-01", "9998-12-31"])
def test_evaluate_with_as_of_at_either_end_of_the_calendar_names_as_of(
    stub: pb_grpc.RulesEngineServiceStub, as_of: str
) -> None:
    for ruleset in ("starter", "safeguarding"):
        request = pb.EvaluateRequest(case=_case("1999-01-01" if as_of > "5" else "1950-01-01"), as_of=as_of)
        request.ruleset = ruleset
        message, violations = _refusal(lambda request=request: stub.Evaluate(request, timeout=10))
        assert _fields(violations) == ["as_of"], violations
        assert "as_of" in message


def test_evaluate_batch_with_as_of_at_the_end_of_the_calendar_refuses_the_request(
    stub: pb_grpc.RulesEngineServiceStub,
) -> None:
    request = pb.EvaluateBatchRequest(cases=[_case(), _case(case_id="case-2")], as_of="9999-12-31", ruleset="starter")
    _, violations = _refusal(lambda: list(stub.EvaluateBatch(request, timeout=10)))
    assert _fields(violations) == ["as_of"]


@pytest.mark.parametrize("day", ["0001-01-01", "1899-12-31", "2200-01-01", "9999-12-31"])
def test_a_fact_dated_outside_the_calendar_names_its_field(stub: pb_grpc.RulesEngineServiceStub, day: str) -> None:
    case = _case()
    case.concerns[2].date = day
    as_of = "9999-12-31" if day > "2" else ""
    request = pb.EvaluateRequest(case=case, ruleset="starter", as_of=as_of)
    _, violations = _refusal(lambda: stub.Evaluate(request, timeout=10))
    assert "case.concerns[2].date" in _fields(violations), violations


def test_facts_and_as_of_at_the_calendar_bounds_evaluate(stub: pb_grpc.RulesEngineServiceStub) -> None:
    """The first and last accepted dates work with every window and deadline of both rulesets."""
    for first, last in (("1900-01-01", "1900-01-01"), ("1900-01-01", "2199-12-31"), ("2199-12-31", "2199-12-31")):
        for ruleset in ("starter", "safeguarding"):
            response = stub.Evaluate(pb.EvaluateRequest(case=_case(first), as_of=last, ruleset=ruleset), timeout=30)
            assert response.as_of.startswith(last)


def test_snooze_until_outside_the_calendar_names_snooze_until(stub: pb_grpc.RulesEngineServiceStub) -> None:
    request = pb.AcknowledgeFlagRequest(
        case_id="case-1",
        ruleset="starter",
        rule_id="cumulative-concerns",
        practitioner_id="sw-1",
        reason_code="REVIEWED",
        snooze_until="9999-12-31",
    )
    _, violations = _refusal(lambda: stub.AcknowledgeFlag(request, timeout=10))
    assert _fields(violations) == ["snooze_until"]


# -- point 4: errors as documented ---------------------------------------------------------------


def test_size_limits_carry_bad_request_details(stub: pb_grpc.RulesEngineServiceStub) -> None:
    big = _case()
    for i in range(60):
        big.visits.add(id=f"extra{i}", date="2025-01-01")
    _, violations = _refusal(lambda: stub.Evaluate(pb.EvaluateRequest(case=big, ruleset="starter"), timeout=10))
    assert _fields(violations) == ["case"]
    _, violations = _refusal(lambda: stub.Evaluate(pb.EvaluateRequest(case=_case(), ruleset="s" * 65), timeout=10))
    assert _fields(violations) == ["ruleset"]
    batch = pb.EvaluateBatchRequest(cases=[_case(), _case("2025-01-01", "x" * 65)], ruleset="starter")
    _, violations = _refusal(lambda: list(stub.EvaluateBatch(batch, timeout=10)))
    assert _fields(violations) == ["cases[1].case_id"]


def test_acknowledge_flag_refusals_carry_bad_request_details(stub: pb_grpc.RulesEngineServiceStub) -> None:
    fields = {"case_id": "case-1", "ruleset": "starter", "rule_id": "cumulative-concerns"}
    free_text = pb.AcknowledgeFlagRequest(**fields, practitioner_id="sw-1", reason_code="spoke to mum, fine")
    _, violations = _refusal(lambda: stub.AcknowledgeFlag(free_text, timeout=10))
    assert _fields(violations) == ["reason_code"]
    nobody = pb.AcknowledgeFlagRequest(**fields, practitioner_id="", reason_code="REVIEWED")
    _, violations = _refusal(lambda: stub.AcknowledgeFlag(nobody, timeout=10))
    assert _fields(violations) == ["practitioner_id"]
    today = dt.datetime.now(dt.UTC).date().isoformat()
    past = pb.AcknowledgeFlagRequest(**fields, practitioner_id="sw-1", reason_code="REVIEWED", snooze_until=today)
    _, violations = _refusal(lambda: stub.AcknowledgeFlag(past, timeout=10))
    assert _fields(violations) == ["snooze_until"]


def test_undecodable_bytes_carry_bad_request_details(running_channel: grpc.Channel) -> None:
    call = running_channel.unary_unary(
        "/rules_engine.v1.RulesEngineService/Evaluate",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    message, violations = _refusal(lambda: call(b"\x0a\xff\xff\xff\xff\x0f", timeout=10))
    assert len(violations) == 1 and "EvaluateRequest" in message


@pytest.fixture
def running_channel(start_server: Callable[..., RunningServer], registry: Registry) -> grpc.Channel:
    return start_server(Engine(registry)).channel


def test_list_decisions_limit_is_named_as_a_field_of_its_request(stub: pb_grpc.RulesEngineServiceStub) -> None:
    message, violations = _refusal(lambda: stub.ListDecisions(pb.ListDecisionsRequest(limit=-1), timeout=10))
    assert violations == [("limit", "must not be negative")]
    assert "invalid case" not in message and message == "invalid ListDecisionsRequest: limit: must not be negative"


def test_no_ruleset_named_with_two_loaded_is_invalid_argument(stub: pb_grpc.RulesEngineServiceStub) -> None:
    message, violations = _refusal(lambda: stub.Evaluate(pb.EvaluateRequest(case=_case()), timeout=10))
    assert violations == [("ruleset", "required when more than one ruleset is loaded (safeguarding, starter)")]
    assert "ruleset: required" in message
    batch = pb.EvaluateBatchRequest(cases=[_case(), _case(case_id="case-2")])
    _, violations = _refusal(lambda: list(stub.EvaluateBatch(batch, timeout=10)))
    assert _fields(violations) == ["ruleset"]
    ack = pb.AcknowledgeFlagRequest(case_id="case-1", rule_id="r", practitioner_id="sw-1", reason_code="REVIEWED")
    _, violations = _refusal(lambda: stub.AcknowledgeFlag(ack, timeout=10))
    assert _fields(violations) == ["ruleset"]


def test_a_default_ruleset_answers_requests_that_name_none(start_server: Callable[..., RunningServer]) -> None:
    registry = Registry(ROOT / "rulesets", compile_ruleset, default="safeguarding")
    registry.reload()
    try:
        stub = start_server(Engine(registry)).stub
        assert stub.Evaluate(pb.EvaluateRequest(case=_case()), timeout=30).ruleset == "safeguarding"
        assert stub.Evaluate(pb.EvaluateRequest(case=_case(), ruleset="starter"), timeout=30).ruleset == "starter"
    finally:
        registry.close()

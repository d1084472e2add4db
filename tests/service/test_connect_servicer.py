"""The Connect door's servicer in-process (httpx over ASGI): the same answers and refusals as the gRPC servicer."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service.connect_servicer import build_connect_app
from rules_engine.service.core import ServicerCore
from rules_engine.service.outcomes import Code, RefusedError
from rules_engine.service.ports import EvaluationService
from rules_engine.service.servicer import RulesEngineServicer
from tests.e2e.harness import ConcernCountService

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "evaluate-request.json"
PATH = "/rules_engine.v1.RulesEngineService/"
JSON = {"content-type": "application/json"}


class Aborted(Exception):
    pass


class FakeGrpcContext:
    """What the gRPC servicer uses of grpc.ServicerContext; keeps the status it ends with."""

    def __init__(self, seconds_left: float | None = None) -> None:
        self.seconds = seconds_left
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.trailers: tuple[tuple[str, Any], ...] = ()

    def time_remaining(self) -> float | None:
        return self.seconds

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self.code, self.details = code, details
        raise Aborted

    def abort_with_status(self, status: grpc.Status) -> NoReturn:
        self.code, self.details, self.trailers = status.code, status.details, status.trailing_metadata
        raise Aborted

    def bad_request_fields(self) -> list[str]:
        raw = dict(self.trailers)["grpc-status-details-bin"]
        detail = status_pb2.Status.FromString(raw).details[0]
        found = error_details_pb2.BadRequest()
        detail.Unpack(found)
        return [v.field for v in found.field_violations]


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    loaded = Registry(ROOT / "rulesets", compile_ruleset)
    loaded.reload()
    yield loaded
    loaded.close()


def call(service: EvaluationService, method: str, **request: Any) -> httpx.Response:
    """One request to a fresh Connect app around `service` (keyword arguments go to httpx)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=build_connect_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
            if request.pop("get", False):
                return await client.get(PATH + method, **request)
            return await client.post(PATH + method, **request)

    return asyncio.run(send())


def comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer without what differs from call to call (decision id, when a flag was seen)."""
    flags = [{k: v for k, v in f.items() if k not in ("firstRaised", "lastSeen")} for f in answer.get("flags", [])]
    return {**{k: v for k, v in answer.items() if k != "decisionId"}, "flags": flags}


def bad_request_fields(body: dict[str, Any]) -> list[str]:
    [detail] = body["details"]
    assert detail["type"] == "google.rpc.BadRequest"
    value = detail["value"]
    found = error_details_pb2.BadRequest.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))
    return [v.field for v in found.field_violations]


def over_grpc(service: EvaluationService, request: pb.EvaluateRequest) -> pb.EvaluateResponse:
    answer = RulesEngineServicer(service).Evaluate(request, FakeGrpcContext())  # type: ignore[arg-type]
    return pb.EvaluateResponse.FromString(answer.SerializeToString())


def test_evaluate_over_json_and_binary_gives_the_grpc_doors_flags(registry: Registry) -> None:
    body = EXAMPLE.read_bytes()
    request = json_format.Parse(body, pb.EvaluateRequest())
    # Each door its own engine (its own in-memory store), so every flag is new to each.
    expected = comparable(json_format.MessageToDict(over_grpc(Engine(registry), request)))

    as_json = call(Engine(registry), "Evaluate", content=body, headers=JSON)
    as_binary = call(
        Engine(registry),
        "Evaluate",
        content=request.SerializeToString(),
        headers={"content-type": "application/proto"},
    )

    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"] == "application/json"
    assert comparable(as_json.json()) == expected
    assert as_binary.status_code == 200
    binary = pb.EvaluateResponse.FromString(as_binary.content)
    assert comparable(json_format.MessageToDict(binary)) == expected
    assert [f["ruleId"] for f in expected["flags"]][:2] == ["long-running-pattern", "concerns-without-assessment"]


def test_list_rulesets_answers_get(registry: Registry) -> None:
    answer = call(Engine(registry), "ListRulesets", get=True, params={"encoding": "json", "message": "{}"})

    assert answer.status_code == 200, answer.text
    assert {"safeguarding", "starter"} <= {r["name"] for r in answer.json()["rulesets"]}


def test_evaluate_refuses_get() -> None:
    assert (
        call(ConcernCountService(), "Evaluate", get=True, params={"encoding": "json", "message": "{}"}).status_code
        == 405
    )


def test_a_bad_case_is_refused_with_the_grpc_doors_message_and_field_paths(registry: Registry) -> None:
    document = json.loads(EXAMPLE.read_text())
    document["case"]["concerns"][1]["agency"] = "POLIS"
    document["case"]["concerns"][2]["date"] = "2024-13-40"
    context = FakeGrpcContext()
    with pytest.raises(Aborted):
        RulesEngineServicer(Engine(registry)).Evaluate(json_format.ParseDict(document, pb.EvaluateRequest()), context)  # type: ignore[arg-type]

    answer = call(Engine(registry), "Evaluate", json=document)

    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "invalid_argument"
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert body["message"] == context.details
    assert bad_request_fields(body) == context.bad_request_fields()
    assert {"case.concerns[1].agency", "case.concerns[2].date"} <= set(bad_request_fields(body))


def test_an_unknown_json_field_is_refused_by_its_path() -> None:
    document = json.loads(EXAMPLE.read_text())
    document["case"]["concerns"][1]["agnecy"] = document["case"]["concerns"][1].pop("agency")
    document["asof"] = "2025-06-30"

    answer = call(ConcernCountService(), "Evaluate", json=document)

    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "invalid_argument"
    assert body["message"].startswith("invalid EvaluateRequest: case.concerns[1].agnecy: unknown field; did you mean")
    assert bad_request_fields(body) == ["case.concerns[1].agnecy", "asof"]


@pytest.mark.parametrize(
    ("content", "headers", "why"),
    [
        (b"{not json", JSON, "the body is not valid JSON"),
        (b"[1, 2]", JSON, "expected a JSON object, not a list"),
        (b"\xff\xff\xff", {"content-type": "application/proto"}, "the bytes are not a valid EvaluateRequest message"),
    ],
)
def test_an_undecodable_body_is_refused_as_the_whole_request(content: bytes, headers: dict[str, str], why: str) -> None:
    answer = call(ConcernCountService(), "Evaluate", content=content, headers=headers)

    assert answer.status_code == 400
    assert why in answer.json()["message"]
    assert bad_request_fields(answer.json()) == [""]


def envelopes(data: bytes) -> list[tuple[int, Any]]:
    """The enveloped messages of a Connect stream: (flags, JSON document)."""
    found = []
    while data:
        flags, size = struct.unpack(">BI", data[:5])
        found.append((flags, json.loads(data[5 : 5 + size])))
        data = data[5 + size :]
    return found


def test_evaluate_batch_streams_one_answer_per_case_then_the_end() -> None:
    case = {"caseId": "c1", "child": {"birthDate": "2016-05-14"}}
    concerns = [
        {"id": f"k{i}", "date": f"2025-01-0{i + 1}", "agency": "POLICE", "category": "NEGLECT"} for i in range(3)
    ]
    batch = {
        "asOf": "2025-06-30",
        "cases": [{**case, "concerns": concerns}, {**case, "caseId": "c2", "child": {"birthDate": "someday"}}],
    }
    message = json.dumps(batch).encode()

    answer = call(
        ConcernCountService(),
        "EvaluateBatch",
        content=struct.pack(">BI", 0, len(message)) + message,
        headers={"content-type": "application/connect+json"},
    )

    assert answer.status_code == 200
    [(_, first), (_, second), (end_flags, end)] = envelopes(answer.content)
    assert first["evaluation"]["caseId"] == "c1"
    assert [f["ruleId"] for f in first["evaluation"]["flags"]] == ["many-concerns"]
    assert second["index"] == 1
    assert second["error"]["code"] == "INVALID_ARGUMENT"
    assert second["error"]["message"] == "invalid case: cases[1].child.birth_date: not a date (YYYY-MM-DD)"
    assert end_flags == 0x02
    assert end == {}


def test_a_batch_too_big_ends_the_stream_with_resource_exhausted() -> None:
    batch = {"cases": [{"caseId": f"c{i}"} for i in range(3)]}
    message = json.dumps(batch).encode()

    async def send() -> httpx.Response:
        app = build_connect_app(ConcernCountService(), max_batch=2)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://door") as client:
            return await client.post(
                PATH + "EvaluateBatch",
                content=struct.pack(">BI", 0, len(message)) + message,
                headers={"content-type": "application/connect+json"},
            )

    [(end_flags, end)] = envelopes(asyncio.run(send()).content)

    assert end_flags == 0x02
    assert end["error"]["code"] == "resource_exhausted"
    assert end["error"]["message"] == "3 cases in one batch; at most 2"


def test_a_server_without_case_state_answers_unimplemented_for_stateful_calls() -> None:
    context = FakeGrpcContext()
    with pytest.raises(Aborted):
        RulesEngineServicer(ConcernCountService()).RecordFacts(pb.RecordFactsRequest(), context)  # type: ignore[arg-type]

    answer = call(ConcernCountService(), "RecordFacts", json={"case": {"caseId": "c1"}})
    history = call(ConcernCountService(), "Evaluate", json={"case": {"caseId": "c1"}, "useStoredHistory": True})

    assert context.code == grpc.StatusCode.UNIMPLEMENTED
    for refused in (answer, history):
        assert refused.status_code == 501
        assert refused.json() == {"code": "unimplemented", "message": context.details}


def test_failures_are_said_as_the_grpc_door_says_them() -> None:
    case = {"caseId": "secret-case", "child": {"birthDate": "2016-05-14"}}
    store_down = call(ConcernCountService(), "Evaluate", json={"case": case, "ruleset": "store-down"})
    unknown = call(ConcernCountService(), "Evaluate", json={"case": case, "ruleset": "nope"})
    bug = call(ConcernCountService(), "Evaluate", json={"case": case, "ruleset": "bug"})

    assert (store_down.status_code, store_down.json()["code"]) == (503, "unavailable")
    assert "redis://" not in store_down.text
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert bug.status_code == 500
    assert bug.json() == {"code": "internal", "message": "internal error"}


def test_the_core_stops_a_batch_whose_deadline_has_passed() -> None:
    class Past:
        def seconds_left(self) -> float | None:
            return -0.1

    request = pb.EvaluateBatchRequest(cases=[pb.EvaluateRequest().case])
    with pytest.raises(RefusedError) as caught:
        list(ServicerCore(ConcernCountService()).evaluate_batch(request, Past()))

    assert caught.value.refusal.code is Code.DEADLINE_EXCEEDED

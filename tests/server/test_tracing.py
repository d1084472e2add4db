"""OpenTelemetry traces on both doors (server/tracing.py), with an in-memory exporter in process:
one server span per call, parented by the caller's traceparent, with the RPC, the status and the
ruleset version, and nothing of the case; and off (no provider, no interceptor) without OTEL_*."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.errors import StartupError
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.server import tracing
from rules_engine.server.http_interceptors import Spanning, connect_interceptors
from rules_engine.server.limits import Limits
from rules_engine.server.server import build_server
from rules_engine.service.connect_servicer import build_connect_app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "examples" / "evaluate-request.json").read_text())
SERVICE = "rules_engine.v1.RulesEngineService"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
# A case id no span may carry (beside every other string of the example's case).
SECRET = "case-jane-doe-4471"


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    loaded = Registry(ROOT / "rulesets", compile_ruleset)
    loaded.reload()
    yield loaded
    loaded.close()


@pytest.fixture
def exported() -> tuple[tracing.Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracing.Tracing(provider), exporter


def case_strings() -> set[str]:
    """Every string in the request's case (ids, dates, codes, text), the case id among them."""
    found: set[str] = {SECRET}

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(EXAMPLE["case"])
    return found


def request_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(EXAMPLE))
    body["case"]["caseId"] = SECRET
    return body


def assert_nothing_of_the_case(span: ReadableSpan) -> None:
    secrets = case_strings()
    shown = [span.name, span.status.description or ""]
    shown += [str(v) for v in (span.attributes or {}).values()]
    shown += [e.name for e in span.events]
    shown += [str(v) for event in span.events for v in (event.attributes or {}).values()]
    for text in shown:
        for secret in secrets:
            if len(secret) >= 4:  # dates, ids, codes and text; not "c1"
                assert secret not in text, (secret, span.name)


def assert_server_span(span: ReadableSpan, method: str, system: str) -> None:
    assert span.name == f"{SERVICE}/{method}"
    assert span.kind is trace.SpanKind.SERVER
    assert span.parent is not None and span.parent.is_remote
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_ID
    attributes = dict(span.attributes or {})
    assert attributes["rpc.system"] == system
    assert attributes["rpc.service"] == SERVICE
    assert attributes["rpc.method"] == method
    assert_nothing_of_the_case(span)


def test_grpc_door_one_span_per_call_parented_by_the_callers_trace(
    registry: Registry, exported: tuple[tracing.Tracing, InMemorySpanExporter]
) -> None:
    traces, exporter = exported
    server, port, _ = build_server(Engine(registry), "127.0.0.1", 0, tracing=traces)
    server.start()
    metadata = (("traceparent", TRACEPARENT),)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RulesEngineServiceStub(channel)
            request = json_format.ParseDict(request_body(), pb.EvaluateRequest())
            answer = stub.Evaluate(request, metadata=metadata)
            wrong = json_format.ParseDict(request_body(), pb.EvaluateRequest())
            wrong.case.concerns[0].date = f"not a date {SECRET}"
            with pytest.raises(grpc.RpcError) as refused:
                stub.Evaluate(wrong, metadata=metadata)
            batch = pb.EvaluateBatchRequest(cases=[request.case, request.case], ruleset=request.ruleset)
            assert len(list(stub.EvaluateBatch(batch, metadata=metadata))) == 2
    finally:
        server.stop(None)

    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    evaluated, invalid, batched = exporter.get_finished_spans()  # one span per call, no more
    for span, method in ((evaluated, "Evaluate"), (invalid, "Evaluate"), (batched, "EvaluateBatch")):
        assert_server_span(span, method, "grpc")
    assert evaluated.attributes is not None and invalid.attributes is not None and batched.attributes is not None
    assert evaluated.attributes["rules_engine.ruleset"] == answer.ruleset == "starter"
    assert evaluated.attributes["rules_engine.ruleset_version"] == answer.ruleset_version != ""
    assert evaluated.attributes["rpc.grpc.status_code"] == 0
    assert evaluated.attributes["rpc.response.status_code"] == "OK"
    # A refusal with field details (abort_with_status) has its code; it is the caller's, not an error.
    assert invalid.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert invalid.attributes["rpc.response.status_code"] == "INVALID_ARGUMENT"
    assert invalid.status.status_code is trace.StatusCode.UNSET
    assert "rules_engine.ruleset_version" not in invalid.attributes
    assert batched.attributes["rules_engine.ruleset_version"] == answer.ruleset_version


def connect_call(app: Any, method: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
            return await client.post(
                f"/{SERVICE}/{method}",
                content=json.dumps(body).encode(),
                headers={"content-type": "application/json", **headers},
            )

    return asyncio.run(send())


def test_connect_door_one_span_per_call_parented_by_the_callers_trace(
    registry: Registry, exported: tuple[tracing.Tracing, InMemorySpanExporter]
) -> None:
    traces, exporter = exported
    app = build_connect_app(Engine(registry), interceptors=connect_interceptors(None, Limits(), traces))
    headers = {"traceparent": TRACEPARENT}

    answer = connect_call(app, "Evaluate", request_body(), headers)
    wrong = request_body()
    wrong["case"]["concerns"][0]["date"] = f"not a date {SECRET}"
    refused = connect_call(app, "Evaluate", wrong, headers)

    assert answer.status_code == 200, answer.text
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_argument"
    evaluated, invalid = exporter.get_finished_spans()
    assert_server_span(evaluated, "Evaluate", "connect_rpc")
    assert_server_span(invalid, "Evaluate", "connect_rpc")
    assert evaluated.attributes is not None and invalid.attributes is not None
    assert evaluated.attributes["rules_engine.ruleset"] == answer.json()["ruleset"] == "starter"
    assert evaluated.attributes["rules_engine.ruleset_version"] == answer.json()["rulesetVersion"]
    assert evaluated.attributes["rpc.response.status_code"] == "OK"
    assert "rpc.connect_rpc.error_code" not in evaluated.attributes
    assert invalid.attributes["rpc.connect_rpc.error_code"] == "invalid_argument"
    assert invalid.attributes["rpc.response.status_code"] == "INVALID_ARGUMENT"
    assert "rules_engine.ruleset_version" not in invalid.attributes


def test_a_call_without_trace_context_starts_a_trace(
    registry: Registry, exported: tuple[tracing.Tracing, InMemorySpanExporter]
) -> None:
    traces, exporter = exported
    app = build_connect_app(Engine(registry), interceptors=connect_interceptors(None, Limits(), traces))
    assert connect_call(app, "Evaluate", request_body(), {}).status_code == 200
    [span] = exporter.get_finished_spans()
    assert span.parent is None and span.context.trace_id != int(TRACE_ID, 16)


# -- off by default --------------------------------------------------------------------------


@pytest.fixture
def no_otel(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_without_otel_variables_tracing_is_off_and_adds_nothing(no_otel: pytest.MonkeyPatch) -> None:
    assert tracing.exporter_names({}) == []
    assert tracing.from_environment() is None
    assert tracing.install() is None
    # No SDK provider in this process: the API's proxy, whose spans are no-ops.
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert not any(isinstance(i, Spanning) for i in connect_interceptors(None, Limits()))


def test_which_variables_turn_tracing_on() -> None:
    assert tracing.exporter_names({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert tracing.exporter_names({"OTEL_TRACES_EXPORTER": "console"}) == ["console"]
    assert tracing.exporter_names({"OTEL_TRACES_EXPORTER": "otlp,console"}) == ["otlp", "console"]
    assert tracing.exporter_names({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}) == ["otlp"]
    assert tracing.exporter_names({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}) == ["otlp"]
    # An exporter named explicitly wins over an endpoint; "none" keeps it off.
    assert tracing.exporter_names({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}) == []
    assert tracing.exporter_names({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}) == []


def test_the_sdk_picks_the_exporters_from_the_variables(no_otel: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    no_otel.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    provider = tracing.from_environment()
    assert provider is not None
    try:
        exporters = [p.span_exporter for p in provider._active_span_processor._span_processors]  # type: ignore[attr-defined]
        assert [type(e) for e in exporters] == [OTLPSpanExporter]
        assert provider.resource.attributes["service.name"] == "rules-engine"
    finally:
        provider.shutdown()
    no_otel.setenv("OTEL_SERVICE_NAME", "rules-engine-staging")
    no_otel.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")  # that exporter is not installed
    with pytest.raises(StartupError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        tracing.from_environment()

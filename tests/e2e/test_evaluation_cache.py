"""The evaluation cache through real servers: a repeated Evaluate is a cache hit on either door, with
its own decision; `serve --evaluation-cache-size` bounds it."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest
from google.protobuf import json_format
from prometheus_client import REGISTRY

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.service.connect_servicer import build_connect_app
from rules_engine.store import MemoryStore
from tests.e2e.harness import RunningServer
from tests.redis_server import free_port
from tests.serve_process import ROOT, serve

CASE = json.loads((ROOT / "examples" / "case.json").read_text())
PATH = "/rules_engine.v1.RulesEngineService/Evaluate"


def evaluate_request(case_id: str = "case-cache-1", as_of: str = "2025-06-30") -> pb.EvaluateRequest:
    request = pb.EvaluateRequest(as_of=as_of, ruleset="starter")
    request.case.CopyFrom(requests.case_from_json({**CASE, "case_id": case_id}))
    return request


def cache_count(result: str) -> float:
    return REGISTRY.get_sample_value("rules_engine_evaluation_cache_total", {"result": result}) or 0.0


@pytest.fixture
def engine() -> Iterator[Engine]:
    registry = Registry(ROOT / "rulesets", compile_ruleset)
    registry.reload()
    yield Engine(registry, store=MemoryStore())
    registry.close()


def test_a_repeated_evaluate_is_a_hit_on_both_doors(start_server: Callable[..., RunningServer], engine: Engine) -> None:
    stub = start_server(engine).stub
    hits, misses = cache_count("hit"), cache_count("miss")

    first = stub.Evaluate(evaluate_request(), timeout=10)
    second = stub.Evaluate(evaluate_request(), timeout=10)
    assert (cache_count("hit") - hits, cache_count("miss") - misses) == (1, 1)
    assert first.flags and [f.rule_id for f in second.flags] == [f.rule_id for f in first.flags]
    assert [f.explanation for f in second.flags] == [f.explanation for f in first.flags]
    assert second.decision_id != first.decision_id
    assert [f.state for f in first.flags] == [pb.FLAG_STATE_NEW] * len(first.flags)
    assert [f.state for f in second.flags] == [pb.FLAG_STATE_ONGOING] * len(second.flags)

    # The HTTP door shares the servicer core and the engine: the same request (as JSON) is a hit there too.
    async def over_http() -> httpx.Response:
        transport = httpx.ASGITransport(app=build_connect_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
            body = json_format.MessageToJson(evaluate_request())
            return await client.post(PATH, content=body, headers={"content-type": "application/json"})

    answer = asyncio.run(over_http())
    assert answer.status_code == 200
    assert [f["ruleId"] for f in answer.json()["flags"]] == [f.rule_id for f in first.flags]
    assert cache_count("hit") - hits == 2

    stub.Evaluate(evaluate_request(as_of="2025-07-01"), timeout=10)  # another day: evaluated again
    assert (cache_count("hit") - hits, cache_count("miss") - misses) == (2, 2)
    assert len(engine.decisions("case-cache-1")) == 4


def _metric(metrics_port: int, result: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    prefix = f'rules_engine_evaluation_cache_total{{result="{result}"}}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_serve_bounds_the_cache_by_its_option() -> None:
    port, metrics_port = free_port(), free_port()
    with serve(port, "--metrics-port", str(metrics_port), "--evaluation-cache-size", "1"):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RulesEngineServiceStub(channel)
            for case_id in ("a", "a", "b", "a"):  # one entry: b pushes a out
                stub.Evaluate(evaluate_request(case_id), timeout=10)
        assert (_metric(metrics_port, "hit"), _metric(metrics_port, "miss")) == (1, 3)

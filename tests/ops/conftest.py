"""Fixtures: the real engine on rulesets/starter behind a real gRPC server, its metrics on their own port."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from rules_engine import metrics
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.server.server import build_server
from rules_engine.store import StoreSettings
from rules_engine.store.redis import RedisStore
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
_prefixes = itertools.count()


@dataclass
class Served:
    stub: pb_grpc.RulesEngineServiceStub
    channel: grpc.Channel
    metrics_url: str
    version: str  # of the starter ruleset


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def served(redis_server: RedisServer) -> Iterator[Served]:
    """rulesets/starter through Registry and Engine with a Redis store, as `serve` wires them."""
    registry = Registry(ROOT / "rulesets", compile_ruleset, on_reload=metrics.record_reload)
    [starter] = [r for r in registry.reload() if r.name == "starter"]
    store = RedisStore(redis_server.url, StoreSettings(key_prefix=f"ops{next(_prefixes)}:"))
    engine = Engine(registry, store=store)
    server, port, _ = build_server(engine, "127.0.0.1", 0, max_workers=2)
    server.start()
    metrics_port = free_port()
    http = metrics.serve_metrics(metrics_port, "127.0.0.1")
    assert http is not None
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(
            pb_grpc.RulesEngineServiceStub(channel),
            channel,
            f"http://127.0.0.1:{metrics_port}/metrics",
            starter.version,
        )
    finally:
        channel.close()
        server.stop(None).wait()
        http[0].shutdown()
        http[0].server_close()
        engine.close()
        registry.close()

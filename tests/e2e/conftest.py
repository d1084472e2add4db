"""A real gRPC server on a free port, around any EvaluationService.

Tests use `stub` (or `running`) with the default `service`, a small in-process
implementation of our own protocol; a test module overrides the `service` fixture to run
the same tests against another implementation (e.g. the real engine), or calls
`start_server(service, max_batch=...)` for a server with other limits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.server.server import build_server
from rules_engine.service.ports import EvaluationService
from tests.e2e.harness import ConcernCountService, RunningServer


@pytest.fixture
def start_server() -> Iterator[Callable[..., RunningServer]]:
    """Start a real server around a service (keyword arguments go to build_server); stopped after the test."""
    started: list[RunningServer] = []

    def start(service: EvaluationService, **options: Any) -> RunningServer:
        server, port, health = build_server(service, "127.0.0.1", 0, max_workers=4, **options)
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        running = RunningServer(server, port, health, channel, pb_grpc.RulesEngineServiceStub(channel))
        started.append(running)
        return running

    yield start
    for running in started:
        running.channel.close()
        running.server.stop(None).wait()


@pytest.fixture
def service() -> EvaluationService:
    return ConcernCountService()


@pytest.fixture
def running(start_server: Callable[..., RunningServer], service: EvaluationService) -> RunningServer:
    return start_server(service)


@pytest.fixture
def stub(running: RunningServer) -> pb_grpc.RulesEngineServiceStub:
    return running.stub

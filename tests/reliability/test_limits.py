"""Limits on a real server: sizes, counts, text lengths, deadlines and concurrent calls, each a clear status."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from concurrent import futures

import grpc
import pytest

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.case.facts import CaseFacts
from rules_engine.engine.encoded import EncodedCase
from rules_engine.engine.results import Evaluation
from rules_engine.server.limits import Limits
from tests.e2e.harness import ConcernCountService, RunningServer

LIMITS = Limits(max_message_bytes=256 * 1024, max_batch=5, max_facts=20, max_string_chars=64)


def _case(case_id: str = "case-1", concerns: int = 1) -> case_pb2.Case:
    case = case_pb2.Case(case_id=case_id)
    for i in range(concerns):
        case.concerns.add(id=f"c{i}", date="2025-01-10", agency="POLICE")
    return case


def _error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


class SlowService(ConcernCountService):
    """Takes `seconds` per case, or waits for `release` when given; counts the cases it evaluated."""

    def __init__(self, seconds: float = 0.0, release: threading.Event | None = None) -> None:
        self.seconds = seconds
        self.release = release
        self.evaluated = 0
        self.started = threading.Semaphore(0)

    def evaluate(
        self,
        case: CaseFacts | EncodedCase,
        as_of: dt.datetime | None = None,
        ruleset: str | None = None,
        input_digest: str | None = None,
    ) -> Evaluation:
        self.started.release()
        if self.release is not None:
            self.release.wait(10)
        time.sleep(self.seconds)
        self.evaluated += 1
        return super().evaluate(case, as_of, ruleset)


def test_each_limit_is_a_clear_status(start_server: Callable[..., RunningServer]) -> None:
    stub = start_server(ConcernCountService(), limits=LIMITS).stub

    batch = _error(lambda: list(stub.EvaluateBatch(pb.EvaluateBatchRequest(cases=[_case()] * 6), timeout=5)))
    assert (batch.code(), batch.details()) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "cases: 6 cases in one batch; at most 5",
    )

    facts = _error(lambda: stub.Evaluate(pb.EvaluateRequest(case=_case(concerns=21)), timeout=5))
    assert (facts.code(), facts.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid EvaluateRequest: case: 21 facts; at most 20 per case",
    )

    inner = _error(
        lambda: list(stub.EvaluateBatch(pb.EvaluateBatchRequest(cases=[_case(), _case(concerns=21)]), timeout=5))
    )
    assert (inner.code(), inner.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid EvaluateBatchRequest: cases[1]: 21 facts; at most 20 per case",
    )

    text = _error(lambda: stub.Evaluate(pb.EvaluateRequest(case=_case(), ruleset="r" * 65), timeout=5))
    assert (text.code(), text.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid EvaluateRequest: ruleset: longer than 64 characters",
    )

    case_id = _error(lambda: stub.Evaluate(pb.EvaluateRequest(case=_case("x" * 65)), timeout=5))
    assert (case_id.code(), case_id.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid EvaluateRequest: case.case_id: longer than 64 characters",
    )

    withdrawn = [pb.FactRef(fact_type="concerns", fact_id=f"c{i}") for i in range(21)]
    refs = _error(lambda: stub.RecordFacts(pb.RecordFactsRequest(case=_case(), withdrawn=withdrawn), timeout=5))
    assert refs.code() == grpc.StatusCode.INVALID_ARGUMENT and (refs.details() or "").startswith(
        "invalid RecordFactsRequest: withdrawn:"
    )

    big = pb.EvaluateRequest(case=_case(), as_of="x" * (300 * 1024))
    size = _error(lambda: stub.Evaluate(big, timeout=5))
    assert size.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    # Within every limit, the same server answers.
    assert stub.Evaluate(pb.EvaluateRequest(case=_case(concerns=20)), timeout=5).case_id == "case-1"


def test_a_batch_stops_when_its_deadline_passes(start_server: Callable[..., RunningServer]) -> None:
    service = SlowService(seconds=0.05)
    stub = start_server(service).stub
    cases = [_case(f"case-{i}") for i in range(60)]  # 3 s of work

    error = _error(lambda: list(stub.EvaluateBatch(pb.EvaluateBatchRequest(cases=cases), timeout=0.5)))
    time.sleep(0.3)  # let the server reach its next check

    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert service.evaluated <= 15  # about 10 fit in 0.5 s; the other 45 were never evaluated


def test_calls_beyond_the_concurrency_bound_fail_fast(start_server: Callable[..., RunningServer]) -> None:
    release = threading.Event()
    service = SlowService(release=release)
    stub = start_server(service, maximum_concurrent_rpcs=2).stub
    with futures.ThreadPoolExecutor(max_workers=2) as pool:
        held = [pool.submit(stub.Evaluate, pb.EvaluateRequest(case=_case(f"held-{i}")), timeout=10) for i in range(2)]
        for _ in range(2):
            assert service.started.acquire(timeout=5)
        started = time.monotonic()
        error = _error(lambda: stub.Evaluate(pb.EvaluateRequest(case=_case("third")), timeout=5))
        waited = time.monotonic() - started
        release.set()
        assert [f.result().case_id for f in held] == ["held-0", "held-1"]

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert waited < 1.0  # refused at once, not queued
    assert stub.Evaluate(pb.EvaluateRequest(case=_case("after")), timeout=5).case_id == "after"


def test_malformed_bytes_are_invalid_argument(running: RunningServer) -> None:
    raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] = running.channel.unary_unary(
        "/rules_engine.v1.RulesEngineService/Evaluate"
    )
    error = _error(lambda: raw(b"\xff\xff\xff\xff", timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

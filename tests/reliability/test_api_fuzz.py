"""Fuzzing the API: hypothesis on the request models and the condition parser, then random and mutated
bytes sent to every RPC of a real `serve` process, which must answer each with a status, stay up and
keep its memory flat.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.case import records
from rules_engine.case.facts import Case
from rules_engine.errors import CaseError, CompileError, SourcePosition
from rules_engine.policy.conditions import RuleConditionCompiler, parse_condition
from rules_engine.service import requests
from tests.redis_server import free_port
from tests.serve_process import wait_serving

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2025, 6, 30)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- request models -------------------------------------------------------------------------------

_DATES = st.one_of(
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)).map(dt.date.isoformat),
    st.sampled_from(["2025-02-30", "2025-1-1", "20250101", "2025-W01-1", "0000-00-00", "2025-01-01T00:00:00Z"]),
)
_TEXT = st.one_of(st.text(max_size=40), st.sampled_from(["", "POLICE", "NEGLECT", "c-1", "x" * 200, "\x00", "é"]))


def _message(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Field values for any message type: any text, dates good and bad, enum numbers known or not."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            assert field.message_type is not None
            inner = _message(field.message_type, depth + 1)
            value: st.SearchStrategy[Any] = (
                st.lists(inner, max_size=4 if depth == 0 else 2) if field.is_repeated else inner
            )
        else:
            if field.type == FieldDescriptor.TYPE_STRING:
                scalar: st.SearchStrategy[Any] = (
                    _DATES | _TEXT if "date" in field.name or field.name.endswith("_on") else _TEXT
                )
            elif field.type == FieldDescriptor.TYPE_ENUM:
                assert field.enum_type is not None
                scalar = st.integers(min_value=-3, max_value=len(field.enum_type.values) + 3)
            elif field.type == FieldDescriptor.TYPE_BOOL:
                scalar = st.booleans()
            elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
                scalar = st.floats(
                    allow_nan=True, allow_infinity=True, width=32 if field.type == FieldDescriptor.TYPE_FLOAT else 64
                )
            else:
                scalar = st.integers(min_value=-(2**31), max_value=2**31 - 1)
            value = st.lists(scalar, max_size=3) if field.is_repeated else scalar
        fields[field.name] = value
    return st.fixed_dictionaries({}, optional=fields)


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            inner_cls = type(getattr(message, name).add()) if field.is_repeated else type(getattr(message, name))
            if field.is_repeated:
                del getattr(message, name)[:]
                getattr(message, name).extend(_build(inner_cls, v) for v in value)
            else:
                getattr(message, name).CopyFrom(_build(inner_cls, value))
        elif field.is_repeated:
            getattr(message, name).extend(value)
        else:
            setattr(message, name, value)
    return message


@FUZZ
@given(values=_message(case_pb2.Case.DESCRIPTOR))
def test_case_from_proto_returns_a_case_or_raises_case_error(values: dict[str, Any]) -> None:
    message = _build(case_pb2.Case, values)
    assert isinstance(message, case_pb2.Case)
    try:
        case = requests.case_model_from_proto(message, TODAY)
    except CaseError as exc:
        assert exc.violations and all(v.field.startswith("case") for v in exc.violations)
        assert len(exc.violations) <= requests.MAX_VIOLATIONS + 1
        # The server's fast path accepts nothing validation refuses, and answers with its errors.
        with pytest.raises(CaseError) as fast:
            requests.case_from_proto(message, TODAY)
        assert fast.value.violations == exc.violations
    else:
        assert isinstance(case, Case)
        assert records.of(requests.case_from_proto(message, TODAY)) == records.of(case)


@FUZZ
@given(values=_message(pb.EvaluateRequest.DESCRIPTOR))
def test_whole_requests_round_trip_through_bytes(values: dict[str, Any]) -> None:
    request = _build(pb.EvaluateRequest, values)
    parsed = pb.EvaluateRequest.FromString(request.SerializeToString())
    try:
        requests.case_model_from_proto(parsed.case, TODAY)
        requests.parse_as_of(parsed.as_of)
        requests.withdrawn_from_proto(parsed.withdrawn)
    except CaseError:
        pass


# -- the condition parser ---------------------------------------------------------------------------

_TOKENS = [
    "concerns_12m", "threshold", "flagged", "(", ")", "'x'", '"r"', "and", "or", "not", "==", "!=", "<", ">=",
    "in", "not in", "is", "None", "[", "]", ",", "1", "-2.5", "true", "false", ".", "__class__", "lambda", ":",
    "=", ":=", "+", "*", "**", "{", "}", "f'{x}'", "\n", "#", "\\", "__import__", "if", "else", "é", "\x00",
]  # fmt: skip
_CONDITIONS = st.one_of(st.text(max_size=80), st.lists(st.sampled_from(_TOKENS), max_size=20).map(" ".join))


def _locate(offset: int) -> SourcePosition:
    assert offset >= 0
    return SourcePosition("fuzz.yaml", 1, offset + 1, "rules[0].condition")


@FUZZ
@given(text=_CONDITIONS)
def test_condition_parser_returns_an_expression_or_located_errors(text: str) -> None:
    try:
        parsed = parse_condition(text, _locate)
    except CompileError as exc:
        assert exc.position.column >= 1
        return
    compiler = RuleConditionCompiler(parsed, ["concerns_12m"], {"threshold": 3, "r": "x"})
    expr = compiler.compile()
    assert (expr is None) == bool(parsed.errors)
    assert all(e.position.column >= 1 for e in parsed.errors)


# -- bytes at every RPC of a running server ---------------------------------------------------------

SERVICE = "/rules_engine.v1.RulesEngineService/"
INPUTS_PER_METHOD = 1_300
MAX_RSS_GROWTH = 20 * 1024 * 1024


def _valid_case() -> case_pb2.Case:
    case = case_pb2.Case(case_id="fuzz-1")
    for i in range(6):
        case.concerns.add(id=f"c{i}", date="2025-05-01", agency="POLICE", category="NEGLECT")
    case.conferences.add(id="k1", date="2025-04-01", kind=1).agencies.add(agency="POLICE", invited=True, attended=False)
    return case


# (path, streaming response, a valid request to mutate)
METHODS: list[tuple[str, bool, Message]] = [
    (SERVICE + "Evaluate", False, pb.EvaluateRequest(case=_valid_case(), as_of="2025-06-30")),
    (SERVICE + "Evaluate", False, pb.EvaluateRequest(case=_valid_case(), as_of="2025-06-30", use_stored_history=True)),
    (SERVICE + "EvaluateBatch", True, pb.EvaluateBatchRequest(cases=[_valid_case()] * 3, as_of="2025-06-30")),
    (SERVICE + "ListRulesets", False, pb.ListRulesetsRequest()),
    (SERVICE + "RecordFacts", False, pb.RecordFactsRequest(case=_valid_case())),
    (SERVICE + "AcknowledgeFlag", False, pb.AcknowledgeFlagRequest(
        case_id="fuzz-1", rule_id="cumulative-concerns", practitioner_id="p1", reason_code="REVIEWED")),
    (SERVICE + "GetChronology", False, pb.GetChronologyRequest(case_id="fuzz-1")),
    (SERVICE + "ListDecisions", False, pb.ListDecisionsRequest(case_id="fuzz-1", limit=5)),
    (SERVICE + "DeleteCase", False, pb.DeleteCaseRequest(case_id="fuzz-2")),
    (SERVICE + "GetEqualityReport", False, pb.GetEqualityReportRequest(ruleset="safeguarding", threshold=12)),
    ("/grpc.health.v1.Health/Check", False, health_pb2.HealthCheckRequest(service="")),
]  # fmt: skip


def _mutations(valid: bytes, rng: random.Random, count: int) -> Iterator[bytes]:
    for i in range(count):
        kind = i % 6
        if kind == 0:
            yield rng.randbytes(rng.randint(0, 512))
        data = bytearray(valid)
        if kind == 1:  # bit flips
            for _ in range(rng.randint(1, 6)):
                if data:
                    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 2:  # truncation
            del data[rng.randrange(len(data) + 1) :]
        elif kind == 3:  # splice with itself
            a, b = sorted(rng.randrange(len(data) + 1) for _ in range(2))
            at = rng.randrange(len(data) + 1)
            data[at:at] = data[a:b] * rng.randint(1, 20)
        elif kind == 4:  # a varint length stretched: claims more bytes than follow
            if data:
                data[rng.randrange(len(data))] = rng.choice([0x7F, 0xFF, 0x80])
        elif kind == 5:  # random bytes inserted
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        if kind:
            yield bytes(data)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[str], int]]:
    rulesets = tmp_path_factory.mktemp("rulesets")
    shutil.copytree(ROOT / "rulesets" / "starter", rulesets / "starter")
    port = free_port()
    command = [sys.executable, "-m", "rules_engine", "serve", "--plaintext", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--metrics-port", "0", "--rulesets", str(rulesets)]
    log = (tmp_path_factory.mktemp("log") / "serve.log").open("w")
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}  # SIGABRT dumps every thread's stack to the log
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, text=True, env=env)
    try:
        wait_serving(f"127.0.0.1:{port}", process)
        yield process, port
    finally:
        process.terminate()
        try:
            assert process.wait(timeout=20) == 0, "serve did not stop cleanly after the fuzzing"
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGABRT)
                process.wait()
            log.close()


def _send(channel: grpc.Channel, path: str, streaming: bool, data: bytes) -> grpc.StatusCode:
    try:
        if streaming:
            stream: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(path)
            for _ in stream(data, timeout=10):
                pass
        else:
            unary: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
            unary(data, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _reflection(channel: grpc.Channel, data: bytes) -> grpc.StatusCode:
    path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    call: grpc.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(path)
    try:
        for _ in call(iter([data]), timeout=10):
            pass
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_random_and_mutated_bytes_at_every_rpc(served: tuple[subprocess.Popen[str], int]) -> None:
    process, port = served
    rng = random.Random(20250630)
    jobs: list[tuple[str, Callable[[grpc.Channel], grpc.StatusCode]]] = []
    for path, streaming, valid in METHODS:
        for data in _mutations(valid.SerializeToString(), rng, INPUTS_PER_METHOD):
            jobs.append((path, functools.partial(_send, path=path, streaming=streaming, data=data)))
    valid_reflection = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    for data in _mutations(valid_reflection, rng, 300):
        jobs.append(("ServerReflectionInfo", functools.partial(_reflection, data=data)))
    rng.shuffle(jobs)

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        warm = [job for _, job in jobs[:300]]
        for job in warm:  # caches, pools and arenas reach their working size first
            job(channel)
        before = _rss(process.pid)
        started = time.monotonic()
        with futures.ThreadPoolExecutor(max_workers=4) as pool:
            codes = list(pool.map(lambda job: (job[0], job[1](channel)), jobs))
        seconds = time.monotonic() - started
        after = _rss(process.pid)
        check: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/grpc.health.v1.Health/Check")
        health = check(health_pb2.HealthCheckRequest().SerializeToString(), timeout=5)

    by_code = Counter(code.name for _, code in codes)
    by_method = Counter(path.rsplit("/", 1)[-1] for path, _ in codes)
    print(
        f"\nbyte fuzz: {len(codes)} inputs to {len(by_method)} RPCs in {seconds:.1f} s "
        f"({len(codes) / seconds:.0f}/s); codes {dict(by_code)}; RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB"
    )
    assert len(codes) >= 10_000
    assert process.poll() is None
    assert health_pb2.HealthCheckResponse.FromString(health).status == health_pb2.HealthCheckResponse.SERVING
    # Every input got a status; UNKNOWN (an exception escaping a handler) and INTERNAL would be bugs.
    internal = Counter(path for path, code in codes if code.name in ("UNKNOWN", "INTERNAL"))
    assert not internal, internal
    assert after - before < MAX_RSS_GROWTH

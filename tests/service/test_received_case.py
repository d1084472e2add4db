"""Evaluate takes its case's bytes as the client sent them (service/received.py): through a real
gRPC server, a case written another way protobuf allows is answered as its canonical encoding,
and the decision log's input digest is of the bytes sent; a case the reader cannot take whole
(sent twice, to be merged) is serialised again, as before."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.engine import wire
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.server.server import build_server
from rules_engine.service import received
from rules_engine.service.connect_codecs import BinaryCodec
from rules_engine.service.connect_servicer import build_connect_app
from rules_engine.store import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
EVALUATE = "/rules_engine.v1.RulesEngineService/Evaluate"
AS_OF = "2025-07-01"


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    registry = Registry(ROOT / "rulesets", compile_ruleset)
    registry.reload()
    engine = Engine(registry, store=MemoryStore())
    server, port, _ = build_server(engine, "127.0.0.1", 0, max_workers=2)
    server.start()
    opened = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield opened
    finally:
        opened.close()
        server.stop(None)
        engine.close()
        registry.close()


def _case(case_id: str) -> case_pb2.Case:
    case = case_pb2.Case(case_id=case_id)
    case.child.birth_date = "2020-01-01"
    for i in range(6):
        case.concerns.add(id=f"c{i}", date=f"2025-0{i + 1}-10", agency="POLICE", category="NEGLECT")
    return case


def _shuffled(case: case_pb2.Case) -> bytes:
    """The case with its concerns before its id and child, and a field the service does not know."""
    canonical = case.SerializeToString(deterministic=True)
    head = case_pb2.Case(case_id=case.case_id, child=case.child).SerializeToString()
    concerns = canonical[len(head) :]
    unknown = wire.framed(wire.encode_varint(999 << 3 | wire.LENGTH_DELIMITED), b"newer")
    return concerns + unknown + head


def _request(case_bytes: bytes, *, case_first: bool = True) -> bytes:
    case_field = wire.framed(wire.encode_varint(1 << 3 | wire.LENGTH_DELIMITED), case_bytes)
    rest = pb.EvaluateRequest(as_of=AS_OF, ruleset="safeguarding").SerializeToString()
    return case_field + rest if case_first else rest + case_field


def _evaluate(channel: grpc.Channel, data: bytes) -> pb.EvaluateResponse:
    call: grpc.UnaryUnaryMultiCallable[bytes, pb.EvaluateResponse] = channel.unary_unary(
        EVALUATE, request_serializer=None, response_deserializer=pb.EvaluateResponse.FromString
    )
    answer: pb.EvaluateResponse = call(data, timeout=10)
    return answer


def _digest(channel: grpc.Channel, case_id: str) -> str:
    decisions = pb_grpc.RulesEngineServiceStub(channel).ListDecisions(pb.ListDecisionsRequest(case_id=case_id))
    return decisions.decisions[0].input_digest


def _flags(answer: pb.EvaluateResponse) -> list[tuple[str, str, list[str]]]:
    return [(f.rule_id, f.explanation, [e.fact_id for e in f.evidence]) for f in answer.flags]


def test_a_case_written_another_way_is_answered_alike_and_its_digest_is_of_the_bytes_sent(
    channel: grpc.Channel,
) -> None:
    canonical = _evaluate(channel, _request(_case("case-a").SerializeToString(deterministic=True)))
    sent = _shuffled(_case("case-b"))
    other = _evaluate(channel, _request(sent, case_first=False))
    assert _flags(other) and _flags(other) == _flags(canonical)
    assert _digest(channel, "case-b") == hashlib.sha256(sent).hexdigest()
    # The canonical encoding's digest is what it was before: the deterministic bytes.
    assert (
        _digest(channel, "case-a") == hashlib.sha256(_case("case-a").SerializeToString(deterministic=True)).hexdigest()
    )


def test_a_case_sent_in_two_parts_is_merged_and_serialised_again(channel: grpc.Channel) -> None:
    whole = _case("case-c")
    first, second = case_pb2.Case(case_id="case-c", child=whole.child), case_pb2.Case()
    second.concerns.extend(whole.concerns)
    data = _request(first.SerializeToString()) + _request(second.SerializeToString())  # protobuf merges the two
    answer = _evaluate(channel, data)
    assert _flags(answer) == _flags(_evaluate(channel, _request(whole.SerializeToString(deterministic=True))))
    assert _digest(channel, "case-c") == hashlib.sha256(whole.SerializeToString(deterministic=True)).hexdigest()


def test_the_http_door_digests_the_case_bytes_sent_too() -> None:
    registry = Registry(ROOT / "rulesets", compile_ruleset)
    registry.reload()
    engine = Engine(registry, store=MemoryStore())
    sent = _shuffled(_case("case-e"))

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=build_connect_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
            return await client.post(EVALUATE, content=_request(sent), headers={"content-type": "application/proto"})

    try:
        answer = asyncio.run(send())
        assert answer.status_code == 200
        assert pb.EvaluateResponse.FromString(answer.content).flags
        assert engine.decisions("case-e")[0].input_digest == hashlib.sha256(sent).hexdigest()
    finally:
        engine.close()
        registry.close()


def test_the_http_doors_binary_codec_holds_the_case_bytes_for_the_request_it_made() -> None:
    sent = _shuffled(_case("case-d"))
    request = BinaryCodec().decode(_request(sent), pb.EvaluateRequest)
    assert received.take(pb.EvaluateRequest()) is None  # another request object: nothing
    assert received.take(request) == sent
    assert received.take(request) is None  # taken once


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", None),  # absent
        (b"\x0a\x02hi", b"hi"),
        (b"\x10\x01\x0a\x02hi\x19" + bytes(8) + b"\x25" + bytes(4), b"hi"),  # around a varint, a double, a fixed32
        (b"\x0a\x02hi\x0a\x02ho", None),  # twice: protobuf would merge them
        (b"\x0a\x05hi", None),  # cut short
        (b"\x0b\x0c\x0a\x02hi", None),  # a group: not followed
        (b"\x0a\xff", None),  # a length that never ends
    ],
)
def test_field_once_reads_only_a_field_sent_once_in_bytes_it_follows(data: bytes, expected: bytes | None) -> None:
    assert wire.field_once(data, 1) == expected

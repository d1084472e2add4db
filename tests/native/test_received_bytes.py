"""The compiled core reads a case's bytes as the client sent them (service/received.py), not as
protobuf would write them again. Protobuf lets a client write a message in many ways: fields in
any order, a singular field sent again (the last one counts, even when it is empty), fields the
service does not know. On every such encoding the core must answer as the Python path answers
the message protobuf parses from the same bytes, or decline (the Python path then answers)."""

from __future__ import annotations

import datetime as dt
import random

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import given

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.engine import wire
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.errors import CaseError
from rules_engine.service import requests
from tests.native import cases
from tests.native.compare import first_difference
from tests.native.differential import compiled_path, wire_difference
from tests.native.test_differential import _settings

EXAMPLES = 200
UNKNOWN = wire.encode_varint(999 << 3 | wire.LENGTH_DELIMITED) + b"\x03abc"


def _fields(data: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """A message's top-level fields in order: (number, wire type, the whole field's bytes, its
    payload for a length-delimited field, else b"")."""
    out = []
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = wire._read_varint(data, pos)
        kind = key & 7
        payload = b""
        if kind == wire.LENGTH_DELIMITED:
            size, pos = wire._read_varint(data, pos)
            payload, pos = data[pos : pos + size], pos + size
        elif kind == wire.VARINT:
            _, pos = wire._read_varint(data, pos)
        elif kind == wire.FIXED64:
            pos += 8
        else:
            pos += 4
        out.append((key >> 3, kind, data[start:pos], payload))
    return out


def _zero(field: FieldDescriptor) -> bytes:
    """The field written with its zero value (empty string or message, 0, 0.0)."""
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return wire.encode_varint(field.number << 3 | wire.FIXED64) + bytes(8)
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_BYTES):
        return wire.framed(wire.tag(field), b"")
    return wire.encode_varint(field.number << 3 | wire.VARINT) + b"\x00"  # bools, enums, integers


def rewritten(data: bytes, descriptor: Descriptor, rng: random.Random) -> bytes:
    """`data` written another way protobuf reads alike: each message's fields shuffled (a repeated
    field's elements keep their order), singular fields sent twice (an earlier zero value, the
    same value again, or a zero value after the real one, which clears it), unknown fields
    between, and the same done inside every nested message."""
    fields = []
    present = _fields(data)
    # One field in one message of thirty is cleared (a required one makes the case refused).
    cleared = rng.randrange(len(present)) if present and rng.randrange(30) == 0 else -1
    for index, (number, _kind, sent, payload) in enumerate(present):
        field = descriptor.fields_by_number.get(number)
        raw = sent
        if field is not None and field.message_type is not None:
            raw = wire.framed(wire.tag(field), rewritten(payload, field.message_type, rng))
        group = [raw]
        if field is not None and not field.is_repeated:
            choice = rng.randrange(40)
            if index == cleared:
                group = [raw, _zero(field)]
            elif choice == 0:  # the core declines an empty id or date even when a later one counts
                group = [_zero(field), raw]
            elif choice < 10:
                group = [raw, raw]
        if rng.randrange(6) == 0:
            group.append(UNKNOWN)
        fields.append((number, group))
    # Shuffle, then put each field number's elements back in their order.
    order = list(range(len(fields)))
    rng.shuffle(order)
    by_number: dict[int, list[list[bytes]]] = {}
    for number, group in fields:
        by_number.setdefault(number, []).append(group)
    out = []
    for index in order:
        out += by_number[fields[index][0]].pop(0)
    return b"".join(out)


def test_any_encoding_of_a_case_is_answered_as_its_parse(core: object, durable: dict[str, PreparedRuleset]) -> None:
    compiled = compiled_path(durable)
    answered = declined = refused = 0

    @_settings(EXAMPLES)
    @given(cases.valid_cases())
    def run(drawn: tuple[case_pb2.Case, tuple[dt.date, ...]]) -> None:
        nonlocal answered, declined, refused
        message, as_ofs = drawn
        rng = random.Random(message.SerializeToString(deterministic=True))
        data = rewritten(message.SerializeToString(deterministic=True), case_pb2.Case.DESCRIPTOR, rng)
        parsed = case_pb2.Case.FromString(data)
        today = cases.TODAY
        try:
            case = requests.case_from_proto(parsed, today)
        except CaseError as exc:
            case, why = None, str(exc)
        for as_of in as_ofs[:2]:
            for name, prepared in durable.items():
                got = compiled(name, parsed, data, as_of, today)
                if case is None:
                    assert got is None, f"{name}: the core answered a case the Python path refuses ({why}): {parsed}"
                    refused += 1
                    continue
                if got is None:
                    declined += 1
                    continue
                answered += 1
                expected = prepared.evaluate(case, as_of)
                difference = first_difference(expected, got) or wire_difference(got)
                assert difference is None, f"{name} at {as_of}: {difference}\nbytes {data.hex()}"

    run()
    print(f"\nre-encoded cases: {answered} answered alike, {declined} declined, {refused} refused by both")
    assert answered > declined  # the rewrites mostly keep the case acceptable: the comparison is real

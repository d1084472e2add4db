"""Protobuf's wire format, the little of it the response is written with by hand: varints, field
tags and length-delimited fields.

Evaluate's response is encoded from parts (service/responses.py) and the compiled core writes
each flag's evidence elements itself (engine/native.py hands it the tags); both frame with these,
so the two encodings cannot drift apart.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor

LENGTH_DELIMITED = 2  # the wire type of embedded messages, strings and bytes
VARINT = 0
FIXED64 = 1  # doubles: 8 bytes, little-endian

# Lengths under 128 are most evidence items and many flags: one byte, looked up.
_SHORT_LENGTHS = tuple(bytes((n,)) for n in range(0x80))


def encode_varint(value: int) -> bytes:
    """The base-128 varint of a non-negative integer, low 7-bit group first, as protobuf writes it."""
    if value < 0x4000:  # a flag's length, most tags: one or two bytes, without the loop
        return _SHORT_LENGTHS[value] if value < 0x80 else bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: FieldDescriptor) -> bytes:
    """The tag of a string, bytes or message field (length-delimited), of an unsigned or
    non-negative integer or boolean field (a varint), or of a double; any other field is refused,
    as it is never written here."""
    if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return encode_varint(field.number << 3 | LENGTH_DELIMITED)
    if field.type in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_BOOL,
    ):
        return encode_varint(field.number << 3 | VARINT)
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return encode_varint(field.number << 3 | FIXED64)
    raise RuntimeError(f"{field.full_name} is not a field written here (strings, messages, varints, doubles)")


def framed(field_tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length, the payload."""
    size = len(payload)
    return b"".join((field_tag, _SHORT_LENGTHS[size] if size < 0x80 else encode_varint(size), payload))


FIXED32 = 5


def field_once(data: bytes, number: int) -> bytes | None:
    """The payload of length-delimited field `number` in a message's bytes when it occurs exactly
    once at the top level; None when it is absent, repeated (repeats of a message field merge),
    or the bytes hold what this reader does not follow (groups, a truncated field).

    Used on a request protobuf has already parsed, to take its case's bytes as received rather
    than serialise the parsed case again."""
    found: bytes | None = None
    pos, end = 0, len(data)
    try:
        while pos < end:
            key, pos = _read_varint(data, pos)
            wire_type = key & 7
            if wire_type == LENGTH_DELIMITED:
                size, pos = _read_varint(data, pos)
                if key >> 3 == number:
                    if found is not None:
                        return None
                    found = data[pos : pos + size]
                pos += size
            elif wire_type == VARINT:
                _, pos = _read_varint(data, pos)
            elif wire_type == FIXED64:
                pos += 8
            elif wire_type == FIXED32:
                pos += 4
            else:
                return None
    except IndexError:
        return None
    return found if pos == end else None


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """A varint at `pos` and the position after it; IndexError past the end."""
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    value, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos + 1
        shift += 7

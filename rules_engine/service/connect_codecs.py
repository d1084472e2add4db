"""The Connect door's wire forms: its two codecs and its errors.

The runtime's stock codecs for Google's messages (`connectrpc.compat`) ignore unknown JSON
fields and report a bad body as `unmarshal message: ...` without field paths. These refuse
as the gRPC door does: INVALID_ARGUMENT, `invalid <Request>: <field>: <why>`, and a
`google.rpc.BadRequest` detail naming the fields (json_input walks a refused JSON document so
every mistake is named, `case.concerns[1].agnecy: unknown field; did you mean 'agency'?`).
The runtime passes a ConnectError raised by a codec's `decode` through as it is.

Evaluate answers with an EncodedEvaluateResponse (bytes encoded from cached parts): the binary
codec sends its bytes, the JSON codec parses them into the message first.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, TypeVar

from connectrpc.code import Code as ConnectCode
from connectrpc.errors import ConnectError
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from protobuf.wkt import Any as AnyDetail

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.errors import CaseError, FieldViolation
from rules_engine.service import received
from rules_engine.service.json_input import parse_json
from rules_engine.service.outcomes import Refusal, bad_request, invalid
from rules_engine.service.responses import EncodedEvaluateResponse

M = TypeVar("M", bound=Message)
_BAD_REQUEST_URL = "type.googleapis.com/google.rpc.BadRequest"


class _Serializable(Protocol):
    def SerializeToString(self) -> bytes: ...


def connect_error(refusal: Refusal) -> ConnectError:
    """The refusal as the Connect door says it: same code and message, BadRequest packed as a detail."""
    details = []
    if refusal.violations is not None:
        # connectrpc 0.13 takes protobuf-py messages; Google's BadRequest goes in as a packed Any.
        details.append(AnyDetail(type_url=_BAD_REQUEST_URL, value=bad_request(refusal.violations).SerializeToString()))
    return ConnectError(ConnectCode[refusal.code.name], refusal.message, details)


def _refuse(message_class: type[Message], violations: list[FieldViolation]) -> ConnectError:
    return connect_error(invalid(message_class.DESCRIPTOR.name, violations))


class BinaryCodec:
    """Protobuf binary (`application/proto`, `+proto`); undecodable bytes refused as the gRPC door does."""

    def name(self) -> str:
        return "proto"

    def encode(self, message: _Serializable) -> bytes:
        return message.SerializeToString()

    def decode(self, data: bytes | bytearray, message_class: type[M]) -> M:
        data = bytes(data)
        try:
            message = message_class.FromString(data)
        except DecodeError:
            name = message_class.DESCRIPTOR.name
            raise _refuse(message_class, [FieldViolation("", f"the bytes are not a valid {name} message")]) from None
        if message_class is pb.EvaluateRequest:  # its case's bytes as received, for the servicer
            received.hold(message, data)
        return message


class StrictJSONCodec:
    """Proto3 JSON (`application/json`, `+json`); unknown fields and bad values refused by field path."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Message | EncodedEvaluateResponse) -> bytes:
        if isinstance(message, EncodedEvaluateResponse):
            message = pb.EvaluateResponse.FromString(message.data)
        return json_format.MessageToJson(message, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[M]) -> M:
        document: Any
        if not data.strip():
            document = {}  # as the binary form of a message with no fields set
        else:
            try:
                document = json.loads(data)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _refuse(message_class, [FieldViolation("", f"the body is not valid JSON: {exc}")]) from None
        if not isinstance(document, dict):
            kind = "a list" if isinstance(document, list) else "a single value"
            raise _refuse(message_class, [FieldViolation("", f"expected a JSON object, not {kind}")])
        try:
            return parse_json(document, message_class(), "")
        except CaseError as exc:
            raise _refuse(message_class, exc.violations) from None


def codecs() -> list[BinaryCodec | StrictJSONCodec]:
    return [BinaryCodec(), StrictJSONCodec()]

"""Refusals as gRPC statuses: INVALID_ARGUMENT with `google.rpc.BadRequest` details naming each field.

The message reads `invalid <Request message>: <field>: <why>[; ...]`, and the details list
the same field paths (an empty path is the whole request, e.g. bytes that do not decode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from rules_engine.errors import FieldViolation

# Status trailers share grpc's 8 KiB default metadata limit on the client: a case with
# thousands of bad fields must still come back as INVALID_ARGUMENT, not as a transport error.
MAX_DETAIL_VIOLATIONS = 20
MAX_MESSAGE_CHARS = 2_000


def shorten(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def invalid_message(request_name: str, violations: Sequence[FieldViolation]) -> str:
    """`invalid EvaluateRequest: case.concerns[2].date: not a date (YYYY-MM-DD)`."""
    listed = "; ".join(f"{v.field}: {v.description}" if v.field else v.description for v in violations)
    return shorten(f"invalid {request_name}: {listed}")


def invalid_argument(request_name: str, violations: Sequence[FieldViolation]) -> grpc.Status:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations[:MAX_DETAIL_VIOLATIONS]
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT, message=invalid_message(request_name, violations), details=[detail]
    )
    refusal: grpc.Status = rpc_status.to_status(status)
    return refusal


def abort_invalid(context: grpc.ServicerContext, request_name: str, violations: Sequence[FieldViolation]) -> NoReturn:
    """End the call with INVALID_ARGUMENT and BadRequest details; never returns."""
    context.abort_with_status(invalid_argument(request_name, violations))
    raise AssertionError("abort_with_status returned")  # it raises; this tells mypy so

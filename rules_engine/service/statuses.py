"""Refusals as gRPC statuses: INVALID_ARGUMENT with `google.rpc.BadRequest` details naming each field.

The message reads `invalid <Request message>: <field>: <why>[; ...]`, and the details list
the same field paths (an empty path is the whole request, e.g. bytes that do not decode).
What is refused, and with which words, is service/outcomes.py's; this is only the gRPC form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from rules_engine.errors import FieldViolation
from rules_engine.service.outcomes import Refusal, bad_request, invalid, invalid_message


def _bad_request_status(message: str, violations: Sequence[FieldViolation]) -> grpc.Status:
    detail = any_pb2.Any()
    detail.Pack(bad_request(violations))
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
    refusal: grpc.Status = rpc_status.to_status(status)
    return refusal


def invalid_argument(request_name: str, violations: Sequence[FieldViolation]) -> grpc.Status:
    return _bad_request_status(invalid_message(request_name, violations), violations)


def abort_with(context: grpc.ServicerContext, refusal: Refusal) -> NoReturn:
    """End the call with the refusal's status (BadRequest details when it names fields); never returns."""
    if refusal.violations is not None:
        context.abort_with_status(_bad_request_status(refusal.message, refusal.violations))
    else:
        context.abort(grpc.StatusCode[refusal.code.name], refusal.message)
    raise AssertionError("abort returned")  # it raises; this tells mypy so


def abort_invalid(context: grpc.ServicerContext, request_name: str, violations: Sequence[FieldViolation]) -> NoReturn:
    """End the call with INVALID_ARGUMENT and BadRequest details; never returns."""
    abort_with(context, invalid(request_name, violations))

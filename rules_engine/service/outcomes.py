"""Failures as refusals, protocol-neutral: what a call tells its caller when it cannot answer.

`refusal(exc, method)` is the one mapping from an exception to the code, message and field
violations a caller gets, whichever door it came in by: `statuses.py` turns a `Refusal` into a
gRPC status, `connect_servicer.py` into a Connect error. Failures the caller cannot act on are
logged here (type, rule and stack; never the exception's text, which may quote case content).
"""

from __future__ import annotations

import enum
import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from google.rpc import error_details_pb2

from rules_engine.errors import (
    AcknowledgementError,
    CaseChangedError,
    CaseError,
    FieldViolation,
    FlagNotFoundError,
    RulesetNotFoundError,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)

# Status trailers share grpc's 8 KiB default metadata limit on the client: a case with
# thousands of bad fields must still come back as INVALID_ARGUMENT, not as a transport error.
MAX_DETAIL_VIOLATIONS = 20
MAX_MESSAGE_CHARS = 2_000
STORE_UNAVAILABLE = (
    "case store unavailable; stored history, acknowledgements, chronology and decisions need it. "
    "Retry later; Evaluate without use_stored_history still works"
)
NO_CASE_STATE = "this server keeps no case state"
DEADLINE_PASSED = "the call's deadline passed before it was evaluated"
_ACKNOWLEDGEMENT_FIELDS = ("practitioner_id", "reason_code", "snooze_until")


class Code(enum.Enum):
    """The refusal codes the service uses; their names are gRPC's and Connect's (upper-cased)."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ABORTED = "aborted"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    UNIMPLEMENTED = "unimplemented"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the caller is told. `violations` is not None for a bad request: each door sends
    them as `google.rpc.BadRequest` details (the first MAX_DETAIL_VIOLATIONS), even when empty."""

    code: Code
    message: str
    violations: tuple[FieldViolation, ...] | None = None


class RefusedError(Exception):
    """Raised by the core for a refusal that is no domain error (no case state, batch too big, deadline)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def shorten(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def invalid_message(request_name: str, violations: Sequence[FieldViolation]) -> str:
    """`invalid EvaluateRequest: case.concerns[2].date: not a date (YYYY-MM-DD)`."""
    listed = "; ".join(f"{v.field}: {v.description}" if v.field else v.description for v in violations)
    return shorten(f"invalid {request_name}: {listed}")


def invalid(request_name: str, violations: Sequence[FieldViolation]) -> Refusal:
    """INVALID_ARGUMENT naming each bad field of `request_name` (a message name, `EvaluateRequest`)."""
    return Refusal(Code.INVALID_ARGUMENT, invalid_message(request_name, violations), tuple(violations))


def bad_request(violations: Sequence[FieldViolation]) -> error_details_pb2.BadRequest:
    """The `google.rpc.BadRequest` detail both doors send: the first MAX_DETAIL_VIOLATIONS fields."""
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations[:MAX_DETAIL_VIOLATIONS]
        ]
    )


def refusal(exc: Exception, method: str) -> Refusal:
    """What the caller of `method` (`Evaluate`) is told about `exc`; logs what the operator must see."""
    if isinstance(exc, RefusedError):
        return exc.refusal
    if isinstance(exc, CaseError):
        return invalid(f"{method}Request", exc.violations)
    if isinstance(exc, RulesetNotFoundError):
        return Refusal(Code.NOT_FOUND, str(exc) or "ruleset not found")
    if isinstance(exc, AcknowledgementError):
        # The store's own check, behind requests.acknowledgement_from_proto's: its text starts with the field.
        field = next((f for f in _ACKNOWLEDGEMENT_FIELDS if str(exc).startswith(f)), "")
        return invalid(f"{method}Request", [FieldViolation(field, str(exc).removeprefix(field).strip())])
    if isinstance(exc, FlagNotFoundError):
        return Refusal(Code.NOT_FOUND, str(exc))
    if isinstance(exc, CaseChangedError):
        return Refusal(Code.ABORTED, "the case kept changing while it was evaluated; retry")
    if isinstance(exc, StoreUnavailableError):
        # The store's own message names its address; the caller needs only what to do.
        log.warning("%s: %s", method, exc)
        return Refusal(Code.UNAVAILABLE, STORE_UNAVAILABLE)
    log_failure(method, exc)
    return Refusal(Code.INTERNAL, "internal error")


def log_failure(method: str, exc: BaseException) -> None:
    # The exception's text may quote case content, so only its type, rule and stack are logged.
    rule = getattr(exc, "rule_id", "")
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error("%s failed: %s%s\n%s", method, type(exc).__name__, f" in rule {rule}" if rule else "", stack)

"""Request limits: sizes, counts, string lengths and deadlines, checked before a call reaches the servicer.

`RequestGuard` is a server interceptor for RulesEngineService's methods. It parses requests
itself, so bytes that are not the method's message get INVALID_ARGUMENT (gRPC's own answer
would be INTERNAL, which reads as our fault), then refuses, with the field's path:
- a call whose deadline has already passed (DEADLINE_EXCEEDED: nothing is evaluated);
- more cases in a batch than `max_batch` (RESOURCE_EXHAUSTED);
- a case with more facts than `max_facts`, more withdrawn facts than that, or a top-level
  text field (ruleset, as_of, ids, codes) longer than `max_string_chars` (INVALID_ARGUMENT).
The facts' own fields are bounded by the case model (ids 128 characters, codes from fixed
lists, nested lists case.checks.MAX_LIST_ITEMS) and the message's nesting by its schema, which the
protobuf parser enforces (unknown nested groups stop at its recursion limit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from rules_engine.case.facts import FACT_TYPES
from rules_engine.config import MAX_FACTS, Settings
from rules_engine.errors import FieldViolation
from rules_engine.server.interceptors import EVALUATE, WrappingInterceptor
from rules_engine.server.security import SERVICE_PREFIX, guarded
from rules_engine.service import received
from rules_engine.service.deadlines import past_deadline
from rules_engine.service.outcomes import DEADLINE_PASSED, Code, Refusal, invalid
from rules_engine.service.statuses import abort_invalid, abort_with

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]

# A 10,000-fact case is about 1 MiB; 16 MiB leaves room for batches while refusing
# anything big enough to threaten the process.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_BATCH = 1_000
MAX_STRING_CHARS = 256
# Calls one process works on at once; beyond this gRPC answers RESOURCE_EXHAUSTED at once
# rather than queueing behind the thread pool (the caller retries another replica).
MAX_CONCURRENT_RPCS = 64


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_batch: int = MAX_BATCH
    max_facts: int = MAX_FACTS
    max_string_chars: int = MAX_STRING_CHARS
    max_concurrent_rpcs: int = MAX_CONCURRENT_RPCS


class _Malformed:
    """Stands for a request whose bytes did not parse; the guard refuses it."""

    __slots__ = ("message_name",)

    def __init__(self, message_name: str = "request") -> None:
        self.message_name = message_name


MALFORMED = _Malformed()


def _lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    # The parser is the message class's FromString: its class names the message in the refusal.
    message_class = getattr(parse, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    malformed = _Malformed(descriptor.name) if descriptor is not None else MALFORMED

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except (DecodeError, RuntimeError, ValueError):  # upb raises DecodeError; a recursion limit may differ
            return malformed

    return deserialize


def _parsed(request: Any, context: grpc.ServicerContext) -> Any:
    """`request`, unless its bytes did not parse: then the call is aborted."""
    if isinstance(request, _Malformed):
        # The empty field path is the whole request: no field of it could be read.
        violation = FieldViolation("", f"the bytes are not a valid {request.message_name} message")
        abort_invalid(context, request.message_name, [violation])
    return request


def _checked_stream(handler: Handler, deserializer: Callable[[bytes], Any] | None) -> Handler:
    """A client-streaming handler (reflection) whose bad messages end the call with INVALID_ARGUMENT.

    Left to gRPC, an unparsable message in a client stream is INTERNAL and, with grpcio 1.85,
    leaves the call behind so that server.stop() never returns: SIGTERM would hang.
    """
    if handler.stream_stream is None:
        return handler
    behaviour = handler.stream_stream

    def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        def checked() -> Iterator[Any]:
            for request in requests:
                _parsed(request, context)
                yield request

        yield from behaviour(checked(), context)

    return grpc.stream_stream_rpc_method_handler(
        stream_stream, request_deserializer=deserializer, response_serializer=handler.response_serializer
    )


def _fact_count(case: Message) -> int:
    return sum(len(getattr(case, name)) for name in FACT_TYPES)


class RequestGuard(WrappingInterceptor):
    """Refuses requests over the limits before the servicer sees them; other services pass through."""

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__()
        self.limits = limits or Limits()

    def wrap(self, path: str, handler: Handler) -> Handler:
        parse = handler.request_deserializer
        deserializer = _lenient(parse) if parse is not None else None
        if handler.request_streaming:
            return _checked_stream(handler, deserializer)
        if not path.startswith(SERVICE_PREFIX) or deserializer is None:
            # Health checks get the lenient parse too; only our service's requests have limits.
            return guarded(handler, _parsed, deserializer)
        if path == EVALUATE:  # its case's bytes as received: the servicer need not serialise them again
            return guarded(handler, self.admit, _with_size(deserializer, hold=received.hold))
        return guarded(handler, self.admit, _with_size(deserializer))

    def admit(self, parsed: tuple[Any, int], context: grpc.ServicerContext) -> Any:
        """The request of (request, its size) from _with_size, when no limit refuses it."""
        request, size = parsed
        self.check(request, context, size)
        return request

    def check(self, request: Any, context: grpc.ServicerContext, size: int | None = None) -> None:
        """Abort the call when the request (of `size` bytes, if known) breaks a limit; return when it may go on."""
        _parsed(request, context)
        if past_deadline(context.time_remaining()):  # the caller has stopped waiting: work past it is wasted
            abort_with(context, Refusal(Code.DEADLINE_EXCEEDED, DEADLINE_PASSED))
        refused = breach(request, self.limits, size)
        if refused is not None:
            abort_with(context, refused)


def _with_size(
    deserialize: Callable[[bytes], Any], hold: Callable[[Any, bytes], None] | None = None
) -> Callable[[bytes], tuple[Any, int]]:
    """The request with the length of its bytes, which bounds its facts (see breach); `hold` is
    handed each parsed request with its bytes."""
    if hold is None:
        return lambda data: (deserialize(data), len(data))

    def parse(data: bytes) -> tuple[Any, int]:
        request = deserialize(data)
        if not isinstance(request, _Malformed):
            hold(request, data)
        return request, len(data)

    return parse


# -- the limits themselves, for either door ---------------------------------------------------


def breach(request: Message, limits: Limits, size: int | None = None) -> Refusal | None:
    """The refusal for the first limit `request` breaks, or None. The gRPC door (RequestGuard) and
    the HTTP door (server/http_interceptors.py) both refuse with it, so the refusals read the same on both.

    `size` is the length of the request's bytes, when known. Every fact takes at least two of
    them (its field's tag and its length), so a request of `size` bytes holds at most size // 2
    facts: when that is within max_facts, counting them (10 µs a case) cannot refuse anything.
    """
    count_facts = size is None or size // 2 > limits.max_facts
    for field, value in request.ListFields():
        name = field.name
        if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
            if len(value) > limits.max_string_chars:
                return _invalid(request, name, f"longer than {limits.max_string_chars} characters")
        elif name == "case":
            if (found := _case_breach(request, value, "case", limits, count_facts)) is not None:
                return found
        elif name == "cases":
            if len(value) > limits.max_batch:
                message = f"cases: {len(value)} cases in one batch; at most {limits.max_batch}"
                return Refusal(Code.RESOURCE_EXHAUSTED, message)
            for index, case in enumerate(value):
                if (found := _case_breach(request, case, f"cases[{index}]", limits, count_facts)) is not None:
                    return found
        elif name == "withdrawn" and len(value) > limits.max_facts:
            return _invalid(request, name, f"{len(value)} items; at most {limits.max_facts}")
    return None


def _case_breach(
    request: Message, case: Message, path: str, limits: Limits, count_facts: bool = True
) -> Refusal | None:
    if count_facts and (count := _fact_count(case)) > limits.max_facts:
        return _invalid(request, path, f"{count} facts; at most {limits.max_facts} per case")
    case_id = getattr(case, "case_id", "")
    if len(case_id) > limits.max_string_chars:
        return _invalid(request, f"{path}.case_id", f"longer than {limits.max_string_chars} characters")
    return None


def _invalid(request: Message, field: str, description: str) -> Refusal:
    return invalid(request.DESCRIPTOR.name, [FieldViolation(field, description)])


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_message_bytes=settings.max_message_bytes,
        max_batch=settings.max_batch,
        max_facts=settings.max_facts,
        max_string_chars=settings.max_string_chars,
        max_concurrent_rpcs=settings.max_concurrent_rpcs,
    )

"""The HTTP door's interceptors: the gRPC door's rules for Connect calls, in the same order.

Each is connectrpc's interceptor form of a rule the gRPC door applies through its own
interceptors, calling the same functions: authentication with the same clients and roles
(security.refusal), calls at once per process, the same request limits (limits.breach), the
same metrics with `protocol="connect"` and the same log line (interceptors.call_recorder),
and the call's span when tracing is on (tracing.py). Refusals are Connect errors with the
gRPC door's codes and messages, and field refusals carry the same google.rpc.BadRequest.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf.message import Message

from rules_engine.server.interceptors import call_recorder
from rules_engine.server.limits import Limits, breach
from rules_engine.server.security import ClientRegistry, bearer_token, refusal
from rules_engine.server.tracing import CONNECT, Tracing, annotate, annotate_batch, batch_item, finish, traced
from rules_engine.service.connect_codecs import connect_error
from rules_engine.service.deadlines import past_deadline
from rules_engine.service.outcomes import DEADLINE_PASSED, log_failure

log = logging.getLogger(__name__)

PROTOCOL = "connect"

# The client certificate's common name of the connection a call came on (set per request by
# the dispatcher, read by the auth interceptor in the same task).
PEER_COMMON_NAME: contextvars.ContextVar[str | None] = contextvars.ContextVar("peer_common_name", default=None)

# Connect's code names for the gRPC ones the servers share (Connect spells CANCELED with one L).
_GRPC_NAMES = {Code.CANCELED: "CANCELLED"}


def grpc_code_name(code: Code) -> str:
    return _GRPC_NAMES.get(code, code.name)


# -- interceptors: the gRPC door's rules, for Connect calls -----------------------------------


class Authenticating:
    """Admits a call only from a known client whose role allows the method (security.refusal).

    A metadata interceptor first in the list: the runtime runs it before reading the body.
    """

    def __init__(self, clients: ClientRegistry) -> None:
        self._clients = clients

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        authorization = ctx.request_headers.get("authorization")
        token = bearer_token(authorization) if authorization is not None else None
        refused = refusal(self._clients, ctx.method.name, token, PEER_COMMON_NAME.get() if token is None else None)
        if refused is not None:
            raise connect_error(refused)

    async def on_end(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None) -> None:
        return None


class Admitting:
    """At most `limit` calls at once in this process's HTTP door; past it RESOURCE_EXHAUSTED at
    once, as grpcio's maximum_concurrent_rpcs answers on the other door (each door has its own)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_flight = 0  # only the event loop's thread touches it

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        if self._in_flight >= self._limit:
            raise ConnectError(Code.RESOURCE_EXHAUSTED, f"more than {self._limit} calls at once; retry")
        self._in_flight += 1

    async def on_end(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None) -> None:
        self._in_flight -= 1


def _past_deadline(ctx: RequestContext[Any, Any]) -> bool:
    remaining = ctx.timeout_ms
    return past_deadline(None if remaining is None else remaining / 1000)


class Limiting:
    """The request limits of limits.py (sizes, facts, string lengths, batch size) and the deadline."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    def _check(self, request: Message, ctx: RequestContext[Any, Any]) -> None:
        if _past_deadline(ctx):
            raise ConnectError(Code.DEADLINE_EXCEEDED, DEADLINE_PASSED)
        refused = breach(request, self._limits)
        if refused is not None:
            raise connect_error(refused)

    async def intercept_unary(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]], request: Any, ctx: Any
    ) -> Any:
        self._check(request, ctx)
        return await call_next(request, ctx)

    async def intercept_server_stream(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]], request: Any, ctx: Any
    ) -> AsyncIterator[Any]:
        self._check(request, ctx)
        async for response in call_next(request, ctx):
            yield response


def _code_of(error: BaseException, ctx: RequestContext[Any, Any]) -> str:
    if isinstance(error, ConnectError):
        return grpc_code_name(error.code)
    if isinstance(error, asyncio.CancelledError):
        # The runtime cancels the call when Connect-Timeout-Ms runs out, or the client left.
        return "DEADLINE_EXCEEDED" if _past_deadline(ctx) else "CANCELLED"
    return "UNKNOWN"


class Observing:
    """Counts, times and logs every call as the gRPC door's ObservingInterceptor does, labelled connect."""

    def __init__(self) -> None:
        self._recorders: dict[str, tuple[Any, Any]] = {}

    def _recorder(self, ctx: RequestContext[Any, Any]) -> tuple[Any, Any]:
        name = ctx.method.name
        found = self._recorders.get(name)
        if found is None:
            found = self._recorders[name] = call_recorder(f"/{ctx.method.service_name}/{name}", PROTOCOL)
        return found

    async def intercept_unary(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]], request: Any, ctx: Any
    ) -> Any:
        done, _ = self._recorder(ctx)
        started = time.perf_counter()
        try:
            response = await call_next(request, ctx)
        except BaseException as exc:
            _log_unexpected(exc, ctx)
            done(request, None, _code_of(exc, ctx), started)
            raise
        done(request, response, "OK", started)
        return response

    async def intercept_server_stream(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]], request: Any, ctx: Any
    ) -> AsyncIterator[Any]:
        done, summarise = self._recorder(ctx)
        started = time.perf_counter()
        sent: list[Any] = []
        code = "UNKNOWN"
        try:
            async for response in call_next(request, ctx):
                sent.append(None if summarise is None else summarise(response))
                yield response
            code = "OK"
        except GeneratorExit:
            code = "CANCELLED"  # the client went away mid-stream
            raise
        except BaseException as exc:
            _log_unexpected(exc, ctx)
            code = _code_of(exc, ctx)
            raise
        finally:
            done(request, sent, code, started)


def _log_unexpected(exc: BaseException, ctx: RequestContext[Any, Any]) -> None:
    # The servicer turns its failures into Connect errors; anything else is logged as outcomes.py
    # logs failures (type and stack, never the text, which may quote case content).
    if isinstance(exc, Exception) and not isinstance(exc, ConnectError):
        log_failure(ctx.method.name, exc)


# The span of the call in this request's task (set by Spanning.on_start, read by Annotating).
_CALL_SPAN: contextvars.ContextVar[Any] = contextvars.ContextVar("call_span", default=None)


class Spanning:
    """The call's server span (tracing.py), first of all: calls refused by authentication have one too.

    A metadata interceptor, so the runtime still runs the leading ones before reading the body.
    """

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    async def on_start(self, ctx: RequestContext[Any, Any]) -> Any:
        path = f"{ctx.method.service_name}/{ctx.method.name}"
        if not traced(path):
            return None
        span = self._tracing.start(path, CONNECT, ctx.request_headers)
        _CALL_SPAN.set(span)
        return span

    async def on_end(self, span: Any, ctx: RequestContext[Any, Any], error: Exception | None) -> None:
        if span is None:
            return
        code = "OK" if error is None else _code_of(error, ctx)
        if code == "CANCELLED" and _past_deadline(ctx):
            code = "DEADLINE_EXCEEDED"  # the runtime cancels the call when Connect-Timeout-Ms runs out
        finish(span, CONNECT, code, error)


class Annotating:
    """Puts the ruleset and version the call answered on its span (nothing else of the answer)."""

    async def intercept_unary(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]], request: Any, ctx: Any
    ) -> Any:
        response = await call_next(request, ctx)
        span = _CALL_SPAN.get()
        if span is not None:
            annotate(span, response)
        return response

    async def intercept_server_stream(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]], request: Any, ctx: Any
    ) -> AsyncIterator[Any]:
        answered: list[tuple[str, str]] = []
        try:
            async for response in call_next(request, ctx):
                item = batch_item(response)
                if item is not None:
                    answered.append(item)
                yield response
        finally:
            span = _CALL_SPAN.get()
            if span is not None:
                annotate_batch(span, answered)


def connect_interceptors(clients: ClientRegistry | None, limits: Limits, tracing: Tracing | None = None) -> list[Any]:
    """The interceptors in the gRPC door's order: the span (when tracing), strangers refused, then
    overload, limits, observing."""
    interceptors: list[Any] = [Spanning(tracing)] if tracing is not None else []
    interceptors += [Authenticating(clients)] if clients is not None else []
    interceptors += [Admitting(limits.max_concurrent_rpcs), Limiting(limits), Observing()]
    return [*interceptors, Annotating()] if tracing is not None else interceptors

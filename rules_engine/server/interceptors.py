"""gRPC server interceptor: counts and times every call by method and final status, logs evaluations.

The final status is read from the context after the behaviour returns or raises, so it is
right for aborts (`context.abort` sets the code, then raises) and for server-streaming calls
(recorded when the stream ends, fails or is closed). Per-case outcomes (ok, invalid, error)
are counted here too because only here is every one of them seen: cases refused by the
servicer never reach the engine, and a batch answers each case in its own message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from rules_engine import metrics
from rules_engine.logs import log_fields

log = logging.getLogger(__name__)

EVALUATE = "/rules_engine.v1.RulesEngineService/Evaluate"
EVALUATE_BATCH = "/rules_engine.v1.RulesEngineService/EvaluateBatch"
# A case the client got wrong; every other failure is ours (or the store's).
_INVALID_CODES = frozenset({"INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED"})

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
# Called once per call with the request (None for client streaming), the response (for a
# stream: what `summarise` made of each message sent), the final status code name and the
# seconds taken.
Finish = Callable[[Any, Any, str, float], None]
Summarise = Callable[[Any], Any]


def outcome(code: str) -> str:
    if code == "OK":
        return "ok"
    return "invalid" if code in _INVALID_CODES else "error"


def status_code(context: grpc.ServicerContext, default: str) -> str:
    """The call's gRPC status code name so far, or `default` when none is set yet."""
    # None unless the servicer set a code or aborted; types-grpcio lacks this (since grpc 1.38) method.
    code = context.code()  # type: ignore[attr-defined]
    return default if code is None else code.name


class WrappingInterceptor(grpc.ServerInterceptor):
    """Wraps each method's handler once and hands out the wrapper for every later call.

    gRPC asks interceptors for a handler on every call; building wrappers once keeps the
    per-call cost to a dict lookup. Unknown methods (no handler) pass through.
    """

    def __init__(self) -> None:
        # Keyed by method path: only registered methods get here, so the dict stays small.
        self._handlers: dict[str, tuple[Handler, Handler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        path = handler_call_details.method
        cached = self._handlers.get(path)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(path, handler)
        self._handlers[path] = (handler, wrapped)
        return wrapped

    def wrap(self, path: str, handler: Handler) -> Handler:
        """The handler to use for `path`; `handler` itself to leave the method alone."""
        raise NotImplementedError


class ObservingInterceptor(WrappingInterceptor):
    """Counts, times and logs every call of every registered method."""

    def wrap(self, path: str, handler: Handler) -> Handler:
        return _wrap(path, handler)


def call_recorder(path: str, protocol: str) -> tuple[Finish, Summarise | None]:
    """What one method records on one door (`protocol` "grpc" or "connect", the metrics label).

    Returns `done(request, answer, code, started)`, to call once per call with the gRPC code
    name and the `time.perf_counter()` it started at, and for the batch the summariser of each
    streamed message (`answer` is then the list of summaries). The HTTP door (server/http_interceptors.py)
    records through this too, so both doors count and log alike.
    """
    service, _, method = path.lstrip("/").rpartition("/")
    recorder = metrics.GrpcMethodMetrics(service, method, protocol)
    finish: Finish = _finish_other(method)
    summarise: Summarise | None = None
    if path == EVALUATE:
        finish = _finish_evaluate
    elif path == EVALUATE_BATCH:
        finish, summarise = _finish_batch, _batch_outcome

    def done(request: Any, answer: Any, code: str, started: float) -> None:
        seconds = time.perf_counter() - started
        recorder.handled(code, seconds)
        finish(request, answer, code, seconds)

    return done, summarise


def _wrap(path: str, handler: Handler) -> Handler:
    done, summarise = call_recorder(path, "grpc")
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, done), **serializers)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_streaming(handler.unary_stream, done, summarise), **serializers)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _unary(handler.stream_unary, done, unary_request=False), **serializers
        )
    if handler.stream_stream is not None:
        behaviour = _streaming(handler.stream_stream, done, summarise, unary_request=False)
        return grpc.stream_stream_rpc_method_handler(behaviour, **serializers)
    return handler


def _unary(behaviour: Callable[[Any, grpc.ServicerContext], Any], done: Finish, unary_request: bool = True) -> Any:
    def observed(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        seen = request if unary_request else None
        try:
            response = behaviour(request, context)
        except BaseException:
            done(seen, None, status_code(context, "UNKNOWN"), started)
            raise
        done(seen, response, status_code(context, "OK"), started)
        return response

    return observed


def _streaming(
    behaviour: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
    done: Finish,
    summarise: Summarise | None,
    unary_request: bool = True,
) -> Any:
    def observed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started = time.perf_counter()
        seen = request if unary_request else None
        sent: list[Any] = []
        code = "UNKNOWN"
        try:
            for response in behaviour(request, context):
                # A summary, not the message: a batch's answers are not kept alive until it ends.
                sent.append(None if summarise is None else summarise(response))
                yield response
            code = status_code(context, "OK")
        except GeneratorExit:
            code = status_code(context, "CANCELLED")  # the client went away mid-stream
            raise
        except BaseException:
            code = status_code(context, "UNKNOWN")
            raise
        finally:
            done(seen, sent, code, started)

    return observed


# -- what each method records beyond the call ----------------------------------------------


def _finish_evaluate(request: Any, response: Any, code: str, seconds: float) -> None:
    duration_ms = round(seconds * 1000, 3)
    if code == "OK" and response is not None:
        metrics.count_evaluation(response.ruleset, "ok")
        if not log.isEnabledFor(logging.INFO):
            return
        fields = {
            "method": "Evaluate",
            "code": code,
            "decision_id": response.decision_id,
            "case_id": response.case_id,
            "ruleset": response.ruleset,
            "version": response.ruleset_version,
            "flags": len(response.flags),
            "shadow_flags": len(response.shadow_flags),
            "duration_ms": duration_ms,
        }
        log_fields(log, logging.INFO, "case evaluated", fields)
        return
    # No case id: in a refused request it may be the field that was wrong.
    ruleset = metrics.ruleset_label(getattr(request, "ruleset", ""))
    metrics.count_evaluation(ruleset, outcome(code))
    log.info(
        "case not evaluated",
        extra={"method": "Evaluate", "code": code, "ruleset": ruleset, "duration_ms": duration_ms},
    )


def _batch_outcome(response: Any) -> tuple[str | None, str]:
    if response.HasField("evaluation"):
        return response.evaluation.ruleset, "ok"
    return None, outcome(response.error.code)


def _finish_batch(request: Any, sent: Any, code: str, seconds: float) -> None:
    ruleset = metrics.ruleset_label(getattr(request, "ruleset", ""))
    errors = 0
    for answered, result in sent or ():
        errors += result != "ok"
        metrics.count_evaluation(answered or ruleset, result)
    if code != "OK":
        # The batch stopped: the cases not yet answered are counted once, as the batch's failure.
        metrics.count_evaluation(ruleset, outcome(code))
    log.info(
        "batch evaluated",
        extra={
            "method": "EvaluateBatch",
            "code": code,
            "ruleset": ruleset,
            "cases": len(getattr(request, "cases", ())),
            "count": len(sent or ()),
            "errors": errors,
            "duration_ms": round(seconds * 1000, 3),
        },
    )


def _finish_other(method: str) -> Finish:
    def finish(_request: Any, _response: Any, code: str, seconds: float) -> None:
        # Health checks and reflection are frequent and dull: only their failures are logged.
        if code != "OK":
            log.info("call failed", extra={"method": method, "code": code, "duration_ms": round(seconds * 1000, 3)})

    return finish

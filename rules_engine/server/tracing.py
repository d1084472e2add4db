"""OpenTelemetry traces on both doors: one server span per call, off unless the OTEL_* variables ask.

Turning it on (read once per worker process, by `from_environment`):
- `OTEL_TRACES_EXPORTER` set to anything but `none` (`otlp`, `console`, or an exporter another
  package registers), or
- `OTEL_TRACES_EXPORTER` unset and `OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set (then `otlp`);
- `OTEL_SDK_DISABLED=true` keeps it off whatever else is set.
Everything else (endpoint, headers, certificates, protocol, sampler, resource, batch sizes) is
the SDK's, from the standard variables: the exporters are picked by the SDK's own
environment-driven configuration (`otlp` is OTLP over gRPC unless `OTEL_EXPORTER_OTLP_PROTOCOL`
says otherwise; only the gRPC OTLP exporter is installed). Off, no tracer provider is made and
no interceptor is added: the hot path is what it was.

The span: named by the RPC (`rules_engine.v1.RulesEngineService/Evaluate`), kind SERVER, its
parent the caller's W3C `traceparent` (gRPC metadata or HTTP header, through the global
propagator, `OTEL_PROPAGATORS`), with `rpc.system` (`grpc` | `connect_rpc`), `rpc.service`,
`rpc.method`, the status (`rpc.grpc.status_code` on the gRPC door, `rpc.connect_rpc.error_code`
on a Connect error, and `rpc.response.status_code`, the gRPC code name, on both), and for
evaluations `rules_engine.ruleset` and `rules_engine.ruleset_version` from what the call
answered. Nothing else: no case id, no facts, no request or response bodies, no exception text
(an exception is named by its type only, in `error.type`, as the logs do). That is why these are
our own interceptors and not opentelemetry-instrumentation-grpc's or connectrpc-otel's: both
record the exception's message on the span, and the gRPC one misses the code of
`abort_with_status` (every refusal with field details).

Only RulesEngineService's methods are traced; health checks and reflection are not.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from rules_engine.errors import StartupError
from rules_engine.server.interceptors import WrappingInterceptor, status_code

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from rules_engine.server.interceptors import Handler

log = logging.getLogger(__name__)

SERVICE_NAME = "rules_engine.v1.RulesEngineService"
DEFAULT_SERVICE_NAME = "rules-engine"  # the resource's service.name unless OTEL_SERVICE_NAME says
GRPC = "grpc"
CONNECT = "connect_rpc"
RULESET = "rules_engine.ruleset"
RULESET_VERSION = "rules_engine.ruleset_version"

# Server span status (OpenTelemetry's RPC conventions): an error only for the codes that are the
# server's fault; a refusal of the caller's request leaves the status unset.
_SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})
_GRPC_NUMBERS = {code.name: code.value[0] for code in grpc.StatusCode}


# -- set-up, once per worker ---------------------------------------------------------------


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The trace exporters the variables ask for (SDK names), empty when tracing stays off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = environ.get("OTEL_TRACES_EXPORTER")
    if names is None:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ["otlp"] if endpoint else []
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    return [] if chosen in ([], ["none"]) else chosen


def from_environment() -> TracerProvider | None:
    """A tracer provider exporting as the OTEL_* variables say, or None when they do not ask for traces.

    Not installed globally (`install` does that); a setting the SDK cannot meet (an exporter
    that is not installed, an unknown OTLP protocol) is a StartupError naming the variable.
    """
    names = exporter_names(os.environ)
    if not names:
        return None
    # The SDK's own environment-driven choice of exporters (what opentelemetry-instrument uses),
    # for traces only (its metrics and logs exporters would default to OTLP too). Private names:
    # the SDK is pinned, and tests/server/test_tracing.py covers them.
    from opentelemetry.sdk._configuration import _get_exporter_entry_point, _import_exporters
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    try:
        exporters, _, _ = _import_exporters([_get_exporter_entry_point(name, "traces") for name in names], [], [])
    except RuntimeError as exc:
        raise StartupError(
            f"cannot export traces: {exc} (OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_PROTOCOL; "
            "the OTLP exporter installed is opentelemetry-exporter-otlp-proto-grpc, protocol grpc)"
        ) from None
    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    # Sampler (OTEL_TRACES_SAMPLER), span limits and the resource's other attributes: the SDK's.
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": DEFAULT_SERVICE_NAME}))
    for exporter in exporters.values():
        provider.add_span_processor(BatchSpanProcessor(exporter()))
    return provider


def install() -> Tracing | None:
    """Tracing for this worker process as the variables say (None when off), its provider made global."""
    provider = from_environment()
    if provider is None:
        return None
    trace.set_tracer_provider(provider)
    log.info("tracing on", extra={"exporters": ",".join(exporter_names(os.environ))})
    return Tracing(provider)


# -- the span of one call ------------------------------------------------------------------


class Tracing:
    """Starts and ends the server span of each traced call, for either door."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("rules_engine.server")

    def shutdown(self) -> None:
        """Export what is left (the SDK also does at exit)."""
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()

    def start(self, path: str, system: str, headers: Mapping[str, Any]) -> Span:
        """The span of one call to `path` ("/service/Method" or "service/Method"), parented by the
        caller's trace context in `headers`."""
        name = path.lstrip("/")
        service, _, method = name.rpartition("/")
        return self._tracer.start_span(
            name,
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": system, "rpc.service": service, "rpc.method": method},
        )

    def grpc_interceptor(self) -> TracingInterceptor:
        return TracingInterceptor(self)


def traced(path: str) -> bool:
    return path.lstrip("/").startswith(f"{SERVICE_NAME}/")


def annotate(span: Span, answer: Any) -> None:
    """The ruleset and version an Evaluate answered (or each evaluation of a batch: a list, or a
    summary as the interceptors keep them), and nothing else of the answer."""
    if answer is None:
        return
    ruleset = getattr(answer, "ruleset", None)
    version = getattr(answer, "ruleset_version", None)
    if isinstance(ruleset, str) and isinstance(version, str):
        span.set_attributes({RULESET: ruleset, RULESET_VERSION: version})


def annotate_batch(span: Span, evaluations: list[tuple[str, str]]) -> None:
    if not evaluations:
        return
    rulesets = sorted({ruleset for ruleset, _ in evaluations})
    versions = sorted({version for _, version in evaluations})
    # One value in the usual case; a reload during the batch gives both versions.
    span.set_attribute(RULESET, rulesets[0] if len(rulesets) == 1 else rulesets)
    span.set_attribute(RULESET_VERSION, versions[0] if len(versions) == 1 else versions)


def batch_item(response: Any) -> tuple[str, str] | None:
    """(ruleset, version) of one batch answer, None for a case answered with an error."""
    if response.HasField("evaluation"):
        return response.evaluation.ruleset, response.evaluation.ruleset_version
    return None


def finish(span: Span, system: str, code: str, error: BaseException | None = None) -> None:
    """End the span with the call's final gRPC code name (and an error's type, never its text)."""
    attributes: dict[str, Any] = {"rpc.response.status_code": code}
    if system == GRPC:
        attributes["rpc.grpc.status_code"] = _GRPC_NUMBERS.get(code, 2)
    elif code != "OK":
        attributes["rpc.connect_rpc.error_code"] = _connect_name(code)
    if error is not None and code in _SERVER_ERRORS:
        attributes["error.type"] = type(error).__qualname__
    span.set_attributes(attributes)
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code))
    span.end()


def _connect_name(code: str) -> str:
    return "canceled" if code == "CANCELLED" else code.lower()


# -- the gRPC door -------------------------------------------------------------------------


class TracingInterceptor(WrappingInterceptor):
    """The gRPC door's spans; first in the chain, so calls refused by authentication have one too."""

    def __init__(self, tracing: Tracing) -> None:
        super().__init__()
        self._tracing = tracing

    def wrap(self, path: str, handler: Handler) -> Handler:
        if not traced(path):
            return handler
        serializers = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(path, handler.unary_unary), **serializers)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._streaming(path, handler.unary_stream), **serializers)
        return handler  # the service has no client-streaming methods

    def _start(self, path: str, context: grpc.ServicerContext) -> Span:
        return self._tracing.start(path, GRPC, dict(context.invocation_metadata()))

    def _unary(self, path: str, behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Any:
        def traced_call(request: Any, context: grpc.ServicerContext) -> Any:
            span = self._start(path, context)
            try:
                with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                    response = behaviour(request, context)
            except BaseException as exc:
                finish(span, GRPC, status_code(context, "UNKNOWN"), exc)
                raise
            annotate(span, response)
            finish(span, GRPC, status_code(context, "OK"))
            return response

        return traced_call

    def _streaming(self, path: str, behaviour: Callable[[Any, grpc.ServicerContext], Iterator[Any]]) -> Any:
        def traced_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            # Not made current: a generator may be resumed where another context is.
            span = self._start(path, context)
            answered: list[tuple[str, str]] = []
            code, error = "UNKNOWN", None
            try:
                for response in behaviour(request, context):
                    item = batch_item(response)
                    if item is not None:
                        answered.append(item)
                    yield response
                code = status_code(context, "OK")
            except GeneratorExit:
                code = status_code(context, "CANCELLED")
                raise
            except BaseException as exc:
                code, error = status_code(context, "UNKNOWN"), exc
                raise
            finally:
                annotate_batch(span, answered)
                finish(span, GRPC, code, error)

        return traced_stream

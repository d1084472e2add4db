"""Prometheus metrics; the only module that imports prometheus_client.

Every metric is defined here and the rest of the code calls the small functions below.
Labels only ever carry names from our own configuration (ruleset, rule, operation, gRPC
method) and fixed vocabularies (outcome, severity, state, status code): never request text.

With several worker processes, set PROMETHEUS_MULTIPROC_DIR before the process starts: the
parent calls `clean_multiprocess_dir()` once at start-up, each worker writes its own files
there, and `serve_metrics` exposes their sum through MultiProcessCollector.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from threading import Thread
from typing import TYPE_CHECKING, Any, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client import exposition as _exposition
from prometheus_client.registry import REGISTRY

from rules_engine.errors import RulesEngineError, StoreUnavailableError

if TYPE_CHECKING:
    from rules_engine.engine.registry import ReloadResult
    from rules_engine.engine.results import Evaluation

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Fast: one case evaluates in about a millisecond; the tail is a store round trip or a big case.
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

EVALUATIONS = Counter(
    "rules_engine_evaluations",
    "Case evaluations answered, by ruleset and outcome (ok, invalid, error)",
    ["ruleset", "outcome"],
)
EVALUATION_SECONDS = Histogram(
    "rules_engine_evaluation_seconds",
    "Time to evaluate one case, from facts to explained flags (store included)",
    ["ruleset"],
    buckets=_SECONDS,
)
FLAGS = Counter(
    "rules_engine_flags",
    "Flags raised by active rules, by ruleset, rule, severity and lifecycle state",
    ["ruleset", "rule", "severity", "state"],
)
SHADOW_FLAGS = Counter(
    "rules_engine_shadow_flags",
    "Flags shadow rules would have raised (reported for review, not for action)",
    ["ruleset", "rule"],
)
ENGINE_FALLBACKS = Counter(
    "rules_engine_engine_fallbacks",
    "Evaluations answered by the reference evaluator because the matching engine failed",
    ["ruleset"],
)
RULESET_INFO = Gauge(
    "rules_engine_ruleset_info",
    "The ruleset version each process serves (1 while served)",
    ["ruleset", "version"],
    # Only live workers' versions: a dead worker's files are dropped by mark_process_dead.
    multiprocess_mode="livemax",
)
RELOADS = Counter(
    "rules_engine_ruleset_reloads",
    "Ruleset reloads by ruleset and result (loaded, unchanged, refused, removed)",
    ["ruleset", "result"],
)
LAST_RELOAD = Gauge(
    "rules_engine_ruleset_last_reload_success_timestamp_seconds",
    "Unix time of the last reload that left the ruleset serving a valid version (loaded or unchanged)",
    ["ruleset"],
    multiprocess_mode="max",
)
STORE_SECONDS = Histogram(
    "rules_engine_store_operation_seconds",
    "Case store operations by operation, with their latency (the _count is the number of operations)",
    ["operation"],
    buckets=_SECONDS,
)
STORE_ERRORS = Counter(
    "rules_engine_store_errors",
    "Case store operations that failed (store unreachable, or an unexpected error)",
    ["operation"],
)
GRPC_REQUESTS = Counter(
    "rules_engine_grpc_requests",
    "gRPC calls handled, by service, method and final status code",
    ["service", "method", "code"],
)
GRPC_SECONDS = Histogram(
    "rules_engine_grpc_request_seconds",
    "Time to handle a gRPC call, until its last response message or its status",
    ["service", "method"],
    buckets=_SECONDS,
)

# Rulesets this process has loaded: a requested name becomes a label only if it is one of them.
_known_rulesets: set[str] = set()
_served_versions: dict[str, str] = {}
UNKNOWN = "unknown"
OUTCOMES = ("ok", "invalid", "error")
STATELESS = "stateless"
T = TypeVar("T", bound=type)


# -- evaluations -------------------------------------------------------------------------


def ruleset_label(requested: str) -> str:
    """A requested ruleset name fit for a label: a loaded name, the only one when none is given, else "unknown"."""
    if requested in _known_rulesets:
        return requested
    if not requested and len(_known_rulesets) == 1:
        return next(iter(_known_rulesets))
    return UNKNOWN


def count_evaluation(ruleset: str, outcome: str) -> None:
    """Count one answered case; `ruleset` must already be a label (see ruleset_label)."""
    _child(EVALUATIONS, ruleset, outcome).inc()


def record_evaluation(evaluation: Evaluation, seconds: float) -> None:
    """Latency, flags, shadow-rule hits and engine fallbacks of one successful evaluation."""
    name = evaluation.ruleset
    _child(EVALUATION_SECONDS, name).observe(seconds)
    for flag in evaluation.flags:
        # No lifecycle when the store could not record the evaluation.
        record = evaluation.lifecycle.get(flag.rule_id)
        state = STATELESS if record is None else record.state.value.lower()
        _child(FLAGS, name, flag.rule_id, flag.severity.name.lower(), state).inc()
    for flag in evaluation.shadow_flags:
        _child(SHADOW_FLAGS, name, flag.rule_id).inc()
    if evaluation.engine_fallback:
        ENGINE_FALLBACKS.labels(name).inc()


# Metric children by labels: labels() takes a lock and builds a key on every call, and an
# evaluation counts a dozen flags. Bounded as the series are: rulesets x rules x states.
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def instrument_evaluations(cls: T) -> T:
    """Class decorator for the engine: time each method in EVALUATING_METHODS and record what it returned."""
    for name in EVALUATING_METHODS:
        method = cls.__dict__.get(name)
        if callable(method):
            setattr(cls, name, _timed_evaluation(method))
    return cls


# The engine's methods that return an Evaluation: with and without stored history.
EVALUATING_METHODS = ("evaluate", "evaluate_history")


def _timed_evaluation(method: Callable[..., Evaluation]) -> Callable[..., Evaluation]:
    @wraps(method)
    def timed(*args: Any, **kwargs: Any) -> Evaluation:
        started = time.perf_counter()
        evaluation = method(*args, **kwargs)
        record_evaluation(evaluation, time.perf_counter() - started)
        return evaluation

    return timed


# -- rulesets ----------------------------------------------------------------------------


def record_reload(result: ReloadResult) -> None:
    """Registry's on_reload callback: count the result, keep ruleset info and last-success time current."""
    name = result.name
    RELOADS.labels(name, result.outcome).inc()
    if result.outcome in ("loaded", "unchanged"):
        if name not in _known_rulesets:
            _known_rulesets.add(name)
            # Series at zero from the start, so rate() and alerts see them before the first event.
            for outcome in OUTCOMES:
                EVALUATIONS.labels(name, outcome)
            ENGINE_FALLBACKS.labels(name)
        LAST_RELOAD.labels(name).set(time.time())
        previous = _served_versions.get(name)
        if previous != result.version:
            if previous is not None:
                RULESET_INFO.labels(name, previous).set(0)
            RULESET_INFO.labels(name, result.version).set(1)
            _served_versions[name] = result.version
    elif result.outcome == "removed":
        _known_rulesets.discard(name)
        previous = _served_versions.pop(name, None)
        if previous is not None:
            RULESET_INFO.labels(name, previous).set(0)


# -- case store --------------------------------------------------------------------------


@contextmanager
def observe_store(operation: str) -> Iterator[None]:
    """Time one store operation; count it as an error if the store failed (not for domain answers)."""
    started = time.perf_counter()
    try:
        yield
    except StoreUnavailableError:
        STORE_ERRORS.labels(operation).inc()
        raise
    except RulesEngineError:
        raise  # e.g. FlagNotFoundError: the store answered
    except Exception:
        STORE_ERRORS.labels(operation).inc()
        raise
    finally:
        STORE_SECONDS.labels(operation).observe(time.perf_counter() - started)


# merge_facts is left out: it calls merge_case, which is counted.
STORE_OPERATIONS = (
    "merge_case",
    "load_case",
    "record_flags",
    "record_evaluation",
    "read_merged",
    "commit_evaluation",
    "delete_case",
    "acknowledge",
    "append_decision",
    "decisions",
    "chronology",
    "retention_left",
    "ping",
)


def instrument_store(cls: T) -> T:
    """Class decorator: each public store operation the class defines runs inside observe_store."""
    for operation in STORE_OPERATIONS:
        method = cls.__dict__.get(operation)
        if callable(method):
            setattr(cls, operation, _observed(operation, method))
    return cls


def _observed(operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(method)
    def observed(*args: Any, **kwargs: Any) -> Any:
        with observe_store(operation):
            return method(*args, **kwargs)

    return observed


# -- gRPC ----------------------------------------------------------------------------------


class GrpcMethodMetrics:
    """The label children of one gRPC method, resolved once so a call costs two lock-free lookups."""

    def __init__(self, service: str, method: str) -> None:
        self._service = service
        self._method = method
        self.seconds = GRPC_SECONDS.labels(service, method)
        self._handled: dict[str, Counter] = {}

    def handled(self, code: str, seconds: float) -> None:
        counter = self._handled.get(code)
        if counter is None:
            counter = self._handled[code] = GRPC_REQUESTS.labels(self._service, self._method, code)
        counter.inc()
        self.seconds.observe(seconds)


# -- exposition ----------------------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV, "")
    return Path(value) if value else None


def clean_multiprocess_dir() -> None:
    """Empty the multiprocess directory; the parent calls it once, before any worker records a value."""
    directory = multiprocess_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)


def mark_process_dead(pid: int) -> None:
    """The parent calls this when a worker exits, so its live gauges (ruleset info) stop counting."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def exposition_registry() -> CollectorRegistry:
    """The registry to expose: every worker's files in multiprocess mode, else this process's metrics."""
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry


def render() -> bytes:
    """The text exposition of exposition_registry()."""
    return generate_latest(exposition_registry())


def serve_metrics(port: int, host: str = "0.0.0.0") -> tuple[WSGIServer, Thread] | None:
    """Expose /metrics on its own HTTP port (0 turns it off); returns the server to shut down."""
    if not port:
        return None
    server, thread = _exposition.start_http_server(port, addr=host, registry=exposition_registry())
    return server, thread

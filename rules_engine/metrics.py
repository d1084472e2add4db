"""Prometheus metrics; the only module that imports prometheus_client.

Every metric is defined here and the rest of the code calls the small functions below.
Labels only ever carry names from our own configuration (ruleset, rule, operation, gRPC
method) and fixed vocabularies (outcome, severity, state, status code): never request text.

With several worker processes, set PROMETHEUS_MULTIPROC_DIR before the process starts: the
parent calls `clean_multiprocess_dir()` once at start-up, each worker writes its own files
there, and `serve_metrics` exposes their sum through MultiProcessCollector.

The counters and histograms an evaluation touches (evaluations, flags, RPCs and their latency,
cache lookups) are tallied in memory and written to their series at most FLUSH_SECONDS later
(`Tally`): in multiprocess mode every inc() takes prometheus_client's process-wide lock and
writes the mmap'd file, and a call counts one series per flag. A scrape served by the process
that counted sees every count (the tally is flushed first); a worker's counts reach the files
the parent exposes within FLUSH_SECONDS, and at its exit.

Imports nothing above the root: the engine and the store call these functions where they
measure, with plain values (names, outcomes, seconds).
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from threading import Lock, Thread
from types import TracebackType
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client import exposition as _exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import REGISTRY, Collector

from rules_engine.errors import RulesEngineError, StoreUnavailableError

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# How stale a worker's counters may be in the multiprocess files: far below any scrape interval.
FLUSH_SECONDS = 0.5


class Tally:
    """Counter increments and histogram observations kept in memory and written to their series
    at once (one inc() per counter series, one per histogram bucket), by a daemon thread every
    `seconds`, before this process's registry is collected, and at exit.

    An add() is a dict update under an uncontended lock (well under a microsecond); the inc() it
    stands for costs about 2 µs in multiprocess mode, where every handler thread queues on one
    lock, and a histogram's observe() twice that.
    """

    _lock: Lock
    _flushing: Lock
    _counts: dict[Any, float]
    _observed: dict[Any, list[float]]
    _thread: Thread | None

    def __init__(self, seconds: float = FLUSH_SECONDS) -> None:
        self._seconds = seconds
        self._forget()
        # A forked child starts with nothing pending and no flusher (threads do not survive fork).
        os.register_at_fork(after_in_child=self._forget)

    def add(self, series: Any, amount: float = 1) -> None:
        """`series.inc(amount)`, soon."""
        with self._lock:
            self._counts[series] = self._counts.get(series, 0) + amount
            if self._thread is None:
                self._start()

    def add_each(self, series: Iterable[Any]) -> None:
        """`inc()` of each of `series` (a series listed twice counts twice), soon."""
        with self._lock:
            counts = self._counts
            for one in series:
                counts[one] = counts.get(one, 0) + 1
            if self._thread is None:
                self._start()

    def observe(self, histogram: Any, value: float, counted: Iterable[Any] = ()) -> None:
        """`histogram.observe(value)` (a labelled child) and `inc()` of each of `counted`, soon:
        a call's latency and its counts under one lock."""
        bounds = getattr(histogram, "_upper_bounds", None)
        if bounds is None:  # not the prometheus_client this was written against: no tally
            histogram.observe(value)
            self.add_each(counted)
            return
        bucket = bisect.bisect_left(bounds, value)  # the first bound >= value, as observe() picks
        with self._lock:
            pending = self._observed.get(histogram)
            if pending is None:
                pending = self._observed[histogram] = [0.0] * (len(bounds) + 1)
            pending[bucket] += 1
            pending[-1] += value  # the sum
            counts = self._counts
            for one in counted:
                counts[one] = counts.get(one, 0) + 1
            if self._thread is None:
                self._start()

    def flush(self) -> None:
        # One flush at a time: a scrape that flushes while the thread does waits for its writes.
        with self._flushing:
            self._write()

    def _write(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            observed, self._observed = self._observed, {}
        for series, amount in counts.items():
            series.inc(amount)
        for histogram, pending in observed.items():
            # The buckets hold plain counts (the exposition sums them up); sum and buckets are
            # prometheus_client's Histogram internals, checked by tests/ops/test_metrics_tally.py.
            histogram._sum.inc(pending[-1])
            for bucket, amount in enumerate(pending[:-1]):
                if amount:
                    histogram._buckets[bucket].inc(amount)

    def _start(self) -> None:
        self._thread = Thread(target=self._run, name="metrics-tally", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self._seconds)
            try:
                self.flush()
            except Exception:  # a full disk must not stop counting for the life of the process
                log.exception("metrics not written")

    def _forget(self) -> None:
        self._lock = Lock()
        self._flushing = Lock()
        self._counts = {}
        self._observed = {}
        self._thread = None


class _FlushBeforeCollect(Collector):
    """Registered ahead of every metric below, so a collection of REGISTRY sees the tallied counts."""

    def collect(self) -> Iterator[Metric]:
        _tally.flush()
        return iter(())


_tally = Tally()
REGISTRY.register(_FlushBeforeCollect())
atexit.register(_tally.flush)


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
# Both doors count here (the names are older than the HTTP door): `protocol` is "grpc" for the
# gRPC port and "connect" for the HTTP port (Connect, gRPC-Web); `code` is the gRPC code name
# on both (OK, INVALID_ARGUMENT, ...), so one alert covers both.
GRPC_REQUESTS = Counter(
    "rules_engine_grpc_requests",
    "RPCs handled, by service, method, final status code and protocol (grpc, connect)",
    ["service", "method", "code", "protocol"],
)
GRPC_SECONDS = Histogram(
    "rules_engine_grpc_request_seconds",
    "Time to handle an RPC, until its last response message or its status, by protocol (grpc, connect)",
    ["service", "method", "protocol"],
    buckets=_SECONDS,
)
PROTOCOLS = ("grpc", "connect")

# Rulesets this process has loaded: a requested name becomes a label only if it is one of them.
_known_rulesets: set[str] = set()
_served_versions: dict[str, str] = {}
UNKNOWN = "unknown"
OUTCOMES = ("ok", "invalid", "error")
STATELESS = "stateless"


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
    _tally.add(_child(EVALUATIONS, ruleset, outcome))


def record_evaluation(
    ruleset: str,
    seconds: float,
    flags: Iterable[tuple[str, str, str | None]],
    shadow_rules: Iterable[str],
    fallback: bool,
) -> None:
    """One answered evaluation: its latency, each flag as (rule id, severity name, lifecycle
    state, None when the store did not record it), the shadow rules that held, and whether
    the reference evaluator answered because the matcher failed."""
    children = []
    for rule_id, severity, state in flags:
        key = (ruleset, rule_id, severity, state)
        child = _flag_children.get(key)
        if child is None:
            labels = (ruleset, rule_id, severity.lower(), STATELESS if state is None else state.lower())
            child = _flag_children[key] = FLAGS.labels(*labels)
        children.append(child)
    for rule_id in shadow_rules:
        children.append(_child(SHADOW_FLAGS, ruleset, rule_id))
    _tally.observe(_child(EVALUATION_SECONDS, ruleset), seconds, children)
    if fallback:
        ENGINE_FALLBACKS.labels(ruleset).inc()


# Metric children by labels: labels() takes a lock and builds a key on every call, and an
# evaluation counts a dozen flags. Bounded as the series are: rulesets x rules x states.
_children: dict[tuple[Any, ...], Any] = {}
# Flag children by the values as given (before lower-casing them into labels).
_flag_children: dict[tuple[str, str, str, str | None], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


# -- rulesets ----------------------------------------------------------------------------


class Reload(Protocol):
    """What record_reload reads of a reload's result (the registry's ReloadResult)."""

    @property
    def name(self) -> str: ...

    @property
    def outcome(self) -> str: ...

    @property
    def version(self) -> str: ...


def record_reload(result: Reload) -> None:
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


def observe_store(operation: str) -> StoreOperation:
    """`with observe_store("merge_case"):` around one store operation: its latency, and an error
    count when the store failed (not for domain answers such as FlagNotFoundError)."""
    return StoreOperation(operation)


class StoreOperation:
    """The timer observe_store returns; its label children are resolved once per operation name (_child)."""

    __slots__ = ("_operation", "_started")

    def __init__(self, operation: str) -> None:
        self._operation = operation
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        operation = self._operation
        if isinstance(error, Exception) and (
            isinstance(error, StoreUnavailableError) or not isinstance(error, RulesEngineError)
        ):
            _child(STORE_ERRORS, operation).inc()
        _child(STORE_SECONDS, operation).observe(time.perf_counter() - self._started)


# -- RPCs (both doors) ---------------------------------------------------------------------


class GrpcMethodMetrics:
    """The label children of one RPC method on one door, resolved once so a call costs two lock-free lookups."""

    def __init__(self, service: str, method: str, protocol: str = "grpc") -> None:
        self._service = service
        self._method = method
        self._protocol = protocol
        self.seconds = GRPC_SECONDS.labels(service, method, protocol)
        self._handled: dict[str, Counter] = {}

    def handled(self, code: str, seconds: float) -> None:
        counter = self._handled.get(code)
        if counter is None:
            counter = self._handled[code] = GRPC_REQUESTS.labels(self._service, self._method, code, self._protocol)
        _tally.observe(self.seconds, seconds, (counter,))


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
    registry.register(_FlushBeforeCollect())  # this process's own counts first (one worker serves its own)
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


# -- the evaluation cache (engine/evaluation_cache.py) --------------------------------------

EVALUATION_CACHE = Counter(
    "rules_engine_evaluation_cache",
    "Evaluation cache lookups by result (hit: the evaluation was reused, miss: the case was evaluated)",
    ["result"],
)
_CACHE_RESULTS = {True: "hit", False: "miss"}
# Made at the first entry, not at import: a metric without labels opens its multiprocess file
# when it is made, and at import the parent has not made PROMETHEUS_MULTIPROC_DIR yet.
_cache_entries: list[Gauge] = []
_cache_entries_lock = Lock()


def start_evaluation_cache() -> None:
    """An evaluation cache was made: its series at zero, so rate() and dashboards see them at once."""
    for result in _CACHE_RESULTS.values():
        _child(EVALUATION_CACHE, result)
    set_evaluation_cache_size(0)


def count_evaluation_cache(hit: bool) -> None:
    _tally.add(_child(EVALUATION_CACHE, _CACHE_RESULTS[hit]))


def set_evaluation_cache_size(entries: int) -> None:
    """The entries the evaluation cache holds (the gauge rules_engine_evaluation_cache_entries)."""
    if not _cache_entries:
        with _cache_entries_lock:
            if not _cache_entries:
                _cache_entries.append(
                    Gauge(
                        "rules_engine_evaluation_cache_entries",
                        "Evaluations the cache holds (summed over the live worker processes)",
                        multiprocess_mode="livesum",
                    )
                )
    _cache_entries[0].set(entries)


# -- the compiled core (engine/native.py) -----------------------------------------------------

NATIVE_FALLBACKS = Counter(
    "rules_engine_native_fallbacks",
    "Evaluations the compiled core did not answer, so the Python engine did, by reason "
    "(unavailable: not built or switched off; ruleset: it uses what the core does not run; "
    "declined: a case the core does not accept in full, validated by the Python path; error: the core raised)",
    ["reason"],
)


def count_native_fallback(reason: str) -> None:
    _child(NATIVE_FALLBACKS, reason).inc()


# -- equality monitoring (store/equality.py) ---------------------------------------------------

EQUALITY_CASES = Counter(
    "rules_engine_equality_cases",
    "Cases newly counted by the equality monitoring counters, by outcome (evaluated, flagged, "
    "acknowledged, snoozed, resolved; any flag, each case once per ruleset version). Totals only: "
    "the counts by characteristic and group are in GetEqualityReport, suppressed, never here",
    ["outcome"],
)


_equality_children: dict[str, Any] = {}


def count_equality(outcomes: Iterable[str]) -> None:
    for outcome in outcomes:
        child = _equality_children.get(outcome)
        if child is None:
            child = _equality_children[outcome] = EQUALITY_CASES.labels(outcome)
        child.inc()

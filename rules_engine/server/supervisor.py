"""Worker processes: one serving process, or N sharing the port under a parent that restarts them.

Each worker is a whole server with its own engine (durable-rules never releases the GIL,
so processes, not threads, add throughput). Workers bind the same port with SO_REUSEPORT
and the kernel spreads connections across them. The parent imports no gRPC (gRPC does not
survive fork, so workers are spawned fresh), serves the aggregated Prometheus metrics,
restarts a worker that dies and passes SIGTERM and SIGHUP on to every worker.
"""

from __future__ import annotations

import errno
import gc
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from dataclasses import replace
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue
from types import FrameType
from typing import TYPE_CHECKING

from rules_engine.config import Settings, split_state_refusal
from rules_engine.errors import StartupError
from rules_engine.server.preflight import METRICS_PORT_REMEDY, port_in_use

if TYPE_CHECKING:
    from threading import Thread
    from wsgiref.simple_server import WSGIServer

log = logging.getLogger(__name__)

# A worker that dies sooner than this after starting is crash-looping: back off before
# the next start instead of spinning.
CRASH_LOOP_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0


def run_worker(settings: Settings) -> None:
    """Serve in this process until SIGTERM: load and test the rulesets, open the store, serve."""
    from rules_engine.engine.engine import Engine, open_case_store
    from rules_engine.engine.registry import Registry
    from rules_engine.metrics import record_reload
    from rules_engine.policy.compiler import compile_ruleset
    from rules_engine.server import tracing
    from rules_engine.server.server import serve_forever
    from rules_engine.server.watcher import Watcher
    from rules_engine.tools.ruletest import gate

    # Every version, the first included, must pass its own rule tests before it serves.
    registry = Registry(
        settings.rulesets,
        compile_ruleset,
        matcher=settings.matcher,
        gate=gate,
        on_reload=record_reload,
        default=settings.default_ruleset,
    )
    refusals = []
    for result in registry.reload():
        if result.outcome == "refused":
            refusals.append(f"{result.name}: {result.error.splitlines()[0]}")
            log.error(
                "ruleset refused at start-up",
                extra={"ruleset": result.name, "rule_file_error": result.error.splitlines()[0]},
            )
    if not registry.names():
        registry.close()
        first = f" ({refusals[0]})" if refusals else ""
        raise StartupError(
            f"no valid ruleset under {settings.rulesets}{first} (--rulesets / RULES_ENGINE_RULESETS); "
            f"see `rules-engine check {settings.rulesets}` and `rules-engine test {settings.rulesets}`"
        )
    if settings.default_ruleset and settings.default_ruleset not in registry.names():
        loaded = ", ".join(registry.names())
        registry.close()
        raise StartupError(
            f"the default ruleset {settings.default_ruleset!r} is not loaded (loaded: {loaded}) "
            "(--default-ruleset / RULES_ENGINE_DEFAULT_RULESET); name one of those"
        )
    engine = Engine(registry, evaluation_cache_size=settings.evaluation_cache_size)
    try:
        engine.store = open_case_store(settings)  # in-memory unless a Redis URL is set
        start_metrics(settings.metrics_port)
    except BaseException:
        engine.close()
        raise
    try:
        # Here, in the worker, never in the parent: the exporter's thread and connection are per process.
        traces = tracing.install()  # None unless the OTEL_* variables ask for traces
    except BaseException:
        engine.close()
        raise
    settle_garbage_collector()
    try:
        serve_forever(engine, settings, Watcher(settings.rulesets, registry.reload), traces)
    finally:
        engine.close()
        if traces is not None:
            traces.shutdown()  # the spans still waiting are exported


def start_metrics(port: int) -> tuple[WSGIServer, Thread] | None:
    """serve_metrics, with a taken port as a StartupError naming --metrics-port."""
    from rules_engine.metrics import serve_metrics

    try:
        return serve_metrics(port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(port, "--metrics-port", "RULES_ENGINE_METRICS_PORT", METRICS_PORT_REMEDY) from None
        raise StartupError(f"cannot serve metrics on port {port}: {exc.strerror} (--metrics-port)") from None


def settle_garbage_collector() -> None:
    """Move everything loaded so far out of the collector's sight and collect less often.

    Under load a full collection walked every long-lived object (compiled rulesets, modules,
    gRPC state) every few seconds for 40-90 ms with the GIL held: that was the p99 tail.
    Requests make little cyclic garbage, so rarer collections cost nothing in memory. Young
    collections every 10,000 allocations, not 50,000: a 50,000-object one held the GIL for
    20-40 ms on the benchmark machine, and p99 at half load went from about 5x the median to 3x.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def _worker_entry(settings: Settings, reasons: SimpleQueue[str]) -> None:
    from rules_engine.logs import configure_logging

    configure_logging(logging.INFO, background=True)
    try:
        run_worker(settings)
    except StartupError as exc:
        log.error("worker could not start", extra={"reason": str(exc)})
        reasons.put(str(exc))  # the parent says it once, as `serve` would for one process
        raise SystemExit(3) from None


class Supervisor:
    """Starts `count` workers, restarts those that die, and stops them all on SIGTERM or SIGINT."""

    def __init__(self, settings: Settings, count: int) -> None:
        # Workers share the port; the parent alone serves metrics, aggregated from every worker.
        self._worker_settings = replace(settings, metrics_port=0, reuse_port=True)
        self._settings = settings
        self._count = count
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, BaseProcess] = {}
        self._started: dict[int, float] = {}
        self._backoff = 1.0
        self._stopping = threading.Event()
        # Why a worker could not start; a worker that fails its first start stops the whole start.
        self._reasons: SimpleQueue[str] = self._context.SimpleQueue()
        self._restarted: set[int] = set()

    def run(self) -> int:
        from rules_engine.metrics import mark_process_dead

        metrics = start_metrics(self._settings.metrics_port)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            for slot in range(self._count):
                self._start(slot)
            while not self._stopping.is_set():
                for slot, process in list(self._workers.items()):
                    if process.is_alive():
                        continue
                    process.join()
                    if process.pid is not None:
                        mark_process_dead(process.pid)
                    if self._stopping.is_set():
                        break
                    if process.exitcode == 3 and slot not in self._restarted:
                        # It never served: a setting or the rulesets stop it, and would stop the next one too.
                        reason = self._reasons.get() if not self._reasons.empty() else "a worker could not start"
                        self._stop_all()
                        raise StartupError(reason)
                    log.warning("worker exited; restarting", extra={"pid": process.pid, "exit_code": process.exitcode})
                    if process.exitcode == 3 and time.monotonic() - self._started[slot] < CRASH_LOOP_SECONDS:
                        # A worker that cannot start (bad rulesets, port taken) will not start next time either.
                        self._stopping.wait(self._backoff)
                        self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)
                    self._start(slot)
                self._stopping.wait(0.2)
            return self._stop_all()
        finally:
            if metrics is not None:
                metrics[0].shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start(self, slot: int) -> None:
        if slot in self._workers:
            self._restarted.add(slot)
        process = self._context.Process(
            target=_worker_entry, args=(self._worker_settings, self._reasons), name=f"worker-{slot}"
        )
        process.start()
        self._workers[slot] = process
        self._started[slot] = time.monotonic()
        log.info("worker started", extra={"pid": process.pid})

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            for process in self._workers.values():
                if process.pid is not None and process.is_alive():
                    os.kill(process.pid, signal.SIGHUP)
            return
        self._stopping.set()

    def _stop_all(self) -> int:
        log.info("stopping workers")
        for process in self._workers.values():
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._settings.grace_seconds + 5
        for process in self._workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker did not stop in time; killing it", extra={"pid": process.pid})
                process.kill()
                process.join()
        log.info("stopped")
        return 0


def serve(settings: Settings, workers: int) -> int:
    """Run the service: in this process for one worker, under a Supervisor for more.

    Raises StartupError (one line saying which setting and what to do) when it cannot start.
    """
    from rules_engine.metrics import MULTIPROC_ENV, clean_multiprocess_dir

    if workers <= 1:
        clean_multiprocess_dir()
        run_worker(settings)  # a StartupError is `serve`'s to report
        return 0
    if (refusal := split_state_refusal(settings, workers)) is not None:  # `serve` refuses first
        raise StartupError(refusal)
    # Workers write their metrics to files the parent aggregates; the directory must exist
    # before any of them starts, and start empty.
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="rules-engine-metrics-")
    clean_multiprocess_dir()
    return Supervisor(settings, workers).run()

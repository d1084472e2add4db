"""The tally behind the hot counters and histograms: nothing lost, nothing changed, only later."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from rules_engine import metrics
from tests.ops.helpers import parse, value

ROOT = Path(__file__).resolve().parents[2]
BUCKETS = (0.001, 0.01, 0.1, 1.0)
# Under, on and between the bounds, past the last one, and zero.
VALUES = (0.0, 0.0005, 0.001, 0.002, 0.01, 0.05, 0.1, 0.99, 1.0, 2.5, 40.0)


def _histograms() -> tuple[CollectorRegistry, Histogram, Histogram]:
    registry = CollectorRegistry()
    labels = ["way"]
    histogram = Histogram("latency_seconds", "test", labels, buckets=BUCKETS, registry=registry)
    return registry, histogram.labels("direct"), histogram.labels("tallied")


def test_a_tallied_histogram_exposes_what_observe_would() -> None:
    registry, direct, tallied = _histograms()
    tally = metrics.Tally(seconds=3600)  # only flushed by hand here
    for amount in VALUES * 3:
        direct.observe(amount)
        tally.observe(tallied, amount)
    _, before = parse(generate_latest(registry).decode())
    assert value(before, "latency_seconds_count", way="tallied") == 0  # nothing written until the flush

    tally.flush()

    _, samples = parse(generate_latest(registry).decode())
    for name in ("latency_seconds_count", "latency_seconds_sum"):
        assert value(samples, name, way="tallied") == pytest.approx(value(samples, name, way="direct"))
    for bound in ("0.001", "0.01", "0.1", "1.0", "+Inf"):
        tallied_bucket = value(samples, "latency_seconds_bucket", way="tallied", le=bound)
        assert tallied_bucket == value(samples, "latency_seconds_bucket", way="direct", le=bound), bound


def test_counts_from_many_threads_are_all_written() -> None:
    registry = CollectorRegistry()
    counter = Counter("calls", "test", ["kind"], registry=registry)
    one, other = counter.labels("one"), counter.labels("other")
    seconds = Histogram("call_seconds", "test", buckets=BUCKETS, registry=registry)
    tally = metrics.Tally(seconds=0.01)  # its own thread flushes while the others count

    def count() -> None:
        for _ in range(5_000):
            tally.add(one)
            tally.add_each((one, other))
            tally.observe(seconds, 0.05, (other, one))  # a latency and its counts together

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.flush()

    assert registry.get_sample_value("calls_total", {"kind": "one"}) == 60_000
    assert registry.get_sample_value("calls_total", {"kind": "other"}) == 40_000
    assert registry.get_sample_value("call_seconds_count") == 20_000
    assert registry.get_sample_value("call_seconds_bucket", {"le": "0.01"}) == 0
    assert registry.get_sample_value("call_seconds_bucket", {"le": "0.1"}) == 20_000


def test_the_process_registry_is_exact_at_every_collection() -> None:
    # The service's own counters go through the module's tally: a scrape straight after a call sees it.
    before = REGISTRY.get_sample_value("rules_engine_evaluations_total", {"ruleset": "tally-test", "outcome": "ok"})
    metrics.count_evaluation("tally-test", "ok")
    metrics.count_evaluation("tally-test", "ok")
    after = REGISTRY.get_sample_value("rules_engine_evaluations_total", {"ruleset": "tally-test", "outcome": "ok"})
    assert (before or 0) + 2 == after


# A worker that counts and exits without flushing by hand: its counts reach the files at exit.
WORKER = textwrap.dedent(
    """
    from rules_engine import metrics

    for _ in range(7):
        metrics.count_evaluation("starter", "ok")
    metrics.record_evaluation("starter", 0.003, [("rule-a", "HIGH", "new")] * 3, ["rule-b"], False)
    metrics.GrpcMethodMetrics("rules_engine.v1.RulesEngineService", "Evaluate").handled("OK", 0.002)
    """
)


def test_a_worker_that_exits_leaves_every_count_in_the_files(tmp_path: Path) -> None:
    env = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path)}
    subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, env=env, timeout=60, check=True)

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    _, samples = parse(generate_latest(registry).decode())
    assert value(samples, "rules_engine_evaluations_total", ruleset="starter", outcome="ok") == 7
    assert value(samples, "rules_engine_flags_total", ruleset="starter", rule="rule-a", state="new") == 3
    assert value(samples, "rules_engine_shadow_flags_total", ruleset="starter", rule="rule-b") == 1
    assert value(samples, "rules_engine_evaluation_seconds_count", ruleset="starter") == 1
    assert value(samples, "rules_engine_evaluation_seconds_bucket", ruleset="starter", le="0.0025") == 0
    assert value(samples, "rules_engine_evaluation_seconds_bucket", ruleset="starter", le="0.005") == 1
    assert value(samples, "rules_engine_grpc_requests_total", method="Evaluate", code="OK") == 1
    assert value(samples, "rules_engine_grpc_request_seconds_count", method="Evaluate") == 1

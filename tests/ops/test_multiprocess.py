"""Several worker processes share PROMETHEUS_MULTIPROC_DIR; the exposition is their sum."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rules_engine import metrics
from tests.ops.helpers import parse, promtool_check, value

ROOT = Path(__file__).resolve().parents[2]

# One worker: loads a ruleset version, answers `n` cases, makes one store call and one gRPC call.
WORKER = textwrap.dedent(
    """
    import sys
    from rules_engine import metrics
    from rules_engine.engine.registry import ReloadResult

    n, version = int(sys.argv[1]), sys.argv[2]
    metrics.record_reload(ReloadResult("starter", "loaded", version))
    for _ in range(n):
        metrics.count_evaluation("starter", "ok")
    with metrics.observe_store("ping"):
        pass
    metrics.GrpcMethodMetrics("rules_engine.v1.RulesEngineService", "Evaluate").handled("OK", 0.002)
    """
)


def _worker(directory: Path, n: int, version: str = "v1") -> None:
    env = {**os.environ, metrics.MULTIPROC_ENV: str(directory)}
    subprocess.run([sys.executable, "-c", WORKER, str(n), version], cwd=ROOT, env=env, timeout=60, check=True)


def test_two_processes_are_summed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "multiproc"
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(directory))
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"stale from the last run")
    metrics.clean_multiprocess_dir()  # what `serve` does first
    assert list(directory.iterdir()) == []

    _worker(directory, 2)
    _worker(directory, 3)

    text = metrics.render().decode()
    assert promtool_check(text, tmp_path) == ""
    _, samples = parse(text)
    assert value(samples, "rules_engine_evaluations_total", ruleset="starter", outcome="ok") == 5
    assert value(samples, "rules_engine_ruleset_reloads_total", ruleset="starter", result="loaded") == 2
    assert value(samples, "rules_engine_store_operation_seconds_count", operation="ping") == 2
    assert value(samples, "rules_engine_grpc_requests_total", method="Evaluate", code="OK") == 2
    assert value(samples, "rules_engine_grpc_request_seconds_count", method="Evaluate") == 2
    # Gauges are not summed: both workers serve v1, so it is 1; the last reload is the latest.
    info = [(dict(labels), v) for (name, labels), v in samples.items() if name == "rules_engine_ruleset_info"]
    assert [(labels["version"], v) for labels, v in info] == [("v1", 1)]
    assert value(samples, "rules_engine_ruleset_last_reload_success_timestamp_seconds", ruleset="starter") > 0


def test_a_dead_workers_version_stops_counting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    env = {**os.environ}
    process = subprocess.Popen([sys.executable, "-c", WORKER, "1", "v-old"], cwd=ROOT, env=env)
    assert process.wait(timeout=60) == 0
    _worker(tmp_path, 1, "v-new")
    _, samples = parse(metrics.render().decode())
    assert value(samples, "rules_engine_ruleset_info", version="v-old") == 1

    metrics.mark_process_dead(process.pid)  # what a parent does when a worker exits

    _, samples = parse(metrics.render().decode())
    assert value(samples, "rules_engine_ruleset_info", version="v-old") == 0
    assert value(samples, "rules_engine_ruleset_info", version="v-new") == 1
    assert value(samples, "rules_engine_evaluations_total", outcome="ok") == 2  # counters outlive workers

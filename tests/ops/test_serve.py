"""`rules-engine serve` as operators run it: JSON logs on stderr, multiprocess metrics on their own port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import grpc

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from tests.ops.helpers import fetch, flagged_case, parse, promtool_check, request, value
from tests.redis_server import free_port
from tests.serve_process import wait_serving

ROOT = Path(__file__).resolve().parents[2]
MARKER = "SECRET-NAME-MARKER"


def test_serve_logs_json_and_exposes_every_workers_metrics(tmp_path: Path) -> None:
    # Only the starter: a refused ruleset is also echoed to stderr as plain text by the CLI.
    rulesets = tmp_path / "rulesets"
    shutil.copytree(ROOT / "rulesets" / "starter", rulesets / "starter")
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    (multiproc / "counter_1.db").write_bytes(b"left by the previous pod")
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    command = [sys.executable, "-m", "rules_engine", "serve", "--plaintext", "--rulesets", str(rulesets)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_serving(f"127.0.0.1:{port}", process)
            assert not (multiproc / "counter_1.db").exists()
            stub = pb_grpc.RulesEngineServiceStub(channel)
            response = stub.Evaluate(request(flagged_case("case-serve-1", MARKER)), timeout=10)
            text = fetch(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr

    assert promtool_check(text, tmp_path) == ""
    _, samples = parse(text)
    assert value(samples, "rules_engine_evaluations_total", ruleset="starter", outcome="ok") == 1
    assert value(samples, "rules_engine_ruleset_info", ruleset="starter", version=response.ruleset_version) == 1

    assert MARKER not in stdout + stderr
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is one JSON object
    events = {line["event"] for line in lines}
    assert {"ruleset loaded", "case evaluated", "stopped"} <= events
    [evaluated] = [line for line in lines if line["event"] == "case evaluated"]
    assert evaluated["decision_id"] == response.decision_id

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
import redis

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from tests.ops.helpers import fetch, flagged_case, parse, promtool_check, request, value
from tests.redis_server import RedisServer, free_port
from tests.serve_process import serve, wait_serving

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


def test_retention_and_decision_log_bound_are_set_from_the_command_line(redis_server: RedisServer) -> None:
    """Operators set how long derived state is kept (their data protection policy's retention)."""
    port = free_port()
    url = redis_server.url.removesuffix("/0") + "/9"  # a database of its own: the log key is shared
    args = ["--retention-days", "30", "--decision-log-max-entries", "100", "--redis-url", url]
    args += ["--rulesets", str(ROOT / "rulesets"), "--metrics-port", "0", "--workers", "1"]
    with serve(port, *args), grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.RulesEngineServiceStub(channel)
        stored = request(flagged_case("case-retention"))
        stored.use_stored_history = True
        stub.Evaluate(stored, timeout=10)
        for i in range(300):
            stub.Evaluate(request(flagged_case(f"case-{i}")), timeout=10)
    client = redis.Redis.from_url(url)
    try:
        # Trimmed (the default bound is 1,000,000); Redis trims whole stream nodes of 100 entries.
        assert 100 <= client.xlen("re:decisions") < 300
        ttls = [client.pttl(key) for key in client.scan_iter("re:{case-retention}*")]
    finally:
        client.close()
    # The case's facts, flags and decisions, and its equality marker (what the counts hold of it):
    # everything kept about the case expires with the retention.
    assert len(ttls) == 4 and all(29 * 86_400_000 < ttl <= 30 * 86_400_000 for ttl in ttls)

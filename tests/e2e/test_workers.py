"""`rules-engine serve --workers 2`: processes share the port, a killed worker is replaced, SIGTERM stops all."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.metrics import FLUSH_SECONDS
from rules_engine.service import requests
from tests.redis_server import RedisServer, free_port
from tests.serve_process import ROOT, serve, worker_pids

CASE = json.loads((ROOT / "examples" / "case.json").read_text())


def _request() -> pb.EvaluateRequest:
    request = pb.EvaluateRequest(as_of="2025-06-30", ruleset="starter")
    request.case.CopyFrom(requests.case_from_json(CASE))
    return request


def _evaluate_on_fresh_channels(address: str, calls: int) -> list[grpc.StatusCode]:
    """Each call on its own channel (its own connection), so the kernel spreads them over workers."""

    def one(_: int) -> grpc.StatusCode:
        with grpc.insecure_channel(address) as channel:
            try:
                pb_grpc.RulesEngineServiceStub(channel).Evaluate(_request(), timeout=10)
                return grpc.StatusCode.OK
            except grpc.RpcError as exc:
                return exc.code()

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(calls)))


def _evaluations(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    prefix = 'rules_engine_evaluations_total{outcome="ok",ruleset="starter"}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_workers_share_the_port_are_restarted_and_stop_together(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    # Several workers need a shared store: without one `serve` refuses to start.
    redis = RedisServer(tmp_path, persistent=False)
    redis.start()
    args = ("--workers", "2", "--metrics-port", str(metrics_port), "--redis-url", redis.url)
    with serve(port, *args, env=env) as parent:
        workers = worker_pids(parent.pid)
        assert len(workers) == 2

        assert _evaluate_on_fresh_channels(address, 40) == [grpc.StatusCode.OK] * 40
        # The parent serves every worker's counts, summed, once the workers have written them
        # (each within metrics.FLUSH_SECONDS).
        deadline = time.monotonic() + 10 * FLUSH_SECONDS
        while _evaluations(metrics_port) < 40 and time.monotonic() < deadline:
            time.sleep(FLUSH_SECONDS / 5)
        assert _evaluations(metrics_port) == 40

        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while sorted(worker_pids(parent.pid)) == sorted(workers) or len(worker_pids(parent.pid)) < 2:
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.1)
        replacement = (set(worker_pids(parent.pid)) - set(workers)).pop()
        # The survivor kept serving while the replacement started.
        assert workers[1] in worker_pids(parent.pid)
        # A worker joins the shared port only once it serves, so no call meets a half-started one.
        assert _evaluate_on_fresh_channels(address, 20) == [grpc.StatusCode.OK] * 20

        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
        remaining = [pid for pid in [*workers, replacement] if Path(f"/proc/{pid}").exists()]
        assert remaining == []
    redis.stop()

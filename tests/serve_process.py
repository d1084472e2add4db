"""Run `rules-engine serve` as a real subprocess for tests: start, wait for SERVING, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]


def wait_serving(address: str, process: subprocess.Popen[Any], timeout: float = 60) -> None:
    """Block until the server at `address` reports SERVING; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            assert process.poll() is None, "serve exited early"
            try:
                response = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)


def worker_pids(pid: int) -> list[int]:
    """The worker processes of a supervisor: its children started by multiprocessing's spawn
    (not its resource tracker)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    children = [int(p) for p in path.read_text().split()] if path.exists() else []
    workers = []
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
        except FileNotFoundError:
            pass  # exited meanwhile
    return workers


@contextmanager
def serve(port: int, *args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """`rules-engine serve` on 127.0.0.1:port with extra `args`; SIGTERM and reap on exit."""
    command: Sequence[str] = [
        sys.executable, "-m", "rules_engine", "serve", "--plaintext", "--host", "127.0.0.1", "--port", str(port), *args,
    ]  # fmt: skip
    # The server's output goes to a file, as a container runtime takes it: an unread pipe fills
    # after 64 KiB, the log writer then blocks, and the lines waiting for it (one per evaluation)
    # would grow the server for as long as the test runs.
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_serving(f"127.0.0.1:{port}", process)
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM as Kubernetes sends it, then reap; SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()

"""Every start-up failure of `serve` is one plain line naming the setting and what to do, and exit 2.

Real processes on real ports: a port is taken by binding a socket first, as a second
`make run` would find it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rules_engine", "serve", "--host", "127.0.0.1", *args]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RULES_ENGINE_")}
    return subprocess.run(command, check=False, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)


def _the_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed start says (JSON log lines aside); exit 2 and no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert line.startswith("rules-engine serve: ")
    return line


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_grpc_port(taken_port: int, workers: str) -> None:
    args = ["--plaintext", "--port", str(taken_port), "--metrics-port", "0", "--workers", workers]
    line = _the_line(_serve(*args, "--redis-url", "redis://127.0.0.1:1/0"))
    assert f"port {taken_port} is already in use (--port / RULES_ENGINE_PORT)" in line
    assert "stop the other server" in line and "choose another port" in line


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_metrics_port(taken_port: int, workers: str) -> None:
    args = ["--plaintext", "--port", str(free_port()), "--metrics-port", str(taken_port), "--workers", workers]
    line = _the_line(_serve(*args, "--redis-url", "redis://127.0.0.1:1/0"))
    assert f"port {taken_port} is already in use (--metrics-port / RULES_ENGINE_METRICS_PORT)" in line
    assert "0 to turn metrics off" in line


def test_missing_and_bad_certificate_files(tmp_path: Path) -> None:
    base = ["--port", str(free_port()), "--metrics-port", "0"]
    missing = _the_line(_serve(*base, "--tls-cert", str(tmp_path / "a.crt"), "--tls-key", str(tmp_path / "a.key")))
    assert f"cannot read {tmp_path / 'a.crt'} (--tls-cert / RULES_ENGINE_TLS_CERT)" in missing
    (tmp_path / "bad.crt").write_text("not a certificate\n")
    (tmp_path / "bad.key").write_text("not a key\n")
    bad = _the_line(_serve(*base, "--tls-cert", str(tmp_path / "bad.crt"), "--tls-key", str(tmp_path / "bad.key")))
    assert "are not a PEM certificate and its private key (--tls-cert / RULES_ENGINE_TLS_CERT" in bad


def test_a_rulesets_directory_that_does_not_exist(tmp_path: Path) -> None:
    line = _the_line(_serve("--plaintext", "--port", str(free_port()), "--rulesets", str(tmp_path / "nope")))
    assert f"rulesets directory {tmp_path / 'nope'} does not exist (--rulesets / RULES_ENGINE_RULESETS)" in line


@pytest.mark.parametrize("workers", ["1", "2"])
def test_rulesets_that_fail_to_load(tmp_path: Path, workers: str) -> None:
    shutil.copytree(ROOT / "rulesets" / "starter", tmp_path / "starter")
    with (tmp_path / "starter" / "rules.yaml").open("a", encoding="utf-8") as rules:
        rules.write("  - {id: no-title}\n")
    args = ["--plaintext", "--port", str(free_port()), "--metrics-port", "0", "--rulesets", str(tmp_path)]
    line = _the_line(_serve(*args, "--workers", workers, "--redis-url", "redis://127.0.0.1:1/0"))
    assert f"no valid ruleset under {tmp_path}" in line and "(--rulesets / RULES_ENGINE_RULESETS)" in line
    assert f"rules-engine check {tmp_path}" in line


def test_a_url_that_is_not_redis() -> None:
    line = _serve("--plaintext", "--port", str(free_port()), "--redis-url", "http://cache:6379")
    assert "--redis-url / RULES_ENGINE_REDIS_URL: http:// is not a Redis URL" in _the_line(line)

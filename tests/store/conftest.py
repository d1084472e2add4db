"""Fixtures: a real redis-server on a free port, and a `store` fixture that is each store in turn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rules_engine.store import CaseStore, MemoryStore, StoreSettings
from rules_engine.store.redis import RedisStore
from tests.redis_cluster import RedisClusterServers
from tests.redis_server import RedisServer, free_port

__all__ = ["Clock", "RedisServer", "free_port"]  # re-exported for the store tests


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


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """Three masters on free ports, joined into a Redis Cluster by redis-cli."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


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


@pytest.fixture(params=["memory", "redis", "cluster"])
def store(request: pytest.FixtureRequest, settings: StoreSettings, clock: Clock) -> Iterator[CaseStore]:
    """Each store in turn, Redis standalone and Redis Cluster. Redis stores get a fresh key prefix,
    so tests share one server (or cluster) safely."""
    if request.param == "memory":
        yield MemoryStore(settings, clock=clock)
        return
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster").url
    else:
        url = request.getfixturevalue("redis_server").url
    prefix = f"t{next(_prefix_counter)}:"
    redis_store = RedisStore(url, StoreSettings(**{**settings.__dict__, "key_prefix": prefix}))
    try:
        yield redis_store
    finally:
        redis_store.close()

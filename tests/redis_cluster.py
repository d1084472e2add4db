"""A real Redis Cluster (three masters) and a real Sentinel setup on free ports, for the store tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.redis_server import REDIS_SERVER, free_port

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def _start(args: list[str], directory: Path, name: str) -> subprocess.Popen[bytes]:
    with (directory / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=directory)


def _ask(port: int, *command: str) -> object:
    """One command to one server on a connection of its own, closed after."""
    client = redis.Redis(port=port, decode_responses=True)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def _wait(check: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout} s")
        time.sleep(0.05)


def _client_port() -> int:
    """A free port Redis accepts for a cluster node (at most 55535, even with its bus port named)."""
    while (port := free_port()) > 55535:
        pass
    return port


def _other_sentinels(port: int, service: str) -> int:
    reply = _ask(port, "SENTINEL", "MASTER", service)
    if not isinstance(reply, dict):  # a flat list, when redis-py does not parse it
        reply = dict(zip(reply[::2], reply[1::2], strict=True))  # type: ignore[index]
    return int(reply["num-other-sentinels"])


def _node_args(port: int, directory: Path, *extra: str) -> list[str]:
    return [
        REDIS_SERVER,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
        "--maxmemory-policy",
        "noeviction",
        *extra,
    ]


class RedisClusterServers:
    """Masters started with `--cluster-enabled yes` (each with `replicas` replicas), joined by
    `redis-cli --cluster create`. `node_timeout_ms` is how long a master may be unreachable before
    the others mark it failed and its replica takes over (Redis's default is 15 s)."""

    def __init__(
        self, directory: Path, masters: int = 3, replicas: int = 0, node_timeout_ms: int | None = None
    ) -> None:
        self.directory = directory
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports = [_client_port() for _ in range(masters * (1 + replicas))]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> None:
        for port in self.ports:
            node_dir = self.directory / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            # The bus port defaults to port + 10000: named, so it is free too, whatever the port.
            cluster = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            if self.node_timeout_ms is not None:
                cluster += ["--cluster-node-timeout", str(self.node_timeout_ms)]
            args = _node_args(port, node_dir, *cluster, "--cluster-port", str(free_port()))
            self.processes[port] = _start(args, node_dir, "redis")
        for port in self.ports:
            _wait(lambda p=port: _ask(p, "PING"), f"cluster node {port}")
        addresses = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in self.ports:
            _wait(lambda p=port: "cluster_state:ok" in str(_ask(p, "CLUSTER", "INFO")), f"cluster at {port}")
        for port in self.ports:  # every replica in sync with its master
            _wait(
                lambda p=port: (
                    _ask(p, "INFO", "replication")["role"] == "master"  # type: ignore[index]
                    or _ask(p, "INFO", "replication")["master_link_status"] == "up"
                ),  # type: ignore[index]
                f"replica at {port}",
            )

    def nodes(self) -> list[tuple[int, str, list[tuple[int, int]]]]:
        """(port, "master" or "slave", slot ranges) of each node a live node does not see as failed."""
        port = next(iter(self.processes))
        client = redis.Redis(port=port, decode_responses=True)
        try:
            conn = client.connection_pool.get_connection()
            try:
                conn.send_command("CLUSTER", "NODES")
                text = str(conn.read_response())  # the raw text: redis-py's parse drops details
            finally:
                client.connection_pool.release(conn)
        finally:
            client.close()
        out = []
        for line in text.splitlines():
            parts = line.split()
            flags = parts[2].split(",")
            if {"fail", "fail?", "noaddr"} & set(flags):
                continue
            node_port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            ranges = []
            for item in parts[8:]:
                if not item.startswith("["):  # "[slot->-node]": a slot being migrated
                    first, _, last = item.partition("-")
                    ranges.append((int(first), int(last or first)))
            out.append((node_port, "master" if "master" in flags else "slave", ranges))
        return out

    def master_of(self, slot: int) -> int:
        """The port of the master serving `slot` now, as a live node sees it."""
        for port, role, ranges in self.nodes():
            if role == "master" and any(first <= slot <= last for first, last in ranges):
                return port
        raise LookupError(f"no master serves slot {slot}")

    def stop_node(self, port: int) -> None:
        """SIGTERM, as an operator stops a node: Redis 7 waits for a lagging replica before it exits."""
        process = self.processes.pop(port)
        process.terminate()
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait()
        self.processes = {}


class SentinelSetup:
    """A master, one replica and three sentinels watching them as service `mymaster`."""

    SERVICE = "mymaster"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", p) for p in self.sentinel_ports]

    def start(self) -> None:
        for port, extra in (
            (self.master_port, ()),
            (self.replica_port, ("--replicaof", "127.0.0.1", str(self.master_port))),
        ):
            node_dir = self.directory / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            self.processes[port] = _start(_node_args(port, node_dir, *extra), node_dir, "redis")
        _wait(
            lambda: _ask(self.replica_port, "INFO", "replication")["master_link_status"] == "up",  # type: ignore[index]
            "replica",
        )
        for port in self.sentinel_ports:
            config = self.directory / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                f"sentinel failover-timeout {self.SERVICE} 5000\n"
                f"sentinel parallel-syncs {self.SERVICE} 1\n"
            )
            self.processes[port] = _start([REDIS_SERVER, str(config), "--sentinel"], self.directory, f"sentinel-{port}")
        for port in self.sentinel_ports:
            _wait(
                lambda p=port: _other_sentinels(p, self.SERVICE) == 2,
                f"sentinel {port}",
            )

    def master(self) -> int:
        """The port Sentinel names as the master now."""
        _, port = _ask(self.sentinel_ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE)  # type: ignore[misc]
        return int(port)

    def stop_master(self) -> None:
        """SHUTDOWN of the master as an operator would stop it (Redis waits for the replica to catch up)."""
        process = self.processes.pop(self.master_port)
        process.terminate()
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait()
        self.processes = {}

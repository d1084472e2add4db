"""gRPC load under h2load: servers (rules-engine serve, the echo ceiling, redis-server) and h2load runs.

Used by benchmarks/run.py. h2load (Debian/Ubuntu: `apt-get install nghttp2-client`) is the load
client because a Python client eats as much CPU as the server it measures. h2load speaks plain
HTTP/2, so the gRPC request is framed by hand (one flag byte, a 4-byte big-endian length, the
serialized EvaluateRequest) and sent as a fixed body. h2load counts every HTTP 200 as a success,
and gRPC errors come back as HTTP 200 with a grpc-status trailer, so each run is checked twice:
real gRPC calls with the same request before the run, and the response bytes h2load received
(an error response carries no message; a successful one carries the known response size).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.service.requests import case_from_json
from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.redis_server import RedisServer, free_port  # noqa: E402  (a real redis-server, as the tests use)

H2LOAD = shutil.which("h2load") or "/usr/bin/h2load"
METHOD = "/rules_engine.v1.RulesEngineService/Evaluate"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchmarkError(RuntimeError):
    """A server did not start, a call failed, or h2load's output could not be read."""


def h2load_missing() -> str | None:
    """None when h2load is usable, else what to install."""
    if not Path(H2LOAD).exists():
        return "h2load not found: install it with `sudo apt-get install nghttp2-client` (Debian/Ubuntu)"
    text = subprocess.run([H2LOAD, "--help"], capture_output=True, text=True, check=False).stdout
    if "--log-file" not in text or "--rps" not in text:
        return "this h2load lacks --log-file or --rps: nghttp2-client 1.40 or later is needed"
    return None


def evaluate_request(facts: int, stored_history: bool, seed: int = 1) -> pb.EvaluateRequest:
    return pb.EvaluateRequest(
        case=case_from_json(sized_case(facts, seed)),
        ruleset="safeguarding",
        as_of=LONG_TIMELINE_END.isoformat(),
        use_stored_history=stored_history,
    )


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


# --- processes -----------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used, 0 if it is gone."""
    try:
        fields = _stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
    return sorted(found)


def is_helper(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"resource_tracker" in command or b"semaphore_tracker" in command or b"forkserver" in command


def memory_kb(pid: int, field: str = "VmHWM") -> int:
    """VmHWM (peak resident set) or VmRSS of a process, in kB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclasses.dataclass
class Server:
    """A started server: its top process, log file and the help text of the features it has."""

    name: str
    port: int
    processes: list[subprocess.Popen[bytes]]
    log: Path

    def workers(self) -> list[int]:
        """The processes that serve calls: the children of a supervisor, else the processes themselves."""
        pids: list[int] = []
        for process in self.processes:
            kids = [pid for pid in children(process.pid) if not is_helper(pid)]
            pids.extend(kids or [process.pid])
        return pids

    def helpers(self) -> list[int]:
        """multiprocessing's resource tracker and the like: children that serve no calls."""
        return [pid for process in self.processes for pid in children(process.pid) if is_helper(pid)]

    def all_pids(self) -> list[int]:
        pids = [p.pid for p in self.processes]
        for process in self.processes:
            pids.extend(children(process.pid))
        return pids

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_log(server: Server, text: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while server.log.read_text(errors="replace").count(text) < count:
        if not server.alive():
            tail = server.log.read_text(errors="replace")[-2000:]
            raise BenchmarkError(f"{server.name} exited while starting:\n{tail}")
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{server.name} did not print {text!r} {count} times within {timeout:.0f}s")
        time.sleep(0.1)


def start_echo(processes: int, directory: Path) -> Server:
    port = free_port()
    log = directory / f"echo-{processes}.log"
    script = Path(__file__).with_name("echo_server.py")
    with log.open("wb") as out:
        started = [
            subprocess.Popen([sys.executable, str(script), "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
            for _ in range(processes)
        ]
    server = Server(f"echo x{processes}", port, started, log)
    _wait_for_log(server, "ready ", processes, 60)
    return server


def source_environment(source: Path | None) -> dict[str, str]:
    """The environment that runs the `rules_engine` package in `source` (a checkout or a git
    worktree of another commit) instead of this one: it goes first on PYTHONPATH, ahead of the
    venv's editable install. None: this checkout, as installed."""
    environment = {**os.environ}
    if source is not None:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))
    return environment


def serve_help(source: Path | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(SERVE_UNSHARED), "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**source_environment(source), "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    )
    return result.stdout + result.stderr


def cache_off(help_text: str) -> tuple[str, ...]:
    """The `serve` options that turn the evaluation cache off, when this build has one.

    h2load sends one fixed body, so with the cache on every call after the first would be a
    hit; the headline figures are misses (every call evaluates).
    """
    return ("--evaluation-cache-size", "0") if "--evaluation-cache-size" in help_text else ()


SERVE_UNSHARED = Path(__file__).with_name("serve_unshared.py")
SERVING = "serving rules_engine.v1.RulesEngineService on "
SERVING_HTTP = "over HTTP (Connect) on "


def start_engine(
    workers: int,
    directory: Path,
    redis_url: str | None,
    help_text: str,
    *,
    http_port: int = 0,
    options: tuple[str, ...] = (),
    environment: dict[str, str] | None = None,
    source: Path | None = None,
    name: str | None = None,
) -> Server:
    """`rules-engine serve` on a free port with the bundled rulesets, metrics off, logs to a file.

    Several processes without Redis each keep their own in-memory store, which `serve` refuses
    (a deployment would split case state); benchmarks/serve_unshared.py runs the same command
    with that one check skipped. `http_port` 0 leaves the HTTP door off (the gRPC door alone);
    `options` are more `serve` options, `environment` more variables, `source` another checkout
    of the package to run (its rulesets too).
    """
    port = free_port()
    command = [
        sys.executable,
        str(SERVE_UNSHARED),
        "--rulesets",
        str((source or ROOT) / "rulesets"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--metrics-port",
        "0",
    ]
    if "--workers" in help_text:
        command += ["--workers", str(workers)]
    elif workers != 1:
        raise BenchmarkError("`rules-engine serve` has no --workers option yet")
    if "--http-port" in help_text:  # 0: the gRPC door alone, no second listener on 8080
        command += ["--http-port", str(http_port)]
    if "--plaintext" in help_text:
        command.append("--plaintext")
    if redis_url:
        command += ["--redis-url", redis_url]
    command += list(options)
    name = name or f"rules-engine x{workers}" + (" redis" if redis_url else "")
    log = directory / (name.replace(" ", "-").replace("/", "-") + ".log")
    # Let the supervisor (or its absence) decide on the multiprocess metrics directory.
    env = {**source_environment(source), **(environment or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(name, port, [process], log)
    _wait_for_log(server, SERVING, workers, 180)
    if http_port:
        _wait_for_log(server, SERVING_HTTP, workers, 60)
    return server


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    if not Path(shutil.which("redis-server") or "/usr/bin/redis-server").exists():
        raise BenchmarkError("redis-server not found: install it with `sudo apt-get install redis-server`")
    server = RedisServer(directory, persistent=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def check_calls(port: int, request: pb.EvaluateRequest, calls: int = 3) -> int:
    """Real gRPC calls with the benchmark's request; returns the framed size of the last response.

    Raises BenchmarkError unless every call returns OK with the case's id (the echo answers an
    empty response, which is what it should).
    """
    size = 0
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.RulesEngineServiceStub(channel)
        for _ in range(calls):
            try:
                response, call = stub.Evaluate.with_call(request, timeout=30)
            except grpc.RpcError as error:
                raise BenchmarkError(f"Evaluate failed: {error.code().name}: {error.details()}") from error
            if call.code() != grpc.StatusCode.OK:
                raise BenchmarkError(f"Evaluate returned grpc-status {call.code().name}")
            if response.case_id and response.case_id != request.case.case_id:
                raise BenchmarkError(f"Evaluate answered for {response.case_id!r}")
            size = len(grpc_frame(response.SerializeToString()))
    return size


# --- h2load --------------------------------------------------------------------------------


@dataclasses.dataclass
class LoadRun:
    """One h2load run against one server."""

    server: str
    clients: int
    streams: int
    rate_per_client: float | None
    seconds: float
    requests: int
    succeeded: int
    failed: int
    per_second: float
    mean_ms: float
    median_ms: float
    p99_ms: float
    max_ms: float
    data_bytes: int
    expected_response_bytes: int
    responses_ok: bool
    server_cpu_seconds: float
    h2load_cpu_seconds: float
    worker_cpu_seconds: list[float]

    @property
    def server_cpu_us_per_call(self) -> float:
        return self.server_cpu_seconds / max(1, self.requests) * 1e6

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["server_cpu_us_per_call"] = round(self.server_cpu_us_per_call, 1)
        return data


_NUMBER = r"([\d.]+)"


def _parse_summary(text: str) -> dict[str, float]:
    patterns = {
        "per_second": rf"finished in [\d.]+\w+, {_NUMBER} req/s",
        "requests": rf"requests: {_NUMBER} total, \d+ started, {_NUMBER} done",
        "succeeded": rf"{_NUMBER} succeeded",
        "failed": rf"{_NUMBER} failed",
        "errored": rf"{_NUMBER} errored",
        "data_bytes": r"\((\d+)\) data",
    }
    found: dict[str, float] = {}
    for key, pattern in patterns.items():
        match = re.search(pattern, text)
        if match is None:
            raise BenchmarkError(f"h2load output has no {key}:\n{text[-1500:]}")
        found[key] = float(match.groups()[-1])
    return found


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(values)))
    return values[min(len(values), rank) - 1]


@dataclasses.dataclass(frozen=True)
class H2loadRun:
    """What one h2load process reported, and the CPU the server's processes and h2load spent meanwhile."""

    summary: dict[str, float]
    latencies: list[float]  # ms, sorted, from the per-request log
    statuses: dict[str, int]  # HTTP status -> responses
    server_cpu: dict[int, float]  # pid -> seconds
    h2load_cpu: float


def run_h2load(args: list[str], url: str, pids: list[int]) -> H2loadRun:
    """h2load with `args` against `url`, the server's CPU (`pids`) read just before and after it."""
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log") as log_file:
        command = [H2LOAD, *args, "--log-file", log_file.name, url]
        cpu_before = {pid: cpu_seconds(pid) for pid in pids}
        usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_after = {pid: cpu_seconds(pid) for pid in pids}
        if result.returncode != 0:
            raise BenchmarkError(f"h2load exited {result.returncode}:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        for line in Path(log_file.name).read_text().splitlines():
            fields = line.split("\t")
            if len(fields) >= 3:
                latencies.append(int(fields[2]) / 1000)
                statuses[fields[1]] = statuses.get(fields[1], 0) + 1
    latencies.sort()
    h2load_cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    return H2loadRun(
        _parse_summary(result.stdout),
        latencies,
        statuses,
        {pid: cpu_after[pid] - cpu_before[pid] for pid in pids},
        h2load_cpu,
    )


def h2load(
    server: Server,
    body: Path,
    *,
    seconds: float,
    warm_up: float,
    clients: int,
    streams: int,
    expected_response_bytes: int,
    rate_per_client: float | None = None,
    path: str = METHOD,
    content_type: str = "application/grpc",
    h1: bool = False,
) -> LoadRun:
    """Run h2load for `seconds` against the gRPC method `path`; latencies from its per-request log.

    Over h2c, `server.port`; another `content_type` than gRPC's (the HTTP door's
    `application/proto`) sends the body as it is, without the gRPC trailer header; `h1`: over
    HTTP/1.1 instead (then one call in flight per connection: pass `streams` 1).

    Without a rate: as fast as the server answers, after `warm_up` seconds (0: none, so that
    the server's CPU and the calls counted cover the same interval). With
    `rate_per_client`: h2load paces each connection with a timer, and connections opened
    together fire together, so the load would arrive in bursts of one request per client;
    the connections are opened one by one, spread over one pacing interval, so that requests
    arrive evenly (there is no warm-up then; run it on a warm server).
    """
    if rate_per_client is None:
        timing = ["-D", f"{seconds:g}"] + (["--warm-up-time", f"{warm_up:g}"] if warm_up > 0 else [])
    else:
        total = rate_per_client * clients
        spread_ms = max(1, round(1000 / total))
        timing = ["-n", str(round(total * seconds)), "-r", "1", "--rate-period", f"{spread_ms}ms"]
        timing += ["--rps", f"{rate_per_client:g}"]
    args = [*(["--h1"] if h1 else []), *timing, "-t", "1", "-c", str(clients), "-m", str(streams), "-d", str(body)]
    args += ["-H", f"content-type: {content_type}"]
    if content_type.startswith("application/grpc"):
        args += ["-H", "te: trailers"]
    pids = server.all_pids()
    worker_pids = server.workers()
    run = run_h2load(args, f"http://127.0.0.1:{server.port}{path}", pids)
    summary, latencies = run.summary, run.latencies
    # h2load logs a call that got no response (abandoned at a timed run's end) with no HTTP status.
    answered = {status: n for status, n in run.statuses.items() if status.isdigit() and int(status) >= 100}
    statuses_ok = set(answered) <= {"200"}
    if not server.alive():
        raise BenchmarkError(f"{server.name} died under load; see {server.log}")
    requests = int(summary["requests"])
    succeeded = int(summary["succeeded"])
    # Warm-up responses are in h2load's byte count too, so this is a lower bound: any share of
    # gRPC errors (no message) would pull the bytes per request well below the response size.
    data = int(summary["data_bytes"])
    # A timed run (-D) ends with up to clients x streams calls in flight, which h2load abandons;
    # the HTTP door's HTTP/2 stack answers the abandoned streams' frames with a reset, and h2load
    # counts those calls as failed and errored (the server logs "Invalid HTTP/2 frame received" at
    # that moment, never before). Every response h2load did read must still be a 200 with an answer.
    abandoned = clients * streams if rate_per_client is None else 0
    unanswered = int(summary["failed"]) + int(summary["errored"])
    responses_ok = (
        statuses_ok
        and requests - succeeded <= abandoned
        and unanswered <= 2 * abandoned
        and data >= 0.95 * succeeded * expected_response_bytes
    )
    return LoadRun(
        server=server.name,
        clients=clients,
        streams=streams,
        rate_per_client=rate_per_client,
        seconds=seconds,
        requests=requests,
        succeeded=succeeded,
        failed=int(summary["failed"] + summary["errored"]),
        per_second=summary["per_second"],
        mean_ms=round(sum(latencies) / max(1, len(latencies)), 3),
        median_ms=round(_percentile(latencies, 0.5), 3),
        p99_ms=round(_percentile(latencies, 0.99), 3),
        max_ms=round(latencies[-1] if latencies else float("nan"), 3),
        data_bytes=data,
        expected_response_bytes=expected_response_bytes,
        responses_ok=responses_ok,
        server_cpu_seconds=round(sum(run.server_cpu.values()), 3),
        h2load_cpu_seconds=round(run.h2load_cpu, 3),
        worker_cpu_seconds=[round(run.server_cpu[p], 3) for p in worker_pids],
    )

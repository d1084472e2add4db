"""Evaluate through the three doors of one server in the same run: gRPC, Connect binary, Connect JSON.

    python benchmarks/http_door.py [--seconds 8] [--warm-up 3] [--rounds 3] [--sizes 20,200]

One `rules-engine serve --plaintext --workers 1` (in-memory store, metrics off) on free ports,
gRPC and the HTTP door (Connect) from the same process. For each case size (`synth.sized_case`,
as benchmarks/engine_bench.py), one EvaluateRequest, sent as:

- gRPC: h2load over h2c, the body framed by hand (flag byte, 4-byte length, message) with
  `content-type: application/grpc` and `te: trailers` (as benchmarks/grpc_load.py);
- Connect binary: h2load `--h1`, POST `application/proto` to /rules_engine.v1.RulesEngineService/Evaluate;
- Connect JSON: h2load `--h1`, POST `application/json` (the request's proto3 JSON).

The HTTP door serves HTTP/1.1 only for now, so it is driven over HTTP/1.1; every door gets the
same concurrency (`-c 16 -m 1`: 16 connections, one call in flight on each). Before the load,
one real call per door: the three answers must carry the same flags, shadow flags and
undetermined rules. Then a warm-up run per door, then `--rounds` measured runs interleaved
(gRPC, binary, JSON, gRPC, binary, JSON, ...), each its own h2load run with no warm-up inside,
so that the server's CPU (utime + stime from /proc/PID/stat, before and after) and the calls
counted cover the same interval. A run counts only if every response was HTTP 200 (h2load's
log) and the response bytes add up to the calls times the size of a real answer (a gRPC error
is HTTP 200 without a message). The figures reported are the medians of the rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

import grpc
import grpc_load
from google.protobuf import json_format
from grpc_load import BenchmarkError, Server

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "http_door.json"
PATH = "/rules_engine.v1.RulesEngineService/Evaluate"


@dataclasses.dataclass(frozen=True)
class Door:
    name: str
    encoding: str
    content_type: str
    h1: bool  # HTTP/1.1 (the HTTP door) or h2c (gRPC)


DOORS = (
    Door("gRPC", "binary", "application/grpc", h1=False),
    Door("Connect", "binary", "application/proto", h1=True),
    Door("Connect", "JSON", "application/json", h1=True),
)


@dataclasses.dataclass
class EngineServer:
    server: Server
    grpc_port: int
    http_port: int


def start_server(directory: Path, max_workers: int) -> EngineServer:
    grpc_port, http_port = grpc_load.free_port(), grpc_load.free_port()
    executable = Path(sys.executable).with_name("rules-engine")
    command = [
        str(executable),
        "serve",
        "--plaintext",
        "--rulesets",
        str(ROOT / "rulesets"),
        "--default-ruleset",
        "safeguarding",
        "--host",
        "127.0.0.1",
        "--port",
        str(grpc_port),
        "--http-port",
        str(http_port),
        "--metrics-port",
        "0",
        "--workers",
        "1",
        "--max-workers",
        str(max_workers),
        *grpc_load.cache_off(grpc_load.serve_help()),  # every call evaluates: misses, not cache hits
    ]
    log = directory / "rules-engine.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = Server("rules-engine x1", grpc_port, [process], log)
    grpc_load._wait_for_log(server, "over HTTP (Connect)", 1, 180)
    return EngineServer(server, grpc_port, http_port)


def bodies(request: pb.EvaluateRequest) -> dict[Door, bytes]:
    message = request.SerializeToString()
    return {
        DOORS[0]: grpc_load.grpc_frame(message),
        DOORS[1]: message,
        DOORS[2]: json_format.MessageToJson(request, indent=None).encode(),
    }


def _post(port: int, content_type: str, body: bytes) -> bytes:
    call = urllib.request.Request(
        f"http://127.0.0.1:{port}{PATH}", data=body, method="POST", headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(call, timeout=30) as answer:
        if answer.status != 200:
            raise BenchmarkError(f"{content_type}: HTTP {answer.status}")
        data: bytes = answer.read()
        return data


def check_doors(engine: EngineServer, request: pb.EvaluateRequest, sent: dict[Door, bytes]) -> dict[Door, int]:
    """One real call per door; the same flags from all three. Returns each door's response size."""
    with grpc.insecure_channel(f"127.0.0.1:{engine.grpc_port}") as channel:
        stub = pb_grpc.RulesEngineServiceStub(channel)
        try:
            by_grpc = stub.Evaluate(request, timeout=30)
        except grpc.RpcError as error:
            raise BenchmarkError(f"gRPC Evaluate failed: {error.code().name}: {error.details()}") from error
    binary = _post(engine.http_port, DOORS[1].content_type, sent[DOORS[1]])
    text = _post(engine.http_port, DOORS[2].content_type, sent[DOORS[2]])
    by_binary = pb.EvaluateResponse.FromString(binary)
    by_json = json_format.Parse(text, pb.EvaluateResponse())

    def flags(response: pb.EvaluateResponse) -> tuple[Any, ...]:
        # A stateless Evaluate still records its decision, so the case's first call raises its
        # flags as NEW and later calls as ONGOING: everything but that lifecycle state must match.
        copy = pb.EvaluateResponse()
        copy.CopyFrom(response)
        for flag in (*copy.flags, *copy.shadow_flags):
            flag.ClearField("state")
        return (list(copy.flags), list(copy.shadow_flags), list(copy.undetermined), copy.case_id)

    if not by_grpc.flags:
        raise BenchmarkError("the gRPC door raised no flags for the benchmark case: not a fair workload")
    for door, response in ((DOORS[1], by_binary), (DOORS[2], by_json)):
        if flags(response) != flags(by_grpc):
            raise BenchmarkError(f"{door.name} {door.encoding} answered other flags than the gRPC door")
    return {
        DOORS[0]: len(grpc_load.grpc_frame(by_grpc.SerializeToString())),
        DOORS[1]: len(binary),
        DOORS[2]: len(text),
    }


def h2load(
    engine: EngineServer,
    door: Door,
    body: Path,
    *,
    seconds: float,
    clients: int,
    streams: int,
    response_bytes: int,
) -> dict[str, Any]:
    """One h2load run of `seconds` against one door; server CPU over exactly that run."""
    port = engine.http_port if door.h1 else engine.grpc_port
    headers = ["-H", f"content-type: {door.content_type}"]
    if not door.h1:
        headers += ["-H", "te: trailers"]
    args = [*(["--h1"] if door.h1 else []), "-D", f"{seconds:g}", "-t", "1", "-c", str(clients), "-m", str(streams)]
    args += ["-d", str(body), *headers]
    pids = engine.server.all_pids()
    load_before = os.getloadavg()[0]
    run = grpc_load.run_h2load(args, f"http://127.0.0.1:{port}{PATH}", pids)
    summary, latencies, statuses = run.summary, run.latencies, run.statuses
    if not engine.server.alive():
        raise BenchmarkError(f"the server died under load; see {engine.server.log}")
    requests = int(summary["requests"])
    server_cpu = sum(run.server_cpu.values())
    responses_ok = (
        set(statuses) == {"200"}
        and int(summary["succeeded"]) == requests
        and summary["failed"] == 0
        and summary["errored"] == 0
        and summary["data_bytes"] >= 0.95 * requests * response_bytes
    )
    if not responses_ok:
        raise BenchmarkError(
            f"{door.name} {door.encoding}: not every response was a 200 with an answer "
            f"(statuses {statuses}, {summary}, expected {response_bytes} bytes per response)"
        )
    return {
        "door": door.name,
        "encoding": door.encoding,
        "http": "HTTP/1.1" if door.h1 else "h2c",
        "clients": clients,
        "streams": streams,
        "seconds": seconds,
        "requests": requests,
        "statuses": statuses,
        "per_second": summary["per_second"],
        "median_ms": round(grpc_load._percentile(latencies, 0.5), 3),
        "p99_ms": round(grpc_load._percentile(latencies, 0.99), 3),
        "server_cpu_seconds": round(server_cpu, 3),
        "server_cpu_us_per_call": round(server_cpu / max(1, requests) * 1e6, 1),
        "h2load_cpu_seconds": round(run.h2load_cpu, 3),
        "response_bytes": response_bytes,
        "load_average_before": round(load_before, 2),
    }


def run(
    sizes: list[int], seconds: float, warm_up: float, rounds: int, clients: int, max_workers: int
) -> dict[str, Any]:
    missing = grpc_load.h2load_missing()
    if missing:
        raise BenchmarkError(missing)
    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "grpcio": metadata.version("grpcio"),
            "connectrpc": metadata.version("connectrpc"),
            "uvicorn": metadata.version("uvicorn"),
            "protobuf": metadata.version("protobuf"),
            "h2load": subprocess.run(
                [grpc_load.H2LOAD, "--version"], check=False, capture_output=True, text=True
            ).stdout.strip(),
        },
        "settings": {"seconds": seconds, "warm_up": warm_up, "rounds": rounds, "clients": clients, "streams": 1},
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "sizes": [],
    }
    with tempfile.TemporaryDirectory(prefix="http-door-bench-") as scratch:
        directory = Path(scratch)
        engine = start_server(directory, max_workers)
        try:
            for facts in sizes:
                request = grpc_load.evaluate_request(facts, stored_history=False)
                sent = bodies(request)
                files: dict[Door, Path] = {}
                for i, door in enumerate(DOORS):
                    files[door] = directory / f"body-{facts}-{i}"
                    files[door].write_bytes(sent[door])
                sizes_out = check_doors(engine, request, sent)
                print(
                    f"{facts} facts: the three doors answer the same flags; request bytes "
                    + ", ".join(f"{d.name} {d.encoding} {len(sent[d])}" for d in DOORS),
                    flush=True,
                )
                common = {"clients": clients, "streams": 1}
                for door in DOORS:
                    h2load(engine, door, files[door], seconds=warm_up, response_bytes=sizes_out[door], **common)
                runs: dict[Door, list[dict[str, Any]]] = {door: [] for door in DOORS}
                for round_ in range(rounds):
                    for door in DOORS:
                        figures = h2load(
                            engine, door, files[door], seconds=seconds, response_bytes=sizes_out[door], **common
                        )
                        runs[door].append(figures)
                        print(
                            f"  round {round_ + 1} {door.name} {door.encoding:6} {figures['per_second']:8.0f}/s "
                            f"{figures['server_cpu_us_per_call']:7.0f} µs CPU/call p50 {figures['median_ms']:.1f} ms "
                            f"p99 {figures['p99_ms']:.1f} ms (load {figures['load_average_before']})",
                            flush=True,
                        )
                results["sizes"].append(
                    {
                        "facts": facts,
                        "request_bytes": {f"{d.name} {d.encoding}": len(sent[d]) for d in DOORS},
                        "response_bytes": {f"{d.name} {d.encoding}": sizes_out[d] for d in DOORS},
                        "median": [_median(door, runs[door]) for door in DOORS],
                        "runs": [run for door in DOORS for run in runs[door]],
                    }
                )
        finally:
            engine.server.stop()
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _median(door: Door, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "door": door.name,
        "encoding": door.encoding,
        "http": runs[0]["http"],
        "per_second": round(statistics.median(r["per_second"] for r in runs)),
        "server_cpu_us_per_call": round(statistics.median(r["server_cpu_us_per_call"] for r in runs)),
        "median_ms": round(statistics.median(r["median_ms"] for r in runs), 1),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 1),
        "per_second_range": [round(min(r["per_second"] for r in runs)), round(max(r["per_second"] for r in runs))],
        "cpu_us_range": [
            round(min(r["server_cpu_us_per_call"] for r in runs)),
            round(max(r["server_cpu_us_per_call"] for r in runs)),
        ],
    }


def print_table(results: dict[str, Any]) -> None:
    print()
    print("| Door | Encoding | HTTP | Facts | calls/s | CPU µs/call | p50 ms | p99 ms |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for size in results["sizes"]:
        for row in size["median"]:
            print(
                f"| {row['door']} | {row['encoding']} | {row['http']} | {size['facts']} | {row['per_second']:,} "
                f"| {row['server_cpu_us_per_call']:,} | {row['median_ms']} | {row['p99_ms']} |"
            )
    print(f"\nload average before {results['load_average_before']}, after {results['load_average_after']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20,200", help="facts per case, comma list")
    parser.add_argument("--seconds", type=float, default=8.0, help="each measured run")
    parser.add_argument("--warm-up", type=float, default=3.0, help="one run per door before the measured ones")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per door, interleaved")
    parser.add_argument("--clients", type=int, default=16, help="h2load connections (one call in flight on each)")
    parser.add_argument("--max-workers", type=int, default=8, help="the server's gRPC threads (--max-workers)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    options = parser.parse_args()
    try:
        results = run(
            [int(s) for s in options.sizes.split(",")],
            options.seconds,
            options.warm_up,
            options.rounds,
            options.clients,
            options.max_workers,
        )
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    print_table(results)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

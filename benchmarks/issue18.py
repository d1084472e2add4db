"""Issue 18's figures in one run: the peer, the echo, Evaluate on both doors, cache misses and hits,
and the handler-thread A/B.

    python benchmarks/issue18.py                       # both sections, 3 rounds, 10 s runs
    python benchmarks/issue18.py --compare-native      # Evaluate rows with RULES_ENGINE_NATIVE=0 and =1, interleaved
    python benchmarks/issue18.py --only rows --quick   # 1 round of 4 s runs
    python benchmarks/issue18.py --only threads        # the thread A/B alone

Section "rows" (issue 18, "What it must show"). Servers, all on free ports, side by side:
- echo: benchmarks/echo_server.py, 2 processes (SO_REUSEPORT), 8 threads, the 200-fact request;
- cerbos: the Cerbos PDP (benchmarks/peer_cerbos.py), one Go process using both cores, 25 CEL rules
  over 30 attributes, CheckResources over gRPC;
- Evaluate: `rules-engine serve --workers 2` with the in-memory store (benchmarks/serve_unshared.py:
  each process its own store), gRPC, the HTTP door (Connect, binary protobuf `application/proto`,
  over h2c, the same HTTP/2 load as gRPC) and the gRPC protocol on the HTTP door's port (its
  server answers `application/grpc` too: "gRPC@HTTP") on one server; the handler threads are the server's
  default unless --threads. One server with the evaluation cache off (`--evaluation-cache-size 0`:
  every call evaluates: the "miss" rows, the headline) and one with it on (`--cache-size`: h2load
  sends one fixed body, so every call after the first is a hit: the "hit" rows). Without the
  option (before the cache existed) only the miss rows run, every call evaluating anyway.
  With --compare-native, each of those twice: RULES_ENGINE_NATIVE=0 (the Python path) and =1.
  With --http1, also the HTTP door over HTTP/1.1 (64 connections of one call each: the same calls
  in flight; HTTP/1.1 has no multiplexing).
Every row: h2load -c 16 -m 4 (the issue's baseline) over h2c, one h2load thread, a --warm-up run
each first, then --rounds rounds; in each round every row runs once, one after another (the order
rotates by one each round), each run its own h2load process without warm-up inside, so that the
server's CPU (utime + stime of every server process, /proc/PID/stat, just before and after) and
the calls counted cover the same interval. Before the load, real calls must succeed on every row
(Evaluate raises flags, Cerbos allows exactly the expected actions); a run counts only if every
response was HTTP 200 and the response bytes add up to calls x the size of a real answer. The
figures are the medians of the rounds; the ratios the issue judges are the medians of each
round's ratio (runs seconds apart): Evaluate@20 gRPC miss / Cerbos (target >= 1.0, goal 1.5) and
Evaluate@200 gRPC miss / echo (target >= 0.30, goal 0.50).

Section "threads" (issue 18, item 4): `--workers 2` servers with --max-workers 1, 2, 4 and 8 side
by side (cache off), gRPC door, 20- and 200-fact cases. Maximum: h2load -c 16 -m 4, the four
settings interleaved in each of --rounds rounds, medians. Then the tail at half load: for each
size one rate for all four, half the lowest of their median maxima (so every setting is at or
below half its own maximum), paced by h2load over 64 connections (as benchmarks/run.py: 4 streams
each, connections opened one by one across a pacing interval), again interleaved over --rounds
rounds; median p50 and p99.

The load average is printed before and after and recorded with every run: on the shared 2-core
machine the figures drift with other work, which interleaving spreads over every row alike.
JSON (every run) goes to benchmarks/results/issue18.json unless --output.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import grpc_load
import peer_cerbos
from grpc_load import BenchmarkError, LoadRun, Server

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "issue18.json"
SECTIONS = ("rows", "threads")
PATH = "/rules_engine.v1.RulesEngineService/Evaluate"
SIZES = (20, 200)
THREADS = (1, 2, 4, 8)
WORKERS = 2
CACHE_FLAG = "--evaluation-cache-size"
MISS_LABEL = "miss (cache off: every call evaluates)"
MISS_LABEL_NO_CACHE = "miss (no evaluation cache in this build: every call evaluates)"
HIT_LABEL = "hit (cache on, one fixed body: every call after the first)"
HALF_CLIENTS, HALF_STREAMS = 64, 4  # as benchmarks/run.py's half-load runs


@dataclasses.dataclass(frozen=True)
class Settings:
    seconds: float
    warm_up: float
    rounds: int
    clients: int
    streams: int


@dataclasses.dataclass
class Row:
    """One line of the table: a server's door, a body and what a real answer weighs."""

    key: str
    what: str  # echo, cerbos, Evaluate
    door: str  # gRPC, HTTP (Connect binary)
    facts: int | None
    cache: str
    native: str  # the RULES_ENGINE_NATIVE value the server ran with, "" when unset
    server: Server  # port = this door's port
    path: str
    content_type: str
    body: Path
    response_bytes: int = 0
    h1: bool = False  # HTTP/1.1: the same calls in flight as connections of one call each
    runs: list[LoadRun] = dataclasses.field(default_factory=list)
    loads: list[float] = dataclasses.field(default_factory=list)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "",
    )
    h2load = subprocess.run([grpc_load.H2LOAD, "--version"], capture_output=True, text=True, check=False).stdout
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "grpcio": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
        "h2load": h2load.strip(),
    }


def commit(source: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(source), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "?"


# --- checks before the load -----------------------------------------------------------------


def _post(port: int, body: bytes) -> bytes:
    call = urllib.request.Request(
        f"http://127.0.0.1:{port}{PATH}", data=body, method="POST", headers={"Content-Type": "application/proto"}
    )
    with urllib.request.urlopen(call, timeout=30) as answer:
        if answer.status != 200:
            raise BenchmarkError(f"HTTP door: HTTP {answer.status}")
        data: bytes = answer.read()
        return data


def check_evaluate(grpc_port: int, http_port: int, request: pb.EvaluateRequest) -> tuple[int, int, int]:
    """Real calls on both doors, and by a grpcio client on the HTTP door (it speaks gRPC too): OK,
    for the case, with flags. Returns (gRPC framed size, the same on the HTTP door, HTTP body size)."""
    grpc_size = grpc_load.check_calls(grpc_port, request)
    grpc_on_http_size = grpc_load.check_calls(http_port, request)
    by_http = _post(http_port, request.SerializeToString())
    answer = pb.EvaluateResponse.FromString(by_http)
    if not answer.flags:
        raise BenchmarkError("Evaluate raised no flags for the benchmark case: not a fair workload")
    if answer.case_id != request.case.case_id:
        raise BenchmarkError(f"the HTTP door answered for {answer.case_id!r}")
    return grpc_size, grpc_on_http_size, len(by_http)


# --- running rows ---------------------------------------------------------------------------


def run_row(row: Row, settings: Settings, seconds: float) -> LoadRun:
    load_before = os.getloadavg()[0]
    run = grpc_load.h2load(
        row.server,
        row.body,
        seconds=seconds,
        warm_up=0,
        clients=settings.clients * settings.streams if row.h1 else settings.clients,
        streams=1 if row.h1 else settings.streams,
        expected_response_bytes=row.response_bytes,
        path=row.path,
        content_type=row.content_type,
        h1=row.h1,
    )
    if not run.responses_ok:
        raise BenchmarkError(f"{row.key}: not every response was a 200 with an answer ({run.as_json()})")
    row.loads.append(round(load_before, 2))
    return run


def interleave(rows: list[Row], settings: Settings) -> None:
    """A warm-up run of each row, then `rounds` rounds of every row once, the order rotating."""
    print(f"warm-up: {settings.warm_up:g} s per row", flush=True)
    for row in rows:
        run_row(row, settings, settings.warm_up)
        row.loads.clear()
    for round_ in range(settings.rounds):
        shift = round_ % len(rows)
        print(f"round {round_ + 1} of {settings.rounds} (load average {load_average()})", flush=True)
        for row in rows[shift:] + rows[:shift]:
            run = run_row(row, settings, settings.seconds)
            row.runs.append(run)
            print(
                f"  {row.key:<44} {run.per_second:8.0f}/s  {run.server_cpu_us_per_call:6.0f} µs CPU/call  "
                f"p50 {run.median_ms:6.2f} ms  p99 {run.p99_ms:7.2f} ms  (load {row.loads[-1]})",
                flush=True,
            )


def summary(row: Row) -> dict[str, Any]:
    runs = row.runs
    return {
        "key": row.key,
        "what": row.what,
        "door": row.door,
        "facts": row.facts,
        "cache": row.cache,
        "native": row.native,
        "request_bytes": row.body.stat().st_size,
        "response_bytes": row.response_bytes,
        "per_second": round(statistics.median(r.per_second for r in runs)),
        "server_cpu_us_per_call": round(statistics.median(r.server_cpu_us_per_call for r in runs)),
        "median_ms": round(statistics.median(r.median_ms for r in runs), 2),
        "p99_ms": round(statistics.median(r.p99_ms for r in runs), 2),
        "per_second_range": [round(min(r.per_second for r in runs)), round(max(r.per_second for r in runs))],
        "cpu_us_range": [
            round(min(r.server_cpu_us_per_call for r in runs)),
            round(max(r.server_cpu_us_per_call for r in runs)),
        ],
        "load_average_before_runs": row.loads,
        "runs": [r.as_json() for r in runs],
    }


def ratio(numerator: Row, denominator: Row) -> dict[str, Any]:
    """The median of each round's ratio of calls/s (runs of the same round, seconds apart)."""
    each = [a.per_second / b.per_second for a, b in zip(numerator.runs, denominator.runs, strict=True)]
    return {"of": numerator.key, "to": denominator.key, "median": round(statistics.median(each), 3), "rounds": each}


# --- section: rows --------------------------------------------------------------------------


def _evaluate_requests(directory: Path) -> dict[int, tuple[pb.EvaluateRequest, Path, Path]]:
    """Per size: the request, its gRPC-framed body and its bare body (the HTTP door's)."""
    out = {}
    for facts in SIZES:
        request = grpc_load.evaluate_request(facts, stored_history=False)
        message = request.SerializeToString()
        framed, bare = directory / f"evaluate-{facts}.grpc", directory / f"evaluate-{facts}.proto"
        framed.write_bytes(grpc_load.grpc_frame(message))
        bare.write_bytes(message)
        out[facts] = (request, framed, bare)
    return out


def _reference_rows(
    options: argparse.Namespace, directory: Path, running: contextlib.ExitStack, request: pb.EvaluateRequest, body: Path
) -> tuple[list[Row], dict[str, Any], list[str]]:
    """The echo of the 200-fact request and the Cerbos peer: their rows, what ran, and notes."""
    echo = grpc_load.start_echo(WORKERS, directory)
    running.callback(echo.stop)
    size = grpc_load.check_calls(echo.port, request)
    rows = [Row("echo x2 200 facts", "echo", "gRPC", 200, "", "", echo, PATH, "application/grpc", body, size)]
    binary = peer_cerbos.find_cerbos(options.cerbos)
    if binary is None:
        note = f"no Cerbos peer row: cerbos not found ({peer_cerbos.INSTALL_HINT})"
        return rows, {"skipped": note}, [note]
    cerbos = peer_cerbos.start_cerbos(binary, directory)
    running.callback(cerbos.server.stop)
    case = peer_cerbos.workload()
    message = peer_cerbos.request_bytes(case)
    framed = directory / "cerbos-check.grpc"
    framed.write_bytes(grpc_load.grpc_frame(message))
    size = peer_cerbos.check_calls(cerbos.server.port, case, message)
    server = cerbos.server
    rows.append(
        Row(
            "cerbos CheckResources",
            "cerbos",
            "gRPC",
            None,
            "",
            "",
            server,
            peer_cerbos.METHOD,
            "application/grpc",
            framed,
            size,
        )
    )
    entry = {
        "version": cerbos.version,
        "binary": str(binary),
        "processes": 1,
        "rules": len(case["actions"]),
        "attributes": len(case["resource"]["attr"]),
        "allowed": len(case["expected_allowed"]),
    }
    return rows, entry, []


def _evaluate_rows(
    options: argparse.Namespace,
    directory: Path,
    running: contextlib.ExitStack,
    help_text: str,
    requests: dict[int, tuple[pb.EvaluateRequest, Path, Path]],
) -> tuple[list[Row], dict[str, dict[str, Any]]]:
    """One `--workers 2` server per (native setting, cache setting); a row per size and door."""
    has_cache = CACHE_FLAG in help_text
    natives = ["0", "1"] if options.compare_native else [""]
    caches = [("miss", "0"), ("hit", str(options.cache_size))] if has_cache else [("miss", None)]
    rows: list[Row] = []
    servers: dict[str, dict[str, Any]] = {}
    for native in natives:
        for cache, cache_size in caches:
            tag = f"native={native} " if native else ""
            name = f"Evaluate {tag}{cache}"
            server_options = ["--default-ruleset", "safeguarding"]
            if cache_size is not None:
                server_options += [CACHE_FLAG, cache_size]
            if options.threads:
                server_options += ["--max-workers", str(options.threads)]
            http_port = peer_cerbos.free_port()
            environment = {"RULES_ENGINE_NATIVE": native} if native else {}
            server = grpc_load.start_engine(
                WORKERS,
                directory,
                None,
                help_text,
                http_port=http_port,
                options=tuple(server_options),
                environment=environment,
                source=options.code,
                name=name,
            )
            running.callback(server.stop)
            servers[name] = {"options": server_options, "environment": environment, "log": server.log}
            http = dataclasses.replace(server, port=http_port)
            label = (MISS_LABEL if has_cache else MISS_LABEL_NO_CACHE) if cache == "miss" else HIT_LABEL
            for facts in SIZES:
                request, framed, bare = requests[facts]
                grpc_size, grpc_on_http_size, http_size = check_evaluate(server.port, http_port, request)
                key = f"{name} {facts}"
                doors = [("gRPC", "gRPC", server, framed, grpc_size, False)]
                doors.append(("HTTP", "HTTP (Connect binary, h2c)", http, bare, http_size, False))
                # The HTTP door's server answers the gRPC protocol as well (uvicorn with HTTP/2 trailers).
                doors.append(("gRPC@HTTP", "HTTP door, gRPC protocol (h2c)", http, framed, grpc_on_http_size, False))
                if options.http1:
                    doors.append(("HTTP/1.1", "HTTP (Connect binary, HTTP/1.1)", http, bare, http_size, True))
                for short, door, via, body, answer_bytes, h1 in doors:
                    kind = "application/grpc" if short.startswith("gRPC") else "application/proto"
                    row = Row(f"{key} {short}", "Evaluate", door, facts, label, native, via, PATH, kind, body)
                    row.response_bytes, row.h1 = answer_bytes, h1
                    rows.append(row)
    return rows, servers


def run_rows(
    options: argparse.Namespace, settings: Settings, directory: Path, running: contextlib.ExitStack
) -> dict[str, Any]:
    help_text = grpc_load.serve_help(options.code)
    has_cache = CACHE_FLAG in help_text
    notes: list[str] = []
    if not has_cache:
        notes.append(f"`serve` has no {CACHE_FLAG} in this build: miss rows only (every call evaluates), no hit rows")
    requests = _evaluate_requests(directory)
    rows, cerbos_entry, more = _reference_rows(options, directory, running, requests[200][0], requests[200][1])
    notes += more
    evaluate, servers = _evaluate_rows(options, directory, running, help_text, requests)
    rows += evaluate
    print(
        f"rows: {len(rows)} rows, h2load -c {settings.clients} -m {settings.streams}, {settings.seconds:g} s runs, "
        f"{settings.rounds} round(s){'; ' + '; '.join(notes) if notes else ''}",
        flush=True,
    )
    interleave(rows, settings)

    by_key = {row.key: row for row in rows}
    ratios: dict[str, Any] = {}
    for native in ["0", "1"] if options.compare_native else [""]:
        tag = f"native={native} " if native else ""
        for door in ("gRPC", "HTTP", "gRPC@HTTP"):
            e20, e200 = by_key[f"Evaluate {tag}miss 20 {door}"], by_key[f"Evaluate {tag}miss 200 {door}"]
            if "cerbos CheckResources" in by_key:
                ratios[f"{tag}{door} Evaluate@20 / cerbos"] = ratio(e20, by_key["cerbos CheckResources"])
            ratios[f"{tag}{door} Evaluate@200 / echo"] = ratio(e200, by_key["echo x2 200 facts"])
    return {
        "settings": dataclasses.asdict(settings),
        "workers": WORKERS,
        "threads": options.threads or "server default",
        "cache_flag": has_cache,
        "cache_size_for_hits": options.cache_size if has_cache else None,
        "notes": notes,
        "cerbos": cerbos_entry,
        "servers": {name: {k: v for k, v in entry.items() if k != "log"} for name, entry in servers.items()},
        "native_log_lines": {name: _log_mentions(entry["log"]) for name, entry in servers.items()},
        "rows": [summary(row) for row in rows],
        "ratios": ratios,
    }


def _event(line: str) -> str:
    """The message of a JSON log line (the line itself if it is not JSON)."""
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(line).get("event", line))[:200]
    return line[:200]


def _log_mentions(log: Path) -> list[str]:
    """Log lines about the compiled core or its fallback (at most 5): a native row that fell back says so."""
    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if "native" in line.lower() or "fallback" in line.lower()
    ]
    return lines[:5]


# --- section: threads -----------------------------------------------------------------------


def run_threads(
    options: argparse.Namespace, settings: Settings, directory: Path, running: contextlib.ExitStack
) -> dict[str, Any]:
    help_text = grpc_load.serve_help(options.code)
    server_options = ["--default-ruleset", "safeguarding", *grpc_load.cache_off(help_text)]
    requests = _evaluate_requests(directory)
    rows: dict[tuple[int, int], Row] = {}
    for threads in THREADS:
        server = grpc_load.start_engine(
            WORKERS,
            directory,
            None,
            help_text,
            options=(*server_options, "--max-workers", str(threads)),
            source=options.code,
            name=f"Evaluate threads={threads}",
        )
        running.callback(server.stop)
        for facts in SIZES:
            request, framed, _ = requests[facts]
            size = grpc_load.check_calls(server.port, request)
            rows[threads, facts] = Row(
                f"threads={threads} {facts} facts",
                "Evaluate",
                "gRPC",
                facts,
                "miss",
                "",
                server,
                PATH,
                "application/grpc",
                framed,
                size,
            )
    print(
        f"threads: --max-workers {', '.join(map(str, THREADS))} x {WORKERS} processes, gRPC, maximum first",
        flush=True,
    )
    ordered = [rows[t, f] for f in sorted(SIZES, reverse=True) for t in THREADS]
    interleave(ordered, settings)
    rates = {}
    for facts in SIZES:
        lowest = min(statistics.median(r.per_second for r in rows[t, facts].runs) for t in THREADS)
        rates[facts] = max(0.1, round(lowest / 2 / HALF_CLIENTS, 2))
    print(
        "threads: half load, one rate per size for all four settings: "
        + ", ".join(f"{f} facts {rates[f] * HALF_CLIENTS:.0f}/s" for f in SIZES),
        flush=True,
    )
    half: dict[tuple[int, int], list[LoadRun]] = {key: [] for key in rows}
    for round_ in range(settings.rounds):
        print(f"half-load round {round_ + 1} of {settings.rounds} (load average {load_average()})", flush=True)
        for row in ordered[round_ % len(ordered) :] + ordered[: round_ % len(ordered)]:
            threads = next(t for t in THREADS if rows[t, row.facts or 0] is row)
            run = grpc_load.h2load(
                row.server,
                row.body,
                seconds=settings.seconds,
                warm_up=0,
                clients=HALF_CLIENTS,
                streams=HALF_STREAMS,
                expected_response_bytes=row.response_bytes,
                rate_per_client=rates[row.facts or 0],
            )
            half[threads, row.facts or 0].append(run)
            print(
                f"  {row.key:<24} at {run.per_second:6.0f}/s  p50 {run.median_ms:6.2f} ms  p99 {run.p99_ms:7.2f} ms  "
                f"{'ok' if run.responses_ok else 'NOT OK'}",
                flush=True,
            )
    table = []
    for facts in SIZES:
        for threads in THREADS:
            row, paced = rows[threads, facts], half[threads, facts]
            entry = summary(row)
            entry.update(
                {
                    "threads": threads,
                    "half_rate": round(rates[facts] * HALF_CLIENTS),
                    "half_per_second": round(statistics.median(r.per_second for r in paced)),
                    "half_median_ms": round(statistics.median(r.median_ms for r in paced), 2),
                    "half_p99_ms": round(statistics.median(r.p99_ms for r in paced), 2),
                    "half_cpu_us_per_call": round(statistics.median(r.server_cpu_us_per_call for r in paced)),
                    "half_runs": [r.as_json() for r in paced],
                }
            )
            table.append(entry)
    return {
        "settings": dataclasses.asdict(settings),
        "workers": WORKERS,
        "server_options": server_options,
        "rows": table,
    }


# --- output ---------------------------------------------------------------------------------


def print_rows(section: dict[str, Any]) -> None:
    print()
    print("| row | door | facts | cache | native | calls/s | server CPU µs/call | p50 ms | p99 ms |")
    print("|---|---|---:|---|---|---:|---:|---:|---:|")
    for row in section["rows"]:
        low, high = row["per_second_range"]
        print(
            f"| {row['what']} | {row['door']} | {row['facts'] or ''} | {row['cache']} | {row['native']} "
            f"| {row['per_second']:,} ({low:,}-{high:,}) | {row['server_cpu_us_per_call']:,} | {row['median_ms']} "
            f"| {row['p99_ms']} |"
        )
    print()
    targets = {"Evaluate@20 / cerbos": (1.0, 1.5), "Evaluate@200 / echo": (0.30, 0.50)}
    for name, entry in section["ratios"].items():
        floor, goal = next(v for k, v in targets.items() if name.endswith(k))
        verdict = "PASS" if entry["median"] >= floor else "FAIL"
        rounds = ", ".join(f"{r:.3f}" for r in entry["rounds"])
        print(f"  {verdict:<4} {name}: {entry['median']:.3f} (rounds {rounds}; target >= {floor}, goal {goal})")
    for note in section["notes"]:
        print(f"  note: {note}")
    for name, lines in section["native_log_lines"].items():
        events = sorted({_event(line) for line in lines})
        said = "; ".join(events) if events else "nothing logged about the compiled core (loaded, or none in this build)"
        print(f"  {name}: {said}")


def print_threads(section: dict[str, Any]) -> None:
    print()
    print("| threads | facts | max calls/s | CPU µs/call | p99 ms at max | half: calls/s | p50 ms | p99 ms | p99/p50 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in section["rows"]:
        low, high = row["per_second_range"]
        print(
            f"| {row['threads']} | {row['facts']} | {row['per_second']:,} ({low:,}-{high:,}) "
            f"| {row['server_cpu_us_per_call']:,} | {row['p99_ms']} | {row['half_per_second']:,} "
            f"| {row['half_median_ms']} | {row['half_p99_ms']} "
            f"| {row['half_p99_ms'] / max(0.001, row['half_median_ms']):.1f}x |"
        )


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="issue18-bench-") as name:
        yield Path(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (3; --quick: 1)")
    parser.add_argument("--seconds", type=float, default=None, help="each measured run (10; --quick: 4)")
    parser.add_argument("--warm-up", type=float, default=None, help="one unmeasured run per row first (3; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="1 round of 4 s runs")
    parser.add_argument("--clients", type=int, default=16, help="h2load connections (the issue's baseline: 16)")
    parser.add_argument("--streams", type=int, default=4, help="calls in flight per connection (the issue's: 4)")
    parser.add_argument("--compare-native", action="store_true", help="Evaluate rows with RULES_ENGINE_NATIVE=0 and =1")
    parser.add_argument("--cache-size", type=int, default=4096, help=f"{CACHE_FLAG} of the hit rows' server")
    parser.add_argument(
        "--threads", type=int, default=None, help="--max-workers of the rows' servers (default: serve's)"
    )
    parser.add_argument(
        "--http1",
        action="store_true",
        help="also the HTTP door over HTTP/1.1 (clients x streams connections of one call each)",
    )
    parser.add_argument("--cerbos", help="the cerbos binary (default: CERBOS_BIN, benchmarks/.peer, /tmp/cerbos, PATH)")
    parser.add_argument(
        "--code",
        type=Path,
        default=None,
        help="run the servers from the rules_engine package in this checkout (e.g. a git worktree of another commit)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    options = parser.parse_args()
    sections = [s.strip() for s in options.only.split(",") if s.strip()]
    if set(sections) - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(set(sections) - set(SECTIONS)))}")
    if options.code is not None:
        options.code = options.code.resolve()
    settings = Settings(
        seconds=options.seconds or (4.0 if options.quick else 10.0),
        warm_up=options.warm_up if options.warm_up is not None else (1.0 if options.quick else 3.0),
        rounds=options.rounds or (1 if options.quick else 3),
        clients=options.clients,
        streams=options.streams,
    )
    missing = grpc_load.h2load_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 1
    source = options.code or ROOT
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "code": str(source),
        "commit": commit(source),
        "machine": machine(),
        "load_before": load_average(),
    }
    print(
        f"issue 18 benchmarks: code {source} at {results['commit']}, load average {results['load_before']}", flush=True
    )
    started = time.monotonic()
    status = 0
    try:
        for section in sections:
            with scratch() as directory, contextlib.ExitStack() as running:
                runner = run_rows if section == "rows" else run_threads
                results[section] = runner(options, settings, directory, running)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        results["error"] = str(error)
        status = 1
    results["load_after"] = load_average()
    results["seconds"] = round(time.monotonic() - started)
    if "rows" in results:
        print_rows(results["rows"])
    if "threads" in results:
        print_threads(results["threads"])
    print(f"\nload average before {results['load_before']}, after {results['load_after']} ({os.cpu_count()} CPUs)")
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {options.output}")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Every benchmark of issue 7 in one run, a table of the figures and the targets, and a JSON file.

    python benchmarks/run.py [--quick] [--rounds N] [--output results.json] [--only engine,grpc,memory]
    make bench

1. engine: evaluations/s, median and p99 for the safeguarding ruleset over synthetic cases of
   20, 200 and 2,000 facts, in-process, with and without the proto -> domain conversion
   (benchmarks/engine_bench.py).
2. grpc: Evaluate under h2load for 1 and 2 worker processes (`rules-engine serve --workers N`),
   stateless and with stored history in a real redis-server, 200-fact cases; the same load on a
   trivial echo service (benchmarks/echo_server.py) with 1 and 2 processes as the ceiling; p99
   against median at half the maximum throughput; peak resident memory (VmHWM) per process.
   The three servers run side by side and take the maximum load in turn, --rounds times (3;
   1 with --quick): a share of the echo is the median of the rounds' ratios.
3. memory: resident memory after 1,000,000 engine-only evaluations against after 10,000
   (benchmarks/memory_growth.py; 100,000 with --quick).

The machine's load average is recorded before and after: other work on the machine lowers
every figure, and the ratios to the echo ceiling are only fair when both ran under the same load.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import engine_bench
import grpc_load
from grpc_load import BenchmarkError, LoadRun, Server

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "latest.json"
SECTIONS = ("engine", "grpc", "memory")
GRPC_FACTS = 200
# h2load for the maximum: enough connections that SO_REUSEPORT gives every worker some, and
# enough streams in flight to keep every worker's thread pool busy.
MAX_CLIENTS, MAX_STREAMS = 16, 2
# At half the maximum: the rate is per client, so the total is spread over many connections.
# SO_REUSEPORT hashes connections to workers: of 16, one worker of two could get twice the
# other's share (9.1 against 3.5 CPU-seconds in one run), and so run at two thirds of its
# maximum, not half. 64 keep the shares within about a tenth.
HALF_CLIENTS, HALF_STREAMS = 64, 4


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    h2load_version = ""
    if grpc_load.h2load_missing() is None:
        h2load_version = subprocess.run(
            [grpc_load.H2LOAD, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
        "h2load": h2load_version,
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- sections ------------------------------------------------------------------------------


def run_engine(quick: bool) -> list[dict[str, Any]]:
    seconds = 1.0 if quick else 3.0
    print(f"engine: safeguarding ruleset, {seconds:g}s per size ...", flush=True)
    return engine_bench.run(seconds)


def run_memory(quick: bool) -> dict[str, Any]:
    evaluations = 100_000 if quick else 1_000_000
    print(f"memory: {evaluations:,} engine-only evaluations in a fresh process ...", flush=True)
    script = Path(__file__).with_name("memory_growth.py")
    result = subprocess.run(
        [sys.executable, str(script), "--evaluations", str(evaluations), "--baseline", "10000"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchmarkError(f"memory_growth.py failed:\n{result.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def _memory(server: Server) -> dict[str, Any]:
    workers = server.workers()
    top = [p.pid for p in server.processes]
    return {
        "worker_vmhwm_mb": [round(grpc_load.memory_kb(pid) / 1024, 1) for pid in workers],
        "supervisor_vmhwm_mb": [round(grpc_load.memory_kb(pid) / 1024, 1) for pid in top if pid not in workers],
        "helper_vmhwm_mb": [round(grpc_load.memory_kb(pid) / 1024, 1) for pid in server.helpers()],
    }


def _load(server: Server, body: Path, quick: bool, response_bytes: int, rate: float | None = None) -> LoadRun:
    seconds, warm_up = (4.0, 1.0) if quick else (10.0, 2.0)
    clients, streams = (HALF_CLIENTS, HALF_STREAMS) if rate is not None else (MAX_CLIENTS, MAX_STREAMS)
    run = grpc_load.h2load(
        server,
        body,
        seconds=seconds,
        warm_up=warm_up,
        clients=clients,
        streams=streams,
        expected_response_bytes=response_bytes,
        rate_per_client=rate,
    )
    kind = f"at {rate * clients:.0f}/s" if rate is not None else "max"
    # How evenly SO_REUSEPORT spread the connections: each worker's CPU seconds over the run.
    split = " / ".join(f"{c:.1f}" for c in run.worker_cpu_seconds) if len(run.worker_cpu_seconds) > 1 else ""
    print(
        f"  {server.name:<24} {kind:<10} {run.per_second:8.0f}/s  median {run.median_ms:7.2f} ms  "
        f"p99 {run.p99_ms:7.2f} ms  server CPU {run.server_cpu_us_per_call:5.0f} µs/call  "
        f"{'ok' if run.responses_ok else 'RESPONSES NOT OK'}{f'  workers {split} CPU s' if split else ''}",
        flush=True,
    )
    return run


def run_grpc(quick: bool, rounds: int) -> dict[str, Any]:
    missing = grpc_load.h2load_missing()
    if missing is not None:
        print(f"grpc: skipped: {missing}", flush=True)
        return {"skipped": missing}
    help_text = grpc_load.serve_help()
    has_workers = "--workers" in help_text
    worker_counts = (1, 2) if has_workers else (1,)
    note = "" if has_workers else "`rules-engine serve` has no --workers option yet: 1 worker only"
    if note:
        print(f"grpc: {note}", flush=True)
    results: dict[str, Any] = {"facts": GRPC_FACTS, "rounds": rounds, "note": note, "echo": {}, "evaluate": {}}
    with tempfile.TemporaryDirectory(prefix="rules-engine-bench-") as name:
        directory = Path(name)
        requests = {stored: grpc_load.evaluate_request(GRPC_FACTS, stored) for stored in (False, True)}
        bodies = {}
        for stored, request in requests.items():
            bodies[stored] = directory / f"evaluate-{'stored' if stored else 'stateless'}.bin"
            bodies[stored].write_bytes(grpc_load.grpc_frame(request.SerializeToString()))
        results["request_bytes"] = bodies[False].stat().st_size
        with grpc_load.redis_server(directory) as redis:
            for workers in worker_counts:
                print(
                    f"grpc: {workers} process(es), {GRPC_FACTS}-fact case, h2load -c {MAX_CLIENTS} -m {MAX_STREAMS}, "
                    f"{rounds} round(s) of echo, stateless and stored in turn",
                    flush=True,
                )
                with contextlib.ExitStack() as running:
                    echo = grpc_load.start_echo(workers, directory)
                    running.callback(echo.stop)
                    engines = {}
                    for stored in (False, True):
                        url = redis.url if stored else None
                        engines[stored] = grpc_load.start_engine(
                            workers, directory, url, help_text, options=grpc_load.cache_off(help_text)
                        )
                        running.callback(engines[stored].stop)
                    echo_entry, evaluate = _alternate(workers, echo, engines, requests, bodies, quick, rounds)
                    results["echo"][str(workers)] = echo_entry
                    results["evaluate"].update(evaluate)
    return results


def _alternate(
    workers: int,
    echo: Server,
    engines: dict[bool, Server],
    requests: dict[bool, Any],
    bodies: dict[bool, Path],
    quick: bool,
    rounds: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The echo and both engines at their maximum in turn, `rounds` times, so that each round's
    ratio compares runs seconds apart; then each engine at half its median maximum.

    A shared host drifts by a quarter within an hour: one run of each, minutes apart, can
    move the ratio to the echo more than a change to the code does.
    """
    echo_size = grpc_load.check_calls(echo.port, requests[False])
    sizes = {stored: grpc_load.check_calls(server.port, requests[stored]) for stored, server in engines.items()}
    echo_runs: list[LoadRun] = []
    engine_runs: dict[bool, list[LoadRun]] = {stored: [] for stored in engines}
    for _ in range(rounds):
        echo_runs.append(_load(echo, bodies[False], quick, echo_size))
        for stored, server in engines.items():
            engine_runs[stored].append(_load(server, bodies[stored], quick, sizes[stored]))
    echo_entry = {"max": _median_run(echo_runs).as_json(), "rounds": [r.as_json() for r in echo_runs], **_memory(echo)}
    evaluate = {}
    for stored, server in engines.items():
        runs = engine_runs[stored]
        top = _median_run(runs)
        rate = max(0.1, round(top.per_second / 2 / HALF_CLIENTS, 2))  # h2load takes a fractional --rps
        half = _load(server, bodies[stored], quick, sizes[stored], rate=rate)
        grpc_load.check_calls(server.port, requests[stored], calls=1)
        ratios = [run.per_second / base.per_second for run, base in zip(runs, echo_runs, strict=True)]
        evaluate[f"{workers}{'-stored' if stored else ''}"] = {
            "workers": workers,
            "stored_history": stored,
            "max": top.as_json(),
            "rounds": [r.as_json() for r in runs],
            # What the targets judge: the median of the rounds' ratios, each to the echo run of its round.
            "ratio_to_echo": statistics.median(ratios),
            "ratios_to_echo": [round(r, 4) for r in ratios],
            "half": half.as_json(),
            **_memory(server),
        }
    return echo_entry, evaluate


def _median_run(runs: list[LoadRun]) -> LoadRun:
    """The run with the median throughput (the lower middle one of an even number)."""
    return sorted(runs, key=lambda run: run.per_second)[(len(runs) - 1) // 2]


# --- targets and the table -----------------------------------------------------------------


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(target: str, measured: str, ok: bool | None, note: str = "") -> None:
        rows.append({"target": target, "measured": measured, "verdict": _verdict(ok), "note": note})

    grpc = results.get("grpc") or {}
    evaluate = grpc.get("evaluate", {})
    echo = grpc.get("echo", {})
    for stored, floor in ((False, 0.5), (True, 0.4)):
        label = "stored history in Redis" if stored else "stateless"
        workers = 2 if f"2{'-stored' if stored else ''}" in evaluate else 1
        key = f"{workers}{'-stored' if stored else ''}"
        if key in evaluate and str(workers) in echo:
            ratio = evaluate[key]["ratio_to_echo"]
            note = "" if workers == 2 else "1 worker: no --workers yet"
            add(f"Evaluate x2 {label} >= {floor:.0%} of echo x2", f"{ratio:.1%}", ratio >= floor, note)
        else:
            add(f"Evaluate x2 {label} >= {floor:.0%} of echo x2", "-", None, grpc.get("skipped", ""))
    python_rows = [r for r in results.get("engine") or [] if r.get("path", "python") == "python"]
    engine = {(r["facts"], r["with_conversion"]): r for r in python_rows}
    compiled = {r["facts"]: r for r in results.get("engine") or [] if r.get("path") == "compiled"}
    if 200 in compiled:
        rate = compiled[200]["per_second"]
        add("engine >= 10,000 evals/s, 200 facts (compiled core, with conversion)", f"{rate:,}/s", rate >= 10000)
    if (200, True) in engine:
        rate = engine[200, True]["per_second"]
        add("engine >= 3,000 evals/s, 200 facts (with conversion)", f"{rate:,}/s", rate >= 3000)
        ratio = engine[200, True]["per_second"] / engine[2000, True]["per_second"]
        add("engine cost 2,000 facts <= 10x 200 facts", f"{ratio:.1f}x", ratio <= 10)
    else:
        add("engine >= 3,000 evals/s, 200 facts", "-", None)
    for entry in evaluate.values():
        half = entry["half"]
        ratio = half["p99_ms"] / half["median_ms"]
        name = f"x{entry['workers']}{' stored' if entry['stored_history'] else ''}"
        add(
            f"p99 <= 4x median at half max, Evaluate {name}",
            f"{ratio:.1f}x ({half['p99_ms']:.1f}/{half['median_ms']:.1f} ms)",
            ratio <= 4,
        )
    peaks = [mb for entry in evaluate.values() for mb in entry["worker_vmhwm_mb"]]
    if peaks:
        add("memory per worker under load <= 250 MB", f"{max(peaks):.0f} MB peak", max(peaks) <= 250)
    memory = results.get("memory")
    if memory:
        growth = memory["growth_percent"]
        label = f"{memory['baseline_evaluations']:,} -> {memory['evaluations']:,}"
        note = "" if memory["evaluations"] >= 1_000_000 else "--quick"
        add(f"memory growth {label} evaluations <= 5%", f"{growth:+.1f}%", growth <= 5, note)
    return rows


def print_tables(results: dict[str, Any]) -> None:
    print()
    engine = results.get("engine")
    if engine:
        print("Engine only (safeguarding ruleset, one thread)")
        print(f"  {'facts':>6} {'path':>9} {'conversion':>10} {'evals/s':>9} {'median µs':>10} {'p99 µs':>9}")
        for row in engine:
            print(
                f"  {row['facts']:>6} {row.get('path', 'python'):>9} {'yes' if row['with_conversion'] else 'no':>10} "
                f"{row['per_second']:>9,} "
                f"{row['median_us']:>10} {row['p99_us']:>9}"
            )
        print()
    grpc = results.get("grpc") or {}
    if grpc.get("echo"):
        print(f"gRPC Evaluate under h2load ({grpc['facts']}-fact case, {grpc['request_bytes']:,} B request)")
        print(
            f"  {'server':<22} {'calls/s':>8} {'of echo':>8} {'median ms':>10} {'p99 ms':>8} "
            f"{'CPU µs/call':>11} {'half: rate':>10} {'median':>7} {'p99':>7} {'peak MB/worker':>15}"
        )
        for workers, entry in sorted(grpc["echo"].items()):
            top = entry["max"]
            print(
                f"  {'echo x' + workers:<22} {top['per_second']:>8,.0f} {'100%':>8} {top['median_ms']:>10.2f} "
                f"{top['p99_ms']:>8.2f} {top['server_cpu_us_per_call']:>11.0f} {'':>10} {'':>7} {'':>7} "
                f"{'/'.join(f'{m:.0f}' for m in entry['worker_vmhwm_mb']):>15}"
            )
        for entry in grpc["evaluate"].values():
            top, half = entry["max"], entry["half"]
            echo = grpc["echo"].get(str(entry["workers"]))
            share = f"{entry['ratio_to_echo']:.0%}" if echo else "-"
            name = f"Evaluate x{entry['workers']}" + (" stored/redis" if entry["stored_history"] else " stateless")
            print(
                f"  {name:<22} {top['per_second']:>8,.0f} {share:>8} {top['median_ms']:>10.2f} {top['p99_ms']:>8.2f} "
                f"{top['server_cpu_us_per_call']:>11.0f} {half['per_second']:>10,.0f} {half['median_ms']:>7.2f} "
                f"{half['p99_ms']:>7.2f} {'/'.join(f'{m:.0f}' for m in entry['worker_vmhwm_mb']):>15}"
            )
        if grpc.get("note"):
            print(f"  note: {grpc['note']}")
        bad = [
            run["server"] for e in grpc["evaluate"].values() for run in (e["max"], e["half"]) if not run["responses_ok"]
        ]
        if bad:
            print(f"  WARNING: responses not all OK for {', '.join(sorted(set(bad)))}")
        print()
    elif grpc.get("skipped"):
        print(f"gRPC: skipped: {grpc['skipped']}\n")
    memory = results.get("memory")
    if memory:
        print(
            f"Memory: VmRSS {memory['rss_baseline_kb'] / 1024:.1f} MB after {memory['baseline_evaluations']:,} "
            f"evaluations, {memory['rss_end_kb'] / 1024:.1f} MB after {memory['evaluations']:,} "
            f"({memory['growth_percent']:+.2f}%, {memory['facts']}-fact cases, {memory['per_second']:,}/s)"
        )
        print()
    rows = results["targets"]
    width = max(len(r["target"]) for r in rows)
    print("Targets (issue 7)")
    for row in rows:
        note = f"  ({row['note']})" if row["note"] else ""
        print(f"  {row['verdict']:<5} {row['target']:<{width}}  {row['measured']}{note}")
    print(f"\nload average before {results['load_before']}, after {results['load_after']} ({os.cpu_count()} CPUs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs; 100,000 evaluations for memory growth")
    parser.add_argument(
        "--rounds", type=int, default=None, help="gRPC maximum-load rounds of echo and engines in turn (3; --quick: 1)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    options = parser.parse_args()
    sections = [s.strip() for s in options.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "quick": options.quick,
        "machine": machine(),
        "load_before": load_average(),
    }
    started = time.monotonic()
    status = 0
    try:
        if "engine" in sections:
            results["engine"] = run_engine(options.quick)
        if "grpc" in sections:
            rounds = options.rounds or (1 if options.quick else 3)
            results["grpc"] = run_grpc(options.quick, rounds)
        if "memory" in sections:
            results["memory"] = run_memory(options.quick)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        results["error"] = str(error)
        status = 1
    results["load_after"] = load_average()
    results["seconds"] = round(time.monotonic() - started)
    results["targets"] = targets(results)
    print_tables(results)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {options.output}")
    return status


if __name__ == "__main__":
    sys.exit(main())

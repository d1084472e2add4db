"""What equality monitoring costs per Evaluate: the same handler with the counting on and off, in one run.

    python benchmarks/equality_cost.py                      # memory store, 20 and 200 facts
    python benchmarks/equality_cost.py --store redis://localhost:6379/15
    python benchmarks/equality_cost.py --callgrind          # instruction counts too (needs valgrind)

Evaluate as grpcio hands it to the server (request parsed from its bytes, the interceptors `serve`
installs, the servicer, the engine with the evaluation cache off, the store, the response's bytes),
as benchmarks/instructions.py drives it, "on" counting (the server as it runs) and "off" not
(Engine(equality_monitoring=False), and the service's read of the child's groups replaced by a
constant, so "off" is the code before the counting). Each round runs each mode in a fresh process
with its own store, the order alternating, so drift on a shared machine falls on both alike (two
engines in one process bias each other: their stores share one heap and one garbage collector);
the figure is the median over rounds of time.process_time per call (Redis's own CPU, when the store
is Redis, read from INFO and shown apart). `--aa` runs "off" against "off": the harness's own noise.
`--callgrind` counts instructions per call the same way, (over N2 calls - over N1) / (N2 - N1), one
hash seed for every run: a busy machine cannot move it, so on a shared machine it is the figure.

Two workloads, each case's child carrying all four characteristics:
- repeat: one case evaluated again and again, the steady state of a service re-evaluating its
  caseload: the case's marker is checked, nothing new is counted;
- new: a new case id every call, the worst case: a new marker and its counts for every call.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHILD = {"ethnicity": "MWBC", "sex": "2", "disability": "YES", "deprivation_decile": 2}


def _handler(engine: Any) -> Callable[[bytes], bytes]:
    """Evaluate as grpcio calls it, interceptors included (as benchmarks/instructions.py)."""
    import grpc

    from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
    from rules_engine.server.interceptors import ObservingInterceptor
    from rules_engine.server.limits import Limits, RequestGuard
    from rules_engine.service.servicer import RulesEngineServicer

    handler: Any = grpc.unary_unary_rpc_method_handler(
        RulesEngineServicer(engine).Evaluate, request_deserializer=pb.EvaluateRequest.FromString
    )

    class Details:
        method = "/rules_engine.v1.RulesEngineService/Evaluate"
        invocation_metadata = ()

    details: Any = Details()
    for interceptor in reversed((RequestGuard(Limits()), ObservingInterceptor())):
        handler = interceptor.intercept_service(lambda _d, wrapped=handler: wrapped, details)

    class Context:
        def time_remaining(self) -> float:
            return 30.0

        def code(self) -> None:
            return None

        def invocation_metadata(self) -> tuple[()]:
            return ()

    context: Any = Context()
    behaviour: Any = handler.unary_unary
    return lambda data: behaviour(pb.EvaluateRequest.FromString(data), context).SerializeToString()


def _requests(facts: int, count: int, prefix: str) -> list[bytes]:
    from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
    from rules_engine.service import requests
    from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

    message = requests.case_from_json(sized_case(facts))
    for name, value in CHILD.items():
        setattr(message.child, name, value)
    out = []
    for i in range(count):
        message.case_id = f"{prefix}-{i}"
        request = pb.EvaluateRequest(case=message, as_of=LONG_TIMELINE_END.isoformat(), ruleset="safeguarding")
        out.append(request.SerializeToString())
    return out


def _engine(mode: str, store_url: str | None) -> Any:
    """The engine of one process: counting ("on") or not (anything else, with the service's read of the
    child's groups replaced by a constant, so "off" is the code before the counting)."""
    from rules_engine.case.equality import UNRECORDED
    from rules_engine.cli.common import load_engine
    from rules_engine.engine.engine import Engine
    from rules_engine.service import core
    from rules_engine.store import MemoryStore, StoreSettings
    from rules_engine.store.redis import RedisStore

    loaded, registry = load_engine(ROOT / "rulesets")
    loaded.close()
    if store_url is None:
        store: Any = MemoryStore(max_cases=10**7)
    else:
        store = RedisStore(store_url, StoreSettings(key_prefix=f"eq-{mode}-{os.getpid()}:"))
    if mode != "on":
        core.requests.equality_groups = lambda _child: UNRECORDED  # type: ignore[assignment]
    return Engine(registry, store=store, evaluation_cache_size=0, equality_monitoring=mode == "on")


def _redis_cpu(url: str | None) -> float:
    if url is None:
        return 0.0
    import redis

    info = redis.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(mode: str, calls: int, facts: int, workload: str, store_url: str | None) -> dict[str, float]:
    """In this process: CPU microseconds per call over `calls` calls after 20 to warm up (and
    redis-server's, when the store is Redis)."""
    handle = _handler(_engine(mode, store_url))
    batch = _requests(facts, calls + 20 if workload == "new" else 1, mode)
    for data in batch[:20]:  # warm: rule parts, first-call imports
        handle(data)
    chunk = batch[20 : 20 + calls] if workload == "new" else [batch[0]] * calls
    server = _redis_cpu(store_url)
    start = time.process_time()
    for data in chunk:
        handle(data)
    elapsed = time.process_time() - start
    return {"us": 1e6 * elapsed / calls, "redis_us": 1e6 * (_redis_cpu(store_url) - server) / calls}


def run(
    facts: int, workload: str, rounds: int, calls: int, store_url: str | None, modes: tuple[str, str]
) -> dict[str, list[float]]:
    """Per round, each mode in a fresh process, the order alternating: CPU microseconds per call."""
    times: dict[str, list[float]] = {f"{kind}{mode}": [] for mode in modes for kind in ("", "redis ")}
    for r in range(rounds):
        for mode in modes if r % 2 == 0 else modes[::-1]:
            command = [sys.executable, __file__, "--measure", mode, str(calls), "--facts", str(facts)]
            command += ["--workload", workload] + (["--store", store_url] if store_url else [])
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            times[mode].append(figures["us"])
            times[f"redis {mode}"].append(figures["redis_us"])
    return times


def callgrind(facts: int, workload: str, store_url: str | None, calls: tuple[int, int]) -> dict[str, float]:
    """Instructions per call, counting on and off: (instructions over N2 calls - over N1) / (N2 - N1)."""
    counts = {}
    for mode in ("on", "off"):
        totals = []
        for n in calls:
            out = Path(f"/tmp/equality-callgrind-{os.getpid()}-{mode}-{n}.out")
            command = [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--inner",
                mode,
                str(n),
                "--facts",
                str(facts),
                "--workload",
                workload,
            ]
            if store_url:
                command += ["--store", store_url]
            # One hash seed for every run: dicts and sets otherwise vary the count by about a percent.
            environment = {**os.environ, "PYTHONHASHSEED": "0"}
            subprocess.run(command, check=True, capture_output=True, env=environment)
            summary = [line for line in out.read_text().splitlines() if line.startswith("summary:")]
            totals.append(int(summary[0].split()[1]))
            out.unlink()
        counts[mode] = (totals[1] - totals[0]) / (calls[1] - calls[0])
    return counts


def inner(mode: str, calls: int, facts: int, workload: str, store_url: str | None) -> None:
    handle = _handler(_engine(mode, store_url))
    batch = _requests(facts, calls + 20 if workload == "new" else 1, mode)
    for data in batch[:20]:
        handle(data)
    for i in range(calls):
        handle(batch[20 + i] if workload == "new" else batch[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", default="20,200")
    parser.add_argument("--workload", default="repeat,new")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument(
        "--store", default=None, help="a redis:// URL (a database the run may write to); memory by default"
    )
    parser.add_argument("--callgrind", action="store_true", help="instruction counts too (valgrind)")
    parser.add_argument("--callgrind-calls", default="50,250", help="N1,N2: the calls of the two runs compared")
    parser.add_argument("--aa", action="store_true", help="off against off: the harness's own bias, for comparison")
    parser.add_argument("--inner", nargs=2, metavar=("MODE", "CALLS"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from rules_engine.logs import configure_logging

    configure_logging(logging.INFO, stream=open(os.devnull, "w"), background=True)  # noqa: SIM115
    if args.inner:
        inner(args.inner[0], int(args.inner[1]), int(args.facts), args.workload, args.store)
        return
    if args.measure:
        figures = measure(args.measure[0], int(args.measure[1]), int(args.facts), args.workload, args.store)
        print(json.dumps(figures))
        return
    modes = ("off", "off-again") if args.aa else ("on", "off")
    store = args.store or "memory"
    print(f"equality monitoring, CPU per Evaluate (handler), {store} store, {args.rounds} rounds x {args.calls} calls")
    for workload in args.workload.split(","):
        for facts in map(int, args.facts.split(",")):
            times = run(facts, workload, args.rounds, args.calls, args.store, modes)
            on, off = statistics.median(times[modes[0]]), statistics.median(times[modes[1]])
            line = (
                f"{workload:>6} {facts:>4} facts: {modes[1]} {off:7.1f} us  {modes[0]} {on:7.1f} us  "
                f"cost {on - off:+6.1f} us ({100 * (on - off) / off:+.1f}%)"
            )
            if args.store:
                r_on, r_off = (
                    statistics.median(times[f"redis {modes[0]}"]),
                    statistics.median(times[f"redis {modes[1]}"]),
                )
                line += f"  | redis-server CPU off {r_off:5.1f} us  on {r_on:5.1f} us"
            print(line, flush=True)
            if args.callgrind:
                low, high = map(int, args.callgrind_calls.split(","))
                counts = callgrind(facts, workload, args.store, (low, high))
                cost = counts["on"] - counts["off"]
                print(
                    f"{'':>6} {'':>4}        instructions: off {counts['off']:,.0f}  on {counts['on']:,.0f}  "
                    f"cost {cost:+,.0f} ({100 * cost / counts['off']:+.1f}%)",
                    flush=True,
                )


if __name__ == "__main__":
    main()

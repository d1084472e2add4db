"""What equality monitoring costs per Evaluate: the same handler with the counting on and off, in one run.

    python benchmarks/equality_cost.py                      # memory store, 20 and 200 facts
    python benchmarks/equality_cost.py --store redis://localhost:6379/15
    python benchmarks/equality_cost.py --callgrind          # instruction counts too (needs valgrind)

Evaluate as grpcio hands it to the server (request parsed from its bytes, the interceptors `serve`
installs, the servicer, the engine with the evaluation cache off, the store, the response's bytes),
as benchmarks/instructions.py drives it. Two engines over one registry, each with its own store:
one counting (the server as it runs), one not (Engine(equality_monitoring=False), and the service's
read of the child's groups replaced by a constant, so "off" is the code before the counting).
Rounds alternate between them, so drift on a shared machine falls on both alike; CPU time is
time.process_time (Redis's own CPU, when the store is Redis, is read from INFO and shown apart).

Two workloads, each case's child carrying all four characteristics:
- repeat: one case evaluated again and again, the steady state of a service re-evaluating its
  caseload: the case's marker is read, nothing new is counted;
- new: a new case id every call, the worst case: a new marker and 4 x (2 + flags) counter increments.
"""

from __future__ import annotations

import argparse
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


def _engines(store_url: str | None) -> tuple[Any, Any, Any]:
    from rules_engine.cli.common import load_engine
    from rules_engine.engine.engine import Engine
    from rules_engine.store import MemoryStore, StoreSettings
    from rules_engine.store.redis import RedisStore

    counting, registry = load_engine(ROOT / "rulesets")
    stores = []
    for prefix in ("eq-on:", "eq-off:"):
        if store_url is None:
            stores.append(MemoryStore(max_cases=10**7))
        else:
            stores.append(RedisStore(store_url, StoreSettings(key_prefix=f"{prefix}{os.getpid()}:")))
    on = Engine(registry, store=stores[0], evaluation_cache_size=0)
    off = Engine(registry, store=stores[1], evaluation_cache_size=0, equality_monitoring=False)
    counting.close()
    return on, off, registry


def _redis_cpu(url: str | None) -> float:
    if url is None:
        return 0.0
    import redis

    info = redis.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run(facts: int, workload: str, rounds: int, calls: int, store_url: str | None) -> dict[str, list[float]]:
    """CPU microseconds per call of each round, counting on and off, alternating."""
    from rules_engine.case.equality import UNRECORDED
    from rules_engine.service import core, requests

    on, off = _engines(store_url)[:2]
    handle_on, handle_off = _handler(on), _handler(off)
    total = calls * rounds if workload == "new" else 1
    batches = {"on": _requests(facts, total + 20, "on"), "off": _requests(facts, total + 20, "off")}
    reading = requests.equality_groups
    done = {"on": 20, "off": 20}
    for name, handle in (("on", handle_on), ("off", handle_off)):  # warm: rule parts, first-call imports
        for data in batches[name][:20]:
            handle(data)
    times: dict[str, list[float]] = {"on": [], "off": [], "redis on": [], "redis off": []}
    for r in range(rounds):
        for name in ("on", "off") if r % 2 == 0 else ("off", "on"):
            handle = handle_on if name == "on" else handle_off
            core.requests.equality_groups = reading if name == "on" else (lambda _child: UNRECORDED)  # type: ignore[assignment]
            if workload == "new":
                chunk = batches[name][done[name] : done[name] + calls]
                done[name] += calls
            else:
                chunk = [batches[name][0]] * calls
            server = _redis_cpu(store_url)
            start = time.process_time()
            for data in chunk:
                handle(data)
            elapsed = time.process_time() - start
            times[name].append(1e6 * elapsed / calls)
            times[f"redis {name}"].append(1e6 * (_redis_cpu(store_url) - server) / calls)
    core.requests.equality_groups = reading  # type: ignore[assignment]
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
    from rules_engine.case.equality import UNRECORDED
    from rules_engine.service import core

    on, off = _engines(store_url)[:2]
    handle = _handler(on if mode == "on" else off)
    if mode == "off":
        core.requests.equality_groups = lambda _child: UNRECORDED  # type: ignore[assignment]
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
    parser.add_argument("--inner", nargs=2, metavar=("MODE", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from rules_engine.logs import configure_logging

    configure_logging(logging.INFO, stream=open(os.devnull, "w"), background=True)  # noqa: SIM115
    if args.inner:
        inner(args.inner[0], int(args.inner[1]), int(args.facts), args.workload, args.store)
        return
    store = args.store or "memory"
    print(f"equality monitoring, CPU per Evaluate (handler), {store} store, {args.rounds} rounds x {args.calls} calls")
    for workload in args.workload.split(","):
        for facts in map(int, args.facts.split(",")):
            times = run(facts, workload, args.rounds, args.calls, args.store)
            on, off = statistics.median(times["on"]), statistics.median(times["off"])
            line = (
                f"{workload:>6} {facts:>4} facts: off {off:7.1f} us  on {on:7.1f} us  "
                f"cost {on - off:+6.1f} us ({100 * (on - off) / off:+.1f}%)"
            )
            if args.store:
                r_on, r_off = statistics.median(times["redis on"]), statistics.median(times["redis off"])
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

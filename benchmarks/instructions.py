"""Instructions per Evaluate, counted by valgrind's callgrind: figures a busy machine cannot move.

    python benchmarks/instructions.py                    # this checkout: handler and engine, 20 and 200 facts
    python benchmarks/instructions.py --code /tmp/base   # another checkout (a git worktree with its core built)
    python benchmarks/instructions.py --only handler --multiprocess   # metrics as `serve --workers 2` writes them
    python benchmarks/instructions.py --only engine --facts 2000      # other case sizes (repeatable)

Wall-clock and CPU figures on this shared 2-core machine drift with whatever else runs; callgrind
counts the instructions a piece of code executes, the same on every run of the same binary and
input, busy machine or not. It does not count time waiting or lost to cache misses, so it judges
changes to the work a call does, not the transport (benchmarks/issue18.py does that). One
piece it overstates: valgrind hides the CPU's SHA instructions, so the case digest's sha256 is
counted in OpenSSL's portable code (about 240,000 instructions for a 200-fact case's 8 KB, which
take about 5 µs on this machine's SHA extensions).

Two targets, each at 20 and 200 facts (tools/synth.sized_case, the safeguarding ruleset, the
in-memory store, the evaluation cache off so every call evaluates):
- handler: Evaluate as grpcio hands it to the server: the request parsed from its bytes, the
  interceptors `serve` installs (RequestGuard, ObservingInterceptor with its JSON log line, written
  by the background writer to /dev/null), the servicer, the engine, the store, the response's
  bytes. Not grpcio's own C core, nor the thread hand-offs.
- engine: PreparedRuleset.evaluate_encoded alone (the compiled core and the Outcome it builds; the
  Python engine when the core is not built).
Each figure is (instructions over N2 calls - over N1 calls) / (N2 - N1), so start-up and warm-up
cancel out. About a minute per figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIZES = (20, 200)
TARGETS = ("handler", "engine")
FEWER, MORE = 50, 250


def _loop(target: str, facts: int) -> Callable[[], object]:
    """One call of the target, ready to repeat."""
    import datetime as dt

    import grpc

    from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
    from rules_engine.case.dates import latest_date
    from rules_engine.cli.common import load_engine
    from rules_engine.logs import configure_logging
    from rules_engine.server.interceptors import ObservingInterceptor
    from rules_engine.server.limits import Limits, RequestGuard
    from rules_engine.service import requests
    from rules_engine.service.servicer import RulesEngineServicer
    from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

    configure_logging(logging.INFO, stream=open(os.devnull, "w"), background=True)  # noqa: SIM115  # lives as long as the process
    engine, registry = load_engine(ROOT / "rulesets")
    engine.evaluation_cache = None  # every call evaluates: the misses, as the headline rows
    message = requests.case_from_json(sized_case(facts))
    as_of = dt.datetime.combine(LONG_TIMELINE_END, dt.time(), dt.UTC)  # as benchmarks/grpc_load.evaluate_request
    if target == "engine":
        data = message.SerializeToString(deterministic=True)
        day, latest = as_of.date(), latest_date(as_of.date())
        lease = registry.lease("safeguarding")
        prepared = lease.__enter__()
        return lambda: (
            prepared.evaluate_encoded(data, day, latest)
            or prepared.evaluate(requests.case_from_proto(message, day), day)
        )
    data = pb.EvaluateRequest(case=message, as_of=as_of.date().isoformat(), ruleset="safeguarding").SerializeToString()
    path = "/rules_engine.v1.RulesEngineService/Evaluate"
    handler: Any = grpc.unary_unary_rpc_method_handler(
        RulesEngineServicer(engine).Evaluate, request_deserializer=pb.EvaluateRequest.FromString
    )

    class Details:
        method = path
        invocation_metadata = ()

    details: Any = Details()

    def inside(wrapped: Any) -> Callable[[Any], Any]:
        return lambda _details: wrapped

    for interceptor in reversed((RequestGuard(Limits()), ObservingInterceptor())):  # the first runs first, as grpcio
        handler = interceptor.intercept_service(inside(handler), details)

    class Context:  # what the interceptors and the servicer ask of grpc.ServicerContext
        def time_remaining(self) -> float:
            return 30.0

        def code(self) -> None:
            return None

        def invocation_metadata(self) -> tuple[()]:
            return ()

    context: Any = Context()
    behaviour: Any = handler.unary_unary
    parse = handler.request_deserializer  # the interceptors' own (the limits parse leniently)

    def once() -> object:
        answer = behaviour(parse(data), context)
        return answer.SerializeToString()

    return once


def inner(target: str, facts: int, calls: int) -> None:
    from rules_engine import native

    # A core edited but not rebuilt does not load, and the Python engine answers at ten times the
    # cost: refuse to count that as the core's figure (RULES_ENGINE_NATIVE=0 asks for Python).
    if native.load() is None and os.environ.get(native.ENV_SWITCH) != "0":
        raise SystemExit(f"the compiled core is not loaded: {native.unavailable_reason()}")
    once = _loop(target, facts)
    for _ in range(20):  # warm: caches of rule parts, the log writer, first-call imports
        once()
    for _ in range(calls):
        once()


def count(code: Path | None, target: str, facts: int, calls: int) -> int:
    """Instructions of one whole run of `calls` calls (start-up included)."""
    environment = dict(os.environ)
    # A fixed hash seed: string hashes decide dict and set layouts, which moved a figure by up to
    # 25k instructions from run to run of the same code.
    environment.setdefault("PYTHONHASHSEED", "0")
    if code is not None:
        environment["PYTHONPATH"] = str(code)
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--inner",
        target,
        str(facts),
        str(calls),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if result.returncode != 0:  # valgrind reports its count for a failed run too
        raise SystemExit(f"{target} {facts} facts failed: {result.stderr[-2000:]}")
    for line in result.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    raise SystemExit(f"callgrind gave no count for {target} {facts}: {result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, help="run another checkout's rules_engine (its core built in place)")
    parser.add_argument("--only", choices=TARGETS, action="append", help="this target only (repeatable)")
    parser.add_argument(
        "--multiprocess",
        action="store_true",
        help="metrics in multiprocess mode (files in a temporary directory), as `serve --workers 2` keeps them",
    )
    parser.add_argument(
        "--facts", type=int, action="append", help=f"case size (repeatable; default {', '.join(map(str, SIZES))})"
    )
    parser.add_argument("--inner", nargs=3, metavar=("TARGET", "FACTS", "CALLS"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.inner:
        target, facts, calls = options.inner
        inner(target, int(facts), int(calls))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    if options.multiprocess:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="instructions-metrics-")
    rows: list[dict[str, Any]] = []
    for target in options.only or TARGETS:
        for facts in options.facts or SIZES:
            per_call = (count(options.code, target, facts, MORE) - count(options.code, target, facts, FEWER)) // (
                MORE - FEWER
            )
            rows.append({"target": target, "facts": facts, "instructions_per_call": per_call})
            print(f"{target:8s} {facts:4d} facts  {per_call:>12,} instructions per call", flush=True)
    print(json.dumps({"code": str(options.code or ROOT), "multiprocess": options.multiprocess, "rows": rows}))


if __name__ == "__main__":
    main()

"""Measure Evaluate latency against a running server: median, p90, p99, max and calls/s.

    python benchmarks/grpc_latency.py [--address localhost:50051] [--case examples/case.json] [-n 2000]

The case file is the proto3 JSON of a Case, optionally with an "as_of" key beside its fields,
or of a whole EvaluateRequest ({"case": ..., "as_of": ..., "ruleset": ...}). Calls run one at
a time over one channel, so the figures are per-call latency, not throughput under load.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent


def load_request(path: Path, as_of: str | None, ruleset: str | None) -> pb.EvaluateRequest:
    document: dict[str, Any] = json.loads(path.read_text())
    if "case" not in document:
        case_as_of = document.pop("as_of", None) or document.pop("asOf", None)
        document = {"case": document, "as_of": case_as_of or ""}
    request = json_format.ParseDict(document, pb.EvaluateRequest())
    if as_of is not None:
        request.as_of = as_of
    if ruleset is not None:
        request.ruleset = ruleset
    return request


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default="localhost:50051")
    parser.add_argument("--case", type=Path, default=ROOT / "examples" / "case.json")
    parser.add_argument("-n", "--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--as-of", help="override the file's as_of (YYYY-MM-DD or RFC 3339)")
    parser.add_argument("--ruleset", help="ruleset name; default: the only one loaded")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    parser.add_argument(
        "--stored-history", action="store_true", help="merge into the stored case and evaluate the whole history"
    )
    options = parser.parse_args()

    request = load_request(options.case, options.as_of, options.ruleset)
    request.use_stored_history = options.stored_history
    with grpc.insecure_channel(options.address) as channel:
        stub = pb_grpc.RulesEngineServiceStub(channel)
        try:
            grpc.channel_ready_future(channel).result(timeout=options.timeout)
            for _ in range(options.warmup):
                stub.Evaluate(request, timeout=options.timeout)
            latencies = []
            started = time.perf_counter()
            for _ in range(options.calls):
                before = time.perf_counter()
                stub.Evaluate(request, timeout=options.timeout)
                latencies.append((time.perf_counter() - before) * 1000)
            elapsed = time.perf_counter() - started
        except grpc.FutureTimeoutError:
            print(f"no server at {options.address}", file=sys.stderr)
            return 1
        except grpc.RpcError as error:
            print(f"Evaluate failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1

    latencies.sort()
    facts = sum(len(getattr(request.case, f.name)) for f in request.case.DESCRIPTOR.fields if f.is_repeated)
    print(f"{options.calls} Evaluate calls of {options.case.name} ({facts} facts) to {options.address}")
    print(
        f"median {percentile(latencies, 0.5):.3f} ms  p90 {percentile(latencies, 0.9):.3f} ms  "
        f"p99 {percentile(latencies, 0.99):.3f} ms  max {latencies[-1]:.3f} ms  "
        f"{options.calls / elapsed:.0f} calls/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Engine-only throughput and latency: the safeguarding ruleset over synthetic cases of 20, 200 and 2,000 facts.

Measures what one worker does per Evaluate without gRPC. Three paths:
- python: the request's case read into records (requests.case_from_proto), measures, matching
  (durable-rules), explanations: the Python engine, the reference;
- compiled: the case's bytes as a client sends them, handed to the compiled core
  (PreparedRuleset.evaluate_encoded) as the server hands them over (service/received.py):
  reading, measures, conditions and explanations. Always "with conversion": the core starts
  from the bytes;
- compiled+ser: the same with the case serialised again on every call (deterministically), as
  the server did before it kept the bytes it received, and still does for a JSON body or a batch.
Run: `python benchmarks/engine_bench.py [--seconds S]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rules_engine.case.dates import latest_date
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

ROOT = Path(__file__).resolve().parents[1]
SIZES = (20, 200, 2000)


def bench_size(
    prepared: PreparedRuleset, facts: int, seconds: float, with_conversion: bool, path: str = "python"
) -> dict[str, Any]:
    as_of = LONG_TIMELINE_END
    latest = latest_date(as_of)
    message = requests.case_from_json(sized_case(facts))
    case = requests.case_from_proto(message, as_of)
    if path.startswith("compiled"):
        sent = message.SerializeToString()  # what a client puts on the wire
        if prepared.evaluate_encoded(sent, as_of, latest) is None:
            raise RuntimeError(f"the compiled core did not answer: {prepared.native_missing or 'declined'}")
        if path == "compiled":

            def once() -> None:
                prepared.evaluate_encoded(sent, as_of, latest)
        else:

            def once() -> None:
                prepared.evaluate_encoded(message.SerializeToString(deterministic=True), as_of, latest)
    else:

        def once() -> None:
            prepared.evaluate(requests.case_from_proto(message, as_of) if with_conversion else case, as_of)

    for _ in range(50):
        once()
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        once()
        timings.append(time.perf_counter() - start)
    timings.sort()
    return {
        "facts": facts,
        "path": path,
        "with_conversion": with_conversion,
        "evaluations": len(timings),
        "per_second": round(len(timings) / sum(timings)),
        "median_us": round(statistics.median(timings) * 1e6, 1),
        "p99_us": round(timings[int(len(timings) * 0.99)] * 1e6, 1),
    }


def run(seconds: float = 3.0) -> list[dict[str, Any]]:
    prepared = PreparedRuleset(compile_ruleset(ROOT / "rulesets" / "safeguarding"))
    try:
        rows = [bench_size(prepared, n, seconds, conv) for n in SIZES for conv in (False, True)]
        if prepared.native is not None:
            rows += [
                bench_size(prepared, n, seconds, True, path) for path in ("compiled", "compiled+ser") for n in SIZES
            ]
        return rows
    finally:
        prepared.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per size")
    options = parser.parse_args()
    rows = run(options.seconds)
    print(f"{'facts':>6} {'path':>12} {'conversion':>10} {'evals/s':>9} {'median µs':>10} {'p99 µs':>9}")
    for row in rows:
        print(
            f"{row['facts']:>6} {row['path']:>12} {'yes' if row['with_conversion'] else 'no':>10} "
            f"{row['per_second']:>9} {row['median_us']:>10} {row['p99_us']:>9}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

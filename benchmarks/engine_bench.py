"""Engine-only throughput and latency: the safeguarding ruleset over synthetic cases of 20, 200 and 2,000 facts.

Measures what one worker does per Evaluate without gRPC: the request's case read into records
(requests.case_from_proto, as the server does), measures, matching, explanations.
Run: `python benchmarks/engine_bench.py [--seconds S]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

ROOT = Path(__file__).resolve().parents[1]
SIZES = (20, 200, 2000)


def bench_size(prepared: PreparedRuleset, facts: int, seconds: float, with_conversion: bool) -> dict[str, Any]:
    as_of = LONG_TIMELINE_END
    message = requests.case_from_json(sized_case(facts))
    case = requests.case_from_proto(message, as_of)
    for _ in range(50):
        prepared.evaluate(case, as_of)
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        if with_conversion:
            case = requests.case_from_proto(message, as_of)
        prepared.evaluate(case, as_of)
        timings.append(time.perf_counter() - start)
    timings.sort()
    return {
        "facts": facts,
        "with_conversion": with_conversion,
        "evaluations": len(timings),
        "per_second": round(len(timings) / sum(timings)),
        "median_us": round(statistics.median(timings) * 1e6, 1),
        "p99_us": round(timings[int(len(timings) * 0.99)] * 1e6, 1),
    }


def run(seconds: float = 3.0) -> list[dict[str, Any]]:
    prepared = PreparedRuleset(compile_ruleset(ROOT / "rulesets" / "safeguarding"))
    try:
        return [bench_size(prepared, n, seconds, conv) for n in SIZES for conv in (False, True)]
    finally:
        prepared.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per size")
    options = parser.parse_args()
    rows = run(options.seconds)
    print(f"{'facts':>6} {'conversion':>10} {'evals/s':>9} {'median µs':>10} {'p99 µs':>9}")
    for row in rows:
        print(
            f"{row['facts']:>6} {'yes' if row['with_conversion'] else 'no':>10} {row['per_second']:>9} "
            f"{row['median_us']:>10} {row['p99_us']:>9}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

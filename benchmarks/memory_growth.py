"""Resident memory after many engine-only evaluations against after the first 10,000.

    python benchmarks/memory_growth.py [--evaluations 1000000] [--baseline 10000] [--facts 20]

One process, the per-call work of a worker without gRPC: the request's case serialized once
(service.core.encode_case) and evaluated by an Engine over the bundled rulesets (safeguarding)
through the compiled core, as the server does (`--path python`: read into records and evaluated
by the Python engine with its durable-rules matcher), recording each decision and flag
lifecycle in a MemoryStore, and the response encoded (responses.encode_response). The
evaluation cache is off: every call evaluates. The store's decision logs are capped (1,000 entries,
100 per case) so that they fill before the baseline: a bounded log filling up is not a leak. The cases rotate
through 32 seeds (distinct case ids and histories) and the as_of date through 28 consecutive
days, so per-case and per-date caches see what a long-running worker sees. VmRSS is read from
/proc/self/status after a full garbage collection at each checkpoint. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import time
from pathlib import Path
from typing import Any

from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.service.core import encode_case
from rules_engine.service.responses import encode_response
from rules_engine.store import MemoryStore, StoreSettings
from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

ROOT = Path(__file__).resolve().parents[1]
SEEDS = 32
DAYS = 28


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def run(evaluations: int, baseline: int, facts: int, path: str = "compiled") -> dict[str, Any]:
    registry = Registry(ROOT / "rulesets", compile_ruleset)
    registry.reload()
    store = MemoryStore(StoreSettings(decision_maxlen=1_000, case_decision_maxlen=100))
    engine = Engine(registry, store=store, evaluation_cache_size=0)
    messages = [requests.case_from_json(sized_case(facts, seed)) for seed in range(1, SEEDS + 1)]
    days = [LONG_TIMELINE_END - dt.timedelta(days=d) for d in range(DAYS)]
    checkpoints = sorted({baseline, *(n for n in (100_000, 250_000, 500_000) if baseline < n < evaluations)})
    checkpoints.append(evaluations)
    samples: list[dict[str, float]] = []
    started = time.perf_counter()
    done = 0
    try:
        for checkpoint in checkpoints:
            for i in range(done, checkpoint):
                as_of = days[i % DAYS]
                message = messages[i % SEEDS]
                moment = dt.datetime.combine(as_of, dt.time(), dt.UTC)
                if path == "compiled":
                    evaluation = engine.evaluate(encode_case(message, as_of), moment, "safeguarding")
                else:
                    case = requests.case_from_proto(message, as_of)
                    evaluation = engine.evaluate(case, moment, "safeguarding", requests.case_message_digest(message))
                encode_response(evaluation).SerializeToString()
            done = checkpoint
            gc.collect()
            samples.append(
                {"evaluations": done, "rss_kb": rss_kb(), "seconds": round(time.perf_counter() - started, 1)}
            )
    finally:
        registry.close()
    first, last = samples[0], samples[-1]
    return {
        "facts": facts,
        "path": path,
        "evaluations": evaluations,
        "baseline_evaluations": baseline,
        "rss_baseline_kb": first["rss_kb"],
        "rss_end_kb": last["rss_kb"],
        "growth_percent": round((last["rss_kb"] - first["rss_kb"]) / first["rss_kb"] * 100, 2),
        "per_second": round(evaluations / last["seconds"]) if last["seconds"] else None,
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluations", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=10_000)
    parser.add_argument("--facts", type=int, default=20)
    parser.add_argument("--path", choices=("compiled", "python"), default="compiled")
    options = parser.parse_args()
    if not 0 < options.baseline < options.evaluations:
        parser.error("need 0 < --baseline < --evaluations")
    print(json.dumps(run(options.evaluations, options.baseline, options.facts, options.path)))


if __name__ == "__main__":
    main()

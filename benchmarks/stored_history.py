"""The stored-history call without gRPC: Engine.evaluate_history over a real redis-server and in memory.

Each call resends the whole 200-fact case (the usual way a case management system calls), with a
new concern in place of the last call's ("changed": every call writes facts) or as it stands
("resent": the merge changes nothing); every call evaluates the whole history and records a decision.
Run: `PYTHONPATH=. python benchmarks/stored_history.py [--calls N]` (it starts its own redis-server).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from rules_engine.case import records
from rules_engine.case.facts import Concern
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.store import CaseStore, MemoryStore, StoreSettings
from rules_engine.store.redis import RedisStore
from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]


def _bench(store: CaseStore, calls: int, changed: bool) -> tuple[float, float]:
    registry = Registry(ROOT / "rulesets", compile_ruleset)
    registry.reload()
    as_of = dt.datetime.combine(LONG_TIMELINE_END, dt.time(12), dt.UTC)
    engine = Engine(registry, clock=lambda: as_of, store=store)
    base = requests.case_from_proto(requests.case_from_json(sized_case(200)), LONG_TIMELINE_END)
    timings = []
    for i in range(calls + 50):
        case, withdrawn = base, []
        if changed:
            extra = records.of(Concern(id=f"new-{i}", date=LONG_TIMELINE_END, agency="POLICE"))
            case, withdrawn = base._replace(concerns=(*base.concerns, extra)), [("concerns", f"new-{i - 1}")]
        start = time.perf_counter()
        engine.evaluate_history(case, withdrawn, as_of, "safeguarding")
        if i >= 50:
            timings.append(time.perf_counter() - start)
    registry.close()
    timings.sort()
    return statistics.median(timings) * 1000, timings[int(len(timings) * 0.99)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    calls = parser.parse_args().calls
    for changed in (True, False):
        kind = "changed" if changed else "resent"
        median, p99 = _bench(MemoryStore(), calls, changed)
        print(f"memory {kind:8} {calls} calls: median {median:.2f} ms, p99 {p99:.2f} ms")
        with tempfile.TemporaryDirectory() as tmp:
            server = RedisServer(Path(tmp), persistent=False)
            server.start()
            store = RedisStore(server.url, StoreSettings())
            try:
                median, p99 = _bench(store, calls, changed)
            finally:
                store.close()
                server.stop()
        print(f"redis  {kind:8} {calls} calls: median {median:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()

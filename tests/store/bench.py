"""Times the Redis store's hot calls on a 200-fact case: `python -m tests.store.bench`."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rules_engine.policy.compiled import Severity
from rules_engine.store import MemoryStore, StoreSettings
from rules_engine.store.codec import case_from_fields, fact_items, fact_json
from rules_engine.store.redis import RedisStore
from tests.store.conftest import RedisServer
from tests.store.helpers import CASE, NOW, big_case, decision, flags


def _median_ms(call: Callable[[], object], runs: int = 300) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    big = big_case(200)
    raised = flags(("R1", Severity.HIGH), ("R2", Severity.MEDIUM), ("R3", Severity.LOW))
    fields = {f: fact_json(fact) for f, fact in fact_items(big)}
    print(f"200 facts: {sum(map(len, fields.values()))} bytes of fact JSON")
    print(f"encode 200 facts        {_median_ms(lambda: [fact_json(f) for _, f in fact_items(big)]):6.2f} ms")
    print(f"decode 200 facts        {_median_ms(lambda: case_from_fields(CASE, fields)):6.2f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), persistent=False)
        server.start()
        store = RedisStore(server.url, StoreSettings())
        try:
            store.merge_facts(CASE, big, now=NOW)
            print(f"redis merge+load        {_median_ms(lambda: store.merge_facts(CASE, big, now=NOW)):6.2f} ms")
            one = big.model_copy(update={k: () for k in type(big).model_fields if k not in ("case_id", "child")})
            print(f"redis merge 0 new+load  {_median_ms(lambda: store.merge_facts(CASE, one, now=NOW)):6.2f} ms")
            print(f"redis load_case         {_median_ms(lambda: store.load_case(CASE)):6.2f} ms")
            evaluation = lambda: store.record_evaluation(CASE, "rs", raised, decision("d"), now=NOW)  # noqa: E731
            print(f"redis record_evaluation {_median_ms(evaluation):6.2f} ms")
            print(f"redis chronology        {_median_ms(lambda: store.chronology(CASE)):6.2f} ms")
        finally:
            store.close()
            server.stop()
    memory = MemoryStore()
    memory.merge_facts(CASE, big, now=NOW)
    print(f"memory merge+load       {_median_ms(lambda: memory.merge_facts(CASE, big, now=NOW)):6.2f} ms")
    mem_eval = lambda: memory.record_evaluation(CASE, "rs", raised, decision("d"), now=NOW)  # noqa: E731
    print(f"memory record_evaluation {_median_ms(mem_eval):5.2f} ms")


if __name__ == "__main__":
    main()

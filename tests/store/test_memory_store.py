"""What only the in-memory store does: a bound on the cases it keeps, a decision log the GC skips."""

from __future__ import annotations

import gc

from rules_engine.policy.compiled import Severity
from rules_engine.store.base import DecisionFlag, DecisionRecord, FlagSighting, FlagState
from rules_engine.store.memory import MemoryStore
from tests.store.helpers import NOW, case, concern


def test_past_its_bound_the_least_recently_written_case_is_forgotten() -> None:
    store = MemoryStore(max_cases=2)
    for case_id in ("a", "b"):
        store.merge_facts(case_id, case(concern("c1"), case_id=case_id), now=NOW)
    store.merge_facts("a", case(concern("c2"), case_id="a"), now=NOW)  # "a" is now the most recent
    store.merge_facts("c", case(concern("c1"), case_id="c"), now=NOW)

    assert store.load_case("b") is None
    stored = store.load_case("a")
    assert stored is not None and {c.id for c in stored.concerns} == {"c1", "c2"}
    assert store.load_case("c") is not None
    assert store.evicted == 1


def test_a_full_decision_log_is_left_out_of_garbage_collections() -> None:
    """A long-running in-memory worker keeps up to 100,000 decisions: tracked objects would make
    every full collection walk them all (half a second at 100,000), stalling calls meanwhile."""
    store = MemoryStore()
    sightings = [FlagSighting(f"R{i}", Severity.HIGH) for i in range(12)]
    gc.collect()
    before = len(gc.get_objects())
    for i in range(2_000):
        record = DecisionRecord(f"d{i}", NOW, f"case-{i % 10}", "rs", "v1", "0" * 64)
        store.record_evaluation(record.case_id, "rs", sightings, record, now=NOW)
    gc.collect()
    assert len(gc.get_objects()) - before < 500  # the ten cases' flag records, not the log
    newest = store.decisions(limit=1)[0]
    assert newest.decision_id == "d1999" and newest.time == NOW
    assert newest.flags[0] == DecisionFlag("R0", FlagState.ONGOING, Severity.HIGH)


def test_the_servers_settings_bound_the_in_memory_store() -> None:
    from rules_engine.config import Settings
    from rules_engine.engine.engine import open_case_store

    store = open_case_store(Settings(max_cases=3, case_decisions_max_entries=2, decision_log_max_entries=5))
    assert isinstance(store, MemoryStore)
    for i in range(10):
        record = DecisionRecord(f"d{i}", NOW, f"case-{i % 4}", "rs", "v1", "0" * 64)
        store.merge_facts(record.case_id, case(concern("c1"), case_id=record.case_id), now=NOW)
        store.record_evaluation(record.case_id, "rs", [], record, now=NOW)
    assert store.load_case("case-2") is None and store.evicted == 7  # four case ids cycled through three places
    assert [d.decision_id for d in store.decisions(limit=100)] == ["d9", "d8", "d7", "d6", "d5"]
    assert len(store.decisions(case_id="case-1", limit=100)) <= 2

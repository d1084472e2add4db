"""What only the in-memory store does: a bound on the cases it keeps."""

from __future__ import annotations

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

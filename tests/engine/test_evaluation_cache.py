"""The evaluation cache: a repeated request reuses its evaluation, never its decision; what changes the
answer (as_of day, case bytes, ruleset version) is a miss; bounded, thread-safe, and off at size 0."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.case.facts import CaseFacts
from rules_engine.engine.encoded import EncodedCase
from rules_engine.engine.engine import Engine
from rules_engine.engine.evaluation_cache import CacheKey, EvaluationCache
from rules_engine.engine.evaluator import Outcome, PreparedRuleset
from rules_engine.engine.registry import Registry
from rules_engine.errors import EvaluationError
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.service.core import encode_case
from rules_engine.store import MemoryStore

STARTER = Path(__file__).resolve().parents[2] / "rulesets" / "starter"
AS_OF = dt.datetime(2025, 6, 30, 9, 0, tzinfo=dt.UTC)
TODAY = AS_OF.date()


def flagged_case(case_id: str = "case-1", concerns: int = 6) -> case_pb2.Case:
    """Concerns, three workers and an infant: cumulative-concerns and worker-churn hold (starter)."""
    case = case_pb2.Case(case_id=case_id)
    case.child.birth_date = "2024-11-01"
    for i in range(concerns):
        case.concerns.add(id=f"c{i}", date=f"2025-0{i % 6 + 1}-1{i // 6}", agency="POLICE", category="NEGLECT")
    for i in range(3):
        case.allocations.add(id=f"a{i}", date=f"2025-0{i + 1}-01", worker_id=f"w{i}")
    return case


def encoded(message: case_pb2.Case) -> EncodedCase:
    return encode_case(message, TODAY)


def cache_count(result: str) -> float:
    return REGISTRY.get_sample_value("rules_engine_evaluation_cache_total", {"result": result}) or 0.0


class Counted:
    """The evaluations PreparedRuleset.evaluate really ran (every Python evaluation goes through it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        evaluate = PreparedRuleset.evaluate

        def counting(prepared: PreparedRuleset, case: CaseFacts, as_of: dt.date) -> Outcome:
            with self.lock:
                self.calls += 1
            return evaluate(prepared, case, as_of)

        self.lock = threading.Lock()
        monkeypatch.setattr(PreparedRuleset, "evaluate", counting)
        # Until the compiled core answers, every miss is a Python evaluation; with it, count its calls too.
        encoded_fn = getattr(PreparedRuleset, "evaluate_encoded", None)
        if encoded_fn is not None:

            def counting_encoded(prepared: PreparedRuleset, data: bytes, as_of: dt.date, latest: dt.date) -> Any:
                outcome = encoded_fn(prepared, data, as_of, latest)
                if outcome is not None:
                    with self.lock:
                        self.calls += 1
                return outcome

            monkeypatch.setattr(PreparedRuleset, "evaluate_encoded", counting_encoded)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(STARTER, tmp_path / "starter", ignore=shutil.ignore_patterns("tests"))
    return tmp_path


@pytest.fixture
def registry(root: Path) -> Iterator[Registry]:
    loaded = Registry(root, compile_ruleset)
    loaded.reload()
    yield loaded
    loaded.close()


@pytest.fixture
def make_engine(registry: Registry) -> Callable[..., Engine]:
    def make(size: int = 16, clock: Callable[[], dt.datetime] = lambda: AS_OF) -> Engine:
        return Engine(registry, clock=clock, store=MemoryStore(), evaluation_cache_size=size)

    return make


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    return Counted(monkeypatch)


def test_a_repeat_reuses_the_evaluation_with_its_own_decision(
    make_engine: Callable[..., Engine], counted: Counted
) -> None:
    engine = make_engine()
    message = flagged_case()
    hits, misses = cache_count("hit"), cache_count("miss")

    first = engine.evaluate(encoded(message), AS_OF, "starter")
    later = AS_OF + dt.timedelta(hours=3)  # the same day
    second = engine.evaluate(encoded(message), later, "starter")

    assert counted.calls == 1
    assert (cache_count("hit") - hits, cache_count("miss") - misses) == (1, 1)
    assert {f.rule_id for f in first.flags} >= {"cumulative-concerns", "worker-churn"}
    assert second.flags == first.flags
    assert second.shadow_flags == first.shadow_flags
    assert second.measures == first.measures
    assert second.undetermined == first.undetermined
    # The decision is this call's: its own id and moment, its own entry in the log and lifecycle.
    assert second.decision_id != first.decision_id
    assert (first.as_of, second.as_of) == (AS_OF, later)
    decisions = engine.decisions("case-1")
    assert {d.decision_id for d in decisions} == {first.decision_id, second.decision_id}
    assert {d.input_digest for d in decisions} == {requests.case_message_digest(message)}
    assert [first.lifecycle[r].state.value for r in sorted(first.lifecycle)] == ["NEW"] * len(first.lifecycle)
    assert {r.state.value for r in second.lifecycle.values()} == {"ONGOING"}


def test_what_changes_the_answer_is_a_miss(
    make_engine: Callable[..., Engine], counted: Counted, registry: Registry, root: Path
) -> None:
    engine = make_engine()
    message = flagged_case()
    engine.evaluate(encoded(message), AS_OF, "starter")
    assert counted.calls == 1

    engine.evaluate(encoded(message), AS_OF + dt.timedelta(days=1), "starter")  # another as_of day
    assert counted.calls == 2

    changed = flagged_case()
    changed.concerns[0].category = "EMOTIONAL_ABUSE"  # one field, a few bytes
    engine.evaluate(encoded(changed), AS_OF, "starter")
    assert counted.calls == 3

    renamed = flagged_case("case-2")  # the same facts under another case id
    assert engine.evaluate(encoded(renamed), AS_OF, "starter").case_id == "case-2"
    assert counted.calls == 4

    rules = root / "starter" / "rules.yaml"
    rules.write_text(rules.read_text().replace("severity: medium", "severity: low", 1))
    [reload] = registry.reload()
    assert reload.outcome == "loaded"
    after = engine.evaluate(encoded(message), AS_OF, "starter")
    assert counted.calls == 5
    assert after.ruleset_version == reload.version

    engine.evaluate(encoded(message), AS_OF, "starter")  # the new version's entry, now kept
    assert counted.calls == 5


def test_size_zero_turns_the_cache_off(make_engine: Callable[..., Engine], counted: Counted) -> None:
    engine = make_engine(size=0)
    assert engine.evaluation_cache is None
    hits, misses = cache_count("hit"), cache_count("miss")
    for _ in range(3):
        engine.evaluate(encoded(flagged_case()), AS_OF, "starter")
    assert counted.calls == 3
    assert (cache_count("hit"), cache_count("miss")) == (hits, misses)  # nothing looked up


def test_a_case_given_as_facts_is_evaluated_every_time(make_engine: Callable[..., Engine], counted: Counted) -> None:
    # Its input digest is the caller's word, not a digest the engine made of what it evaluates.
    engine = make_engine()
    message = flagged_case()
    case = requests.case_from_proto(message, TODAY)
    for _ in range(2):
        engine.evaluate(case, AS_OF, "starter", requests.case_message_digest(message))
    assert counted.calls == 2


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = EvaluationCache(2)
    outcome = Outcome({}, {}, (), (), (), matcher_fallback=False)
    a, b, c = (CacheKey("r", "v1", TODAY, digest) for digest in "abc")
    cache.put(a, outcome)
    cache.put(b, outcome)
    assert cache.get(a) is outcome  # a is now the most recently used
    cache.put(c, outcome)
    assert len(cache) == 2
    assert cache.get(b) is None
    assert cache.get(a) is outcome and cache.get(c) is outcome


def test_the_bound_holds_through_the_engine(make_engine: Callable[..., Engine], counted: Counted) -> None:
    engine = make_engine(size=2)
    assert engine.evaluation_cache is not None
    for case_id in ("a", "b", "c"):
        engine.evaluate(encoded(flagged_case(case_id)), AS_OF, "starter")
    assert len(engine.evaluation_cache) == 2
    engine.evaluate(encoded(flagged_case("a")), AS_OF, "starter")  # evicted: evaluated again
    engine.evaluate(encoded(flagged_case("c")), AS_OF, "starter")  # kept
    assert counted.calls == 4


def test_a_fallback_outcome_is_never_kept(
    make_engine: Callable[..., Engine], counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = EvaluationCache(4)
    key = CacheKey("r", "v1", TODAY, "d")
    cache.put(key, Outcome({}, {}, (), (), (), matcher_fallback=True))
    assert len(cache) == 0 and cache.get(key) is None

    def failing(*_: object) -> None:
        raise EvaluationError("matcher down")

    monkeypatch.setattr(PreparedRuleset, "_match", failing)
    # The Python path, where durable-rules matches (the compiled core, if built, declines here).
    monkeypatch.setattr(PreparedRuleset, "evaluate_encoded", lambda *_: None, raising=False)
    engine = make_engine()
    for _ in range(2):
        evaluation = engine.evaluate(encoded(flagged_case()), AS_OF, "starter")
        assert evaluation.matcher_fallback
    assert counted.calls == 2  # the next call asks the matcher again
    monkeypatch.undo()


def test_threads_share_one_cache_safely(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(size=8)
    messages = [flagged_case(f"case-{i}", concerns=i % 7) for i in range(12)]
    expected = {m.case_id: make_engine(size=0).evaluate(encoded(m), AS_OF, "starter").flags for m in messages}
    failures: list[BaseException] = []
    start = threading.Barrier(6)

    def work(seed: int) -> None:
        try:
            start.wait()
            for i in range(120):
                message = messages[(seed * 5 + i * 7) % len(messages)]
                assert engine.evaluate(encoded(message), AS_OF, "starter").flags == expected[message.case_id]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert engine.evaluation_cache is not None and len(engine.evaluation_cache) == 8

    cache = EvaluationCache(16)
    outcome = Outcome({}, {}, (), (), (), matcher_fallback=False)

    def hammer(seed: int) -> None:
        for i in range(5_000):
            key = CacheKey("r", "v", TODAY, str((seed * 31 + i) % 40))
            if cache.get(key) is None:
                cache.put(key, outcome)

    threads = [threading.Thread(target=hammer, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 16


def test_stored_history_reuses_the_evaluation_of_an_unchanged_case(
    make_engine: Callable[..., Engine], counted: Counted
) -> None:
    engine = make_engine()
    message = flagged_case()
    case = requests.case_from_proto(message, TODAY)
    first = engine.evaluate_history(case, (), AS_OF, "starter")
    second = engine.evaluate_history(case, (), AS_OF, "starter")  # nothing new: the same stored case
    assert counted.calls == 1
    assert second.flags == first.flags and second.decision_id != first.decision_id
    assert {r.state.value for r in second.lifecycle.values()} == {"ONGOING"}

    more = case_pb2.Case(case_id="case-1")
    more.concerns.add(id="c-new", date="2025-06-20", agency="SCHOOL_NURSE", category="NEGLECT")
    third = engine.evaluate_history(requests.case_from_proto(more, TODAY), (), AS_OF, "starter")
    assert counted.calls == 2
    withdrawn = engine.evaluate_history(case, [("concerns", "c-new")], AS_OF, "starter")
    assert counted.calls == 2  # back to the first facts (a later revision): the first evaluation again
    assert withdrawn.flags == first.flags
    assert third.measures != first.measures
    stored = engine.decisions("case-1")
    assert len(stored) == 4


def test_an_outcome_is_kept_whole_and_apart_from_the_decision() -> None:
    fields = {f.name for f in dataclasses.fields(Outcome)}
    assert not fields & {"decision_id", "as_of", "lifecycle", "resolved"}

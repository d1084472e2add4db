"""A stored-history Evaluate writes nothing unless it succeeds (issue 14, point 3), on both stores.

Each test sends a change (a new concern, a fact withdrawn) to a case that already has facts,
flags and a decision, makes the call fail at one step, and checks that the stored case, the
flag lifecycle and the decision log are exactly as before; then the same call succeeds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from rules_engine.case import records
from rules_engine.case.facts import CaseFacts, Concern
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.errors import CaseChangedError, RulesetNotFoundError
from rules_engine.policy.compiled import Severity
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.store import (
    CaseStore,
    DecisionRecord,
    FlagSighting,
    FlagStates,
    MemoryStore,
    MergedCase,
)
from rules_engine.store.redis import RedisStore

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.datetime(2025, 6, 30, 12, tzinfo=dt.UTC)
LATER = AS_OF + dt.timedelta(days=1)


class InjectedError(Exception):
    pass


class FaultyStore:
    """A real store with a failure injected at one step of a stored-history Evaluate (our seam,
    not a mock: every other call reaches the real store)."""

    def __init__(self, store: CaseStore, fail_at: str, bad_severity: Any = None) -> None:
        self._store = store
        self.fail_at = fail_at
        self.bad_severity = bad_severity
        self.between: Any = None  # called between read and commit, once

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def read_merged(self, case_id: str, incoming: CaseFacts, withdrawn: Sequence[tuple[str, str]] = ()) -> MergedCase:
        merged = self._store.read_merged(case_id, incoming, withdrawn)
        if self.fail_at == "after read":
            raise InjectedError(self.fail_at)
        if self.between is not None:
            between, self.between = self.between, None
            between()
        return merged

    def commit_evaluation(
        self,
        merged: MergedCase,
        ruleset: str,
        raised: Sequence[FlagSighting],
        decision: DecisionRecord,
        now: Any,
        **options: Any,
    ) -> FlagStates:
        if self.fail_at == "before the write":
            raise InjectedError(self.fail_at)
        if self.fail_at == "during the write":
            # A sighting the write step cannot store, after valid ones: the lifecycle of those is
            # computed first, so a store that wrote as it went would leave them behind.
            raised = [*raised, FlagSighting("zz-unstorable", self.bad_severity)]
        return self._store.commit_evaluation(merged, ruleset, raised, decision, now, **options)


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    registry = Registry(ROOT / "rulesets", compile_ruleset)
    registry.reload()
    yield registry
    registry.close()


def _example() -> CaseFacts:
    message = requests.case_from_json(json.loads((ROOT / "examples" / "case.json").read_text(encoding="utf-8")))
    return requests.case_from_proto(message, AS_OF.date())


def _change(case: CaseFacts) -> tuple[CaseFacts, list[tuple[str, str]]]:
    """The second call: one new concern, the first concern withdrawn."""
    new = records.of(Concern(id="c-new", date=dt.date(2025, 6, 29), agency="POLICE", significant_harm=True))
    return case._replace(concerns=(*case.concerns, new)), [("concerns", case.concerns[0].id)]


def _snapshot(store: CaseStore, case_id: str) -> dict[str, Any]:
    """Everything stored for the case, the flag lifecycle included, and the shared decision log."""
    stored = store.load_case(case_id)
    if isinstance(store, MemoryStore):
        state = store._cases.get(case_id)
        lifecycle = dict(state.flags) if state else {}
        revision = state.revision if state else None
    else:
        assert isinstance(store, RedisStore)
        raw = store._client
        facts_key, flags_key, _ = store.case_keys(case_id)
        lifecycle, revision = raw.hgetall(flags_key), raw.hget(facts_key, "#rev")
    return {
        "case": records.of(stored) if stored else None,
        "revision": revision,
        "lifecycle": lifecycle,
        "chronology": store.chronology(case_id),
        "case_decisions": store.decisions(case_id, limit=1000),
        "log": store.decisions(None, limit=1000),
        "equality counts": store.equality_counts(),
    }


def _prime(engine: Engine, case: CaseFacts) -> None:
    evaluation = engine.evaluate_history(case, (), AS_OF, "starter")
    assert evaluation.flags  # the case raises flags, so a lifecycle is stored
    assert engine.store.decisions(case.case_id)


@pytest.mark.parametrize("fail_at", ["after read", "during evaluation", "before the write", "during the write"])
def test_a_failed_stored_history_evaluate_writes_nothing(store: CaseStore, registry: Registry, fail_at: str) -> None:
    case = _example()
    _prime(Engine(registry, clock=lambda: AS_OF, store=store), case)
    before = _snapshot(store, case.case_id)
    # Memory: a severity that is no number fails packing the decision; Redis: one that is no level
    # fails inside the commit script, after the lifecycle of the valid flags was computed.
    faulty = FaultyStore(store, fail_at, "bogus" if isinstance(store, MemoryStore) else 99)
    engine = Engine(registry, clock=lambda: LATER, store=faulty)  # type: ignore[arg-type]
    changed, withdrawn = _change(case)
    ruleset = "no-such-ruleset" if fail_at == "during evaluation" else "starter"
    expected: type[Exception] = {
        "during evaluation": RulesetNotFoundError,
        "during the write": ValueError if isinstance(store, MemoryStore) else redis.ResponseError,
    }.get(fail_at, InjectedError)
    with pytest.raises(expected):
        engine.evaluate_history(changed, withdrawn, LATER, ruleset)
    assert _snapshot(store, case.case_id) == before

    faulty.fail_at = ""
    evaluation = engine.evaluate_history(changed, withdrawn, LATER, "starter")
    after = _snapshot(store, case.case_id)
    assert after["case"] != before["case"] and after["lifecycle"] != before["lifecycle"]
    assert [d.decision_id for d in after["case_decisions"][:1]] == [evaluation.decision_id]
    assert len(after["log"]) == len(before["log"]) + 1


def test_a_stream_of_the_wrong_type_fails_the_commit_before_any_write(store: CaseStore, registry: Registry) -> None:
    """Redis does not roll a failed script back: the commit checks its streams before writing."""
    if not isinstance(store, RedisStore):
        pytest.skip("Redis only")
    case = _example()
    engine = Engine(registry, clock=lambda: AS_OF, store=store)
    _prime(engine, case)
    raw = store._client
    # The stream the commit appends to besides the case's index: the log, or on a cluster the
    # outbox of the case's slot.
    target = store._log_target(case.case_id)
    kept = target + ":kept"  # same hash tag, same slot
    log = raw.xrange(target)
    if log:
        raw.rename(target, kept)
    raw.set(target, "not a stream")
    try:
        facts, flags, index = store.case_keys(case.case_id)
        read = lambda: (raw.hgetall(facts), raw.hgetall(flags), raw.xrange(index))  # noqa: E731
        before = read()
        changed, withdrawn = _change(case)
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            engine.evaluate_history(changed, withdrawn, LATER, "starter")
        assert read() == before
    finally:
        raw.delete(target)
        if log:
            raw.rename(kept, target)
        assert raw.xrange(target) == log


def test_a_write_between_read_and_commit_makes_the_evaluation_read_again(store: CaseStore, registry: Registry) -> None:
    case = _example()
    _prime(Engine(registry, clock=lambda: AS_OF, store=store), case)
    faulty = FaultyStore(store, "")
    other = records.of(Concern(id="c-other", date=dt.date(2025, 6, 28), agency="HEALTH"))
    faulty.between = lambda: store.merge_case(case.case_id, case._replace(concerns=(other,)), now=LATER)
    engine = Engine(registry, clock=lambda: LATER, store=faulty)  # type: ignore[arg-type]
    changed, withdrawn = _change(case)
    evaluation = engine.evaluate_history(changed, withdrawn, LATER, "starter")
    stored = store.load_case(case.case_id)
    assert stored is not None
    ids = {c.id for c in stored.concerns}
    assert {"c-new", "c-other"} <= ids and case.concerns[0].id not in ids
    # The decision recorded is of the case both writes made, not of the view read first.
    [latest, *_] = store.decisions(case.case_id)
    assert latest.decision_id == evaluation.decision_id
    assert "concerns:c-other" in json.dumps([e.fact_type + ":" + e.fact_id for e in store.chronology(case.case_id)])


def test_commit_refuses_a_stale_read_and_writes_nothing(store: CaseStore) -> None:
    from tests.store.helpers import CASE, NOW, case, concern, decision, flags

    store.merge_case(CASE, case(concern("a")), now=NOW)
    merged = store.read_merged(CASE, case(concern("b")))
    store.merge_case(CASE, case(concern("c")), now=NOW)
    before = _snapshot(store, CASE)
    with pytest.raises(CaseChangedError):
        store.commit_evaluation(merged, "rs", flags(("R1", Severity.HIGH)), decision("d1"), NOW)
    assert _snapshot(store, CASE) == before

"""Equality monitoring counters in both stores (memory, Redis, Redis Cluster), run through the same
cases: distinct cases per ruleset version, every characteristic, dismissals and resolutions once,
groups recorded later moving the counts, no case id anywhere in the counters."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from typing import Any

import pytest

from rules_engine import metrics
from rules_engine.case.equality import CHARACTERISTICS, NOT_RECORDED, UNRECORDED, Groups
from rules_engine.case.facts import Child
from rules_engine.policy.compiled import Severity
from rules_engine.store import CaseStore, DecisionRecord, MemoryStore
from rules_engine.store import equality as counting
from rules_engine.store.redis import RedisStore
from tests.store.helpers import NOW, case, concern, flags

RULESET, V1, V2 = "safeguarding", "abc123def456", "fff000fff000"
GROUPS: Groups = ("MWBC", "2", "YES", "1")
HIGH, MEDIUM = Severity.HIGH, Severity.MEDIUM


def _decision(case_id: str, version: str = V1) -> DecisionRecord:
    return DecisionRecord(f"d-{case_id}-{version}", NOW, case_id, RULESET, version, "0" * 64)


def _evaluate(
    store: CaseStore, case_id: str, raised: list[str], groups: Groups = GROUPS, version: str = V1, day: int = 0
) -> None:
    now = NOW + dt.timedelta(days=day)
    sightings = flags(*((rule, HIGH) for rule in raised))
    store.record_evaluation(case_id, RULESET, sightings, _decision(case_id, version), now, groups=groups)


def _cells(store: CaseStore, characteristic: str = "ethnicity") -> dict[tuple[str, str, str], int]:
    """(rule, group, outcome) -> count for one characteristic, of the V1 counters."""
    return {
        (rule, group, outcome): n
        for (ruleset, version, rule, c, group, outcome), n in store.equality_counts().items()
        if ruleset == RULESET and version == V1 and c == characteristic
    }


def test_a_case_evaluated_many_times_counts_once_under_every_characteristic(store: CaseStore) -> None:
    for day in range(5):
        _evaluate(store, "case-a", ["r1"], day=day)
    counts = store.equality_counts()
    for characteristic, group in zip(CHARACTERISTICS, GROUPS, strict=True):
        assert counts[(RULESET, V1, "*", characteristic, group, "evaluated")] == 1
        assert counts[(RULESET, V1, "*", characteristic, group, "flagged")] == 1
        assert counts[(RULESET, V1, "r1", characteristic, group, "flagged")] == 1
    assert len(counts) == 3 * len(CHARACTERISTICS)


def test_cases_add_up_by_group_and_unflagged_cases_count_as_evaluated(store: CaseStore) -> None:
    _evaluate(store, "a", ["r1", "r2"])
    _evaluate(store, "b", ["r1"])
    _evaluate(store, "c", [], groups=("WBRI", "1", "NO", "7"))
    _evaluate(store, "d", [], groups=UNRECORDED)
    cells = _cells(store)
    assert cells == {
        ("*", "MWBC", "evaluated"): 2,
        ("*", "MWBC", "flagged"): 2,
        ("r1", "MWBC", "flagged"): 2,
        ("r2", "MWBC", "flagged"): 1,
        ("*", "WBRI", "evaluated"): 1,
        ("*", NOT_RECORDED, "evaluated"): 1,
    }
    assert _cells(store, "deprivation_decile")[("*", "7", "evaluated")] == 1


def test_first_dismissal_counts_once_and_resolution_once(store: CaseStore) -> None:
    _evaluate(store, "a", ["r1", "r2"])
    store.acknowledge("a", RULESET, "r1", practitioner_id="p1", reason_code="SEEN", snooze_until=None, now=NOW)
    # Snoozed after the acknowledgement: the case's flag was dismissed already, counted once.
    later = NOW + dt.timedelta(hours=1)
    store.acknowledge(
        "a", RULESET, "r1", practitioner_id="p1", reason_code="WAIT", snooze_until=dt.date(2025, 4, 1), now=later
    )
    store.acknowledge(
        "a", RULESET, "r2", practitioner_id="p1", reason_code="WAIT", snooze_until=dt.date(2025, 4, 1), now=later
    )
    _evaluate(store, "a", ["r2"], day=1)  # r1 stops holding
    _evaluate(store, "a", ["r1", "r2"], day=2)  # raised again: a new episode, not a new case
    _evaluate(store, "a", ["r2"], day=3)  # and resolved again
    cells = _cells(store)
    assert cells[("r1", "MWBC", "acknowledged")] == 1
    assert ("r1", "MWBC", "snoozed") not in cells
    assert cells[("r2", "MWBC", "snoozed")] == 1
    assert cells[("*", "MWBC", "acknowledged")] == 1  # the case's first dismissal of any flag
    assert ("*", "MWBC", "snoozed") not in cells
    assert cells[("r1", "MWBC", "resolved")] == 1
    assert cells[("*", "MWBC", "resolved")] == 1
    assert cells[("r1", "MWBC", "flagged")] == 1 and cells[("*", "MWBC", "evaluated")] == 1


def test_every_outcome_stays_within_flagged_and_flagged_within_evaluated(store: CaseStore) -> None:
    for i in range(6):
        raised = ["r1"] if i % 2 else ["r1", "r2"]
        _evaluate(store, f"c{i}", raised, groups=("BAFR" if i < 3 else "WBRI", "1", "NO", "3"))
        store.acknowledge(f"c{i}", RULESET, "r1", practitioner_id="p1", reason_code="SEEN", snooze_until=None, now=NOW)
        _evaluate(store, f"c{i}", [], groups=UNRECORDED, day=1)
    counts = store.equality_counts()
    for (ruleset, version, rule, characteristic, group, outcome), n in counts.items():
        flagged = counts.get((ruleset, version, rule, characteristic, group, "flagged"), 0)
        evaluated = counts[(ruleset, version, "*", characteristic, group, "evaluated")]
        assert flagged <= evaluated
        if outcome in ("acknowledged", "snoozed", "resolved"):
            assert n <= flagged
    # A call without the groups kept the ones recorded: nothing moved to "not recorded".
    assert not any(key[4] == NOT_RECORDED for key in counts)


def test_a_characteristic_recorded_later_moves_the_cases_counts(store: CaseStore) -> None:
    _evaluate(store, "a", ["r1"], groups=UNRECORDED)
    store.acknowledge("a", RULESET, "r1", practitioner_id="p1", reason_code="SEEN", snooze_until=None, now=NOW)
    _evaluate(store, "a", ["r1"], groups=("AIND", NOT_RECORDED, NOT_RECORDED, NOT_RECORDED), day=1)
    ethnicity, sex = _cells(store), _cells(store, "sex")
    assert ethnicity == {
        ("*", "AIND", "evaluated"): 1,
        ("*", "AIND", "flagged"): 1,
        ("r1", "AIND", "flagged"): 1,
        ("r1", "AIND", "acknowledged"): 1,
        ("*", "AIND", "acknowledged"): 1,
    }
    assert sex[("*", NOT_RECORDED, "evaluated")] == 1  # still not recorded: nothing moved
    _evaluate(store, "a", ["r1"], groups=("APKN", "1", "NO", "2"), day=2)  # corrected
    assert _cells(store)[("*", "APKN", "evaluated")] == 1
    assert ("*", "AIND", "evaluated") not in _cells(store)
    assert _cells(store, "sex")[("r1", "1", "acknowledged")] == 1


def test_a_new_ruleset_version_counts_the_case_afresh(store: CaseStore) -> None:
    _evaluate(store, "a", ["r1"])
    _evaluate(store, "a", ["r1"], version=V2, day=1)
    counts = store.equality_counts()
    for version in (V1, V2):
        assert counts[(RULESET, version, "r1", "sex", "2", "flagged")] == 1
    # The flag raised under V1 and dismissed now counts under the version its marker holds (V2).
    store.acknowledge("a", RULESET, "r1", practitioner_id="p1", reason_code="SEEN", snooze_until=None, now=NOW)
    counts = store.equality_counts()
    assert counts[(RULESET, V2, "r1", "sex", "2", "acknowledged")] == 1
    assert (RULESET, V1, "r1", "sex", "2", "acknowledged") not in counts


def test_stored_history_evaluations_count_too(store: CaseStore) -> None:
    child = Child(birth_date=dt.date(2016, 1, 1), ethnicity="CHNE", sex="9", disability="NOT_KNOWN")
    merged = store.read_merged("h", case(concern("c1"), case_id="h", child=child))
    store.commit_evaluation(
        merged, RULESET, flags(("r1", MEDIUM)), _decision("h"), NOW, groups=("CHNE", "9", "NOT_KNOWN", NOT_RECORDED)
    )
    cells = _cells(store)
    assert cells[("*", "CHNE", "evaluated")] == 1 and cells[("r1", "CHNE", "flagged")] == 1
    assert _cells(store, "deprivation_decile")[("*", NOT_RECORDED, "evaluated")] == 1


def test_without_groups_nothing_is_counted(store: CaseStore) -> None:
    store.record_evaluation("a", RULESET, flags(("r1", HIGH)), _decision("a"), NOW)
    store.acknowledge("a", RULESET, "r1", practitioner_id="p1", reason_code="SEEN", snooze_until=None, now=NOW)
    assert store.equality_counts() == {}


def test_deleting_a_case_keeps_the_counts_and_forgets_the_marker(store: CaseStore) -> None:
    _evaluate(store, "gone", ["r1"])
    store.delete_case("gone")
    counts = store.equality_counts()
    assert counts[(RULESET, V1, "*", "ethnicity", "MWBC", "evaluated")] == 1
    if isinstance(store, RedisStore):
        assert store._client.exists(store.equality_key("gone")) == 0
    _evaluate(store, "gone", ["r1"], day=1)  # a case written again after its erasure is a new case
    assert store.equality_counts()[(RULESET, V1, "*", "ethnicity", "MWBC", "evaluated")] == 2


def test_no_case_id_in_the_counters(store: CaseStore) -> None:
    for i in range(3):
        _evaluate(store, f"secret-case-{i}", ["r1"])
    text = repr(store.equality_counts())
    assert "secret-case" not in text
    if isinstance(store, RedisStore):
        raw = store._client
        keys = [k for k in raw.scan_iter(match=f"{store.settings.key_prefix}*equality-counts*")]
        assert keys
        for key in keys:
            assert "secret-case" not in key and "secret-case" not in repr(raw.hgetall(key))


def test_the_counters_are_counted_in_prometheus_as_totals_only(store: CaseStore) -> None:
    before = _metric_totals()
    _evaluate(store, "m1", ["r1"])
    _evaluate(store, "m1", ["r1"], day=1)
    _evaluate(store, "m2", [])
    after = _metric_totals()
    assert after["evaluated"] - before["evaluated"] == 2
    assert after["flagged"] - before["flagged"] == 1
    assert all(set(s.labels) == {"outcome"} for m in metrics.EQUALITY_CASES.collect() for s in m.samples)


def _metric_totals() -> Counter[str]:
    totals: Counter[str] = Counter()
    for metric in metrics.EQUALITY_CASES.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                totals[sample.labels["outcome"]] += int(sample.value)
    return totals


def test_the_pure_functions_mirror_what_the_stores_do() -> None:
    marker = None
    counts: counting.JointCounts = {}
    for raised in (("r1",), ("r1",), ()):
        done = counting.evaluated(marker, V1, GROUPS, raised, [] if raised else ["r1"])
        counting.apply(counts, RULESET, done)
        marker = done.marker
    assert counting.marginals(counts)[(RULESET, V1, "r1", "ethnicity", "MWBC", "resolved")] == 1
    assert counting.cell_key(counting.cell_field((RULESET, V1, "*", "sex", "2", "flagged"))) == (
        RULESET,
        V1,
        "*",
        "sex",
        "2",
        "flagged",
    )
    with pytest.raises(ValueError):
        counting.dismissed(marker, "r1", "resolved")


def test_the_memory_stores_marker_is_dropped_with_an_evicted_case() -> None:
    store = MemoryStore(max_cases=2)
    for i in range(3):
        _evaluate(store, f"e{i}", [])
    assert store.equality_counts()[(RULESET, V1, "*", "sex", "2", "evaluated")] == 3
    _evaluate(store, "e0", [], day=1)  # forgotten when evicted: counted again, as the docs say
    assert store.equality_counts()[(RULESET, V1, "*", "sex", "2", "evaluated")] == 4
    assert dataclasses.is_dataclass(store._cases["e0"])


def test_a_counts_key_of_the_wrong_type_fails_the_script_before_it_writes(store: CaseStore) -> None:
    if not isinstance(store, RedisStore):
        pytest.skip("Redis only: a key of another type")
    import redis

    store._client.set(store.equality_counts_key("w"), "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        _evaluate(store, "w", ["r1"])
    assert store._client.hgetall(store.case_keys("w")[1]) == {}  # no lifecycle written
    assert store.decisions("w") == []
    store._client.delete(store.equality_counts_key("w"))
    store._client.set(store.equality_key("m"), "not a hash")  # the case's marker
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        _evaluate(store, "m", ["r1"])
    assert store._client.hgetall(store.case_keys("m")[1]) == {}
    assert store.decisions("m") == []


def test_the_scripts_equality_argument_is_the_version_and_groups_tab_separated() -> None:
    from rules_engine.case.equality import LABELS
    from rules_engine.store.redis import _equality_arg

    every = [(g, g, g, g) for labels in LABELS.values() for g in labels] + [UNRECORDED]
    for groups in every:
        assert _equality_arg(V1, groups).split("\t") == [V1, *groups]  # no group holds a tab
    assert _equality_arg(V1, None) == ""


def test_redis_lua_and_the_memory_store_count_alike_over_random_events(redis_server: Any) -> None:
    """The Lua mirrors store/equality.py: the same random history of evaluations (flags raised and
    ended, groups recorded late or corrected, a new ruleset version), acknowledgements and snoozes
    gives the same counters in both stores."""
    import random

    from rules_engine.store import StoreSettings

    rng = random.Random(20)
    memory = MemoryStore()
    redis_store = RedisStore(redis_server.url, StoreSettings(key_prefix="eq-random:"))
    choices = [UNRECORDED, GROUPS, ("WBRI", NOT_RECORDED, "NO", "5"), ("BAFR", "1", NOT_RECORDED, NOT_RECORDED)]
    try:
        for step in range(300):
            case_id = f"r{rng.randrange(12)}"
            now = NOW + dt.timedelta(hours=step)
            if rng.random() < 0.25:
                rule = rng.choice(["r1", "r2", "r3"])
                snooze = dt.date(2026, 1, 1) if rng.random() < 0.5 else None
                for store in (memory, redis_store):
                    try:
                        store.acknowledge(
                            case_id, RULESET, rule, practitioner_id="p", reason_code="X", snooze_until=snooze, now=now
                        )
                    except Exception as exc:  # not raised: the same in both
                        assert type(exc).__name__ == "FlagNotFoundError"
                continue
            raised = [r for r in ("r1", "r2", "r3") if rng.random() < 0.4]
            version = V1 if step < 220 else V2
            groups = rng.choice(choices)
            for store in (memory, redis_store):
                sightings = flags(*((rule, HIGH) for rule in raised))
                store.record_evaluation(case_id, RULESET, sightings, _decision(case_id, version), now, groups=groups)
        assert memory.equality_counts() == redis_store.equality_counts()
        assert len(memory.equality_counts()) > 50
    finally:
        redis_store.close()

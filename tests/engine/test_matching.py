"""The durable-rules matcher against the reference evaluator, on generated conditions and values."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_engine.engine.matching import PARTITION_CONDITIONS, Matcher, count_leaves, to_durable
from rules_engine.engine.reference import ReferenceEvaluator, Truth
from rules_engine.errors import EvaluationError, SourcePosition
from rules_engine.policy.compiled import (
    BoolOp,
    Compare,
    CompiledRule,
    CompiledRuleset,
    Const,
    Expr,
    FlaggedRef,
    MeasureRef,
    MeasureValue,
    Not,
    Severity,
)

AT = SourcePosition("t.yaml", 1, 1)
MEASURES = ["a", "b", "c", "d"]
OPS = ["==", "!=", "<", "<=", ">", ">="]


def rule(rule_id: str, condition: Expr, level: int = 0, depends_on: tuple[str, ...] = ()) -> CompiledRule:
    return CompiledRule(
        id=rule_id,
        title=rule_id,
        severity=Severity.MEDIUM,
        escalation="Team manager",
        explanation="",
        condition_text="",
        condition=condition,
        source_kind="local",
        source_reference="test",
        status="active",
        position=AT,
        level=level,
        depends_on=depends_on,
    )


def ruleset(*rules: CompiledRule, version: str = "v1") -> CompiledRuleset:
    return CompiledRuleset(name="test", version=version, rules=tuple(rules), measures=())


def compare(op: str, name: str, value: float) -> Compare:
    return Compare(op, MeasureRef(name, AT), Const(value, AT), AT)  # type: ignore[arg-type]


leaves = st.builds(
    lambda op, name, value, flip: (
        Compare(op, Const(value, AT), MeasureRef(name, AT), AT) if flip else compare(op, name, value)
    ),
    st.sampled_from(OPS),
    st.sampled_from(MEASURES),
    st.integers(0, 6),
    st.booleans(),
) | st.builds(
    lambda name, values, negated: Compare(
        "not in" if negated else "in", MeasureRef(name, AT), Const(tuple(values), AT), AT
    ),
    st.sampled_from(MEASURES),
    st.lists(st.integers(0, 6), min_size=1, max_size=3, unique=True),
    st.booleans(),
)

conditions: st.SearchStrategy[Expr] = st.recursive(
    leaves,
    lambda inner: (
        st.builds(lambda e: Not(e, AT), inner)
        | st.builds(
            lambda op, parts: BoolOp(op, tuple(parts), AT),
            st.sampled_from(["and", "or"]),
            st.lists(inner, min_size=2, max_size=3),
        )
    ),
    max_leaves=8,
)

values = st.fixed_dictionaries({name: st.one_of(st.none(), st.integers(0, 6)) for name in MEASURES})


def match_all(matcher: Matcher, compiled: CompiledRuleset, measures: Mapping[str, MeasureValue]) -> set[str]:
    held: set[str] = set()
    for level in range(matcher.levels):
        flags = {r.id: r.id in held for r in compiled.rules if r.level < level}
        held |= matcher.match_level(level, measures, flags)
    return held


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions=st.lists(conditions, min_size=1, max_size=6), samples=st.lists(values, min_size=1, max_size=8))
def test_engine_holds_exactly_where_the_reference_is_true(
    conditions: list[Expr], samples: list[dict[str, int | None]]
) -> None:
    compiled = ruleset(*(rule(f"r{i}", c) for i, c in enumerate(conditions)))
    reference = ReferenceEvaluator(compiled)
    matcher = Matcher(compiled)
    try:
        for measures in samples:
            expected = {rule_id for rule_id, truth in reference.evaluate(measures).items() if truth is True}
            assert match_all(matcher, compiled, measures) == expected
    finally:
        matcher.close()


def test_missing_value_makes_a_comparison_and_its_negation_undetermined() -> None:
    compiled = ruleset(rule("gt", compare(">", "a", 5)), rule("not-gt", Not(compare(">", "a", 5), AT)))
    reference = ReferenceEvaluator(compiled)
    matcher = Matcher(compiled)
    try:
        assert match_all(matcher, compiled, {"a": None}) == set()
        assert reference.evaluate({"a": None}) == {"gt": None, "not-gt": None}
        assert match_all(matcher, compiled, {"a": 6}) == {"gt"}
    finally:
        matcher.close()


def test_composite_rule_sees_the_base_rules() -> None:
    base = rule("base", compare(">=", "a", 5))
    other = rule("other", compare("==", "b", 0))
    composite = rule(
        "both",
        BoolOp("and", (FlaggedRef("base", AT), Not(FlaggedRef("other", AT), AT)), AT),
        level=1,
        depends_on=("base", "other"),
    )
    compiled = ruleset(base, other, composite)
    matcher = Matcher(compiled)
    try:
        assert match_all(matcher, compiled, {"a": 5, "b": 1}) == {"base", "both"}
        assert match_all(matcher, compiled, {"a": 5, "b": 0}) == {"base", "other"}
        assert match_all(matcher, compiled, {"a": 4, "b": 1}) == set()
    finally:
        matcher.close()
    outcomes: dict[str, Truth] = ReferenceEvaluator(compiled).evaluate({"a": 5, "b": None})
    assert outcomes == {"base": True, "other": None, "both": None}


def test_a_fact_satisfying_every_condition_stays_under_the_engine_limit() -> None:
    # 200 rules over one measure: the value 1000 satisfies all of them at once, which in one
    # durable ruleset fails with error 303 beyond 64 conditions.
    rules = [rule(f"r{i}", compare(">=", "a", i)) for i in range(200)]
    compiled = ruleset(*rules)
    matcher = Matcher(compiled)
    try:
        assert match_all(matcher, compiled, {"a": 1000}) == {r.id for r in rules}
        assert match_all(matcher, compiled, {"a": 10}) == {f"r{i}" for i in range(11)}
    finally:
        matcher.close()


def test_partitions_respect_the_condition_budget() -> None:
    condition = BoolOp("and", tuple(compare(">=", "a", i) for i in range(10)), AT)
    assert count_leaves(to_durable(condition)) == 10
    assert PARTITION_CONDITIONS < 64


def test_the_same_version_can_be_registered_twice_and_released() -> None:
    compiled = ruleset(rule("r", compare(">", "a", 1)))
    first, second = Matcher(compiled), Matcher(compiled)
    assert match_all(second, compiled, {"a": 2}) == {"r"}
    first.close()
    assert match_all(second, compiled, {"a": 2}) == {"r"}
    second.close()
    with pytest.raises(EvaluationError):
        second.match_level(0, {"a": 2})

"""The pure-Python evaluator of compiled conditions, in three-valued logic.

It answers when the durable-rules Matcher fails (or alone, with `--matcher reference`),
explains which rules are undetermined, and cross-checks the Matcher in tests. A missing
measure (None) makes a comparison unknown; `and`/`or`/`not` follow Kleene's logic, so a
rule holds (True) exactly when the Matcher would match it, and is undetermined (None)
when missing data could change the outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rules_engine.policy.compiled import (
    COMPARISONS,
    BoolOp,
    Compare,
    CompiledRuleset,
    Const,
    Expr,
    FlaggedRef,
    MeasureRef,
    MeasureValue,
)
from rules_engine.policy.compiled import Not as NotExpr

Truth = bool | None
Flags = Mapping[str, Truth]
Condition = Callable[[Mapping[str, MeasureValue], Flags], Truth]
_Operand = Callable[[Mapping[str, MeasureValue]], Any]


def _operand(expr: Const | MeasureRef) -> _Operand:
    if isinstance(expr, Const):
        value = expr.value
        return lambda measures: value
    name = expr.name
    return lambda measures: measures.get(name)


def _compare(expr: Compare) -> Condition:
    test = COMPARISONS[expr.op]
    left, right = _operand(expr.left), _operand(expr.right)

    def condition(measures: Mapping[str, MeasureValue], flags: Flags) -> Truth:
        a, b = left(measures), right(measures)
        if a is None or b is None:
            return None
        return test(a, b)

    return condition


def _junction(parts: list[Condition], decisive: bool) -> Condition:
    """`and` (decisive False) or `or` (decisive True) in Kleene's logic: one decisive operand
    decides; otherwise any unknown operand makes the whole unknown."""

    def condition(measures: Mapping[str, MeasureValue], flags: Flags) -> Truth:
        unknown = False
        for part in parts:
            value = part(measures, flags)
            if value is decisive:
                return decisive
            if value is None:
                unknown = True
        return None if unknown else not decisive

    return condition


def _not(inner: Condition) -> Condition:
    def condition(measures: Mapping[str, MeasureValue], flags: Flags) -> Truth:
        value = inner(measures, flags)
        return None if value is None else not value

    return condition


def compile_condition(expr: Expr) -> Condition:
    """Turn a condition tree into a closure over (measures, flags of other rules)."""
    if isinstance(expr, Compare):
        return _compare(expr)
    if isinstance(expr, BoolOp):
        parts = [compile_condition(operand) for operand in expr.operands]
        return _junction(parts, decisive=expr.op == "or")
    if isinstance(expr, NotExpr):
        return _not(compile_condition(expr.operand))
    if isinstance(expr, FlaggedRef):
        rule_id = expr.rule_id
        return lambda measures, flags: flags.get(rule_id)
    if isinstance(expr, MeasureRef):
        name = expr.name

        def boolean(measures: Mapping[str, MeasureValue], flags: Flags) -> Truth:
            value = measures.get(name)
            return None if value is None else bool(value)

        return boolean
    constant = bool(expr.value)
    return lambda measures, flags: constant


class ReferenceEvaluator:
    """Evaluates every rule of a ruleset in dependency order."""

    def __init__(self, ruleset: CompiledRuleset) -> None:
        self._rules = [(rule.id, compile_condition(rule.condition)) for rule in ruleset.rules]
        self._by_id = dict(self._rules)

    def rule(self, rule_id: str, measures: Mapping[str, MeasureValue], flags: Flags) -> Truth:
        return self._by_id[rule_id](measures, flags)

    def evaluate(self, measures: Mapping[str, MeasureValue]) -> dict[str, Truth]:
        outcomes: dict[str, Truth] = {}
        for rule_id, condition in self._rules:
            outcomes[rule_id] = condition(measures, outcomes)
        return outcomes

"""Rule matching through durable-rules: the only module that imports durable_rules_engine.

We call durable-rules' C functions directly with plain JSON definitions (see
shared/durable-rules-notes.md): one long-lived session per process, one summary fact
per case holding the measured values, assert -> drain fired actions -> retract. The
`Host` API and the DSL are never used: their timer threads race with the caller.

Limits shaped by durable-rules' hazards:
- a fact satisfying more than 64 conditions fails with error 303, so each level's rules
  are split into partitions of at most PARTITION_CONDITIONS leaf conditions;
- values of mixed types compare as strings, so the compiler type-checks conditions first;
- a registered ruleset cannot be replaced, so every partition gets a unique name
  (`name@version#L<level>P<n>.<serial>`) and is freed with delete_ruleset on release.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import durable_rules_engine as _dre

from rules_engine.errors import EvaluationError
from rules_engine.policy.compiled import (
    FLIPPED,
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
    walk,
)

PARTITION_CONDITIONS = 48
_SID = "worker"
_FACT_ID = "case"
# A field present on every summary fact, so constant conditions can be expressed.
_ALWAYS = "always__"

_OPS = {"==": "$eq", "!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_serials = itertools.count()


def measure_key(name: str) -> str:
    return "m_" + name


def flag_key(rule_id: str) -> str:
    # Rule ids contain hyphens; durable field names are kept to identifiers.
    return "f_" + rule_id.replace("-", "_")


def _leaf(op: str, key: str, right: Any) -> dict[str, Any]:
    if op == "==":
        return {key: right}
    return {_OPS[op]: {key: right}}


def _compare(expr: Compare, negate: bool) -> dict[str, Any]:
    op: str = _NEGATED[expr.op] if negate and expr.op in _NEGATED else expr.op
    left, right = expr.left, expr.right
    if isinstance(left, Const) and isinstance(right, MeasureRef):
        left, right = right, left
        op = FLIPPED.get(op, op)
    if op in ("in", "not in"):
        if not (isinstance(left, MeasureRef) and isinstance(right, Const) and isinstance(right.value, tuple)):
            raise EvaluationError(f"unsupported membership test at {expr.position}")
        inside = (op == "in") != negate
        key = measure_key(left.name)
        if inside:
            return {"$or": [{key: v} for v in right.value]} if len(right.value) != 1 else {key: right.value[0]}
        return {"$and": [{"$neq": {key: v}} for v in right.value]} if right.value else {"$ex": {key: 1}}
    if isinstance(left, MeasureRef) and isinstance(right, Const):
        return _leaf(op, measure_key(left.name), right.value)
    if isinstance(left, MeasureRef) and isinstance(right, MeasureRef):
        return _leaf(op, measure_key(left.name), {"$m": measure_key(right.name)})
    if isinstance(left, Const) and isinstance(right, Const):
        return _constant(_python_compare(op, left.value, right.value))
    raise EvaluationError(f"unsupported comparison at {expr.position}")


def _python_compare(op: str, left: Any, right: Any) -> bool:
    result: bool = {
        "==": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]
    return result


def _constant(value: bool) -> dict[str, Any]:
    return {_ALWAYS: 1 if value else 0}


def to_durable(expr: Expr, negate: bool = False) -> dict[str, Any]:
    """Translate a condition to a durable-rules condition; `not` is pushed down to the leaves.

    Pushing negation down keeps three-valued logic: a missing measure is absent from the
    fact, so neither `x > 5` nor its negation `x <= 5` matches, as in the reference.
    """
    if isinstance(expr, Compare):
        return _compare(expr, negate)
    if isinstance(expr, BoolOp):
        op = expr.op if not negate else ("or" if expr.op == "and" else "and")
        parts = [to_durable(operand, negate) for operand in expr.operands]
        return {"$and" if op == "and" else "$or": parts}
    if isinstance(expr, Not):
        return to_durable(expr.operand, not negate)
    if isinstance(expr, FlaggedRef):
        return {flag_key(expr.rule_id): not negate}
    if isinstance(expr, MeasureRef):
        return {measure_key(expr.name): not negate}
    if isinstance(expr, Const):
        return _constant(bool(expr.value) != negate)
    raise EvaluationError(f"unsupported expression {type(expr).__name__}")


def count_leaves(condition: Mapping[str, Any]) -> int:
    """Leaf conditions in a durable condition: what the 64-per-fact limit counts."""
    total = 0
    for key, value in condition.items():
        if key in ("$and", "$or"):
            total += sum(count_leaves(part) for part in value)
        else:
            total += 1
    return total


def _fired_rule(message: str) -> str:
    """The rule name of a fired action, `{"<rule>":{"m":{...the whole fact...}}}`.

    Decoding the JSON would parse the whole summary fact once per fired rule; the name is
    the first key, and our rule keys (flag_key) never contain quotes or escapes.
    """
    start = message.index('"') + 1
    return message[start : message.index('"', start)]


@dataclass(frozen=True)
class _Partition:
    name: str
    handle: int
    rule_ids: frozenset[str]
    # What its rules read, as (name, fact key): each partition is sent only these, since
    # durable-rules' cost grows with the size of the fact it parses.
    measures: tuple[tuple[str, str], ...]
    flags: tuple[tuple[str, str], ...]


def _partition(
    rules: list[tuple[CompiledRule, dict[str, Any]]],
) -> list[list[tuple[CompiledRule, dict[str, Any]]]]:
    groups: list[list[tuple[CompiledRule, dict[str, Any]]]] = []
    current: list[tuple[CompiledRule, dict[str, Any]]] = []
    weight = 0
    for rule, condition in rules:
        leaves = count_leaves(condition)
        if current and weight + leaves > PARTITION_CONDITIONS:
            groups.append(current)
            current, weight = [], 0
        current.append((rule, condition))
        weight += leaves
    if current:
        groups.append(current)
    return groups


class Matcher:
    """The compiled rules of one ruleset version registered in durable-rules.

    Not thread-safe: durable-rules holds no locks and never releases the GIL, so each
    process serialises its calls (threads would add no throughput anyway).
    """

    def __init__(self, ruleset: CompiledRuleset) -> None:
        self._lock = threading.Lock()
        self._levels: list[list[_Partition]] = []
        self._closed = False
        serial = next(_serials)
        by_level: dict[int, list[tuple[CompiledRule, dict[str, Any]]]] = {}
        for rule in ruleset.rules:
            by_level.setdefault(rule.level, []).append((rule, to_durable(rule.condition)))
        try:
            for level in sorted(by_level):
                partitions = []
                for index, group in enumerate(_partition(by_level[level])):
                    name = f"{ruleset.name}@{ruleset.version}#L{level}P{index}.{serial}"
                    definition = {flag_key(rule.id): {"all": [{"m": cond}]} for rule, cond in group}
                    handle = _dre.create_ruleset(name, json.dumps(definition))
                    nodes = [node for rule, _ in group for node in walk(rule.condition)]
                    measures = dict.fromkeys(n.name for n in nodes if isinstance(n, MeasureRef))
                    flags = dict.fromkeys(n.rule_id for n in nodes if isinstance(n, FlaggedRef))
                    partitions.append(
                        _Partition(
                            name,
                            handle,
                            frozenset(rule.id for rule, _ in group),
                            tuple((m, measure_key(m)) for m in measures),
                            tuple((d, flag_key(d)) for d in flags),
                        )
                    )
                self._levels.append(partitions)
        except _dre.error as exc:
            self.close()
            raise EvaluationError(f"the matching engine refused ruleset {ruleset.name}: {exc}") from exc
        self._rule_by_key = {flag_key(rule.id): rule.id for rule in ruleset.rules}

    @property
    def levels(self) -> int:
        return len(self._levels)

    def match_level(
        self, level: int, measures: Mapping[str, MeasureValue], flags: Mapping[str, bool] | None = None
    ) -> set[str]:
        """Ids of the rules of one level that hold.

        Missing measures (None) are left out of the fact, so no comparison on them
        matches. `flags` gives the outcome of lower-level rules for composite rules;
        undetermined rules are left out of it.
        """
        held: set[str] = set()
        with self._lock:
            if self._closed:
                raise EvaluationError("the ruleset was released")
            for partition in self._levels[level]:
                fact: dict[str, Any] = {"id": _FACT_ID, "sid": _SID, _ALWAYS: 1}
                for name, key in partition.measures:
                    value = measures.get(name)
                    if value is not None:
                        fact[key] = value
                if flags:
                    for rule_id, key in partition.flags:
                        holds = flags.get(rule_id)
                        if holds is not None:
                            fact[key] = holds
                held.update(self._run(partition, json.dumps(fact)))
        return held

    def _run(self, partition: _Partition, payload: str) -> set[str]:
        fired: set[str] = set()
        try:
            result = _dre.assert_fact(partition.handle, payload)
            state = result[1]
            action = _dre.start_action_for_state(partition.handle, state)
            while action:
                fired.add(_fired_rule(action[1]))
                following = _dre.complete_and_start_action(partition.handle, state)
                action = (None, following) if following else None
        except _dre.error as exc:
            raise EvaluationError(f"matching engine error in {partition.name}: {exc}") from exc
        finally:
            with contextlib.suppress(_dre.error):  # the fact was never asserted
                _dre.retract_fact(partition.handle, payload)
        return {self._rule_by_key[key] for key in fired if key in self._rule_by_key}

    def close(self) -> None:
        """Free the rulesets registered in durable-rules; later calls to match fail."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for partitions in self._levels:
                for partition in partitions:
                    _dre.delete_ruleset(partition.handle)
            self._levels = []

"""Compile `where:` filters over one fact type into Python predicates, type-checked against its fields.

Field types come from the fact model's annotations (case.fields): Literal codes are text
with a fixed set of allowed values, bool is true/false, int/float are numbers, tuples are
lists, and dates may only be tested against None. Each filter compiles to a FactFilter built from
small closures, in two forms: a test of one fact and a mask over a list of facts (see
compiled.FactFilter). The author's text is never passed to eval or exec.
"""

from __future__ import annotations

import ast
import functools
import operator
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from rules_engine.case.fields import FieldKind, FieldType
from rules_engine.policy.compiled import COMPARISONS, FLIPPED, FactFilter, FilterSpec
from rules_engine.policy.conditions import (
    BOOLEAN_NAMES,
    COMPARE_OPS,
    ParameterValue,
    ParsedCondition,
    comparisons,
    constant_value,
    protected,
    suggest,
    type_word,
)

_KIND_WORDS = {
    "text": "text",
    "number": "a number",
    "boolean": "true or false",
    "date": "a date",
    "list": "a list",
}


@dataclass(frozen=True)
class _Field:
    name: str
    type: FieldType


class _Invalid:
    """A value that could not be read; its error has been reported already."""


_INVALID = _Invalid()
_Value = _Field | ParameterValue | None | tuple[ParameterValue, ...]


class FilterCompiler:
    """Type-checks one parsed `where:` filter into a predicate over facts of one type.

    Names are the fact's fields; a name that is not a field may be a ruleset parameter,
    which is substituted as a constant.
    """

    def __init__(
        self,
        parsed: ParsedCondition,
        fields: Mapping[str, FieldType],
        parameters: Mapping[str, ParameterValue],
        fact_type: str,
    ) -> None:
        self.parsed = parsed
        self.fields = fields
        self.parameters = parameters
        self.fact_type = fact_type

    def compile(self) -> FactFilter | None:
        predicate = self._predicate(self.parsed.tree)
        return None if self.parsed.errors else predicate

    def _predicate(self, node: ast.expr) -> FactFilter | None:
        if isinstance(node, ast.BoolOp):
            parts = [self._predicate(value) for value in node.values]
            if any(p is None for p in parts):
                return None
            join = _both if isinstance(node.op, ast.And) else _either
            return functools.reduce(join, typing.cast(list[FactFilter], parts))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self._predicate(node.operand)
            return None if inner is None else _negate(inner)
        if isinstance(node, ast.Compare):
            tests = [self._compare(left, op, right) for left, op, right in comparisons(node)]
            if any(t is None for t in tests):
                return None
            return functools.reduce(_both, typing.cast(list[FactFilter], tests))
        if isinstance(node, ast.Call):
            self.parsed.error("flagged() can only be used in rule conditions", node)
            return None
        value = self._value(node)
        if isinstance(value, _Field):
            if value.type.kind == "boolean":
                return _truthy(value.name)
            kind = _KIND_WORDS[value.type.kind]
            self.parsed.error(f"{value.name} is {kind}, not true or false; compare it with a value", node)
            return None
        if isinstance(value, bool):
            return _always(value)
        if not isinstance(value, _Invalid):
            self.parsed.error(f"a filter must be true or false, not {type_word(value)}", node)
        return None

    def _compare(self, left_node: ast.expr, op_node: ast.cmpop, right_node: ast.expr) -> FactFilter | None:
        left, right = self._value(left_node), self._value(right_node)
        if isinstance(left, _Invalid) or isinstance(right, _Invalid):
            return None
        if isinstance(op_node, ast.Is | ast.IsNot):
            op = "==" if isinstance(op_node, ast.Is) else "!="
        else:
            op = COMPARE_OPS[type(op_node)]
        if op in ("in", "not in"):
            return self._membership(left, op, right, left_node, right_node)
        if not isinstance(left, _Field):
            if not isinstance(right, _Field):
                self.parsed.error("compare a field of the fact with a value", left_node)
                return None
            left, right, left_node, right_node, op = right, left, right_node, left_node, FLIPPED[op]
        if isinstance(right, _Field):
            self.parsed.error("compare a field with a value, not with another field", right_node)
            return None
        if not self._check_value(left, op, right, right_node):
            return None
        return _comparison(left.name, op, right, skip_none=op in ("<", "<=", ">", ">=") and left.type.nullable)

    def _check_value(self, field: _Field, op: str, value: _Value, node: ast.expr) -> bool:
        kind = field.type.kind
        if value is None:
            if op not in ("==", "!="):
                self.parsed.error(f"None can only be compared with == or != (or 'is'), not '{op}'", node)
                return False
            if not field.type.nullable:
                self.parsed.error(f"{field.name} always has a value; comparing it with None is always false", node)
                return False
            return True
        if kind == "date":
            self.parsed.error(f"{field.name} is a date; it can only be compared with None", node)
            return False
        if kind == "list":
            self.parsed.error(f"{field.name} is a list; test membership, e.g. '\"CODE\" in {field.name}'", node)
            return False
        if _value_kind(value) != kind:
            self.parsed.error(f"{field.name} is {_KIND_WORDS[kind]} and cannot be compared with {_show(value)}", node)
            return False
        if op in ("<", "<=", ">", ">=") and kind != "number":
            self.parsed.error(f"'{op}' compares numbers; {field.name} is {_KIND_WORDS[kind]}", node)
            return False
        return self._check_code(field, value, node)

    def _check_code(self, field: _Field, value: _Value, node: ast.expr) -> bool:
        codes = field.type.codes
        if codes is None or not isinstance(value, str) or value in codes:
            return True
        self.parsed.error(f"unknown code {value!r} for {field.name}" + suggest(value, codes), node)
        return False

    def _membership(
        self, left: _Value, op: str, right: _Value, left_node: ast.expr, right_node: ast.expr
    ) -> FactFilter | None:
        negate = op == "not in"
        if isinstance(right, _Field) and right.type.kind == "list":
            # "16A" in factors
            if isinstance(left, _Field) or not isinstance(left, str):
                self.parsed.error(f"the left of '{op}' {right.name} must be a code in quotes", left_node)
                return None
            if not self._check_code(right, left, left_node):
                return None
            holds = _holds(right.name, left)
            return _negate(holds) if negate else holds
        if isinstance(left, _Field) and isinstance(right, tuple):
            # agency in ["POLICE", "HEALTH"]
            if left.type.kind not in ("text", "number"):
                self.parsed.error(f"{left.name} is {_KIND_WORDS[left.type.kind]}; it cannot be in a list", left_node)
                return None
            for item, value in zip(typing.cast(ast.List, right_node).elts, right, strict=True):
                if not self._check_value(left, "==", value, item):
                    return None
            member = _one_of(left.name, frozenset(right))
            return _negate(member) if negate else member
        self.parsed.error(f"use '{op}' as 'field {op} [values]' or '\"CODE\" {op} list_field'", right_node)
        return None

    def _value(self, node: ast.expr) -> _Value | _Invalid:
        if isinstance(node, ast.Name):
            name = node.id
            if name in self.fields:
                return _Field(name, self.fields[name])
            if name in self.parameters:
                return self.parameters[name]
            if name in BOOLEAN_NAMES:
                return BOOLEAN_NAMES[name]
            if protected(name) is not None:
                return _INVALID  # refused by parse_condition, at its column
            message = f"unknown field {name!r} for {self.fact_type}"
            self.parsed.error(message + suggest(name, [*self.fields, *self.parameters]), node)
            return _INVALID
        if isinstance(node, ast.List | ast.Tuple):
            try:
                items = tuple(constant_value(item) for item in node.elts)
            except ValueError:
                self.parsed.error("a list in a filter may only hold values, not fields", node)
                return _INVALID
            return typing.cast(tuple[ParameterValue, ...], items)
        try:
            return typing.cast(_Value, constant_value(node))
        except ValueError:
            if isinstance(node, ast.Compare | ast.BoolOp | ast.UnaryOp):
                self.parsed.error("compare a field with a value; comparisons cannot be nested", node)
            return _INVALID  # anything else was reported by the whitelist


def _value_kind(value: object) -> FieldKind:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "text" if isinstance(value, str) else "list"


def _show(value: object) -> str:
    return f"{type_word(value)} {value!r}" if isinstance(value, str | int | float) else type_word(value)


# --- FactFilter builders: each gives the test of one fact and the mask over many, which agree ---


def _truthy(name: str) -> FactFilter:
    getter = operator.attrgetter(name)
    return FactFilter(
        lambda fact: bool(getter(fact)), lambda facts: map(operator.truth, map(getter, facts)), ("truthy", name)
    )


def _always(value: bool) -> FactFilter:
    return FactFilter(lambda fact: value, lambda facts: repeat(value, len(facts)), ("always", value))


def _comparison(name: str, op: str, constant: Any, *, skip_none: bool) -> FactFilter:
    """`field <op> constant`; with `skip_none`, an empty field fails (an order test of None)."""
    getter, test = operator.attrgetter(name), COMPARISONS[op]
    spec = ("compare", name, op, constant, skip_none)
    if skip_none:

        def masked(facts: Sequence[Any]) -> list[bool]:
            return [value is not None and test(value, constant) for value in map(getter, facts)]

        return FactFilter(lambda fact: (value := getter(fact)) is not None and test(value, constant), masked, spec)
    return FactFilter(
        lambda fact: test(getter(fact), constant),
        lambda facts: map(test, map(getter, facts), repeat(constant)),
        spec,
    )


def _holds(name: str, code: str) -> FactFilter:
    """`"CODE" in list_field`."""
    getter = operator.attrgetter(name)
    return FactFilter(
        lambda fact: code in getter(fact),
        lambda facts: map(operator.contains, map(getter, facts), repeat(code)),
        ("holds", name, code),
    )


def _one_of(name: str, allowed: frozenset[Any]) -> FactFilter:
    """`field in [values]`."""
    getter = operator.attrgetter(name)
    return FactFilter(
        lambda fact: getter(fact) in allowed,
        lambda facts: map(allowed.__contains__, map(getter, facts)),
        ("one_of", name, allowed),
    )


# Every mask yields bools, so & and | combine them element by element.
def _both(first: FactFilter, second: FactFilter) -> FactFilter:
    return FactFilter(
        lambda fact: first.test(fact) and second.test(fact),
        lambda facts: map(operator.and_, first.mask(facts), second.mask(facts)),
        _joined("and", first, second),
    )


def _either(first: FactFilter, second: FactFilter) -> FactFilter:
    return FactFilter(
        lambda fact: first.test(fact) or second.test(fact),
        lambda facts: map(operator.or_, first.mask(facts), second.mask(facts)),
        _joined("or", first, second),
    )


def _negate(inner: FactFilter) -> FactFilter:
    spec = None if inner.spec is None else ("not", inner.spec)
    return FactFilter(lambda fact: not inner.test(fact), lambda facts: map(operator.not_, inner.mask(facts)), spec)


def _joined(op: str, first: FactFilter, second: FactFilter) -> FilterSpec | None:
    return None if first.spec is None or second.spec is None else (op, first.spec, second.spec)

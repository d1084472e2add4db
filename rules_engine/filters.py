"""Compile `where:` filters over one fact type into Python predicates, type-checked against its fields.

Field types come from the fact model's annotations: Literal codes are text with a fixed
set of allowed values, bool is true/false, int/float are numbers, tuples are lists, and
dates may only be tested against None. Predicates are built from small closures; the
author's text is never passed to eval or exec.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import operator
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from rules_engine.compiled import COMPARISONS, FLIPPED, FactPredicate
from rules_engine.conditions import (
    BOOLEAN_NAMES,
    COMPARE_OPS,
    ParameterValue,
    ParsedCondition,
    comparisons,
    constant_value,
    suggest,
    type_word,
)

FieldKind = Literal["text", "number", "boolean", "date", "list"]

_KIND_WORDS = {
    "text": "text",
    "number": "a number",
    "boolean": "true or false",
    "date": "a date",
    "list": "a list",
}


@dataclass(frozen=True)
class FieldType:
    """What a fact field holds, as far as filters are concerned."""

    kind: FieldKind
    nullable: bool = False
    # For coded text (and lists of codes): the allowed values; None when any text goes.
    codes: frozenset[str] | None = None


def fact_fields(model: type[BaseModel]) -> dict[str, FieldType]:
    """The filterable fields of a fact model, from its annotations (unsupported types left out)."""
    fields = {}
    for name, info in model.model_fields.items():
        field_type = _field_type(info.annotation)
        if field_type is not None:
            fields[name] = field_type
    return fields


def _field_type(annotation: Any) -> FieldType | None:
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        if len(members) != 1:
            return None
        annotation, origin = members[0], typing.get_origin(members[0])
    if origin is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
        origin = typing.get_origin(annotation)
    if origin is Literal:
        return FieldType("text", nullable, frozenset(str(a) for a in typing.get_args(annotation)))
    if origin is tuple:
        item = _field_type(typing.get_args(annotation)[0])
        if item is None or item.kind != "text":
            return None
        return FieldType("list", nullable, item.codes)
    if annotation is bool:
        return FieldType("boolean", nullable)
    if annotation in (int, float):
        return FieldType("number", nullable)
    if annotation is str:
        return FieldType("text", nullable)
    if annotation is dt.date:
        return FieldType("date", nullable)
    return None


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

    def compile(self) -> FactPredicate | None:
        predicate = self._predicate(self.parsed.tree)
        return None if self.parsed.errors else predicate

    def _predicate(self, node: ast.expr) -> FactPredicate | None:
        if isinstance(node, ast.BoolOp):
            parts = [self._predicate(value) for value in node.values]
            if any(p is None for p in parts):
                return None
            join = _both if isinstance(node.op, ast.And) else _either
            return functools.reduce(join, typing.cast(list[FactPredicate], parts))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self._predicate(node.operand)
            return None if inner is None else _negate(inner)
        if isinstance(node, ast.Compare):
            tests = [self._compare(left, op, right) for left, op, right in comparisons(node)]
            if any(t is None for t in tests):
                return None
            return functools.reduce(_both, typing.cast(list[FactPredicate], tests))
        if isinstance(node, ast.Call):
            self.parsed.error("flagged() can only be used in rule conditions", node)
            return None
        value = self._value(node)
        if isinstance(value, _Field):
            if value.type.kind == "boolean":
                getter = operator.attrgetter(value.name)
                return lambda fact: bool(getter(fact))
            kind = _KIND_WORDS[value.type.kind]
            self.parsed.error(f"{value.name} is {kind}, not true or false; compare it with a value", node)
            return None
        if isinstance(value, bool):
            return (lambda fact: True) if value else (lambda fact: False)
        if not isinstance(value, _Invalid):
            self.parsed.error(f"a filter must be true or false, not {type_word(value)}", node)
        return None

    def _compare(self, left_node: ast.expr, op_node: ast.cmpop, right_node: ast.expr) -> FactPredicate | None:
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
        getter, test, constant = operator.attrgetter(left.name), COMPARISONS[op], right
        if op in ("<", "<=", ">", ">=") and left.type.nullable:
            return lambda fact: (value := getter(fact)) is not None and test(value, constant)
        return lambda fact: test(getter(fact), constant)

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
    ) -> FactPredicate | None:
        negate = op == "not in"
        if isinstance(right, _Field) and right.type.kind == "list":
            # "16A" in factors
            if isinstance(left, _Field) or not isinstance(left, str):
                self.parsed.error(f"the left of '{op}' {right.name} must be a code in quotes", left_node)
                return None
            if not self._check_code(right, left, left_node):
                return None
            getter, code = operator.attrgetter(right.name), left
            test: FactPredicate = lambda fact: code in getter(fact)  # noqa: E731
            return _negate(test) if negate else test
        if isinstance(left, _Field) and isinstance(right, tuple):
            # agency in ["POLICE", "HEALTH"]
            if left.type.kind not in ("text", "number"):
                self.parsed.error(f"{left.name} is {_KIND_WORDS[left.type.kind]}; it cannot be in a list", left_node)
                return None
            for item, value in zip(typing.cast(ast.List, right_node).elts, right, strict=True):
                if not self._check_value(left, "==", value, item):
                    return None
            getter, allowed = operator.attrgetter(left.name), frozenset(right)
            test = lambda fact: getter(fact) in allowed  # noqa: E731
            return _negate(test) if negate else test
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


def _both(first: FactPredicate, second: FactPredicate) -> FactPredicate:
    return lambda fact: first(fact) and second(fact)


def _either(first: FactPredicate, second: FactPredicate) -> FactPredicate:
    return lambda fact: first(fact) or second(fact)


def _negate(inner: FactPredicate) -> FactPredicate:
    return lambda fact: not inner(fact)

"""The condition language: parse with Python's `ast` under a whitelist, then type-check rule conditions.

A condition is one Python expression built only from `and`, `or`, `not`, comparisons
(`== != < <= > >= in not in`), names, number/text/boolean constants, lists of constants
on the right of `in`, and `flagged("rule-id")`. Lowercase `true` and `false` are accepted
as booleans, since YAML authors write them that way. Anything else - attribute access,
indexing, other calls, arithmetic, lambdas, f-strings - is a CompileError at its column.

Columns: `ast` reports UTF-8 byte offsets; they are turned into character offsets into the
condition text here, and `locate` (the SourceMap) turns those into file positions.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from rules_engine.case.equality import CHILD, PROTECTED_NAMES
from rules_engine.errors import CompileError, SourcePosition
from rules_engine.policy.compiled import (
    BoolOp,
    Compare,
    CompareOp,
    Const,
    Expr,
    FlaggedRef,
    MeasureRef,
    Not,
    Operand,
    ValueType,
)

# Character offset into the condition text -> where it stands in the file.
Locate = Callable[[int], SourcePosition]
ParameterValue = float | int | bool | str

BOOLEAN_NAMES = {"true": True, "false": False}


def protected(name: str) -> str | None:
    """Why a rule may not read `name`, when it names the child or one of its equality monitoring
    fields (case.equality); None for any other name."""
    if name in PROTECTED_NAMES:
        return (
            f"{name!r} is an equality monitoring field of the child: it is counted for equality "
            "monitoring only, and no measure, filter or condition may read it"
        )
    if name == CHILD:
        return (
            "the child is not a fact type, and rules may not read its fields: its age is read with an "
            "age measure, its equality monitoring fields by no rule"
        )
    return None


COMPARE_OPS: dict[type[ast.cmpop], CompareOp] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ORDERING = frozenset({"<", "<=", ">", ">="})

_NODE_WORDS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access (x.y) is not allowed in conditions",
    ast.Subscript: "indexing (x[...]) is not allowed in conditions",
    ast.BinOp: "arithmetic is not supported in conditions; add a measure or a parameter instead",
    ast.Lambda: "lambda is not allowed in conditions",
    ast.JoinedStr: "f-strings are not allowed in conditions",
    ast.NamedExpr: "assignment (:=) is not allowed in conditions",
    ast.IfExp: "'x if y else z' is not allowed in conditions; use 'and' and 'or'",
    ast.Dict: "mappings ({...}) are not allowed in conditions",
    ast.Set: "sets ({...}) are not allowed in conditions; use a list [...]",
    ast.ListComp: "comprehensions are not allowed in conditions",
    ast.GeneratorExp: "comprehensions are not allowed in conditions",
    ast.SetComp: "comprehensions are not allowed in conditions",
    ast.DictComp: "comprehensions are not allowed in conditions",
    ast.Starred: "'*' is not allowed in conditions",
    ast.Await: "'await' is not allowed in conditions",
}


@dataclass
class ParsedCondition:
    """A condition's syntax tree and how to locate its nodes."""

    tree: ast.expr
    text: str
    locate: Locate
    # The parsed text is the condition with leading whitespace removed and line breaks
    # turned into spaces (same length), so a block scalar parses as one line.
    _lead: int = 0
    _encoded: bytes = b""
    errors: list[CompileError] = field(default_factory=list)

    def position(self, node: ast.AST) -> SourcePosition:
        """The file position of `node`: its byte column -> character offset -> file."""
        byte_column = getattr(node, "col_offset", 0)
        offset = len(self._encoded[:byte_column].decode("utf-8", errors="ignore"))
        return self.locate(self._lead + offset)

    def error(self, message: str, node: ast.AST) -> None:
        self.errors.append(CompileError(message, self.position(node)))


def parse_condition(text: str, locate: Locate) -> ParsedCondition:
    """Parse `text` as one expression and reject every node outside the whitelist."""
    flat = text.replace("\r", " ").replace("\n", " ")
    body = flat.lstrip()
    lead = len(flat) - len(body)
    try:
        tree = ast.parse(body, mode="eval").body
    except SyntaxError as exc:
        raise CompileError(*_syntax_error(exc, body, lead, locate)) from None
    parsed = ParsedCondition(tree, text, locate, lead, body.encode("utf-8"))
    _check_whitelist(parsed, tree)
    return parsed


def _syntax_error(exc: SyntaxError, body: str, lead: int, locate: Locate) -> tuple[str, SourcePosition]:
    # SyntaxError offsets are 1-based characters (not bytes) on the single line; 0 means
    # the text ended while more was expected.
    message = exc.msg or "invalid syntax"
    if not exc.offset:
        return "the condition ends too early: something is missing at the end", locate(lead + len(body.rstrip()))
    offset = exc.offset - 1
    if message == "invalid syntax":
        message = "this is not a valid condition"
        if body[offset : offset + 1] == "=" and body[offset : offset + 2] != "==":
            message = "use == to compare; a single = is not a comparison"
    return message, locate(lead + offset)


def _check_whitelist(parsed: ParsedCondition, node: ast.AST) -> None:
    """Report nodes outside the language; a rejected node's children are not looked at."""
    if isinstance(node, ast.Name | ast.Attribute):
        # Whatever the name would resolve to (a field, a parameter, a measure), one naming the
        # child or an equality field is refused here, at its column, in every filter and condition.
        for name in _names(node):
            reason = protected(name)
            if reason is not None:
                parsed.error(reason, node)
                return
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == "flagged"):
            called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            parsed.error(f'only flagged("rule-id") may be called; {called!r} is not allowed', node)
        elif node.keywords or len(node.args) != 1 or not _is_text(node.args[0]):
            parsed.error('flagged() takes one rule id in quotes, e.g. flagged("hostility")', node)
        return
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if isinstance(op, ast.Is | ast.IsNot) and not _is_none(node):
                parsed.error("'is' may only be used with None; use == or !=", node)
                return
    elif isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not):
        if not (isinstance(node.op, ast.USub | ast.UAdd) and _is_number(node.operand)):
            parsed.error("arithmetic is not supported in conditions", node)
        return
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, bool | int | float | str) and node.value is not None:
            parsed.error(f"the value {node.value!r} is not allowed in conditions", node)
        return
    elif not isinstance(node, _ALLOWED_NODES):
        parsed.error(_NODE_WORDS.get(type(node), f"{type(node).__name__} is not allowed in conditions"), node)
        return
    for child in ast.iter_child_nodes(node):
        _check_whitelist(parsed, child)


def _names(node: ast.expr) -> list[str]:
    """The names in a name or a chain of attributes (`child.ethnicity`: child, ethnicity)."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        names.append(node.id)
    return names[::-1]


_ALLOWED_NODES = (
    ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Name, ast.Load, ast.Tuple, ast.List,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
    ast.USub, ast.UAdd,
)  # fmt: skip


def _is_flagged(node: ast.Call) -> bool:
    return isinstance(node.func, ast.Name) and node.func.id == "flagged" and len(node.args) == 1


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool)


def _is_none(node: ast.Compare) -> bool:
    return any(isinstance(n, ast.Constant) and n.value is None for n in [node.left, *node.comparators])


def constant_value(node: ast.AST) -> object:
    """The value of a Constant, or of a signed number such as -1; raises ValueError otherwise."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    raise ValueError("not a constant")


def comparisons(node: ast.Compare) -> list[tuple[ast.expr, ast.cmpop, ast.expr]]:
    """`a < b <= c` -> [(a, <, b), (b, <=, c)]: chained comparisons become an `and`."""
    lefts = [node.left, *node.comparators[:-1]]
    return list(zip(lefts, node.ops, node.comparators, strict=True))


def suggest(name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def type_word(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list"


def _value_type(value: object) -> ValueType:
    if isinstance(value, bool):
        return ValueType.BOOLEAN
    if isinstance(value, int | float):
        return ValueType.NUMBER
    if isinstance(value, str):
        return ValueType.STRING
    return ValueType.STRING_LIST


class RuleConditionCompiler:
    """Type-checks one parsed rule condition into a compiled Expr.

    Names are measures (all numbers) or parameters (substituted as constants that keep
    their name, so a flag can report the threshold it was measured against).
    """

    def __init__(
        self, parsed: ParsedCondition, measures: Collection[str], parameters: Mapping[str, ParameterValue]
    ) -> None:
        self.parsed = parsed
        self.measures = measures
        self.parameters = parameters

    def compile(self) -> Expr | None:
        expr = self._boolean(self.parsed.tree)
        return None if self.parsed.errors else expr

    def _boolean(self, node: ast.expr) -> Expr | None:
        position = self.parsed.position(node)
        if isinstance(node, ast.BoolOp):
            parts = [self._boolean(value) for value in node.values]
            operands = tuple(p for p in parts if p is not None)
            return BoolOp("and" if isinstance(node.op, ast.And) else "or", operands, position)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self._boolean(node.operand)
            return Not(inner, position) if inner is not None else None
        if isinstance(node, ast.Compare):
            pairs = [self._compare(left, op, right) for left, op, right in comparisons(node)]
            compared = tuple(p for p in pairs if p is not None)
            if len(compared) == 1:
                return compared[0]
            return BoolOp("and", compared, position)
        if isinstance(node, ast.Call):
            argument = node.args[0] if node.args else None
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                return FlaggedRef(argument.value, position)
            return None  # already reported by the whitelist
        typed = self._operand(node)
        if typed is None:
            return None
        operand, value_type = typed
        if value_type is not ValueType.BOOLEAN:
            shown = operand.name if isinstance(operand, MeasureRef) else ast.unparse(node)
            self.parsed.error(
                f"{shown} is {_TYPE_WORDS[value_type]}, not true or false; compare it, e.g. '{shown} > 0'",
                node,
            )
            return None
        return operand

    def _compare(self, left: ast.expr, op_node: ast.cmpop, right: ast.expr) -> Compare | None:
        op = COMPARE_OPS.get(type(op_node))
        if op is None:
            self.parsed.error("'is' is not allowed in rule conditions; use == or !=", right)
            return None
        left_typed, right_typed = self._operand(left), self._operand(right)
        if left_typed is None or right_typed is None:
            return None
        (left_expr, left_type), (right_expr, right_type) = left_typed, right_typed
        position = self.parsed.position(left)
        if op in ("in", "not in"):
            if not isinstance(left_expr, MeasureRef):
                self.parsed.error(f"put a measure on the left of '{op}'", left)
                return None
            if not isinstance(right, ast.List | ast.Tuple):
                self.parsed.error(f"the right of '{op}' must be a list of numbers, e.g. [1, 2, 3]", right)
                return None
            assert isinstance(right_expr, Const) and isinstance(right_expr.value, tuple)
            for item, value in zip(right.elts, right_expr.value, strict=True):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    self.parsed.error(f"{left_expr.name} is a number; the list may only hold numbers", item)
                    return None
            return Compare(op, left_expr, right_expr, position)
        if ValueType.STRING_LIST in (left_type, right_type):
            bad = left if left_type is ValueType.STRING_LIST else right
            self.parsed.error(f"a list can only be used on the right of 'in' or 'not in', not with '{op}'", bad)
            return None
        if op in _ORDERING and ValueType.NUMBER not in (left_type, right_type):
            self.parsed.error(f"'{op}' compares numbers; {_describe(left_expr, left_type)} is not one", left)
            return None
        if left_type is not right_type or (op in _ORDERING and left_type is not ValueType.NUMBER):
            # Point at the side that is not what the other side needs.
            bad, expected = (right, left_expr) if isinstance(left_expr, MeasureRef) else (left, right_expr)
            bad_expr, bad_type = (right_expr, right_type) if bad is right else (left_expr, left_type)
            expected_type = left_type if bad is right else right_type
            wanted, given = _describe(expected, expected_type), _describe(bad_expr, bad_type)
            self.parsed.error(f"{wanted} cannot be compared with {given}", bad)
            return None
        return Compare(op, left_expr, right_expr, position)

    def _operand(self, node: ast.expr) -> tuple[Operand, ValueType] | None:
        position = self.parsed.position(node)
        if isinstance(node, ast.Name):
            name = node.id
            if name in self.measures:
                return MeasureRef(name, position), ValueType.NUMBER
            if name in self.parameters:
                value = self.parameters[name]
                return Const(value, position, parameter=name), _value_type(value)
            if name in BOOLEAN_NAMES:
                return Const(BOOLEAN_NAMES[name], position), ValueType.BOOLEAN
            if protected(name) is not None:
                return None  # refused by parse_condition, at its column
            known = [*self.measures, *self.parameters]
            self.parsed.error(f"unknown measure or parameter {name!r}" + suggest(name, known), node)
            return None
        if isinstance(node, ast.List | ast.Tuple):
            values: list[str | float | int] = []
            for item in node.elts:
                try:
                    element = constant_value(item)
                except ValueError:
                    self.parsed.error("a list in a condition may only hold numbers or text in quotes", item)
                    return None
                if not isinstance(element, int | float | str):
                    self.parsed.error("a list in a condition may only hold numbers or text in quotes", item)
                    return None
                values.append(element)
            return Const(tuple(values), position), ValueType.STRING_LIST
        try:
            constant = constant_value(node)
        except ValueError:
            nested = isinstance(node, ast.Compare | ast.BoolOp) or (
                isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
            )
            if nested or (isinstance(node, ast.Call) and _is_flagged(node)):
                self.parsed.error("compare a measure with a value; comparisons cannot be nested", node)
            return None  # other nodes were reported by the whitelist
        if constant is None:
            self.parsed.error("None can only be used in 'where' filters of measures", node)
            return None
        if not isinstance(constant, bool | int | float | str):
            return None
        return Const(constant, position), _value_type(constant)


_TYPE_WORDS = {
    ValueType.NUMBER: "a number",
    ValueType.BOOLEAN: "true or false",
    ValueType.STRING: "text",
    ValueType.STRING_LIST: "a list",
}


def _describe(expr: Operand, value_type: ValueType) -> str:
    if isinstance(expr, MeasureRef):
        return f"{expr.name} (a number)"
    if expr.parameter:
        return f"parameter {expr.parameter} ({_TYPE_WORDS[value_type]} {expr.value!r})"
    return f"{_TYPE_WORDS[value_type]} {expr.value!r}"

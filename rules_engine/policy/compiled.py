"""Frozen dataclasses of the compiled form: what the evaluator runs.

A CompiledRuleset is immutable; a reload replaces it whole.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Literal, NamedTuple

from rules_engine.errors import SourcePosition

# A measured value: a number, a boolean, or None when it cannot be measured.
MeasureValue = float | int | bool | None

# A predicate over one fact (a compiled `where:` filter).
FactPredicate = Callable[[Any], bool]
# The same test over many facts at once: one bool per fact, in order.
FactMask = Callable[[Sequence[Any]], Iterable[bool]]


# A compiled filter as data (see FactFilter.spec): nested tuples, first item the operation.
FilterSpec = tuple[Any, ...]


class FactFilter:
    """A compiled `where:` filter in two forms that agree: `filter(fact)` tests one fact, and
    `filter.mask(facts)` tests a whole list, through C iterators (map over attrgetter and
    operator functions) rather than a Python call per fact. Measures filter every fact of a
    type per evaluation, so they use the mask.

    `spec` is the same filter as data, for the compiled core (engine/native.py) to run:
    ("truthy", field), ("always", bool), ("compare", field, op, constant, skip_none),
    ("holds", list_field, code), ("one_of", field, frozenset), ("and"|"or", spec, spec),
    ("not", spec); None for a predicate written by hand (tests), which the core declines."""

    __slots__ = ("mask", "spec", "test")

    def __init__(self, test: FactPredicate, mask: FactMask, spec: FilterSpec | None = None) -> None:
        self.test = test
        self.mask = mask
        self.spec = spec

    def __call__(self, fact: Any) -> bool:
        return self.test(fact)


def fact_mask(where: FactPredicate) -> FactMask:
    """The column form of a predicate: a FactFilter's own, else one call per fact."""
    if isinstance(where, FactFilter):
        return where.mask
    return functools.partial(map, where)


class Severity(IntEnum):
    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5


class ValueType(Enum):
    NUMBER = "number"
    BOOLEAN = "boolean"
    STRING = "string"
    STRING_LIST = "string list"


WindowUnit = Literal["days", "weeks", "months", "years", "working_days"]


class Window(NamedTuple):
    """A span of time back from `as_of` (or forward from a fact, for deadlines).

    A named tuple: every measure looks its window up in caches on every evaluation, and a
    tuple hashes in C where a frozen dataclass hashes in Python.
    """

    amount: int
    unit: WindowUnit

    def __str__(self) -> str:
        unit = self.unit.replace("_", " ")
        return f"{self.amount} {unit[:-1] if self.amount == 1 else unit}"

    def in_base_units(self) -> tuple[int, Literal["months", "days"]] | None:
        """The window in months (months, years) or days (days, weeks); None for working days."""
        if self.unit in ("months", "years"):
            return self.amount * (12 if self.unit == "years" else 1), "months"
        if self.unit in ("days", "weeks"):
            return self.amount * (7 if self.unit == "weeks" else 1), "days"
        return None


class MeasureKind(Enum):
    COUNT = "count"  # facts of a type within a window, optionally filtered
    DISTINCT = "distinct"  # distinct values of a field within a window
    DAYS_SINCE = "days_since"  # calendar days since the latest matching fact
    WORKING_DAYS_SINCE = "working_days_since"  # working days since the latest matching fact
    OVERDUE = "overdue"  # matching facts whose follow-up did not come within the deadline
    OPEN = "open"  # matching facts started by as_of and not ended by it (end_field empty or later)
    LATEST = "latest"  # of the `last` latest facts matching `where`, how many match `matching`
    AGE = "age"  # the child's age in whole years at as_of (Case.child.birth_date)
    RATE = "rate"  # facts per year over the window (or the whole history), from the first fact on
    TREND = "trend"  # facts in the last window minus facts in the window before it
    PERIODS = "periods"  # of the periods the window is cut into, how many hold at least `at_least` facts
    LONGEST_GAP = "longest_gap"  # the longest run of days without a fact, up to as_of
    LONGEST_OPEN = "longest_open"  # days the longest-open fact has been open at as_of
    SUM = "sum"  # other measures added up
    RATIO = "ratio"  # one measure as a percentage of another


# Kinds whose value is computed from other measures' values, not from facts.
DERIVED_KINDS = frozenset({MeasureKind.SUM, MeasureKind.RATIO})


@dataclass(frozen=True)
class CompiledMeasure:
    name: str
    kind: MeasureKind
    fact_type: str  # a key of facts.MEASURABLE_FACT_TYPES ("" for AGE)
    position: SourcePosition
    description: str = ""
    window: Window | None = None
    # Which date of a fact places it in time ("date", or e.g. "completed_on").
    date_field: str = "date"
    where: FactPredicate | None = None
    where_text: str = ""
    # DISTINCT: the field whose distinct values are counted.
    field: str = ""
    # OVERDUE: a fact is overdue when its deadline (`deadline` after its date) has passed at
    # as_of and it is still outstanding: no follow-up fact dated on or after it up to as_of
    # (a late follow-up clears it) and no resolving date.
    deadline: Window | None = None
    followup_type: str = ""
    followup_where: FactPredicate | None = None
    followup_where_text: str = ""
    followup_date_field: str = "date"
    # OVERDUE alternative to a follow-up fact: the fact's own date field that resolves it
    # (e.g. a referral's `decided_on`).
    resolved_field: str = ""
    # OPEN: the field holding the end date (e.g. "end_date").
    end_field: str = ""
    # LATEST: how many of the latest facts to look at, and what to count among them (e.g.
    # "seen alone at either of the last 2 visits"); missing when there is no fact at all.
    last: int = 0
    matching: FactPredicate | None = None
    matching_text: str = ""
    # LATEST: the field whose values group the facts; the value is the highest group's count.
    group_by: str = ""
    # COUNT, DISTINCT: a fact counts when it overlaps the window: dated on or before as_of,
    # and `end_field` empty or after the window start.
    overlaps: bool = False
    # COUNT: only facts dated after the latest `since_type` fact (passing `since_where`,
    # placed by `since_date_field`) dated on or before as_of; all facts when there is none.
    since_type: str = ""
    since_where: FactPredicate | None = None
    since_where_text: str = ""
    since_date_field: str = "date"
    # PERIODS: the window is cut into slices of `period` counted back from as_of; a slice
    # counts when it holds at least `at_least` facts.
    period: Window | None = None
    at_least: int = 1
    # SUM: the measures added up; RATIO: (numerator, denominator). Compiled measures, not
    # names, so a value can be computed on demand; the compiler orders them before their users.
    inputs: tuple[CompiledMeasure, ...] = ()
    # When the case has no fact of `fact_type` at all, the value is missing (None) rather
    # than 0: absence of data is not evidence of safety.
    missing_when_absent: bool = False

    @property
    def value_type(self) -> ValueType:
        return ValueType.NUMBER

    @functools.cached_property
    def series_key(self) -> tuple[str, str, Hashable]:
        """Which facts the measure reads, in date order: measures with the same key share them.
        A filter is known by its source text, or by the predicate when it has none (tests)."""
        return (self.fact_type, self.date_field, self.where_text or self.where)


# --- condition expressions -------------------------------------------------------------

CompareOp = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]

# What each comparison does in Python, shared by the fact filters and the reference evaluator.
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda left, right: left in right,
    "not in": lambda left, right: left not in right,
}
# The same comparison with its operands swapped (`5 < x` is `x > 5`).
FLIPPED: dict[str, str] = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class Const:
    value: float | int | bool | str | tuple[str | float | int, ...]
    position: SourcePosition
    # Set when the constant came from a ruleset parameter: reported as a named threshold.
    parameter: str = ""


@dataclass(frozen=True)
class MeasureRef:
    name: str
    position: SourcePosition


@dataclass(frozen=True)
class FlaggedRef:
    """`flagged("rule-id")`: true when that rule holds."""

    rule_id: str
    position: SourcePosition


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    left: Operand
    right: Operand
    position: SourcePosition


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    operands: tuple[Expr, ...]
    position: SourcePosition


@dataclass(frozen=True)
class Not:
    operand: Expr
    position: SourcePosition


Operand = Const | MeasureRef
# A boolean expression; a bare MeasureRef must name a boolean measure.
Expr = Compare | BoolOp | Not | FlaggedRef | MeasureRef | Const


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of a condition, depth first, left to right."""
    yield expr
    if isinstance(expr, BoolOp):
        for operand in expr.operands:
            yield from walk(operand)
    elif isinstance(expr, Not):
        yield from walk(expr.operand)
    elif isinstance(expr, Compare):
        yield expr.left
        yield expr.right


# --- rules and rulesets ----------------------------------------------------------------

SourceKind = Literal["statutory", "local"]
RuleStatus = Literal["active", "shadow"]


@dataclass(frozen=True)
class CompiledRule:
    id: str
    title: str
    severity: Severity
    escalation: str
    explanation: str  # a template: `{measure}` and `{parameter}` placeholders only
    condition_text: str
    condition: Expr
    source_kind: SourceKind
    source_reference: str
    status: RuleStatus
    position: SourcePosition
    # Measures the condition reads directly, in order of first use.
    measures: tuple[str, ...] = ()
    # Rules named through flagged(...), directly.
    depends_on: tuple[str, ...] = ()
    # Parameters the condition compares against: name -> value.
    thresholds: tuple[tuple[str, float | int | bool | str], ...] = ()
    # 0 for rules over measures only; 1 + the highest level of the rules it depends on.
    level: int = 0
    description: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompiledRuleset:
    name: str
    version: str  # content hash of the ruleset's files
    # Rules in evaluation order: every rule after the rules it depends on.
    rules: tuple[CompiledRule, ...]
    measures: tuple[CompiledMeasure, ...]
    parameters: dict[str, float | int | bool | str] = field(default_factory=dict)
    description: str = ""
    directory: str = ""

    def rule(self, rule_id: str) -> CompiledRule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def levels(self) -> int:
        return 1 + max((r.level for r in self.rules), default=0)

"""The condition language: parsing, the whitelist, rule-condition types and `where` filters."""

from __future__ import annotations

import datetime as dt

import pytest

from rules_engine.case.facts import (
    MEASURABLE_FACT_TYPES,
    Allocation,
    Assessment,
    Concern,
    Referral,
    SchoolAttendance,
    facts_of,
)
from rules_engine.case.fields import FieldType, fact_fields
from rules_engine.config import BUNDLED_RULESETS
from rules_engine.errors import CompileError, SourcePosition
from rules_engine.policy.compiled import BoolOp, Compare, Const, Expr, FactFilter, FlaggedRef, MeasureRef, Not
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.policy.conditions import ParameterValue, RuleConditionCompiler, parse_condition
from rules_engine.policy.filters import FilterCompiler
from rules_engine.service import requests
from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

MEASURES = ("concerns_12m", "visits_3m")
PARAMETERS: dict[str, ParameterValue] = {"threshold": 5, "enabled": True, "interval": "10 working days"}


def locate(offset: int) -> SourcePosition:
    """Offsets as columns on line 1, so a test reads the column straight off the text."""
    return SourcePosition("f", 1, offset + 1)


def rule(text: str) -> Expr:
    parsed = parse_condition(text, locate)
    expr = RuleConditionCompiler(parsed, MEASURES, PARAMETERS).compile()
    assert not parsed.errors, parsed.errors
    assert expr is not None
    return expr


def rule_errors(text: str) -> list[tuple[int, str]]:
    try:
        parsed = parse_condition(text, locate)
    except CompileError as exc:
        return [(exc.position.column, exc.message)]
    RuleConditionCompiler(parsed, MEASURES, PARAMETERS).compile()
    return [(e.position.column, e.message) for e in parsed.errors]


def test_comparison_and_boolean_structure() -> None:
    expr = rule("concerns_12m >= threshold and not visits_3m == 0 or flagged('other-rule')")
    assert isinstance(expr, BoolOp) and expr.op == "or"
    first, flagged = expr.operands
    assert isinstance(first, BoolOp) and isinstance(flagged, FlaggedRef)
    compare, negated = first.operands
    assert isinstance(compare, Compare) and isinstance(negated, Not)
    assert compare.left == MeasureRef("concerns_12m", SourcePosition("f", 1, 1))
    assert compare.right == Const(5, SourcePosition("f", 1, 17), parameter="threshold")
    assert flagged.rule_id == "other-rule"


def test_chained_comparisons_become_and() -> None:
    expr = rule("0 < concerns_12m <= 3")
    assert isinstance(expr, BoolOp) and [c.op for c in expr.operands if isinstance(c, Compare)] == ["<", "<="]


def test_membership_and_booleans() -> None:
    expr = rule("concerns_12m in [1, 2, -3] and enabled and true")
    assert isinstance(expr, BoolOp)
    member = expr.operands[0]
    assert isinstance(member, Compare) and member.right.value == (1, 2, -3)  # type: ignore[union-attr]
    assert expr.operands[1] == Const(True, SourcePosition("f", 1, 32), parameter="enabled")


def test_block_text_on_several_lines_parses() -> None:
    assert isinstance(rule("concerns_12m > 1\n  and visits_3m > 0\n"), BoolOp)
    assert isinstance(rule("  concerns_12m > 1"), Compare)


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("concerns_12n > 1", 1, "unknown measure or parameter 'concerns_12n'; did you mean 'concerns_12m'?"),
        ("concerns_12m > 'five'", 16, "concerns_12m (a number) cannot be compared with text 'five'"),
        ("'é€' == 1 or nope > 1", 14, "unknown measure or parameter 'nope'"),
        ("concerns_12m > interval", 16, "parameter interval (text '10 working days')"),
        ("concerns_12m", 1, "concerns_12m is a number, not true or false"),
        ("concerns_12m.real > 1", 1, "attribute access"),
        ("__import__('os')", 1, "only flagged(\"rule-id\") may be called; '__import__'"),
        ("concerns_12m[0] > 1", 1, "indexing"),
        ("concerns_12m + 1 > 1", 1, "arithmetic"),
        ("(x := 1)", 2, "assignment"),
        ("f'{concerns_12m}' == ''", 1, "f-strings"),
        ("flagged(rule)", 1, "flagged() takes one rule id in quotes"),
        ("concerns_12m = 1", 14, "use == to compare"),
        ("concerns_12m > None", 16, "None can only be used in 'where' filters"),
        ("concerns_12m is 1", 1, "'is' may only be used with None"),
        ("concerns_12m in ['a']", 18, "the list may only hold numbers"),
        ("1 in [1]", 1, "put a measure on the left of 'in'"),
        ("(concerns_12m > 1) == true", 2, "comparisons cannot be nested"),
        ("concerns_12m >", 15, "ends too early"),
        ("concerns_12m >> > 2", 17, "not a valid condition"),
        ("(concerns_12m > 1", 1, "'(' was never closed"),
    ],
)
def test_rule_condition_errors(text: str, column: int, message: str) -> None:
    errors = rule_errors(text)
    assert any(c == column and message in m for c, m in errors), errors


# --- filters ---------------------------------------------------------------------------


def where(fact_type: str, text: str) -> object:
    parsed = parse_condition(text, locate)
    compiler = FilterCompiler(parsed, fact_fields(MEASURABLE_FACT_TYPES[fact_type]), PARAMETERS, fact_type)
    predicate = compiler.compile()
    assert not parsed.errors, parsed.errors
    return predicate


def where_errors(fact_type: str, text: str) -> list[tuple[int, str]]:
    parsed = parse_condition(text, locate)
    FilterCompiler(parsed, fact_fields(MEASURABLE_FACT_TYPES[fact_type]), PARAMETERS, fact_type).compile()
    return [(e.position.column, e.message) for e in parsed.errors]


DAY = dt.date(2024, 1, 1)


def test_field_types_come_from_annotations() -> None:
    concern = fact_fields(Concern)
    assert concern["agency"].kind == "text" and "POLICE" in (concern["agency"].codes or ())
    assert concern["significant_harm"] == FieldType("boolean")
    assert concern["household_member_ids"] == FieldType("list")
    assert fact_fields(Assessment)["factors"].codes is not None
    assert fact_fields(Referral)["decided_on"] == FieldType("date", nullable=True)
    assert fact_fields(Referral)["source"].nullable
    assert "agencies" not in fact_fields(MEASURABLE_FACT_TYPES["conferences"])  # nested records


def test_filters_select_facts() -> None:
    predicate = where("concerns", 'agency != "ANONYMOUS" and (significant_harm or category in ["NEGLECT"])')
    assert callable(predicate)
    assert predicate(Concern(id="1", date=DAY, agency="POLICE", significant_harm=True))
    assert not predicate(Concern(id="1", date=DAY, agency="ANONYMOUS", significant_harm=True))
    assert predicate(Concern(id="1", date=DAY, agency="GP", category="NEGLECT"))
    assert not predicate(Concern(id="1", date=DAY, agency="GP"))


def test_list_membership_and_none() -> None:
    factors = where("assessments", '"16A" in factors and completed_on is not None')
    assert callable(factors)
    assert factors(Assessment(id="1", date=DAY, factors=("16A",), completed_on=DAY))
    assert not factors(Assessment(id="1", date=DAY, factors=("16A",)))
    assert not factors(Assessment(id="1", date=DAY, factors=("1A",), completed_on=DAY))
    undecided = where("referrals", "decided_on == None and not no_further_action")
    assert callable(undecided)
    assert undecided(Referral(id="1", date=DAY))
    nothing = where("allocations", "worker_id not in ['w1'] and false")
    assert callable(nothing)
    assert not nothing(Allocation(id="1", date=DAY, worker_id="w2"))


def test_number_fields_and_parameters() -> None:
    low = where("school_attendance", "attendance_percent < threshold")
    fact = SchoolAttendance(id="1", date=DAY, attendance_percent=3.0)
    assert callable(low) and low(fact)


@pytest.mark.parametrize(
    ("fact_type", "text", "column", "message"),
    [
        ("concerns", 'agency == "POLIC"', 11, "unknown code 'POLIC' for agency; did you mean 'POLICE'?"),
        (
            "concerns",
            'agencyy == "POLICE"',
            1,
            "unknown field 'agencyy' for concerns; did you mean 'agency'?",
        ),
        ("concerns", "agency == 1", 11, "agency is text and cannot be compared with a number 1"),
        ("concerns", "agency", 1, "agency is text, not true or false"),
        ("concerns", 'agency > "GP"', 10, "'>' compares numbers"),
        ("concerns", "date == None", 9, "date always has a value"),
        ("referrals", 'decided_on == "x"', 15, "decided_on is a date; it can only be compared with None"),
        ("assessments", '"99Z" in factors', 1, "unknown code '99Z' for factors"),
        ("assessments", 'factors == "16A"', 12, "factors is a list"),
        ("concerns", 'agency in ["POLICE", "NOPE"]', 22, "unknown code 'NOPE' for agency"),
        ("concerns", "agency == category", 11, "not with another field"),
        ("concerns", 'flagged("x")', 1, "flagged() can only be used in rule conditions"),
        ("referrals", "decided_on < None", 14, "None can only be compared with =="),
    ],
)
def test_filter_errors(fact_type: str, text: str, column: int, message: str) -> None:
    errors = where_errors(fact_type, text)
    assert any(c == column and message in m for c, m in errors), errors


def _bundled_filters() -> list[tuple[str, str, FactFilter]]:
    """Every filter of the bundled rulesets: (fact type, source text, compiled filter)."""
    found = []
    for directory in sorted(p for p in BUNDLED_RULESETS.iterdir() if (p / "ruleset.yaml").exists()):
        for m in compile_ruleset(directory).measures:
            for fact_type, text, compiled in (
                (m.fact_type, m.where_text, m.where),
                (m.followup_type, m.followup_where_text, m.followup_where),
                (m.fact_type, m.matching_text, m.matching),
            ):
                if isinstance(compiled, FactFilter):
                    found.append((fact_type, text, compiled))
    return found


MASK_CASES = [
    ("concerns", 'agency != "ANONYMOUS" and (significant_harm or category in ["NEGLECT"])'),
    ("assessments", '"16A" in factors and completed_on is not None'),
    ("referrals", "decided_on == None and not no_further_action"),
    ("allocations", "worker_id not in ['w1'] and false"),
    ("school_attendance", "attendance_percent < threshold or true"),
    ("concerns", 'not (agency in ["POLICE", "GP"] or "x" in household_member_ids)'),
]


def test_filter_masks_agree_with_the_test_of_each_fact() -> None:
    """Measures filter through the mask; every filter must select what its one-fact test does."""
    case = requests.case_from_proto(requests.case_from_json(sized_case(2_000)), LONG_TIMELINE_END)
    filters = [(t, text, where(t, text)) for t, text in MASK_CASES] + _bundled_filters()
    assert len(filters) > 20
    for fact_type, text, compiled in filters:
        assert isinstance(compiled, FactFilter)
        facts = facts_of(case, fact_type)
        assert list(compiled.mask(facts)) == [compiled(f) for f in facts], text
        assert all(type(kept) is bool for kept in compiled.mask(facts)), text

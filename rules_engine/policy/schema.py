"""Pydantic models of the rule-file format: the shape of each section, before compilation.

Checks that need more than one value (does this field exist on that fact type, does that
name a measure) belong to the compiler; these models only say what each value may look like.
Validation errors raised here are worded for policy authors: validator.py turns them into
SchemaErrors at the offending node.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rules_engine.policy.compiled import Window, WindowUnit

MAX_CONDITION_CHARS = 2000
MAX_TEXT_CHARS = 2000

IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")
RULE_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_WINDOW = re.compile(r"\s*(\d{1,4})\s+(working\s+days?|days?|weeks?|months?|years?)\s*", re.IGNORECASE)

MeasureKindName = Literal[
    "count",
    "distinct",
    "days_since",
    "working_days_since",
    "overdue",
    "open",
    "latest",
    "age",
    "rate",
    "trend",
    "periods",
    "longest_gap",
    "longest_open",
    "sum",
    "ratio",
]
SeverityName = Literal["info", "low", "medium", "high", "critical"]


def parse_window(text: str) -> Window | None:
    """`12 months` or `15 working days` -> Window; None when `text` is not a duration."""
    match = _WINDOW.fullmatch(text)
    if match is None:
        return None
    unit = re.sub(r"\s+", "_", match.group(2).lower())
    unit = unit if unit.endswith("s") else unit + "s"
    amount = int(match.group(1))
    units: dict[str, WindowUnit] = {
        "days": "days",
        "weeks": "weeks",
        "months": "months",
        "years": "years",
        "working_days": "working_days",
    }
    return Window(amount, units[unit]) if amount > 0 else None


def _identifier(value: str) -> str:
    if not IDENTIFIER.fullmatch(value) or len(value) > 64:
        raise ValueError(
            "must start with a lowercase letter and hold only lowercase letters, digits and "
            "underscores (at most 64 characters), e.g. concerns_12m"
        )
    return value


def _rule_id(value: str) -> str:
    if not RULE_ID.fullmatch(value) or len(value) > 100:
        raise ValueError(
            "must hold only lowercase letters, digits and hyphens (at most 100 characters), "
            "e.g. concerns-without-assessment"
        )
    return value


def _window_or_name(value: str) -> str:
    if parse_window(value) is None and not IDENTIFIER.fullmatch(value):
        raise ValueError(
            "must be a duration such as '12 months', '6 weeks' or '10 working days', "
            "or the name of a parameter holding one"
        )
    return value


def _parameter_value(value: Any) -> float | int | bool | str:
    # One check instead of a Union, whose errors would repeat once per member type.
    if isinstance(value, bool | int | float | str):
        return value
    raise ValueError("must be a number, true or false, text, or a duration such as '10 working days'")


Identifier = Annotated[str, AfterValidator(_identifier)]
RuleId = Annotated[str, AfterValidator(_rule_id)]
Duration = Annotated[str, AfterValidator(_window_or_name)]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
ParameterValue = Annotated[Any, AfterValidator(_parameter_value)]


class _Spec(BaseModel):
    # strict: YAML's `yes`, `12` or `2024-01-01` never silently become text.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RulesetHeader(_Spec):
    """The `ruleset:` section: given in at most one file of the ruleset."""

    name: RuleId | None = None
    description: Text = ""


class MeasureSpec(_Spec):
    """One entry of `measures:`; which optional fields apply depends on `kind`."""

    name: Identifier
    kind: MeasureKindName
    description: Text = ""
    facts: str | None = None
    window: Duration | None = None
    where: Annotated[str, Field(max_length=MAX_CONDITION_CHARS)] | None = None
    date_field: str | None = None
    field: str | None = None
    followup: str | None = None
    followup_where: Annotated[str, Field(max_length=MAX_CONDITION_CHARS)] | None = None
    followup_date_field: str | None = None
    resolved_by: str | None = None
    deadline: Duration | None = None
    end_field: str | None = None
    # latest: how many of the latest facts (a number, or a parameter holding one) ...
    last: Annotated[int, Field(ge=1, le=100)] | Identifier | None = None
    # ... and the filter counted among them.
    matching: Annotated[str, Field(max_length=MAX_CONDITION_CHARS)] | None = None
    # latest: `last` and `matching` apply within each group of facts sharing this field's value.
    group_by: str | None = None
    # count, distinct: a fact counts when its period (date to end field) overlaps the window.
    overlaps: bool = False
    # count: only facts dated after the latest fact of this type (passing since_latest_where).
    since_latest: str | None = None
    since_latest_where: Annotated[str, Field(max_length=MAX_CONDITION_CHARS)] | None = None
    since_latest_date_field: str | None = None
    # periods: the slice the window is cut into, and the facts a slice needs to count.
    period: Duration | None = None
    at_least: Annotated[int, Field(ge=1, le=1000)] | Identifier | None = None
    # sum: the measures added up; ratio: numerator and denominator (measure names).
    measures: Annotated[list[Identifier], Field(min_length=1, max_length=50)] | None = None
    numerator: Identifier | None = None
    denominator: Identifier | None = None
    missing_when_absent: bool = False


class SourceSpec(_Spec):
    """Where a rule's threshold comes from."""

    kind: Literal["statutory", "local"]
    reference: Text


class RuleSpec(_Spec):
    """One entry of `rules:`."""

    id: RuleId
    title: Annotated[
        str,
        Field(
            min_length=1,
            max_length=200,
            description="A template: `{parameter}` placeholders are filled in from the ruleset's parameters when "
            "it compiles, e.g. '{concerns_12m_threshold} or more concerns about the child in 12 months'. "
            "Parameters only: a title has no measured values.",
        ),
    ]
    condition: Annotated[str, Field(min_length=1, max_length=MAX_CONDITION_CHARS)]
    severity: SeverityName
    escalation: Text
    explanation: Annotated[
        str,
        Field(
            max_length=MAX_TEXT_CHARS,
            description="A template: `{measure}` and `{parameter}` placeholders (formats such as `{x:.0f}`) are "
            "filled in when the rule flags a case. Name a threshold's parameter rather than writing its number.",
        ),
    ]
    source: SourceSpec
    status: Literal["active", "shadow"] = "active"
    description: Text = ""
    tags: list[Annotated[str, Field(max_length=100)]] = []


class RuleFileSections(_Spec):
    """A whole rule file, with measures and rules left as mappings to validate one by one.

    Validating entries separately lets one bad rule be reported without hiding the errors
    of, or the references to, the other rules in the same file.
    """

    schema_: str | None = Field(default=None, alias="$schema")
    ruleset: RulesetHeader | None = None
    parameters: dict[Identifier, ParameterValue] = {}
    measures: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []

"""Pydantic models of the rule-test file format (`rulesets/<name>/tests/*.yaml`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rules_engine.policy.schema import RuleId


class _Spec(BaseModel):
    # strict, as in schema.py: YAML's `yes` or `12` never silently become text.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ExpectSpec(_Spec):
    """What the test asserts about each named rule."""

    raised: list[RuleId] = Field(default=[], description="Rules that must be raised (active or shadow flags).")
    not_raised: list[RuleId] = Field(default=[], description="Rules that must not be raised.")
    undetermined: list[RuleId] = Field(default=[], description="Rules that must come back undetermined.")


class RuleTestSpec(_Spec):
    """One test: a case, the date it is evaluated at, and the expected flags."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["case"]}, {"required": ["case_file"]}]})

    name: Annotated[str, Field(min_length=1, max_length=200)]
    # Lax for this field only: a quoted "2025-06-30" and an unquoted YAML date both mean the day.
    as_of: Annotated[dt.date, Field(strict=False, description="The evaluation date, YYYY-MM-DD.")]
    case: dict[str, Any] | None = Field(
        default=None, description="The case in proto3 JSON form (camelCase keys), as examples/case.json."
    )
    case_file: Annotated[str, Field(min_length=1)] | None = Field(
        default=None, description="A JSON file holding the case, relative to this test file."
    )
    expect: ExpectSpec

    @model_validator(mode="after")
    def _one_case(self) -> RuleTestSpec:
        if (self.case is None) == (self.case_file is None):
            raise ValueError("must give exactly one of case and case_file")
        return self


class RuleTestFile(_Spec):
    """A whole rule-test file."""

    schema_: str | None = Field(default=None, alias="$schema")
    tests: Annotated[list[RuleTestSpec], Field(min_length=1)]

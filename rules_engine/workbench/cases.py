"""A pasted case as the API reads one: proto3 JSON -> the Case message -> the validated case, every
bad field named by the path the gRPC BadRequest gives (`case.concerns[3].date`).

The body of `evaluate` and `timeline` is `{"ruleset"?, "as_of"?, "case", ...}`. The case goes
through service/requests.py exactly as an EvaluateRequest's case does (json_input's walk for
unknown fields and codes, then the validating conversion), so the page shows the errors the
API would give; `as_of` is parsed as the API parses it, and its error joins the case's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from rules_engine.case.facts import Case
from rules_engine.errors import CaseError, FieldViolation
from rules_engine.service import requests


@dataclass(frozen=True)
class CaseRequest:
    """What a workbench call asks about one case."""

    case: Case
    as_of: dt.date  # the day evaluated (the API's as_of date; today when none was given)
    ruleset: str | None  # None: the server's default, or the only one loaded
    as_of_given: bool = True


def text_field(body: dict[str, Any], name: str, violations: list[FieldViolation], limit: int = 256) -> str:
    """An optional text field of the body ("" when absent); a wrong kind or length is a violation."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        violations.append(FieldViolation(name, "expected text"))
        return ""
    if len(value) > limit:
        violations.append(FieldViolation(name, f"longer than {limit} characters"))
        return ""
    return value


def read_as_of(text: str, violations: list[FieldViolation]) -> dt.datetime | None:
    """The API's `as_of` (YYYY-MM-DD or RFC 3339); its violation is added, None returned, when bad."""
    try:
        return requests.parse_as_of(text)
    except CaseError as exc:
        violations.extend(exc.violations)
        return None


def read_case_request(body: dict[str, Any], today: dt.date) -> CaseRequest:
    """The case, as_of and ruleset of a body; CaseError naming every bad field at once."""
    violations: list[FieldViolation] = []
    ruleset = text_field(body, "ruleset", violations)
    moment = read_as_of(text_field(body, "as_of", violations), violations)
    as_of = moment.date() if moment is not None else today
    document = body.get("case")
    case: Case | None = None
    if document is None:
        violations.append(FieldViolation("case", "required"))
    else:
        try:
            message = requests.case_from_json(document, "case")
            # As the service does: a date up to a year past the later of today and as_of is plausible.
            case = requests.case_model_from_proto(message, max(today, as_of), "case")
        except CaseError as exc:
            violations.extend(exc.violations)
    if violations or case is None:
        raise CaseError(violations)
    return CaseRequest(case, as_of, ruleset or None, moment is not None)

"""No rule can read the child's equality monitoring fields: the compiler refuses every measure,
filter, condition, template, parameter and measure name that names one (or the child), at the
name's own file, line and column, whatever the measure kind and whichever key names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules_engine.case.equality import CHARACTERISTICS, CHILD
from rules_engine.case.facts import MEASURABLE_FACT_TYPES
from rules_engine.errors import RuleFileError, RuleFileErrors
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.policy.measure_compiler import KIND_FIELDS, NAME_KEYS

PROTECTED = (*CHARACTERISTICS, CHILD)
REASON = "equality monitoring"  # in every refusal's message

# A valid measure of every kind, as YAML lines; then the keys that name a field, a fact type or a
# measure, or hold a filter, each with what it needs beside it to be reached.
BASE: dict[str, dict[str, str]] = {
    "count": {"facts": "concerns", "window": "12 months"},
    "distinct": {"facts": "concerns", "field": "agency", "window": "12 months"},
    "days_since": {"facts": "concerns"},
    "working_days_since": {"facts": "concerns"},
    "overdue": {"facts": "referrals", "deadline": "1 working day", "resolved_by": "decided_on"},
    "open": {"facts": "plans"},
    "latest": {"facts": "visits", "last": "3", "matching": "no_access"},
    "age": {},
    "rate": {"facts": "concerns", "window": "12 months"},
    "trend": {"facts": "concerns", "window": "12 months"},
    "periods": {"facts": "visits", "window": "12 months", "period": "1 month"},
    "longest_gap": {"facts": "visits"},
    "longest_open": {"facts": "plans"},
    "sum": {"measures": "[a, b]"},
    "ratio": {"numerator": "a", "denominator": "b"},
}
NEEDS: dict[str, dict[str, str]] = {
    "end_field": {"overlaps": "true", "window": "12 months"},
    "followup": {"resolved_by": ""},
    "followup_date_field": {"followup": "assessments", "resolved_by": ""},
    "followup_where": {"followup": "assessments", "resolved_by": ""},
    "since_latest_date_field": {"since_latest": "referrals"},
    "since_latest_where": {"since_latest": "referrals"},
}
FILTERS = ("where", "matching", "followup_where", "since_latest_where")


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for kind, keys in KIND_FIELDS.items():
        for key in sorted(keys):
            if key in NAME_KEYS or key in FILTERS:
                for name in PROTECTED:
                    cases.append((kind, key, name))
        if kind == "sum":
            cases += [(kind, "measures", name) for name in PROTECTED]
    return cases


def _write(directory: Path, measures: str, rules: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    header = "ruleset: {description: Equality refusal}\n"
    (directory / "rules.yaml").write_text(header + measures + rules, encoding="utf-8")
    return directory


def _errors(directory: Path) -> list[RuleFileError]:
    with pytest.raises(RuleFileErrors) as info:
        compile_ruleset(directory)
    return info.value.errors


def _at(text: str, needle: str, occurrence: int = -1) -> tuple[int, int]:
    """1-based (line, column) of `needle`'s last (or given) occurrence in `text`."""
    offset = text.rfind(needle) if occurrence < 0 else text.find(needle)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


INPUTS = """\
measures:
  - {name: a, kind: count, facts: concerns}
  - {name: b, kind: count, facts: visits}
"""


@pytest.mark.parametrize(("kind", "key", "name"), _cases())
def test_every_measure_kind_refuses_an_equality_field_under_every_key(
    tmp_path: Path, kind: str, key: str, name: str
) -> None:
    fields = dict(BASE[kind])
    fields.update(NEEDS.get(key, {}))
    if key in FILTERS:
        value = f"'{name} == \"WBRI\"'"
    elif key == "measures":
        value = f"[a, {name}]"
    else:
        value = name
    fields[key] = value
    lines = "".join(f"    {k}: {v}\n" for k, v in fields.items() if v)
    measures = INPUTS + f"  - name: probe\n    kind: {kind}\n" + lines
    errors = _errors(_write(tmp_path / "r", measures))
    refused = [e for e in errors if REASON in str(e) or "child is not a fact type" in str(e)]
    assert refused, [str(e) for e in errors]
    text = (tmp_path / "r" / "rules.yaml").read_text()
    line, column = _at(text, f"{key}: {value}")
    where = (line, column + len(f"{key}: ") + (1 if key in FILTERS else 0) + (4 if key == "measures" else 0))
    assert (refused[0].position.file, refused[0].position.line, refused[0].position.column) == ("r/rules.yaml", *where)


RULE = """\
rules:
  - id: probe
    title: A probe
    condition: {condition}
    severity: medium
    escalation: Team manager
    explanation: {explanation}
    source: {{kind: local, reference: Local default}}
"""


@pytest.mark.parametrize("name", PROTECTED)
@pytest.mark.parametrize(
    "condition",
    ["'{n} == \"WBRI\"'", '\'a >= 1 and {n} in ["1", "2"]\'', "'not {n}'", "'child.{n} == 1'", "'a > {n}'"],
)
def test_conditions_refuse_an_equality_field_at_its_column(tmp_path: Path, name: str, condition: str) -> None:
    written = condition.format(n=name)
    text = INPUTS + RULE.format(condition=written, explanation="'{a} concerns.'")
    errors = _errors(_write(tmp_path / "r", text))
    text = (tmp_path / "r" / "rules.yaml").read_text()
    refused = [e for e in errors if REASON in str(e) or "child is not a fact type" in str(e)]
    assert len(refused) == 1 and len(errors) == 1, [str(e) for e in errors]  # no second error
    first = "child" if written.startswith("'child.") else name
    line, column = _at(text, written)
    assert refused[0].position.line == line
    assert refused[0].position.column == column + 1 + written[1:].index(first)


@pytest.mark.parametrize("name", PROTECTED)
def test_templates_parameters_and_measure_names_refuse_them(tmp_path: Path, name: str) -> None:
    text = INPUTS + RULE.format(condition="'a >= 1'", explanation=f"'{{{name}}} of the child.'")
    (refused,) = [e for e in _errors(_write(tmp_path / "t", text)) if "child" in str(e)]
    text = (tmp_path / "t" / "rules.yaml").read_text()
    assert (refused.position.line, refused.position.column) == _at(text, "{" + name)

    parameters = f"parameters:\n  {name}: 3\n" + INPUTS + RULE.format(condition="'a >= 1'", explanation="'x'")
    (refused,) = _errors(_write(tmp_path / "p", parameters))
    assert "a parameter may not be named" in str(refused)
    assert (refused.position.line, refused.position.column) == (3, 3)  # after the ruleset header

    named = INPUTS + f"  - {{name: {name}, kind: count, facts: concerns}}\n"
    (refused,) = _errors(_write(tmp_path / "m", named))
    assert "a measure may not be named" in str(refused)
    assert refused.position.line == 5  # the header, `measures:`, a, b, then the probe


def test_a_bundled_style_ruleset_compiles_and_no_fact_type_carries_an_equality_field() -> None:
    for model in MEASURABLE_FACT_TYPES.values():
        assert not set(CHARACTERISTICS) & set(model.model_fields)
    assert CHILD not in MEASURABLE_FACT_TYPES

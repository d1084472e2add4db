"""Compiler: merging files, cross-entry checks, limits, dependency order and the public entry points."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules_engine.errors import RuleFileError, RuleFileErrors
from rules_engine.policy.compiled import MeasureKind, Severity
from rules_engine.policy.compiler import MAX_RULES, check_rulesets, compile_ruleset, load_rulesets

MEASURES = """\
measures:
  - name: concerns_12m
    kind: count
    facts: concerns
    window: 12 months
  - name: plans_open
    kind: open
    facts: plans
  - name: age
    kind: age
"""


def rule(rule_id: str, condition: str, explanation: str = "'{concerns_12m} concerns.'") -> str:
    return f"""\
  - id: {rule_id}
    title: Rule {rule_id}
    condition: '{condition}'
    severity: medium
    escalation: Team manager
    explanation: {explanation}
    source: {{kind: statutory, reference: Working Together}}
"""


def write(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("__", ".")).write_text(text, encoding="utf-8")
    return directory


def errors(directory: Path) -> list[RuleFileError]:
    with pytest.raises(RuleFileErrors) as info:
        compile_ruleset(directory)
    return info.value.errors


def test_compiles_a_ruleset_in_dependency_order(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "starter",
        ruleset__yaml="ruleset: {description: Starter}\nparameters: {limit: 3}\n" + MEASURES,
        rules__yaml="rules:\n"
        + rule("top", 'flagged("middle") and age < 18')
        + rule("middle", 'flagged("base") or not flagged("base")')
        + rule("base", "concerns_12m >= limit and plans_open == 0"),
    )
    ruleset = compile_ruleset(directory)
    assert (ruleset.name, ruleset.description, len(ruleset.version)) == ("starter", "Starter", 12)
    assert [(r.id, r.level) for r in ruleset.rules] == [("base", 0), ("middle", 1), ("top", 2)]
    base = ruleset.rule("base")
    assert base.measures == ("concerns_12m", "plans_open")
    assert base.thresholds == (("limit", 3),)
    assert base.severity is Severity.MEDIUM and base.source_kind == "statutory"
    assert ruleset.rule("middle").depends_on == ("base",)
    assert base.position.file == "starter/rules.yaml" and base.position.line == 16
    open_plans = next(m for m in ruleset.measures if m.name == "plans_open")
    assert (open_plans.kind, open_plans.end_field) == (MeasureKind.OPEN, "end_date")


def test_ruleset_name_from_the_header(tmp_path: Path) -> None:
    directory = write(tmp_path / "dir", a__yaml="ruleset: {name: named}\n" + MEASURES)
    assert compile_ruleset(directory).name == "named"


def test_errors_of_all_files_and_stages_together_sorted(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "rs",
        a__yaml=MEASURES + "rules:\n" + rule("one", "concerns_12m > nope"),
        b__yaml="rules:\n" + rule("two", "concerns_12m > 1").replace("severity: medium", "severity: hgh"),
        c__yaml="a: [\n",
    )
    found = errors(directory)
    assert [(e.position.file, e.code) for e in found] == [
        ("rs/a.yaml", "compile_error"),
        ("rs/b.yaml", "schema_error"),
        ("rs/c.yaml", "load_error"),
    ]


def test_a_broken_rule_is_not_also_reported_as_unknown(tmp_path: Path) -> None:
    broken = rule("base", "concerns_12m > 1").replace("severity: medium", "severity: 5")
    directory = write(tmp_path / "rs", a__yaml=MEASURES + "rules:\n" + broken + rule("top", 'flagged("base")'))
    assert [e.code for e in errors(directory)] == ["schema_error"]


def test_self_dependency_is_a_cycle(tmp_path: Path) -> None:
    directory = write(tmp_path / "rs", a__yaml=MEASURES + "rules:\n" + rule("me", 'flagged("me")'))
    (error,) = errors(directory)
    assert error.message == "rules depend on each other in a cycle: me -> me"
    assert (error.position.line, error.position.column) == (14, 17)


def test_duplicate_parameters_and_headers(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "rs",
        a__yaml="ruleset: {name: x}\nparameters: {limit: 1}\n",
        b__yaml="ruleset: {name: y}\nparameters: {limit: 2}\n",
    )
    messages = [e.message for e in errors(directory)]
    assert messages == [
        "the ruleset header is already given in rs/a.yaml line 1",
        "parameter 'limit' is already defined in rs/a.yaml line 2",
    ]


@pytest.mark.parametrize(
    ("measure", "message"),
    [
        ("kind: age\n    facts: concerns", "'facts' does not apply to age measures"),
        ("kind: distinct\n    facts: concerns", "distinct measures need 'field'"),
        ("kind: distinct\n    facts: concerns\n    field: date", "field must be a field; 'date' is not one"),
        ("kind: overdue\n    facts: referrals\n    deadline: 2 days", "either 'followup' or 'resolved_by'"),
        (
            "kind: overdue\n    facts: referrals\n    deadline: 2 days\n    resolved_by: source",
            "a date field",
        ),
        ("kind: open\n    facts: concerns", "open measures over concerns need 'end_field'"),
        ("kind: count\n    facts: concerns\n    window: span", "unknown parameter 'span' for window"),
        (
            "kind: days_since\n    facts: concerns\n    window: 3 days",
            "'window' does not apply to days_since",
        ),
    ],
)
def test_measure_checks(tmp_path: Path, measure: str, message: str) -> None:
    directory = write(tmp_path / "rs", a__yaml=f"measures:\n  - name: m\n    {measure}\n")
    found = [e.message for e in errors(directory)]
    assert any(message in m for m in found), found


def test_measure_and_parameter_names_must_differ(tmp_path: Path) -> None:
    directory = write(tmp_path / "rs", a__yaml="parameters: {age: 1}\n" + MEASURES)
    assert "names both a measure and a parameter" in errors(directory)[0].message


@pytest.mark.parametrize(
    ("explanation", "ok"),
    [
        ("'{concerns_12m:.0f} ({concerns_12m:,}) {{literal}}'", True),
        ("'{concerns_12m!r}'", False),
        ("'{concerns_12m:>10}'", False),
        ("'{concerns_12m[0]}'", False),
        ("'{}'", False),
        ("'{concerns_12m'", False),
    ],
)
def test_explanation_templates(tmp_path: Path, explanation: str, ok: bool) -> None:
    directory = write(tmp_path / "rs", a__yaml=MEASURES + "rules:\n" + rule("r", "age > 1", explanation))
    if ok:
        compile_ruleset(directory)
    else:
        assert errors(directory)[0].position.path == "rules[0].explanation"


def test_limits(tmp_path: Path) -> None:
    many = "".join(rule(f"r{i}", "age > 1") for i in range(MAX_RULES + 1))
    long = rule("long", "age > 1 " + "and age > 1 " * 200)
    directory = write(tmp_path / "rs", a__yaml=MEASURES + "rules:\n" + many + long)
    found = errors(directory)
    assert [e.message for e in found] == [
        "a ruleset may hold at most 500 rules",
        "condition is too long: at most 2000 characters",
    ]


def test_load_and_check_rulesets(tmp_path: Path) -> None:
    write(tmp_path / "one", a__yaml=MEASURES)
    write(tmp_path / "two", a__yaml="ruleset: {name: second}\n" + MEASURES)
    write(tmp_path / "two" / "tests", t__yaml="not: [a rule file\n")
    (tmp_path / "empty").mkdir()
    assert sorted(load_rulesets(tmp_path)) == ["one", "second"]
    assert check_rulesets(tmp_path) == []
    assert check_rulesets(tmp_path / "one") == []
    write(tmp_path / "three", a__yaml="measures: 5\n")
    assert [e.position.file for e in check_rulesets(tmp_path)] == ["three/a.yaml"]
    with pytest.raises(RuleFileErrors):
        load_rulesets(tmp_path)
    assert check_rulesets(tmp_path / "missing")[0].message.endswith("is not a directory")

"""Titles and explanations take their numbers from the parameters; `check` warns at literal ones."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rules_engine.case.facts import Case
from rules_engine.cli.app import app
from rules_engine.config import BUNDLED_RULESETS
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.errors import RuleFileErrors
from rules_engine.policy.checking import check
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.policy.literals import parameter_literals

AS_OF = dt.date(2025, 6, 30)


def _safeguarding_with(tmp_path: Path, old: str, new: str) -> Path:
    directory = tmp_path / "safeguarding"
    shutil.copytree(BUNDLED_RULESETS / "safeguarding", directory)
    header = directory / "ruleset.yaml"
    text = header.read_text(encoding="utf-8")
    assert text.count(old) == 1
    header.write_text(text.replace(old, new), encoding="utf-8")
    return directory


def test_a_changed_threshold_shows_in_the_title_and_the_flag(tmp_path: Path) -> None:
    directory = _safeguarding_with(tmp_path, "concerns_12m_threshold: 5", "concerns_12m_threshold: 3")
    ruleset = compile_ruleset(directory)
    rules = {rule.id: rule for rule in ruleset.rules}
    assert rules["cumulative-concerns"].title == "3 or more concerns about the child in 12 months"
    assert rules["concerns-without-assessment"].title.startswith("3 or more concerns about the child in 12 months")
    concerns = [{"id": f"c{i}", "date": AS_OF - dt.timedelta(days=10 * i), "agency": "POLICE"} for i in range(3)]
    prepared = PreparedRuleset(ruleset, matcher="reference")
    try:
        outcome = prepared.evaluate(Case.model_validate({"case_id": "c", "concerns": concerns}), AS_OF)
    finally:
        prepared.close()
    flag = next(f for f in outcome.flags if f.rule_id == "cumulative-concerns")
    assert flag.title == "3 or more concerns about the child in 12 months"
    assert flag.explanation == "3 concerns were recorded in the last 12 months (threshold 3)."


def test_a_changed_duration_shows_in_the_title(tmp_path: Path) -> None:
    directory = _safeguarding_with(
        tmp_path, 'assessment_deadline: "45 working days"', 'assessment_deadline: "40 working days"'
    )
    rules = {rule.id: rule for rule in compile_ruleset(directory).rules}
    assert rules["assessment-overdue"].title == "Assessment not completed within 40 working days"
    assert (
        rules["assessment-nearing-deadline"].title
        == "Assessment open for 35 working days, nearing the 40 working days limit"
    )


RULESET = """\
parameters:
  many: 5
  span: "3 years"
measures:
  - {name: concerns_12m, kind: count, facts: concerns, window: 12 months}
  - {name: concerns_long, kind: count, facts: concerns, window: span}
rules:
  - id: many-concerns
    title: %s
    condition: concerns_12m >= many
    severity: high
    escalation: Team manager
    explanation: %s
    source: {kind: local, reference: Local default}
"""


def _one_rule(tmp_path: Path, title: str, explanation: str) -> Path:
    directory = tmp_path / "demo"
    directory.mkdir()
    (directory / "rules.yaml").write_text(RULESET % (title, explanation), encoding="utf-8")
    return directory


def test_check_warns_at_a_literal_number_a_parameter_holds(tmp_path: Path) -> None:
    directory = _one_rule(tmp_path, "Five or more concerns in 12 months", "'{concerns_12m} concerns, limit 5.'")
    report = check(directory)
    assert report.errors == [] and not report.failed
    assert [str(w) for w in report.warnings] == [
        "demo/rules.yaml:9:12: warning: title says Five where parameter many (5) is meant; write {many}",
        "demo/rules.yaml:13:50: warning: explanation says 5 where parameter many (5) is meant; write {many}",
    ]
    result = CliRunner().invoke(app, ["check", str(directory)])
    assert result.exit_code == 0, result.output
    assert "demo/rules.yaml:9:12: warning: title says Five" in result.output


def test_no_warning_once_the_title_names_the_parameter(tmp_path: Path) -> None:
    directory = _one_rule(
        tmp_path, "'{many} or more concerns in 12 months'", "'{concerns_12m} concerns (threshold {many}).'"
    )
    assert check(directory).warnings == []
    rule = compile_ruleset(directory).rules[0]
    assert rule.title == "5 or more concerns in 12 months"


def test_a_title_names_parameters_only(tmp_path: Path) -> None:
    directory = _one_rule(tmp_path, "'{concerns_12m} concerns'", "'{concerns_12m} concerns.'")
    with pytest.raises(RuleFileErrors) as info:
        compile_ruleset(directory)
    assert [str(e) for e in info.value.errors] == [
        "demo/rules.yaml:9:13: compile_error: a title names parameters only, not the measure 'concerns_12m'; "
        "measured values go in the explanation"
    ]


def test_durations_and_number_words_match_parameters() -> None:
    parameters: dict[str, float | int | bool | str] = {"span": "3 years", "many": 5, "on": True}
    found = [
        (x.text, x.parameter, x.offset) for x in parameter_literals("over three years, {x} five {{1}}", parameters)
    ]
    assert found == [("three years", "span", 5), ("five", "many", 22)]
    # "12m" and "3.5" are not the numbers 12 and 3; a boolean parameter is not the number 1.
    assert list(parameter_literals("concerns_12m 3.5 x1 one", {"a": 12, "b": 3, "on": True})) == []


def test_a_duration_a_used_measure_writes_out_is_not_blamed_on_a_parameter(tmp_path: Path) -> None:
    directory = _one_rule(
        tmp_path, "Concerns in 12 months", "'{concerns_12m} in 12 months, {concerns_long} in 3 years.'"
    )
    assert [w.message for w in check(directory).warnings] == [
        "explanation says 3 years where parameter span (3 years) is meant; write {span}"
    ]


def test_the_bundled_rulesets_check_without_warnings() -> None:
    report = check(BUNDLED_RULESETS)
    assert report.lines() == []

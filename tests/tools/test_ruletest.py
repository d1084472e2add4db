"""Rule tests: failures at their file and line, exact coverage, JUnit XML and the CLI's exit codes."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from rules_engine.cli.app import app
from rules_engine.config import BUNDLED_RULESETS
from rules_engine.tools.ruletest import run_directory

RULES = """\
parameters:
  many: 3
measures:
  - name: concerns_12m
    description: Concerns recorded in the last 12 months
    kind: count
    facts: concerns
    window: 12 months
rules:
  - id: many-concerns
    title: Many concerns
    condition: concerns_12m >= many
    severity: high
    escalation: Team manager
    explanation: "{concerns_12m} concerns"
    source: {kind: local, reference: "Test"}
  - id: any-concern
    title: Any concern
    condition: concerns_12m >= 1
    severity: low
    escalation: None
    explanation: "{concerns_12m} concerns"
    source: {kind: local, reference: "Test"}
  - id: never-tested
    title: Never tested either way
    condition: concerns_12m >= 100
    severity: low
    escalation: None
    explanation: "{concerns_12m} concerns"
    source: {kind: local, reference: "Test"}
"""

TESTS = """\
tests:
  - name: two concerns
    as_of: "2025-06-30"
    case:
      caseId: t1
      concerns: [{id: c1, date: "2025-01-02", agency: POLICE}, {id: c2, date: "2025-02-02", agency: GP}]
    expect:
      raised: [any-concern, many-concerns]
  - name: no concerns
    as_of: 2025-06-30
    case: {caseId: t2}
    expect:
      not_raised: [any-concern, many-concerns]
"""


def _ruleset(tmp_path: Path, tests: str = TESTS) -> Path:
    directory = tmp_path / "small"
    (directory / "tests").mkdir(parents=True)
    (directory / "rules.yaml").write_text(RULES, encoding="utf-8")
    (directory / "tests" / "basic.yaml").write_text(tests, encoding="utf-8")
    return directory


def test_a_failing_expectation_names_file_line_column_and_the_measured_values(tmp_path: Path) -> None:
    run = run_directory(_ruleset(tmp_path))
    assert (run.passed, run.failed) == (1, 1)
    assert run.failure_lines() == [
        "small/tests/basic.yaml:8:29: test 'two concerns': rule many-concerns expected raised, got not raised "
        "(measured: concerns_12m=2; thresholds: many=3)"
    ]


def test_coverage_comes_from_every_outcome_not_the_expect_lists(tmp_path: Path) -> None:
    run = run_directory(_ruleset(tmp_path))
    seen = {c.rule_id: (c.raised, c.not_raised, c.covered) for c in run.coverage}
    # never-tested is named by no test, yet both tests evaluated it: seen not raised twice.
    assert seen == {
        "many-concerns": (0, 2, False),
        "any-concern": (1, 1, True),
        "never-tested": (0, 2, False),
    }
    assert run.coverage_percent == 100 / 3


def test_malformed_test_files_are_reported_at_their_node(tmp_path: Path) -> None:
    bad = TESTS.replace("    expect:\n      raised", "    expected:\n      raised").replace('"2025-06-30"', "soon")
    run = run_directory(_ruleset(tmp_path, bad))
    assert sorted(str(e) for e in run.errors) == [
        "small/tests/basic.yaml:2:5: schema_error: missing required field 'expect'",
        "small/tests/basic.yaml:3:12: schema_error: as_of: Input should be a valid date or datetime, "
        "input is too short",
        "small/tests/basic.yaml:7:5: schema_error: unknown field 'expected'; did you mean 'expect'?",
    ]
    assert all(e.position.file == "small/tests/basic.yaml" for e in run.errors)
    assert run.failed == 3


def test_unknown_rule_and_bad_case_fail_the_test(tmp_path: Path) -> None:
    tests = TESTS.replace("raised: [any-concern, many-concerns]", "raised: [any-concern, many-concern]")
    tests = tests.replace("case: {caseId: t2}", "case: {caseId: t2, concerns: [{id: c1}]}")
    run = run_directory(_ruleset(tmp_path, tests))
    lines = run.failure_lines()
    assert lines[0].startswith("small/tests/basic.yaml:8:29: test 'two concerns': unknown rule 'many-concern'")
    assert "did you mean 'many-concerns'?" in lines[0]
    assert lines[1].startswith("small/tests/basic.yaml:11:11: test 'no concerns': invalid case: case.concerns[0]")


def test_cli_prints_failures_coverage_summary_and_writes_junit(tmp_path: Path) -> None:
    directory = _ruleset(tmp_path)
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(app, ["test", str(directory), "--junit", str(junit)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("small/tests/basic.yaml:8:29: test 'two concerns'")
    assert "uncovered: small/many-concerns: no test saw it raised" in lines
    assert "rule coverage: 33.3% (1 of 3 rules seen both ways)" in lines
    assert lines[-1] == "1 passed, 1 failed"
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "2" and root.get("failures") == "1"
    (failure,) = root.iter("failure")
    assert "many-concerns expected raised" in (failure.get("message") or "")


def test_min_coverage_fails_a_passing_run_below_the_bar(tmp_path: Path) -> None:
    tests = TESTS.replace("raised: [any-concern, many-concerns]", "raised: [any-concern]")
    directory = _ruleset(tmp_path, tests)
    assert CliRunner().invoke(app, ["test", str(directory)]).exit_code == 0
    result = CliRunner().invoke(app, ["test", str(directory), "--min-coverage", "50"])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "2 passed, 0 failed"


def test_bundled_rulesets_pass_at_full_coverage() -> None:
    result = CliRunner().invoke(app, ["test", str(BUNDLED_RULESETS), "--min-coverage", "100"])
    assert result.exit_code == 0, result.stdout
    assert "rule coverage: 100.0%" in result.stdout
    assert result.stdout.splitlines()[-1].endswith(" passed, 0 failed")


def test_case_file_is_read_relative_to_the_test_file(tmp_path: Path) -> None:
    directory = _ruleset(tmp_path, "tests: []\n")
    (directory / "tests" / "fixtures").mkdir()
    (directory / "tests" / "fixtures" / "c.json").write_text('{"caseId": "f1"}', encoding="utf-8")
    (directory / "tests" / "basic.yaml").write_text(
        textwrap.dedent("""\
        tests:
          - name: from a file
            as_of: "2025-06-30"
            case_file: fixtures/c.json
            expect: {not_raised: [any-concern]}
        """),
        encoding="utf-8",
    )
    run = run_directory(directory)
    assert (run.passed, run.failed) == (1, 0)

"""Impact preview: a threshold change flips exactly the expected cases, from directories and git revisions."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rules_engine.cli.app import app
from rules_engine.tools.diff import compare, read_cases

RULES = """\
parameters:
  many: {many}
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
    explanation: "{{concerns_12m}} concerns"
    source: {{kind: local, reference: "Test"}}
  - id: any-concern
    title: Any concern
    condition: concerns_12m >= 1
    severity: low
    escalation: None
    explanation: "{{concerns_12m}} concerns"
    source: {{kind: local, reference: "Test"}}
"""


def _rulesets(root: Path, many: int) -> Path:
    (root / "demo").mkdir(parents=True, exist_ok=True)
    (root / "demo" / "rules.yaml").write_text(RULES.format(many=many), encoding="utf-8")
    return root


def _corpus(path: Path) -> Path:
    """Case k has k concerns, k = 0..7; a twin of case 5 keeps counts above the example limit honest."""
    lines: list[str] = []
    for k in [*range(8), 5]:
        case_id = f"case-{k}" if len(lines) < 8 else "case-5b"
        concerns = [{"id": f"c{i}", "date": f"2025-0{1 + i % 5}-1{i}", "agency": "POLICE"} for i in range(k)]
        lines.append(json.dumps({"caseId": case_id, "concerns": concerns}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_raising_a_threshold_flips_exactly_the_cases_between_old_and_new(tmp_path: Path) -> None:
    base = _rulesets(tmp_path / "base", many=3)
    head = _rulesets(tmp_path / "head", many=5)
    day = dt.date(2025, 6, 30)
    impact = compare(base, head, read_cases(_corpus(tmp_path / "cases.jsonl"), day), day)
    by_rule = {c.rule_id: c for c in impact.changes}
    many = by_rule["many-concerns"]
    assert many.newly_flagged == []
    assert many.no_longer_flagged == ["case-3", "case-4"]
    assert many.unchanged_flagged == ["case-5", "case-6", "case-7", "case-5b"]
    anyc = by_rule["any-concern"]
    assert (anyc.newly_flagged, anyc.no_longer_flagged, len(anyc.unchanged_flagged)) == ([], [], 8)
    assert not anyc.changed and many.changed
    assert impact.cases == 9


def test_cli_compares_git_revisions_and_writes_markdown(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _rulesets(repo / "rulesets", many=6)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "base")
    _rulesets(repo / "rulesets", many=2)  # the working tree is the head
    cases = _corpus(tmp_path / "cases.jsonl")
    report = tmp_path / "impact.md"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)
        result = CliRunner().invoke(
            app,
            [
                "diff",
                "--base",
                "HEAD:rulesets",
                "--head",
                "rulesets",
                "--cases",
                str(cases),
                "--as-of",
                "2025-06-30",
                "--report",
                str(report),
            ],
        )
    assert result.exit_code == 0, result.output
    text = report.read_text(encoding="utf-8")
    # many 6 -> 2: cases 2..5 and the twin are newly flagged (4 + 1), 6 and 7 unchanged; five examples at most.
    row = (
        "| demo | many-concerns (parameter many 6 -> 2) | Many concerns | 5 | 0 | 2 "
        "| + case-2, case-3, case-4, case-5, case-5b |"
    )
    assert row in text
    assert "| demo | any-concern | Any concern | 0 | 0 | 8 |  |" in text
    assert "- demo: parameter many 6 -> 2, compared in many-concerns; 8 sampled case(s) near it" in text
    html = tmp_path / "impact.html"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)
        args = ["diff", "--base", "HEAD:rulesets", "--head", "rulesets", "--cases", str(cases), "--report", str(html)]
        assert CliRunner().invoke(app, [*args, "--as-of", "2025-06-30"]).exit_code == 0
    assert "<td>many-concerns (parameter many 6 -&gt; 2)</td><td>Many concerns</td><td>5</td>" in html.read_text(
        encoding="utf-8"
    )


def test_an_unknown_revision_is_a_usage_error(tmp_path: Path) -> None:
    cases = _corpus(tmp_path / "cases.jsonl")
    base = _rulesets(tmp_path / "base", many=3)
    result = CliRunner().invoke(
        app, ["diff", "--base", "no-such-rev:rulesets", "--head", str(base), "--cases", str(cases)]
    )
    assert result.exit_code == 2


def _with_test(root: Path, concerns: int, raised: str) -> Path:
    """A rule test beside the demo ruleset: a case with `concerns` concerns raises `raised`."""
    (root / "demo" / "tests").mkdir(parents=True, exist_ok=True)
    concern_list = ", ".join(f'{{id: c{i}, date: "2025-0{1 + i % 5}-1{i}", agency: POLICE}}' for i in range(concerns))
    (root / "demo" / "tests" / "demo.yaml").write_text(
        f"""\
tests:
  - name: {concerns} concerns
    as_of: "2025-06-30"
    case: {{caseId: t1, concerns: [{concern_list}]}}
    expect:
      raised: [{raised}]
""",
        encoding="utf-8",
    )
    return root


def _invoke(*args: str, columns: int = 200) -> str:
    result = CliRunner().invoke(app, ["diff", *args, "--as-of", "2025-06-30"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_preview_says_what_changed_and_sorts_changed_rules_first(tmp_path: Path) -> None:
    base = _rulesets(tmp_path / "base", many=6)
    head = _rulesets(tmp_path / "head", many=2)
    day = dt.date(2025, 6, 30)
    cases = read_cases(_corpus(tmp_path / "cases.jsonl"), day)
    impact = compare(base, head, cases, day)
    assert impact.changes[0].edits == ["parameter many 6 -> 2"]
    [parameter] = impact.parameters
    assert (parameter.name, parameter.old, parameter.new, parameter.rules) == ("many", 6, 2, ["many-concerns"])
    assert parameter.measures == ["concerns_12m"] and parameter.near == 8  # 1..7 concerns, and the twin
    assert impact.warnings() == []
    # A later rule whose condition changes comes before an earlier one that flags the same cases.
    edited = _rulesets(tmp_path / "edited", many=6)
    rules = edited / "demo" / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace(">= 1", ">= 2"), encoding="utf-8")
    reordered = compare(base, edited, cases, day)
    assert [(c.rule_id, c.edits) for c in reordered.changes] == [("any-concern", ["condition"]), ("many-concerns", [])]
    output = _invoke("--base", str(base), "--head", str(head), "--cases", str(tmp_path / "cases.jsonl"))
    assert "demo: parameter many 6 -> 2, compared in many-concerns; 8 sampled case(s) near it" in output
    assert "Many concerns" in output  # titles are shown
    assert output.index("many-concerns") < output.index("any-concern")


def test_a_sample_with_no_case_near_the_change_is_warned_about(tmp_path: Path) -> None:
    base = _rulesets(tmp_path / "base", many=20)
    head = _rulesets(tmp_path / "head", many=25)
    cases = _corpus(tmp_path / "cases.jsonl")  # at most 7 concerns: none near 20 or 25
    output = _invoke("--base", str(base), "--head", str(head), "--cases", str(cases))
    assert "0 of 2 rules change what they flag" in output
    warning = " ".join(output.split("warning: ", 1)[1].split())
    assert warning.startswith(
        "no case in the sample has concerns_12m between 19 and 26, near parameter many 20 -> 25 (demo)"
    )
    assert "rules-engine synth --cases 1000 --seed 1" in warning


def test_a_head_that_fails_its_own_tests_is_shown(tmp_path: Path) -> None:
    base = _with_test(_rulesets(tmp_path / "base", many=3), 4, "many-concerns")
    head = _with_test(_rulesets(tmp_path / "head", many=5), 4, "many-concerns")
    day = dt.date(2025, 6, 30)
    impact = compare(base, head, read_cases(_corpus(tmp_path / "cases.jsonl"), day), day)
    assert list(impact.head_test_failures) == ["demo"]
    assert "head ruleset demo fails its own tests (0 passed, 1 failed" in impact.warnings()[0]
    swapped = compare(head, base, read_cases(_corpus(tmp_path / "cases.jsonl"), day), day)
    assert swapped.head_test_failures == {}
    report = tmp_path / "impact.md"
    cases = str(tmp_path / "cases.jsonl")
    _invoke("--base", str(base), "--head", str(head), "--cases", cases, "--report", str(report))
    assert "> **Warning:** head ruleset demo fails its own tests" in report.read_text(encoding="utf-8")


def test_ids_are_not_cut_short_in_a_narrow_terminal(tmp_path: Path) -> None:
    long_id = "many-concerns-recorded-by-several-agencies"
    base = _rulesets(tmp_path / "base", many=3)
    head = _rulesets(tmp_path / "head", many=5)
    for root in (base, head):
        rules = root / "demo" / "rules.yaml"
        rules.write_text(rules.read_text(encoding="utf-8").replace("many-concerns", long_id), encoding="utf-8")
    output = _invoke(
        "--base", str(base), "--head", str(head), "--cases", str(_corpus(tmp_path / "cases.jsonl")), columns=60
    )
    assert max(len(line) for line in output.splitlines() if "│" in line) <= 60
    assert "…" not in output
    assert long_id in output.replace("│", " ").replace(" ", "").replace("\n", "")
    assert "any-concern" in output

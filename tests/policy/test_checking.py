"""`check` reports root causes first: a file that fails to load, then a count of what follows from it."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from rules_engine.cli.app import app
from rules_engine.config import BUNDLED_RULESETS
from rules_engine.policy.checking import check


def _rulesets(tmp_path: Path) -> Path:
    root = tmp_path / "rulesets"
    shutil.copytree(BUNDLED_RULESETS, root)
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_duplicate_parameter_is_reported_first_and_its_follow_ons_counted(tmp_path: Path) -> None:
    root = _rulesets(tmp_path)
    header = root / "safeguarding" / "ruleset.yaml"
    _edit(header, "  concerns_ever_threshold: 20\n", "  concerns_ever_threshold: 20\n  concerns_12m_threshold: 6\n")
    # A mistake of its own in another file is still listed, after the root cause.
    _edit(
        root / "starter" / "rules.yaml",
        "condition: concerns_12m >= concerns_threshold\n",
        "condition: concerns_12n >= concerns_threshold\n",
    )
    report = check(root)
    assert [str(e) for e in report.errors] == [
        "safeguarding/ruleset.yaml:41:3: load_error: duplicate key 'concerns_12m_threshold': "
        "it is already given on line 39",
        "starter/rules.yaml:5:16: compile_error: unknown measure or parameter 'concerns_12n'; "
        "did you mean 'concerns_12m'?",
    ]
    assert len(report.follow_ons) == 1
    follow_on = report.follow_ons[0]
    assert follow_on.file == "safeguarding/ruleset.yaml" and follow_on.count > 100
    assert str(follow_on) == (
        f"{follow_on.count} further errors follow from safeguarding/ruleset.yaml failing to load; "
        "fix it and check again"
    )
    result = CliRunner().invoke(app, ["check", str(root)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("safeguarding/ruleset.yaml:41:3: load_error: duplicate key")
    assert lines[2] == str(follow_on)
    assert len(lines) == 3


def test_a_file_that_is_not_yaml_takes_the_unknown_names_with_it(tmp_path: Path) -> None:
    root = _rulesets(tmp_path)
    _edit(root / "safeguarding" / "ruleset.yaml", "parameters:\n", "parameters: [\n")
    report = check(root / "safeguarding")
    assert len(report.errors) == 1 and report.errors[0].code == "load_error"
    assert report.errors[0].position.file == "safeguarding/ruleset.yaml"
    assert [f.file for f in report.follow_ons] == ["safeguarding/ruleset.yaml"]


def test_errors_with_no_failed_file_are_listed_as_before(tmp_path: Path) -> None:
    root = _rulesets(tmp_path)
    _edit(
        root / "starter" / "rules.yaml",
        "condition: concerns_12m >= concerns_threshold\n",
        "condition: concerns_12n >= concerns_threshold\n",
    )
    report = check(root)
    assert [e.position.file for e in report.errors] == ["starter/rules.yaml"]
    assert report.follow_ons == [] and report.failed

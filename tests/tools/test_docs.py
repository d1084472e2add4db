"""The rule catalogue renders the starter ruleset in plain words, with its covering tests."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rules_engine.cli.app import app
from rules_engine.config import BUNDLED_RULESETS


def test_docs_render_the_starter(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["docs", str(BUNDLED_RULESETS / "starter"), "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "starter.md").read_text(encoding="utf-8")
    assert "## 5 or more concerns recorded in 12 months (`cumulative-concerns`)" in markdown
    assert "- **Condition:** Concerns recorded in the last 12 months is at least 5 (concerns_threshold)" in markdown
    assert "- **Thresholds:** concerns_threshold = 5" in markdown
    assert "- **Status:** shadow" in markdown
    assert "five concerns and no assessment raises both concern flags" in markdown
    assert "no test names this rule" not in markdown
    # A rule lists the tests that name it, not every test of the ruleset.
    section = markdown.split("(`worker-churn`)")[1].split("\n## ")[0]
    assert "five concerns and no assessment raises both concern flags" not in section
    page = (tmp_path / "starter.html").read_text(encoding="utf-8")
    assert "<h2>5 or more concerns recorded in 12 months (cumulative-concerns)</h2>" in page

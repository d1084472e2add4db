"""Data-driven compiler cases: each tests/cases/compile/<name>/ holds rule files and expected.yaml.

expected.yaml lists the errors in the order they are reported (sorted by file, line, column):

    errors:
      - {file: rules.yaml, line: 9, column: 16, code: compile_error, message_contains: "unknown measure"}

`errors: []` marks a ruleset that must compile. Adding a case needs no Python.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules_engine.errors import RuleFileErrors
from rules_engine.policy.compiler import compile_ruleset

CASES_DIR = Path(__file__).parents[1] / "cases" / "compile"
CASES = sorted(path for path in CASES_DIR.iterdir() if path.is_dir())


def reported(directory: Path) -> list[dict[str, Any]]:
    """The errors compiling `directory` gives, as expected.yaml spells them."""
    try:
        compile_ruleset(directory)
    except RuleFileErrors as exc:
        return [
            {
                "file": error.position.file.split("/", 1)[1],
                "line": error.position.line,
                "column": error.position.column,
                "code": error.code,
                "message": error.message,
            }
            for error in exc.errors
        ]
    return []


@pytest.mark.parametrize("case", CASES, ids=[path.name for path in CASES])
def test_compile_case(case: Path, tmp_path: Path) -> None:
    expected = yaml.safe_load((case / "expected.yaml").read_text(encoding="utf-8"))["errors"]
    # Copy without expected.yaml, which is not a rule file.
    ruleset = tmp_path / case.name
    shutil.copytree(case, ruleset, ignore=shutil.ignore_patterns("expected.yaml"))
    actual = reported(ruleset)
    listing = "\n".join(f"  {e}" for e in actual)
    assert len(actual) == len(expected), f"expected {len(expected)} errors, got:\n{listing}"
    for got, want in zip(actual, expected, strict=True):
        where = {key: got[key] for key in ("file", "line", "column", "code")}
        assert where == {key: want[key] for key in ("file", "line", "column", "code")}, listing
        assert want["message_contains"] in got["message"], listing


def test_every_case_has_expected_errors() -> None:
    assert CASES, "no compile cases found"
    for case in CASES:
        assert (case / "expected.yaml").is_file(), f"{case.name} has no expected.yaml"

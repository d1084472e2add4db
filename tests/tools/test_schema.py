"""The committed JSON Schemas are current, and they accept and reject what the loader accepts and rejects."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from rules_engine.cli.app import app
from rules_engine.config import BUNDLED_RULESETS
from rules_engine.policy.compiler import check_rulesets
from rules_engine.tools.jsonschemas import RULE_FILE_SCHEMA, RULE_TEST_SCHEMA, SCHEMA_DIRECTORY, render, schemas
from rules_engine.tools.ruletest import load_rule_tests

STARTER = BUNDLED_RULESETS / "starter"
Edit = Callable[[dict[str, Any]], None]


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIRECTORY / name).read_text(encoding="utf-8"))
    # Editors check `format: date`; jsonschema only does when asked.
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_committed_schemas_are_what_the_models_generate(tmp_path: Path) -> None:
    for name, schema in schemas().items():
        assert (SCHEMA_DIRECTORY / name).read_text(encoding="utf-8") == render(schema), (
            "run `rules-engine schema --output rules_engine/schemas`"
        )
    result = CliRunner().invoke(app, ["schema", "--output", str(tmp_path)])
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [RULE_FILE_SCHEMA, RULE_TEST_SCHEMA]


def test_bundled_files_reference_their_schema() -> None:
    for path in sorted(BUNDLED_RULESETS.rglob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        expected = RULE_TEST_SCHEMA if "tests" in path.relative_to(BUNDLED_RULESETS).parts else RULE_FILE_SCHEMA
        assert first.startswith("# yaml-language-server: $schema=") and first.endswith(expected), path


def _set(path: str, value: Any) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return edit


_DELETE = object()

RULE_FILE_EDITS: dict[str, Edit | None] = {
    "unchanged": None,
    "unknown top-level section": _set("rulez", []),
    "unknown rule field": _set("rules.0.colour", "red"),
    "severity not in the list": _set("rules.0.severity", "urgent"),
    "status not in the list": _set("rules.0.status", "paused"),
    "title missing": _set("rules.0.title", _DELETE),
    "title is a number": _set("rules.0.title", 12),
    "source kind unknown": _set("rules.0.source.kind", "national"),
    "rules is a mapping": _set("rules", {"a": 1}),
    "tags not a list": _set("rules.0.tags", "urgent"),
}

TEST_FILE_EDITS: dict[str, Edit | None] = {
    "unchanged": None,
    "no tests": _set("tests", []),
    "unknown field": _set("tests.0.colour", "red"),
    "expect missing": _set("tests.0.expect", _DELETE),
    "expect field unknown": _set("tests.0.expect.flagged", ["x"]),
    "as_of not a date": _set("tests.0.as_of", "soon"),
    "both case and case_file": _set("tests.0.case_file", "fixtures/x.json"),
    "neither case nor case_file": _set("tests.0.case", _DELETE),
    "raised not a list": _set("tests.0.expect.raised", "cumulative-concerns"),
}


@pytest.mark.parametrize("label", list(RULE_FILE_EDITS))
def test_rule_file_schema_agrees_with_the_loader(label: str, tmp_path: Path) -> None:
    document = yaml.safe_load((STARTER / "rules.yaml").read_text(encoding="utf-8"))
    edit = RULE_FILE_EDITS[label]
    if edit is not None:
        edit(document)
    ruleset = tmp_path / "starter"
    ruleset.mkdir()
    (ruleset / "ruleset.yaml").write_bytes((STARTER / "ruleset.yaml").read_bytes())
    (ruleset / "rules.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    schema_ok = not list(_validator(RULE_FILE_SCHEMA).iter_errors(document))
    loader_errors = check_rulesets(ruleset)
    assert schema_ok == (edit is None)
    assert (not loader_errors) == schema_ok, loader_errors
    # Both rejections are about the schema, not about some later stage.
    assert all(e.code == "schema_error" for e in loader_errors)


@pytest.mark.parametrize("label", list(TEST_FILE_EDITS))
def test_rule_test_schema_agrees_with_the_loader(label: str, tmp_path: Path) -> None:
    document = yaml.safe_load((STARTER / "tests" / "concerns.yaml").read_text(encoding="utf-8"))
    edit = TEST_FILE_EDITS[label]
    if edit is not None:
        edit(document)
    ruleset = tmp_path / "starter"
    (ruleset / "tests").mkdir(parents=True)
    (ruleset / "tests" / "t.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    schema_ok = not list(_validator(RULE_TEST_SCHEMA).iter_errors(document))
    _tests, loader_errors = load_rule_tests(ruleset)
    assert schema_ok == (edit is None)
    assert (not loader_errors) == schema_ok, loader_errors

"""JSON Schema of the rule-file and rule-test formats, generated from the pydantic models, for YAML editors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rules_engine.policy.schema import MeasureSpec, RuleFileSections, RuleSpec
from rules_engine.tools.testschema import RuleTestFile

SCHEMA_DIRECTORY = Path(__file__).resolve().parent.parent / "schemas"
RULE_FILE_SCHEMA = "rule-file.schema.json"
RULE_TEST_SCHEMA = "rule-test.schema.json"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


class RuleFileDocument(RuleFileSections):
    """A rule file with its entries typed, as an editor should see it (the validator checks them one by one)."""

    measures: list[MeasureSpec] = []  # type: ignore[assignment]
    rules: list[RuleSpec] = []  # type: ignore[assignment]


def _document(model: Any, title: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"$schema": _DRAFT, **model.model_json_schema(by_alias=True)}
    schema["title"] = title
    return schema


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document."""
    return {
        RULE_FILE_SCHEMA: _document(RuleFileDocument, "rules-engine rule file"),
        RULE_TEST_SCHEMA: _document(RuleTestFile, "rules-engine rule-test file"),
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path = SCHEMA_DIRECTORY) -> list[Path]:
    """Write both schemas into `directory`; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written

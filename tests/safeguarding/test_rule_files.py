"""Runs the YAML rule tests under rulesets/*/tests/ until `rules-engine test` replaces this module."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules_engine import wire
from rules_engine.compiler import compile_ruleset
from rules_engine.evaluator import PreparedRuleset

RULESETS = Path(__file__).resolve().parents[2] / "rulesets"


def _rule_tests() -> Iterator[Any]:
    for path in sorted(RULESETS.glob("*/tests/*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for test in document.get("tests", []):
            name = f"{path.parent.parent.name}/{path.name}:{test['name']}"
            yield pytest.param(path, test, id=name)


_prepared: dict[Path, PreparedRuleset] = {}


def _ruleset(directory: Path) -> PreparedRuleset:
    if directory not in _prepared:
        _prepared[directory] = PreparedRuleset(compile_ruleset(directory))
    return _prepared[directory]


@pytest.mark.parametrize(("path", "test"), list(_rule_tests()))
def test_rule_file(path: Path, test: dict[str, Any]) -> None:
    as_of = dt.date.fromisoformat(str(test["as_of"]))
    document = test.get("case")
    if document is None:
        document = json.loads((path.parent / test["case_file"]).read_text(encoding="utf-8"))
    case = wire.case_from_proto(wire.case_from_json(document), today=as_of)
    outcome = _ruleset(path.parent.parent).evaluate(case, as_of)
    raised = {f.rule_id for f in outcome.flags + outcome.shadow_flags}
    undetermined = {u.rule_id for u in outcome.undetermined}
    expect = test["expect"]
    context = f"raised={sorted(raised)} undetermined={sorted(undetermined)} measures={outcome.measures}"
    for rule_id in expect.get("raised", []):
        assert rule_id in raised, f"{rule_id} not raised; {context}"
    for rule_id in expect.get("not_raised", []):
        assert rule_id not in raised, f"{rule_id} raised; {context}"
    for rule_id in expect.get("undetermined", []):
        assert rule_id in undetermined, f"{rule_id} not undetermined; {context}"

"""Shared fixtures for the safeguarding ruleset tests: the compiled ruleset, prepared once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.policy.compiler import compile_ruleset

RULESET_DIR = Path(__file__).resolve().parents[2] / "rulesets" / "safeguarding"


@pytest.fixture(scope="session")
def safeguarding() -> Iterator[PreparedRuleset]:
    prepared = PreparedRuleset(compile_ruleset(RULESET_DIR))
    yield prepared
    prepared.close()

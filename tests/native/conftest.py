"""Fixtures of the compiled core's tests: both bundled rulesets prepared with each matcher, the
loaded core (a test fails when it is missing, unless RULES_ENGINE_NATIVE=0), and the counts the
differential test reports at the end of the run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.policy.compiled import CompiledRuleset
from rules_engine.policy.compiler import compile_ruleset
from tests.native.cases import RULESETS
from tests.native.differential import TALLIES

BUNDLED = ("safeguarding", "starter")


def native_disabled() -> bool:
    """RULES_ENGINE_NATIVE=0: the run is asked to go without the core (its tests skip)."""
    return os.environ.get("RULES_ENGINE_NATIVE", "").strip() == "0"


@pytest.fixture(scope="session")
def compiled_rulesets() -> dict[str, CompiledRuleset]:
    return {name: compile_ruleset(RULESETS / name) for name in BUNDLED}


@pytest.fixture(scope="session")
def durable(compiled_rulesets: dict[str, CompiledRuleset]) -> Iterator[dict[str, PreparedRuleset]]:
    """Each bundled ruleset with durable-rules as the matcher, as the server runs it."""
    prepared = {name: PreparedRuleset(ruleset) for name, ruleset in compiled_rulesets.items()}
    yield prepared
    for one in prepared.values():
        one.close()


@pytest.fixture(scope="session")
def reference(compiled_rulesets: dict[str, CompiledRuleset]) -> dict[str, PreparedRuleset]:
    """Each bundled ruleset with the reference evaluator alone as the matcher."""
    return {name: PreparedRuleset(ruleset, matcher="reference") for name, ruleset in compiled_rulesets.items()}


@pytest.fixture(scope="session")
def core() -> Any:
    """The loaded compiled core. Missing: the test fails saying why (CI must build it), or skips
    when RULES_ENGINE_NATIVE=0."""
    if native_disabled():
        pytest.skip("RULES_ENGINE_NATIVE=0: the compiled core is switched off for this run")
    try:
        from rules_engine import native
    except ImportError as exc:
        pytest.fail(
            f"rules_engine.native cannot be imported ({exc}); build the core (make setup) or set RULES_ENGINE_NATIVE=0"
        )
    module = native.load()
    if module is None:
        pytest.fail(
            f"the compiled core is not loaded: {native.unavailable_reason()}; `make setup` (or `make native`) "
            "builds it; RULES_ENGINE_NATIVE=0 skips these tests"
        )
    if not hasattr(PreparedRuleset, "evaluate_encoded"):
        pytest.fail("PreparedRuleset has no evaluate_encoded: the compiled core's entry point is missing")
    return module


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLIES:
        return
    terminalreporter.section("differential: Python path against the other path")
    for tally in TALLIES:
        terminalreporter.write_line(tally.line())
    compiled = [t for t in TALLIES if t.other == "compiled core"]
    if compiled:
        evaluations = sum(t.evaluations for t in compiled)
        declined = sum(t.declined for t in compiled)
        pairs = sum(t.pairs for t in compiled)
        rate = 100 * declined / evaluations if evaluations else 0.0
        terminalreporter.write_line(
            f"compiled core, all families: {pairs} (case, as_of) pairs, {evaluations} evaluations, "
            f"{declined} declined ({rate:.2f}%), {sum(t.invalid for t in compiled)} invalid cases declined"
        )

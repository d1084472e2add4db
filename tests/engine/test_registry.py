"""The registry: atomic swap, last good version kept, old versions released when no request holds them."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from rules_engine.case.facts import Case
from rules_engine.engine.registry import Registry
from rules_engine.errors import EvaluationError, RulesetRequiredError
from rules_engine.policy.compiler import compile_ruleset

STARTER = Path(__file__).resolve().parents[2] / "rulesets" / "starter"
AS_OF = dt.date(2025, 6, 30)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(STARTER, tmp_path / "starter", ignore=shutil.ignore_patterns("tests"))
    return tmp_path


def _edit(root: Path, old: str, new: str) -> None:
    rules = root / "starter" / "rules.yaml"
    rules.write_text(rules.read_text().replace(old, new, 1))


def test_an_old_version_serves_its_lease_then_is_released(root: Path) -> None:
    registry = Registry(root, compile_ruleset)
    [first] = registry.reload()
    with registry.lease("starter") as old:
        _edit(root, "severity: medium", "severity: low")
        [second] = registry.reload()
        assert second.outcome == "loaded" and second.version != first.version
        # The request in flight finishes on the version it started with.
        assert old.ruleset.version == first.version
        old.evaluate(Case(case_id="in-flight"), AS_OF)
        with registry.lease("starter") as new:
            assert new.ruleset.version == second.version
    # No request holds the old version any more: its engine rulesets are freed.
    assert old.matcher is not None
    with pytest.raises(EvaluationError):
        old.matcher.match_level(0, {})
    registry.close()


def test_a_bad_change_is_refused_and_the_last_good_version_serves(root: Path) -> None:
    registry = Registry(root, compile_ruleset)
    [good] = registry.reload()
    _edit(root, "condition: concerns_12m >= concerns_threshold", "condition: concerns_12m >= = 5")
    [refused] = registry.reload()
    assert refused.outcome == "refused"
    [status] = registry.statuses()
    assert status.version == good.version
    assert status.last_error.startswith("starter/rules.yaml:")
    assert status.last_error_at is not None
    with registry.lease("starter") as prepared:
        assert prepared.ruleset.version == good.version
    registry.close()


def test_a_ruleset_whose_directory_vanishes_keeps_serving(root: Path) -> None:
    registry = Registry(root, compile_ruleset)
    registry.reload()
    shutil.rmtree(root / "starter")
    [refused] = registry.reload()
    assert refused.outcome == "refused"
    assert registry.names() == ["starter"]
    registry.close()


def test_with_two_rulesets_a_request_must_name_one(root: Path) -> None:
    shutil.copytree(root / "starter", root / "second")
    header = root / "second" / "ruleset.yaml"
    header.write_text(header.read_text().replace("name: starter", "name: second"))
    registry = Registry(root, compile_ruleset)
    registry.reload()
    assert registry.names() == ["second", "starter"]
    with pytest.raises(RulesetRequiredError, match=r"ruleset: required .* \(second, starter\)"), registry.lease(None):
        pass
    with registry.lease("second") as prepared:
        assert prepared.ruleset.name == "second"
    registry.close()


def test_a_default_ruleset_answers_for_requests_naming_none(root: Path) -> None:
    shutil.copytree(root / "starter", root / "second")
    header = root / "second" / "ruleset.yaml"
    header.write_text(header.read_text().replace("name: starter", "name: second"))
    registry = Registry(root, compile_ruleset, default="second")
    registry.reload()
    with registry.lease(None) as prepared:
        assert prepared.ruleset.name == "second"
    with registry.lease("starter") as prepared:
        assert prepared.ruleset.name == "starter"
    registry.close()

"""A flag's evidence as the core picks it (Evaluated.flag_evidence): the newest facts of the measures
it cites, each once, and how many in all. The core reads each measure's facts newest first and
stops at the first one too old to be kept, and counts facts of a type only one measure cites
without marking them; these cases hold that to the Python engine where it matters: flags citing
several measures of one fact type, each with more facts than a flag lists."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from rules_engine import native
from rules_engine.case.dates import latest_date
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.engine.native import EncodedEvidence
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

ROOT = Path(__file__).resolve().parents[2]
MAX_EVIDENCE = 20  # a flag lists at most this many facts (engine/explainer.py)


@pytest.fixture(scope="module")
def prepared() -> Any:
    if native.load() is None:
        pytest.fail(f"the compiled core is not loaded: {native.unavailable_reason()}")
    return PreparedRuleset(compile_ruleset(ROOT / "rulesets" / "safeguarding"), matcher="reference")


@pytest.mark.parametrize("facts", [200, 2000])
@pytest.mark.parametrize("days_after", [0, 90, 400])
def test_flags_of_many_facts_list_the_python_engines_evidence(prepared: Any, facts: int, days_after: int) -> None:
    as_of = LONG_TIMELINE_END + dt.timedelta(days=days_after)
    message = requests.case_from_json(sized_case(facts))
    got = prepared.evaluate_encoded(message.SerializeToString(deterministic=True), as_of, latest_date(as_of))
    want = prepared.evaluate(requests.case_from_proto(message, as_of), as_of)
    assert got is not None
    assert [(f.rule_id, f.evidence_count, tuple(f.evidence)) for f in got.flags + got.shadow_flags] == [
        (f.rule_id, f.evidence_count, tuple(f.evidence)) for f in want.flags + want.shadow_flags
    ]
    assert all(type(f.evidence) is EncodedEvidence for f in got.flags)


def test_the_cases_hold_flags_whose_measures_share_a_fact_type_past_the_limit(prepared: Any) -> None:
    """The cases above reach the paths in question: a flag citing more than one measure with
    facts, whose facts are more than it lists and of fewer types than its measures."""
    message = requests.case_from_json(sized_case(2000))
    outcome = prepared.evaluate_encoded(
        message.SerializeToString(deterministic=True), LONG_TIMELINE_END, latest_date(LONG_TIMELINE_END)
    )
    assert outcome is not None
    found = [
        flag
        for flag in outcome.flags + outcome.shadow_flags
        if flag.evidence_count > MAX_EVIDENCE
        and len(flag.evidence) == MAX_EVIDENCE
        and len({item.fact_type for item in flag.evidence}) < sum(1 for _, value in flag.measured_values if value)
    ]
    assert found

"""A well-managed control case raises no high or critical flag over its whole life."""

from __future__ import annotations

from rules_engine.compiled import Severity
from rules_engine.evaluator import PreparedRuleset
from rules_engine.synth import CONTROL_END, CONTROL_START, control_case
from tests.safeguarding._replay import build, replay


def test_control_case_raises_no_high_or_critical_flag(safeguarding: PreparedRuleset) -> None:
    case = build(control_case(), CONTROL_END)
    serious: list[str] = []
    undetermined: set[str] = set()
    months = 0
    for as_of, outcome in replay(safeguarding, case, CONTROL_START, CONTROL_END):
        months += 1
        serious += [f"{as_of} {f.rule_id}" for f in outcome.flags if f.severity >= Severity.HIGH]
        undetermined.update(u.rule_id for u in outcome.undetermined)
    assert months >= 24
    assert not serious, serious
    assert not undetermined, undetermined

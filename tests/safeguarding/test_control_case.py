"""A well-managed control case raises no high or critical flag over its whole life."""

from __future__ import annotations

from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.policy.compiled import Severity
from rules_engine.service import requests
from rules_engine.tools.replay import replay, replay_steps
from rules_engine.tools.synth import CONTROL_END, CONTROL_START, control_case


def test_control_case_raises_no_high_or_critical_flag(safeguarding: PreparedRuleset) -> None:
    case = requests.case_model_from_proto(requests.case_from_json(control_case()), CONTROL_END)
    result = replay(safeguarding, case, replay_steps(CONTROL_START, CONTROL_END, "month"))
    serious = [f"{r.first_fired} {r.rule_id}" for r in result.rules if r.severity >= Severity.HIGH and not r.shadow]
    undetermined = {rule_id for step in result.steps for rule_id in step.undetermined}
    assert len(result.steps) >= 24
    assert not serious, serious
    assert not undetermined, undetermined

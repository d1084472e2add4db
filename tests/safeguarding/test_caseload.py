"""Over 10,000 seeded synthetic cases: the share raising each rule (alert fatigue check)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.service import requests
from rules_engine.tools.synth import ORDINARY_KINDS, generate

AS_OF = dt.date(2025, 6, 30)
CASES = 10_000
MAX_ORDINARY_SHARE = 0.5


@pytest.mark.slow
def test_share_of_cases_raising_each_rule(safeguarding: PreparedRuleset) -> None:
    raised_all: Counter[str] = Counter()
    raised_ordinary: Counter[str] = Counter()
    undetermined: Counter[str] = Counter()
    ordinary = 0
    for kind, document in generate(CASES, seed=2025, as_of=AS_OF):
        case = requests.case_model_from_proto(requests.case_from_json(document), today=AS_OF)
        outcome = safeguarding.evaluate(case, AS_OF)
        ids = {f.rule_id for f in outcome.flags + outcome.shadow_flags}
        raised_all.update(ids)
        undetermined.update(u.rule_id for u in outcome.undetermined)
        if kind in ORDINARY_KINDS:
            ordinary += 1
            raised_ordinary.update(ids)
    rule_ids = [rule.id for rule in safeguarding.ruleset.rules]
    print(f"\n{'rule':55} {'all %':>7} {'ordinary %':>11} {'undetermined %':>15}")
    for rule_id in sorted(rule_ids, key=lambda r: -raised_all[r]):
        print(
            f"{rule_id:55} {100 * raised_all[rule_id] / CASES:7.2f} "
            f"{100 * raised_ordinary[rule_id] / ordinary:11.2f} {100 * undetermined[rule_id] / CASES:15.2f}"
        )
    too_frequent = {
        r: raised_ordinary[r] / ordinary for r in rule_ids if raised_ordinary[r] / ordinary > MAX_ORDINARY_SHARE
    }
    assert not too_frequent, f"rules raised on more than half of ordinary cases: {too_frequent}"
    never = [r for r in rule_ids if raised_all[r] == 0]
    assert not never, f"rules never raised over {CASES} synthetic cases: {never}"

"""The catalogue against life-course families it was not written beside (issue 13's targets).

A different seed from the one SAFEGUARDING.md was made with, so the sample is new to the rules
as tuned. The full 200 + 200 run is `rules-engine evaluate-catalogue` (see SAFEGUARDING.md).
"""

from __future__ import annotations

import statistics

import pytest

from rules_engine.tools.catalogue_eval import PATTERN_RULE, Summary, run
from rules_engine.tools.catalogue_report import render
from tests.safeguarding.conftest import RULESET_DIR


@pytest.fixture(scope="module")
def summary() -> Summary:
    _, found = run(RULESET_DIR, slow_burn=40, controls=36, seed=20261203, workers=2)
    return found


def test_long_running_pattern_within_12_months_of_visibility(summary: Summary) -> None:
    visible, in_time = summary.visible, summary.raised_in_time
    lags = summary.lags
    print(f"\nC1 in time on {len(in_time)}/{len(visible)}; median lag {statistics.median(lags) / 30.44:.1f} months")
    assert len(visible) >= 0.95 * len(summary.slow_burn)
    assert len(in_time) >= 0.95 * len(visible)


def test_controls_rarely_carry_a_high_or_critical_flag(summary: Summary) -> None:
    serious = summary.controls_with_serious
    for course in serious:
        print(course.case_id, course.shape, [(f.rule_id, str(f.first)) for f in course.serious])
    assert len(summary.controls) - len(serious) >= 0.95 * len(summary.controls)
    assert all(PATTERN_RULE not in {f.rule_id for f in c.fired} for c in summary.controls)


def test_no_rule_fires_on_more_than_half_of_ordinary_cases(summary: Summary) -> None:
    shares = summary.rule_shares(summary.controls)
    assert max(shares.values(), default=0) <= len(summary.controls) / 2, shares.most_common(3)


def test_every_theme_is_caught_on_the_slow_burns_and_the_report_renders(summary: Summary) -> None:
    themes = {t.theme: t for t in summary.themes}
    for theme in ("H1", "W1", "R1", "C1"):
        assert themes[theme].slow_burn_share >= 0.9, (theme, themes[theme])
    text = render(summary, "rules-engine evaluate-catalogue --slow-burn 40 --controls 36")
    assert "## Headline" in text and PATTERN_RULE in text
    assert "controls with no high or critical flag" in text


def test_every_rule_names_the_source_of_its_threshold(summary: Summary) -> None:
    from rules_engine.policy.compiler import compile_ruleset

    compiled = compile_ruleset(RULESET_DIR)
    for rule in compiled.rules:
        assert rule.source_kind in ("statutory", "local") and rule.source_reference.strip(), rule.id

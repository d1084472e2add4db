"""A second opinion on the safeguarding catalogue (issue 13), from cases written without reading
the rules or the project's generators (see `second_opinion.py`).

Every case must be valid and replay; the issue's targets are asserted (C1 within 12 months of
visibility on 95% of the slow burns, no high or critical flag on 95% of the controls, no rule on
more than half of them, and each watched rule raised on the Agnes-shaped timeline); the figures
are printed (run with `-s`):

- the Agnes-shaped 18-year timeline: the first month each rule fired, beside the dates from
  which each feature of the review's shape is present in the facts;
- 40 slow-burn courses: the share where `long-running-pattern` first fired within 12 months
  (366 days) of the second-opinion visibility date, the lags, and every course that missed;
- 36 controls (six of each kind): every high or critical flag with its reason, and each rule's
  share of controls.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rules_engine.case.facts import Case
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.policy.compiled import Severity
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.tools.replay import Replay, as_it_stood, replay, replay_steps
from tests.safeguarding.second_opinion import (
    Course,
    agnes_timeline,
    control_courses,
    slow_burn_courses,
)

RULESET_DIR = Path(__file__).resolve().parents[2] / "rulesets" / "safeguarding"
C1 = "long-running-pattern"
WATCHED = (C1, "worker-churn", "agencies-repeatedly-absent-without-report", "fragmented-oversight")
SLOW_BURNS, CONTROLS, SEED = 40, 36, 13
WITHIN = 366  # days


@pytest.fixture(scope="module")
def prepared() -> PreparedRuleset:
    return PreparedRuleset(compile_ruleset(RULESET_DIR), matcher="reference")


def build(doc: dict[str, Any], today: dt.date) -> Case:
    """Validate a proto3-JSON case the way the service does; raises CaseError when invalid."""
    return requests.case_model_from_proto(requests.case_from_json(doc), today=today)


def run(prepared: PreparedRuleset, course: Course) -> tuple[Case, Replay]:
    case = build(course.case, course.end)
    return case, replay(prepared, case, replay_steps(course.start, course.end, "month"))


def test_agnes_timeline(prepared: PreparedRuleset) -> None:
    doc, as_of, features = agnes_timeline()
    case = build(doc, as_of)
    start = min(f.date for name in ("concerns", "allocations") for f in getattr(case, name))
    result = replay(prepared, case, replay_steps(start, as_of, "month"))
    assert len(result.steps) > 200
    known = {rule.id for rule in prepared.ruleset.rules}

    print(f"\n=== Agnes-shaped timeline, {start} to {as_of}, {len(result.steps)} monthly steps ===")
    print("features of the review's shape, present in the facts from:")
    for name, day in features.items():
        print(f"  {name:<58} {day}")
    print("rules watched (first fired / steps live):")
    for rule_id in WATCHED:
        history = result.rule(rule_id)
        if rule_id not in known:
            print(f"  {rule_id:<44} NOT IN THE RULESET")
        elif history is None:
            print(f"  {rule_id:<44} never fired")
        else:
            print(f"  {rule_id:<44} {history.first_fired}  {history.steps_live}/{len(result.steps)}")
    print("every rule that fired: rule, severity, first fired, stopped, episodes, steps live")
    for h in result.rules:
        stopped = h.stopped or "live"
        episodes = len(h.episodes)
        print(
            f"  {h.rule_id:<46} {h.severity.name:<8} {h.first_fired}  {stopped!s:<10} {episodes:>3} {h.steps_live:>4}"
        )
    print(f"rules that never fired: {sorted(known - {h.rule_id for h in result.rules})}")
    assert all(result.rule(rule_id) is not None for rule_id in WATCHED), WATCHED


def test_slow_burn_courses(prepared: PreparedRuleset) -> None:
    courses = slow_burn_courses(SLOW_BURNS, SEED)
    assert len(courses) == SLOW_BURNS
    lags: list[int] = []
    misses: list[tuple[Course, str]] = []
    never_visible = 0
    rows: list[str] = []
    for course in courses:
        case, result = run(prepared, course)
        assert result.steps
        rows.append(_course_row(prepared, case, course, result))
        if course.visible_on is None:
            never_visible += 1
            misses.append((course, "never visible by the second-opinion definition"))
            continue
        fired = result.rule(C1)
        if fired is None:
            misses.append((course, "never fired"))
            continue
        lag = (fired.first_fired - course.visible_on).days
        lags.append(lag)
        if lag > WITHIN:
            misses.append((course, f"fired {fired.first_fired}, {lag} days after"))

    visible = SLOW_BURNS - never_visible
    hits = sum(1 for lag in lags if lag <= WITHIN)
    early = sum(1 for lag in lags if lag < 0)
    print(f"\n=== {SLOW_BURNS} slow-burn courses (seed {SEED}); {visible} become visible ===")
    print(
        f"{C1} first fired within {WITHIN} days of visible_on: {hits}/{visible} ({100 * hits / max(visible, 1):.0f}%)"
    )
    print(f"  of which before visible_on: {early}; fired at all: {len(lags)}/{visible}")
    if lags:
        ordered = sorted(lags)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        print(f"  lag days: median {statistics.median(lags):.0f}, p90 {p90}, min {ordered[0]}, max {ordered[-1]}")
        print(f"  lags sorted: {ordered}")
    print(f"misses ({len(misses)}):")
    for course, why in misses:
        p = course.params
        print(
            f"  {course.case['caseId']} [{course.kind}] visible {course.visible_on}, {why}; "
            f"{p['start']}+{p['years']}y age {p['age_at_start']}, {p['concerns_per_year']}/y concerns, "
            f"tenure {p['tenure_months']}m, hostility {p['hostility']}, assessments {p['assessments']}, "
            f"conferences {p['conferences']} (absent {p.get('absent_agency')}), chronology {p['chronology']}, "
            f"agencies {len(p['agencies'])}"
        )
    by_shape = Counter(c.kind for c in courses)
    print(f"archetypes: {dict(by_shape)}")
    print(
        "every course: id [archetype] rate/y, tenure m, hostility, assessments, conferences, chronology | "
        f"start, visible_on, {C1} first fired, lag days, months from start, share of steps live from "
        "visible_on | the rules it named at its first fire"
    )
    for row in rows:
        print(row)
    # Issue 13's target, on courses the rules were not written beside.
    assert visible >= 0.95 * SLOW_BURNS
    assert hits >= 0.95 * visible, misses


def _course_row(prepared: PreparedRuleset, case: Case, course: Course, result: Replay) -> str:
    p = course.params
    head = (
        f"  {course.case['caseId']} [{course.kind}] {p['concerns_per_year']}/y, {p['tenure_months']}m, "
        f"{p['hostility']}, {p['assessments']}, {p['conferences']}, {p['chronology']} | {course.start}, "
        f"{course.visible_on}"
    )
    fired = result.rule(C1)
    if fired is None:
        return f"{head}, never fired"
    day = fired.first_fired
    lag = (day - course.visible_on).days if course.visible_on else None
    months = (day.year - course.start.year) * 12 + day.month - course.start.month
    after = [s for s in result.steps if course.visible_on and s.day >= course.visible_on]
    live = sum(1 for s in after if C1 in s.live)
    outcome = prepared.evaluate(as_it_stood(case, day), day)
    flag = next(f for f in outcome.flags if f.rule_id == C1)
    return f"{head}, {day}, {lag}, {months}, {live}/{len(after)} | {', '.join(flag.contributing_rule_ids)}"


def test_control_courses(prepared: PreparedRuleset) -> None:
    courses = control_courses(CONTROLS, SEED)
    assert len(courses) == CONTROLS
    fired_in: Counter[str] = Counter()
    fired_kinds: dict[str, Counter[str]] = {}
    severe: list[str] = []
    severe_cases: set[str] = set()
    live_steps = steps = 0
    for course in courses:
        case, result = run(prepared, course)
        assert result.steps
        steps += len(result.steps)
        live_steps += sum(len(s.live) for s in result.steps)
        for history in result.rules:
            fired_in[history.rule_id] += 1
            fired_kinds.setdefault(history.rule_id, Counter())[course.kind] += 1
            if history.severity < Severity.HIGH:
                continue
            day = history.first_fired
            outcome = prepared.evaluate(as_it_stood(case, day), day)
            flag = next(f for f in outcome.flags + outcome.shadow_flags if f.rule_id == history.rule_id)
            severe_cases.add(course.case["caseId"])
            severe.append(
                f"  {course.case['caseId']} [{course.kind}] {flag.rule_id} ({flag.severity.name}) "
                f"first {day}, live {history.steps_live}/{len(result.steps)} steps: {flag.explanation}"
            )

    print(f"\n=== {CONTROLS} controls (seed {SEED}), six kinds ===")
    print(f"controls with a high or critical flag: {len(severe_cases)}/{CONTROLS}")
    for line in severe:
        print(line)
    print(f"alert burden: {live_steps / steps:.2f} live flags per case per month")
    assert CONTROLS - len(severe_cases) >= 0.95 * CONTROLS, severe
    assert max(fired_in.values(), default=0) <= CONTROLS / 2, fired_in.most_common(3)
    print("each rule's share of controls (fired at any step):")
    for rule_id, n in fired_in.most_common():
        kinds = ", ".join(f"{kind} {k}" for kind, k in sorted(fired_kinds[rule_id].items()))
        print(f"  {rule_id:<44} {n:>3}/{CONTROLS} ({100 * n / CONTROLS:>3.0f}%)  {kinds}")

"""A long-running case modelled on the Essex review, replayed month by month as it stood each month."""

from __future__ import annotations

import datetime as dt

from rules_engine.case.facts import Case
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.service import requests
from rules_engine.tools.replay import replay, replay_steps
from rules_engine.tools.synth import LONG_TIMELINE_END, LONG_TIMELINE_START, long_timeline_case

PATTERN = "long-running-pattern"


def _within(dates: list[dt.date], as_of: dt.date, days: int) -> int:
    return sum(1 for d in dates if as_of - dt.timedelta(days=days) < d <= as_of)


def pattern_visible(case: Case, as_of: dt.date) -> bool:
    """The pattern's facts exist at `as_of`, read straight from the facts: threats to staff or
    refused access in the last year, five or more concerns in the last year, and no
    assessment completed in the last year or no chronology ever."""
    hostile = [e.date for e in case.engagement_events if e.kind in ("THREAT_TO_STAFF", "REFUSED_ACCESS")]
    concerns = [c.date for c in case.concerns]
    completed = [a.completed_on for a in case.assessments if a.completed_on is not None]
    chronology = [r.date for r in case.record_updates if r.kind == "CHRONOLOGY" and r.date <= as_of]
    return (
        _within(hostile, as_of, 365) >= 2
        and _within(concerns, as_of, 365) >= 5
        and (_within(completed, as_of, 365) == 0 or not chronology)
    )


def test_long_timeline_pattern_raised_within_12_months(safeguarding: PreparedRuleset) -> None:
    case = requests.case_model_from_proto(requests.case_from_json(long_timeline_case()), LONG_TIMELINE_END)
    agencies = {c.agency for c in case.concerns}
    workers = {a.worker_id for a in case.allocations}
    assert 150 <= len(case.concerns) <= 260 and len(agencies) >= 4 and len(workers) >= 12
    assert not case.record_updates

    months = replay_steps(LONG_TIMELINE_START, LONG_TIMELINE_END, "month")
    first_raised = replay(safeguarding, case, months).first_fired()
    visible = next(d for d in months if pattern_visible(case, d))

    print(f"\n{len(case.concerns)} concerns from {len(agencies)} agencies, {len(workers)} workers")
    print(f"pattern visible in the facts: {visible}")
    for rule_id, day in sorted(first_raised.items(), key=lambda item: (item[1], item[0])):
        print(f"  {day}  {rule_id}")

    assert PATTERN in first_raised, "the long-running pattern was never raised"
    assert first_raised[PATTERN] <= visible + dt.timedelta(days=366), (visible, first_raised[PATTERN])

"""A case's timeline: its replay (tools/replay.py) drawn as replay_plot's Vega-Lite chart, with
each flag episode from the step it first fired to the step it stopped.

For a stored case the facts are the store's (what GetChronology lists), replayed with the served
ruleset, and what the service actually recorded comes alongside: the flags the chronology shows
raised, and the case's decisions from the decision log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rules_engine.case.facts import Case
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.errors import CaseError, FieldViolation
from rules_engine.store.base import ChronologyEntry, DecisionRecord
from rules_engine.tools.replay import STEPS, Replay, Step, default_span, replay, replay_steps
from rules_engine.tools.replay_plot import timeline_spec
from rules_engine.workbench.trial import severity_name

# Evaluations one timeline may take: 18 years of months is 217; 1,000 keeps a call to seconds.
MAX_STEPS = 1_000


def read_step(value: object) -> Step:
    """The body's `step` (default month); CaseError on `step` for anything but a replay step."""
    if value is None:
        return "month"
    for step in STEPS:
        if value == step:
            return step
    raise CaseError([FieldViolation("step", f"one of {', '.join(STEPS)}")])


def steps_for(case: Case, today: dt.date, step: Step, last: dt.date | None = None) -> list[dt.date]:
    """The replay's dates, each `step`: from the case's first fact to `last` (the as_of asked
    for), or without one to the latest date the case records, at most `today` (as `rules-engine
    replay` does)."""
    span = default_span(case, today=last or today)
    if span is None:
        raise CaseError([FieldViolation("case", "the case has no facts: there is no history to replay")])
    last = last or span[1]
    first = min(span[0], last)
    days = replay_steps(first, last, step)
    if len(days) > MAX_STEPS:
        raise CaseError(
            [FieldViolation("step", f"{len(days):,} {step} steps from {first} to {last}; at most {MAX_STEPS:,}: "
                            "choose a longer step")]
        )  # fmt: skip
    return days


def episodes_json(result: Replay) -> list[dict[str, Any]]:
    """One entry per flag episode, as the chart draws one bar per episode (`to` null: still live)."""
    return [
        {
            "rule_id": rule.rule_id,
            "title": rule.title,
            "severity": severity_name(rule.severity),
            "shadow": rule.shadow,
            "from": episode.start.isoformat(),
            "to": episode.end.isoformat() if episode.end else None,
            "steps": episode.steps,
        }
        for rule in result.rules
        for episode in rule.episodes
    ]


def timeline(
    prepared: PreparedRuleset, case: Case, today: dt.date, step: Step, last: dt.date | None = None
) -> dict[str, Any]:
    """The chart's spec and the flag episodes of the case replayed (see steps_for)."""
    result = replay(prepared, case, steps_for(case, today, step, last))
    return {
        "ruleset": result.ruleset,
        "version": result.ruleset_version,
        "case_id": case.case_id,
        "step": step,
        "from": result.first.isoformat() if result.first else None,
        "to": result.last.isoformat() if result.last else None,
        "evaluations": len(result.steps),
        "spec": timeline_spec(case, result),
        "episodes": episodes_json(result),
    }


def recorded_json(chronology: list[ChronologyEntry], decisions: list[DecisionRecord]) -> dict[str, Any]:
    """What the service recorded for a stored case: flags raised (by the day of the evaluation's
    as_of) and its decisions, newest first."""
    return {
        "flags_raised": [
            {"rule_id": e.fact_id, "ruleset": e.ruleset, "date": e.date.isoformat(), "severity": e.code.lower()}
            for e in chronology
            if e.kind == "flag_raised"
        ],
        "facts": sum(1 for e in chronology if e.kind == "fact"),
        "decisions": [
            {
                "decision_id": d.decision_id,
                "time": d.time.isoformat(),
                "ruleset": d.ruleset,
                "ruleset_version": d.ruleset_version,
                "flags": [
                    {"rule_id": f.rule_id, "state": f.state.value, "severity": severity_name(f.severity)}
                    for f in d.flags
                ],
            }
            for d in decisions
        ],
    }

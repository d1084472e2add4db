"""Synthetic cases to try: one of each kind `rules-engine synth` writes, the long and the
well-managed named cases, and a slow-burn and a control life course (tools/synth.py,
tools/lifecourse.py). Every one comes from a fixed seed, so a name always gives the same case;
none describes a real child.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass

from rules_engine.tools import lifecourse, synth
from rules_engine.tools.synth import CaseJson

# `rules-engine synth`'s default --as-of: a fixed date, so a sample never changes with the day.
SYNTH_AS_OF = dt.date(2025, 12, 31)
SEED = 1


@dataclass(frozen=True)
class Sample:
    name: str
    title: str
    description: str
    make: Callable[[], tuple[CaseJson, dt.date]]  # the proto3 JSON case and the as_of to try it on


def _kind(kind: str) -> Callable[[], tuple[CaseJson, dt.date]]:
    def make() -> tuple[CaseJson, dt.date]:
        case = synth.synthetic_case(random.Random(SEED), kind, f"sample-{kind.replace('_', '-')}", SYNTH_AS_OF)
        return case, SYNTH_AS_OF

    return make


def _course(course: Callable[[], lifecourse.LifeCourse]) -> Callable[[], tuple[CaseJson, dt.date]]:
    def make() -> tuple[CaseJson, dt.date]:
        made = course()
        return made.case, made.end

    return make


SAMPLES: tuple[Sample, ...] = (
    Sample(
        "early-help",
        "Early help",
        "A short early-help episode, as `rules-engine synth` writes them.",
        _kind("early_help"),
    ),
    Sample(
        "child-in-need", "Child in need", "A child-in-need case with an assessment and a plan.", _kind("child_in_need")
    ),
    Sample(
        "child-protection",
        "Child protection",
        "A case through a strategy discussion, section 47 enquiry, conferences and a protection plan.",
        _kind("child_protection"),
    ),
    Sample("looked-after", "Looked after", "A looked-after child with placements and visits.", _kind("looked_after")),
    Sample(
        "drifting",
        "Drifting case",
        "A long-running case that drifts: cumulative concerns over years, worker churn, missed conferences.",
        _kind("drifting"),
    ),
    Sample(
        "long-timeline",
        "Eighteen years of concerns",
        "About 200 concerns over 18 years from several agencies, a dozen or more workers, threats to staff, "
        "assessments left open for years, no chronology (modelled on a serious case review).",
        lambda: (synth.long_timeline_case(), synth.LONG_TIMELINE_END),
    ),
    Sample(
        "well-managed",
        "A well-managed case",
        "Timely assessment, one worker, visits on time, full attendance at conferences: few flags expected.",
        lambda: (synth.control_case(), synth.CONTROL_END),
    ),
    Sample(
        "slow-burn",
        "A slow-burn life course",
        "Steady concerns from several agencies over years, short worker tenures, assessments abandoned or never "
        "done; tried on the course's last day.",
        _course(lambda: lifecourse.slow_burn(SEED, "sample-slow-burn")),
    ),
    Sample(
        "control-long-open-stable",
        "A long, stable open case",
        "A control life course: ordinary, well-managed work over a long time; tried on the course's last day.",
        _course(lambda: lifecourse.control(SEED, "sample-control", "long-open-stable")),
    ),
)
BY_NAME = {sample.name: sample for sample in SAMPLES}


@functools.cache
def made(name: str) -> tuple[CaseJson, dt.date]:
    """A sample's case and as_of, made once (the same every time); KeyError for an unknown name."""
    return BY_NAME[name].make()


def listing() -> list[dict[str, str]]:
    """The samples as the page lists them, with each case's id and as_of."""
    entries = []
    for sample in SAMPLES:
        case, as_of = made(sample.name)
        entries.append(
            {
                "name": sample.name,
                "title": sample.title,
                "description": sample.description,
                "case_id": str(case.get("caseId", "")),
                "as_of": as_of.isoformat(),
            }
        )
    return entries

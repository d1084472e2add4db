"""Seeded whole life courses: slow-burn cases with the date their pattern shows, and ordinary controls.

Rules are checked against cases written independently of them. So these generators are
written from the domain (timescales and codes in the shared reference), never from the
rulesets, and the date a slow-burn pattern becomes visible is defined here from the facts
alone (`pattern_at`), as a reviewer reading the chronology would see it. Every course comes
from `random.Random(seed)`; the same seed always gives the same course.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from dateutil.relativedelta import relativedelta

from rules_engine.engine.calendar import month_ends
from rules_engine.tools import characteristics
from rules_engine.tools.lifecourse_controls import CONTROL_KINDS, write_control
from rules_engine.tools.lifecourse_slow_burn import ASSESSMENT_PATTERNS, HOSTILITY, SlowBurnDraws, SlowBurnWriter
from rules_engine.tools.synth import CaseJson

Family = Literal["slow-burn", "control"]
FAMILIES: tuple[Family, ...] = ("slow-burn", "control")

__all__ = [
    "ASSESSMENT_PATTERNS",
    "CONTROL_KINDS",
    "FAMILIES",
    "HOSTILITY",
    "LifeCourse",
    "Pattern",
    "control",
    "families",
    "first_visible",
    "month_ends",
    "pattern_at",
    "slow_burn",
    "write_jsonl",
]


@dataclass(frozen=True)
class LifeCourse:
    """One generated case and what it was generated to be.

    `start` is the date of the first fact, `end` the date the course runs to (nothing is
    dated after it). `visible_on` is, for a slow burn, the first month end on which the
    pattern is visible in the facts alone (`first_visible`); None for controls.
    """

    case: CaseJson
    family: Family
    shape: str
    params: dict[str, Any]
    start: dt.date
    end: dt.date
    visible_on: dt.date | None

    def to_json(self) -> dict[str, Any]:
        """The JSON line `rules-engine synth --family` writes."""
        return {
            "case": self.case,
            "family": self.family,
            "shape": self.shape,
            "visible_on": self.visible_on.isoformat() if self.visible_on else None,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "params": self.params,
        }


# --- when the slow-burn pattern is visible ---------------------------------------------------

PERSISTENT_YEARS = 3  # of the last ROLLING_YEARS rolling years with a concern
ROLLING_YEARS = 5
PERSISTENT_TOTAL = 6  # concerns about the child in all, to the day
ASSESSMENT_MONTHS = 24  # no assessment completed within this many months
WORKER_MONTHS = 24  # workers who held the case within this many months...
FRAGMENTED_WORKERS = 3  # ...at least this many
CHRONOLOGY_MONTHS = 12  # or no chronology update within this many months


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _back(day: dt.date, months: int) -> dt.date:
    result: dt.date = day - relativedelta(months=months)
    return result


@dataclass(frozen=True)
class Pattern:
    """What a reviewer reading the chronology up to `day` would see (see `pattern_at`)."""

    day: dt.date
    years_with_concerns: int
    concerns: int
    last_assessment_completed: dt.date | None
    workers: int
    last_chronology: dt.date | None

    @property
    def persistent_concerns(self) -> bool:
        return self.years_with_concerns >= PERSISTENT_YEARS and self.concerns >= PERSISTENT_TOTAL

    @property
    def no_recent_assessment(self) -> bool:
        last = self.last_assessment_completed
        return last is None or last <= _back(self.day, ASSESSMENT_MONTHS)

    @property
    def fragmented_oversight(self) -> bool:
        stale = self.last_chronology is None or self.last_chronology <= _back(self.day, CHRONOLOGY_MONTHS)
        return self.workers >= FRAGMENTED_WORKERS or stale

    @property
    def visible(self) -> bool:
        return self.persistent_concerns and self.no_recent_assessment and self.fragmented_oversight


def pattern_at(case: CaseJson, day: dt.date) -> Pattern:
    """The slow-burn pattern as it stood on `day`, read from the case's facts alone.

    Only facts dated on or before `day` count, and an end or completion date after `day` is
    not yet known. The pattern is visible when all three hold:

    (a) persistent concerns: concerns about this child (subject CHILD, the default, or
        HOUSEHOLD; not a sibling's) were recorded in each of at least 3 of the last 5
        rolling years (year k is the span (day - k - 1 years, day - k years]), and at least
        6 have been recorded in all;
    (b) no assessment completed in the last 24 months (none completed after day - 24
        months), or ever: started-and-abandoned assessments do not count;
    (c) fragmented oversight: at least 3 different workers held the case at some time in
        the last 24 months (allocations that overlap the span, not only those starting in
        it), or no chronology update in the last 12 months.
    """
    concerns = [
        _day(c["date"]) for c in case.get("concerns", ()) if c.get("subject", "CHILD") in ("CHILD", "HOUSEHOLD")
    ]
    concerns = [d for d in concerns if d <= day]
    years = 0
    for k in range(ROLLING_YEARS):
        newest, oldest = day - relativedelta(years=k), day - relativedelta(years=k + 1)
        years += any(oldest < d <= newest for d in concerns)
    completed = [_day(a["completedOn"]) for a in case.get("assessments", ()) if a.get("completedOn")]
    completed = [d for d in completed if d <= day]
    since = _back(day, WORKER_MONTHS)
    workers = {
        a["workerId"]
        for a in case.get("allocations", ())
        if _day(a["date"]) <= day and (not a.get("endDate") or _day(a["endDate"]) > since)
    }
    chronology = [
        _day(r["date"])
        for r in case.get("recordUpdates", ())
        if r.get("kind") == "CHRONOLOGY" and _day(r["date"]) <= day
    ]
    return Pattern(
        day=day,
        years_with_concerns=years,
        concerns=len(concerns),
        last_assessment_completed=max(completed, default=None),
        workers=len(workers),
        last_chronology=max(chronology, default=None),
    )


def first_visible(case: CaseJson, first: dt.date, last: dt.date) -> dt.date | None:
    """The first month end from `first` to `last` on which the pattern is visible, or None."""
    return next((day for day in month_ends(first, last) if pattern_at(case, day).visible), None)


def slow_burn(seed: int, case_id: str) -> LifeCourse:
    """A slow-burn life course: steady concerns from several agencies over 6-18 years, short
    worker tenures, assessments abandoned or never done, no usable chronology; hostility from
    none to frequent, some with child protection episodes an agency keeps missing."""
    rng = random.Random(seed)
    draws = SlowBurnDraws.draw(seed, rng)
    case = SlowBurnWriter(draws, case_id, rng).write()
    characteristics.add_to(case)  # drawn from the case id: equality monitoring only, no rule reads them
    return LifeCourse(
        case=case,
        family="slow-burn",
        shape="slow-burn",
        params=draws.params(),
        start=draws.start,
        end=draws.end,
        visible_on=first_visible(case, draws.start, draws.end),
    )


def control(seed: int, case_id: str, kind: str) -> LifeCourse:
    """A control life course of ordinary, well-managed work of `kind` (one of CONTROL_KINDS)."""
    if kind not in CONTROL_KINDS:
        raise ValueError(f"unknown control kind {kind!r}; one of {', '.join(CONTROL_KINDS)}")
    rng = random.Random(seed)
    written = write_control(kind, rng, case_id)
    characteristics.add_to(written.case)
    return LifeCourse(
        case=written.case,
        family="control",
        shape=kind,
        params={"seed": seed, **written.params},
        start=written.start,
        end=written.end,
        visible_on=None,
    )


def families(family: str, count: int, seed: int) -> Iterator[LifeCourse]:
    """`count` courses of a family; controls cycle evenly through CONTROL_KINDS. Deterministic per seed."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    rng = random.Random(seed)
    prefix = "sb" if family == "slow-burn" else "ctl"
    for i in range(count):
        case_seed = rng.randrange(2**32)
        case_id = f"{prefix}-{seed}-{i:05d}"
        if family == "slow-burn":
            yield slow_burn(case_seed, case_id)
        else:
            yield control(case_seed, case_id, CONTROL_KINDS[i % len(CONTROL_KINDS)])


def write_jsonl(out: TextIO, family: str, count: int, seed: int) -> int:
    """Write `count` courses as JSON lines (`LifeCourse.to_json`); returns the number written."""
    written = 0
    for course in families(family, count, seed):
        out.write(json.dumps(course.to_json(), separators=(",", ":")))
        out.write("\n")
        written += 1
    return written

"""Long-horizon measure kinds: rates, trends, periods, gaps, overlaps, groups, sums and ratios.

What a case shows over years rather than inside one window: the same concern rate for a
decade, workers who *held* a case rather than started on it, an agency absent at most of
its last conferences, the longest time a child went unseen. Windows follow
`rules_engine.engine.calendar` as in `measures`: a window covers `window_start < fact_date <= as_of`.
`measures` finds each measure's facts (its series and the positions in its window up to
as_of) and hands them here; each function returns the value and the facts behind it.
Sums and ratios measure their inputs through `At.value_of`, so this module and `measures`
both build on `case_index` without importing each other.
"""

from __future__ import annotations

import datetime as dt
import functools
from bisect import bisect_right
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from rules_engine.engine import calendar
from rules_engine.engine.case_index import NO_EVIDENCE, At, Combined, Series, Span
from rules_engine.policy.compiled import CompiledMeasure, MeasureValue, Window, fact_mask

# A rate is per year of 365.25 days, so leap years neither add nor take a fraction.
DAYS_PER_YEAR = 365.25


# --- options of count, distinct and latest ---------------------------------------------------


def overlapping(measure: CompiledMeasure, at: At, series: Series, start: int, end: int) -> list[Any]:
    """The facts whose period overlaps the window: dated on or before as_of, and either dated
    inside the window or ended (end field) after its start, or not ended at all."""
    if measure.window is None:
        return series.facts[:end]
    window_start = dt.date.fromordinal(at.start(measure.window))
    ended = attrgetter(measure.end_field)
    before = [f for f in series.facts[:start] if (e := ended(f)) is None or e > window_start]
    return before + series.facts[start:end]


def after_latest(measure: CompiledMeasure, at: At, series: Series) -> int:
    """The position of the first fact dated after the latest `since_latest` fact on or before
    as_of; 0 when there is none, so every fact counts."""
    anchors = at.index.series(
        measure.since_type, measure.since_date_field, measure.since_where, measure.since_where_text
    )
    found = bisect_right(anchors.ordinals, at.today)
    return bisect_right(series.ordinals, anchors.ordinals[found - 1]) if found else 0


def latest_by_group(measure: CompiledMeasure, series: Series, end: int) -> tuple[MeasureValue, Span]:
    """`latest` within each group of facts sharing the `group_by` value: the highest count.

    Ties go to the group with the most recent fact, whose last facts are the evidence.
    Facts with no value for the field belong to no group; None when no fact has one.
    """
    read, facts = attrgetter(measure.group_by), series.facts
    groups: dict[Any, list[int]] = {}
    for i in range(end):
        key = read(facts[i])
        if key is not None:
            groups.setdefault(key, []).append(i)
    if not groups:
        return None, NO_EVIDENCE
    matching, last = measure.matching, measure.last
    best, behind = (-1, -1), []
    for positions in groups.values():
        recent = [facts[i] for i in positions[-last:]]
        count = len(recent) if matching is None else sum(fact_mask(matching)(recent))
        if (count, positions[-1]) > best:
            best, behind = (count, positions[-1]), recent
    return best[0], (behind, 0, len(behind))


# --- kinds over facts ------------------------------------------------------------------------


def rate(measure: CompiledMeasure, at: At, series: Series, start: int, end: int) -> tuple[MeasureValue, Span]:
    """Facts per year, to 2 decimals: the count in the window (or the whole history) over the
    years from the later of the window start and the series' first fact up to as_of, never
    less than one year, so a first month's burst is not read as a yearly rate."""
    if end == start:
        return 0.0, NO_EVIDENCE
    since = series.ordinals[0]
    if measure.window is not None:
        since = max(since, at.start(measure.window))
    years = max((at.today - since) / DAYS_PER_YEAR, 1.0)
    return round((end - start) / years, 2), (series.facts, start, end)


def trend(measure: CompiledMeasure, at: At, series: Series, start: int, end: int) -> tuple[MeasureValue, Span]:
    """The count in the last window minus the count in the window before it (both counted
    back from as_of: the earlier one ends where the later one starts)."""
    window = measure.window
    if window is None:
        raise ValueError(f"trend measure {measure.name!r} has no window")
    before = bisect_right(series.ordinals, at.start(Window(2 * window.amount, window.unit)), 0, start)
    return (end - start) - (start - before), (series.facts, before, end)


def periods(measure: CompiledMeasure, at: At, series: Series, start: int, end: int) -> tuple[MeasureValue, Span]:
    """How many of the periods the window is cut into, counted back from as_of, hold at least
    `at_least` facts; the evidence is the facts of those periods."""
    if measure.window is None or measure.period is None:
        raise ValueError(f"periods measure {measure.name!r} needs a window and a period")
    ordinals, least = series.ordinals, measure.at_least
    held, kept = 0, []
    upper = end
    for bound in period_starts(at.as_of, measure.window, measure.period):
        lower = bisect_right(ordinals, bound, start, upper)
        if upper - lower >= least:
            held += 1
            kept.append((lower, upper))
        upper = lower
    facts = series.facts
    behind = [f for lower, upper in reversed(kept) for f in facts[lower:upper]]
    return held, (behind, 0, len(behind))


@functools.lru_cache(maxsize=4096)
def period_starts(as_of: dt.date, window: Window, period: Window) -> tuple[int, ...]:
    """The exclusive start of each period, newest first, as ordinals; the last is the window's.
    `period` is in months or days (the compiler's form); each start is counted from as_of, so
    months end where the calendar's windows do."""
    span = window.in_base_units()
    if span is None or period.amount <= 0:
        raise ValueError(f"periods of {period} cannot cut {window}")
    count = span[0] // period.amount
    return tuple(
        calendar.window_start(as_of, Window(i * period.amount, period.unit)).toordinal() for i in range(1, count + 1)
    )


def longest_gap(measure: CompiledMeasure, at: At, series: Series, start: int, end: int) -> tuple[MeasureValue, Span]:
    """The longest run of days between consecutive facts, the trailing run from the latest
    fact to as_of included; with a window, only its days count (a gap that began before it is
    cut at its start). None when no fact is dated on or before as_of. The evidence is the
    facts on either side of the gap (the latest fact alone for the trailing run); of equal
    gaps, the most recent."""
    if not end:
        return None, NO_EVIDENCE
    ordinals, today = series.ordinals, at.today
    floor = at.start(measure.window) if measure.window is not None else 0
    first = max(start - 1, 0)  # the last fact before the window bounds the first gap inside it
    best, best_at = -1, end
    previous = max(ordinals[first], floor)
    for i in range(first + 1, end):
        current = ordinals[i]
        if current - previous >= best:
            best, best_at = current - previous, i
        previous = current
    trailing = today - max(ordinals[end - 1], floor)
    if trailing >= best:
        return trailing, (series.facts, end - 1, end)
    return best, (series.facts, best_at - 1, best_at + 1)


def longest_open(measure: CompiledMeasure, at: At, series: Series, start: int, end: int) -> tuple[MeasureValue, Span]:
    """Days the longest-open fact has been open at as_of (started on or before it, end field
    empty or after it); 0 when none is open. Facts are in date order: the first open one is
    the longest open."""
    as_of, ended, facts = at.as_of, attrgetter(measure.end_field), series.facts
    for i in range(end):
        finished = ended(facts[i])
        if finished is None or finished > as_of:
            return at.today - series.ordinals[i], (facts, i, i + 1)
    return 0, NO_EVIDENCE


# --- kinds over other measures ---------------------------------------------------------------


def sum_of(measure: CompiledMeasure, at: At) -> tuple[MeasureValue, Span]:
    """The inputs added up; None when any is missing. Floats (rates) are kept to 2 decimals."""
    values = [at.value_of(m) for m in measure.inputs]
    if any(v is None for v in values):
        return None, NO_EVIDENCE
    total = sum(v for v in values if v is not None)
    return (round(total, 2) if isinstance(total, float) else total), _combined(measure, at)


def ratio(measure: CompiledMeasure, at: At) -> tuple[MeasureValue, Span]:
    """100 * numerator / denominator, to 1 decimal; None when either is missing or the denominator is 0."""
    numerator, denominator = (at.value_of(m) for m in measure.inputs)
    if numerator is None or denominator is None or denominator == 0:
        return None, NO_EVIDENCE
    return round(100 * numerator / denominator, 1), _combined(measure, at)


def _combined(measure: CompiledMeasure, at: At) -> Span:
    """The union of the inputs' evidence; `value_of` has just measured each input at this
    moment, noting its evidence in the index."""
    evidence, today = at.index.evidence, at.today
    parts: list[tuple[CompiledMeasure, Sequence[Any]]] = []
    for source in measure.inputs:
        facts, start, end = evidence[source.name, today]
        # A sum's or ratio's evidence is all of it, and slicing would lose its parts.
        parts.extend(facts.parts if type(facts) is Combined else [(source, facts[start:end])])
    combined = Combined(parts)
    return combined, 0, len(combined)

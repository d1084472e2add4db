"""Windowed measures over a case's facts; pure, with `as_of` passed in.

Measures read a `case_index.CaseIndex` (a case's facts sorted once per evaluation) and
find each window with a bisect over date ordinals. Windows and deadlines follow
`rules_engine.engine.calendar`: a window covers `window_start < fact_date <= as_of`, and facts
dated after `as_of` never count. A fact whose measured date field is empty is skipped
by that measure. The long-horizon kinds are in `long_measures`.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from rules_engine.engine import calendar, long_measures
from rules_engine.engine.case_index import NO_EVIDENCE, At, CaseIndex, Combined, Series, Span, fact_evidence_items
from rules_engine.engine.results import EvidenceItem
from rules_engine.policy.compiled import CompiledMeasure, MeasureKind, MeasureValue, fact_mask


def compute_measures(measures: Sequence[CompiledMeasure], index: CaseIndex, as_of: dt.date) -> dict[str, MeasureValue]:
    """Every measure's value at `as_of`: an int, or None when it cannot be measured."""
    at = At(index, as_of, _measure)
    values = at.values
    for m in measures:
        values[m.name] = _measure(m, at)
    return values


def evidence_facts(measure: CompiledMeasure, index: CaseIndex, as_of: dt.date) -> Sequence[Any]:
    """The facts behind a measure's value at `as_of`, oldest first (see measure_evidence)."""
    key = (measure.name, as_of.toordinal())
    span = index.evidence.get(key)
    if span is None:
        _measure(measure, At(index, as_of, _measure))
        span = index.evidence[key]
    facts, start, end = span
    if type(facts) is Combined:
        return facts  # a sum's or ratio's evidence is all of it, and slicing would lose its parts
    return facts[start:end]


def evidence_items(measure: CompiledMeasure, facts: Sequence[Any], limit: int) -> tuple[EvidenceItem, ...]:
    """The newest `limit` of a measure's evidence facts (in series order) as items, most recent
    first: by date, then id, both descending."""
    if type(facts) is Combined:
        return facts.items(limit)
    return fact_evidence_items(measure, facts, limit)


def measure_evidence(
    measure: CompiledMeasure, index: CaseIndex, as_of: dt.date, limit: int = 50
) -> tuple[EvidenceItem, ...]:
    """The facts behind a measure's value at `as_of`, most recent first, at most `limit`."""
    return evidence_items(measure, evidence_facts(measure, index, as_of), limit)


def _measure(measure: CompiledMeasure, at: At) -> MeasureValue:
    """A measure's value, noting the facts behind it in the index."""
    value, span = _KINDS[measure.kind](measure, at)
    at.index.evidence[measure.name, at.today] = span
    return value


def _age(measure: CompiledMeasure, at: At) -> tuple[MeasureValue, Span]:
    birth = at.index.case.child.birth_date
    as_of = at.as_of
    if birth is None or birth > as_of:
        return None, NO_EVIDENCE
    # Not relativedelta, which counts a 29 February birthday as reached on 28 February:
    # in other years the anniversary is taken to be 1 March.
    return as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day)), NO_EVIDENCE


def _located(measure: CompiledMeasure, at: At) -> tuple[Series, int, int] | None:
    """The measure's facts and the positions of those in its window (start) up to as_of
    (end); None when it is missing for want of any fact of its type. Runs for every measure
    of every evaluation, hence written out rather than composed."""
    index = at.index
    if measure.missing_when_absent:
        first = index.first_date(measure.fact_type)
        if first is None or first > at.today:
            return None
    series = index.series_for(measure)
    ordinals = series.ordinals
    end = bisect_right(ordinals, at.today)
    window = measure.window
    return series, 0 if window is None else bisect_right(ordinals, at.start(window)), end


def _count(measure: CompiledMeasure, at: At) -> tuple[MeasureValue, Span]:
    if (located := _located(measure, at)) is None:
        return None, NO_EVIDENCE
    series, start, end = located
    if measure.overlaps:
        counted = long_measures.overlapping(measure, at, series, start, end)
        return len(counted), (counted, 0, len(counted))
    if measure.since_type:
        start = max(start, long_measures.after_latest(measure, at, series))
    return end - start, (series.facts, start, end)


def _distinct(measure: CompiledMeasure, at: At) -> tuple[MeasureValue, Span]:
    if (located := _located(measure, at)) is None:
        return None, NO_EVIDENCE
    series, start, end = located
    read = attrgetter(measure.field)
    inside = long_measures.overlapping(measure, at, series, start, end) if measure.overlaps else series.facts[start:end]
    counted = [f for f in inside if read(f) is not None]
    return len(set(map(read, counted))), (counted, 0, len(counted))


def _days_since(measure: CompiledMeasure, at: At) -> tuple[MeasureValue, Span]:
    if (located := _located(measure, at)) is None or not located[2]:
        return None, NO_EVIDENCE
    series, _, end = located
    latest = series.ordinals[end - 1]
    if measure.kind is MeasureKind.DAYS_SINCE:
        value = at.today - latest
    else:
        value = calendar.default_calendar().working_days_between(dt.date.fromordinal(latest), at.as_of)
    return value, (series.facts, end - 1, end)


def _open_facts(measure: CompiledMeasure, at: At) -> tuple[MeasureValue, Span]:
    if (located := _located(measure, at)) is None:
        return None, NO_EVIDENCE
    series, _, end = located
    as_of, ended = at.as_of, attrgetter(measure.end_field)
    found = [f for f in series.facts[:end] if (e := ended(f)) is None or e > as_of]
    return len(found), (found, 0, len(found))


def _latest(measure: CompiledMeasure, at: At) -> tuple[MeasureValue, Span]:
    if (located := _located(measure, at)) is None or not located[2]:
        return None, NO_EVIDENCE  # no fact to look at: undetermined, not "none of them"
    series, _, end = located
    if measure.group_by:
        return long_measures.latest_by_group(measure, series, end)
    start = max(0, end - measure.last)
    matching = measure.matching
    value = end - start if matching is None else sum(fact_mask(matching)(series.facts[start:end]))
    return value, (series.facts, start, end)


def _overdue_facts(measure: CompiledMeasure, at: At) -> tuple[MeasureValue, Span]:
    if (located := _located(measure, at)) is None:
        return None, NO_EVIDENCE
    series, start, end = located
    found = _overdue(measure, at.index, series, range(start, end), at.as_of)
    return len(found), (found, 0, len(found))


def _over_located(
    compute: Callable[[CompiledMeasure, At, Series, int, int], tuple[MeasureValue, Span]],
) -> Callable[[CompiledMeasure, At], tuple[MeasureValue, Span]]:
    """A long-horizon kind over the facts `_located` finds (missing when it finds none)."""

    def measured(measure: CompiledMeasure, at: At) -> tuple[MeasureValue, Span]:
        if (located := _located(measure, at)) is None:
            return None, NO_EVIDENCE
        return compute(measure, at, *located)

    return measured


_KINDS: dict[MeasureKind, Callable[[CompiledMeasure, At], tuple[MeasureValue, Span]]] = {
    MeasureKind.AGE: _age,
    MeasureKind.COUNT: _count,
    MeasureKind.DISTINCT: _distinct,
    MeasureKind.DAYS_SINCE: _days_since,
    MeasureKind.WORKING_DAYS_SINCE: _days_since,
    MeasureKind.OPEN: _open_facts,
    MeasureKind.LATEST: _latest,
    MeasureKind.OVERDUE: _overdue_facts,
    MeasureKind.RATE: _over_located(long_measures.rate),
    MeasureKind.TREND: _over_located(long_measures.trend),
    MeasureKind.PERIODS: _over_located(long_measures.periods),
    MeasureKind.LONGEST_GAP: _over_located(long_measures.longest_gap),
    MeasureKind.LONGEST_OPEN: _over_located(long_measures.longest_open),
    MeasureKind.SUM: long_measures.sum_of,
    MeasureKind.RATIO: long_measures.ratio,
}


def _overdue(measure: CompiledMeasure, index: CaseIndex, series: Series, positions: range, as_of: dt.date) -> list[Any]:
    """The facts at `positions` past their deadline at `as_of` and still outstanding."""
    if measure.deadline is None:
        raise ValueError(f"overdue measure {measure.name!r} has no deadline")
    today = as_of.toordinal()
    late = range(positions.start, series.due_before(measure.deadline, today, positions))
    facts, ordinals = series.facts, series.ordinals
    if measure.followup_type:
        followups = index.series(
            measure.followup_type,
            measure.followup_date_field,
            measure.followup_where,
            measure.followup_where_text,
        )
        return [facts[i] for i in late if not _followed_up(facts[i], ordinals[i], followups, today)]
    if measure.resolved_field:
        field = measure.resolved_field
        return [facts[i] for i in late if (r := getattr(facts[i], field)) is None or r > as_of]
    return [facts[i] for i in late]


def _followed_up(fact: Any, day: int, followups: Series, today: int) -> bool:
    """True when a follow-up other than the fact itself is dated from `day` to `today`."""
    first = bisect_left(followups.ordinals, day)
    last = bisect_right(followups.ordinals, today)
    return last - first > 1 or (last - first == 1 and followups.facts[first] is not fact)

"""Windowed measures over a case's facts; pure, with `as_of` passed in.

`build_index` sorts a case's facts once per evaluation; every measure then finds its
window with a bisect over date ordinals. Windows and deadlines follow
`rules_engine.calendar`: a window covers `window_start < fact_date <= as_of`, and facts
dated after `as_of` never count. A fact whose measured date field is empty is skipped
by that measure. Facts of one date are ordered by id, so that "the last 2 visits" and the
evidence a flag lists depend on the facts alone, never on the order a request sent them in.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Sequence
from itertools import compress
from operator import attrgetter
from typing import Any

from rules_engine import calendar, long_measures
from rules_engine.compiled import CompiledMeasure, FactPredicate, MeasureKind, MeasureValue, Window, fact_mask
from rules_engine.evaluation import EvidenceItem
from rules_engine.facts import CaseFacts, facts_of

_new_tuple = tuple.__new__
_UNMEASURED = object()


class Series:
    """One fact type's facts that pass a filter, sorted by one date field then id (empty dates dropped)."""

    __slots__ = ("facts", "ordinals")

    def __init__(self, facts: list[Any], ordinals: list[int]) -> None:
        self.facts = facts
        self.ordinals = ordinals

    def due_before(self, window: Window, today: int, positions: range) -> int:
        """The end of the facts at `positions` whose deadline `window` after them is before `today`."""

        # Deadlines rise with dates (calendar arithmetic is monotonic), so the facts past
        # their deadline form a prefix: find it computing O(log n) deadlines, not n.
        def due(ordinal: int) -> int:
            return calendar.deadline(dt.date.fromordinal(ordinal), window).toordinal()

        return bisect_left(self.ordinals, today, positions.start, positions.stop, key=due)


class CaseIndex:
    """A case's facts, sorted once per evaluation and shared by every measure.

    Computing a measure also notes the facts behind its value (`evidence`), so the flags
    that cite it need not find them again.
    """

    def __init__(self, case: CaseFacts) -> None:
        self.case = case
        self._facts: dict[str, tuple[Any, ...]] = {}
        self._first_dates: dict[str, int | None] = {}
        self._bases: dict[tuple[str, str], Series] = {}
        self._series: dict[tuple[str, str, Hashable], Series] = {}
        # (measure name, as_of ordinal) -> (facts, start, end): facts[start:end] are its evidence.
        self.evidence: dict[tuple[str, int], _Span] = {}

    def facts(self, fact_type: str) -> tuple[Any, ...]:
        """All facts of a type, unfiltered; derived facts are built once, so identity holds."""
        found = self._facts.get(fact_type)
        if found is None:
            found = self._facts[fact_type] = facts_of(self.case, fact_type)
        return found

    def first_date(self, fact_type: str) -> int | None:
        """The ordinal of the earliest `date` of any fact of a type; None when there is none."""
        if fact_type not in self._first_dates:
            base = self._base(fact_type, "date")
            self._first_dates[fact_type] = base.ordinals[0] if base.ordinals else None
        return self._first_dates[fact_type]

    def series(self, fact_type: str, date_field: str, where: FactPredicate | None, where_text: str) -> Series:
        """The facts of `fact_type` passing `where`, sorted by `date_field`."""
        return self._series_by((fact_type, date_field, where_text or where), where)

    def series_for(self, measure: CompiledMeasure) -> Series:
        """The facts a measure reads (see CompiledMeasure.series_key), sorted by its date field."""
        found = self._series.get(measure.series_key)
        return found if found is not None else self._series_by(measure.series_key, measure.where)

    def _series_by(self, key: tuple[str, str, Hashable], where: FactPredicate | None) -> Series:
        found = self._series.get(key)
        if found is None:
            base = self._base(key[0], key[1])
            if where is None:
                found = base
            else:
                # Filtering the sorted facts keeps their order: one sort per date field, not per filter.
                kept = list(fact_mask(where)(base.facts))
                found = Series(list(compress(base.facts, kept)), list(compress(base.ordinals, kept)))
            self._series[key] = found
        return found

    def _base(self, fact_type: str, date_field: str) -> Series:
        key = (fact_type, date_field)
        found = self._bases.get(key)
        if found is None:
            date_of = attrgetter(date_field)
            facts = self.facts(fact_type)
            dated = facts if date_field == "date" else [f for f in facts if date_of(f) is not None]
            # Ids are unique within a fact type (records and models both check), so this order is total.
            ordered = sorted(dated, key=attrgetter(date_field, "id"))
            found = self._bases[key] = Series(ordered, [date_of(f).toordinal() for f in ordered])
        return found


# The facts behind a measure: facts[start:end].
_Span = tuple[Sequence[Any], int, int]
_NO_EVIDENCE: _Span = ((), 0, 0)


def build_index(case: CaseFacts) -> CaseIndex:
    """Index a case's facts for one evaluation."""
    return CaseIndex(case)


class _At:
    """One evaluation's moment: `as_of`, its ordinal and the window starts already found."""

    __slots__ = ("as_of", "index", "starts", "today", "values")

    def __init__(self, index: CaseIndex, as_of: dt.date) -> None:
        self.index = index
        self.as_of = as_of
        self.today = as_of.toordinal()
        self.starts: dict[Window, int] = {}
        # Values measured so far: sums and ratios read their inputs here.
        self.values: dict[str, MeasureValue] = {}

    def start(self, window: Window) -> int:
        found = self.starts.get(window)
        if found is None:
            found = self.starts[window] = calendar.window_start(self.as_of, window).toordinal()
        return found

    def value_of(self, measure: CompiledMeasure) -> MeasureValue:
        """A measure's value at this moment: measured already, or now (a sum's input)."""
        found = self.values.get(measure.name, _UNMEASURED)
        if found is _UNMEASURED:
            found = self.values[measure.name] = _measure(measure, self)
        return found  # type: ignore[return-value]


def compute_measures(measures: Sequence[CompiledMeasure], index: CaseIndex, as_of: dt.date) -> dict[str, MeasureValue]:
    """Every measure's value at `as_of`: an int, or None when it cannot be measured."""
    at = _At(index, as_of)
    values = at.values
    for m in measures:
        values[m.name] = _measure(m, at)
    return values


def evidence_facts(measure: CompiledMeasure, index: CaseIndex, as_of: dt.date) -> Sequence[Any]:
    """The facts behind a measure's value at `as_of`, oldest first (see measure_evidence)."""
    key = (measure.name, as_of.toordinal())
    span = index.evidence.get(key)
    if span is None:
        _measure(measure, _At(index, as_of))
        span = index.evidence[key]
    facts, start, end = span
    if type(facts) is long_measures.Combined:
        return facts  # a sum's or ratio's evidence is all of it, and slicing would lose its parts
    return facts[start:end]


def evidence_items(measure: CompiledMeasure, facts: Sequence[Any], limit: int) -> tuple[EvidenceItem, ...]:
    """The newest `limit` of a measure's evidence facts (in series order) as items, most recent
    first: by date, then id, both descending."""
    if type(facts) is long_measures.Combined:
        return facts.items(limit)
    fact_type, read = measure.fact_type, attrgetter("id", measure.date_field)
    recent = facts[max(len(facts) - limit, 0) :]
    # tuple.__new__ rather than the named tuple's own __new__, a Python function: flags build
    # hundreds of these per call.
    return tuple([_new_tuple(EvidenceItem, (fact_type, *read(f))) for f in reversed(recent)])


def measure_evidence(
    measure: CompiledMeasure, index: CaseIndex, as_of: dt.date, limit: int = 50
) -> tuple[EvidenceItem, ...]:
    """The facts behind a measure's value at `as_of`, most recent first, at most `limit`."""
    return evidence_items(measure, evidence_facts(measure, index, as_of), limit)


def _measure(measure: CompiledMeasure, at: _At) -> MeasureValue:
    """A measure's value, noting the facts behind it in the index."""
    value, span = _KINDS[measure.kind](measure, at)
    at.index.evidence[measure.name, at.today] = span
    return value


def _age(measure: CompiledMeasure, at: _At) -> tuple[MeasureValue, _Span]:
    birth = at.index.case.child.birth_date
    as_of = at.as_of
    if birth is None or birth > as_of:
        return None, _NO_EVIDENCE
    # Not relativedelta, which counts a 29 February birthday as reached on 28 February:
    # in other years the anniversary is taken to be 1 March.
    return as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day)), _NO_EVIDENCE


def _located(measure: CompiledMeasure, at: _At) -> tuple[Series, int, int] | None:
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


def _count(measure: CompiledMeasure, at: _At) -> tuple[MeasureValue, _Span]:
    if (located := _located(measure, at)) is None:
        return None, _NO_EVIDENCE
    series, start, end = located
    if measure.overlaps:
        counted = long_measures.overlapping(measure, at, series, start, end)
        return len(counted), (counted, 0, len(counted))
    if measure.since_type:
        start = max(start, long_measures.after_latest(measure, at, series))
    return end - start, (series.facts, start, end)


def _distinct(measure: CompiledMeasure, at: _At) -> tuple[MeasureValue, _Span]:
    if (located := _located(measure, at)) is None:
        return None, _NO_EVIDENCE
    series, start, end = located
    read = attrgetter(measure.field)
    inside = long_measures.overlapping(measure, at, series, start, end) if measure.overlaps else series.facts[start:end]
    counted = [f for f in inside if read(f) is not None]
    return len(set(map(read, counted))), (counted, 0, len(counted))


def _days_since(measure: CompiledMeasure, at: _At) -> tuple[MeasureValue, _Span]:
    if (located := _located(measure, at)) is None or not located[2]:
        return None, _NO_EVIDENCE
    series, _, end = located
    latest = series.ordinals[end - 1]
    if measure.kind is MeasureKind.DAYS_SINCE:
        value = at.today - latest
    else:
        value = calendar.default_calendar().working_days_between(dt.date.fromordinal(latest), at.as_of)
    return value, (series.facts, end - 1, end)


def _open_facts(measure: CompiledMeasure, at: _At) -> tuple[MeasureValue, _Span]:
    if (located := _located(measure, at)) is None:
        return None, _NO_EVIDENCE
    series, _, end = located
    as_of, ended = at.as_of, attrgetter(measure.end_field)
    found = [f for f in series.facts[:end] if (e := ended(f)) is None or e > as_of]
    return len(found), (found, 0, len(found))


def _latest(measure: CompiledMeasure, at: _At) -> tuple[MeasureValue, _Span]:
    if (located := _located(measure, at)) is None or not located[2]:
        return None, _NO_EVIDENCE  # no fact to look at: undetermined, not "none of them"
    series, _, end = located
    if measure.group_by:
        return long_measures.latest_by_group(measure, series, end)
    start = max(0, end - measure.last)
    matching = measure.matching
    value = end - start if matching is None else sum(fact_mask(matching)(series.facts[start:end]))
    return value, (series.facts, start, end)


def _overdue_facts(measure: CompiledMeasure, at: _At) -> tuple[MeasureValue, _Span]:
    if (located := _located(measure, at)) is None:
        return None, _NO_EVIDENCE
    series, start, end = located
    found = _overdue(measure, at.index, series, range(start, end), at.as_of)
    return len(found), (found, 0, len(found))


def _over_located(
    compute: Callable[[CompiledMeasure, _At, Series, int, int], tuple[MeasureValue, _Span]],
) -> Callable[[CompiledMeasure, _At], tuple[MeasureValue, _Span]]:
    """A long-horizon kind over the facts `_located` finds (missing when it finds none)."""

    def measured(measure: CompiledMeasure, at: _At) -> tuple[MeasureValue, _Span]:
        if (located := _located(measure, at)) is None:
            return None, _NO_EVIDENCE
        return compute(measure, at, *located)

    return measured


_KINDS: dict[MeasureKind, Callable[[CompiledMeasure, _At], tuple[MeasureValue, _Span]]] = {
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

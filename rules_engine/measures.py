"""Windowed measures over a case's facts; pure, with `as_of` passed in.

`build_index` sorts a case's facts once per evaluation; every measure then finds its
window with a bisect over date ordinals. Windows and deadlines follow
`rules_engine.calendar`: a window covers `window_start < fact_date <= as_of`, and facts
dated after `as_of` never count. A fact whose measured date field is empty is skipped
by that measure.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Sequence
from operator import attrgetter
from typing import Any

from rules_engine import calendar
from rules_engine.compiled import CompiledMeasure, FactPredicate, MeasureKind, MeasureValue, Window
from rules_engine.evaluation import EvidenceItem
from rules_engine.facts import Case, facts_of


class Series:
    """One fact type's facts that pass a filter, sorted by one date field (empty dates dropped)."""

    __slots__ = ("facts", "ordinals")

    def __init__(self, facts: list[Any], ordinals: list[int]) -> None:
        self.facts = facts
        self.ordinals = ordinals

    def upto(self, as_of: int) -> int:
        """The end (exclusive) of the facts dated on or before `as_of`."""
        return bisect_right(self.ordinals, as_of)

    def after(self, start: int) -> int:
        """The start of the facts dated after `start`."""
        return bisect_right(self.ordinals, start)

    def due_before(self, window: Window, today: int, positions: range) -> int:
        """The end of the facts at `positions` whose deadline `window` after them is before `today`."""

        # Deadlines rise with dates (calendar arithmetic is monotonic), so the facts past
        # their deadline form a prefix: find it computing O(log n) deadlines, not n.
        def due(ordinal: int) -> int:
            return calendar.deadline(dt.date.fromordinal(ordinal), window).toordinal()

        return bisect_left(self.ordinals, today, positions.start, positions.stop, key=due)


class CaseIndex:
    """A case's facts, sorted once per evaluation and shared by every measure."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self._facts: dict[str, tuple[Any, ...]] = {}
        self._first_dates: dict[str, int | None] = {}
        self._series: dict[tuple[str, str, Hashable], Series] = {}

    def facts(self, fact_type: str) -> tuple[Any, ...]:
        """All facts of a type, unfiltered; derived facts are built once, so identity holds."""
        found = self._facts.get(fact_type)
        if found is None:
            found = self._facts[fact_type] = facts_of(self.case, fact_type)
        return found

    def first_date(self, fact_type: str) -> int | None:
        """The ordinal of the earliest `date` of any fact of a type; None when there is none."""
        if fact_type not in self._first_dates:
            facts = self.facts(fact_type)
            self._first_dates[fact_type] = min((f.date.toordinal() for f in facts), default=None)
        return self._first_dates[fact_type]

    def series(self, fact_type: str, date_field: str, where: FactPredicate | None, where_text: str) -> Series:
        """The facts of `fact_type` passing `where`, sorted by `date_field`."""
        # Several measures share one filter: key it by its source text, or by the
        # predicate itself when there is no text (predicates built in tests).
        key = (fact_type, date_field, None if where is None else (where_text or where))
        found = self._series.get(key)
        if found is None:
            date_of = attrgetter(date_field)
            kept = [f for f in self.facts(fact_type) if date_of(f) is not None and (where is None or where(f))]
            kept.sort(key=date_of)
            found = self._series[key] = Series(kept, [date_of(f).toordinal() for f in kept])
        return found


def build_index(case: Case) -> CaseIndex:
    """Index a case's facts for one evaluation."""
    return CaseIndex(case)


def compute_measures(measures: Sequence[CompiledMeasure], index: CaseIndex, as_of: dt.date) -> dict[str, MeasureValue]:
    """Every measure's value at `as_of`: an int, or None when it cannot be measured."""
    starts = _WindowStarts(as_of)
    return {m.name: _value(m, index, as_of, starts) for m in measures}


def evidence_facts(measure: CompiledMeasure, index: CaseIndex, as_of: dt.date) -> Sequence[Any]:
    """The facts behind a measure's value at `as_of`, oldest first (see measure_evidence)."""
    kind = measure.kind
    if kind is MeasureKind.AGE or _absent(measure, index, as_of):
        return ()
    series = _series(measure, index)
    end = series.upto(as_of.toordinal())
    if kind in (MeasureKind.DAYS_SINCE, MeasureKind.WORKING_DAYS_SINCE):
        return series.facts[end - 1 : end]
    if kind is MeasureKind.OPEN:
        return _open(measure, series, end, as_of)
    if kind is MeasureKind.LATEST:
        return series.facts[max(0, end - measure.last) : end]
    start = _window_first(measure, series, _WindowStarts(as_of))
    if kind is MeasureKind.OVERDUE:
        return _overdue(measure, index, series, range(start, end), as_of)
    if kind is MeasureKind.DISTINCT:
        return [f for f in series.facts[start:end] if getattr(f, measure.field) is not None]
    return series.facts[start:end]


def evidence_items(measure: CompiledMeasure, facts: Sequence[Any], limit: int) -> tuple[EvidenceItem, ...]:
    """The newest `limit` of a measure's evidence facts as items, most recent first."""
    date_field = measure.date_field
    recent = facts[max(len(facts) - limit, 0) :]
    return tuple(EvidenceItem(measure.fact_type, f.id, getattr(f, date_field)) for f in reversed(recent))


def measure_evidence(
    measure: CompiledMeasure, index: CaseIndex, as_of: dt.date, limit: int = 50
) -> tuple[EvidenceItem, ...]:
    """The facts behind a measure's value at `as_of`, most recent first, at most `limit`."""
    return evidence_items(measure, evidence_facts(measure, index, as_of), limit)


class _WindowStarts:
    """Window starts at one `as_of`, memoised: many measures share a window."""

    def __init__(self, as_of: dt.date) -> None:
        self._as_of = as_of
        self._starts: dict[Window, int] = {}

    def __call__(self, window: Window) -> int:
        found = self._starts.get(window)
        if found is None:
            found = self._starts[window] = calendar.window_start(self._as_of, window).toordinal()
        return found


def _value(measure: CompiledMeasure, index: CaseIndex, as_of: dt.date, starts: _WindowStarts) -> MeasureValue:
    kind = measure.kind
    if kind is MeasureKind.AGE:
        return _age(index.case, as_of)
    if _absent(measure, index, as_of):
        return None
    series = _series(measure, index)
    end = series.upto(as_of.toordinal())
    if kind is MeasureKind.COUNT:
        return end - _window_first(measure, series, starts)
    if kind is MeasureKind.DISTINCT:
        start = _window_first(measure, series, starts)
        values = {getattr(f, measure.field) for f in series.facts[start:end]}
        values.discard(None)
        return len(values)
    if kind is MeasureKind.DAYS_SINCE:
        return as_of.toordinal() - series.ordinals[end - 1] if end else None
    if kind is MeasureKind.WORKING_DAYS_SINCE:
        if not end:
            return None
        latest = dt.date.fromordinal(series.ordinals[end - 1])
        return calendar.default_calendar().working_days_between(latest, as_of)
    if kind is MeasureKind.OPEN:
        return len(_open(measure, series, end, as_of))
    if kind is MeasureKind.LATEST:
        if not end:
            return None  # no fact to look at: undetermined, not "none of them"
        matching = measure.matching
        recent = series.facts[max(0, end - measure.last) : end]
        return sum(1 for f in recent if matching is None or matching(f))
    if kind is MeasureKind.OVERDUE:
        start = _window_first(measure, series, starts)
        return len(_overdue(measure, index, series, range(start, end), as_of))
    raise ValueError(f"unknown measure kind {kind}")


def _series(measure: CompiledMeasure, index: CaseIndex) -> Series:
    return index.series(measure.fact_type, measure.date_field, measure.where, measure.where_text)


def _absent(measure: CompiledMeasure, index: CaseIndex, as_of: dt.date) -> bool:
    """True when the measure is missing because the case holds no fact of its type by `as_of`."""
    if not measure.missing_when_absent:
        return False
    first = index.first_date(measure.fact_type)
    return first is None or first > as_of.toordinal()


def _window_first(measure: CompiledMeasure, series: Series, starts: Callable[[Window], int]) -> int:
    """The position of the first fact inside the measure's window (0 when it has none)."""
    return 0 if measure.window is None else series.after(starts(measure.window))


def _open(measure: CompiledMeasure, series: Series, end: int, as_of: dt.date) -> list[Any]:
    field = measure.end_field
    return [f for f in series.facts[:end] if (e := getattr(f, field)) is None or e > as_of]


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


def _age(case: Case, as_of: dt.date) -> int | None:
    birth = case.child.birth_date
    if birth is None or birth > as_of:
        return None
    # Not relativedelta, which counts a 29 February birthday as reached on 28 February:
    # in other years the anniversary is taken to be 1 March.
    return as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))

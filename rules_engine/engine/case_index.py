"""A case's facts indexed for one evaluation, and the moment measures are taken at.

`build_index` sorts a case's facts once per evaluation; every measure then finds its
window with a bisect over date ordinals. Facts of one date are ordered by id, so that
"the last 2 visits" and the evidence a flag lists depend on the facts alone, never on
the order a request sent them in. The measure kinds live in `measures` (and, for the
long-horizon ones, `long_measures`); both build on this module, which imports neither.
"""

from __future__ import annotations

import datetime as dt
import heapq
from bisect import bisect_left
from collections.abc import Callable, Hashable, Sequence
from itertools import compress
from operator import attrgetter
from typing import Any

from rules_engine.case.facts import CaseFacts, facts_of
from rules_engine.engine import calendar
from rules_engine.engine.results import EvidenceItem
from rules_engine.policy.compiled import CompiledMeasure, FactPredicate, MeasureValue, Window, fact_mask

_new_tuple = tuple.__new__
_UNMEASURED = object()
_NEWEST_FIRST = attrgetter("date", "fact_type", "fact_id")

# The facts behind a measure: facts[start:end].
Span = tuple[Sequence[Any], int, int]
NO_EVIDENCE: Span = ((), 0, 0)


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
        self.evidence: dict[tuple[str, int], Span] = {}

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


def build_index(case: CaseFacts) -> CaseIndex:
    """Index a case's facts for one evaluation."""
    return CaseIndex(case)


class At:
    """One evaluation's moment: `as_of`, its ordinal and the window starts already found.

    `measure_one` measures a measure at this moment (noting its evidence in the index);
    `value_of` calls it for a measure not yet measured, so this module need not know the kinds.
    """

    __slots__ = ("as_of", "index", "measure_one", "starts", "today", "values")

    def __init__(
        self, index: CaseIndex, as_of: dt.date, measure_one: Callable[[CompiledMeasure, At], MeasureValue]
    ) -> None:
        self.index = index
        self.as_of = as_of
        self.today = as_of.toordinal()
        self.measure_one = measure_one
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
            found = self.values[measure.name] = self.measure_one(measure, self)
        return found  # type: ignore[return-value]


def fact_evidence_items(measure: CompiledMeasure, facts: Sequence[Any], limit: int) -> tuple[EvidenceItem, ...]:
    """The newest `limit` of a measure's own facts (in series order) as items, most recent
    first: by date, then id, both descending. Not for a sum's or ratio's `Combined` facts."""
    fact_type, read = measure.fact_type, attrgetter("id", measure.date_field)
    recent = facts[max(len(facts) - limit, 0) :]
    # tuple.__new__ rather than the named tuple's own __new__, a Python function: flags build
    # hundreds of these per call.
    return tuple([_new_tuple(EvidenceItem, (fact_type, *read(f))) for f in reversed(recent)])


class Combined(list[Any]):
    """The facts behind a sum or ratio: the union of its inputs' evidence, each fact once.

    A list, so flags count and merge it like any measure's facts; it keeps each input's own
    facts (`parts`) because only the input knows the fact type and date field of its facts.
    """

    __slots__ = ("parts",)

    def __init__(self, parts: list[tuple[CompiledMeasure, Sequence[Any]]]) -> None:
        # By identity: the index holds each fact once, and two inputs may count the same one.
        union = {id(f): f for _, facts in parts for f in facts}
        super().__init__(union.values())
        self.parts = parts

    def items(self, limit: int) -> tuple[EvidenceItem, ...]:
        """The newest `limit` facts as evidence items, most recent first."""
        newest: dict[tuple[str, str], EvidenceItem] = {}
        for measure, facts in self.parts:
            for item in fact_evidence_items(measure, facts, limit):
                newest.setdefault((item.fact_type, item.fact_id), item)
        return tuple(heapq.nlargest(limit, newest.values(), key=_NEWEST_FIRST))

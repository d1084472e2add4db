"""The compiled core's calendar: working days counted and deadlines worked out in C from the
calendar's table (calendar.working_day_table), held to engine/calendar.py across the table and
past both its ends, where the core asks the calendar itself."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from rules_engine.engine import calendar
from rules_engine.engine.native import _Plan
from rules_engine.policy.compiled import CompiledRuleset, Window

EXTRA_DEADLINES = [
    Window(1, "days"),
    Window(3, "weeks"),
    Window(1, "working_days"),
    Window(15, "working_days"),
    Window(400, "working_days"),
    Window(1, "months"),
    Window(2, "years"),
    Window(3_000_000, "days"),  # past date.max from every date
]


def _built(core: Any, ruleset: CompiledRuleset) -> tuple[Any, list[Window]]:
    """The ruleset's core, with EXTRA_DEADLINES beside its own deadlines; and all of them, in
    the order of their indices."""
    plan = _Plan(ruleset, core)
    for window in EXTRA_DEADLINES:
        plan.deadlines.setdefault(window, len(plan.deadlines))
    built, _, _ = plan.build()
    return built, list(plan.deadlines)


def _days(first: int, last: int) -> Iterator[int]:
    """Every 5th day of the table (every weekday in turn) and a stretch either side of it."""
    yield from range(first - 40, first + 40)
    yield from range(first, last, 5)
    yield from range(last - 600, last + 40)


def test_working_days_between_is_the_calendars(core: Any, compiled_rulesets: dict[str, CompiledRuleset]) -> None:
    built, _ = _built(core, compiled_rulesets["safeguarding"])
    working = calendar.default_calendar()
    first, counts, _ = working.working_day_table()
    last = first + len(counts) - 1
    ends = (first - 400, first - 1, first, first + 3, last - 1, last, last + 1, last + 90)
    for start in _days(first, last):
        for end in (*ends, start, start + 1, start + 30):
            want = working.working_days_between(dt.date.fromordinal(start), dt.date.fromordinal(end))
            assert built.working_days_between(start, end) == want, (start, end)


def test_deadlines_are_the_calendars(core: Any, compiled_rulesets: dict[str, CompiledRuleset]) -> None:
    built, deadlines = _built(core, compiled_rulesets["safeguarding"])
    first, counts, _ = calendar.default_calendar().working_day_table()
    for index, window in enumerate(deadlines):
        for day in _days(first, first + len(counts) - 1):
            want = calendar.deadline(dt.date.fromordinal(day), window).toordinal()
            assert built.deadline_ordinal(day, index) == want, (window, dt.date.fromordinal(day))

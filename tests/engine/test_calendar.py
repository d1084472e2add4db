"""Tests for rules_engine.engine.calendar: working days, window starts and deadlines."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules_engine.engine.calendar import WorkingDayCalendar, deadline, default_calendar, window_start
from rules_engine.policy.compiled import Window

D = dt.date


@pytest.fixture(scope="module")
def cal() -> WorkingDayCalendar:
    return default_calendar()


def _naive_between(start: dt.date, end: dt.date, cal: WorkingDayCalendar) -> int:
    lo, hi, sign = (start, end, 1) if start <= end else (end, start, -1)
    days = (lo + dt.timedelta(days=i) for i in range(1, (hi - lo).days + 1))
    return sign * sum(1 for d in days if cal.is_working_day(d))


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (D(2024, 3, 28), True),  # Maundy Thursday
        (D(2024, 3, 29), False),  # Good Friday
        (D(2024, 3, 30), False),  # Saturday
        (D(2024, 4, 1), False),  # Easter Monday
        (D(2024, 4, 2), True),
        (D(2024, 12, 25), False),
        (D(2024, 12, 26), False),
        (D(2024, 12, 27), True),
        (D(2021, 12, 27), False),  # substitute for Christmas Day on a Saturday
        (D(2021, 12, 28), False),  # substitute for Boxing Day on a Sunday
        (D(2021, 12, 29), True),
    ],
)
def test_is_working_day_follows_bank_holidays(cal: WorkingDayCalendar, day: dt.date, working: bool) -> None:
    assert cal.is_working_day(day) is working


def test_working_days_between_across_easter(cal: WorkingDayCalendar) -> None:
    # Thursday 28 March to Tuesday 2 April 2024: only the Tuesday works.
    assert cal.working_days_between(D(2024, 3, 28), D(2024, 4, 2)) == 1
    assert cal.working_days_between(D(2024, 4, 2), D(2024, 3, 28)) == -1
    assert cal.working_days_between(D(2024, 4, 2), D(2024, 4, 2)) == 0


def test_working_days_between_across_christmas_substitute_days(cal: WorkingDayCalendar) -> None:
    # Friday 24 December 2021 to Wednesday 29 December: 25-28 are weekend or bank holidays.
    assert cal.working_days_between(D(2021, 12, 24), D(2021, 12, 29)) == 1
    assert cal.working_days_between(D(2024, 12, 24), D(2024, 12, 27)) == 1


def test_add_working_days_skips_bank_holidays(cal: WorkingDayCalendar) -> None:
    assert cal.add_working_days(D(2024, 3, 28), 1) == D(2024, 4, 2)
    assert cal.add_working_days(D(2024, 3, 29), 1) == D(2024, 4, 2)  # from a holiday
    assert cal.add_working_days(D(2024, 4, 2), -1) == D(2024, 3, 28)
    assert cal.add_working_days(D(2021, 12, 24), 1) == D(2021, 12, 29)
    assert cal.add_working_days(D(2024, 4, 2), 0) == D(2024, 4, 2)


def test_dates_outside_the_span_extend_it() -> None:
    cal = WorkingDayCalendar(2020, 2021)
    assert cal.working_days_between(D(2019, 12, 31), D(2022, 1, 4)) == _naive_between(
        D(2019, 12, 31), D(2022, 1, 4), cal
    )
    assert cal.years == (2019, 2022)
    # Stepping far past the span keeps extending until the answer is inside it.
    assert cal.add_working_days(D(2022, 12, 30), 600).year == 2025
    assert cal.add_working_days(D(2019, 1, 2), -600).year == 2016


@given(
    start=st.dates(D(1995, 1, 1), D(2070, 12, 31)),
    span=st.integers(-60, 60),
)
def test_working_days_between_matches_counting_days(start: dt.date, span: int) -> None:
    cal = default_calendar()
    end = start + dt.timedelta(days=span)
    assert cal.working_days_between(start, end) == _naive_between(start, end, cal)


@given(day=st.dates(D(1995, 1, 1), D(2070, 12, 31)), n=st.integers(1, 400))
def test_add_working_days_is_the_inverse_of_counting(day: dt.date, n: int) -> None:
    cal = default_calendar()
    later = cal.add_working_days(day, n)
    assert cal.is_working_day(later)
    assert cal.working_days_between(day, later) == n
    earlier = cal.add_working_days(day, -n)
    assert cal.is_working_day(earlier)
    assert cal.working_days_between(earlier, day - dt.timedelta(days=1)) == n - 1


@pytest.mark.parametrize(
    ("as_of", "window", "start"),
    [
        (D(2024, 6, 30), Window(90, "days"), D(2024, 4, 1)),
        (D(2024, 6, 30), Window(2, "weeks"), D(2024, 6, 16)),
        (D(2024, 3, 31), Window(1, "months"), D(2024, 2, 29)),  # clamped to the month's end
        (D(2023, 3, 31), Window(1, "months"), D(2023, 2, 28)),
        (D(2024, 2, 29), Window(1, "years"), D(2023, 2, 28)),
        # Wednesday: the last working day is the day itself, so the window starts Tuesday.
        (D(2024, 4, 3), Window(1, "working_days"), D(2024, 4, 2)),
        # Tuesday after Easter: the last 2 working days are Thursday 28 March and Tuesday.
        (D(2024, 4, 2), Window(2, "working_days"), D(2024, 3, 27)),
        # Saturday: the last working day is Friday.
        (D(2024, 4, 6), Window(1, "working_days"), D(2024, 4, 4)),
    ],
)
def test_window_start(as_of: dt.date, window: Window, start: dt.date) -> None:
    assert window_start(as_of, window) == start


@given(as_of=st.dates(D(1995, 1, 1), D(2070, 12, 31)), n=st.integers(1, 300))
def test_a_working_day_window_holds_exactly_n_working_days(as_of: dt.date, n: int) -> None:
    start = window_start(as_of, Window(n, "working_days"))
    assert default_calendar().working_days_between(start, as_of) == n
    # and it is the latest such start: the day after it would leave one out.
    assert default_calendar().is_working_day(start + dt.timedelta(days=1))


@pytest.mark.parametrize(
    ("day", "window", "due"),
    [
        (D(2024, 1, 1), Window(45, "days"), D(2024, 2, 15)),
        (D(2024, 1, 1), Window(3, "weeks"), D(2024, 1, 22)),
        (D(2024, 1, 31), Window(1, "months"), D(2024, 2, 29)),
        (D(2024, 2, 29), Window(1, "years"), D(2025, 2, 28)),
        (D(2024, 3, 28), Window(1, "working_days"), D(2024, 4, 2)),  # over Easter
        (D(2024, 3, 22), Window(3, "working_days"), D(2024, 3, 27)),
        (D(2021, 12, 23), Window(2, "working_days"), D(2021, 12, 29)),  # over substitute days
    ],
)
def test_deadline(day: dt.date, window: Window, due: dt.date) -> None:
    assert deadline(day, window) == due

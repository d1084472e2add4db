"""Working days and window arithmetic on the England and Wales bank-holiday calendar.

Bank holidays come from the maintained `holidays` library (GB, subdivision ENG, which
England and Wales share), never from a hand-written list, so substitute days such as
27 and 28 December 2021 are included.

Windows. A window of N units ending at `as_of` covers facts dated
`window_start < fact_date <= as_of`: the start is exclusive, so "90 days" holds exactly
90 days and a fact is inside the window exactly when fewer than N units have passed
since it. Months and years step back with `relativedelta`, which clamps to the month's
end (31 March less 1 month is 29 February in a leap year). A window of N working days
holds exactly the last N working days up to `as_of` (and any weekend or bank holiday
between them): it starts the calendar day before the Nth latest working day, so a fact
is inside it exactly when `working_days_between(fact_date, as_of) < N`. Facts dated
after `as_of` are never inside any window: replays move `as_of` forward through history.

Deadlines run forward from a fact's date: N calendar units later, or the Nth working
day after it (a referral on a Friday due "within 1 working day" is due on Monday).

The service accepts dates from FIRST_DATE to LAST_DATE (facts, `as_of`, snoozes; see
case.dates). Windows and deadlines saturate instead of overflowing: the longest a rule
file may declare (9999 years, schema.parse_window) reaches past 0001-01-01 and 9999-12-31
from any accepted date, and a window starting before the first date a fact may have holds
every fact, as a deadline after the last date `as_of` may take is never passed.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from bisect import bisect_left, bisect_right
from functools import cache

import holidays
from dateutil.relativedelta import relativedelta

from rules_engine.case.dates import FIRST_DATE, LAST_DATE
from rules_engine.policy.compiled import Window

# Working days are counted on bank holidays only this far either side of the accepted dates;
# a working-day window or deadline reaching further saturates like a calendar one.
_FIRST_WORKING_YEAR = FIRST_DATE.year - 50
_LAST_WORKING_YEAR = LAST_DATE.year + 50


# Wide enough for any case history and deadline the service sees; dates outside it
# extend the span lazily rather than fail.
FIRST_YEAR = 1990
LAST_YEAR = 2075


class WorkingDayCalendar:
    """Working days (Monday to Friday, not a bank holiday) with O(log n) arithmetic.

    The sorted ordinals of every working day in a span of years are computed once, so
    counting and stepping are a bisect, not a walk over days.
    """

    def __init__(self, first_year: int = FIRST_YEAR, last_year: int = LAST_YEAR) -> None:
        self._lock = threading.Lock()
        self._span = _build_span(first_year, last_year)

    @property
    def years(self) -> tuple[int, int]:
        """The first and last year currently precomputed."""
        return self._span.first_year, self._span.last_year

    def is_working_day(self, day: dt.date) -> bool:
        year = min(max(day.year, _FIRST_WORKING_YEAR), _LAST_WORKING_YEAR)
        span = self._covering(year, year)
        i = bisect_left(span.ordinals, day.toordinal())
        return i < len(span.ordinals) and span.ordinals[i] == day.toordinal()

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days d with start < d <= end; negative (or 0) when end <= start.

        Dates outside the span working days are counted over count from its edge.
        """
        first = min(max(min(start.year, end.year), _FIRST_WORKING_YEAR), _LAST_WORKING_YEAR)
        last = max(min(max(start.year, end.year), _LAST_WORKING_YEAR), _FIRST_WORKING_YEAR)
        span = self._covering(first, last)
        ordinals = span.ordinals
        return bisect_right(ordinals, end.toordinal()) - bisect_right(ordinals, start.toordinal())

    def add_working_days(self, day: dt.date, n: int) -> dt.date:
        """The nth working day after `day` (n > 0), before it (n < 0), or `day` itself (n == 0)."""
        if n == 0:
            return day
        # Past the span working days are counted over, the answer saturates (module docstring).
        first_ordinal = dt.date(_FIRST_WORKING_YEAR, 1, 1).toordinal()
        last_ordinal = dt.date(_LAST_WORKING_YEAR, 12, 31).toordinal()
        if not first_ordinal <= day.toordinal() <= last_ordinal:
            return dt.date.max if n > 0 else dt.date.min
        # About 253 working days a year; a spare year either side absorbs the rounding.
        reach = abs(n) // 250 + 1
        while True:
            first = max(day.year - reach, _FIRST_WORKING_YEAR)
            last = min(day.year + reach, _LAST_WORKING_YEAR)
            span = self._covering(first, last)
            ordinals = span.ordinals
            if n > 0:
                i = bisect_right(ordinals, day.toordinal()) + n - 1
            else:
                i = bisect_left(ordinals, day.toordinal()) + n
            if 0 <= i < len(ordinals):
                return dt.date.fromordinal(ordinals[i])
            if first == _FIRST_WORKING_YEAR and last == _LAST_WORKING_YEAR:
                return dt.date.max if n > 0 else dt.date.min
            reach += 1 + reach // 2

    def nth_latest_working_day(self, day: dt.date, n: int) -> dt.date:
        """The nth latest working day on or before `day` (n >= 1); n == 1 is `day` if it works."""
        return self.add_working_days(day + dt.timedelta(days=1), -n)

    def working_day_table(self) -> tuple[int, list[int], list[int]]:
        """The precomputed span as the compiled core reads it: its first ordinal, the number of
        working days on or before each of its days (`counts[o - first]`), and the working days'
        ordinals. Between two days of the span working_days_between is then a difference of two
        counts, and the nth working day after one an index into the ordinals; the core asks the
        methods above about any other day."""
        span = self._span
        first = dt.date(span.first_year, 1, 1).toordinal()
        last = dt.date(span.last_year, 12, 31).toordinal()
        counts = [0] * (last - first + 1)
        count, ordinals = 0, span.ordinals
        for i, ordinal in enumerate(range(first, last + 1)):
            if count < len(ordinals) and ordinals[count] == ordinal:
                count += 1
            counts[i] = count
        return first, counts, list(ordinals)

    def _covering(self, first_year: int, last_year: int) -> _Span:
        span = self._span
        if span.first_year <= first_year and last_year <= span.last_year:
            return span
        # Rebuild under a lock and publish the new span in one assignment, so concurrent
        # readers see either the old span or the new one, never a half-built list.
        with self._lock:
            span = self._span
            if not (span.first_year <= first_year and last_year <= span.last_year):
                span = _build_span(min(first_year, span.first_year), max(last_year, span.last_year))
                self._span = span
        return span


class _Span:
    __slots__ = ("first_year", "last_year", "ordinals")

    def __init__(self, first_year: int, last_year: int, ordinals: list[int]) -> None:
        self.first_year = first_year
        self.last_year = last_year
        self.ordinals = ordinals


def _build_span(first_year: int, last_year: int) -> _Span:
    bank_holidays = holidays.country_holidays("GB", subdiv="ENG", years=range(first_year, last_year + 1))
    closed = {day.toordinal() for day in bank_holidays}
    first = dt.date(first_year, 1, 1).toordinal()
    last = dt.date(last_year, 12, 31).toordinal()
    # date.fromordinal(1) is a Monday, so (ordinal - 1) % 7 is the weekday with Monday 0.
    ordinals = [o for o in range(first, last + 1) if (o - 1) % 7 < 5 and o not in closed]
    return _Span(first_year, last_year, ordinals)


def month_end(day: dt.date) -> dt.date:
    """The last day of `day`'s month."""
    following = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - dt.timedelta(days=1)


def month_ends(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every month end from the end of `first`'s month to `last`, inclusive."""
    days: list[dt.date] = []
    day = month_end(first)
    while day <= last:
        days.append(day)
        day = month_end(day + dt.timedelta(days=1))
    return days


@cache
def default_calendar() -> WorkingDayCalendar:
    """The shared calendar, built on first use so that importing this module is cheap."""
    return WorkingDayCalendar()


# Both are pure in (date, window) and called for the same few pairs on every evaluation;
# relativedelta arithmetic costs microseconds, a cache hit a fraction of one.
@functools.lru_cache(maxsize=65536)
def window_start(as_of: dt.date, window: Window) -> dt.date:
    """The exclusive start of `window` ending at `as_of` (see the module docstring)."""
    try:
        return _window_start(as_of, window)
    except (OverflowError, ValueError):  # before 0001-01-01: every fact is inside
        return dt.date.min


def _window_start(as_of: dt.date, window: Window) -> dt.date:
    amount, unit = window.amount, window.unit
    if unit == "days":
        return as_of - dt.timedelta(days=amount)
    if unit == "weeks":
        return as_of - dt.timedelta(weeks=amount)
    if unit == "months":
        return as_of - relativedelta(months=amount)
    if unit == "years":
        return as_of - relativedelta(years=amount)
    if amount <= 0:
        return as_of
    return default_calendar().nth_latest_working_day(as_of, amount) - dt.timedelta(days=1)


@functools.lru_cache(maxsize=65536)
def deadline(day: dt.date, window: Window) -> dt.date:
    """The last date on which something due `window` after `day` is still on time."""
    try:
        return _deadline(day, window)
    except (OverflowError, ValueError):  # after 9999-12-31: never passed
        return dt.date.max


def _deadline(day: dt.date, window: Window) -> dt.date:
    amount, unit = window.amount, window.unit
    if unit == "days":
        return day + dt.timedelta(days=amount)
    if unit == "weeks":
        return day + dt.timedelta(weeks=amount)
    if unit == "months":
        return day + relativedelta(months=amount)
    if unit == "years":
        return day + relativedelta(years=amount)
    return default_calendar().add_working_days(day, amount)

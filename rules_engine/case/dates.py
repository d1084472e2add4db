"""Which dates the service accepts, and date text read into dates once per process.

One rule for every date a request may carry (facts, `as_of`, snoozes): from FIRST_DATE to
LAST_DATE, and in facts no later than a year after today. Every case history and plan fits;
dates far outside are typos or probes (year 1, 9999) rather than records. The calendar
bounds its working-day tables by the same range.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

FIRST_DATE = dt.date(1900, 1, 1)
LAST_DATE = dt.date(2199, 12, 31)
MAX_FUTURE = 366  # days: a date more than a year after today is a typo, not a plan


def out_of_range(day: dt.date) -> str | None:
    """Why a date in a request is refused, or None when the service accepts it."""
    if FIRST_DATE <= day <= LAST_DATE:
        return None
    return f"outside the dates accepted ({FIRST_DATE.isoformat()} to {LAST_DATE.isoformat()})"


def latest_date(today: dt.date) -> dt.date:
    """The latest date a case may hold on `today`: a year ahead, and never past LAST_DATE."""
    return min(today + dt.timedelta(days=MAX_FUTURE), LAST_DATE)


def iso_day(text: str) -> dt.date:
    """A YYYY-MM-DD date, or ValueError: fromisoformat alone would also take 20240102 and week dates."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(text)
    return dt.date.fromisoformat(text)


NOT_A_DATE = object()  # date text that is not YYYY-MM-DD; fails every check of a date column
# Distinct valid dates are few (a century is 36,525); the cap only bounds hostile input.
MAX_CACHED_DATES = 100_000


class _Days(dict[str, Any]):
    """Date text -> datetime.date, parsed once per process; "" -> None, bad text -> NOT_A_DATE."""

    def __missing__(self, text: str) -> Any:
        try:
            day = iso_day(text)
        except ValueError:
            return NOT_A_DATE
        if len(self) >= MAX_CACHED_DATES:
            self.clear()
            self[""] = None
        self[text] = day
        return day


# The record readers' dates: requests and stored facts repeat the same few hundred.
DAYS = _Days({"": None})

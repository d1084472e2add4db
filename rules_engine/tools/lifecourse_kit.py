"""Building blocks for seeded life courses: one case's random draws and the facts written from them.

The life-course generators (`lifecourse.py`, `lifecourse_controls.py`) describe practice in
the domain's words (a visit every 10 working days, a review at 3 then 6 months); this module
turns those into facts in the proto3 JSON form of Case. It knows nothing of rules.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from dateutil.relativedelta import relativedelta

from rules_engine.engine.calendar import default_calendar
from rules_engine.tools.synth import CaseBuilder, CaseJson

# No course runs past this day, so every generated case is valid against any later "today".
LATEST_END = dt.date(2025, 12, 31)

CSC = "CHILDRENS_SOCIAL_CARE"

# CIN census referral source for the agency that raised a concern (closest code).
REFERRAL_SOURCE = {
    "POLICE": "6",
    "EDUCATION": "2A",
    "EARLY_YEARS": "2B",
    "GP": "3A",
    "HEALTH_VISITOR": "3B",
    "SCHOOL_NURSE": "3C",
    "HEALTH": "3D",
    "HOSPITAL": "3E",
    "MENTAL_HEALTH": "3F",
    "HOUSING": "4",
    "FAMILY_OR_PUBLIC": "1A",
    "ANONYMOUS": "9",
}

# Id prefixes for fact types whose first three letters another type shares (plans, recordUpdates).
_ID_PREFIX = {"planReviews": "prv", "recordedFactors": "fac"}


def wd(day: dt.date, n: int) -> dt.date:
    """The nth working day after `day` (before it when n < 0)."""
    return default_calendar().add_working_days(day, n)


def plus_months(day: dt.date, months: int) -> dt.date:
    result: dt.date = day + relativedelta(months=months)
    return result


def random_day(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randint(0, max(0, (last - first).days)))


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


class Course:
    """One case being written: its random source, its facts, and the workers it has used."""

    def __init__(self, rng: random.Random, case_id: str, end: dt.date, birth_date: dt.date) -> None:
        self.rng = rng
        self.case_id = case_id
        self.end = end
        self.birth_date = birth_date
        self._builder = CaseBuilder(case_id, end, birth_date)
        self._workers: set[str] = set()

    # --- draws -----------------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def days(self, low: int, high: int) -> dt.timedelta:
        return dt.timedelta(days=self.rng.randint(low, high))

    def age(self, day: dt.date) -> int:
        return age_on(self.birth_date, day)

    def worker(self) -> str:
        """A worker id not yet used in this course (a returning worker would read as continuity)."""
        while True:
            worker = f"sw{self.rng.randint(1, 9999):04d}"
            if worker not in self._workers:
                self._workers.add(worker)
                return worker

    # --- facts -----------------------------------------------------------------------------

    def add(self, fact_type: str, day: dt.date, **fields: Any) -> str | None:
        """Add a fact; its id, or None when it falls after the course's end (dropped)."""
        if not self._builder.add(fact_type, day, **fields):
            return None
        fact = self._builder.doc[fact_type][-1]
        prefix = _ID_PREFIX.get(fact_type)
        if prefix:  # CaseBuilder takes the first three letters, which these types share
            fact["id"] = prefix + fact["id"][3:]
        fact_id: str = fact["id"]
        return fact_id

    def allocate(self, spans: list[tuple[dt.date, dt.date | None, str]]) -> list[str]:
        """One allocation per (start, end, change reason), each to a new worker; their ids."""
        workers = []
        for start, stop, reason in spans:
            worker = self.worker()
            if self.add("allocations", start, workerId=worker, endDate=stop, changeReason=reason):
                workers.append(worker)
        return workers

    def visits(self, start: dt.date, stop: dt.date, low: int, high: int, alone_every: int = 2) -> int:
        """Visits every `low`..`high` working days, child seen, seen alone on every `alone_every`th
        (never when 0: too young to be seen alone); how many."""
        day, n = start, 0
        while day <= min(stop, self.end):
            self.add(
                "visits",
                day,
                childSeen=True,
                seenAlone=alone_every > 0 and n % alone_every == 0,
                bedroomSeen=n % 4 == 0,
            )
            day, n = wd(day, self.rng.randint(low, high)), n + 1
        return n

    def chronology(self, start: dt.date, stop: dt.date, low: int, high: int) -> None:
        """Chronology updated every `low`..`high` days."""
        day = start
        while day <= min(stop, self.end):
            self.add("recordUpdates", day, kind="CHRONOLOGY")
            day += self.days(low, high)

    def conference(
        self, day: dt.date, kind: str, agencies: tuple[str, ...], notice: int, absent: str | None = None
    ) -> None:
        """A conference; every agency attends with its report on time except `absent` (no report)."""
        parts: list[dict[str, Any]] = []
        for agency in agencies:
            due = wd(day, -notice)
            part: dict[str, Any] = {"agency": agency, "reportDueOn": due.isoformat()}
            if agency != absent:
                part["attended"] = True
                part["reportReceivedOn"] = wd(due, -self.rng.randint(0, 2)).isoformat()
            parts.append(part)
        self.add("conferences", day, kind=f"CONFERENCE_KIND_{kind}", agencies=parts)

    def plan_reviews(
        self, plan_id: str | None, plan_kind: str, start: dt.date, stop: dt.date, first: int, every: int
    ) -> int:
        """Reviews of a plan: the first `first` months after it starts, then every `every` months
        (a few days early, never late); how many."""
        n = 0
        day = plus_months(start, first) - self.days(0, 10)
        while day <= min(stop, self.end):
            self.add("planReviews", day, planId=plan_id, planKind=f"PLAN_KIND_{plan_kind}")
            day, n = plus_months(day, every) - self.days(0, 10), n + 1
        return n

    def case(self) -> CaseJson:
        """The case with each fact list in date order (ids keep the order they were written in)."""
        doc = self._builder.build()
        for value in doc.values():
            if isinstance(value, list):
                value.sort(key=lambda fact: fact["date"])
        return doc

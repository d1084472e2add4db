"""The slow-burn life course: steady concerns over years, short tenures, assessments abandoned or never done.

Drawn over wide ranges (`SlowBurnDraws`) and written from the domain (`SlowBurnWriter`), never
from rulesets: `lifecourse.slow_burn` wraps it and dates when its pattern becomes visible.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from dateutil.relativedelta import relativedelta

from rules_engine.tools.lifecourse_kit import (
    CSC,
    LATEST_END,
    REFERRAL_SOURCE,
    Course,
    plus_months,
    random_day,
    wd,
)
from rules_engine.tools.synth import CaseJson

_CONCERN_AGENCIES = (
    "POLICE",
    "EDUCATION",
    "GP",
    "HEALTH_VISITOR",
    "HOSPITAL",
    "HOUSING",
    "MENTAL_HEALTH",
    "EARLY_YEARS",
    "SCHOOL_NURSE",
    "FAMILY_OR_PUBLIC",
    "ANONYMOUS",
)
_CATEGORIES = (
    ("NEGLECT", 30),
    ("HOME_CONDITIONS", 15),
    ("DOMESTIC_ABUSE", 20),
    ("PARENTAL_MENTAL_HEALTH", 8),
    ("PARENTAL_SUBSTANCE_MISUSE", 7),
    ("SCHOOL_ABSENCE", 8),
    ("EMOTIONAL_ABUSE", 5),
    ("INJURY", 4),
    ("PHYSICAL_ABUSE", 3),
)
# Parental factor a concern's category may lead another agency to record.
_FACTOR_OF = {"DOMESTIC_ABUSE": ("3B",), "PARENTAL_MENTAL_HEALTH": ("4B",), "PARENTAL_SUBSTANCE_MISUSE": ("2B", "1B")}
# CIN census primary need N1 (abuse or neglect) for these; N5 (family dysfunction) otherwise.
_ABUSE_OR_NEGLECT = frozenset(("NEGLECT", "PHYSICAL_ABUSE", "EMOTIONAL_ABUSE", "INJURY", "DOMESTIC_ABUSE"))
_FACTOR_AGENCIES = ("POLICE", "HEALTH", "GP", "MENTAL_HEALTH", "SUBSTANCE_MISUSE_SERVICE")
_HOSTILITY_RATES = {"none": (0.0, 0.0), "rare": (0.2, 0.6), "occasional": (0.7, 1.8), "frequent": (2.0, 4.0)}
_HOSTILE_KINDS = (
    ("THREAT_TO_STAFF", 30),
    ("REFUSED_ACCESS", 30),
    ("CANCELLED_VISIT", 25),
    ("COMPLAINT_ABOUT_WORKER", 15),
)
_PCCHAN_SHARE = {"none": 0.0, "rare": 0.15, "occasional": 0.25, "frequent": 0.4}
_CHANGE_REASONS = ("WORKER_LEFT", "CASELOAD", "TEAM_TRANSFER", "SICKNESS")
ASSESSMENT_PATTERNS = ("abandoned", "never-started", "one-early")
HOSTILITY = tuple(_HOSTILITY_RATES)


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


@dataclass
class SlowBurnDraws:
    """A slow burn's parameters (`params` in the LifeCourse, dates as text).

    Rates are a year. `concern_rate` counts concerns about this child or the household;
    `sibling_concern_rate` comes on top. `explicit_child_subject`: concerns about the child
    say subject CHILD rather than leaving it empty (both mean the child).
    """

    seed: int
    start: dt.date
    end: dt.date
    age_at_start: int
    concern_rate: float
    agencies: list[str]
    significant_harm_share: float
    household_share: float
    siblings: int
    sibling_concern_rate: float
    tenure_months: float
    hostility: str
    hostility_rate: float
    assessment_pattern: str
    referral_share: float
    no_further_action_share: float
    closures: int
    protection_episodes: int
    absent_agency: str | None
    chronology: str
    explicit_child_subject: bool
    appointments_per_year: float
    attendance: float

    @classmethod
    def draw(cls, seed: int, rng: random.Random) -> SlowBurnDraws:
        start = random_day(rng, dt.date(1998, 1, 1), dt.date(2016, 12, 31))
        years = rng.uniform(6, min(18.0, (LATEST_END - start).days / 365.25))
        end = min(LATEST_END, start + dt.timedelta(days=round(years * 365.25)))
        hostility = rng.choice(HOSTILITY)
        low, high = _HOSTILITY_RATES[hostility]
        protection = rng.random() < 0.5
        siblings = 0 if rng.random() < 0.4 else rng.randint(1, 4)
        concern_rate = round(rng.uniform(2, 20), 1)
        age = rng.randint(0, 10)
        # The agency that keeps missing conferences; a school only for a child already at school.
        missing = ("HEALTH", "GP", "EDUCATION") if age >= 5 else ("HEALTH", "GP")
        return cls(
            seed=seed,
            start=start,
            end=end,
            age_at_start=age,
            concern_rate=concern_rate,
            agencies=rng.sample(_CONCERN_AGENCIES, rng.randint(3, 6)),
            significant_harm_share=round(rng.uniform(0.03, 0.15), 3),
            household_share=round(rng.uniform(0.05, 0.25), 3),
            siblings=siblings,
            sibling_concern_rate=round(concern_rate * rng.uniform(0.1, 0.4), 2) if siblings else 0.0,
            tenure_months=round(rng.uniform(1, 18), 1),
            hostility=hostility,
            hostility_rate=round(rng.uniform(low, high), 2),
            assessment_pattern=rng.choice(ASSESSMENT_PATTERNS),
            referral_share=round(rng.uniform(0.12, 0.35), 3),
            no_further_action_share=round(rng.uniform(0.4, 0.8), 3),
            closures=0 if rng.random() < 0.5 else rng.randint(1, 3),
            protection_episodes=rng.randint(1, 3) if protection else 0,
            absent_agency=rng.choice(missing) if protection and rng.random() < 0.6 else None,
            chronology=rng.choice(("never", "one-early")),
            explicit_child_subject=rng.random() < 0.5,
            appointments_per_year=round(rng.uniform(0.5, 4), 2),
            attendance=round(rng.uniform(0.5, 0.9), 2),
        )

    def params(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        out["length_years"] = round((self.end - self.start).days / 365.25, 2)
        return out


class SlowBurnWriter:
    """Writes one slow burn: steady concerns, referrals and closures, drifting oversight."""

    def __init__(self, p: SlowBurnDraws, case_id: str, rng: random.Random) -> None:
        self.p = p
        self.rng = rng
        birth = p.start - relativedelta(years=p.age_at_start) - dt.timedelta(days=rng.randint(0, 360))
        self.c = Course(rng, case_id, p.end, birth)
        self.open_periods: list[tuple[dt.date, dt.date | None]] = []
        self.plans: list[tuple[dt.date, dt.date]] = []
        self.open_factors: dict[str, dt.date | None] = {}
        self.partner: tuple[str, dt.date] | None = None
        self.last_assessment: dt.date | None = None
        self.assessment_gap = rng.uniform(2, 5)

    def poisson_days(self, rate: float, first: dt.date | None = None) -> list[dt.date]:
        """Days of a steady Poisson process of `rate` a year over the course."""
        days = [first] if first else []
        day = first or self.p.start
        while rate > 0:
            day += dt.timedelta(days=max(1, round(self.rng.expovariate(rate / 365.25))))
            if day > self.p.end:
                return days
            days.append(day)
        return days

    def write(self) -> CaseJson:
        p = self.p
        if self.c.chance(0.4):
            joined = random_day(self.rng, p.start, p.start + (p.end - p.start) / 2)
            member = self.c.add("householdMembers", joined, relationship="PARTNER_OF_PARENT")
            self.partner = (member, joined) if member else None
        concern_days = self.poisson_days(p.concern_rate, p.start)
        episodes = self.protection_starts(concern_days)
        closure_targets = self.closure_targets()
        open_since: dt.date | None = None
        closed_on = p.start
        for i, day in enumerate(concern_days):
            agency = p.agencies[i] if i < 3 else self.rng.choice(p.agencies)
            if i in episodes:
                agency = self.rng.choice(("POLICE", "HOSPITAL", "GP"))
            category = self.concern(day, agency, i in episodes or self.c.chance(p.significant_harm_share))
            in_plan = any(a <= day <= b for a, b in self.plans)
            referral = open_since is None or i in episodes or self.c.chance(p.referral_share)
            if not referral or in_plan or (open_since is None and day <= closed_on and i > 0):
                continue  # logged on the open case, or while it was being closed
            open_since = open_since or day
            assessment = self.assessment(day, category)
            nfa = assessment is None and i not in episodes and self.c.chance(p.no_further_action_share)
            self.c.add(
                "referrals",
                day,
                source=REFERRAL_SOURCE.get(agency, "8"),
                decidedOn=day if self.c.chance(0.7) else wd(day, 1),
                noFurtherAction=nfa,
                primaryNeed="N1" if category in _ABUSE_OR_NEGLECT else "N5",
                assessmentId=assessment,
            )
            if i in episodes:
                self.protection_episode(day)
            elif nfa and closure_targets and day >= closure_targets[0]:
                closure_targets.pop(0)
                closed_on = day + self.c.days(3, 30)
                if closed_on <= p.end:
                    self.c.add("closures", closed_on, reason=self.rng.choice(("RC8", "RC9")))
                    self.open_periods.append((open_since, closed_on))
                    open_since = None
        if open_since is not None:
            self.open_periods.append((open_since, None))
        self.sibling_concerns()
        self.allocations()
        self.visits()
        self.hostility()
        self.records()
        self.appointments()
        self.school()
        return self.c.case()

    def assessment(self, referred: dt.date, category: str) -> str | None:
        """The assessment a referral leads to, if any: under "abandoned" one started (never
        completed) every 2-5 years; under "one-early" the first referral's, completed in time."""
        pattern, last = self.p.assessment_pattern, self.last_assessment
        started = wd(referred, self.rng.randint(0, 3))
        if pattern == "abandoned" and (last is None or (referred - last).days > self.assessment_gap * 365.25):
            self.last_assessment, self.assessment_gap = referred, self.rng.uniform(2, 5)
            return self.c.add("assessments", started)
        if pattern == "one-early" and last is None:
            self.last_assessment = referred
            factors = {self.rng.choice(_FACTOR_OF.get(category, ("16A",)))} | (
                {"16A"} if category == "NEGLECT" else set()
            )
            done = wd(started, self.rng.randint(15, 40))
            return self.c.add("assessments", started, completedOn=done, factors=sorted(factors), childSeen=True)
        return None

    def concern(self, day: dt.date, agency: str, harm: bool) -> str:
        """A concern about this child (or the household); perhaps a factor recorded by another agency."""
        category = _weighted(self.rng, _CATEGORIES)
        if category == "SCHOOL_ABSENCE" and self.c.age(day) < 5:
            category = "NEGLECT"
        household = self.c.chance(self.p.household_share)
        seen = self.rng.choices((True, False, None), (45, 30, 25))[0]
        named: tuple[str, ...] = ()
        if self.partner and category == "DOMESTIC_ABUSE" and day >= self.partner[1] and self.c.chance(0.6):
            named = (self.partner[0],)
        self.c.add(
            "concerns",
            day,
            agency=agency,
            category=category,
            significantHarm=harm,
            childSeen=seen,
            subject="HOUSEHOLD" if household else ("CHILD" if self.p.explicit_child_subject else None),
            householdMemberIds=list(named) or None,
        )
        options = _FACTOR_OF.get(category)
        if options:
            factor = self.rng.choice(options)
            ended = self.open_factors.get(factor, day)
            still_present = factor in self.open_factors and (ended is None or ended > day)
            if not still_present and self.c.chance(0.35):
                by = agency if agency in _FACTOR_AGENCIES else self.rng.choice(("POLICE", "HEALTH"))
                ended = day + self.c.days(180, 1100) if self.c.chance(0.3) else None
                self.c.add("recordedFactors", day, factor=factor, agency=by, endDate=ended)
                self.open_factors[factor] = ended
        return category

    def protection_starts(self, concern_days: list[dt.date]) -> set[int]:
        """Concerns (by index) that start a child protection episode, far enough apart that one
        episode's plan has ended before the next begins."""
        starts: set[int] = set()
        if not self.p.protection_episodes:
            return starts
        candidates = [i for i, d in enumerate(concern_days) if d >= self.p.start + dt.timedelta(days=180)]
        self.rng.shuffle(candidates)
        for i in candidates:
            if len(starts) == self.p.protection_episodes:
                break
            if all(abs((concern_days[i] - concern_days[j]).days) > 900 for j in starts):
                starts.add(i)
        return starts

    def closure_targets(self) -> list[dt.date]:
        """Dates after which the next no-further-action referral closes the case."""
        span = (self.p.end - self.p.start).days
        return sorted(self.p.start + dt.timedelta(days=self.rng.randint(180, span)) for _ in range(self.p.closures))

    def protection_episode(self, day: dt.date) -> None:
        """Strategy discussion, S47, initial conference, plan, review conferences, core groups."""
        c, rng = self.c, self.rng
        sd = wd(day, rng.randint(0, 1))
        c.add("strategyDiscussions", sd, agencies=[CSC, "POLICE", "HEALTH"], section47Started=True)
        c.add("section47Enquiries", sd, completedOn=wd(sd, rng.randint(5, 12)))
        icpc = wd(sd, rng.randint(16, 30) if c.chance(0.2) else rng.randint(8, 15))
        length = rng.randint(6, 24)
        plan_end = plus_months(icpc, length)
        reviews = [plus_months(icpc, 3) + c.days(-14, 45 if c.chance(0.15) else 0)]
        while plus_months(reviews[-1], 6) < plan_end:
            reviews.append(plus_months(reviews[-1], 6) + c.days(-14, 45 if c.chance(0.15) else 0))
        plan_end = reviews[-1] if len(reviews) > 1 else plan_end
        c.add("plans", icpc, kind="PLAN_KIND_CHILD_PROTECTION", category="NEG", endDate=plan_end)
        self.plans.append((day, plan_end))
        for n, conference in enumerate([icpc, *reviews]):
            if conference > plan_end:
                break
            kind, notice = ("INITIAL", 2) if n == 0 else ("REVIEW", 5)
            self.protection_conference(conference, kind, notice)
        group = wd(icpc, rng.randint(6, 14))
        while group < plan_end:
            c.add("coreGroups", group, agencies=[CSC, "HEALTH", "POLICE"])
            group += c.days(28, 75)

    def protection_conference(self, day: dt.date, kind: str, notice: int) -> None:
        young = self.c.age(day) < 5
        agencies = ("POLICE", "HEALTH", "GP", "HEALTH_VISITOR" if young else "EDUCATION")
        parts: list[dict[str, Any]] = []
        for agency in agencies:
            due = wd(day, -notice)
            part: dict[str, Any] = {"agency": agency, "reportDueOn": due.isoformat()}
            persistent = agency == self.p.absent_agency and self.c.chance(0.85)
            if not persistent:
                part["attended"] = self.c.chance(0.9)
                if part["attended"] or self.c.chance(0.7):
                    part["reportReceivedOn"] = wd(due, self.rng.randint(-2, 1)).isoformat()
            parts.append(part)
        self.c.add("conferences", day, kind=f"CONFERENCE_KIND_{kind}", agencies=parts)

    def sibling_concerns(self) -> None:
        for day in self.poisson_days(self.p.sibling_concern_rate):
            sibling = f"{self.c.case_id}-sib{self.rng.randint(1, self.p.siblings)}"
            self.c.add(
                "concerns",
                day,
                agency=self.rng.choice(self.p.agencies),
                category=_weighted(self.rng, _CATEGORIES),
                subject="SIBLING",
                subjectChildId=sibling if self.c.chance(0.8) else None,
            )

    def allocations(self) -> None:
        """A chain of short allocations over each open period; the last ends when the case closes."""
        mean = self.p.tenure_months * 30.44
        for opened, closed in self.open_periods:
            spans: list[tuple[dt.date, dt.date | None, str]] = []
            day, reason = opened, "NEW_CASE"
            while True:
                step = dt.timedelta(days=max(21, round(mean * self.rng.uniform(0.5, 1.5))))
                following = day + step
                if following > (closed or self.p.end):
                    spans.append((day, closed, reason))
                    break
                spans.append((day, following, reason))
                day = following
                pcchan = self.c.chance(_PCCHAN_SHARE[self.p.hostility])
                reason = "PCCHAN" if pcchan else self.rng.choice(_CHANGE_REASONS)
            self.c.allocate(spans)

    def visits(self) -> None:
        """Irregular visits while the case is open, closer together (not regular) under a plan."""
        hostile = self.p.hostility_rate / 10
        for opened, closed in self.open_periods:
            day = opened + self.c.days(3, 30)
            while day <= (closed or self.p.end):
                no_access = self.c.chance(0.06 + hostile)
                seen = not no_access and self.c.chance(0.8)
                alone = seen and self.c.age(day) >= 4 and self.c.chance(0.2)
                self.c.add("visits", day, childSeen=seen, seenAlone=alone, noAccess=no_access)
                in_plan = any(a <= day <= b for a, b in self.plans)
                day += self.c.days(8, 40) if in_plan else self.c.days(15, 120)

    def hostility(self) -> None:
        """Hostility spread out at a steady rate (never a burst): each event in its own slot."""
        if not self.p.hostility_rate:
            return
        slot = 365.25 / self.p.hostility_rate
        n = 0
        while True:
            day = self.p.start + dt.timedelta(days=round(slot * (n + self.rng.uniform(0.15, 0.85))))
            if day > self.p.end:
                return
            kind = _weighted(self.rng, _HOSTILE_KINDS)
            self.c.add("engagementEvents", day, kind=kind)
            if kind == "REFUSED_ACCESS":
                self.c.add("visits", day, noAccess=True)
            n += 1

    def records(self) -> None:
        """Chronology never kept, or one early update then none; summaries rarely."""
        if self.p.chronology == "one-early":
            self.c.add("recordUpdates", self.p.start + self.c.days(30, 270), kind="CHRONOLOGY")
        for opened, _ in self.open_periods:
            if self.c.chance(0.2):
                self.c.add("recordUpdates", opened + self.c.days(5, 60), kind="CASE_SUMMARY")

    def appointments(self) -> None:
        for day in self.poisson_days(self.p.appointments_per_year):
            attended = self.c.chance(self.p.attendance)
            agency = self.rng.choice(("HEALTH", "GP", "HOSPITAL"))
            self.c.add(
                "appointments",
                day,
                agency=agency,
                attended=attended,
                wasNotBrought=not attended and self.c.chance(0.85),
            )

    def school(self) -> None:
        """Two attendance returns a school year while the child is of school age."""
        for year in range(self.p.start.year, self.p.end.year + 1):
            for month, day in ((12, 15), (4, 20)):
                when = dt.date(year, month, day) + self.c.days(-5, 5)
                if self.p.start <= when <= self.p.end and 5 <= self.c.age(when) <= 16:
                    percent = round(self.rng.uniform(72, 97), 1)
                    self.c.add(
                        "schoolAttendance", when, attendancePercent=percent, missingEducation=self.c.chance(0.03)
                    )

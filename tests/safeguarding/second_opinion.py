"""A second opinion on the safeguarding catalogue: cases written from issue 13 and the domain
reference alone, by someone who has not read the rules or the project's own generators.

Three sources of proto3-JSON `Case` documents (camelCase keys, enum names as strings):

- `agnes_timeline()`: one 18-year timeline of the serious case review's shape;
- `slow_burn_courses(n, seed)`: life courses of varied shapes, each with the month end on which
  the pattern becomes visible, decided by `pattern_visible_on` from the facts alone;
- `control_courses(n, seed)`: ordinary, well-managed work of six kinds, run to the timescales of
  the domain reference (with slack, so a day's rounding never makes a control late).

Everything is seeded; nothing here looks at a rule.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

D = dt.date
DAY = dt.timedelta(days=1)

CONTROL_KINDS = (
    "protection-plan-closed",
    "short-cin",
    "disabled-child-appointments",
    "large-sibling-group",
    "moved-in",
    "long-open-stable",
)


# --- dates ----------------------------------------------------------------------------------


def add_days(day: D, n: float) -> D:
    return day + dt.timedelta(days=round(n))


def add_working_days(day: D, n: int) -> D:
    """`n` Monday-to-Friday days after `day` (bank holidays ignored: callers leave slack)."""
    while n > 0:
        day += DAY
        if day.weekday() < 5:
            n -= 1
    return day


def next_working_day(day: D) -> D:
    while day.weekday() >= 5:
        day += DAY
    return day


def month_end(day: D) -> D:
    following = D(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - DAY


def month_ends(first: D, last: D) -> Iterator[D]:
    day = month_end(first)
    while day <= last:
        yield day
        day = month_end(day + DAY)


def years_after(day: D, years: int) -> D:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _d(text: str | None) -> D | None:
    return D.fromisoformat(text) if text else None


# --- building a case ------------------------------------------------------------------------


class CaseBuilder:
    """Accumulates facts as proto3 JSON; ids are `<prefix><n>`, dates ISO strings, and fields
    passed as None are left out (proto3 JSON omits defaults)."""

    PREFIX = {
        "concerns": "c",
        "referrals": "r",
        "assessments": "a",
        "strategyDiscussions": "sd",
        "section47Enquiries": "s47-",
        "conferences": "cf",
        "coreGroups": "cg",
        "plans": "p",
        "visits": "v",
        "allocations": "w",
        "missedAppointments": "m",
        "schoolAttendance": "sa",
        "engagementEvents": "e",
        "closures": "cl",
        "recordUpdates": "ru",
        "householdMembers": "hm",
        "recordedFactors": "rf",
        "appointments": "ap",
        "planReviews": "pr",
        "transfers": "t",
    }

    def __init__(self, case_id: str, birth: D) -> None:
        self.doc: dict[str, Any] = {"caseId": case_id, "child": {"birthDate": birth.isoformat()}}
        self.birth = birth
        self.counts: dict[str, int] = {}

    def add(self, fact_type: str, date: D, /, **fields: Any) -> str:
        n = self.counts.get(fact_type, 0) + 1
        self.counts[fact_type] = n
        fact_id = f"{self.PREFIX[fact_type]}{n}"
        fact: dict[str, Any] = {"id": fact_id, "date": date.isoformat()}
        for key, value in fields.items():
            if value is None:
                continue
            fact[key] = value.isoformat() if isinstance(value, D) else value
        self.doc.setdefault(fact_type, []).append(fact)
        return fact_id

    def set(self, kind: str, fact_id: str, **fields: Any) -> None:
        for fact in self.doc.get(kind, []):
            if fact["id"] == fact_id:
                for key, value in fields.items():
                    fact[key] = value.isoformat() if isinstance(value, D) else value

    def age(self, day: D) -> float:
        return (day - self.birth).days / 365.25

    def conference(self, day: D, kind: str, parts: list[tuple[str, bool, bool]], review: bool) -> str:
        """A conference; `parts` are (agency, attended, report received). Reports are due 2
        working days before an initial conference and 5 before a review (M3), and a received
        report arrives 2 working days before it is due."""
        due = day
        for _ in range(5 if review else 2):
            due -= DAY
            while due.weekday() >= 5:
                due -= DAY
        early = due - dt.timedelta(days=4)
        agencies = []
        for agency, attended, received in parts:
            part: dict[str, Any] = {"agency": agency, "reportDueOn": due.isoformat()}
            if attended:
                part["attended"] = True
            if received:
                part["reportReceivedOn"] = early.isoformat()
            agencies.append(part)
        return self.add("conferences", day, kind=f"CONFERENCE_KIND_{kind}", agencies=agencies)

    def case(self) -> dict[str, Any]:
        for kind in self.PREFIX:
            if kind in self.doc:
                self.doc[kind].sort(key=lambda f: (f["date"], f["id"]))
        return self.doc


@dataclass
class Course:
    case: dict[str, Any]
    start: D
    end: D
    family: str  # "agnes", "slow-burn" or "control"
    kind: str  # the control kind, or the slow-burn archetype
    visible_on: D | None
    params: dict[str, Any] = field(default_factory=dict)


# --- the pattern, as a reviewer would read it -----------------------------------------------
#
# My reading of the review's pattern, from the issue and the reference alone. On a given day
# a reviewer holding only the recorded facts up to that day sees the pattern when all three hold:
#
# 1. Concerns persist over years, not in a burst: concerns about this child (or the household
#    as a whole; concerns about a sibling are the sibling's) fall in at least 3 of the 4
#    one-year periods counted back from the day, and there are at least 6 of them in those
#    4 years. A single bad year, however busy, is not persistence.
# 2. Nothing has been assessed to a conclusion lately: no assessment was completed in the last
#    2 years (none ever, or the last one has lapsed), or an assessment started more than
#    3 months ago is still not completed.
# 3. Nobody holds the whole picture: 3 or more different workers held the case at some time in
#    the last 12 months, or the case had no allocated worker on the day, or no chronology was
#    updated in the last 12 months (never kept, or kept once and left).
#
# Hostility and non-engagement are deliberately not part of it: in the review they were
# occasional, and their absence must not hide the pattern.

YEAR = dt.timedelta(days=365)


def _own_concern_dates(case: dict[str, Any]) -> list[D]:
    return sorted(
        D.fromisoformat(c["date"]) for c in case.get("concerns", []) if c.get("subject", "CHILD") != "SIBLING"
    )


def concerns_persist(concern_dates: list[D], day: D) -> bool:
    years_with = 0
    in_four = 0
    for k in range(4):
        hi, lo = day - k * YEAR, day - (k + 1) * YEAR
        n = sum(1 for c in concern_dates if lo < c <= hi)
        in_four += n
        years_with += n > 0
    return years_with >= 3 and in_four >= 6


def assessment_not_holding(case: dict[str, Any], day: D) -> bool:
    completed = []
    for a in case.get("assessments", []):
        start, done = D.fromisoformat(a["date"]), _d(a.get("completedOn"))
        if start > day:
            continue
        if done is not None and done <= day:
            completed.append(done)
        elif (day - start).days > 91:
            return True  # started more than 3 months ago and still open
    return not completed or (day - max(completed)) > 2 * YEAR


def oversight_fragmented(case: dict[str, Any], day: D) -> bool:
    workers = set()
    allocated_today = False
    for w in case.get("allocations", []):
        start, end = D.fromisoformat(w["date"]), _d(w.get("endDate"))
        if start > day:
            continue
        if end is None or end >= day - YEAR:
            workers.add(w["workerId"])
        if end is None or end >= day:
            allocated_today = True
    chronology = [
        D.fromisoformat(r["date"])
        for r in case.get("recordUpdates", [])
        if r["kind"] == "CHRONOLOGY" and D.fromisoformat(r["date"]) <= day
    ]
    stale = not chronology or (day - max(chronology)) > YEAR
    return len(workers) >= 3 or not allocated_today or stale


def pattern_holds(case: dict[str, Any], day: D) -> bool:
    return (
        concerns_persist(_own_concern_dates(case), day)
        and assessment_not_holding(case, day)
        and oversight_fragmented(case, day)
    )


def pattern_visible_on(case: dict[str, Any], start: D, end: D) -> D | None:
    """The first month end from `start` to `end` on which the pattern holds."""
    return next((day for day in month_ends(start, end) if pattern_holds(case, day)), None)


# --- shared pieces of a history -------------------------------------------------------------

CATEGORIES = ("NEGLECT", "HOME_CONDITIONS", "DOMESTIC_ABUSE", "PARENTAL_MENTAL_HEALTH", "SCHOOL_ABSENCE", "INJURY")
REFERRAL_SOURCE = {
    "POLICE": "6",
    "HEALTH": "3A",
    "GP": "3A",
    "HEALTH_VISITOR": "3B",
    "SCHOOL_NURSE": "3C",
    "HOSPITAL": "3D",
    "EDUCATION": "2A",
    "EARLY_YEARS": "2B",
    "HOUSING": "4",
    "FAMILY_OR_PUBLIC": "1B",
    "ANONYMOUS": "9",
    "PROBATION": "8",
}


def steady_dates(rng: random.Random, start: D, end: D, per_year: float) -> list[D]:
    """Dates at a steady rate: even spacing with a jitter of a quarter of the gap, never a burst."""
    gap = 365.25 / per_year
    days, t = [], rng.uniform(0.2, 1.0) * gap
    while (day := add_days(start, t)) < end:
        days.append(day)
        t += gap * rng.uniform(0.75, 1.25)
    return days


def school_terms(b: CaseBuilder, rng: random.Random, start: D, end: D, low: float, high: float) -> None:
    """Termly attendance once the child is of school age."""
    for year in range(start.year, end.year + 1):
        for month, day in ((12, 18), (4, 1), (7, 20)):
            when = D(year, month, day)
            if start <= when <= end and b.age(when) >= 5.2:
                b.add("schoolAttendance", when, attendancePercent=round(rng.uniform(low, high), 1))


# --- 1. the Agnes-shaped timeline -----------------------------------------------------------

AGNES_START = D(1999, 1, 4)
AGNES_END = D(2016, 12, 31)


def _agnes_agency(b: CaseBuilder, day: D, n: int) -> str:
    young = b.age(day) < 5
    pool = (
        ("HEALTH_VISITOR", "POLICE", "EARLY_YEARS", "HOUSING", "GP", "HOSPITAL")
        if young
        else ("SCHOOL_NURSE", "POLICE", "EDUCATION", "HOUSING", "GP", "HOSPITAL")
    )
    return pool[n % len(pool)]


def _agnes_workers_and_hostility(b: CaseBuilder, rng: random.Random, start: D, end: D) -> None:
    # Workers: tenures of 6 to 10 months, contiguous; once a parent-requested change after three
    # months (the only place three allocations start inside one year).
    day, n, reasons = start, 0, ("WORKER_LEFT", "CASELOAD", "TEAM_TRANSFER", "SICKNESS")
    while day <= end:
        n += 1
        months = 3 if n == 14 else rng.uniform(6.3, 10)
        stop = add_days(day, months * 30.44)
        reason = "NEW_CASE" if n == 1 else ("PCCHAN" if n == 15 else reasons[n % len(reasons)])
        b.add(
            "allocations",
            day,
            endDate=stop if stop < end else None,
            workerId=f"agnes-wk-{n:02d}",
            changeReason=reason,
        )
        day = stop + DAY

    # Hostility once or twice a year: threats to staff, refused access (a no-access visit).
    for year in range(start.year, end.year + 1):
        for k in range(rng.choice((1, 2))):
            when = D(year, 1, 15) + dt.timedelta(days=rng.randrange(0, 330))
            if not start < when <= end:
                continue
            if (year + k) % 2:
                b.add("engagementEvents", when, kind="THREAT_TO_STAFF")
            else:
                b.add("engagementEvents", when, kind="REFUSED_ACCESS")
                b.add("visits", when, noAccess=True)


def agnes_timeline() -> tuple[dict[str, Any], D, dict[str, D | None]]:
    """An 18-year timeline of the review's shape (see the issue's second paragraph).

    Returns the case, the date to evaluate it as of (its last day) and, per feature, the first
    date from which the facts show it."""
    rng = random.Random(2011)
    start, end = AGNES_START, AGNES_END
    b = CaseBuilder("agnes-second-opinion", D(1997, 11, 20))
    b.add("householdMembers", D(1999, 1, 4), relationship="MOTHER", checksCompleted=True, engaged=True)
    b.add("householdMembers", D(2004, 6, 1), relationship="PARTNER_OF_PARENT")

    # Concerns: about ten a year, evenly spaced, from six agencies; a third become referrals,
    # decided the next working day, almost all with no further action.
    concern_days = steady_dates(rng, start, end, 10.5)
    for n, day in enumerate(concern_days):
        agency = _agnes_agency(b, day, n)
        b.add(
            "concerns",
            day,
            agency=agency,
            category=CATEGORIES[n % len(CATEGORIES)],
            childSeen=rng.random() < 0.45,
        )
        if n % 3 == 0:
            b.add(
                "referrals",
                day,
                source=REFERRAL_SOURCE[agency],
                decidedOn=next_working_day(day + DAY),
                noFurtherAction=True,
                primaryNeed="N1",
            )

    # Assessments: one completed early, one completed with harm factors only, one completed late
    # and inconsistent (no factors found), three started and never completed.
    assessments = [
        (D(1999, 2, 8), D(1999, 3, 19), ["16A", "4B"]),
        (D(2002, 2, 12), D(2002, 4, 22), ["16A"]),
        (D(2005, 3, 7), None, []),
        (D(2008, 9, 16), D(2009, 3, 30), ["21"]),
        (D(2011, 6, 6), None, []),
        (D(2015, 3, 3), None, []),
    ]
    for day, done, factors in assessments:
        aid = b.add("assessments", day, completedOn=done, factors=factors or None, childSeen=done is not None)
        b.add(
            "referrals",
            day - DAY,
            source="6",
            decidedOn=day - DAY,
            primaryNeed="N1",
            assessmentId=aid,
        )

    _agnes_workers_and_hostility(b, rng, start, end)

    # Visits: every six to ten weeks, the child seen most times, rarely alone.
    for when in steady_dates(rng, start, end, 6.5):
        seen = rng.random() < 0.7
        b.add("visits", when, childSeen=seen or None, seenAlone=(seen and rng.random() < 0.15) or None)

    # Child protection: three episodes; conferences years apart; HEALTH invited, absent and
    # without a report at every one of them.
    episodes = [
        (D(2002, 2, 11), D(2004, 9, 14), [D(2003, 1, 20), D(2004, 9, 14)]),
        (D(2008, 9, 15), D(2012, 2, 6), [D(2010, 5, 10), D(2012, 2, 6)]),
        (D(2015, 3, 2), None, [D(2016, 2, 1)]),
    ]
    conference_days = []
    for sd_day, plan_end, reviews in episodes:
        b.add(
            "strategyDiscussions",
            sd_day,
            agencies=["CHILDRENS_SOCIAL_CARE", "POLICE", "HEALTH"],
            section47Started=True,
        )
        b.add("concerns", sd_day, agency="POLICE", category="NEGLECT", significantHarm=True)
        b.add("section47Enquiries", sd_day, completedOn=add_working_days(sd_day, 8))
        icpc = add_working_days(sd_day, 12)
        for k, when in enumerate([icpc, *reviews]):
            parts = [
                ("CHILDRENS_SOCIAL_CARE", True, True),
                ("POLICE", True, True),
                ("EDUCATION" if b.age(when) >= 5 else "EARLY_YEARS", True, True),
                ("HEALTH", False, False),
            ]
            b.conference(when, "INITIAL" if k == 0 else "REVIEW", parts, review=k > 0)
            conference_days.append(when)
        b.add("plans", icpc, endDate=plan_end, kind="PLAN_KIND_CHILD_PROTECTION", category="NEG")
        b.add("coreGroups", add_working_days(icpc, 14), agencies=["CHILDRENS_SOCIAL_CARE", "EDUCATION"])

    # Factors recorded by other agencies; missed health appointments; school attendance.
    b.add("recordedFactors", D(2000, 5, 9), factor="3B", agency="POLICE")
    b.add("recordedFactors", D(2001, 10, 2), factor="4B", agency="HEALTH")
    b.add("recordedFactors", D(2006, 3, 14), factor="2B", agency="POLICE")
    for when in steady_dates(rng, start, end, 1.2):
        b.add("missedAppointments", when, agency="HEALTH")
    school_terms(b, rng, start, end, 84, 93)
    # A case summary twice in eighteen years; no chronology ever.
    b.add("recordUpdates", D(2002, 3, 20), kind="CASE_SUMMARY")
    b.add("recordUpdates", D(2008, 10, 20), kind="CASE_SUMMARY")

    case = b.case()
    features = _agnes_features(case, conference_days)
    return case, end, features


def _agnes_features(case: dict[str, Any], conference_days: list[D]) -> dict[str, D | None]:
    """The first date from which each feature of the review's shape is present in the facts."""
    start, end = AGNES_START, AGNES_END
    months = list(month_ends(start, end))
    own = _own_concern_dates(case)
    workers: list[tuple[D, str]] = sorted((D.fromisoformat(w["date"]), w["workerId"]) for w in case["allocations"])
    distinct: list[str] = []
    twenty_first = None
    for day, worker in workers:
        if worker not in distinct:
            distinct.append(worker)
            if len(distinct) == 21:
                twenty_first = day
    plans = [D.fromisoformat(p["date"]) for p in case["plans"] if p["kind"] == "PLAN_KIND_CHILD_PROTECTION"]
    never_completed = [D.fromisoformat(a["date"]) for a in case["assessments"] if not a.get("completedOn")]
    hostility = [D.fromisoformat(e["date"]) for e in case["engagementEvents"]]

    def first_month(test: Any) -> D | None:
        return next((day for day in months if test(day)), None)

    def three_workers(day: D) -> bool:
        held = {
            w["workerId"]
            for w in case["allocations"]
            if D.fromisoformat(w["date"]) <= day and w.get("endDate", "9999-12-31") >= (day - YEAR).isoformat()
        }
        return len(held) >= 3

    return {
        "concerns at a steady rate (first concern)": own[0],
        "concerns persisting over years (part 1)": first_month(lambda d: concerns_persist(own, d)),
        "assessment started and never completed": min(never_completed),
        "no completed assessment, or one open > 3 months (part 2)": first_month(
            lambda d: assessment_not_holding(case, d)
        ),
        "3+ workers held the case within 12 months": first_month(three_workers),
        "more than twenty different workers": twenty_first,
        "hostility (first threat or refused access)": min(hostility),
        "HEALTH absent without report at a conference": conference_days[0],
        "HEALTH absent without report at 2 of its last 3": sorted(conference_days)[1],
        "child protection plan open": min(plans),
        "CP plan open 2 years": years_after(min(plans), 2),
        "no chronology ever kept": start,
        "pattern visible (second-opinion definition)": pattern_visible_on(case, start, end),
    }


# --- 2. slow-burn life courses --------------------------------------------------------------

ARCHETYPES = (
    "quiet",  # 2-4 concerns a year
    "no-hostility",
    "stable-worker-no-chronology",  # tenures of 12-18 months, never a chronology
    "churn-with-chronology",  # tenures of 1-4 months, a chronology kept once
    "mixed",
    "mixed",
    "mixed",
    "mixed",
)
HOSTILITY_PER_YEAR = {"none": 0.0, "rare": 0.4, "occasional": 1.5, "frequent": 5.0}
AGENCY_POOL = ("POLICE", "HEALTH", "GP", "EDUCATION", "HOUSING", "HOSPITAL", "HEALTH_VISITOR", "FAMILY_OR_PUBLIC")


def _slow_burn_params(rng: random.Random, archetype: str) -> dict[str, Any]:
    age = rng.randint(0, 10)
    years = min(rng.randint(6, 18), 17 - age)
    if years < 6:
        age, years = rng.randint(0, 3), rng.randint(6, 14)
    start_year = rng.randint(1998, min(2014, 2025 - years))
    params: dict[str, Any] = {
        "archetype": archetype,
        "age_at_start": age,
        "years": years,
        "start": D(start_year, rng.randint(1, 12), rng.randint(1, 28)),
        "concerns_per_year": round(rng.uniform(2, 20), 1),
        "tenure_months": round(rng.uniform(1, 18), 1),
        "hostility": rng.choice(tuple(HOSTILITY_PER_YEAR)),
        "assessments": rng.choice(("never", "abandoned", "one-early")),
        "conferences": rng.choice(("none", "absent-agency", "all-attend")),
        "chronology": rng.choice(("never", "once")),
        "agencies": rng.sample(AGENCY_POOL, rng.randint(3, 6)),
    }
    if archetype == "quiet":
        params["concerns_per_year"] = round(rng.uniform(2, 4), 1)
    elif archetype == "no-hostility":
        params["hostility"] = "none"
    elif archetype == "stable-worker-no-chronology":
        params["tenure_months"] = round(rng.uniform(12, 18), 1)
        params["chronology"] = "never"
    elif archetype == "churn-with-chronology":
        params["tenure_months"] = round(rng.uniform(1, 4), 1)
        params["chronology"] = "once"
    return params


def _slow_burn_case(case_id: str, rng: random.Random, p: dict[str, Any]) -> tuple[dict[str, Any], D, D]:
    start: D = p["start"]
    end = years_after(start, p["years"])
    b = CaseBuilder(case_id, years_after(start, -p["age_at_start"]) - dt.timedelta(days=rng.randrange(0, 300)))
    b.add("householdMembers", start, relationship="MOTHER", checksCompleted=True, engaged=rng.random() < 0.5)

    # Concerns at a steady rate from the course's agencies; one in four becomes a referral.
    for n, day in enumerate(steady_dates(rng, start, end, p["concerns_per_year"])):
        agency = p["agencies"][n % len(p["agencies"])]
        b.add(
            "concerns",
            day,
            agency=agency,
            category=rng.choice(CATEGORIES),
            childSeen=rng.random() < 0.5,
            subject="HOUSEHOLD" if rng.random() < 0.1 else None,
        )
        if rng.random() < 0.25:
            b.add(
                "referrals",
                day,
                source=REFERRAL_SOURCE[agency],
                decidedOn=add_working_days(day, rng.randint(0, 3)),
                noFurtherAction=rng.random() < 0.8,
                primaryNeed="N1",
            )

    # Assessments: never started; started every two to three years and abandoned; or one
    # completed in the first months and none after.
    if p["assessments"] == "abandoned":
        day = add_days(start, rng.uniform(60, 400))
        while day < end:
            aid = b.add("assessments", day)
            b.add("referrals", day - DAY, source="6", decidedOn=day - DAY, primaryNeed="N1", assessmentId=aid)
            day = add_days(day, rng.uniform(700, 1100))
    elif p["assessments"] == "one-early":
        day = add_days(start, rng.uniform(20, 150))
        aid = b.add(
            "assessments", day, completedOn=add_working_days(day, rng.randint(20, 40)), factors=["16A"], childSeen=True
        )
        b.add("referrals", day - DAY, source="6", decidedOn=day - DAY, primaryNeed="N1", assessmentId=aid)

    # Workers: tenures drawn around the course's typical tenure, now and then a short gap.
    day, n = start, 0
    while day <= end:
        n += 1
        stop = add_days(day, max(20.0, p["tenure_months"] * 30.44 * rng.uniform(0.7, 1.3)))
        reason = "NEW_CASE" if n == 1 else rng.choice(("WORKER_LEFT", "CASELOAD", "TEAM_TRANSFER", "PCCHAN"))
        b.add(
            "allocations", day, endDate=stop if stop < end else None, workerId=f"{case_id}-wk{n}", changeReason=reason
        )
        day = stop + dt.timedelta(days=1 if rng.random() < 0.8 else rng.randint(5, 20))

    # Hostility and non-engagement at the course's rate, evenly spread.
    rate = HOSTILITY_PER_YEAR[p["hostility"]]
    kinds = ("THREAT_TO_STAFF", "REFUSED_ACCESS", "CANCELLED_VISIT", "COMPLAINT_ABOUT_WORKER")
    if rate:
        for k, when in enumerate(steady_dates(rng, start, end, rate)):
            b.add("engagementEvents", when, kind=kinds[k % len(kinds)])
            if kinds[k % len(kinds)] == "REFUSED_ACCESS":
                b.add("visits", when, noAccess=True)

    for when in steady_dates(rng, start, end, rng.uniform(4, 10)):
        seen = rng.random() < 0.75
        b.add("visits", when, childSeen=seen or None, seenAlone=(seen and rng.random() < 0.3) or None)

    if p["conferences"] != "none":
        _slow_burn_protection(b, rng, p, start, end)
    if p["chronology"] == "once":
        b.add("recordUpdates", add_days(start, rng.uniform(30, 500)), kind="CHRONOLOGY")
    if rng.random() < 0.6:
        b.add(
            "recordedFactors",
            add_days(start, rng.uniform(0, 700)),
            factor=rng.choice(("3B", "4B", "2B")),
            agency="POLICE",
        )
    school_terms(b, rng, start, end, 82, 96)
    return b.case(), start, end


def _slow_burn_protection(b: CaseBuilder, rng: random.Random, p: dict[str, Any], start: D, end: D) -> None:
    """One or two child protection episodes; reviews on time or late; in "absent-agency" courses
    one agency is invited, absent and without a report at nearly every conference."""
    absent = rng.choice(("HEALTH", "EDUCATION", "GP", "POLICE"))
    p["absent_agency"] = absent if p["conferences"] == "absent-agency" else None
    sd_day = add_days(start, rng.uniform(200, 900))
    for _ in range(rng.randint(1, 2)):
        if sd_day > end - dt.timedelta(days=120):
            break
        b.add("concerns", sd_day, agency="POLICE", category="NEGLECT", significantHarm=True)
        b.add(
            "strategyDiscussions", sd_day, agencies=["CHILDRENS_SOCIAL_CARE", "POLICE", "HEALTH"], section47Started=True
        )
        b.add("section47Enquiries", sd_day, completedOn=add_working_days(sd_day, 7))
        icpc = add_working_days(sd_day, rng.randint(8, 14))
        plan_end = min(add_days(icpc, rng.uniform(300, 1100)), end)
        days, when = [icpc], add_days(icpc, rng.uniform(80, 250))
        while when < plan_end:
            days.append(when)
            when = add_days(when, rng.uniform(170, 500))
        for k, when in enumerate(days):
            parts = [("CHILDRENS_SOCIAL_CARE", True, True)]
            for agency in ("HEALTH", "EDUCATION", "GP", "POLICE"):
                missing = p["absent_agency"] == agency and rng.random() < 0.9
                parts.append((agency, not missing, not missing))
            b.conference(when, "INITIAL" if k == 0 else "REVIEW", parts, review=k > 0)
        b.add(
            "plans",
            icpc,
            endDate=plan_end if plan_end < end else None,
            kind="PLAN_KIND_CHILD_PROTECTION",
            category=rng.choice(("NEG", "EMO", "MUL")),
        )
        for cg in steady_dates(rng, add_days(icpc, 10), plan_end, rng.uniform(2, 8)):
            b.add("coreGroups", cg, agencies=["CHILDRENS_SOCIAL_CARE", "EDUCATION"])
        sd_day = add_days(plan_end, rng.uniform(300, 1500))


def slow_burn_courses(n: int, seed: int) -> list[Course]:
    courses = []
    for i in range(n):
        rng = random.Random(seed * 100_003 + i)
        archetype = ARCHETYPES[i % len(ARCHETYPES)]
        params = _slow_burn_params(rng, archetype)
        case, start, end = _slow_burn_case(f"sb-{seed}-{i:03d}", rng, params)
        visible = pattern_visible_on(case, start, end)
        courses.append(Course(case, start, end, "slow-burn", archetype, visible, params))
    return courses


# --- 3. controls: ordinary, well-managed work -----------------------------------------------
#
# Timescales (domain reference, section 2), each met with slack: referral decided the same day
# (1 WD); assessment completed 20-35 WD from the referral (45); strategy discussion the same day
# as a significant-harm concern; ICPC 8-12 WD after it (15); first core group 6-8 WD after the
# ICPC (10), then every 4 weeks; first review 10-11 weeks after the ICPC (3 months), then every
# 5 months (6); CP visits every 7 WD (10), the child seen and, from age 4, seen alone; reports
# received before they are due; looked-after visits within 5 days of placement, then every
# 5 weeks (reg. 28: 1 week, then 6 weeks); child-in-need visits every 4 weeks, reviews every
# 3 months; a chronology updated within a week of each significant event and every month on a
# plan; a case summary within 5 WD of a new worker.

CP_AGENCIES = ("CHILDRENS_SOCIAL_CARE", "POLICE", "HEALTH", "EDUCATION")


class Control:
    """Helpers that keep a control case to timescale."""

    def __init__(self, b: CaseBuilder, rng: random.Random) -> None:
        self.b, self.rng = b, rng

    def chronology(self, day: D) -> None:
        self.b.add("recordUpdates", add_days(day, self.rng.randint(1, 6)), kind="CHRONOLOGY")

    def allocate(self, workers: list[tuple[D, D | None, str]]) -> None:
        for k, (start, stop, worker) in enumerate(workers):
            self.b.add(
                "allocations",
                start,
                endDate=stop,
                workerId=worker,
                changeReason="NEW_CASE" if k == 0 else "WORKER_LEFT",
            )
            self.b.add("recordUpdates", add_working_days(start, 3), kind="CASE_SUMMARY")

    def referral_and_assessment(self, day: D, agency: str, factors: list[str]) -> D:
        """A referral decided the same day and an assessment completed within 20-35 WD;
        returns the completion date."""
        done = add_working_days(day, self.rng.randint(20, 35))
        aid = self.b.add("assessments", add_days(day, 1), completedOn=done, factors=factors, childSeen=True)
        self.b.add(
            "referrals",
            day,
            source=REFERRAL_SOURCE.get(agency, "8"),
            decidedOn=day,
            primaryNeed="N1",
            assessmentId=aid,
        )
        self.chronology(day)
        self.chronology(done)
        return done

    def visits(self, start: D, end: D, every_days: int, alone_from_age: float = 4) -> None:
        when = start
        while when < end:
            alone = self.b.age(when) >= alone_from_age
            self.b.add("visits", when, childSeen=True, seenAlone=alone or None, bedroomSeen=True)
            when = add_days(when, every_days)

    def protection_run(self, first: D, first_kind: str, months: int, until: D | None = None) -> D:
        """Conferences from `first` (of `first_kind`): a review 10-11 weeks later, then every
        20-22 weeks, the last one (after about `months`) closing the plan; core groups from
        6-8 WD after the first, then every 4 weeks; visits every 7 WD; the chronology updated
        after each conference and every month. With `until`, the plan is still open then (the
        family moves away): conferences before it, work up to it. Returns the plan's end."""
        b, rng = self.b, self.rng
        conference_days = [first, next_working_day(add_days(first, rng.randint(70, 75)))]
        while (conference_days[-1] - first).days < months * 30 or (until and conference_days[-1] < until):
            conference_days.append(next_working_day(add_days(conference_days[-1], rng.randint(140, 150))))
        if until is not None:
            conference_days = [day for day in conference_days if day < until]
        plan_end = until or conference_days[-1]
        for k, when in enumerate(conference_days):
            parts = [(agency, True, True) for agency in CP_AGENCIES]
            b.conference(when, first_kind if k == 0 else "REVIEW", parts, review=k > 0)
            self.chronology(when)
        cg = add_working_days(first, rng.randint(6, 8))
        while cg < plan_end:
            b.add("coreGroups", cg, agencies=list(CP_AGENCIES))
            cg = add_days(cg, 28)
        # Seen for the conference (the S47 or pre-conference visit), then every 7 WD.
        before = first - dt.timedelta(days=3)
        b.add("visits", before, childSeen=True, seenAlone=b.age(before) >= 4 or None, bedroomSeen=True)
        when = add_working_days(first, 1)
        while when < plan_end:
            b.add("visits", when, childSeen=True, seenAlone=b.age(when) >= 4 or None, bedroomSeen=True)
            when = add_working_days(when, 7)
        for month in month_ends(first, plan_end):
            b.add("recordUpdates", month, kind="CHRONOLOGY")
        return plan_end

    def protection_episode(self, concern_day: D, category: str, months: int) -> tuple[D, D]:
        """Concern, same-day strategy discussion, S47, ICPC 8-12 WD later, then `protection_run`;
        returns (ICPC date, plan end)."""
        b, rng = self.b, self.rng
        sd = next_working_day(concern_day)
        b.add("strategyDiscussions", sd, agencies=list(CP_AGENCIES[:3]), section47Started=True)
        b.add("section47Enquiries", add_days(sd, 1), completedOn=add_working_days(sd, 6))
        self.chronology(sd)
        icpc = add_working_days(sd, rng.randint(8, 12))
        plan_end = self.protection_run(icpc, "INITIAL", months)
        b.add("plans", icpc, endDate=plan_end, kind="PLAN_KIND_CHILD_PROTECTION", category=category)
        return icpc, plan_end

    def child_in_need(self, start: D, months: int, visit_days: int = 28) -> D:
        """A child-in-need plan for `months`, visited every 4 weeks, reviewed every 3 months."""
        end = add_days(start, months * 30.44)
        pid = self.b.add("plans", start, endDate=end, kind="PLAN_KIND_CHILD_IN_NEED")
        self.visits(add_working_days(start, 3), end, visit_days)
        review = add_days(start, 80)
        while review <= end:
            self.b.add("planReviews", review, planId=pid, planKind="PLAN_KIND_CHILD_IN_NEED")
            self.chronology(review)
            review = add_days(review, 85)
        return end

    def close(self, day: D, reason: str = "RC7") -> None:
        self.b.add("closures", day, reason=reason)
        self.chronology(day)


def _control_start(rng: random.Random) -> D:
    return next_working_day(D(rng.randint(2012, 2021), rng.randint(1, 12), rng.randint(1, 28)))


def _protection_plan_closed(c: Control, start: D) -> D:
    b, rng = c.b, c.rng
    b.add("householdMembers", start, relationship="MOTHER", checksCompleted=True, engaged=True)
    b.add("concerns", start, agency="POLICE", category="PHYSICAL_ABUSE", significantHarm=True, childSeen=True)
    b.add("recordedFactors", start, factor="3B", agency="POLICE", endDate=add_days(start, 300))
    c.referral_and_assessment(start, "POLICE", ["3B", "18C"])
    _icpc, plan_end = c.protection_episode(start, "PHY", rng.randint(8, 14))
    cin_end = c.child_in_need(plan_end, rng.randint(3, 6))
    # A last assessment before closure finds the factors resolved.
    b.add("assessments", add_days(cin_end, -50), completedOn=add_days(cin_end, -15), factors=["21"], childSeen=True)
    c.allocate([(start, cin_end, f"{b.doc['caseId']}-wk1")])
    c.close(cin_end)
    return cin_end


def _short_cin(c: Control, start: D) -> D:
    b, rng = c.b, c.rng
    b.add("concerns", start, agency="EDUCATION", category="PARENTAL_MENTAL_HEALTH", childSeen=True)
    b.add("recordedFactors", start, factor="4B", agency="HEALTH", endDate=add_days(start, 150))
    done = c.referral_and_assessment(start, "EDUCATION", ["4B"])
    end = c.child_in_need(add_working_days(done, 2), rng.randint(3, 6))
    c.allocate([(start, end, f"{b.doc['caseId']}-wk1")])
    c.close(end, rng.choice(("RC7", "RC9")))
    return end


def _disabled_child(c: Control, start: D) -> D:
    b, rng = c.b, c.rng
    years = rng.randint(2, 5)
    end = years_after(start, years)
    b.add("concerns", start, agency="HEALTH", category="OTHER", childSeen=True)
    c.referral_and_assessment(start, "HEALTH", ["5A"])
    # About 40 appointments a year, nearly all attended; now and then one missed (mostly
    # cancelled by the service, at most one "was not brought" a year).
    last_wnb = start - YEAR
    for when in steady_dates(rng, start, end, rng.uniform(30, 50)):
        agency = rng.choice(("HEALTH", "HOSPITAL", "GP"))
        if rng.random() < 0.04:
            wnb = (when - last_wnb).days > 365
            last_wnb = when if wnb else last_wnb
            b.add("appointments", when, agency=agency, wasNotBrought=wnb or None)
        else:
            b.add("appointments", when, agency=agency, attended=True)
    c.child_in_need(add_days(start, 40), years * 12 - 2)
    for year in range(1, years):  # yearly reassessment
        day = years_after(start, year)
        b.add(
            "assessments", day, completedOn=add_working_days(day, rng.randint(15, 30)), factors=["5A"], childSeen=True
        )
        c.chronology(day)
    school_terms(b, rng, start, end, 91, 98)
    c.allocate([(start, end - DAY, f"{b.doc['caseId']}-wk1")])
    c.close(end - DAY)
    return end - DAY


def _sibling_group(c: Control, start: D) -> D:
    b, rng = c.b, c.rng
    years = rng.randint(2, 4)
    end = years_after(start, years)
    siblings = [f"{b.doc['caseId']}-sib{k}" for k in range(rng.randint(4, 7))]
    b.add("householdMembers", start, relationship="MOTHER", checksCompleted=True, engaged=True)
    for _ in siblings:
        b.add("householdMembers", start, relationship="SIBLING", adult=False, checksCompleted=True, engaged=True)
    # Many contacts, mostly about the siblings; this child's own are few and each assessed.
    for when in steady_dates(rng, start, end, rng.uniform(12, 20)):
        b.add(
            "concerns",
            when,
            agency=rng.choice(("EDUCATION", "HEALTH", "POLICE", "GP")),
            category=rng.choice(("SCHOOL_ABSENCE", "INJURY", "OTHER", "MISSING_FROM_HOME")),
            subject="SIBLING",
            subjectChildId=rng.choice(siblings),
        )
    own = steady_dates(rng, start, end, 1.0)
    for when in own:
        b.add("concerns", when, agency="EDUCATION", category="SCHOOL_ABSENCE", childSeen=True)
        c.referral_and_assessment(when, "EDUCATION", ["21"])
    c.child_in_need(add_days(start, 30), years * 12 - 3)
    school_terms(b, rng, start, end, 92, 98)
    c.allocate([(start, end - DAY, f"{b.doc['caseId']}-wk1")])
    c.close(end - DAY)
    return end - DAY


def _moved_in(c: Control, start: D) -> D:
    """History from another authority, acted on there (assessments completed, a CP plan run and
    closed, a second plan open at transfer), then a transfer-in conference within 15 WD of the
    transfer, reviews to timescale, the plan closed."""
    b, rng = c.b, c.rng
    history_start = years_after(start, -rng.randint(3, 6))
    b.add("householdMembers", history_start, relationship="MOTHER", checksCompleted=True, engaged=True)
    for when in steady_dates(rng, history_start, start, 3):
        b.add(
            "concerns", when, agency=rng.choice(("POLICE", "HEALTH", "EDUCATION")), category="NEGLECT", childSeen=True
        )
        c.chronology(when)  # the other authority kept its chronology
    for year in range(0, (start - history_start).days // 365, 2):
        day = years_after(history_start, year) + dt.timedelta(days=20)
        b.add("assessments", day, completedOn=add_working_days(day, 30), factors=["16A"], childSeen=True)
    first_plan = add_days(history_start, 100)
    first_end = c.protection_run(first_plan, "INITIAL", rng.randint(9, 14))
    b.add("plans", first_plan, endDate=first_end, kind="PLAN_KIND_CHILD_PROTECTION", category="NEG")
    # A second plan, open when the family moves: the other authority's conferences until then.
    previous = add_days(start, -rng.randint(150, 300))
    b.add("plans", previous, endDate=start, kind="PLAN_KIND_CHILD_PROTECTION", category="NEG")
    c.protection_run(previous, "INITIAL", 0, until=start)
    old = [
        (history_start, add_days(history_start, 700), "prev-la-wk1"),
        (add_days(history_start, 701), start - DAY, "prev-la-wk2"),
    ]

    # The move: transfer in with the history, a chronology built from it, a new worker.
    b.add("transfers", start, direction="IN", historyReceived=True)
    c.chronology(start)
    conf = add_working_days(start, rng.randint(8, 12))
    plan_end = c.protection_run(conf, "TRANSFER_IN", rng.randint(9, 14))
    b.add("plans", start, endDate=plan_end, kind="PLAN_KIND_CHILD_PROTECTION", category="NEG")
    when = add_working_days(start, 2)
    while when < conf:  # visits between the move and the transfer-in conference
        b.add("visits", when, childSeen=True, seenAlone=b.age(when) >= 4 or None, bedroomSeen=True)
        when = add_working_days(when, 7)
    b.add("assessments", add_days(start, 5), completedOn=add_working_days(start, 30), factors=["16A"], childSeen=True)
    end = c.child_in_need(plan_end, rng.randint(3, 6))
    school_terms(b, rng, history_start, end, 90, 97)
    c.allocate([*old, (start, end, f"{b.doc['caseId']}-wk1")])
    c.close(end)
    return end


def _long_open_stable(c: Control, start: D) -> D:
    """Open for years: a looked-after child (regulation 28 visits, reviews at 20 days, 3 months,
    then 6-monthly) or a child in need (4-weekly visits, 3-monthly reviews); a worker for three
    or four years at a time; a yearly reassessment; the chronology kept."""
    b, rng = c.b, c.rng
    years = rng.randint(4, 8)
    end = years_after(start, years)
    looked_after = rng.random() < 0.5
    b.add("concerns", start, agency="POLICE", category="NEGLECT", childSeen=True)
    c.referral_and_assessment(start, "POLICE", ["16A"])
    plan_start = add_working_days(start, 40)
    kind = "PLAN_KIND_LOOKED_AFTER" if looked_after else "PLAN_KIND_CHILD_IN_NEED"
    pid = b.add("plans", plan_start, kind=kind)
    c.visits(add_days(plan_start, 4), end, 35 if looked_after else 28)
    reviews = [add_days(plan_start, 18), add_days(plan_start, 85)] if looked_after else [add_days(plan_start, 80)]
    while reviews[-1] < end:
        reviews.append(add_days(reviews[-1], 170 if looked_after else 85))
    for when in reviews:
        if when <= end:
            b.add("planReviews", when, planId=pid, planKind=kind)
    for month in range(3, years * 12, 3):
        b.add("recordUpdates", add_days(start, month * 30.44), kind="CHRONOLOGY")
    for year in range(1, years):
        day = years_after(start, year)
        b.add(
            "assessments", day, completedOn=add_working_days(day, rng.randint(15, 30)), factors=["16A"], childSeen=True
        )
    for when in steady_dates(rng, start, end, rng.uniform(1, 2.5)):  # the school now and then
        b.add("concerns", when, agency="EDUCATION", category="SCHOOL_ABSENCE", childSeen=True)
        c.chronology(when)
    school_terms(b, rng, start, end, 91, 97)
    workers, day, k = [], start, 0
    while day < end:
        k += 1
        stop = min(add_days(day, rng.uniform(36, 48) * 30.44), end)
        workers.append((day, None if stop >= end else stop, f"{b.doc['caseId']}-wk{k}"))
        day = stop + DAY
    c.allocate(workers)
    return end


CONTROL_BUILDERS = {
    "protection-plan-closed": _protection_plan_closed,
    "short-cin": _short_cin,
    "disabled-child-appointments": _disabled_child,
    "large-sibling-group": _sibling_group,
    "moved-in": _moved_in,
    "long-open-stable": _long_open_stable,
}


def control_courses(n: int, seed: int) -> list[Course]:
    """`n` controls cycling through the six kinds; each is replayed to 60 days after it closed
    (or to the end of a case still open)."""
    courses = []
    for i in range(n):
        rng = random.Random(seed * 100_019 + i)
        kind = CONTROL_KINDS[i % len(CONTROL_KINDS)]
        start = _control_start(rng)
        b = CaseBuilder(f"ctl-{seed}-{i:03d}", years_after(start, -rng.randint(1, 12)))
        last = CONTROL_BUILDERS[kind](Control(b, rng), start)
        case = b.case()
        first = min(D.fromisoformat(f["date"]) for key, facts in case.items() if isinstance(facts, list) for f in facts)
        end = last + dt.timedelta(days=60) if case.get("closures") else last
        courses.append(Course(case, first, end, "control", kind, None, {"start": start}))
    return courses

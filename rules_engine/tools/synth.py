"""Seeded synthetic cases in the proto3 JSON form of Case: ordinary kinds and a small share that drift.

Every case comes from `random.Random(seed)` alone, so a seed always gives the same cases.
Ids are pseudonymous (`syn-<seed>-<n>`); no real person is described. Ordinary cases are
short early-help episodes, child-in-need cases, child protection plans and looked-after
children, mostly on time with some slippage; about 3% are long-running cases that drift
(cumulative concerns over years, worker churn, missed conferences, threats to staff).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from typing import Any, TextIO

from rules_engine.engine.calendar import default_calendar
from rules_engine.tools import characteristics

CaseJson = dict[str, Any]

# Case kinds and their shares of generated cases.
KINDS: tuple[tuple[str, float], ...] = (
    ("early_help", 0.33),
    ("child_in_need", 0.32),
    ("child_protection", 0.20),
    ("looked_after", 0.12),
    ("drifting", 0.03),
)
ORDINARY_KINDS = frozenset(k for k, _ in KINDS if k != "drifting")

_AGENCIES = ("POLICE", "EDUCATION", "GP", "HEALTH_VISITOR", "HOSPITAL", "HOUSING", "MENTAL_HEALTH", "EARLY_YEARS")
_CATEGORIES = ("NEGLECT", "DOMESTIC_ABUSE", "EMOTIONAL_ABUSE", "PHYSICAL_ABUSE", "HOME_CONDITIONS", "SCHOOL_ABSENCE")
_SOURCES = ("1A", "2A", "3A", "3B", "4", "5D", "6", "8")
_PARENT_FACTORS = ("1B", "2B", "3B", "4B")


def _iso(day: dt.date) -> str:
    return day.isoformat()


def _wd(day: dt.date, n: int) -> dt.date:
    return default_calendar().add_working_days(day, n)


class CaseBuilder:
    """Collects one case's facts; facts dated after `as_of` are dropped, later end dates left open."""

    def __init__(self, case_id: str, as_of: dt.date, birth_date: dt.date | None) -> None:
        self.as_of = as_of
        self.doc: CaseJson = {"caseId": case_id}
        if birth_date is not None:
            self.doc["child"] = {"birthDate": _iso(birth_date)}
        self._counts: dict[str, int] = {}

    def add(self, fact_type: str, day: dt.date, **fields: Any) -> bool:
        """Add a fact dated `day`; date-valued fields after as_of are dropped. False when `day` is too late."""
        if day > self.as_of:
            return False
        number = self._counts[fact_type] = self._counts.get(fact_type, 0) + 1
        fact: dict[str, Any] = {"id": f"{fact_type[:3]}{number}", "date": _iso(day)}
        for name, value in fields.items():
            if isinstance(value, dt.date):
                if value <= self.as_of:
                    fact[name] = _iso(value)
            elif value is not None:
                fact[name] = value
        self.doc.setdefault(fact_type, []).append(fact)
        return True

    def allocate(self, workers: list[tuple[dt.date, str, str]], end: dt.date | None) -> None:
        """Allocations from (start, worker, reason) triples, each ending when the next starts."""
        for i, (start, worker, reason) in enumerate(workers):
            stop = workers[i + 1][0] if i + 1 < len(workers) else end
            self.add("allocations", start, workerId=worker, endDate=stop, changeReason=reason)

    def build(self) -> CaseJson:
        return self.doc


class _Generator:
    def __init__(self, rng: random.Random, as_of: dt.date, case_id: str) -> None:
        self.rng = rng
        self.as_of = as_of
        self.case_id = case_id

    def days(self, low: int, high: int) -> dt.timedelta:
        return dt.timedelta(days=self.rng.randint(low, high))

    def slips(self, share: float) -> bool:
        return self.rng.random() < share

    def worker(self) -> str:
        return f"sw{self.rng.randint(1, 400):03d}"

    def builder(self, start: dt.date, min_age: int = 0, max_age: int = 16) -> CaseBuilder:
        age_days = self.rng.randint(min_age * 365, max_age * 365 + 300)
        return CaseBuilder(self.case_id, self.as_of, start - dt.timedelta(days=age_days))

    def front_door(self, b: CaseBuilder, day: dt.date, harm: bool = False) -> None:
        # Now and then a concern of significant harm is still waiting for a strategy discussion.
        if not harm and self.slips(0.01):
            b.add("concerns", self.as_of - self.days(3, 20), agency="POLICE", significantHarm=True)
        """A concern and the referral it leads to, decided in time (a few slip)."""
        agency = self.rng.choice(_AGENCIES)
        b.add("concerns", day, agency=agency, category=self.rng.choice(_CATEGORIES), significantHarm=harm)
        decided: dt.date | None = _wd(day, 2) if self.slips(0.03) else day + self.days(0, 1)
        if self.slips(0.01):
            decided = None
        b.add("referrals", day, source=self.rng.choice(_SOURCES), decidedOn=decided)

    def assessment(self, b: CaseBuilder, day: dt.date, factors: int) -> dt.date:
        length = self.rng.randint(46, 60) if self.slips(0.06) else self.rng.randint(10, 38)
        done = _wd(day, length)
        chosen = self.rng.sample(_PARENT_FACTORS, factors) + (["16A"] if self.slips(0.25) else [])
        b.add("assessments", day, completedOn=done, factors=chosen or ["21"], childSeen=not self.slips(0.03))
        return done

    def visits(self, b: CaseBuilder, start: dt.date, end: dt.date, low: int, high: int) -> None:
        """Visits from `start` to `end` every `low`..`high` working days, sometimes late; a few lapse."""
        day, n = start, 0
        stop = min(end, self.as_of - self.days(20, 90) if self.slips(0.03) else self.as_of)
        while day <= stop:
            no_access = self.slips(0.03)
            alone = not no_access and n % 2 == 0
            b.add("visits", day, childSeen=not no_access, seenAlone=alone, noAccess=no_access)
            gap = self.rng.randint(low, high) + (self.rng.randint(1, 4) if self.slips(0.04) else 0)
            day, n = _wd(day, gap), n + 1

    def record_updates(self, b: CaseBuilder, start: dt.date, end: dt.date, kind: str, low: int, high: int) -> None:
        day = start
        while day <= min(end, self.as_of):
            b.add("recordUpdates", day, kind=kind)
            day += self.days(low, high)

    def allocate(self, b: CaseBuilder, workers: list[tuple[dt.date, str, str]], end: dt.date) -> None:
        """Allocate; in a few cases the last worker left recently and nobody has been allocated."""
        if self.slips(0.02) and end > self.as_of:
            current = [w for w in workers if w[0] <= self.as_of]
            left = max(current[-1][0], self.as_of - self.days(3, 30))
            b.allocate(current, left)
            return
        b.allocate(workers, end)

    def workers(self, start: dt.date, end: dt.date, mean_months: float) -> list[tuple[dt.date, str, str]]:
        chosen = [(start, self.worker(), "NEW_CASE")]
        day = start
        while True:
            day += dt.timedelta(days=int(self.rng.expovariate(1 / (mean_months * 30.4))) + 30)
            if day >= end:
                return chosen
            reason = self.rng.choice(("WORKER_LEFT", "CASELOAD", "TEAM_TRANSFER", "SICKNESS"))
            chosen.append((day, self.worker(), "PCCHAN" if self.slips(0.05) else reason))

    # --- kinds ---------------------------------------------------------------------------

    def early_help(self) -> CaseJson:
        start = self.as_of - self.days(10, 700)
        b = self.builder(start)
        self.front_door(b, start)
        plan_start = start + self.days(3, 20)
        end = plan_start + self.days(60, 200)
        b.add("plans", plan_start, kind="PLAN_KIND_EARLY_HELP", endDate=end)
        b.allocate([(plan_start, self.worker(), "NEW_CASE")], end)
        if self.slips(0.3):
            b.add("schoolAttendance", plan_start + self.days(20, 60), attendancePercent=self.rng.randint(82, 99))
        b.add("closures", end, reason="RC9" if self.slips(0.5) else "RC7")
        return b.build()

    def child_in_need(self) -> CaseJson:
        start = self.as_of - self.days(30, 900)
        b = self.builder(start)
        self.front_door(b, start)
        done = self.assessment(b, start + self.days(0, 3), self.rng.choice((0, 0, 1, 1, 2)))
        end = done + self.days(120, 540)
        b.add("plans", done, kind="PLAN_KIND_CHILD_IN_NEED", endDate=end)
        self.visits(b, done + self.days(1, 10), end, 10, 22)
        self.allocate(b, self.workers(start, end, 9), end)
        for _ in range(self.rng.randint(0, 3)):
            day = start + self.days(20, 500)
            b.add("concerns", day, agency=self.rng.choice(_AGENCIES), category=self.rng.choice(_CATEGORIES))
        self.school(b, start, end)
        if self.slips(0.08):
            b.add("missedAppointments", start + self.days(20, 300))
        b.add("closures", end, reason=self.rng.choice(("RC7", "RC8", "RC9")))
        return b.build()

    def school(self, b: CaseBuilder, start: dt.date, end: dt.date) -> None:
        day = start + self.days(10, 60)
        while day <= min(end, self.as_of):
            b.add("schoolAttendance", day, attendancePercent=self.rng.randint(84 if self.slips(0.1) else 91, 100))
            day += self.days(80, 120)

    def child_protection(self) -> CaseJson:
        start = self.as_of - (self.days(20, 70) if self.slips(0.1) else self.days(20, 1000))
        b = self.builder(start, max_age=0 if self.slips(0.2) else 14)
        if self.slips(0.08):
            before = start - self.days(700, 1800)
            b.add(
                "plans", before, kind="PLAN_KIND_CHILD_PROTECTION", category="NEG", endDate=before + self.days(150, 400)
            )
        self.front_door(b, start, harm=True)
        sd = _wd(start, 1)
        agencies = ["CHILDRENS_SOCIAL_CARE", "POLICE", "HEALTH"] if not self.slips(0.05) else ["CHILDRENS_SOCIAL_CARE"]
        b.add("strategyDiscussions", sd, agencies=agencies, section47Started=True)
        b.add("section47Enquiries", sd, completedOn=_wd(sd, 8))
        self.assessment(b, sd, self.rng.choice((0, 1, 1, 2, 2, 3)))
        icpc = _wd(sd, self.rng.randint(16, 40) if self.slips(0.08) else self.rng.randint(8, 15))
        end = icpc + (self.days(760, 1000) if self.slips(0.05) else self.days(180, 640))
        category = self.rng.choice(("NEG", "NEG", "EMO", "PHY", "MUL"))
        b.add("plans", icpc, kind="PLAN_KIND_CHILD_PROTECTION", category=category, endDate=end)
        self.conference(b, icpc, "CONFERENCE_KIND_INITIAL", 2)
        review = icpc + self.days(70, 88)
        while review < end:
            self.conference(b, review, "CONFERENCE_KIND_REVIEW", 5)
            review += self.days(150, 178) if not self.slips(0.04) else self.days(185, 200)
        group = _wd(icpc, self.rng.randint(12, 14) if self.slips(0.05) else self.rng.randint(4, 10))
        while group < end:
            b.add("coreGroups", group, agencies=["CHILDRENS_SOCIAL_CARE", "HEALTH", "EDUCATION"])
            group += self.days(25, 40) if not self.slips(0.04) else self.days(44, 50)
        self.visits(b, sd, end, 5, 10)
        self.record_updates(b, start + self.days(5, 20), end, "CHRONOLOGY", 20, 110 if self.slips(0.1) else 80)
        workers = self.workers(start, end, 8)
        self.allocate(b, workers, end)
        for day, _, reason in workers[1:]:
            if reason != "NEW_CASE" and not self.slips(0.1):
                b.add("recordUpdates", _wd(day, self.rng.randint(1, 8)), kind="CASE_SUMMARY")
        for _ in range(self.rng.randint(0, 4)):
            day = start + self.days(10, 600)
            b.add("concerns", day, agency=self.rng.choice(_AGENCIES), category=self.rng.choice(_CATEGORIES))
        if self.slips(0.15):
            b.add("missedAppointments", start + self.days(20, 300))
        if self.slips(0.15):
            b.add("householdMembers", start, relationship="PARTNER_OF_PARENT", checksCompleted=not self.slips(0.5))
        if self.slips(0.05):
            b.add("engagementEvents", start + self.days(10, 200), kind="THREAT_TO_STAFF")
        self.school(b, start, end)
        b.add("closures", end + self.days(20, 200), reason=self.rng.choice(("RC7", "RC3", "RC4")))
        return b.build()

    def conference(self, b: CaseBuilder, day: dt.date, kind: str, notice: int) -> None:
        parts = []
        for agency in ("POLICE", "HEALTH", "EDUCATION"):
            due = _wd(day, -notice)
            received = due if not self.slips(0.06) else _wd(due, 1)
            attended = not self.slips(0.08)
            sent = attended or not self.slips(0.3)
            parts.append(
                {
                    "agency": agency,
                    "attended": attended,
                    "reportDueOn": _iso(due),
                    **({"reportReceivedOn": _iso(received)} if sent and received <= self.as_of else {}),
                }
            )
        b.add("conferences", day, kind=kind, agencies=parts)

    def looked_after(self) -> CaseJson:
        start = self.as_of - (self.days(8, 25) if self.slips(0.05) else self.days(20, 1500))
        b = self.builder(start, max_age=15)
        self.front_door(b, start)
        end = start + self.days(200, 2500)
        b.add("plans", start, kind="PLAN_KIND_LOOKED_AFTER", endDate=end)
        first = start + self.days(1, 6) if not self.slips(0.1) else start + self.days(8, 30)
        day = first
        stop = self.as_of - self.days(40, 120) if self.slips(0.04) else self.as_of
        while day <= min(end, stop):
            b.add("visits", day, childSeen=True, seenAlone=self.slips(0.6))
            long_term = (day - start).days > 365
            gap = self.days(40, 80) if long_term else self.days(20, 40)
            day += gap + (self.days(10, 30) if self.slips(0.04) else dt.timedelta())
        self.record_updates(b, start + self.days(5, 30), end, "CHRONOLOGY", 30, 85)
        self.allocate(b, self.workers(start, end, 12), end)
        self.school(b, start, end)
        return b.build()

    def drifting(self) -> CaseJson:
        years = self.rng.randint(6, 16)
        start = self.as_of - dt.timedelta(days=365 * years + self.rng.randint(0, 300))
        b = self.builder(start, max_age=2)
        drift(self.rng, b, start, self.as_of)
        if self.slips(0.5):
            plan = self.as_of - self.days(60, 500)
            b.add("plans", plan, kind="PLAN_KIND_CHILD_PROTECTION", category="NEG")
            day = plan
            while day <= self.as_of:
                no_access = self.slips(0.35)
                b.add("visits", day, childSeen=not no_access, noAccess=no_access)
                day = _wd(day, self.rng.randint(5, 25))
        return b.build()


def drift(rng: random.Random, b: CaseBuilder, start: dt.date, end: dt.date, per_year: float = 9) -> None:
    """A long-running case that drifts: concerns from several agencies, referral and closure
    cycles, assessments left open, worker churn with parent-requested changes, threats to
    staff and refused access, conferences that agencies miss without reports, no chronology."""
    day = start
    referral_gap = 0
    while day <= end:
        day += dt.timedelta(days=int(rng.expovariate(per_year / 365)) + 1)
        if day > end:
            break
        agency = rng.choice(("POLICE", "POLICE", "EDUCATION", "GP", "HEALTH_VISITOR", "HOUSING", "MENTAL_HEALTH"))
        category = rng.choice(("NEGLECT", "NEGLECT", "DOMESTIC_ABUSE", "HOME_CONDITIONS", "SCHOOL_ABSENCE"))
        b.add("concerns", day, agency=agency, category=category)
        referral_gap += 1
        if referral_gap >= rng.randint(4, 9):
            referral_gap = 0
            b.add("referrals", day, source="6" if agency == "POLICE" else "2A", decidedOn=_wd(day, 1))
            if rng.random() < 0.6:
                b.add("assessments", _wd(day, 2), factors=["16A"])  # started, never completed
            else:
                b.add("closures", day + dt.timedelta(days=rng.randint(20, 90)), reason="RC8")
        if rng.random() < 0.12:
            b.add("engagementEvents", day + dt.timedelta(days=rng.randint(0, 20)), kind="THREAT_TO_STAFF")
        if rng.random() < 0.12:
            b.add("engagementEvents", day + dt.timedelta(days=rng.randint(0, 20)), kind="REFUSED_ACCESS")
        if rng.random() < 0.08:
            b.add("missedAppointments", day + dt.timedelta(days=rng.randint(0, 30)))
        if rng.random() < 0.05:
            for weeks in (1, 3, 5):
                b.add("visits", day + dt.timedelta(weeks=weeks), noAccess=True)
    workers: list[tuple[dt.date, str, str]] = [(start, f"sw{rng.randint(1, 400):03d}", "NEW_CASE")]
    day = start
    while True:
        day += dt.timedelta(days=rng.randint(120, 420))
        if day >= end:
            break
        workers.append((day, f"sw{rng.randint(1, 400):03d}", "PCCHAN" if rng.random() < 0.3 else "WORKER_LEFT"))
    b.allocate(workers, None)
    conference = start + dt.timedelta(days=rng.randint(365, 900))
    while conference <= end:
        parts = [{"agency": a, "attended": rng.random() < 0.5} for a in ("POLICE", "HEALTH", "EDUCATION", "HOUSING")]
        b.add("conferences", conference, kind="CONFERENCE_KIND_INITIAL", agencies=parts)
        conference += dt.timedelta(days=rng.randint(500, 1200))


def synthetic_case(rng: random.Random, kind: str, case_id: str, as_of: dt.date) -> CaseJson:
    """One synthetic case of `kind` (a name in KINDS)."""
    generator = _Generator(rng, as_of, case_id)
    build = {
        "early_help": generator.early_help,
        "child_in_need": generator.child_in_need,
        "child_protection": generator.child_protection,
        "looked_after": generator.looked_after,
        "drifting": generator.drifting,
    }[kind]
    return build()


def generate(count: int, seed: int, as_of: dt.date) -> Iterator[tuple[str, CaseJson]]:
    """`count` (kind, case) pairs, deterministic for a seed and `as_of`; each child carries equality
    characteristics drawn from national proportions (tools/characteristics.py), which no rule reads."""
    rng = random.Random(seed)
    names = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    for i in range(count):
        kind = rng.choices(names, weights)[0]
        yield kind, characteristics.add_to(synthetic_case(rng, kind, f"syn-{seed}-{i:06d}", as_of))


def write_jsonl(out: TextIO, count: int, seed: int, as_of: dt.date) -> int:
    """Write `count` cases as JSON lines; returns the number written."""
    written = 0
    for _, case in generate(count, seed, as_of):
        out.write(json.dumps(case, separators=(",", ":")))
        out.write("\n")
        written += 1
    return written


# --- named cases for tests ------------------------------------------------------------------

LONG_TIMELINE_START = dt.date(2006, 1, 9)
LONG_TIMELINE_END = dt.date(2024, 1, 31)


def long_timeline_case(seed: int = 7) -> CaseJson:
    """A case modelled on the Essex review: about 200 concerns over 18 years from several
    agencies, a dozen or more workers, threats to staff and refused access, assessments
    left open for years, no chronology, agencies absent from conferences without reports."""
    rng = random.Random(seed)
    b = CaseBuilder(f"syn-long-{seed}", LONG_TIMELINE_END, dt.date(2003, 4, 2))
    # The first years are quieter; concerns and hostility build from year 4.
    drift(rng, b, LONG_TIMELINE_START, dt.date(2009, 12, 31), per_year=5)
    b.add("assessments", dt.date(2006, 2, 1), completedOn=dt.date(2006, 3, 20), factors=["3B"], childSeen=True)
    drift(rng, b, dt.date(2010, 1, 4), LONG_TIMELINE_END, per_year=13)
    return b.build()


CONTROL_START = dt.date(2023, 1, 9)
CONTROL_END = dt.date(2025, 3, 31)


def control_case() -> CaseJson:
    """A well-managed case: timely assessment, one worker, visits on time, full attendance."""
    b = CaseBuilder("syn-control", CONTROL_END, dt.date(2016, 5, 14))
    start = CONTROL_START
    b.add("concerns", start, agency="EDUCATION", category="NEGLECT", significantHarm=True)
    b.add("referrals", start, source="2A", decidedOn=start)
    sd = _wd(start, 1)
    b.add("strategyDiscussions", sd, agencies=["CHILDRENS_SOCIAL_CARE", "POLICE", "HEALTH"], section47Started=True)
    b.add("section47Enquiries", sd, completedOn=_wd(sd, 7))
    b.add("assessments", sd, completedOn=_wd(sd, 25), factors=["4B"], childSeen=True)
    icpc = _wd(sd, 12)
    plan_end = icpc + dt.timedelta(days=540)
    b.add("plans", icpc, kind="PLAN_KIND_CHILD_PROTECTION", category="NEG", endDate=plan_end)
    b.allocate([(start, "sw101", "NEW_CASE")], None)
    b.add("recordUpdates", _wd(start, 3), kind="CASE_SUMMARY")
    full = [
        {"agency": a, "attended": True, "reportDueOn": _iso(_wd(icpc, -2)), "reportReceivedOn": _iso(_wd(icpc, -3))}
        for a in ("POLICE", "HEALTH", "EDUCATION")
    ]
    b.add("conferences", icpc, kind="CONFERENCE_KIND_INITIAL", agencies=full)
    review = icpc + dt.timedelta(days=84)
    while review < plan_end:
        parts = [{**p, "reportDueOn": _iso(_wd(review, -5)), "reportReceivedOn": _iso(_wd(review, -6))} for p in full]
        b.add("conferences", review, kind="CONFERENCE_KIND_REVIEW", agencies=parts)
        review += dt.timedelta(days=168)
    group = _wd(icpc, 7)
    while group < plan_end:
        b.add("coreGroups", group, agencies=["CHILDRENS_SOCIAL_CARE", "HEALTH", "EDUCATION"])
        group += dt.timedelta(days=28)
    day, n = sd, 0
    cin_end = plan_end + dt.timedelta(days=240)
    b.add("plans", plan_end, kind="PLAN_KIND_CHILD_IN_NEED", endDate=cin_end)
    while day <= cin_end:
        b.add("visits", day, childSeen=True, seenAlone=n % 2 == 0)
        day, n = _wd(day, 7 if day < plan_end else 15), n + 1
    chron = _wd(start, 5)
    while chron <= cin_end:
        b.add("recordUpdates", chron, kind="CHRONOLOGY")
        chron += dt.timedelta(days=30)
    for month in range(0, 26, 4):
        b.add("schoolAttendance", start + dt.timedelta(days=30 * month + 20), attendancePercent=95)
    b.add("closures", cin_end, reason="RC7")  # services ceased: no longer in need
    return b.build()


def _fact_count(case: CaseJson) -> int:
    return sum(len(v) for v in case.values() if isinstance(v, list))


def sized_case(facts: int, seed: int = 1, as_of: dt.date = LONG_TIMELINE_END) -> CaseJson:
    """A drifting case of exactly `facts` facts, for benchmarks.

    Small cases cover a short span (worker and conference history grows with time, not with
    concerns); drift is generated at a rate that overshoots the target, then the oldest
    concerns are dropped until the count is exact.
    """
    years = min(18, max(1, facts // 60))
    per_year = max(2.0, facts / years / 1.2)
    while True:
        rng = random.Random(seed)
        b = CaseBuilder(f"syn-sized-{facts}-{seed}", as_of, as_of - dt.timedelta(days=365 * 12))
        drift(rng, b, as_of - dt.timedelta(days=365 * years), as_of, per_year=per_year)
        case = b.build()
        surplus = _fact_count(case) - facts
        if surplus < 0:
            per_year *= 1.3
            continue
        # Keep each fact type's share, dropping the oldest; concerns absorb the rounding.
        total = _fact_count(case)
        lists = {k: v for k, v in case.items() if isinstance(v, list) and k != "concerns"}
        for key, items in lists.items():
            case[key] = items[len(items) - round(len(items) * facts / total) :]
        rest = facts - sum(len(case[key]) for key in lists)
        concerns = case.get("concerns", [])
        if not 0 <= rest <= len(concerns):
            per_year *= 1.3
            continue
        case["concerns"] = concerns[len(concerns) - rest :]
        return case

"""Control life courses: six kinds of ordinary, well-managed work in which no pattern should be seen.

Each kind follows the timescales of Working Together 2023 and local procedure as the shared
reference gives them (ICPC within 15 working days of the strategy discussion, first review
within 3 months then every 6, visits every 10 working days on a plan, seen alone on
alternate visits, assessments within 45 working days), so a flag raised on a control is a
question about the rule, not about the case. Written from the domain, never from rulesets.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
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

CONTROL_KINDS = (
    "protection-plan-closed",
    "short-cin",
    "disabled-child-appointments",
    "large-sibling-group",
    "moved-in",
    "long-open-stable",
)

_EARLIEST = dt.date(1998, 1, 1)
_LATEST_START = dt.date(2020, 12, 31)
_ORDINARY_AGENCIES = ("EDUCATION", "GP", "HEALTH_VISITOR", "POLICE", "HOSPITAL", "HOUSING", "SCHOOL_NURSE")
_ORDINARY_CATEGORIES = (
    "NEGLECT",
    "HOME_CONDITIONS",
    "DOMESTIC_ABUSE",
    "PARENTAL_MENTAL_HEALTH",
    "SCHOOL_ABSENCE",
    "OTHER",
)


@dataclass(frozen=True)
class Written:
    """A written control: the case, its drawn parameters, its first fact and last day."""

    case: CaseJson
    params: dict[str, Any]
    start: dt.date
    end: dt.date


def _begin(
    rng: random.Random, case_id: str, years: tuple[float, float], ages: tuple[int, int], latest: dt.date = _LATEST_START
) -> tuple[Course, dt.date, dt.date, int]:
    """Draw a start (1998 to `latest`), a length in years and an age; the course and those draws.

    The course runs to the drawn end. Kinds that close write nothing after their closure and
    pass years=(0, 0): their course runs to LATEST_END and they choose their end themselves.
    """
    start = random_day(rng, _EARLIEST, latest)
    room = (LATEST_END - start).days / 365.25
    length = rng.uniform(min(years[0], room), min(years[1], room))
    end = min(LATEST_END, start + dt.timedelta(days=round(length * 365.25))) if length else LATEST_END
    age = rng.randint(*ages)
    birth = start - relativedelta(years=age) - dt.timedelta(days=rng.randint(0, 360))
    return Course(rng, case_id, end, birth), start, end, age


def _alone(c: Course, day: dt.date) -> int:
    """Seen alone on alternate visits from age 4; younger children are not seen alone."""
    return 2 if c.age(day) >= 4 else 0


def _front_door(
    c: Course, day: dt.date, agency: str, category: str, harm: bool = False, factors: tuple[str, ...] = ()
) -> dt.date:
    """A concern, a referral decided the same day, and the assessment it led to, completed within
    45 working days of the referral; the completion date."""
    c.add("concerns", day, agency=agency, category=category, significantHarm=harm, childSeen=True)
    started = wd(day, c.rng.randint(0, 2))
    done = wd(started, c.rng.randint(10, 35))
    assessment = c.add("assessments", started, completedOn=done, factors=list(factors) or ["21"], childSeen=True)
    need = "N1" if category in ("NEGLECT", "DOMESTIC_ABUSE", "PHYSICAL_ABUSE", "EMOTIONAL_ABUSE") else "N4"
    c.add(
        "referrals",
        day,
        source=REFERRAL_SOURCE.get(agency, "8"),
        decidedOn=day,
        primaryNeed=need,
        assessmentId=assessment,
    )
    return done


def _reassess(c: Course, first: dt.date, stop: dt.date, low: int, high: int) -> int:
    """Assessments re-done every `low`..`high` months from `first`, each completed in time; how many."""
    n = 0
    day = plus_months(first, c.rng.randint(low, high))
    while day <= stop:
        c.add("assessments", day, completedOn=wd(day, c.rng.randint(15, 35)), factors=["21"], childSeen=True)
        day, n = plus_months(day, c.rng.randint(low, high)), n + 1
    return n


def _workers(c: Course, start: dt.date, stop: dt.date | None, two: bool) -> int:
    """One worker throughout, or two with a planned handover and a case summary after it."""
    if not two:
        c.allocate([(start, stop, "NEW_CASE")])
        return 1
    last = stop or c.end
    handover = start + dt.timedelta(days=round((last - start).days * c.rng.uniform(0.3, 0.7)))
    c.allocate([(start, handover, "NEW_CASE"), (handover, stop, c.rng.choice(("WORKER_LEFT", "TEAM_TRANSFER")))])
    c.add("recordUpdates", wd(handover, c.rng.randint(1, 5)), kind="CASE_SUMMARY")
    return 2


def _school(c: Course, start: dt.date, stop: dt.date, low: float, high: float) -> None:
    """A termly attendance return while the child is of school age."""
    for year in range(start.year, stop.year + 1):
        for month, day in ((12, 10), (4, 1), (7, 15)):
            when = dt.date(year, month, day) + c.days(-5, 5)
            if start <= when <= stop and 5 <= c.age(when) <= 16:
                c.add("schoolAttendance", when, attendancePercent=round(c.rng.uniform(low, high), 1))


def _ordinary_concerns(c: Course, start: dt.date, stop: dt.date, per_year: float, **fields: Any) -> int:
    """Occasional concerns at `per_year`, each responded to with the child seen; how many."""
    n, day = 0, start
    while per_year > 0:
        day += dt.timedelta(days=max(1, round(c.rng.expovariate(per_year / 365.25))))
        if day > stop:
            return n
        agency = c.rng.choice(_ORDINARY_AGENCIES)
        category = c.rng.choice(_ORDINARY_CATEGORIES)
        fields.setdefault("childSeen", True)
        c.add("concerns", day, agency=agency, category=category, **fields)
        n += 1
    return n


def _protection(c: Course, icpc: dt.date, plan_end_after: int, agencies: tuple[str, ...]) -> tuple[str | None, dt.date]:
    """A CP plan from an initial conference: reviews at 3 months then every 6, ended at the
    first review at least `plan_end_after` months in; core groups every 4 weeks. The plan's id and end."""
    reviews = [plus_months(icpc, 3) - c.days(0, 10)]
    while (reviews[-1] - icpc).days < plan_end_after * 30.44:
        reviews.append(plus_months(reviews[-1], 6) - c.days(0, 10))
    plan_end = reviews[-1]
    plan = c.add(
        "plans", icpc, kind="PLAN_KIND_CHILD_PROTECTION", category=c.rng.choice(("NEG", "EMO", "PHY")), endDate=plan_end
    )
    c.conference(icpc, "INITIAL", agencies, notice=2)
    for review in reviews:
        c.conference(review, "REVIEW", agencies, notice=5)
    _core_groups(c, icpc, plan_end)
    return plan, plan_end


def _core_groups(c: Course, first_after: dt.date, stop: dt.date) -> None:
    group = wd(first_after, c.rng.randint(5, 10))
    while group < stop:
        c.add("coreGroups", group, agencies=[CSC, "HEALTH", "EDUCATION"])
        group += c.days(26, 30)


def _conference_agencies(c: Course, day: dt.date) -> tuple[str, ...]:
    return ("POLICE", "HEALTH", "HEALTH_VISITOR" if c.age(day) < 5 else "EDUCATION")


def _step_down(c: Course, start: dt.date, months: int) -> dt.date:
    """A child-in-need plan after a CP plan, reviewed every 3 months, visited, then closed (RC7:
    services no longer needed); the closure date."""
    end = plus_months(start, months)
    plan = c.add("plans", start, kind="PLAN_KIND_CHILD_IN_NEED", endDate=end)
    c.plan_reviews(plan, "CHILD_IN_NEED", start, end, first=3, every=3)
    c.visits(wd(start, c.rng.randint(5, 15)), end, 12, 20, _alone(c, start))
    c.add("closures", end, reason="RC7")
    return end


# --- the six kinds ---------------------------------------------------------------------------


def protection_plan_closed(rng: random.Random, case_id: str) -> Written:
    """A CP plan run to timescale and closed, then a short CIN step-down and closure."""
    c, start, _, age = _begin(rng, case_id, (0, 0), (0, 15))
    factor = c.chance(0.5)
    agency = "POLICE" if factor else c.rng.choice(("EDUCATION", "HEALTH_VISITOR", "HOSPITAL", "GP"))
    sd = wd(start, c.rng.randint(0, 1))
    _front_door(
        c, start, agency, "DOMESTIC_ABUSE" if factor else "NEGLECT", harm=True, factors=("3B",) if factor else ("16A",)
    )
    c.add("strategyDiscussions", sd, agencies=[CSC, "POLICE", "HEALTH"], section47Started=True)
    c.add("section47Enquiries", sd, completedOn=wd(sd, c.rng.randint(5, 10)))
    icpc = wd(sd, c.rng.randint(8, 15))
    months = c.rng.randint(6, 20)
    _, plan_end = _protection(c, icpc, months, _conference_agencies(c, icpc))
    c.visits(wd(sd, 1), plan_end, 5, 10, _alone(c, sd))
    step_down = c.rng.randint(3, 9)
    closed = _step_down(c, plan_end, step_down)
    if factor:  # police recorded domestic abuse; no longer present (the partner left) before closure
        c.add("recordedFactors", start, factor="3B", agency="POLICE", endDate=random_day(c.rng, start, plan_end))
    two = c.chance(0.3)
    _workers(c, start, closed, two)
    c.add("recordUpdates", wd(start, 2), kind="CASE_SUMMARY")
    c.chronology(wd(start, 3), closed, 20, 30)
    _school(c, start, closed, 92, 100)
    end = min(LATEST_END, closed + c.days(0, 60))
    params = {"age_at_start": age, "plan_months": months, "step_down_months": step_down, "workers": 1 + two}
    return _written(c, params | {"factor_recorded": factor}, start, end)


def short_cin(rng: random.Random, case_id: str) -> Written:
    """A short child-in-need episode: referral, assessment in time, a reviewed plan, closure."""
    c, start, _, age = _begin(rng, case_id, (0, 0), (0, 16))
    factor = c.chance(0.4)
    agency = "GP" if factor else c.rng.choice(("EDUCATION", "HEALTH_VISITOR", "SCHOOL_NURSE"))
    category = "PARENTAL_MENTAL_HEALTH" if factor else c.rng.choice(("NEGLECT", "HOME_CONDITIONS", "SCHOOL_ABSENCE"))
    done = _front_door(c, start, agency, category, factors=("4B",) if factor else ())
    months = c.rng.randint(3, 9)
    plan_end = plus_months(done, months)
    plan = c.add("plans", done, kind="PLAN_KIND_CHILD_IN_NEED", endDate=plan_end)
    reviews = c.plan_reviews(plan, "CHILD_IN_NEED", done, plan_end, first=3, every=3)
    c.visits(wd(done, c.rng.randint(3, 10)), plan_end, 12, 20, _alone(c, done))
    _ordinary_concerns(c, done, plan_end, 1.0)
    c.allocate([(start, plan_end, "NEW_CASE")])
    c.chronology(wd(start, 3), plan_end, 20, 35)
    c.add("closures", plan_end, reason="RC7")
    if factor:  # the GP recorded parental mental health; recorded as no longer present before closure
        c.add("recordedFactors", start, factor="4B", agency="GP", endDate=random_day(c.rng, start, plan_end))
    _school(c, start, plan_end, 90, 100)
    end = min(LATEST_END, plan_end + c.days(0, 60))
    return _written(
        c, {"age_at_start": age, "plan_months": months, "reviews": reviews, "factor_recorded": factor}, start, end
    )


def disabled_child_appointments(rng: random.Random, case_id: str) -> Written:
    """A disabled child with many health appointments, nearly all attended; a long reviewed CIN plan."""
    c, start, end, age = _begin(rng, case_id, (2, 8), (0, 12))
    started = wd(start, c.rng.randint(0, 3))
    done = wd(started, c.rng.randint(15, 35))
    assessment = c.add("assessments", started, completedOn=done, factors=["21"], childSeen=True)
    c.add("referrals", start, source="3D", decidedOn=start, primaryNeed="N2", assessmentId=assessment)
    closes = c.chance(0.5)
    plan_end = end if closes else None
    plan = c.add("plans", done, kind="PLAN_KIND_CHILD_IN_NEED", endDate=plan_end)
    reviews = c.plan_reviews(plan, "CHILD_IN_NEED", done, end, first=3, every=6)
    reassessments = _reassess(c, started, end, 10, 14)
    per_year = c.rng.uniform(6, 15)
    day, offered = start, []
    while True:
        day += dt.timedelta(days=max(3, round(c.rng.expovariate(per_year / 365.25))))
        if day > end:
            break
        offered.append(day)
    missed = set(c.rng.sample(range(len(offered)), min(len(offered), c.rng.randint(1, 2))))
    for i, day in enumerate(offered):
        agency = c.rng.choice(("HOSPITAL", "HEALTH", "GP", "HEALTH"))
        was_not_brought = i in missed and c.chance(0.5)
        c.add("appointments", day, agency=agency, attended=i not in missed, wasNotBrought=was_not_brought)
    c.visits(wd(done, c.rng.randint(3, 10)), end, 15, 25, _alone(c, done))
    workers = _workers(c, start, plan_end, c.chance(0.3))
    c.chronology(wd(start, 3), end, 20, 45)
    _ordinary_concerns(c, start, end, 0.3)
    _school(c, start, end, 86, 98)
    if closes:
        c.add("closures", end, reason="RC7")
    params = {
        "age_at_start": age,
        "appointments": len(offered),
        "appointments_per_year": round(per_year, 2),
        "missed": len(missed),
        "reviews": reviews,
        "reassessments": reassessments,
        "workers": workers,
        "closed": closes,
    }
    return _written(c, params, start, end)


def large_sibling_group(rng: random.Random, case_id: str) -> Written:
    """A large sibling group with many contacts, mostly about the other children; assessed and held."""
    c, start, end, age = _begin(rng, case_id, (2, 8), (0, 12))
    siblings = c.rng.randint(5, 8)
    done = _front_door(c, start, "EDUCATION", "NEGLECT", factors=("16A",))
    plan = c.add("plans", done, kind="PLAN_KIND_CHILD_IN_NEED")
    reviews = c.plan_reviews(plan, "CHILD_IN_NEED", done, end, first=3, every=c.rng.choice((3, 6)))
    reassessments = _reassess(c, start, end, 12, 20)
    group_rate = c.rng.uniform(4, 12)
    own_share = c.rng.uniform(0.05, 0.15)
    day, counts = start, {"SIBLING": 0, "CHILD": 0, "HOUSEHOLD": 0}
    while True:
        day += dt.timedelta(days=max(1, round(c.rng.expovariate(group_rate / 365.25))))
        if day > end:
            break
        draw = c.rng.random()
        subject = "CHILD" if draw < own_share else "HOUSEHOLD" if draw < own_share + 0.05 else "SIBLING"
        counts[subject] += 1
        sibling = f"{case_id}-sib{c.rng.randint(1, siblings)}" if subject == "SIBLING" else None
        c.add(
            "concerns",
            day,
            agency=c.rng.choice(_ORDINARY_AGENCIES),
            category=c.rng.choice(_ORDINARY_CATEGORIES),
            subject=subject,
            subjectChildId=sibling,
            childSeen=True if subject != "SIBLING" else None,
        )
    c.visits(wd(done, c.rng.randint(3, 10)), end, 15, 20, _alone(c, done))
    workers = _workers(c, start, None, c.chance(0.3))
    c.chronology(wd(start, 3), end, 20, 40)
    _school(c, start, end, 90, 99)
    params = {
        "age_at_start": age,
        "siblings": siblings,
        "group_concern_rate": round(group_rate, 2),
        "own_share": round(own_share, 3),
        "concerns_by_subject": counts,
        "reviews": reviews,
        "reassessments": reassessments,
        "workers": workers,
    }
    return _written(c, params, start, end)


def moved_in(rng: random.Random, case_id: str) -> Written:
    """A family moving in with a long history that was acted on, on a CP plan begun before the
    move: the history received, a transfer-in conference, then reviews every 6 months."""
    c, start, _, age = _begin(rng, case_id, (0, 0), (0, 8), latest=dt.date(2015, 6, 30))
    history_years = c.rng.randint(2, 6)
    # The previous authority: assessed, a child-in-need plan reviewed and visited for years,
    # concerns now and then, then significant harm and a CP plan.
    done = _front_door(c, start, c.rng.choice(("EDUCATION", "HEALTH_VISITOR", "POLICE")), "NEGLECT", factors=("16A",))
    harm_day = start + dt.timedelta(days=round(history_years * 365.25))
    sd = wd(harm_day, 1)
    icpc = wd(sd, c.rng.randint(8, 15))
    cin = c.add("plans", done, kind="PLAN_KIND_CHILD_IN_NEED", endDate=icpc)
    c.plan_reviews(cin, "CHILD_IN_NEED", done, icpc, first=3, every=c.rng.choice((3, 6)))
    c.visits(wd(done, 5), sd, 12, 20, _alone(c, done))
    _reassess(c, start, harm_day, 12, 20)
    _ordinary_concerns(c, done, harm_day - dt.timedelta(days=30), c.rng.uniform(1, 3))
    _front_door(c, harm_day, "POLICE", "NEGLECT", harm=True, factors=("16A", "4B"))
    c.add("strategyDiscussions", sd, agencies=[CSC, "POLICE", "HEALTH"], section47Started=True)
    c.add("section47Enquiries", sd, completedOn=wd(sd, c.rng.randint(5, 10)))
    first_review = plus_months(icpc, 3) - c.days(0, 10)
    moved = icpc + c.days(30, 150)
    c.conference(icpc, "INITIAL", _conference_agencies(c, icpc), notice=2)
    if first_review < moved:
        c.conference(first_review, "REVIEW", _conference_agencies(c, first_review), notice=5)
    # The move: history received, a transfer-in conference within 15 working days.
    c.add("transfers", moved, direction="IN", historyReceived=True)
    transfer_in = wd(moved, c.rng.randint(8, 15))
    c.conference(transfer_in, "TRANSFER_IN", _conference_agencies(c, transfer_in), notice=5)
    months_after = c.rng.randint(6, 24)
    reviews = [plus_months(transfer_in, 6) - c.days(0, 10)]
    while (reviews[-1] - transfer_in).days < months_after * 30.44:
        reviews.append(plus_months(reviews[-1], 6) - c.days(0, 10))
    for review in reviews:
        c.conference(review, "REVIEW", _conference_agencies(c, review), notice=5)
    plan_end = reviews[-1]
    c.add("plans", icpc, kind="PLAN_KIND_CHILD_PROTECTION", category="NEG", endDate=plan_end)
    _core_groups(c, icpc, moved)
    _core_groups(c, transfer_in, plan_end)
    c.visits(wd(sd, 1), plan_end, 5, 10, _alone(c, sd))
    # The receiving authority assesses afresh within 45 working days of the move.
    c.add("assessments", wd(moved, 5), completedOn=wd(moved, c.rng.randint(20, 40)), factors=["16A"], childSeen=True)
    _reassess(c, wd(moved, 5), plan_end, 10, 16)
    closed = _step_down(c, plan_end, c.rng.randint(3, 9))
    c.allocate([(start, moved, "NEW_CASE"), (moved, closed, "NEW_CASE")])
    c.add("recordUpdates", wd(moved, 3), kind="CASE_SUMMARY")
    c.chronology(wd(start, 5), closed, 20, 35)
    _school(c, start, closed, 90, 99)
    end = min(LATEST_END, closed + c.days(0, 60))
    params = {
        "age_at_start": age,
        "history_years": history_years,
        "moved_on": moved.isoformat(),
        "months_after_transfer": months_after,
        "reviews_after_transfer": len(reviews),
    }
    return _written(c, params, start, end)


def long_open_stable(rng: random.Random, case_id: str) -> Written:
    """Open for years with one or two workers, a CIN or looked-after plan reviewed on time,
    regular visits, the chronology kept, assessments re-done, occasional concerns."""
    c, start, end, age = _begin(rng, case_id, (4, 10), (0, 12))
    looked_after = c.chance(0.5)
    done = _front_door(c, start, c.rng.choice(_ORDINARY_AGENCIES), "NEGLECT", factors=("16A",))
    plan_kind = "LOOKED_AFTER" if looked_after else "CHILD_IN_NEED"
    plan = c.add("plans", done, kind=f"PLAN_KIND_{plan_kind}")
    if looked_after:
        # Reviews within 20 working days, then 3 months, then every 6; visits by regulation 28.
        c.add("planReviews", wd(done, c.rng.randint(10, 20)), planId=plan, planKind="PLAN_KIND_LOOKED_AFTER")
        reviews = 1 + c.plan_reviews(plan, plan_kind, done, end, first=3, every=6)
        day = done + c.days(1, 6)
        while day <= end:
            c.add("visits", day, childSeen=True, seenAlone=c.age(day) >= 4, bedroomSeen=True)
            first_year = (day - done).days < 365
            day += c.days(28, 40) if first_year else c.days(60, 85)
    else:
        reviews = c.plan_reviews(plan, plan_kind, done, end, first=3, every=c.rng.choice((3, 6)))
        c.visits(wd(done, c.rng.randint(3, 10)), end, 15, 20, _alone(c, done))
    reassessments = _reassess(c, start, end, 12, 22)
    rate = c.rng.uniform(1, 3)
    concerns = _ordinary_concerns(c, done, end, rate)
    workers = _workers(c, start, None, c.chance(0.4))
    c.chronology(wd(start, 3), end, 20, 45)
    _school(c, start, end, 90, 100)
    params = {
        "age_at_start": age,
        "plan": plan_kind,
        "reviews": reviews,
        "reassessments": reassessments,
        "concern_rate": round(rate, 2),
        "concerns": concerns,
        "workers": workers,
        "years": round((end - start).days / 365.25, 2),
    }
    return _written(c, params, start, end)


def _written(c: Course, params: dict[str, Any], start: dt.date, end: dt.date) -> Written:
    return Written(case=c.case(), params=params, start=start, end=end)


_WRITERS: dict[str, Callable[[random.Random, str], Written]] = {
    "protection-plan-closed": protection_plan_closed,
    "short-cin": short_cin,
    "disabled-child-appointments": disabled_child_appointments,
    "large-sibling-group": large_sibling_group,
    "moved-in": moved_in,
    "long-open-stable": long_open_stable,
}


def write_control(kind: str, rng: random.Random, case_id: str) -> Written:
    """One control of `kind` from `rng`."""
    return _WRITERS[kind](rng, case_id)

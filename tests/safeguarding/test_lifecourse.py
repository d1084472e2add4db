"""Life courses: deterministic, valid, slow burns visible when their pattern shows, controls ordinary.

The visibility definition (`lifecourse.pattern_at`) is tested on small hand-written cases at
and either side of each threshold; the generators are tested on 200 courses of each family.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import statistics
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from rules_engine.cli.app import app
from rules_engine.engine.calendar import default_calendar
from rules_engine.service import requests
from rules_engine.tools import lifecourse
from rules_engine.tools.lifecourse import CONTROL_KINDS, LifeCourse, first_visible, month_ends, pattern_at
from rules_engine.tools.lifecourse_kit import LATEST_END
from rules_engine.tools.synth import CaseJson

COUNT = 200
SEED = 13
DAY = dt.date(2020, 6, 30)


@pytest.fixture(scope="module")
def slow_burns() -> list[LifeCourse]:
    return list(lifecourse.families("slow-burn", COUNT, SEED))


@pytest.fixture(scope="module")
def controls() -> list[LifeCourse]:
    return list(lifecourse.families("control", COUNT, SEED))


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _facts(case: CaseJson) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, value in case.items():
        if isinstance(value, list):
            for fact in value:
                yield key, fact


def _wd_between(first: dt.date, last: dt.date) -> int:
    return default_calendar().working_days_between(first, last)


# --- determinism and validity ------------------------------------------------------------------


def test_same_seed_same_course_and_different_seeds_differ() -> None:
    assert lifecourse.slow_burn(5, "a") == lifecourse.slow_burn(5, "a")
    assert lifecourse.slow_burn(5, "a").case != lifecourse.slow_burn(6, "a").case
    for kind in CONTROL_KINDS:
        assert lifecourse.control(5, "a", kind) == lifecourse.control(5, "a", kind)
    first = [c.to_json() for c in lifecourse.families("control", 12, 4)]
    assert first == [c.to_json() for c in lifecourse.families("control", 12, 4)]
    assert first != [c.to_json() for c in lifecourse.families("control", 12, 5)]
    # A course's own seed regenerates it alone.
    course = first[3]
    again = lifecourse.control(course["params"]["seed"], course["case"]["caseId"], course["shape"])
    assert again.to_json() == course


def test_unknown_family_or_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="family"):
        next(lifecourse.families("drifting", 1, 1))
    with pytest.raises(ValueError, match="kind"):
        lifecourse.control(1, "a", "drifting")


def test_every_course_is_a_valid_case_within_its_dates(
    slow_burns: list[LifeCourse], controls: list[LifeCourse]
) -> None:
    for course in slow_burns + controls:
        case = requests.case_model_from_proto(requests.case_from_json(course.case), today=course.end)
        assert case.case_id == course.case["caseId"]
        dates = [_day(f["date"]) for _, f in _facts(course.case)]
        assert min(dates) == course.start, course.shape
        assert max(dates) <= course.end <= LATEST_END
        for _, fact in _facts(course.case):
            for name in ("endDate", "completedOn", "decidedOn"):
                if name in fact:
                    assert _day(fact["date"]) <= _day(fact[name]) <= course.end, (course.shape, fact)
        json.dumps(course.to_json())  # JSON-able, params included


def test_allocations_form_a_chain_without_overlaps(slow_burns: list[LifeCourse], controls: list[LifeCourse]) -> None:
    for course in slow_burns + controls:
        allocations = sorted(course.case.get("allocations", ()), key=lambda a: a["date"])
        assert allocations, course.shape
        for earlier, later in itertools.pairwise(allocations):
            assert "endDate" in earlier and earlier["endDate"] <= later["date"], (course.shape, earlier, later)
        assert len({a["workerId"] for a in allocations}) == len(allocations)


# --- the visibility definition, on hand-written cases -----------------------------------------


def _concerns(*days: dt.date, subject: str | None = None) -> list[dict[str, Any]]:
    extra = {"subject": subject} if subject else {}
    return [{"id": f"c{i}-{subject}", "date": d.isoformat(), "agency": "POLICE", **extra} for i, d in enumerate(days)]


def _years_back(*years: int) -> list[dt.date]:
    """Concerns a little inside rolling year k (k = 0 is the year to DAY), two in the first."""
    out = []
    for k in years:
        out += [DAY - dt.timedelta(days=365 * k + 10), DAY - dt.timedelta(days=365 * k + 20)]
    return out


def _visible_case(**overrides: Any) -> CaseJson:
    """Everything visible on DAY: concerns in 3 of 5 years (6), no assessment, no chronology."""
    case: CaseJson = {"caseId": "hand", "concerns": _concerns(*_years_back(0, 1, 2))}
    case.update(overrides)
    return case


def test_visible_case_is_visible() -> None:
    pattern = pattern_at(_visible_case(), DAY)
    assert (pattern.years_with_concerns, pattern.concerns) == (3, 6)
    assert pattern.visible


def test_persistent_concerns_needs_three_of_five_years() -> None:
    assert not pattern_at(_visible_case(concerns=_concerns(*_years_back(0, 1), *_years_back(1))), DAY).visible
    assert pattern_at(_visible_case(concerns=_concerns(*_years_back(0, 2, 4))), DAY).visible
    # Year 5 (six years back) is outside the five rolling years.
    assert not pattern_at(_visible_case(concerns=_concerns(*_years_back(0, 2, 5))), DAY).visible


def test_persistent_concerns_needs_six_in_all() -> None:
    five = _years_back(0, 1, 2)[:5]
    assert pattern_at(_visible_case(concerns=_concerns(*five)), DAY).concerns == 5
    assert not pattern_at(_visible_case(concerns=_concerns(*five)), DAY).visible
    # Older concerns count towards the six.
    old = DAY - dt.timedelta(days=365 * 9)
    assert pattern_at(_visible_case(concerns=_concerns(*five, old)), DAY).visible


def test_rolling_year_edges() -> None:
    """Year k is (DAY - k - 1 years, DAY - k years]: a concern exactly five years back is outside."""
    two_years = _years_back(0, 1)
    five_back, just_inside = dt.date(2015, 6, 30), dt.date(2015, 7, 1)
    assert not pattern_at(_visible_case(concerns=_concerns(*two_years, five_back, five_back)), DAY).visible
    assert pattern_at(_visible_case(concerns=_concerns(*two_years, just_inside, just_inside)), DAY).visible
    # A concern after DAY is not yet known.
    late = DAY + dt.timedelta(days=1)
    assert not pattern_at(_visible_case(concerns=_concerns(*two_years, late, late)), DAY).visible


def test_only_concerns_about_this_child_or_household_count() -> None:
    child = _years_back(0, 1)
    third_year = _years_back(2)
    assert not pattern_at(
        _visible_case(concerns=_concerns(*child) + _concerns(*third_year, subject="SIBLING")), DAY
    ).visible
    assert pattern_at(
        _visible_case(concerns=_concerns(*child) + _concerns(*third_year, subject="HOUSEHOLD")), DAY
    ).visible
    assert pattern_at(_visible_case(concerns=_concerns(*child) + _concerns(*third_year, subject="CHILD")), DAY).visible


def _assessment(completed: dt.date | None, started: dt.date = dt.date(2017, 1, 9)) -> dict[str, Any]:
    return {"id": "a1", "date": started.isoformat(), **({"completedOn": completed.isoformat()} if completed else {})}


def test_no_assessment_completed_in_24_months() -> None:
    edge = dt.date(2018, 6, 30)  # DAY less 24 months
    assert pattern_at(_visible_case(assessments=[_assessment(edge)]), DAY).visible
    assert not pattern_at(_visible_case(assessments=[_assessment(edge + dt.timedelta(days=1))]), DAY).visible
    # Started and never completed: no assessment.
    assert pattern_at(_visible_case(assessments=[_assessment(None, started=DAY - dt.timedelta(days=30))]), DAY).visible
    # Completed after DAY: not yet known.
    later = _assessment(DAY + dt.timedelta(days=1), started=DAY - dt.timedelta(days=30))
    assert pattern_at(_visible_case(assessments=[later]), DAY).visible


def _allocation(n: int, start: dt.date, end: dt.date | None) -> dict[str, Any]:
    return {
        "id": f"al{n}",
        "date": start.isoformat(),
        "workerId": f"w{n}",
        **({"endDate": end.isoformat()} if end else {}),
    }


def _kept_chronology(day: dt.date = DAY) -> list[dict[str, Any]]:
    return [{"id": "r1", "date": day.isoformat(), "kind": "CHRONOLOGY"}]


def test_fragmented_oversight_by_workers_who_held_the_case_in_24_months() -> None:
    edge = dt.date(2018, 6, 30)  # DAY less 24 months
    two = [_allocation(2, dt.date(2019, 1, 1), dt.date(2020, 1, 1)), _allocation(3, dt.date(2020, 1, 1), None)]
    kept = _kept_chronology()
    assert not pattern_at(_visible_case(recordUpdates=kept, allocations=two), DAY).visible
    # A worker whose allocation started long ago but ran into the window held the case in it.
    held = [_allocation(1, dt.date(2010, 1, 1), edge + dt.timedelta(days=1)), *two]
    assert pattern_at(_visible_case(recordUpdates=kept, allocations=held), DAY).workers == 3
    assert pattern_at(_visible_case(recordUpdates=kept, allocations=held), DAY).visible
    ended = [_allocation(1, dt.date(2010, 1, 1), edge), *two]
    assert pattern_at(_visible_case(recordUpdates=kept, allocations=ended), DAY).workers == 2
    assert not pattern_at(_visible_case(recordUpdates=kept, allocations=ended), DAY).visible
    # An allocation starting after DAY is not yet known.
    future = [*two, _allocation(4, DAY + dt.timedelta(days=1), None)]
    assert not pattern_at(_visible_case(recordUpdates=kept, allocations=future), DAY).visible


def test_fragmented_oversight_by_no_chronology_in_12_months() -> None:
    one = [_allocation(1, dt.date(2015, 1, 1), None)]
    edge = dt.date(2019, 6, 30)  # DAY less 12 months
    assert pattern_at(_visible_case(allocations=one, recordUpdates=_kept_chronology(edge)), DAY).visible
    fresh = _kept_chronology(edge + dt.timedelta(days=1))
    assert not pattern_at(_visible_case(allocations=one, recordUpdates=fresh), DAY).visible
    summary = [{"id": "r1", "date": DAY.isoformat(), "kind": "CASE_SUMMARY"}]
    assert pattern_at(_visible_case(allocations=one, recordUpdates=summary), DAY).visible


def test_first_visible_is_the_first_month_end_that_holds() -> None:
    days = (dt.date(2017, 7, 1), dt.date(2017, 7, 2), dt.date(2018, 7, 1), dt.date(2018, 7, 2))
    case = _visible_case(concerns=_concerns(*days, dt.date(2020, 3, 15), dt.date(2020, 3, 16)))
    assert first_visible(case, dt.date(2018, 1, 1), dt.date(2021, 1, 1)) == dt.date(2020, 3, 31)
    assert first_visible(case, dt.date(2018, 1, 1), dt.date(2020, 3, 30)) is None
    assert list(month_ends(dt.date(2020, 1, 15), dt.date(2020, 3, 31))) == [
        dt.date(2020, 1, 31),
        dt.date(2020, 2, 29),
        dt.date(2020, 3, 31),
    ]


# --- slow burns --------------------------------------------------------------------------------


def _previous_month_end(day: dt.date) -> dt.date:
    return day.replace(day=1) - dt.timedelta(days=1)


def test_slow_burns_become_visible_within_the_course(slow_burns: list[LifeCourse], capsys: Any) -> None:
    visible = [c for c in slow_burns if c.visible_on is not None]
    assert len(visible) >= 0.95 * COUNT
    lags = []
    for course in visible:
        assert course.visible_on is not None
        assert course.start <= course.visible_on <= course.end
        assert pattern_at(course.case, course.visible_on).visible
        before = _previous_month_end(course.visible_on)
        if before >= course.start:
            assert not pattern_at(course.case, before).visible
        lags.append((course.visible_on - course.start).days / 365.25)
    deciles = statistics.quantiles(lags, n=10)
    with capsys.disabled():
        print(
            f"\nvisible_on lag from start, years, {len(visible)}/{COUNT} slow burns: min {min(lags):.2f}"
            f" p10 {deciles[0]:.2f} median {statistics.median(lags):.2f} p90 {deciles[-1]:.2f} max {max(lags):.2f}"
        )


def test_slow_burn_parameters_cover_their_ranges(slow_burns: list[LifeCourse]) -> None:
    params = [c.params for c in slow_burns]

    def spread(name: str) -> tuple[float, float]:
        values = [p[name] for p in params]
        return min(values), max(values)

    starts = [_day(p["start"]).year for p in params]
    assert min(starts) <= 1999 and max(starts) >= 2015
    low, high = spread("length_years")
    assert 6 <= low < 7 and 16 < high <= 18.01
    assert spread("age_at_start") == (0, 10)
    low, high = spread("concern_rate")
    assert 2 <= low < 3 and 19 < high <= 20
    low, high = spread("tenure_months")
    assert 1 <= low < 2 and 17 < high <= 18
    assert {p["hostility"] for p in params} == set(lifecourse.HOSTILITY)
    assert {p["assessment_pattern"] for p in params} == set(lifecourse.ASSESSMENT_PATTERNS)
    assert {p["chronology"] for p in params} == {"never", "one-early"}
    share = sum(p["protection_episodes"] > 0 for p in params) / COUNT
    assert 0.35 < share < 0.65
    absent = [p["absent_agency"] is not None for p in params if p["protection_episodes"]]
    assert 0.4 < sum(absent) / len(absent) < 0.8
    assert all(p["end"] <= "2025-12-31" for p in params)


def test_slow_burns_have_the_shape_they_were_drawn_with(slow_burns: list[LifeCourse]) -> None:
    reasons: collections.Counter[str] = collections.Counter()
    for course in slow_burns:
        case, p = course.case, course.params
        own = [c for c in case["concerns"] if c.get("subject", "CHILD") != "SIBLING"]
        assert len({c["agency"] for c in own}) >= 3
        years = (course.end - course.start).days / 365.25
        assert 0.4 * p["concern_rate"] < len(own) / years < 1.8 * p["concern_rate"]
        siblings = [c for c in case["concerns"] if c.get("subject") == "SIBLING"]
        assert bool(siblings) <= bool(p["siblings"])
        assessments = case.get("assessments", [])
        if p["assessment_pattern"] == "never-started":
            assert not assessments
        elif p["assessment_pattern"] == "abandoned":
            assert assessments and not any("completedOn" in a for a in assessments)
        else:
            assert len(assessments) == 1 and "completedOn" in assessments[0]
        linked = {r["assessmentId"] for r in case["referrals"] if "assessmentId" in r}
        assert linked == {a["id"] for a in assessments}
        chronology = [r for r in case.get("recordUpdates", ()) if r["kind"] == "CHRONOLOGY"]
        assert len(chronology) == (p["chronology"] == "one-early")
        hostile = sorted(_day(e["date"]) for e in case.get("engagementEvents", ()))
        assert bool(hostile) == (p["hostility"] != "none") or years * p["hostility_rate"] < 1
        for i in range(len(hostile) - 2):
            assert (hostile[i + 2] - hostile[i]).days > 45, "hostility comes spread out, never in a burst"
        reasons.update(a.get("changeReason", "") for a in case["allocations"])
        if p["absent_agency"]:
            parts = [a for c in case.get("conferences", ()) for a in c["agencies"] if a["agency"] == p["absent_agency"]]
            missed = [a for a in parts if not a.get("attended") and "reportReceivedOn" not in a]
            assert len(missed) >= 0.5 * len(parts)
    assert {"WORKER_LEFT", "CASELOAD", "TEAM_TRANSFER", "SICKNESS", "PCCHAN", "NEW_CASE"} <= set(reasons)
    every = [f for c in slow_burns for f in c.case.get("recordedFactors", ())]
    assert {"3B", "4B", "2B"} <= {f["factor"] for f in every}
    appointments = [a for c in slow_burns for a in c.case.get("appointments", ())]
    assert any(a["attended"] for a in appointments) and any(not a["attended"] for a in appointments)
    closures = [x["reason"] for c in slow_burns for x in c.case.get("closures", ())]
    assert set(closures) == {"RC8", "RC9"}
    assert any(c.get("childSeen") is False for s in slow_burns for c in s.case["concerns"])


# --- controls ----------------------------------------------------------------------------------


def _by_kind(controls: list[LifeCourse]) -> dict[str, list[LifeCourse]]:
    grouped: dict[str, list[LifeCourse]] = collections.defaultdict(list)
    for course in controls:
        grouped[course.shape].append(course)
    return grouped


def test_controls_cycle_through_the_kinds_and_show_no_pattern(controls: list[LifeCourse]) -> None:
    counts = collections.Counter(c.shape for c in controls)
    assert set(counts) == set(CONTROL_KINDS)
    assert max(counts.values()) - min(counts.values()) <= 1
    for course in controls:
        assert course.family == "control" and course.visible_on is None
        assert first_visible(course.case, course.start, course.end) is None, course.shape
    starts = [c.start.year for c in controls]
    assert min(starts) <= 1999 and max(starts) >= 2019


def _conferences(case: CaseJson) -> list[dict[str, Any]]:
    return sorted(case.get("conferences", ()), key=lambda c: c["date"])


def _reviewed_in_time(case: CaseJson, first: dt.date, kinds: tuple[str, ...]) -> None:
    """Review conferences no more than 6 months apart from `first` (a few days' grace for month ends)."""
    last = first
    for conference in _conferences(case):
        if conference["kind"] in kinds and _day(conference["date"]) > first:
            assert (_day(conference["date"]) - last).days <= 184
            last = _day(conference["date"])


def test_protection_plan_closed_runs_to_timescale(controls: list[LifeCourse]) -> None:
    for course in _by_kind(controls)["protection-plan-closed"]:
        case = course.case
        sd = _day(case["strategyDiscussions"][0]["date"])
        conferences = _conferences(case)
        icpc = _day(conferences[0]["date"])
        assert conferences[0]["kind"] == "CONFERENCE_KIND_INITIAL" and _wd_between(sd, icpc) <= 15
        assert (_day(conferences[1]["date"]) - icpc).days <= 92
        _reviewed_in_time(case, icpc, ("CONFERENCE_KIND_REVIEW",))
        for conference in conferences:
            assert all(a["attended"] and a["reportReceivedOn"] <= a["reportDueOn"] for a in conference["agencies"])
        plan = next(p for p in case["plans"] if p["kind"] == "PLAN_KIND_CHILD_PROTECTION")
        visits = [_day(v["date"]) for v in case["visits"] if sd <= _day(v["date"]) <= _day(plan["endDate"])]
        assert all(_wd_between(a, b) <= 10 for a, b in itertools.pairwise(visits))
        assert {p["kind"] for p in case["plans"]} == {"PLAN_KIND_CHILD_PROTECTION", "PLAN_KIND_CHILD_IN_NEED"}
        assert case["closures"][0]["reason"] == "RC7" and case.get("planReviews")
        assessment = case["assessments"][0]
        assert _wd_between(_day(case["referrals"][0]["date"]), _day(assessment["completedOn"])) <= 45


def test_short_cin_is_assessed_reviewed_and_closed(controls: list[LifeCourse]) -> None:
    for course in _by_kind(controls)["short-cin"]:
        case = course.case
        referral, assessment = case["referrals"][0], case["assessments"][0]
        assert referral["assessmentId"] == assessment["id"]
        assert _wd_between(_day(referral["date"]), _day(assessment["completedOn"])) <= 45
        assert case["plans"][0]["kind"] == "PLAN_KIND_CHILD_IN_NEED" and case["planReviews"]
        assert all(r["planId"] == case["plans"][0]["id"] for r in case["planReviews"])
        assert len(case["closures"]) == 1 and len(case["allocations"]) == 1


def test_disabled_child_attends_nearly_every_appointment(controls: list[LifeCourse]) -> None:
    for course in _by_kind(controls)["disabled-child-appointments"]:
        appointments = course.case["appointments"]
        missed = [a for a in appointments if not a["attended"]]
        assert len(appointments) >= 10 and 1 <= len(missed) <= 2
        assert len(course.case["planReviews"]) >= 3 and len(course.case["allocations"]) <= 2


def test_sibling_group_concerns_are_mostly_about_siblings(controls: list[LifeCourse]) -> None:
    for course in _by_kind(controls)["large-sibling-group"]:
        concerns = course.case["concerns"]
        siblings = [c for c in concerns if c.get("subject") == "SIBLING"]
        assert 5 <= course.params["siblings"] <= 8
        assert len(siblings) >= 0.6 * len(concerns)
        assert len({c["subjectChildId"] for c in siblings}) >= 3
        assert all(c["subjectChildId"].startswith(course.case["caseId"]) for c in siblings)
        assert len(course.case["allocations"]) <= 2 and len(course.case["assessments"]) >= 2


def test_moved_in_has_its_history_and_restarts_the_review_clock(controls: list[LifeCourse]) -> None:
    for course in _by_kind(controls)["moved-in"]:
        case = course.case
        (transfer,) = case["transfers"]
        assert transfer["direction"] == "IN" and transfer["historyReceived"] is True
        moved = _day(transfer["date"])
        assert any(_day(a.get("completedOn", "9999-12-31")) < moved for a in case["assessments"])
        assert any(c["date"] < transfer["date"] for c in case["concerns"])
        plan = next(p for p in case["plans"] if p["kind"] == "PLAN_KIND_CHILD_PROTECTION")
        assert plan["date"] < transfer["date"] < plan["endDate"]
        (transfer_in,) = [c for c in case["conferences"] if c["kind"] == "CONFERENCE_KIND_TRANSFER_IN"]
        assert 0 < _wd_between(moved, _day(transfer_in["date"])) <= 15
        reviews = [c for c in _conferences(case) if c["date"] > transfer_in["date"]]
        assert reviews and all(c["kind"] == "CONFERENCE_KIND_REVIEW" for c in reviews)
        _reviewed_in_time(case, _day(transfer_in["date"]), ("CONFERENCE_KIND_REVIEW",))


def test_long_open_stable_is_held_and_reassessed(controls: list[LifeCourse]) -> None:
    for course in _by_kind(controls)["long-open-stable"]:
        case = course.case
        assert 4 <= (course.end - course.start).days / 365.25 <= 10.01
        assert len(case["allocations"]) <= 2
        done = sorted(_day(a["completedOn"]) for a in case["assessments"] if "completedOn" in a)
        assert all((b - a).days < 730 for a, b in itertools.pairwise(done))
        assert (course.end - done[-1]).days < 730
        assert case["plans"][0]["kind"] in ("PLAN_KIND_CHILD_IN_NEED", "PLAN_KIND_LOOKED_AFTER")


def test_successful_closures_may_follow_recorded_factors(controls: list[LifeCourse]) -> None:
    closed_with_factors = [
        c for c in controls if c.case.get("closures") and any("endDate" in f for f in c.case.get("recordedFactors", ()))
    ]
    assert closed_with_factors
    assert all(x["reason"] == "RC7" for c in closed_with_factors for x in c.case["closures"])


# --- the command -------------------------------------------------------------------------------


def test_synth_family_writes_life_courses() -> None:
    result = CliRunner().invoke(app, ["synth", "--family", "control", "--cases", "6", "--seed", "3"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["shape"] for line in lines] == list(CONTROL_KINDS)
    assert set(lines[0]) == {"case", "family", "shape", "visible_on", "start", "end", "params"}
    assert lines == [c.to_json() for c in lifecourse.families("control", 6, 3)]
    result = CliRunner().invoke(app, ["synth", "--family", "slow-burn", "--cases", "2", "--seed", "3"])
    assert [json.loads(line)["visible_on"] for line in result.stdout.splitlines()] == [
        c.visible_on.isoformat() if c.visible_on else None for c in lifecourse.families("slow-burn", 2, 3)
    ]


def test_synth_without_family_writes_cases_as_before() -> None:
    result = CliRunner().invoke(app, ["synth", "--cases", "3", "--seed", "3", "--as-of", "2025-01-31"])
    assert result.exit_code == 0
    assert all("caseId" in json.loads(line) for line in result.stdout.splitlines())
    assert CliRunner().invoke(app, ["synth", "--family", "drifting", "--cases", "1"]).exit_code == 2

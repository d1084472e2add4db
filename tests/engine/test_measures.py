"""Tests for rules_engine.engine.measures: every measure kind, window edges and evidence."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules_engine.case.facts import (
    Assessment,
    Case,
    Child,
    Concern,
    Conference,
    ConferenceAgency,
    Plan,
    Referral,
    Visit,
    facts_of,
)
from rules_engine.engine.calendar import deadline, default_calendar, window_start
from rules_engine.engine.case_index import build_index
from rules_engine.engine.measures import compute_measures, measure_evidence
from rules_engine.engine.results import EvidenceItem
from rules_engine.errors import SourcePosition
from rules_engine.policy.compiled import CompiledMeasure, MeasureKind, MeasureValue, Window

D = dt.date
POS = SourcePosition("t.yaml", 1, 1)
K = MeasureKind


def measure(kind: MeasureKind, fact_type: str = "concerns", **kwargs: Any) -> CompiledMeasure:
    return CompiledMeasure(name="m", kind=kind, fact_type=fact_type, position=POS, **kwargs)


def value(m: CompiledMeasure, case: Case, as_of: dt.date) -> MeasureValue:
    return compute_measures([m], build_index(case), as_of)["m"]


def evidence(m: CompiledMeasure, case: Case, as_of: dt.date, limit: int = 50) -> list[str]:
    return [e.fact_id for e in measure_evidence(m, build_index(case), as_of, limit)]


def concerns(*days: dt.date, agency: str = "POLICE") -> Case:
    return Case(
        case_id="c",
        concerns=tuple(Concern(id=f"k{i}", date=d, agency=agency) for i, d in enumerate(days)),
    )


# --- COUNT and windows ---------------------------------------------------------------------

AS_OF = D(2024, 6, 30)
NINETY = Window(90, "days")  # starts (exclusive) on 1 April 2024


@pytest.mark.parametrize(
    ("day", "counted"),
    [
        (D(2024, 3, 31), False),
        (D(2024, 4, 1), False),  # exactly window_start: excluded, so 90 days is 90 days
        (D(2024, 4, 2), True),
        (AS_OF, True),
        (D(2024, 7, 1), False),  # after as_of: never counted
    ],
)
def test_count_window_edges(day: dt.date, counted: bool) -> None:
    assert value(measure(K.COUNT, window=NINETY), concerns(day), AS_OF) == int(counted)


def test_count_without_window_counts_everything_up_to_as_of() -> None:
    case = concerns(D(2000, 1, 1), D(2024, 6, 30), D(2024, 7, 1))
    assert value(measure(K.COUNT), case, AS_OF) == 2


def test_count_either_side_of_a_threshold() -> None:
    days = [D(2024, 6, d) for d in (1, 2, 3)]
    m = measure(K.COUNT, window=NINETY)
    assert [value(m, concerns(*days[:n]), AS_OF) for n in range(4)] == [0, 1, 2, 3]


def test_count_applies_the_filter() -> None:
    case = Case(
        case_id="c",
        concerns=(
            Concern(id="a", date=D(2024, 6, 1), agency="POLICE"),
            Concern(id="b", date=D(2024, 6, 2), agency="HEALTH"),
            Concern(id="c", date=D(2024, 6, 3), agency="POLICE"),
        ),
    )
    m = measure(K.COUNT, window=NINETY, where=lambda f: f.agency == "POLICE")
    assert value(m, case, AS_OF) == 2
    assert evidence(m, case, AS_OF) == ["c", "a"]  # most recent first


def test_month_window_clamps_to_the_month_end() -> None:
    # 31 March less one month is 29 February 2024: the window starts after it.
    m = measure(K.COUNT, window=Window(1, "months"))
    as_of = D(2024, 3, 31)
    assert value(m, concerns(D(2024, 2, 29)), as_of) == 0
    assert value(m, concerns(D(2024, 3, 1)), as_of) == 1


def test_working_day_window_over_easter() -> None:
    # As of Tuesday 2 April 2024, the last 2 working days are Thursday 28 March and today.
    m = measure(K.COUNT, window=Window(2, "working_days"))
    as_of = D(2024, 4, 2)
    assert value(m, concerns(D(2024, 3, 27)), as_of) == 0
    assert value(m, concerns(D(2024, 3, 28)), as_of) == 1
    assert value(m, concerns(D(2024, 3, 29)), as_of) == 1  # Good Friday lies between them


def test_facts_without_the_measured_date_are_skipped() -> None:
    case = Case(
        case_id="c",
        assessments=(
            Assessment(id="a", date=D(2024, 5, 1), completed_on=D(2024, 6, 1)),
            Assessment(id="b", date=D(2024, 5, 1)),
        ),
    )
    m = measure(K.COUNT, "assessments", window=NINETY, date_field="completed_on")
    assert value(m, case, AS_OF) == 1
    assert measure_evidence(m, build_index(case), AS_OF) == (EvidenceItem("assessments", "a", D(2024, 6, 1)),)


def test_evidence_is_limited_to_the_most_recent() -> None:
    case = concerns(*(D(2024, 6, d) for d in range(1, 11)))
    m = measure(K.COUNT, window=NINETY)
    assert evidence(m, case, AS_OF, limit=3) == ["k9", "k8", "k7"]
    assert evidence(m, case, AS_OF, limit=0) == []


def test_measures_sharing_a_filter_run_it_once_per_fact() -> None:
    calls = []

    def police(f: Any) -> bool:
        calls.append(f.id)
        return bool(f.agency == "POLICE")

    shared = {"where": police, "where_text": "agency == 'POLICE'"}
    ms = [
        CompiledMeasure("a", K.COUNT, "concerns", POS, window=NINETY, **shared),  # type: ignore[arg-type]
        CompiledMeasure("b", K.DAYS_SINCE, "concerns", POS, **shared),  # type: ignore[arg-type]
    ]
    values = compute_measures(ms, build_index(concerns(D(2024, 6, 1), D(2024, 6, 20))), AS_OF)
    assert values == {"a": 2, "b": 10}
    assert sorted(calls) == ["k0", "k1"]


# --- DISTINCT ----------------------------------------------------------------------------


def test_distinct_counts_values_in_the_window_and_ignores_empty_ones() -> None:
    case = Case(
        case_id="c",
        referrals=(
            Referral(id="a", date=D(2024, 1, 1), source="1A"),  # outside the window
            Referral(id="b", date=D(2024, 5, 1), source="2A"),
            Referral(id="c", date=D(2024, 5, 2), source="2A"),
            Referral(id="d", date=D(2024, 5, 3), source="3A"),
            Referral(id="e", date=D(2024, 5, 4)),
        ),
    )
    m = measure(K.DISTINCT, "referrals", window=NINETY, field="source")
    assert value(m, case, AS_OF) == 2
    assert value(m, case, D(2024, 5, 2)) == 1
    assert value(m, case, D(2024, 4, 30)) == 0
    assert value(m, case, D(2024, 3, 1)) == 1  # the window reaches back to "a"
    assert evidence(m, case, AS_OF) == ["d", "c", "b"]


# --- DAYS_SINCE and WORKING_DAYS_SINCE -----------------------------------------------------


def test_days_since_the_latest_fact_up_to_as_of() -> None:
    m = measure(K.DAYS_SINCE)
    case = concerns(D(2024, 6, 1), D(2024, 6, 20), D(2024, 7, 5))
    assert value(m, case, AS_OF) == 10
    assert value(m, case, D(2024, 6, 20)) == 0
    assert value(m, case, D(2024, 6, 19)) == 18
    assert value(m, case, D(2024, 5, 31)) is None
    assert evidence(m, case, AS_OF) == ["k1"]


def test_working_days_since_over_easter() -> None:
    m = measure(K.WORKING_DAYS_SINCE, "visits")
    case = Case(case_id="c", visits=(Visit(id="v", date=D(2024, 3, 28)),))
    assert value(m, case, D(2024, 3, 28)) == 0
    assert value(m, case, D(2024, 4, 1)) == 0  # Good Friday, weekend and Easter Monday
    assert value(m, case, D(2024, 4, 2)) == 1
    assert value(m, case, D(2024, 4, 3)) == 2
    assert value(m, Case(case_id="c"), D(2024, 4, 3)) is None


def test_working_days_since_over_christmas_substitute_days() -> None:
    m = measure(K.WORKING_DAYS_SINCE, "visits")
    case = Case(case_id="c", visits=(Visit(id="v", date=D(2021, 12, 24)),))
    assert value(m, case, D(2021, 12, 28)) == 0
    assert value(m, case, D(2021, 12, 29)) == 1


# --- OVERDUE -------------------------------------------------------------------------------

REFERRAL_DAY = D(2024, 3, 22)  # a Friday
DUE = D(2024, 3, 27)  # 3 working days later


def referral_then(*assessment_days: dt.date) -> Case:
    return Case(
        case_id="c",
        referrals=(Referral(id="r", date=REFERRAL_DAY),),
        assessments=tuple(Assessment(id=f"a{i}", date=d) for i, d in enumerate(assessment_days)),
    )


ASSESSED = measure(K.OVERDUE, "referrals", deadline=Window(3, "working_days"), followup_type="assessments")


@pytest.mark.parametrize(
    ("followups", "as_of", "overdue"),
    [
        ((), DUE, 0),  # the deadline day itself is still on time
        ((), DUE + dt.timedelta(days=1), 1),
        ((DUE,), DUE + dt.timedelta(days=1), 0),  # followed up on the deadline day
        ((DUE + dt.timedelta(days=1),), DUE + dt.timedelta(days=1), 0),  # late, but done by as_of
        ((DUE + dt.timedelta(days=1),), DUE, 0),  # not due yet
        ((DUE + dt.timedelta(days=2),), DUE + dt.timedelta(days=1), 1),  # after as_of: not counted
        ((REFERRAL_DAY,), D(2024, 4, 30), 0),  # the same day counts
        ((REFERRAL_DAY - dt.timedelta(days=1),), D(2024, 4, 30), 1),  # before it does not
    ],
)
def test_overdue_with_a_followup(followups: tuple[dt.date, ...], as_of: dt.date, overdue: int) -> None:
    assert value(ASSESSED, referral_then(*followups), as_of) == overdue


def test_overdue_followup_filter_and_evidence() -> None:
    m = measure(
        K.OVERDUE,
        "referrals",
        deadline=Window(3, "working_days"),
        followup_type="assessments",
        followup_where=lambda f: f.child_seen,
    )
    case = Case(
        case_id="c",
        referrals=(Referral(id="r", date=REFERRAL_DAY),),
        assessments=(Assessment(id="a", date=DUE, child_seen=False),),
    )
    assert value(m, case, D(2024, 4, 30)) == 1
    assert evidence(m, case, D(2024, 4, 30)) == ["r"]


def test_overdue_followup_of_the_same_type_is_never_the_fact_itself() -> None:
    m = measure(K.OVERDUE, "visits", deadline=Window(10, "days"), followup_type="visits")
    one = Case(case_id="c", visits=(Visit(id="v1", date=D(2024, 6, 1)),))
    assert value(m, one, D(2024, 6, 11)) == 0
    assert value(m, one, D(2024, 6, 12)) == 1
    two = Case(case_id="c", visits=(Visit(id="v1", date=D(2024, 6, 1)), Visit(id="v2", date=D(2024, 6, 5))))
    assert value(m, two, D(2024, 6, 16)) == 1  # v2 itself has had no visit after it
    assert evidence(m, two, D(2024, 6, 16)) == ["v2"]


@pytest.mark.parametrize(
    ("decided_on", "overdue"),
    [(None, 1), (D(2024, 3, 25), 0), (D(2024, 4, 2), 0), (D(2024, 4, 3), 1)],
)
def test_overdue_resolved_by_a_field(decided_on: dt.date | None, overdue: int) -> None:
    m = measure(K.OVERDUE, "referrals", deadline=Window(1, "working_days"), resolved_field="decided_on")
    case = Case(case_id="c", referrals=(Referral(id="r", date=REFERRAL_DAY, decided_on=decided_on),))
    assert value(m, case, D(2024, 3, 25)) == 0  # due Monday 25 March
    assert value(m, case, D(2024, 4, 2)) == overdue


def test_overdue_within_a_window() -> None:
    m = measure(K.OVERDUE, "referrals", window=NINETY, deadline=Window(1, "days"))
    case = Case(
        case_id="c",
        referrals=(Referral(id="old", date=D(2024, 4, 1)), Referral(id="new", date=D(2024, 4, 2))),
    )
    assert value(m, case, AS_OF) == 1
    assert evidence(m, case, AS_OF) == ["new"]


# --- OPEN ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end_date", "is_open"),
    [(None, True), (D(2024, 6, 29), False), (AS_OF, False), (D(2024, 7, 1), True)],
)
def test_open_against_the_end_date(end_date: dt.date | None, is_open: bool) -> None:
    m = measure(K.OPEN, "plans", end_field="end_date")
    case = Case(
        case_id="c",
        plans=(
            Plan(id="p", date=D(2024, 1, 1), kind="CHILD_PROTECTION", end_date=end_date),
            Plan(id="later", date=D(2024, 7, 1), kind="CHILD_PROTECTION"),  # starts after as_of
        ),
    )
    assert value(m, case, AS_OF) == int(is_open)
    assert evidence(m, case, AS_OF) == (["p"] if is_open else [])


# --- AGE -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth_date", "age"),
    [
        (D(2010, 7, 1), 13),
        (D(2010, 6, 30), 14),
        (D(2010, 6, 29), 14),
        (None, None),
        (D(2024, 7, 1), None),
        (AS_OF, 0),
    ],
)
def test_age_in_whole_years(birth_date: dt.date | None, age: int | None) -> None:
    m = measure(K.AGE, "")
    case = Case(case_id="c", child=Child(birth_date=birth_date))
    assert value(m, case, AS_OF) == age
    assert evidence(m, case, AS_OF) == []


def test_age_on_a_leap_day_birthday() -> None:
    # The anniversary of 29 February falls on 1 March in other years.
    case = Case(case_id="c", child=Child(birth_date=D(2008, 2, 29)))
    assert value(measure(K.AGE, ""), case, D(2025, 2, 28)) == 16
    assert value(measure(K.AGE, ""), case, D(2025, 3, 1)) == 17


# --- missing_when_absent -------------------------------------------------------------------


def test_missing_when_absent() -> None:
    m = measure(K.COUNT, window=NINETY, missing_when_absent=True, where=lambda f: f.agency == "HEALTH")
    assert value(m, Case(case_id="c"), AS_OF) is None
    assert value(m, concerns(D(2024, 7, 1)), AS_OF) is None  # only facts after as_of
    assert value(m, concerns(D(2020, 1, 1)), AS_OF) == 0  # present but filtered out
    assert value(measure(K.COUNT, window=NINETY), Case(case_id="c"), AS_OF) == 0
    assert measure_evidence(m, build_index(Case(case_id="c")), AS_OF) == ()


# --- conference_agencies -------------------------------------------------------------------


def test_conference_agencies_are_measured_like_any_fact() -> None:
    case = Case(
        case_id="c",
        conferences=(
            Conference(
                id="icpc",
                date=D(2024, 6, 3),
                kind="INITIAL",
                agencies=(
                    ConferenceAgency(agency="POLICE", attended=False),
                    ConferenceAgency(agency="HEALTH", attended=True),
                    ConferenceAgency(agency="GP", attended=False, report_received_on=D(2024, 6, 1)),
                ),
            ),
            Conference(
                id="old",
                date=D(2023, 1, 1),
                kind="REVIEW",
                agencies=(ConferenceAgency(agency="POLICE"),),
            ),
        ),
    )
    m = measure(K.COUNT, "conference_agencies", window=NINETY, where=lambda f: f.absent_without_report)
    assert value(m, case, AS_OF) == 1
    assert measure_evidence(m, build_index(case), AS_OF) == (
        EvidenceItem("conference_agencies", "icpc/POLICE", D(2024, 6, 3)),
    )
    assert value(measure(K.DISTINCT, "conference_agencies", field="agency"), case, AS_OF) == 3


# --- agreement with a naive implementation ---------------------------------------------------

START = D(2023, 10, 1)
AGENCIES = ("POLICE", "HEALTH", "EDUCATION")
WINDOWS = [
    None,
    Window(1, "days"),
    Window(30, "days"),
    Window(2, "weeks"),
    Window(1, "months"),
    Window(3, "months"),
    Window(1, "years"),
    Window(1, "working_days"),
    Window(10, "working_days"),
]
DEADLINES = [w for w in WINDOWS if w is not None]


def naive(m: CompiledMeasure, case: Case, as_of: dt.date) -> tuple[MeasureValue, set[str]]:
    """A measure's value and evidence ids by looping over every fact."""
    if m.kind is K.AGE:
        birth = case.child.birth_date
        if birth is None or birth > as_of:
            return None, set()
        years = as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
        return years, set()
    facts = facts_of(case, m.fact_type)
    if m.missing_when_absent and not any(f.date <= as_of for f in facts):
        return None, set()
    dated = [
        (getattr(f, m.date_field), f)
        for f in facts
        if getattr(f, m.date_field) is not None
        and getattr(f, m.date_field) <= as_of
        and (m.where is None or m.where(f))
    ]
    if m.window is not None:
        start = window_start(as_of, m.window)
        windowed = [(d, f) for d, f in dated if d > start]
    else:
        windowed = dated
    if m.kind is K.COUNT:
        return len(windowed), {f.id for _, f in windowed}
    if m.kind is K.DISTINCT:
        return len({getattr(f, m.field) for _, f in windowed} - {None}), set()
    if m.kind in (K.DAYS_SINCE, K.WORKING_DAYS_SINCE):
        if not dated:
            return None, set()
        latest = max(d for d, _ in dated)
        if m.kind is K.DAYS_SINCE:
            return (as_of - latest).days, set()
        days = (latest + dt.timedelta(days=i) for i in range(1, (as_of - latest).days + 1))
        return sum(1 for d in days if default_calendar().is_working_day(d)), set()
    if m.kind is K.OPEN:
        still = [f for _, f in dated if getattr(f, m.end_field) is None or getattr(f, m.end_field) > as_of]
        return len(still), {f.id for f in still}
    assert m.kind is K.OVERDUE and m.deadline is not None
    overdue = set()
    for d, f in windowed:
        if as_of <= deadline(d, m.deadline):
            continue
        if m.followup_type:
            resolved = any(
                getattr(g, m.followup_date_field) is not None
                and d <= getattr(g, m.followup_date_field) <= as_of
                and (m.followup_where is None or m.followup_where(g))
                and not (m.followup_type == m.fact_type and g.id == f.id)
                for g in facts_of(case, m.followup_type)
            )
        else:
            done = getattr(f, m.resolved_field)
            resolved = done is not None and done <= as_of
        if not resolved:
            overdue.add(f.id)
    return len(overdue), overdue


offsets = st.integers(0, 400)
maybe_offset = st.none() | st.integers(0, 60)


def on(offset: int) -> dt.date:
    return START + dt.timedelta(days=offset)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    def many(strategy: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(strategy, max_size=12))

    conc = many(st.tuples(offsets, st.sampled_from(AGENCIES)))
    refs = many(st.tuples(offsets, maybe_offset, st.sampled_from(["1A", "2A", None])))
    asses = many(st.tuples(offsets, maybe_offset, st.booleans()))
    plans = many(st.tuples(offsets, maybe_offset))
    visits = many(st.tuples(offsets, st.booleans()))
    confs = many(
        st.tuples(
            offsets,
            st.lists(st.tuples(st.sampled_from(AGENCIES), st.booleans()), max_size=3, unique_by=lambda t: t[0]),
        )
    )
    birth = draw(st.none() | offsets.map(lambda o: on(o - 5000)))

    def after(offset: int, extra: int | None) -> dt.date | None:
        return None if extra is None else on(offset + extra)

    return Case(
        case_id="c",
        child=Child(birth_date=birth),
        concerns=tuple(Concern(id=f"k{i}", date=on(o), agency=a) for i, (o, a) in enumerate(conc)),
        referrals=tuple(
            Referral(id=f"r{i}", date=on(o), decided_on=after(o, e), source=s) for i, (o, e, s) in enumerate(refs)
        ),
        assessments=tuple(
            Assessment(id=f"a{i}", date=on(o), completed_on=after(o, e), child_seen=seen)
            for i, (o, e, seen) in enumerate(asses)
        ),
        plans=tuple(
            Plan(id=f"p{i}", date=on(o), kind="CHILD_IN_NEED", end_date=after(o, e)) for i, (o, e) in enumerate(plans)
        ),
        visits=tuple(Visit(id=f"v{i}", date=on(o), child_seen=seen) for i, (o, seen) in enumerate(visits)),
        conferences=tuple(
            Conference(
                id=f"c{i}",
                date=on(o),
                kind="REVIEW",
                agencies=tuple(ConferenceAgency(agency=a, attended=att) for a, att in parts),
            )
            for i, (o, parts) in enumerate(confs)
        ),
    )


def police(f: Any) -> bool:
    return bool(f.agency == "POLICE")


def seen(f: Any) -> bool:
    return bool(f.child_seen)


@st.composite
def measure_sets(draw: st.DrawFn) -> list[CompiledMeasure]:
    def w() -> Window | None:
        return draw(st.sampled_from(WINDOWS))

    def due() -> Window:
        return draw(st.sampled_from(DEADLINES))

    absent = draw(st.booleans())
    specs: list[tuple[MeasureKind, str, dict[str, Any]]] = [
        (K.COUNT, "concerns", {"window": w()}),
        (K.COUNT, "concerns", {"window": w(), "where": police, "where_text": "agency == POLICE"}),
        (K.COUNT, "assessments", {"window": w(), "date_field": "completed_on"}),
        (K.COUNT, "conference_agencies", {"window": w(), "where": lambda f: not f.attended}),
        (K.DISTINCT, "concerns", {"window": w(), "field": "agency"}),
        (K.DISTINCT, "referrals", {"window": w(), "field": "source"}),
        (K.DAYS_SINCE, "visits", {"where": seen, "where_text": "child_seen"}),
        (K.DAYS_SINCE, "assessments", {"date_field": "completed_on"}),
        (K.WORKING_DAYS_SINCE, "visits", {}),
        (K.OPEN, "plans", {"end_field": "end_date"}),
        (K.OPEN, "assessments", {"end_field": "completed_on"}),
        (K.OVERDUE, "referrals", {"window": w(), "deadline": due(), "resolved_field": "decided_on"}),
        (K.OVERDUE, "referrals", {"deadline": due(), "followup_type": "assessments", "followup_where": seen}),
        (K.OVERDUE, "visits", {"window": w(), "deadline": due(), "followup_type": "visits"}),
        (
            K.OVERDUE,
            "assessments",
            {"deadline": due(), "followup_type": "assessments", "followup_date_field": "completed_on"},
        ),
        (K.AGE, "", {}),
    ]
    return [
        CompiledMeasure(f"m{i}", kind, fact_type, POS, missing_when_absent=absent, **kwargs)
        for i, (kind, fact_type, kwargs) in enumerate(specs)
    ]


@settings(max_examples=150, deadline=None)
@given(case=cases(), ms=measure_sets(), as_of=offsets.map(on))
def test_compute_measures_matches_a_naive_loop(case: Case, ms: list[CompiledMeasure], as_of: dt.date) -> None:
    index = build_index(case)
    values = compute_measures(ms, index, as_of)
    for m in ms:
        expected, ids = naive(m, case, as_of)
        assert values[m.name] == expected, m
        if m.kind in (K.COUNT, K.OPEN, K.OVERDUE):
            assert {e.fact_id for e in measure_evidence(m, index, as_of, limit=1000)} == ids, m


# --- LATEST ----------------------------------------------------------------------------------


def _visits(*alone: bool) -> Case:
    """Visits a week apart, oldest first, up to AS_OF; `alone` says whether each saw the child alone."""
    first = AS_OF - dt.timedelta(weeks=len(alone) - 1)
    return Case(
        case_id="c",
        visits=tuple(
            Visit(id=f"v{i}", date=first + dt.timedelta(weeks=i), child_seen=True, seen_alone=a)
            for i, a in enumerate(alone)
        ),
    )


def test_latest_counts_matches_among_the_last_facts_only() -> None:
    m = measure(K.LATEST, "visits", last=2, matching=lambda v: v.seen_alone)
    assert value(m, _visits(True, False, False), AS_OF) == 0  # alone three visits ago: outside the last 2
    assert value(m, _visits(False, True, False), AS_OF) == 1  # alone at the second-last visit
    assert value(m, _visits(True, True), AS_OF) == 2
    assert evidence(m, _visits(True, False, False), AS_OF) == ["v2", "v1"]


def test_latest_with_fewer_facts_looks_at_those_and_with_none_is_missing() -> None:
    m = measure(K.LATEST, "visits", last=2, matching=lambda v: v.seen_alone)
    assert value(m, _visits(False), AS_OF) == 0
    assert value(m, Case(case_id="c"), AS_OF) is None


def test_latest_ignores_facts_after_as_of_and_filters_with_where() -> None:
    m = measure(K.LATEST, "visits", last=1, matching=lambda v: v.seen_alone, where=lambda v: v.child_seen)
    case = _visits(True, False)
    assert value(m, case, AS_OF - dt.timedelta(days=1)) == 1  # the latest visit is after as_of
    assert value(m, case, AS_OF) == 0

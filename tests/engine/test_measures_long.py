"""Long-horizon measures (rules_engine.engine.long_measures): each kind and option at, and either side
of, its threshold and its window edge; missing values; evidence; compile errors with positions;
float values through the durable-rules Matcher and the reference evaluator alike."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from rules_engine.case.facts import (
    Allocation,
    Assessment,
    Case,
    Concern,
    Conference,
    ConferenceAgency,
    EngagementEvent,
    Visit,
)
from rules_engine.engine.case_index import build_index
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.engine.measures import compute_measures, measure_evidence
from rules_engine.errors import RuleFileError, RuleFileErrors, SourcePosition
from rules_engine.policy.compiled import CompiledMeasure, MeasureKind, MeasureValue, Window
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.policy.templates import format_value
from rules_engine.tools.docs import measure_words

D = dt.date
K = MeasureKind
POS = SourcePosition("t.yaml", 1, 1)
AS_OF = D(2024, 6, 30)
YEAR = Window(12, "months")  # starts (exclusive) on 30 June 2023


def measure(kind: MeasureKind, fact_type: str = "concerns", name: str = "m", **kwargs: Any) -> CompiledMeasure:
    return CompiledMeasure(name=name, kind=kind, fact_type=fact_type, position=POS, **kwargs)


def value(m: CompiledMeasure, case: Case, as_of: dt.date = AS_OF) -> MeasureValue:
    return compute_measures([m], build_index(case), as_of)[m.name]


def evidence(m: CompiledMeasure, case: Case, as_of: dt.date = AS_OF) -> list[str]:
    return [e.fact_id for e in measure_evidence(m, build_index(case), as_of)]


def concerns(*days: dt.date) -> Case:
    return Case(
        case_id="c", concerns=tuple(Concern(id=f"k{i:02d}", date=d, agency="POLICE") for i, d in enumerate(days))
    )


def allocations(*spans: tuple[dt.date, dt.date | None, str]) -> Case:
    return Case(
        case_id="c",
        allocations=tuple(
            Allocation(id=f"a{i}", date=start, end_date=end, worker_id=worker)
            for i, (start, end, worker) in enumerate(spans)
        ),
    )


# --- count / distinct + overlaps --------------------------------------------------------------

OVERLAPS = measure(K.DISTINCT, "allocations", field="worker_id", window=YEAR, overlaps=True, end_field="end_date")


@pytest.mark.parametrize(
    ("end", "counted"),
    [
        (D(2023, 6, 29), False),  # ended before the window
        (D(2023, 6, 30), False),  # ended on the window's (exclusive) start: held the case before it
        (D(2023, 7, 1), True),  # one day into the window
        (None, True),  # still held
    ],
)
def test_overlaps_window_edge(end: dt.date | None, counted: bool) -> None:
    case = allocations((D(2020, 1, 1), end, "old"), (D(2024, 1, 1), None, "new"))
    assert value(OVERLAPS, case) == 1 + counted
    count = measure(K.COUNT, "allocations", window=YEAR, overlaps=True, end_field="end_date")
    assert value(count, case) == 1 + counted
    assert evidence(count, case) == (["a1", "a0"] if counted else ["a1"])


def test_overlaps_counts_workers_who_held_the_case_not_only_those_who_started() -> None:
    # Three workers started in the window; two more held it into the window; one left before.
    case = allocations(
        (D(2021, 1, 1), D(2022, 1, 1), "w0"),
        (D(2022, 1, 1), D(2023, 8, 1), "w1"),
        (D(2023, 6, 30), D(2023, 9, 1), "w2"),  # started on the window start, ended inside it
        (D(2023, 9, 1), D(2024, 1, 1), "w3"),
        (D(2024, 1, 1), D(2024, 5, 1), "w4"),
        (D(2024, 5, 1), None, "w1"),  # the same worker back: counted once
        (D(2024, 7, 1), None, "w9"),  # after as_of
    )
    assert value(OVERLAPS, case) == 4
    started = measure(K.DISTINCT, "allocations", field="worker_id", window=YEAR)
    assert value(started, case) == 3


def test_overlaps_missing_when_absent() -> None:
    m = measure(K.COUNT, "allocations", window=YEAR, overlaps=True, end_field="end_date", missing_when_absent=True)
    assert value(m, Case(case_id="c")) is None
    assert value(OVERLAPS, Case(case_id="c")) == 0


# --- count + since_latest -----------------------------------------------------------------------


START = D(2020, 1, 1)


def completed(day: dt.date | None, start: dt.date = START, ident: str = "as1") -> Assessment:
    return Assessment(id=ident, date=start, completed_on=day)


SINCE = measure(K.COUNT, since_type="assessments", since_date_field="completed_on")


@pytest.mark.parametrize(
    ("concern_day", "counted"),
    [(D(2024, 2, 29), False), (D(2024, 3, 1), False), (D(2024, 3, 2), True)],
)
def test_since_latest_edge(concern_day: dt.date, counted: bool) -> None:
    case = concerns(concern_day).model_copy(update={"assessments": (completed(D(2024, 3, 1)),)})
    assert value(SINCE, case) == int(counted)
    assert evidence(SINCE, case) == (["k00"] if counted else [])


def test_since_latest_takes_the_latest_anchor_up_to_as_of() -> None:
    base = concerns(D(2022, 1, 1), D(2023, 1, 1), D(2024, 1, 1), D(2024, 6, 1))
    anchors = (
        completed(D(2022, 6, 1), ident="as1"),
        completed(D(2023, 6, 1), ident="as2"),
        completed(D(2024, 7, 1), ident="as3"),  # completed after as_of: not yet
        completed(None, start=D(2024, 2, 1), ident="as4"),  # never completed: no completion date
    )
    case = base.model_copy(update={"assessments": anchors})
    assert value(SINCE, case) == 2
    assert value(SINCE, case, D(2024, 7, 1)) == 0
    # No anchor at all: every fact counts.
    assert value(SINCE, base) == 4
    # Filtered anchors, and a window on top.
    only_as1 = measure(
        K.COUNT,
        since_type="assessments",
        since_date_field="completed_on",
        since_where=lambda a: a.id == "as1",
        since_where_text="id == as1",
    )
    assert value(only_as1, case) == 3
    windowed = measure(K.COUNT, window=Window(3, "months"), since_type="assessments", since_date_field="completed_on")
    assert value(windowed, case) == 1


# --- rate ---------------------------------------------------------------------------------------

FIVE_YEARS = Window(5, "years")  # from 30 June 2024: starts (exclusive) on 30 June 2019
RATE = measure(K.RATE, window=FIVE_YEARS)


def yearly(first: dt.date, count: int) -> list[dt.date]:
    return [D(first.year + i, first.month, first.day) for i in range(count)]


def test_rate_over_a_five_year_window() -> None:
    days = yearly(D(2019, 7, 1), 5) * 2  # 10 concerns, the first one day inside the window
    case = concerns(*days)
    assert value(RATE, case) == 2.0  # 10 over 1,826 days (just under 5 years)
    assert isinstance(value(RATE, case), float)
    # One concern more or less either side of 2 a year.
    assert value(RATE, concerns(*days, D(2024, 1, 1))) == 2.2
    assert value(RATE, concerns(*days[1:])) == 1.8
    assert len(evidence(RATE, case)) == 10


def test_rate_window_edge_and_first_fact() -> None:
    # A concern exactly on the window start is outside it, one day later inside.
    outside = concerns(D(2019, 6, 30), D(2024, 1, 1))
    inside = concerns(D(2019, 7, 1), D(2024, 1, 1))
    assert value(RATE, outside) == 0.2  # 1 over 5 years (the series began before the window)
    assert value(RATE, inside) == 0.4
    # A series that began 2.5 years ago: the years run from its first fact.
    assert value(RATE, concerns(D(2022, 1, 1), D(2023, 1, 1), D(2024, 1, 1))) == round(3 / (911 / 365.25), 2)
    # A first month's burst is read over one year at least.
    assert value(RATE, concerns(D(2024, 6, 1), D(2024, 6, 2), D(2024, 6, 3))) == 3.0
    # No window: the whole history, from the first fact.
    assert value(measure(K.RATE), concerns(D(2014, 6, 30), D(2024, 6, 30))) == round(2 / (3653 / 365.25), 2)


def test_rate_without_facts() -> None:
    assert value(RATE, Case(case_id="c")) == 0.0
    assert value(RATE, concerns(D(2024, 7, 1))) == 0.0  # after as_of
    assert value(measure(K.RATE, window=FIVE_YEARS, missing_when_absent=True), Case(case_id="c")) is None


# --- trend --------------------------------------------------------------------------------------

TWO_YEARS = Window(2, "years")  # last: (30 Jun 2022, 30 Jun 2024]; before: (30 Jun 2020, 30 Jun 2022]
TREND = measure(K.TREND, window=TWO_YEARS)


@pytest.mark.parametrize(
    ("day", "change"),
    [
        (D(2020, 6, 30), 0),  # on the earlier window's start: in neither
        (D(2020, 7, 1), -1),  # first day of the earlier window
        (D(2022, 6, 30), -1),  # last day of the earlier window
        (D(2022, 7, 1), 1),  # first day of the last window
        (AS_OF, 1),
        (D(2024, 7, 1), 0),  # after as_of
    ],
)
def test_trend_window_edges(day: dt.date, change: int) -> None:
    assert value(TREND, concerns(day)) == change


def test_trend_value_and_evidence() -> None:
    case = concerns(D(2019, 1, 1), D(2021, 1, 1), D(2023, 1, 1), D(2023, 6, 1), D(2024, 1, 1))
    assert value(TREND, case) == 2
    assert evidence(TREND, case) == ["k04", "k03", "k02", "k01"]
    assert value(measure(K.TREND, window=TWO_YEARS, missing_when_absent=True), Case(case_id="c")) is None


# --- periods ------------------------------------------------------------------------------------

PERIODS = measure(K.PERIODS, window=FIVE_YEARS, period=Window(12, "months"), at_least=2)


def test_periods_counts_years_holding_enough_facts() -> None:
    # Periods back from as_of: (30 Jun 2023, 30 Jun 2024], (30 Jun 2022, 30 Jun 2023], ...
    case = concerns(
        D(2024, 6, 30),
        D(2023, 7, 1),  # period 1: 2 facts
        D(2023, 6, 30),  # period 2: 1 fact
        D(2021, 1, 1),
        D(2021, 2, 1),
        D(2021, 3, 1),  # period 4: 3 facts
        D(2019, 6, 30),  # the window's start: outside
    )
    assert value(PERIODS, case) == 2
    assert evidence(PERIODS, case) == ["k00", "k01", "k05", "k04", "k03"]
    one = measure(K.PERIODS, window=FIVE_YEARS, period=Window(12, "months"))
    assert value(one, case) == 3  # at_least defaults to 1
    assert value(measure(K.PERIODS, window=FIVE_YEARS, period=Window(12, "months"), at_least=4), case) == 0


@pytest.mark.parametrize(
    ("second", "held"),
    [
        (D(2023, 6, 30), 0),  # a day before the period: one fact in each of two periods
        (D(2023, 7, 1), 1),  # first day of the latest period
        (D(2024, 7, 1), 0),  # after as_of
    ],
)
def test_periods_edge(second: dt.date, held: int) -> None:
    assert value(PERIODS, concerns(D(2024, 1, 1), second)) == held


def test_periods_in_days_and_every_period_full() -> None:
    weekly = measure(K.PERIODS, window=Window(4, "weeks"), period=Window(7, "days"))
    case = concerns(*(AS_OF - dt.timedelta(days=7 * i) for i in range(4)))
    assert value(weekly, case) == 4
    assert value(weekly, concerns(AS_OF - dt.timedelta(days=28))) == 0  # the window's start
    assert value(weekly, concerns(AS_OF - dt.timedelta(days=27))) == 1


# --- longest_gap --------------------------------------------------------------------------------

GAP = measure(K.LONGEST_GAP, "visits")


def visits(*days: dt.date) -> Case:
    return Case(case_id="c", visits=tuple(Visit(id=f"v{i:02d}", date=d, child_seen=True) for i, d in enumerate(days)))


def test_longest_gap_between_facts_and_trailing() -> None:
    case = visits(D(2024, 1, 1), D(2024, 3, 1), D(2024, 6, 1))  # gaps of 60, 92, then 29 to as_of
    assert value(GAP, case) == 92
    assert evidence(GAP, case) == ["v02", "v01"]
    trailing = visits(D(2024, 1, 1), D(2024, 2, 1))  # 31, then 150 to as_of
    assert value(GAP, trailing) == 150
    assert evidence(GAP, trailing) == ["v01"]
    assert value(GAP, visits(AS_OF)) == 0
    assert value(GAP, visits(D(2024, 6, 29))) == 1


def test_longest_gap_missing_without_a_fact_up_to_as_of() -> None:
    assert value(GAP, Case(case_id="c")) is None
    assert value(GAP, visits(D(2024, 7, 1))) is None
    assert evidence(GAP, Case(case_id="c")) == []


def test_longest_gap_counts_only_days_inside_the_window() -> None:
    windowed = measure(K.LONGEST_GAP, "visits", window=YEAR)  # 366 days: 1 Jul 2023 .. 30 Jun 2024
    # Last seen long before the window: the whole window.
    assert value(windowed, visits(D(2020, 1, 1))) == 366
    # A gap that began before the window is cut at its start.
    case = visits(D(2023, 1, 1), D(2023, 10, 1), D(2024, 6, 1))
    assert value(windowed, case) == (D(2024, 6, 1) - D(2023, 10, 1)).days
    assert value(windowed, visits(D(2023, 1, 1), D(2023, 12, 31), D(2024, 6, 1))) == 184
    # Window edge: a visit on the window's start is outside it; a day later, inside.
    assert value(windowed, visits(D(2023, 6, 30), D(2024, 6, 30))) == 366
    assert value(windowed, visits(D(2023, 7, 1), D(2024, 6, 30))) == 365


# --- longest_open -------------------------------------------------------------------------------

OPEN = measure(K.LONGEST_OPEN, "assessments", end_field="completed_on")


@pytest.mark.parametrize(
    ("completed_on", "days"),
    [(D(2024, 6, 29), 0), (AS_OF, 0), (D(2024, 7, 1), 181), (None, 181)],
)
def test_longest_open_edge(completed_on: dt.date | None, days: int) -> None:
    case = Case(case_id="c", assessments=(Assessment(id="a", date=D(2024, 1, 1), completed_on=completed_on),))
    assert value(OPEN, case) == days
    assert evidence(OPEN, case) == (["a"] if days else [])


def test_longest_open_takes_the_oldest_open_fact() -> None:
    case = Case(
        case_id="c",
        assessments=(
            Assessment(id="a1", date=D(2020, 1, 1), completed_on=D(2020, 2, 1)),
            Assessment(id="a2", date=D(2022, 1, 1)),
            Assessment(id="a3", date=D(2023, 1, 1)),
            Assessment(id="a4", date=D(2024, 7, 1)),  # not started yet at as_of
        ),
    )
    assert value(OPEN, case) == (AS_OF - D(2022, 1, 1)).days
    assert evidence(OPEN, case) == ["a2"]
    assert value(OPEN, Case(case_id="c")) == 0
    missing = measure(K.LONGEST_OPEN, "assessments", end_field="completed_on", missing_when_absent=True)
    assert value(missing, Case(case_id="c")) is None


# --- latest + group_by --------------------------------------------------------------------------


def conferences(*rows: tuple[dt.date, dict[str, bool]]) -> Case:
    """Conferences with, per agency, whether it attended."""
    return Case(
        case_id="c",
        conferences=tuple(
            Conference(
                id=f"c{i}",
                date=day,
                kind="REVIEW",
                agencies=tuple(ConferenceAgency(agency=a, attended=att) for a, att in agencies.items()),
            )
            for i, (day, agencies) in enumerate(rows)
        ),
    )


GROUPED = measure(
    K.LATEST, "conference_agencies", last=3, group_by="agency", matching=lambda f: f.absent_without_report
)


def test_latest_by_group_counts_within_each_agency() -> None:
    # Police absent at 2 of its last 3 conferences, years apart; health once.
    case = conferences(
        (D(2016, 1, 1), {"POLICE": False, "HEALTH": True}),
        (D(2019, 1, 1), {"POLICE": True, "HEALTH": False}),
        (D(2021, 1, 1), {"POLICE": False, "HEALTH": True}),
        (D(2023, 1, 1), {"POLICE": False, "HEALTH": True, "GP": True}),
    )
    assert value(GROUPED, case) == 2
    assert evidence(GROUPED, case) == ["c3/POLICE", "c2/POLICE", "c1/POLICE"]
    # Either side of the threshold: one more attended conference pushes an absence out.
    later = conferences(
        (D(2019, 1, 1), {"POLICE": False}),
        (D(2021, 1, 1), {"POLICE": True}),
        (D(2023, 1, 1), {"POLICE": False}),
        (D(2024, 1, 1), {"POLICE": True}),
    )
    assert value(GROUPED, later) == 1
    assert value(GROUPED, later, D(2023, 12, 31)) == 2  # the last conference not yet held
    # Without group_by the agencies are mixed: the last 3 rows are the last conference's.
    mixed = measure(K.LATEST, "conference_agencies", last=3, matching=lambda f: f.absent_without_report)
    assert value(mixed, case) == 1


def test_latest_by_group_missing_and_ties() -> None:
    assert value(GROUPED, Case(case_id="c")) is None
    tied = conferences((D(2020, 1, 1), {"POLICE": False}), (D(2022, 1, 1), {"HEALTH": False}))
    assert value(GROUPED, tied) == 1
    assert evidence(GROUPED, tied) == ["c1/HEALTH"]  # of equal groups, the one with the latest fact


# --- sum and ratio ------------------------------------------------------------------------------


def engagement(*rows: tuple[dt.date, str]) -> list[EngagementEvent]:
    return [EngagementEvent(id=f"e{i}", date=day, kind=kind) for i, (day, kind) in enumerate(rows)]


THREATS = measure(K.COUNT, "engagement_events", "threats", where=lambda f: f.kind == "THREAT_TO_STAFF")
REFUSED = measure(K.COUNT, "engagement_events", "refused", where=lambda f: f.kind == "REFUSED_ACCESS")
HOSTILITY = measure(K.SUM, "", "hostility", inputs=(THREATS, REFUSED))


def test_sum_adds_its_inputs_and_unites_their_evidence() -> None:
    case = Case(
        case_id="c",
        engagement_events=tuple(
            engagement(
                (D(2010, 1, 1), "THREAT_TO_STAFF"),
                (D(2020, 1, 1), "REFUSED_ACCESS"),
                (D(2024, 1, 1), "THREAT_TO_STAFF"),
            )
        ),
        concerns=(Concern(id="k1", date=D(2024, 2, 1), agency="POLICE"),),
    )
    values = compute_measures([THREATS, REFUSED, HOSTILITY], build_index(case), AS_OF)
    assert values == {"threats": 2, "refused": 1, "hostility": 3}
    # Computed on demand when its inputs were not measured first.
    assert value(HOSTILITY, case) == 3
    assert evidence(HOSTILITY, case) == ["e2", "e1", "e0"]
    # A sum of sums, across fact types; a fact counted by two inputs is evidence once.
    with_concerns = measure(K.SUM, "", "all", inputs=(HOSTILITY, measure(K.COUNT, "concerns", "c"), THREATS))
    assert value(with_concerns, case) == 6
    items = measure_evidence(with_concerns, build_index(case), AS_OF)
    assert [(e.fact_type, e.fact_id) for e in items] == [
        ("concerns", "k1"),
        ("engagement_events", "e2"),
        ("engagement_events", "e1"),
        ("engagement_events", "e0"),
    ]


def test_sum_is_missing_when_an_input_is() -> None:
    absent = measure(K.COUNT, "visits", "visits", missing_when_absent=True)
    total = measure(K.SUM, "", "total", inputs=(THREATS, absent))
    assert value(total, Case(case_id="c")) is None
    assert evidence(total, Case(case_id="c")) == []
    rates = measure(K.SUM, "", "rates", inputs=(measure(K.RATE, name="r1"), measure(K.RATE, name="r2")))
    assert value(rates, concerns(D(2024, 1, 1))) == 2.0


NOT_SEEN = measure(K.COUNT, "visits", "not_seen", where=lambda v: not v.child_seen)
ALL_VISITS = measure(K.COUNT, "visits", "all_visits")
SHARE = measure(K.RATIO, "", "share", inputs=(NOT_SEEN, ALL_VISITS))


def test_ratio_is_a_percentage_to_one_decimal() -> None:
    seen = [Visit(id=f"v{i}", date=D(2024, 1, 1 + i), child_seen=i >= 1) for i in range(3)]
    case = Case(case_id="c", visits=tuple(seen))
    assert value(SHARE, case) == 33.3
    assert evidence(SHARE, case) == ["v2", "v1", "v0"]
    assert value(SHARE, case, D(2024, 1, 1)) == 100.0
    assert value(SHARE, Case(case_id="c")) is None  # denominator 0
    missing = measure(K.COUNT, "visits", "m", missing_when_absent=True)
    assert value(measure(K.RATIO, "", "r", inputs=(missing, ALL_VISITS)), Case(case_id="c")) is None


# --- floats through the durable-rules Matcher and the reference evaluator ---------------------------

FLOAT_RULESET = """\
parameters:
  rate_threshold: 2.35
  share_threshold: 33.3
measures:
  - {name: share, kind: ratio, numerator: not_seen, denominator: all_visits}
  - {name: not_seen, kind: count, facts: visits, where: not child_seen}
  - {name: all_visits, kind: count, facts: visits}
  - {name: concern_rate, kind: rate, facts: concerns, window: 4 years}
rules:
  - id: share-high
    title: Share high
    condition: share >= share_threshold
    severity: low
    escalation: x
    explanation: '{share}% of visits without the child seen.'
    source: {kind: local, reference: test}
  - id: share-exact
    title: Share exact
    condition: share == 33.3
    severity: low
    escalation: x
    explanation: '{share}%'
    source: {kind: local, reference: test}
  - id: rate-high
    title: Rate high
    condition: concern_rate >= rate_threshold
    severity: low
    escalation: x
    explanation: '{concern_rate} concerns a year (threshold {rate_threshold}).'
    source: {kind: local, reference: test}
  - id: rate-low
    title: Rate low
    condition: concern_rate < rate_threshold
    severity: low
    escalation: x
    explanation: '{concern_rate}'
    source: {kind: local, reference: test}
"""


@pytest.fixture(scope="module")
def float_rulesets(tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory = tmp_path_factory.mktemp("floats") / "floats"
    directory.mkdir()
    (directory / "rules.yaml").write_text(FLOAT_RULESET, encoding="utf-8")
    ruleset = compile_ruleset(directory)
    engine, reference = PreparedRuleset(ruleset), PreparedRuleset(ruleset, matcher="reference")
    yield engine, reference
    engine.close()


@pytest.mark.parametrize(("concern_count", "unseen"), [(8, 0), (9, 1), (10, 2), (11, 3), (0, 0)])
def test_float_values_match_alike_in_the_engine_and_the_reference(
    float_rulesets: Any, concern_count: int, unseen: int
) -> None:
    engine, reference = float_rulesets
    # 4 years of 1,461 days: 9 concerns are 2.25 a year, 10 are 2.5; unseen 1 of 3 is 33.3%.
    days = [D(2020, 7, 1) + dt.timedelta(days=100 * i) for i in range(concern_count)]
    case = concerns(*days).model_copy(
        update={"visits": tuple(Visit(id=f"v{i}", date=D(2024, 1, 1 + i), child_seen=i >= unseen) for i in range(3))}
    )
    got, want = engine.evaluate(case, AS_OF), reference.evaluate(case, AS_OF)
    assert got.outcomes == want.outcomes
    assert not got.matcher_fallback
    rate = got.measures["concern_rate"]
    assert got.outcomes["rate-high"] is (rate >= 2.35)
    assert got.outcomes["share-exact"] is (got.measures["share"] == 33.3)
    for flag in got.flags:
        assert "e" not in flag.explanation.split()[0]  # no exponent notation
    if unseen == 1:
        assert got.outcomes["share-high"] is True
        share = next(f for f in got.flags if f.rule_id == "share-high")
        assert share.explanation == "33.3% of visits without the child seen."


def test_format_value_shows_what_was_measured() -> None:
    assert [format_value(v) for v in (2.35, 2.0, 33.3, 0.0, -0.0, 100.0, 0.05, 7)] == [
        "2.35",
        "2",
        "33.3",
        "0",
        "0",
        "100",
        "0.05",
        "7",
    ]


# --- compile errors with positions ------------------------------------------------------------------

BASE = """\
parameters:
  span: 5 years
  three: 3
  label: text
measures:
  - {name: threats, kind: count, facts: engagement_events}
  - {name: refused, kind: count, facts: engagement_events}
"""


def compile_errors(tmp_path: Path, measures: str) -> list[RuleFileError]:
    directory = tmp_path / "rs"
    directory.mkdir()
    (directory / "rules.yaml").write_text(BASE + measures, encoding="utf-8")
    with pytest.raises(RuleFileErrors) as info:
        compile_ruleset(directory)
    return info.value.errors


def located(errors: list[RuleFileError]) -> list[tuple[int, int, str]]:
    return [(e.position.line, e.position.column, e.message) for e in errors]


def column(line: str, token: str) -> int:
    """The 1-based column of `token` in `line`: where an error about it must point."""
    return line.index(token) + 1


def test_unknown_measure_in_a_sum_or_ratio(tmp_path: Path) -> None:
    first = "  - {name: hostility, kind: sum, measures: [threats, refusd]}"
    second = "  - {name: share, kind: ratio, numerator: threats, denominator: nothing}"
    found = located(compile_errors(tmp_path, f"{first}\n{second}\n"))
    assert found == [
        (8, column(first, "refusd"), "unknown measure 'refusd' in sum 'hostility'; did you mean 'refused'?"),
        (9, column(second, "nothing"), "unknown measure 'nothing' in ratio 'share'"),
    ]


def test_cycles_between_sums_and_ratios(tmp_path: Path) -> None:
    lines = [
        "  - {name: a, kind: sum, measures: [threats, b]}",
        "  - {name: b, kind: ratio, numerator: a, denominator: refused}",
        "  - {name: c, kind: sum, measures: [c]}",
    ]
    found = located(compile_errors(tmp_path, "\n".join(lines) + "\n"))
    assert found == [
        (9, column(lines[1], "a, denominator"), "measures read each other in a cycle: a -> b -> a"),
        (10, column(lines[2], "c]"), "'c' cannot read itself"),
    ]


def test_sum_and_ratio_options(tmp_path: Path) -> None:
    found = located(
        compile_errors(
            tmp_path,
            "  - {name: s, kind: sum, measures: [threats], missing_when_absent: true}\n"
            "  - {name: r, kind: ratio, numerator: threats}\n"
            "  - {name: t, kind: sum, facts: concerns, measures: [threats]}\n",
        )
    )
    assert [(line, message.split(":")[0]) for line, _, message in found] == [
        (8, "'missing_when_absent' does not apply to sum measures"),
        (9, "ratio measures need 'denominator'"),
        (10, "'facts' does not apply to sum measures"),
    ]


@pytest.mark.parametrize(
    ("measure_text", "token", "message"),
    [
        ("window: 5 years, period: 7 months", "7 months", "the window (5 years) must be a whole number of periods"),
        ("window: 12 months, period: 1 week", "1 week", "the window (12 months) must be a whole number of periods"),
        ("window: 4 weeks, period: 10 working days", "10 working", "working days cannot be used"),
        ("window: 600 days, period: 1 day", "1 day", "the window holds 600 periods; at most 500"),
        ("window: span, period: 1 year, at_least: thre", "thre", "not 'thre'; did you mean 'three'?"),
        ("window: span, period: 1 year, at_least: label", "label", "'at_least' must be a number from 1 to 1000"),
        ("period: 1 year", "{", "periods measures need 'window'"),
    ],
)
def test_periods_options(tmp_path: Path, measure_text: str, token: str, message: str) -> None:
    line = f"  - {{name: p, kind: periods, facts: concerns, {measure_text}}}"
    found = located(compile_errors(tmp_path, line + "\n"))
    assert len(found) == 1, found
    assert found[0][:2] == (8, column(line, token)), found
    assert message in found[0][2]


def test_periods_accepts_whole_periods_and_parameters(tmp_path: Path) -> None:
    directory = tmp_path / "ok"
    directory.mkdir()
    text = BASE + (
        "  - {name: p1, kind: periods, facts: concerns, window: span, period: 1 year, at_least: three}\n"
        "  - {name: p2, kind: periods, facts: concerns, window: 2 years, period: 3 months}\n"
        "  - {name: p3, kind: periods, facts: concerns, window: 12 weeks, period: 14 days}\n"
    )
    (directory / "rules.yaml").write_text(text, encoding="utf-8")
    measures = {m.name: m for m in compile_ruleset(directory).measures}
    assert (measures["p1"].period, measures["p1"].at_least, measures["p1"].window) == (
        Window(12, "months"),
        3,
        Window(5, "years"),
    )
    assert measures["p2"].period == Window(3, "months")
    assert measures["p3"].period == Window(14, "days")


@pytest.mark.parametrize(
    ("measure_text", "token", "message"),
    [
        (
            "kind: latest, facts: conference_agencies, last: 3, matching: absent_without_report, group_by: agencyy",
            "agencyy",
            "conference_agencies has no field 'agencyy'; did you mean 'agency'?",
        ),
        (
            "kind: latest, facts: conference_agencies, last: 3, matching: attended, group_by: report_due_on",
            "report_due_on",
            "group_by must be a field; 'report_due_on' is not one",
        ),
        ("kind: distinct, facts: allocations, field: worker_id, overlaps: true", "true", "'overlaps' needs a 'window'"),
        ("kind: count, facts: concerns, window: 1 year, overlaps: true", "{", "measures with 'overlaps' over concerns"),
        (
            "kind: count, facts: allocations, window: 1 year, end_field: end_date",
            "end_field",
            "'end_field' only applies",
        ),
        ("kind: count, facts: concerns, since_latest: assesments", "assesments", "unknown fact type 'assesments'"),
        (
            "kind: count, facts: concerns, since_latest: assessments, since_latest_date_field: factors",
            "factors",
            "since_latest_date_field must be a date field",
        ),
        ("kind: count, facts: concerns, since_latest_where: child_seen", "since_latest_where", "only applies with"),
        ("kind: rate, facts: concerns, window: 5 yeers", "5 yeers", "window must be a duration such as '12 months'"),
        ("kind: trend, facts: concerns", "{", "trend measures need 'window'"),
        ("kind: longest_open, facts: concerns", "{", "longest_open measures over concerns need 'end_field'"),
        ("kind: longest_gap, facts: visits, period: 1 year", "period", "'period' does not apply to longest_gap"),
    ],
)
def test_option_errors_are_located(tmp_path: Path, measure_text: str, token: str, message: str) -> None:
    line = f"  - {{name: x, {measure_text}}}"
    found = located(compile_errors(tmp_path, line + "\n"))
    assert len(found) == 1, found
    assert message in found[0][2], found
    assert found[0][:2] == (8, column(line, token)), found


def test_compiled_order_puts_inputs_first(tmp_path: Path) -> None:
    directory = tmp_path / "ok"
    directory.mkdir()
    text = BASE + (
        "  - {name: all, kind: sum, measures: [hostility, share]}\n"
        "  - {name: share, kind: ratio, numerator: threats, denominator: hostility}\n"
        "  - {name: hostility, kind: sum, measures: [threats, refused]}\n"
    )
    (directory / "rules.yaml").write_text(text, encoding="utf-8")
    ruleset = compile_ruleset(directory)
    assert [m.name for m in ruleset.measures] == ["threats", "refused", "hostility", "share", "all"]
    by_name = {m.name: m for m in ruleset.measures}
    assert [m.name for m in by_name["all"].inputs] == ["hostility", "share"]
    assert by_name["share"].inputs[1] is by_name["hostility"]


def test_plain_words_for_measures_without_a_description() -> None:
    assert measure_words(SINCE) == "concerns after the latest of the assessments by completed on"
    assert measure_words(RATE) == "concerns per year in the last 5 years"
    assert measure_words(HOSTILITY) == "threats + refused"
    assert measure_words(SHARE) == "not_seen as a percentage of all_visits"
    assert measure_words(PERIODS) == "periods of 12 months in the last 5 years with at least 2 concerns"

"""requests: proto cases into facts.Case with every violation named by path; responses: evaluations into messages."""

from __future__ import annotations

import datetime as dt
import typing
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.case import codes
from rules_engine.case.checks import enum_codes
from rules_engine.case.facts import FACT_TYPES
from rules_engine.engine.results import Evaluation, EvidenceItem, ExplainedFlag, RulesetStatus, UndeterminedRule
from rules_engine.errors import CaseError
from rules_engine.policy.compiled import Severity
from rules_engine.service import requests, responses

TODAY = dt.date(2025, 1, 1)


def _rich_case() -> case_pb2.Case:
    """One fact of every type, every field set."""
    c = case_pb2.Case(case_id="case-1", child=case_pb2.Child(birth_date="2016-03-04"))
    c.concerns.add(
        id="c1", date="2024-05-01", agency="POLICE", category="DOMESTIC_ABUSE", significant_harm=True,
        household_member_ids=["h1"], child_seen=False, subject="SIBLING", subject_child_id="sib-2",
    )  # fmt: skip
    c.referrals.add(
        id="r1",
        date="2024-05-02",
        source="1A",
        decided_on="2024-05-03",
        no_further_action=True,
        primary_need="N1",
        assessment_id="a1",
    )
    c.assessments.add(id="a1", date="2024-05-04", completed_on="2024-06-01", factors=["1B", "3B"], child_seen=True)
    c.strategy_discussions.add(id="s1", date="2024-05-05", agencies=["POLICE", "HEALTH"], section47_started=True)
    c.section47_enquiries.add(id="e1", date="2024-05-06", completed_on="2024-05-20", conference_not_required=True)
    conference = c.conferences.add(id="k1", date="2024-05-21", kind=case_pb2.CONFERENCE_KIND_INITIAL)
    conference.agencies.add(agency="POLICE", attended=True)
    conference.agencies.add(agency="GP", invited=False, report_due_on="2024-05-18", report_received_on="2024-05-22")
    c.core_groups.add(id="g1", date="2024-06-01", agencies=["SCHOOL_NURSE"])
    c.plans.add(
        id="p1",
        date="2024-05-21",
        end_date="2024-11-21",
        kind=case_pb2.PLAN_KIND_CHILD_PROTECTION,
        category="NEG",
    )
    c.visits.add(id="v1", date="2024-06-02", child_seen=True, seen_alone=True, bedroom_seen=True)
    c.allocations.add(id="w1", date="2024-05-01", worker_id="worker-7", change_reason="PCCHAN")
    c.missed_appointments.add(id="m1", date="2024-06-03", agency="GP")
    c.school_attendance.add(id="sa1", date="2024-07-01", attendance_percent=82.5)
    c.engagement_events.add(id="x1", date="2024-06-04", kind="THREAT_TO_STAFF")
    c.closures.add(id="cl1", date="2024-12-01", reason="RC8")
    c.record_updates.add(id="u1", date="2024-06-05", kind="CHRONOLOGY")
    c.household_members.add(id="h1", date="2024-01-01", relationship="PARTNER_OF_PARENT", adult=False)
    c.recorded_factors.add(id="f1", date="2024-04-01", factor="3B", agency="POLICE", end_date="2024-09-01")
    c.appointments.add(id="ap1", date="2024-06-03", agency="GP", attended=False, was_not_brought=True)
    c.plan_reviews.add(id="pr1", date="2024-08-01", plan_id="p1", plan_kind=case_pb2.PLAN_KIND_CHILD_IN_NEED)
    c.transfers.add(id="t1", date="2024-01-02", direction="IN", history_received=True)
    return c


def _violations(message: case_pb2.Case, path: str = "case") -> list[tuple[str, str]]:
    with pytest.raises(CaseError) as caught:
        requests.case_model_from_proto(message, TODAY, path)
    return [(v.field, v.description) for v in caught.value.violations]


def test_rich_case_converts_field_by_field() -> None:
    case = requests.case_model_from_proto(_rich_case(), TODAY)

    assert case.case_id == "case-1"
    assert case.child.birth_date == dt.date(2016, 3, 4)
    assert case.concerns[0].model_dump() == {
        "id": "c1", "date": dt.date(2024, 5, 1), "agency": "POLICE", "category": "DOMESTIC_ABUSE",
        "significant_harm": True, "household_member_ids": ("h1",), "child_seen": False, "subject": "SIBLING",
        "subject_child_id": "sib-2",
    }  # fmt: skip
    assert case.referrals[0].assessment_id == "a1"
    assert case.recorded_factors[0].model_dump() == {
        "id": "f1", "date": dt.date(2024, 4, 1), "factor": "3B", "agency": "POLICE", "end_date": dt.date(2024, 9, 1),
    }  # fmt: skip
    assert (case.appointments[0].agency, case.appointments[0].attended) == ("GP", False)
    assert case.appointments[0].was_not_brought is True
    assert (case.plan_reviews[0].plan_id, case.plan_reviews[0].plan_kind) == ("p1", "CHILD_IN_NEED")
    assert (case.transfers[0].direction, case.transfers[0].history_received) == ("IN", True)
    assert case.referrals[0].decided_on == dt.date(2024, 5, 3)
    assert case.assessments[0].factors == ("1B", "3B")
    assert case.conferences[0].kind == "INITIAL"
    police, gp = case.conferences[0].agencies
    assert (police.invited, police.attended, police.report_due_on) == (True, True, None)
    assert (gp.invited, gp.report_received_on) == (False, dt.date(2024, 5, 22))
    assert case.plans[0].kind == "CHILD_PROTECTION"
    assert case.plans[0].end_date == dt.date(2024, 11, 21)
    assert case.missed_appointments[0].was_not_brought is True  # unset optional: the model's default
    assert case.school_attendance[0].attendance_percent == 82.5
    assert case.household_members[0].adult is False  # set optional: as sent
    assert all(len(getattr(case, name)) == 1 for name in FACT_TYPES)


def test_empty_strings_are_absent() -> None:
    message = case_pb2.Case(case_id="case-1")
    message.referrals.add(id="r1", date="2024-05-02")
    message.concerns.add(id="c1", date="2024-05-02", agency="HEALTH")

    case = requests.case_model_from_proto(message, TODAY)

    assert (case.referrals[0].decided_on, case.referrals[0].source) == (None, None)
    assert case.referrals[0].assessment_id is None
    assert case.concerns[0].category == "OTHER"
    # Not recorded is not "not seen"; an empty subject is this child.
    assert (case.concerns[0].child_seen, case.concerns[0].subject, case.concerns[0].subject_child_id) == (
        None,
        "CHILD",
        None,
    )
    assert case.child.birth_date is None


@pytest.mark.parametrize(
    ("enum", "domain"),
    [(case_pb2.ConferenceKind, codes.ConferenceKind), (case_pb2.PlanKind, codes.PlanKind)],
)
def test_enums_map_to_the_domain_codes_without_prefix(enum: typing.Any, domain: typing.Any) -> None:
    mapped = enum_codes(enum.DESCRIPTOR)

    assert set(mapped.values()) == set(typing.get_args(domain))
    assert case_pb2.PLAN_KIND_CHILD_PROTECTION not in enum_codes(case_pb2.ConferenceKind.DESCRIPTOR) or True
    assert enum_codes(case_pb2.PlanKind.DESCRIPTOR)[case_pb2.PLAN_KIND_CHILD_PROTECTION] == "CHILD_PROTECTION"


def test_missing_case_id_and_fact_id_and_date() -> None:
    message = case_pb2.Case()
    message.concerns.add(date="2024-01-01", agency="POLICE")
    message.visits.add(id="v1")

    assert _violations(message) == [
        ("case.case_id", "required"),
        ("case.concerns[0].id", "required"),
        ("case.visits[0].date", "required"),
    ]


@pytest.mark.parametrize("text", ["2024-1-01", "20240101", "2024-W01-1", "2024-02-30", "01/02/2024"])
def test_malformed_dates(text: str) -> None:
    message = case_pb2.Case(case_id="case-1")
    message.referrals.add(id="r1", date="2024-01-01", decided_on=text)

    assert _violations(message) == [("case.referrals[0].decided_on", "not a date (YYYY-MM-DD)")]


def test_dates_more_than_a_year_ahead() -> None:
    message = case_pb2.Case(case_id="case-1")
    message.visits.add(id="v1", date="2026-01-01")  # within a year (and a day): fine
    message.visits.add(id="v2", date="2026-01-03")

    assert _violations(message) == [("case.visits[1].date", "more than a year in the future (2026-01-03)")]


def test_end_before_start() -> None:
    message = case_pb2.Case(case_id="case-1")
    message.plans.add(id="p1", date="2024-06-01", end_date="2024-05-31", kind=case_pb2.PLAN_KIND_CHILD_IN_NEED)
    message.household_members.add(id="h1", date="2024-06-01", end_date="2024-06-01", relationship="FATHER")

    assert _violations(message) == [("case.plans[0].end_date", "before date (2024-06-01)")]


def test_unknown_codes() -> None:
    message = _rich_case()
    message.conferences[0].agencies[1].agency = "MI5"
    message.assessments[0].factors.append("99Z")

    assert _violations(message) == [
        ("case.assessments[0].factors[2]", "unknown code '99Z'; not one of the 38 codes in rules_engine/case/codes.py"),
        (
            "case.conferences[0].agencies[1].agency",
            "unknown code 'MI5'; not one of the 23 codes in rules_engine/case/codes.py",
        ),
    ]


def test_unspecified_and_unknown_enum_values() -> None:
    message = case_pb2.Case(case_id="case-1")
    message.conferences.add(id="k1", date="2024-01-01")
    message.plans.add(id="p1", date="2024-01-01", kind=9)

    assert _violations(message) == [
        ("case.conferences[0].kind", "required"),
        ("case.plans[0].kind", "unknown value 9"),
    ]


def test_duplicate_ids_name_the_second_occurrence() -> None:
    message = case_pb2.Case(case_id="case-1")
    for fact_id in ("c1", "c2", "c1"):
        message.concerns.add(id=fact_id, date="2024-01-01", agency="POLICE")
    message.visits.add(id="c1", date="2024-01-01")  # ids are unique within a fact type only
    conference = message.conferences.add(id="k1", date="2024-01-01", kind=case_pb2.CONFERENCE_KIND_REVIEW)
    conference.agencies.add(agency="GP")
    conference.agencies.add(agency="GP")

    assert _violations(message) == [
        ("case.concerns[2].id", "duplicate id; first at concerns[0]"),
        ("case.conferences[0].agencies[1].agency", "agency listed twice"),
    ]


def test_bounds() -> None:
    message = case_pb2.Case(case_id="x" * 129)
    message.visits.add(id="v 1", date="2024-01-01")
    message.school_attendance.add(id="s1", date="2024-01-01", attendance_percent=101)
    message.assessments.add(id="a1", date="2024-01-01", factors=["1B"] * 1001)

    assert _violations(message) == [
        ("case.assessments[0].factors", "more than 1000 items"),
        ("case.case_id", "longer than 128 characters"),
        ("case.school_attendance[0].attendance_percent", "Input should be less than or equal to 100"),
        ("case.visits[0].id", "only letters, digits and . _ : / @ - are allowed"),
    ]


def test_too_many_facts() -> None:
    message = case_pb2.Case(case_id="case-1")
    for i in range(requests.MAX_FACTS + 1):
        message.visits.add(id=f"v{i}", date="2024-01-01")

    assert _violations(message) == [("case", "10001 facts; at most 10000 per case")]


def test_violations_are_capped_and_in_document_order() -> None:
    message = case_pb2.Case(case_id="case-1")
    for i in range(60):
        message.visits.add(id=f"v{i}", date="bad")

    violations = _violations(message)

    assert len(violations) == requests.MAX_VIOLATIONS + 1
    assert [field for field, _ in violations[9:11]] == ["case.visits[9].date", "case.visits[10].date"]
    assert violations[-1] == ("case", "10 more violations not shown")


def test_path_prefix_for_batches() -> None:
    assert _violations(case_pb2.Case(), path="cases[3]") == [("cases[3].case_id", "required")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("2025-01-02", dt.datetime(2025, 1, 2, tzinfo=dt.UTC)),
        ("2025-01-02T10:30:00Z", dt.datetime(2025, 1, 2, 10, 30, tzinfo=dt.UTC)),
        ("2025-01-02t10:30:00.5z", dt.datetime(2025, 1, 2, 10, 30, 0, 500000, tzinfo=dt.UTC)),
        (
            "2025-01-02T10:30:00+01:00",
            dt.datetime(2025, 1, 2, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        ),
    ],
)
def test_parse_as_of(text: str, expected: dt.datetime | None) -> None:
    assert requests.parse_as_of(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "20250102", "2025-01-02T10:30:00", "2025-13-01", "2025-01-02T25:00Z"])
def test_parse_as_of_rejects(text: str) -> None:
    with pytest.raises(CaseError) as caught:
        requests.parse_as_of(text)

    assert [v.field for v in caught.value.violations] == ["as_of"]


def test_case_from_json_reads_the_proto3_json_form() -> None:
    message = requests.case_from_json(
        {
            "caseId": "case-1",
            "concerns": [{"id": "c1", "date": "2024-01-01", "agency": "POLICE", "significantHarm": True}],
            "plans": [{"id": "p1", "date": "2024-01-01", "kind": "PLAN_KIND_CHILD_PROTECTION"}],
            "household_members": [{"id": "h1", "date": "2024-01-01", "relationship": "MOTHER"}],
        }
    )

    case = requests.case_model_from_proto(message, TODAY)
    assert case.concerns[0].significant_harm is True
    assert case.plans[0].kind == "CHILD_PROTECTION"
    assert case.household_members[0].adult is True


def test_case_from_json_rejects_unknown_fields() -> None:
    with pytest.raises(CaseError) as caught:
        requests.case_from_json({"caseId": "case-1", "notes": "free text"})

    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("case.notes", "unknown field (value 'free text')")
    ]


def _flag(rule_id: str, severity: Severity) -> ExplainedFlag:
    return ExplainedFlag(
        rule_id=rule_id,
        title=rule_id.title(),
        severity=severity,
        escalation="Team manager",
        explanation="because",
        condition="x >= 1",
        measured_values=(("x", 2), ("ok", True), ("gap", None), ("ratio", 0.5)),
        thresholds=(("min", 1), ("category", "NEG")),
        source_kind="statutory",
        source_reference="Working Together 2023",
        evidence=(EvidenceItem("concerns", "c1", dt.date(2024, 1, 2)),),
        contributing_rule_ids=("base",),
    )


def test_evaluation_to_proto_orders_flags_most_severe_first() -> None:
    evaluation = Evaluation(
        case_id="case-1",
        ruleset="demo",
        ruleset_version="abc",
        decision_id="d1",
        as_of=dt.datetime(2025, 1, 2, 3, 4, 5),
        flags=(_flag("b", Severity.LOW), _flag("z", Severity.CRITICAL), _flag("a", Severity.LOW)),
        shadow_flags=(_flag("s", Severity.INFO),),
        undetermined=(UndeterminedRule("u", "U", ("gap",)),),
    )

    response = responses.evaluation_to_proto(evaluation)

    assert [(f.rule_id, f.severity) for f in response.flags] == [
        ("z", pb.SEVERITY_CRITICAL),
        ("a", pb.SEVERITY_LOW),
        ("b", pb.SEVERITY_LOW),
    ]
    flag = response.flags[0]
    assert [v.WhichOneof("value") for v in flag.measured_values] == ["number", "boolean", None, "number"]
    assert flag.measured_values[2].missing
    assert flag.thresholds[1].text == "NEG"
    assert flag.threshold_source.kind == pb.THRESHOLD_SOURCE_KIND_STATUTORY
    assert (flag.evidence[0].fact_id, flag.evidence[0].date) == ("c1", "2024-01-02")
    assert list(flag.contributing_rule_ids) == ["base"]
    assert response.as_of == "2025-01-02T03:04:05Z"
    assert [f.rule_id for f in response.shadow_flags] == ["s"]
    assert list(response.undetermined[0].missing_measures) == ["gap"]

    as_json = responses.evaluation_to_json(evaluation)
    assert as_json["rulesetVersion"] == "abc"
    assert as_json["flags"][0]["severity"] == "SEVERITY_CRITICAL"


def test_evaluation_to_json_keeps_empty_lists() -> None:
    evaluation = Evaluation("case-1", "demo", "abc", "d1", dt.datetime(2025, 1, 2, tzinfo=dt.UTC), flags=())

    assert responses.evaluation_to_json(evaluation)["flags"] == []


def test_ruleset_status_to_proto() -> None:
    status = RulesetStatus("demo", "abc", dt.datetime(2025, 1, 2, tzinfo=dt.UTC), 4, 1, "f.yaml:1:2: bad", None)

    info = responses.ruleset_status_to_proto(status)

    assert (info.name, info.version, info.loaded_at) == ("demo", "abc", "2025-01-02T00:00:00Z")
    assert (info.rule_count, info.shadow_rule_count, info.last_error, info.last_error_at) == (
        4,
        1,
        "f.yaml:1:2: bad",
        "",
    )


_STRINGS = st.one_of(
    st.sampled_from(
        [
            "",
            "2024-01-01",
            "2024-02-30",
            "2099-01-01",
            "c1",
            "POLICE",
            "NEGLECT",
            "1A",
            "MOTHER",
            "SIBLING",
            "IN",
            "WBRI",
            "YES",
            "x" * 200,
        ]
    ),
    st.text(max_size=12),
)


def _messages(descriptor: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Arbitrary proto3 JSON for a message type: valid codes and dates mixed with garbage."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            value: st.SearchStrategy[Any] = _messages(field.message_type)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            value = st.integers(0, 9)
        elif field.type == FieldDescriptor.TYPE_BOOL:
            value = st.booleans()
        elif field.type == FieldDescriptor.TYPE_INT32:  # the child's deprivation decile, 1 to 10
            value = st.integers(-1, 12)
        elif field.type == FieldDescriptor.TYPE_DOUBLE:
            # proto3 JSON spells the non-finite doubles as strings
            value = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["NaN", "-Infinity"]))
        else:
            value = _STRINGS
        fields[field.name] = st.lists(value, max_size=3) if field.is_repeated else value
    return st.fixed_dictionaries({}, optional=fields)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages(case_pb2.Case.DESCRIPTOR))
def test_any_case_converts_or_raises_case_error(document: dict[str, Any]) -> None:
    message = json_format.ParseDict(document, case_pb2.Case())

    try:
        case = requests.case_model_from_proto(message, TODAY)
    except CaseError as exc:
        assert exc.violations
        assert all(v.field.startswith("case") for v in exc.violations)
    else:
        assert case.case_id == message.case_id


@pytest.mark.parametrize("text", ["case-1\n", "case-1\r\n", "\ncase-1", "case 1", "", "x" * 129])
def test_ids_outside_the_case_are_refused_with_a_trailing_newline_too(text: str) -> None:
    """Python's `$` matches before a final newline; an id with one must still be refused."""
    with pytest.raises(CaseError):
        requests.case_id_from_text(text)
    with pytest.raises(CaseError):
        requests.withdrawn_from_proto([pb.FactRef(fact_type="concerns", fact_id=text)])


def test_ids_outside_the_case_accept_every_id_character() -> None:
    assert requests.case_id_from_text("Ab9._:/@-" + "x" * 119) == "Ab9._:/@-" + "x" * 119

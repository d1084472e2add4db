"""The slow-burn facts (issue 13): a concern's subject and child seen, a referral's assessment,
recorded factors, appointments, plan reviews and transfers, through both conversion paths."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.case import facts, records
from rules_engine.errors import CaseError
from rules_engine.service import requests, responses
from rules_engine.store import codec
from rules_engine.store.chronology import build_chronology

TODAY = dt.date(2025, 1, 1)
NEW_TYPES = ("recorded_factors", "appointments", "plan_reviews", "transfers")


def _case() -> case_pb2.Case:
    c = case_pb2.Case(case_id="case-1")
    c.concerns.add(
        id="c1", date="2024-02-01", agency="SCHOOL_NURSE", child_seen=False, subject="SIBLING",
        subject_child_id="sib-2",
    )  # fmt: skip
    c.concerns.add(id="c2", date="2024-02-02", agency="POLICE", child_seen=True, subject="HOUSEHOLD")
    c.concerns.add(id="c3", date="2024-02-03", agency="GP")  # none of the new fields
    c.referrals.add(id="r1", date="2024-02-04", assessment_id="a-not-sent-yet")
    c.referrals.add(id="r2", date="2024-02-05")
    c.recorded_factors.add(id="f1", date="2024-01-05", factor="3B", agency="POLICE", end_date="2024-07-01")
    c.recorded_factors.add(id="f2", date="2024-01-06", factor="4B", agency="MENTAL_HEALTH")
    c.appointments.add(id="ap1", date="2024-03-01", agency="GP", attended=True)
    c.appointments.add(id="ap2", date="2024-03-02", was_not_brought=True)
    c.plan_reviews.add(id="pr1", date="2024-04-01", plan_id="p1", plan_kind=case_pb2.PLAN_KIND_CHILD_IN_NEED)
    c.plan_reviews.add(id="pr2", date="2024-04-02", plan_kind=case_pb2.PLAN_KIND_LOOKED_AFTER)
    c.transfers.add(id="t1", date="2023-12-01", direction="IN", history_received=True)
    c.transfers.add(id="t2", date="2024-08-01", direction="OUT")
    return c


def _fast(message: case_pb2.Case) -> Any:
    case = requests.case_from_proto(message, TODAY)
    assert not isinstance(case, facts.Case), "the fast path fell back to validation"
    return case


def _violations(convert: Any, message: case_pb2.Case) -> list[tuple[str, str]]:
    with pytest.raises(CaseError) as caught:
        convert(message, TODAY)
    return [(v.field, v.description) for v in caught.value.violations]


def test_new_types_are_measurable_fact_types() -> None:
    for name in NEW_TYPES:
        assert name in facts.FACT_TYPES
        assert name in facts.MEASURABLE_FACT_TYPES
    assert facts.RecordedFactor.end_fields == ("end_date",)


def test_every_new_field_reads_the_same_through_both_paths() -> None:
    message = _case()
    model = requests.case_model_from_proto(message, TODAY)
    fast = _fast(message)
    assert records.of(model) == fast

    c1, c2, c3 = fast.concerns
    assert (c1.child_seen, c1.subject, c1.subject_child_id) == (False, "SIBLING", "sib-2")
    assert (c2.child_seen, c2.subject, c2.subject_child_id) == (True, "HOUSEHOLD", None)
    # Unset: not recorded (None, not False), and the concern is about this child.
    assert (c3.child_seen, c3.subject, c3.subject_child_id) == (None, "CHILD", None)
    assert [r.assessment_id for r in fast.referrals] == ["a-not-sent-yet", None]
    f1, f2 = fast.recorded_factors
    assert (f1.factor, f1.agency, f1.end_date) == ("3B", "POLICE", dt.date(2024, 7, 1))
    assert (f2.factor, f2.agency, f2.end_date) == ("4B", "MENTAL_HEALTH", None)
    ap1, ap2 = fast.appointments
    assert (ap1.agency, ap1.attended, ap1.was_not_brought) == ("GP", True, False)
    assert (ap2.agency, ap2.attended, ap2.was_not_brought) == ("HEALTH", False, True)
    assert [(p.plan_id, p.plan_kind) for p in fast.plan_reviews] == [
        ("p1", "CHILD_IN_NEED"),
        (None, "LOOKED_AFTER"),
    ]
    assert [(t.direction, t.history_received) for t in fast.transfers] == [("IN", True), ("OUT", False)]


def test_the_proto3_json_form_carries_the_new_facts() -> None:
    message = requests.case_from_json(
        {
            "caseId": "case-1",
            "concerns": [
                {"id": "c1", "date": "2024-01-01", "agency": "POLICE", "childSeen": False, "subject": "SIBLING"}
            ],
            "referrals": [{"id": "r1", "date": "2024-01-01", "assessmentId": "a1"}],
            "recordedFactors": [{"id": "f1", "date": "2024-01-01", "factor": "1B", "agency": "POLICE"}],
            "appointments": [{"id": "ap1", "date": "2024-01-01", "attended": True}],
            "planReviews": [{"id": "pr1", "date": "2024-01-01", "planKind": "PLAN_KIND_LOOKED_AFTER"}],
            "transfers": [{"id": "t1", "date": "2024-01-01", "direction": "IN", "historyReceived": True}],
        }
    )
    case = requests.case_model_from_proto(message, TODAY)
    assert records.of(case) == _fast(message)
    assert case.concerns[0].child_seen is False
    assert case.referrals[0].assessment_id == "a1"
    assert case.plan_reviews[0].plan_kind == "LOOKED_AFTER"
    assert all(len(getattr(case, name)) == 1 for name in NEW_TYPES)


def test_a_request_without_the_new_fields_reads_as_before() -> None:
    old = case_pb2.Case(case_id="case-1")
    old.concerns.add(id="c1", date="2024-01-01", agency="POLICE", category="NEGLECT")
    old.referrals.add(id="r1", date="2024-01-02", source="1A", decided_on="2024-01-03")
    # As an old client sends it: bytes with none of the new field numbers.
    message = case_pb2.Case.FromString(old.SerializeToString())
    case = requests.case_model_from_proto(message, TODAY)
    assert records.of(case) == _fast(message)
    assert case.concerns[0].model_dump(include={"child_seen", "subject", "subject_child_id"}) == {
        "child_seen": None,
        "subject": "CHILD",
        "subject_child_id": None,
    }
    assert case.referrals[0].assessment_id is None
    assert all(getattr(case, name) == () for name in NEW_TYPES)


def test_facts_stored_before_the_new_fields_read_with_their_defaults() -> None:
    fields = {
        "concerns:c1": '{"id":"c1","date":"2024-01-01","agency":"POLICE"}',
        "referrals:r1": '{"id":"r1","date":"2024-01-02","source":"1A"}',
    }
    models = codec.case_from_fields("case-1", fields)
    assert models is not None
    assert (models.concerns[0].subject, models.concerns[0].child_seen, models.referrals[0].assessment_id) == (
        "CHILD",
        None,
        None,
    )
    assert records.of(codec.records_from_fields("case-1", fields)) == records.of(models)


def test_the_new_facts_are_stored_as_the_same_text_from_records_and_models() -> None:
    message = _case()
    models = requests.case_model_from_proto(message, TODAY)
    fast = _fast(message)
    assert codec.stored_facts(fast) == codec.stored_facts(models)
    # Defaults are left out: an unset child_seen is not written as false.
    stored = dict(codec.stored_facts(models))
    assert stored["concerns:c3"] == '{"id":"c3","date":"2024-02-03","agency":"GP"}'
    assert '"child_seen":false' in stored["concerns:c1"]
    fields = {**stored, codec.CHILD_FIELD: "{}"}
    assert records.of(codec.case_from_fields("case-1", fields)) == records.of(
        codec.records_from_fields("case-1", fields)
    )
    assert records.to_case(fast) == models


# (field set to a bad value, expected path, expected description)
_BAD: list[tuple[str, Any, str, str]] = [
    (
        "subject",
        lambda c: setattr(c.concerns[0], "subject", "COUSIN"),
        "case.concerns[0].subject",
        "unknown code 'COUSIN'; one of CHILD, SIBLING, HOUSEHOLD",
    ),
    (
        "subject child id",
        lambda c: setattr(c.concerns[0], "subject_child_id", "sib 2"),
        "case.concerns[0].subject_child_id",
        "only letters, digits and . _ : / @ - are allowed",
    ),
    (
        "assessment id",
        lambda c: setattr(c.referrals[0], "assessment_id", "a" * 129),
        "case.referrals[0].assessment_id",
        "longer than 128 characters",
    ),
    (
        "factor",
        lambda c: setattr(c.recorded_factors[1], "factor", "99Z"),
        "case.recorded_factors[1].factor",
        "unknown code '99Z'; not one of the 38 codes in rules_engine/case/codes.py",
    ),
    (
        "factor agency",
        lambda c: setattr(c.recorded_factors[0], "agency", ""),
        "case.recorded_factors[0].agency",
        "required",
    ),
    (
        "factor end date",
        lambda c: setattr(c.recorded_factors[1], "end_date", "2024-02-30"),
        "case.recorded_factors[1].end_date",
        "not a date (YYYY-MM-DD)",
    ),
    (
        "factor ends before it was recorded",
        lambda c: setattr(c.recorded_factors[0], "end_date", "2023-12-31"),
        "case.recorded_factors[0].end_date",
        "before date (2024-01-05)",
    ),
    (
        "appointment agency",
        lambda c: setattr(c.appointments[0], "agency", "DENTIST"),
        "case.appointments[0].agency",
        "unknown code 'DENTIST'; not one of the 23 codes in rules_engine/case/codes.py",
    ),
    (
        "appointment date",
        lambda c: setattr(c.appointments[1], "date", "20240302"),
        "case.appointments[1].date",
        "not a date (YYYY-MM-DD)",
    ),
    (
        "appointment id",
        lambda c: setattr(c.appointments[1], "id", "ap1"),
        "case.appointments[1].id",
        "duplicate id; first at appointments[0]",
    ),
    ("plan kind", lambda c: setattr(c.plan_reviews[1], "plan_kind", 0), "case.plan_reviews[1].plan_kind", "required"),
    (
        "unknown plan kind",
        lambda c: setattr(c.plan_reviews[0], "plan_kind", 9),
        "case.plan_reviews[0].plan_kind",
        "unknown value 9",
    ),
    (
        "plan id",
        lambda c: setattr(c.plan_reviews[0], "plan_id", "p\n1"),
        "case.plan_reviews[0].plan_id",
        "only letters, digits and . _ : / @ - are allowed",
    ),
    (
        "direction",
        lambda c: setattr(c.transfers[0], "direction", "SIDEWAYS"),
        "case.transfers[0].direction",
        "unknown code 'SIDEWAYS'; one of IN, OUT",
    ),
    ("no direction", lambda c: setattr(c.transfers[1], "direction", ""), "case.transfers[1].direction", "required"),
    (
        "transfer date",
        lambda c: setattr(c.transfers[1], "date", "2027-01-01"),
        "case.transfers[1].date",
        "more than a year in the future (2027-01-01)",
    ),
]


@pytest.mark.parametrize(("label", "breaks", "path", "description"), _BAD, ids=[b[0] for b in _BAD])
def test_bad_new_fields_are_named_by_path_on_both_paths(label: str, breaks: Any, path: str, description: str) -> None:
    message = _case()
    breaks(message)
    expected = [(path, description)]
    assert _violations(requests.case_model_from_proto, message) == expected
    assert _violations(requests.case_from_proto, message) == expected


def test_a_referrals_assessment_need_not_be_in_the_case() -> None:
    message = case_pb2.Case(case_id="case-1")
    message.referrals.add(id="r1", date="2024-01-01", assessment_id="a-9")
    assert _fast(message).referrals[0].assessment_id == "a-9"
    assert requests.case_model_from_proto(message, TODAY).referrals[0].assessment_id == "a-9"


def test_the_chronology_lists_the_new_facts_with_their_codes() -> None:
    case = requests.case_model_from_proto(_case(), TODAY)
    entries = [(e.fact_type, e.fact_id, e.code) for e in build_chronology(case, []) if e.fact_type in NEW_TYPES]
    assert entries == [
        ("transfers", "t1", "IN"),
        ("recorded_factors", "f1", "3B"),
        ("recorded_factors", "f2", "4B"),
        ("appointments", "ap1", "GP"),
        ("appointments", "ap2", "HEALTH"),
        ("plan_reviews", "pr1", "CHILD_IN_NEED"),
        ("plan_reviews", "pr2", "LOOKED_AFTER"),
        ("transfers", "t2", "OUT"),
    ]
    response = responses.chronology_to_proto("case-1", build_chronology(case, []))
    assert ("recorded_factors", "f1", "3B") in [(e.fact_type, e.fact_id, e.code) for e in response.entries]

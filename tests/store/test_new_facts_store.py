"""The slow-burn facts (issue 13) kept and listed by both stores: the memory store and a real Redis."""

from __future__ import annotations

import datetime as dt

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.case import records
from rules_engine.case.facts import Appointment, Case, PlanReview, RecordedFactor, Transfer
from rules_engine.service import requests
from rules_engine.store import CaseStore
from tests.store.helpers import CASE, NOW, case, concern


def _new_facts_case() -> Case:
    return case(
        concern("c1", day=2, child_seen=False, subject="SIBLING", subject_child_id="sib-2"),
        concern("c2", day=3, agency="HEALTH"),
        referrals=[{"id": "r1", "date": dt.date(2025, 1, 4), "assessment_id": "a-later"}],
        recorded_factors=[
            RecordedFactor(
                id="f1", date=dt.date(2025, 1, 5), factor="3B", agency="POLICE", end_date=dt.date(2025, 2, 1)
            ),
            RecordedFactor(id="f2", date=dt.date(2025, 1, 6), factor="4B", agency="MENTAL_HEALTH"),
        ],
        appointments=[
            Appointment(id="ap1", date=dt.date(2025, 1, 7), agency="GP", attended=True),
            Appointment(id="ap2", date=dt.date(2025, 1, 8), was_not_brought=True),
        ],
        plan_reviews=[PlanReview(id="pr1", date=dt.date(2025, 1, 9), plan_id="p1", plan_kind="CHILD_IN_NEED")],
        transfers=[Transfer(id="t1", date=dt.date(2025, 1, 1), direction="IN", history_received=True)],
    )


def test_new_facts_round_trip(store: CaseStore) -> None:
    sent = _new_facts_case()
    merged = store.merge_facts(CASE, sent, now=NOW)  # records from Redis, models from memory
    assert records.of(merged) == records.of(sent)
    loaded = store.load_case(CASE)
    assert loaded is not None and loaded == sent
    c1, c2 = loaded.concerns
    assert (c1.child_seen, c1.subject, c1.subject_child_id) == (False, "SIBLING", "sib-2")
    assert (c2.child_seen, c2.subject) == (None, "CHILD")
    assert loaded.referrals[0].assessment_id == "a-later"


def test_new_facts_sent_as_records_round_trip_and_are_not_a_change(store: CaseStore) -> None:
    message = case_pb2.Case(case_id=CASE)
    message.concerns.add(id="c1", date="2025-01-02", agency="POLICE", child_seen=True, subject="HOUSEHOLD")
    message.recorded_factors.add(id="f1", date="2025-01-05", factor="1B", agency="HEALTH")
    message.appointments.add(id="ap1", date="2025-01-07", attended=True)
    message.plan_reviews.add(id="pr1", date="2025-01-09", plan_kind=case_pb2.PLAN_KIND_LOOKED_AFTER)
    message.transfers.add(id="t1", date="2025-01-01", direction="OUT")
    fast = requests.case_from_proto(message, NOW.date())
    models = requests.case_model_from_proto(message, NOW.date())

    first = store.merge_case(CASE, fast, now=NOW)
    again = store.merge_case(CASE, models, now=NOW)  # the same facts as models: the same stored text
    assert again.revision == first.revision
    assert records.of(again.case) == records.of(first.case) == fast


def test_new_facts_can_be_withdrawn(store: CaseStore) -> None:
    store.merge_facts(CASE, _new_facts_case(), now=NOW)
    merged = store.merge_facts(CASE, case(), withdrawn=[("recorded_factors", "f1"), ("transfers", "t1")], now=NOW)
    assert [f.id for f in merged.recorded_factors] == ["f2"]
    assert merged.transfers == ()


def test_the_chronology_lists_the_new_facts_with_their_codes(store: CaseStore) -> None:
    store.merge_facts(CASE, _new_facts_case(), now=NOW)
    entries = [(e.date.day, e.fact_type, e.fact_id, e.code) for e in store.chronology(CASE)]
    assert entries == [
        (1, "transfers", "t1", "IN"),
        (2, "concerns", "c1", "POLICE"),
        (3, "concerns", "c2", "HEALTH"),
        (4, "referrals", "r1", ""),
        (5, "recorded_factors", "f1", "3B"),
        (6, "recorded_factors", "f2", "4B"),
        (7, "appointments", "ap1", "GP"),
        (8, "appointments", "ap2", "HEALTH"),
        (9, "plan_reviews", "pr1", "CHILD_IN_NEED"),
    ]

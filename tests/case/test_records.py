"""records: a request's case read straight into named tuples, accepted only where validation would accept it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from pydantic import BaseModel

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.case import dates, facts, records
from rules_engine.case.checks import MAX_LIST_ITEMS
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.errors import CaseError
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.store import codec
from rules_engine.tools import synth

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 11, 26)


def _plain(value: Any) -> Any:
    """Models and records alike as nested plain tuples, for comparison."""
    if isinstance(value, BaseModel):
        return tuple(_plain(getattr(value, name)) for name in type(value).model_fields)
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    return value


def _case_plain(case: Any) -> tuple[Any, ...]:
    return (
        case.case_id,
        case.child.birth_date,
        *(_plain(getattr(case, name)) for name in facts.FACT_TYPES),
    )


def _full_case() -> case_pb2.Case:
    """Every fact type and every field, including the rarely set ones."""
    message = requests.case_from_json(synth.long_timeline_case())
    control = requests.case_from_json(synth.control_case())
    for name in facts.FACT_TYPES:
        for fact in getattr(control, name):
            fact.id = "k-" + fact.id  # ids stay unique when the two cases are joined
    message.MergeFrom(control)
    message.child.birth_date = "2015-02-28"
    message.strategy_discussions.add(id="s9", date="2024-05-05", agencies=["POLICE", "HEALTH"], section47_started=True)
    message.section47_enquiries.add(id="e9", date="2024-05-06", completed_on="2024-05-20")
    message.household_members.add(
        id="h9", date="2024-01-01", relationship="PARTNER_OF_PARENT", adult=False, end_date="2024-03-01"
    )
    message.concerns.add(id="c-h9", date="2024-02-01", agency="POLICE", household_member_ids=["h9", "h10"])
    conference = message.conferences.add(id="k9", date="2024-05-21", kind=case_pb2.CONFERENCE_KIND_INITIAL)
    conference.agencies.add(agency="POLICE", attended=True)
    conference.agencies.add(agency="GP", invited=False, report_due_on="2024-05-18", report_received_on="2024-05-22")
    message.missed_appointments.add(id="m9", date="2024-06-03")  # agency left to its default
    _add_new_facts(message)
    return message


def _add_new_facts(message: case_pb2.Case) -> None:
    """The facts added for slow-burn patterns, each field both set and left to its default."""
    message.concerns.add(
        id="c-sib", date="2024-02-02", agency="SCHOOL_NURSE", child_seen=False, subject="SIBLING",
        subject_child_id="sib-2",
    )  # fmt: skip
    message.concerns.add(id="c-seen", date="2024-02-03", agency="GP", child_seen=True, subject="HOUSEHOLD")
    message.referrals.add(id="r-a9", date="2024-02-04", assessment_id="a-later")
    message.recorded_factors.add(id="f1", date="2024-01-05", factor="3B", agency="POLICE", end_date="2024-07-01")
    message.recorded_factors.add(id="f2", date="2024-01-06", factor="4B", agency="MENTAL_HEALTH")
    message.appointments.add(id="ap1", date="2024-03-01", agency="GP", attended=True)
    message.appointments.add(id="ap2", date="2024-03-02", was_not_brought=True)  # agency left to its default
    message.plan_reviews.add(id="pr1", date="2024-04-01", plan_id="p1", plan_kind=case_pb2.PLAN_KIND_CHILD_IN_NEED)
    message.plan_reviews.add(id="pr2", date="2024-04-02", plan_kind=case_pb2.PLAN_KIND_LOOKED_AFTER)
    message.transfers.add(id="t1", date="2023-12-01", direction="IN", history_received=True)
    message.transfers.add(id="t2", date="2024-08-01", direction="OUT")


def _outcome(case_from: Any, message: case_pb2.Case) -> Any:
    try:
        return _case_plain(case_from(message, TODAY))
    except CaseError as exc:
        return [(v.field, v.description) for v in exc.violations]


@pytest.mark.parametrize("size", [0, 1, 20, 200, 2000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_valid_cases_become_records_equal_to_the_models(size: int, seed: int) -> None:
    message = requests.case_from_json(synth.sized_case(size, seed))
    case = requests.case_from_proto(message, TODAY)
    assert not isinstance(case, facts.Case)  # the fast path took it
    assert _case_plain(case) == _case_plain(requests.case_model_from_proto(message, TODAY))


def test_every_field_of_every_fact_type_is_read_as_the_model_reads_it() -> None:
    message = _full_case()
    case = requests.case_from_proto(message, TODAY)
    assert not isinstance(case, facts.Case)
    assert _case_plain(case) == _case_plain(requests.case_model_from_proto(message, TODAY))
    assert all(getattr(case, name) for name in facts.FACT_TYPES)


def test_the_example_case_takes_the_fast_path() -> None:
    message = requests.case_from_json(json.loads((ROOT / "examples" / "case.json").read_text()))
    case = requests.case_from_proto(message, TODAY)
    assert not isinstance(case, facts.Case)
    assert _case_plain(case) == _case_plain(requests.case_model_from_proto(message, TODAY))


# Each breaks one rule that validation enforces; the fast path must send every one to its errors.
_BREAKS: list[tuple[str, Any]] = [
    ("case_id", lambda m: setattr(m, "case_id", "")),
    ("case_id chars", lambda m: setattr(m, "case_id", "case 1")),
    ("case_id newline", lambda m: setattr(m, "case_id", "case\n1")),
    ("long id", lambda m: setattr(m.concerns[0], "id", "x" * 129)),
    ("id with newline", lambda m: setattr(m.concerns[0], "id", "a\nb")),
    ("empty id", lambda m: setattr(m.visits[0], "id", "")),
    ("duplicate id", lambda m: setattr(m.concerns[1], "id", m.concerns[0].id)),
    ("unknown code", lambda m: setattr(m.concerns[0], "agency", "POLICEMAN")),
    ("missing code", lambda m: setattr(m.concerns[0], "agency", "")),
    ("missing date", lambda m: setattr(m.concerns[0], "date", "")),
    ("bad date", lambda m: setattr(m.concerns[0], "date", "2024-02-30")),
    ("basic-format date", lambda m: setattr(m.concerns[0], "date", "20240102")),
    ("bad end date", lambda m: setattr(m.assessments[0], "completed_on", "2024-13-01")),
    ("future date", lambda m: setattr(m.visits[0], "date", "2029-01-01")),
    ("future nested date", lambda m: setattr(m.conferences[-1].agencies[0], "report_due_on", "2029-01-01")),
    ("bad nested date", lambda m: setattr(m.conferences[-1].agencies[0], "report_received_on", "soon")),
    ("bad birth date", lambda m: setattr(m.child, "birth_date", "2015-02-29")),
    ("future birth date", lambda m: setattr(m.child, "birth_date", "2030-01-01")),
    ("end before start", lambda m: setattr(m.assessments[0], "completed_on", "1990-01-01")),
    ("agency twice", lambda m: m.conferences[-1].agencies.add(agency="POLICE")),
    ("nested unknown code", lambda m: setattr(m.conferences[-1].agencies[0], "agency", "NOBODY")),
    ("unspecified enum", lambda m: setattr(m.conferences[0], "kind", 0)),
    ("unknown enum", lambda m: setattr(m.conferences[0], "kind", 42)),
    ("bad list code", lambda m: m.strategy_discussions[0].agencies.append("NOBODY")),
    ("bad member id", lambda m: m.concerns[-1].household_member_ids.append("no spaces")),
    ("too many list items", lambda m: m.core_groups[0].agencies.extend(["POLICE"] * (MAX_LIST_ITEMS + 1))),
    ("percent over 100", lambda m: setattr(m.school_attendance[0], "attendance_percent", 100.5)),
    ("percent NaN", lambda m: setattr(m.school_attendance[0], "attendance_percent", math.nan)),
    ("bad worker id", lambda m: setattr(m.allocations[0], "worker_id", "")),
    ("unknown subject", lambda m: setattr(m.concerns[-1], "subject", "COUSIN")),
    ("bad subject child id", lambda m: setattr(m.concerns[-2], "subject_child_id", "sib 2")),
    ("long assessment id", lambda m: setattr(m.referrals[-1], "assessment_id", "a" * 129)),
    ("unknown factor", lambda m: setattr(m.recorded_factors[0], "factor", "99Z")),
    ("missing factor agency", lambda m: setattr(m.recorded_factors[1], "agency", "")),
    ("factor ends before recorded", lambda m: setattr(m.recorded_factors[0], "end_date", "2023-01-01")),
    ("bad factor end date", lambda m: setattr(m.recorded_factors[1], "end_date", "2024-02-30")),
    ("unknown appointment agency", lambda m: setattr(m.appointments[0], "agency", "DENTIST")),
    ("future appointment", lambda m: setattr(m.appointments[1], "date", "2029-01-01")),
    ("duplicate appointment id", lambda m: setattr(m.appointments[1], "id", "ap1")),
    ("unspecified plan kind", lambda m: setattr(m.plan_reviews[1], "plan_kind", 0)),
    ("unknown plan kind", lambda m: setattr(m.plan_reviews[0], "plan_kind", 9)),
    ("bad plan id", lambda m: setattr(m.plan_reviews[0], "plan_id", "p\n1")),
    ("unknown direction", lambda m: setattr(m.transfers[0], "direction", "SIDEWAYS")),
    ("missing direction", lambda m: setattr(m.transfers[1], "direction", "")),
]


@pytest.mark.parametrize(("label", "breaks"), _BREAKS, ids=[label for label, _ in _BREAKS])
def test_invalid_cases_get_wires_errors(label: str, breaks: Any) -> None:
    message = _full_case()
    breaks(message)
    expected = _outcome(requests.case_model_from_proto, message)
    assert isinstance(expected, list), f"{label}: validation accepted it"
    assert _outcome(requests.case_from_proto, message) == expected


def test_too_many_facts_gets_wires_error() -> None:
    message = case_pb2.Case(case_id="c")
    for i in range(requests.MAX_FACTS + 1):
        message.visits.add(id=f"v{i}", date="2024-01-01")
    assert _outcome(requests.case_from_proto, message) == _outcome(requests.case_model_from_proto, message)


def _mutate(message: case_pb2.Case, rng: random.Random) -> None:
    """Set one field of one fact to a value that may or may not be valid."""
    lists = [f for f in message.DESCRIPTOR.fields if f.is_repeated and len(getattr(message, f.name))]
    target: Any = rng.choice(getattr(message, rng.choice(lists).name))
    if target.DESCRIPTOR.name == "Conference" and target.agencies and rng.random() < 0.5:
        target = rng.choice(target.agencies)
    field = rng.choice(target.DESCRIPTOR.fields)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return
    if field.type == FieldDescriptor.TYPE_ENUM:
        setattr(target, field.name, rng.choice([0, 1, 2, 3, 4, 9]))
    elif field.type == FieldDescriptor.TYPE_BOOL:
        setattr(target, field.name, rng.random() < 0.5)
    elif field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        setattr(target, field.name, rng.choice([0.0, 50.0, 100.0, -1.0, 101.0, math.nan, math.inf]))
    else:
        values = [
            "",
            "POLICE",
            "GP",
            "NEGLECT",
            "N1",
            "1A",
            "3B",
            "PCCHAN",
            "RC8",
            "CHRONOLOGY",
            "THREAT_TO_STAFF",
            "PARTNER_OF_PARENT",
            "SIBLING",
            "HOUSEHOLD",
            "CHILD",
            "IN",
            "OUT",
            "2023-03-01",
            "2024-02-29",
            "2023-02-29",
            "2031-01-01",
            "1999-12-31",
            "x" * 128,
            "x" * 129,
            "a b",
            "c-1",
            "é",
        ]
        value = rng.choice(values)
        if field.is_repeated:
            getattr(target, field.name).append(value)
        else:
            setattr(target, field.name, value)


@pytest.mark.parametrize("seed", range(40))
def test_mutated_cases_get_the_same_answer_either_way(seed: int) -> None:
    rng = random.Random(seed)
    base = _full_case()
    for _ in range(25):
        message = case_pb2.Case()
        message.CopyFrom(base)
        for _ in range(rng.randint(1, 3)):
            _mutate(message, rng)
        assert _outcome(requests.case_from_proto, message) == _outcome(requests.case_model_from_proto, message)


@pytest.fixture(scope="module")
def safeguarding() -> Any:
    prepared = PreparedRuleset(compile_ruleset(ROOT / "rulesets" / "safeguarding"))
    yield prepared
    prepared.close()


@pytest.mark.parametrize("size", [20, 200, 2000])
def test_records_and_models_evaluate_alike(safeguarding: PreparedRuleset, size: int) -> None:
    message = _full_case() if size == 20 else requests.case_from_json(synth.sized_case(size, size))
    for as_of in (synth.LONG_TIMELINE_END, dt.date(2020, 6, 30), dt.date(2026, 1, 1)):
        fast = safeguarding.evaluate(requests.case_from_proto(message, TODAY), as_of)
        slow = safeguarding.evaluate(requests.case_model_from_proto(message, TODAY), as_of)
        assert dataclasses.astuple(fast) == dataclasses.astuple(slow)


def test_date_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dates, "MAX_CACHED_DATES", 10)
    start = dt.date(2020, 1, 1)
    for offset in range(25):
        message = case_pb2.Case(case_id="c")
        message.visits.add(id="v", date=(start + dt.timedelta(days=offset)).isoformat())
        case = requests.case_from_proto(message, TODAY)
        assert getattr(case, "visits")[0].date == start + dt.timedelta(days=offset)  # noqa: B009
    assert len(dates.DAYS) <= 11


def _stored_fields(case: facts.Case) -> dict[str, str]:
    """A facts hash as both stores write it."""
    fields = {field: codec.fact_json(fact) for field, fact in codec.fact_items(case)}
    fields[codec.CHILD_FIELD] = case.child.model_dump_json(exclude_defaults=True)
    fields[codec.REVISION_FIELD] = "3"
    return fields


@pytest.mark.parametrize(
    "message", [_full_case(), requests.case_from_json(synth.sized_case(200, 7))], ids=["full", "200"]
)
def test_stored_facts_read_as_records_equal_the_validated_models(message: case_pb2.Case) -> None:
    fields = _stored_fields(requests.case_model_from_proto(message, TODAY))
    validated = codec.case_from_fields("case-9", fields)
    assert validated is not None
    assert records.of(codec.records_from_fields("case-9", fields)) == records.of(validated)


def test_stored_case_digest_depends_on_content_not_field_order() -> None:
    fields = _stored_fields(requests.case_model_from_proto(_full_case(), TODAY))
    digest = codec.fields_digest("case-9", fields)
    assert codec.fields_digest("case-9", dict(reversed(fields.items()))) == digest
    assert codec.fields_digest("case-9", {**fields, codec.REVISION_FIELD: "4"}) == digest  # revision is not content
    assert codec.fields_digest("case-8", fields) != digest
    changed = {**fields, "visits:new": '{"id":"new","date":"2024-01-01"}'}
    assert codec.fields_digest("case-9", changed) != digest


@pytest.mark.parametrize(
    "message",
    [_full_case(), *(requests.case_from_json(synth.sized_case(n, 5)) for n in (20, 200))],
    ids=["full", "20", "200"],
)
def test_records_are_stored_as_the_same_json_text_as_models(message: case_pb2.Case) -> None:
    # The Redis merge compares texts: a fact resent in the other form must not count as changed.
    models = requests.case_model_from_proto(message, TODAY)
    fast = requests.case_from_proto(message, TODAY)
    for fact_type in facts.FACT_TYPES:
        for model, record in zip(getattr(models, fact_type), getattr(fast, fact_type), strict=True):
            assert records.fact_json(fact_type, record) == codec.fact_json(model)
    assert records.child_json(fast.child) == models.child.model_dump_json(exclude_defaults=True)
    assert records.to_case(fast) == models


def test_floats_whose_text_might_differ_are_written_by_pydantic() -> None:
    message = case_pb2.Case(case_id="c")
    message.school_attendance.add(id="s1", date="2024-01-01", attendance_percent=0.00001)
    record = getattr(requests.case_from_proto(message, TODAY), "school_attendance")[0]  # noqa: B009
    with pytest.raises(records.NeedsModelError):
        records.fact_json("school_attendance", record)
    model = requests.case_model_from_proto(message, TODAY).school_attendance[0]
    case = requests.case_from_proto(message, TODAY)
    assert codec.stored_facts(case) == [("school_attendance:s1", codec.fact_json(model))]

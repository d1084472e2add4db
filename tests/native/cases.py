"""Case messages for the differential test: generated (hypothesis), life courses, sized and rule-test cases.

Every source gives `Case` protobuf messages with the `today` they are valid on (facts may be
dated up to a year after it) and the `as_of` dates to evaluate them at. The hypothesis
strategies are built from the Case descriptor and the facts models together, so every field
of every fact type is drawn (a field added to the proto or a model is drawn too, or the
import fails); `invalid_mutations` breaks a valid case in each way requests and record_reader
check.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st
from pydantic import BaseModel

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.case import facts
from rules_engine.case.checks import MAX_LIST_ITEMS, enum_codes
from rules_engine.case.dates import FIRST_DATE, LAST_DATE, latest_date
from rules_engine.case.fields import fact_fields, sub_model
from rules_engine.config import MAX_FACTS
from rules_engine.engine.wire import encode_varint
from rules_engine.service import requests
from rules_engine.tools import lifecourse, synth
from rules_engine.tools.lifecourse import LifeCourse
from rules_engine.tools.ruletest import json_ready, load_rule_tests

ROOT = Path(__file__).resolve().parents[2]
RULESETS = ROOT / "rulesets"

# A Monday; 2025 bank holidays (18 and 21 April, 5 and 26 May, 25 August) sit in the window.
TODAY = dt.date(2025, 6, 30)
LATEST = latest_date(TODAY)

FACT_LISTS = tuple(facts.FACT_TYPES)


def fact_count(message: case_pb2.Case) -> int:
    return sum(len(getattr(message, name)) for name in FACT_LISTS)


@dataclass(frozen=True)
class Sample:
    """One case message to compare, the day it is valid on and the as_of dates to evaluate it at."""

    label: str  # where it came from, enough to regenerate it (family, seed, index)
    message: case_pb2.Case
    today: dt.date
    as_ofs: tuple[dt.date, ...]


# --- hypothesis: valid cases from the descriptor and the models ------------------------------

# Ids collide across fact types and with the ids facts use to name each other; within one
# fact type they are unique (lists are drawn unique by id). "10" sorts before "9" as text.
ID_POOL = (
    "a", "b", "c1", "c2", "9", "10", "A", "a.b", "x:y/z@w-v_u", "case-1", "sib-1", "p1", "w1",
    "x" * 128, "Z" * 127 + "0",
)  # fmt: skip
WORKERS = ("w1", "w2", "w3", "w4", "w5", "w6")
PERCENTS = (0.0, -0.0, 100.0, 50.5, 1e-5, 5e-324, 99.99999999999999, 60.0, 90.0, 95.0)
# Dates at the accepted range's ends, leap days, bank holidays and their substitutes.
EDGE_DATES = tuple(
    dt.date.fromisoformat(text)
    for text in (
        "1900-01-01", "1900-02-28", "1900-03-01", "2000-02-29", "2024-02-29", "2024-03-01", "2020-05-08",
        "2021-12-27", "2021-12-28", "2022-06-03", "2024-12-25", "2025-04-18", "2025-04-21", "2025-05-05",
        "2025-05-26", "2025-06-27", "2025-06-29", "2025-06-30", "2025-07-01", "2025-08-25", "2025-12-25",
    )
)  # fmt: skip


# A fact's date: mostly one of the case's few anchors (same-day ties) or near one, drawn as a
# token ("anchor", i, days after) that `_values` resolves against the case's anchors; the
# strategies stay the same for every case (building them per case costs more than drawing).
_RECENT = st.integers(-1500, 60).map(lambda n: TODAY + dt.timedelta(days=n))
_ANY_DAY = st.dates(min_value=FIRST_DATE, max_value=LATEST)
DATES: st.SearchStrategy[Any] = st.one_of(
    st.tuples(st.just("anchor"), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("anchor"), st.integers(0, 3), st.integers(-40, 40)),
    _RECENT,
    st.sampled_from(EDGE_DATES),
    _ANY_DAY,
)


def _resolve(value: Any, anchors: Sequence[dt.date]) -> dt.date:
    if isinstance(value, dt.date):
        return value
    _, index, days = value
    day: dt.date = anchors[index % len(anchors)] + dt.timedelta(days=days)
    return min(LATEST, max(FIRST_DATE, day))


def _is_id(model: type[BaseModel], name: str) -> bool:
    info = model.model_fields[name]
    constraints = [*info.metadata]
    for arg in typing.get_args(info.annotation):
        constraints += getattr(arg, "__metadata__", ())
    return any(getattr(c, "pattern", None) == facts.ID_PATTERN for c in constraints)


def _is_date(model: type[BaseModel], name: str) -> bool:
    types = fact_fields(model)
    return name in types and types[name].kind == "date"


# A drawn field value; ("lag", n) is an end date n days after the fact's date, resolved in `_build`.
_Draw = st.SearchStrategy[Any]


def _field_strategy(field: FieldDescriptor, model: type[BaseModel]) -> _Draw | None:
    """What one proto field of a fact (or nested) message may hold in a valid case; None for `id`."""
    name = field.name
    info = model.model_fields[name]
    described = fact_fields(model).get(name)
    if name == "id":
        return None
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None and field.is_repeated
        inner = sub_model(model, name)
        item = _message_values(field.message_type, inner)
        unique = "agency" if "agency" in inner.model_fields else None
        return st.lists(item, max_size=4, unique_by=(lambda v: v.get(unique, "")) if unique else None)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from(sorted(enum_codes(field.enum_type)))
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.sampled_from([None, True, False]) if field.has_presence else st.booleans()
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return st.one_of(st.sampled_from(PERCENTS), st.floats(0, 100, allow_nan=False, allow_infinity=False))
    if field.type != FieldDescriptor.TYPE_STRING:
        raise RuntimeError(f"no strategy for {field.full_name}")
    if field.is_repeated:
        if described is not None and described.codes:
            return st.lists(st.sampled_from(sorted(described.codes)), max_size=4)  # duplicates allowed
        if _is_id(model, name):
            return st.lists(st.sampled_from(ID_POOL), max_size=3)
        raise RuntimeError(f"no strategy for {field.full_name}")
    if _is_date(model, name):
        if name in getattr(model, "end_fields", ()):
            return st.one_of(st.none(), st.integers(0, 3), st.integers(0, 400)).map(lambda n: ("lag", n))
        return st.one_of(st.none(), DATES)
    if described is not None and described.codes:
        codes = st.sampled_from(sorted(described.codes))
        return codes if info.is_required() else st.one_of(st.just(""), codes)
    if _is_id(model, name):
        if info.is_required():
            return st.sampled_from(WORKERS)
        return st.one_of(st.just(""), st.sampled_from(ID_POOL))
    raise RuntimeError(f"no strategy for {field.full_name}")


def _message_values(descriptor: Descriptor, model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, _Draw] = {}
    optional: dict[str, _Draw] = {}
    for field in descriptor.fields:
        strategy = _field_strategy(field, model)
        if strategy is None:
            continue
        if field.name == "date":
            required["date"] = DATES
        elif model.model_fields[field.name].is_required():
            required[field.name] = strategy
        else:
            optional[field.name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


def _descriptor(name: str) -> Descriptor:
    descriptor = case_pb2.Case.DESCRIPTOR.fields_by_name[name].message_type
    assert descriptor is not None
    return descriptor


def _values(values: dict[str, Any], anchors: Sequence[dt.date]) -> dict[str, Any]:
    """Drawn values as the proto constructor's keyword arguments (dates as text, lags resolved)."""
    out: dict[str, Any] = {}
    start = None if values.get("date") is None else _resolve(values["date"], anchors)
    for name, drawn in values.items():
        value = drawn
        if value is None:
            continue
        if isinstance(value, tuple) and value[0] == "lag":
            if start is None or value[1] is None:
                continue
            value = min(LATEST, start + dt.timedelta(days=value[1]))
        elif isinstance(value, tuple | dt.date):
            value = _resolve(value, anchors)
        if isinstance(value, dt.date):
            value = value.isoformat()
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            value = [_values(v, anchors) for v in value]
        out[name] = value
    return out


# Per fact type: 1 to 3 facts, unique by id, every field drawn or left empty.
_FACTS = {
    name: st.lists(
        st.tuples(st.sampled_from(ID_POOL), _message_values(_descriptor(name), model)),
        min_size=1,
        max_size=3,
        unique_by=lambda t: t[0],
    )
    for name, model in facts.FACT_TYPES.items()
}


_ANCHORS = st.lists(st.one_of(_RECENT, st.sampled_from(EDGE_DATES), _ANY_DAY), min_size=1, max_size=4)
_CASE_ID = st.sampled_from(ID_POOL)
# A birth date: none, any fact date, or days before TODAY (negative: unborn; 365: a first birthday).
_BIRTH = st.one_of(st.none(), DATES, st.sampled_from([-366, -365, -364, 0, 200, 365, 366, 6000]))
_TYPES = st.lists(st.sampled_from(FACT_LISTS), unique=True, max_size=len(FACT_LISTS))
_REPEAT = st.sampled_from([0, 0, 0, 0, 5, 40, 150])
# Evaluation dates: TODAY, an anchor or the case's first or last fact date (a tie) or days
# either side, the ends of the accepted range, a leap day, anywhere from 1990 to 2030.
_AS_OF = st.one_of(
    st.just(TODAY),
    st.tuples(st.integers(0, 5), st.sampled_from([-1, 0, 0, 1, 30, 365])),
    st.sampled_from([FIRST_DATE, LAST_DATE, LATEST, dt.date(2024, 2, 29)]),
    st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 12, 31)),
)
_AS_OFS = st.lists(_AS_OF, min_size=3, max_size=6)


@st.composite
def valid_cases(draw: st.DrawFn) -> tuple[case_pb2.Case, tuple[dt.date, ...]]:
    """A valid Case message (on TODAY) and 1-6 as_of dates (3 drawn, fewer when they coincide) to evaluate it at.

    Any subset of the fact types gets 1-3 facts each with every field drawn or left empty;
    dates cluster on a few anchors (ties), reach a year past TODAY and back to 1900; now and
    then a long history of repeated concerns, visits, allocations and updates is added.
    """
    anchors = draw(_ANCHORS)
    message = case_pb2.Case(case_id=draw(_CASE_ID))
    birth = draw(_BIRTH)
    if isinstance(birth, int):
        birth = TODAY - dt.timedelta(days=birth)
    if birth is not None:
        message.child.birth_date = _resolve(birth, anchors).isoformat()
    elif draw(st.booleans()):
        message.child.SetInParent()  # an empty child message, present
    for name in draw(_TYPES):
        container = getattr(message, name)
        for fact_id, values in draw(_FACTS[name]):
            container.add(id=fact_id, **_values(values, anchors))
    repeat = draw(_REPEAT)
    if repeat:
        _long_history(message, repeat, anchors[-1])
    days = sorted({f.date for name in FACT_LISTS for f in getattr(message, name)})
    known = [*anchors, *(dt.date.fromisoformat(d) for d in days[:1] + days[-1:])]
    as_ofs: list[dt.date] = []
    for drawn in draw(_AS_OFS):
        if isinstance(drawn, tuple):
            index, shift = drawn
            day = min(LAST_DATE, max(FIRST_DATE, known[index % len(known)] + dt.timedelta(days=shift)))
        else:
            day = drawn
        if day not in as_ofs:
            as_ofs.append(day)
    return message, tuple(as_ofs)


def _long_history(message: case_pb2.Case, count: int, last: dt.date) -> None:
    """Years of history ending on `last`, a week a step: concerns, visits (some without access),
    worker changes (some asked for by a parent), recording updates, referrals and closures in
    cycles, parental factors, hostility, missed appointments and low attendance."""
    agencies = ("POLICE", "HEALTH", "EDUCATION", "GP", "HOUSING")
    factors = ("1B", "2B", "3B", "4B")
    engagement = ("THREAT_TO_STAFF", "REFUSED_ACCESS", "CANCELLED_VISIT")
    for i in range(count):
        day = max(FIRST_DATE, last - dt.timedelta(days=7 * i))
        text, later = day.isoformat(), min(LATEST, day + dt.timedelta(days=20)).isoformat()
        harm = i % 9 == 0
        message.concerns.add(id=f"h{i}", date=text, agency=agencies[i % 5], category="NEGLECT", significant_harm=harm)
        if i % 2 == 0:
            message.visits.add(
                id=f"h{i}", date=text, child_seen=i % 4 == 0, seen_alone=i % 8 == 0, no_access=i % 6 == 2
            )
        if i % 13 == 0:
            reason = "PCCHAN" if i % 26 == 0 else "WORKER_LEFT"
            message.allocations.add(id=f"h{i}", date=text, worker_id=WORKERS[i % len(WORKERS)], change_reason=reason)
        if i % 5 == 0:
            message.record_updates.add(id=f"h{i}", date=text, kind="CHRONOLOGY" if i % 10 else "CASE_SUMMARY")
        if i % 11 == 0:
            message.referrals.add(id=f"h{i}", date=text, decided_on=later, no_further_action=i % 22 == 0)
            message.closures.add(id=f"h{i}", date=later, reason="RC8" if i % 22 else "RC7")
        if i % 7 == 0:
            message.recorded_factors.add(id=f"h{i}", date=text, factor=factors[i // 7 % 4], agency=agencies[i % 5])
        if i % 3 == 0:
            message.engagement_events.add(id=f"h{i}", date=text, kind=engagement[i // 3 % 3])
            message.missed_appointments.add(id=f"h{i}", date=text, agency="HEALTH")
            message.school_attendance.add(id=f"h{i}", date=text, attendance_percent=(37 * i) % 101)


# --- invalid cases: one valid case broken in the ways the Python path checks ------------------

BAD_IDS = ("", "a b", "x" * 129, "é", "c1\n", "\nc1", "a\tb", "a,b", "../c1")
BAD_DATES = (
    "2024-02-30", "2023-02-29", "1900-02-29", "tomorrow", "2024-1-01", "20240101", "2024-13-01", "2024-00-10",
    "1899-12-31", "0001-01-01", "2200-01-01", "9999-12-31", (LATEST + dt.timedelta(days=1)).isoformat(),
    (TODAY + dt.timedelta(days=5000)).isoformat(), "\uff12\uff10\uff12\uff14-01-01", "2024-01-01T00:00:00",
    " 2024-01-01", "2024-W01-1",
)  # fmt: skip
BAD_CODES = ("nope", "police", "Police", "POLICE ", "X" * 300, "1a")
BAD_PERCENTS = (-1e-9, -1.0, 100.0000001, 101.0, math.nan, math.inf, -math.inf)
BAD_ENUMS = (0, 5, 99, -1, 2**31 - 1)

# A mutation breaks the message in place and says what it did; it may find nothing to break
# (no fact of the kind it needs) and return None.
Mutation = Callable[[case_pb2.Case, random.Random], str | None]


def _facts_with(message: case_pb2.Case, predicate: Callable[[FieldDescriptor], bool]) -> list[tuple[str, Any, str]]:
    """(fact type, fact message, field name) for every field of every fact, nested ones included."""
    found: list[tuple[str, Any, str]] = []
    for name in FACT_LISTS:
        for fact in getattr(message, name):
            for field in fact.DESCRIPTOR.fields:
                if predicate(field):
                    found.append((name, fact, field.name))
            for part in getattr(fact, "agencies", ()):
                if not isinstance(part, str):
                    found.extend((name, part, f.name) for f in part.DESCRIPTOR.fields if predicate(f))
    return found


def _string_field(kind: str) -> Callable[[FieldDescriptor], bool]:
    def matches(field: FieldDescriptor) -> bool:
        if field.type != FieldDescriptor.TYPE_STRING or field.is_repeated:
            return False
        model = _model_of(field)
        if kind == "date":
            return _is_date(model, field.name)
        if kind == "id":
            return _is_id(model, field.name)
        described = fact_fields(model).get(field.name)
        return described is not None and bool(described.codes)

    return matches


_LIST_OF = {_descriptor(name).name: name for name in FACT_LISTS}


def _list_of(message_name: str) -> str:
    return _LIST_OF[message_name]


def _model_of(field: FieldDescriptor) -> type[BaseModel]:
    """The model of the message holding a field: a fact type's, or a conference agency's."""
    owner = field.containing_type
    assert owner is not None
    return facts.ConferenceAgency if owner.name == "ConferenceAgency" else facts.FACT_TYPES[_list_of(owner.name)]


def _set_somewhere(kind: str, values: Sequence[Any]) -> Mutation:
    def mutate(message: case_pb2.Case, rng: random.Random) -> str | None:
        found = _facts_with(message, _string_field(kind))
        if not found:
            return None
        fact_type, fact, name = rng.choice(found)
        value = rng.choice(values)
        setattr(fact, name, value)
        return f"{fact_type}: {name} = {value!r}"

    return mutate


def _bad_case_id(message: case_pb2.Case, rng: random.Random) -> str | None:
    message.case_id = rng.choice(BAD_IDS)
    return f"case_id = {message.case_id!r}"


def _bad_birth_date(message: case_pb2.Case, rng: random.Random) -> str | None:
    message.child.birth_date = rng.choice([d for d in BAD_DATES if d])
    return f"child.birth_date = {message.child.birth_date!r}"


def _empty_required(message: case_pb2.Case, rng: random.Random) -> str | None:
    """A required field left empty: a fact's id or date, a required code, a required worker id."""

    def required(field: FieldDescriptor) -> bool:
        if field.is_repeated or field.type not in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_ENUM):
            return False
        return _model_of(field).model_fields[field.name].is_required()

    found = _facts_with(message, required)
    if not found:
        return None
    fact_type, fact, name = rng.choice(found)
    fact.ClearField(name)
    return f"{fact_type}: {name} cleared (required)"


def _duplicate_id(message: case_pb2.Case, rng: random.Random) -> str | None:
    lists = [name for name in FACT_LISTS if getattr(message, name)]
    if not lists:
        return None
    name = rng.choice(lists)
    container = getattr(message, name)
    copy = container.add()
    copy.CopyFrom(container[rng.randrange(len(container) - 1)])
    if rng.random() < 0.5:
        copy.date = (TODAY - dt.timedelta(days=rng.randrange(400))).isoformat()
    return f"{name}: duplicate id {copy.id!r}"


def _duplicate_agency(message: case_pb2.Case, rng: random.Random) -> str | None:
    conferences = [c for c in message.conferences if c.agencies]
    if not conferences:
        part = case_pb2.ConferenceAgency(agency="HEALTH", invited=False)
        conferences = [message.conferences.add(id="conf-dup", date=TODAY.isoformat(), kind=1, agencies=[part])]
    conference = rng.choice(conferences)
    conference.agencies.add(agency=conference.agencies[0].agency, attended=True)
    return f"conferences: agency {conference.agencies[0].agency} listed twice"


def _end_before_start(message: case_pb2.Case, rng: random.Random) -> str | None:
    found: list[tuple[str, Any, str]] = []
    for name, model in facts.FACT_TYPES.items():
        for fact in getattr(message, name):
            found.extend((name, fact, end) for end in model.end_fields)
    if not found:
        return None
    name, fact, end = rng.choice(found)
    start = dt.date.fromisoformat(fact.date)
    if start == FIRST_DATE:
        fact.date = (start + dt.timedelta(days=3)).isoformat()
        start += dt.timedelta(days=3)
    setattr(fact, end, (start - dt.timedelta(days=rng.choice([1, 2, 400]))).isoformat())
    return f"{name}: {end} before date"


def _bad_enum(message: case_pb2.Case, rng: random.Random) -> str | None:
    def enum(field: FieldDescriptor) -> bool:
        return field.type == FieldDescriptor.TYPE_ENUM

    found = _facts_with(message, enum)
    if not found:
        return None
    fact_type, fact, name = rng.choice(found)
    value = rng.choice(BAD_ENUMS)
    setattr(fact, name, value)
    return f"{fact_type}: {name} = {value} (enum)"


def _bad_percent(message: case_pb2.Case, rng: random.Random) -> str | None:
    if not message.school_attendance:
        message.school_attendance.add(id="sa-bad", date=TODAY.isoformat())
    fact = rng.choice(list(message.school_attendance))
    fact.attendance_percent = rng.choice(BAD_PERCENTS)
    return f"school_attendance: attendance_percent = {fact.attendance_percent!r}"


def _bad_list_item(message: case_pb2.Case, rng: random.Random) -> str | None:
    """A bad code in a list of codes, a bad id in a list of ids."""
    targets: list[tuple[Any, str, str]] = [(a, "factors", rng.choice(BAD_CODES)) for a in message.assessments]
    targets += [(s, "agencies", rng.choice(BAD_CODES)) for s in [*message.strategy_discussions, *message.core_groups]]
    targets += [(c, "household_member_ids", rng.choice(BAD_IDS)) for c in message.concerns]
    if not targets:
        return None
    fact, name, value = rng.choice(targets)
    items = getattr(fact, name)
    items.insert(rng.randrange(len(items) + 1), value)
    return f"{fact.DESCRIPTOR.name} {fact.id}: {name} holds {value!r}"


def _too_long_list(message: case_pb2.Case, rng: random.Random) -> str | None:
    """A nested list one item over MAX_LIST_ITEMS."""
    choice = rng.randrange(3)
    if choice == 0:
        message.assessments.add(id="long-list", date=TODAY.isoformat(), factors=["1B"] * (MAX_LIST_ITEMS + 1))
        return "assessments: factors of MAX_LIST_ITEMS + 1"
    if choice == 1:
        message.concerns.add(
            id="long-list", date=TODAY.isoformat(), agency="POLICE", household_member_ids=["m1"] * (MAX_LIST_ITEMS + 1)
        )
        return "concerns: household_member_ids of MAX_LIST_ITEMS + 1"
    message.core_groups.add(id="long-list", date=TODAY.isoformat(), agencies=["HEALTH"] * (MAX_LIST_ITEMS + 1))
    return "core_groups: agencies of MAX_LIST_ITEMS + 1"


INVALID_MUTATIONS: dict[str, Mutation] = {
    "bad case id": _bad_case_id,
    "bad fact id": _set_somewhere("id", BAD_IDS),
    "bad date": _set_somewhere("date", [d for d in BAD_DATES if d]),
    "bad birth date": _bad_birth_date,
    "bad code": _set_somewhere("code", BAD_CODES),
    "empty required field": _empty_required,
    "duplicate fact id": _duplicate_id,
    "duplicate conference agency": _duplicate_agency,
    "end before start": _end_before_start,
    "unknown enum number": _bad_enum,
    "attendance out of range": _bad_percent,
    "bad list item": _bad_list_item,
    "nested list too long": _too_long_list,
}


def too_many_facts(extra: int) -> case_pb2.Case:
    """A case of MAX_FACTS + `extra` facts spread over several fact types (extra 0: the most allowed)."""
    message = case_pb2.Case(case_id="many-facts")
    total = MAX_FACTS + extra
    for i in range(total):
        day = (TODAY - dt.timedelta(days=i % 3000)).isoformat()
        if i % 4 == 0:
            message.concerns.add(id=f"c{i}", date=day, agency="POLICE")
        elif i % 4 == 1:
            message.visits.add(id=f"v{i}", date=day, child_seen=i % 3 == 0)
        elif i % 4 == 2:
            message.record_updates.add(id=f"r{i}", date=day, kind="CHRONOLOGY")
        else:
            message.appointments.add(id=f"a{i}", date=day, attended=i % 5 == 0)
    return message


# --- life courses, sized cases and rule tests -----------------------------------------------


def as_it_stood(message: case_pb2.Case, day: dt.date) -> case_pb2.Case:
    """The case as it stood on `day`: facts dated after it dropped, later end and report dates cleared."""
    cut = day.isoformat()
    out = case_pb2.Case(case_id=message.case_id)
    out.child.CopyFrom(message.child)
    for name in FACT_LISTS:
        kept = [fact for fact in getattr(message, name) if fact.date <= cut]
        container = getattr(out, name)
        container.extend(kept)
        for fact in container:
            for field in fact.DESCRIPTOR.fields:
                if field.name != "date" and field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
                    value = getattr(fact, field.name)
                    if len(value) == 10 and value[4] == "-" and value > cut:
                        fact.ClearField(field.name)
            for part in getattr(fact, "agencies", ()):
                if not isinstance(part, str):
                    for field_name in ("report_due_on", "report_received_on"):
                        if getattr(part, field_name) > cut:
                            part.ClearField(field_name)
    return out


def _dated_fields(fact: Any) -> Iterator[tuple[Any, str]]:
    """(message, field name) of every date in a fact, nested ones included."""
    for field in fact.DESCRIPTOR.fields:
        if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
            value = getattr(fact, field.name)
            if len(value) == 10 and value[4] == "-" and value[7] == "-":
                yield fact, field.name
    for part in getattr(fact, "agencies", ()):
        if not isinstance(part, str):
            yield from _dated_fields(part)


def shifted(message: case_pb2.Case, days: int) -> case_pb2.Case:
    """Every date moved by `days`, held within the accepted range (which keeps every end after its start)."""
    out = case_pb2.Case()
    out.CopyFrom(message)

    low, high = FIRST_DATE.toordinal(), LATEST.toordinal()

    def move(text: str) -> str:
        return dt.date.fromordinal(min(high, max(low, dt.date.fromisoformat(text).toordinal() + days))).isoformat()

    if out.child.birth_date:
        out.child.birth_date = move(out.child.birth_date)
    for name in FACT_LISTS:
        for fact in getattr(out, name):
            for owner, field_name in list(_dated_fields(fact)):
                setattr(owner, field_name, move(getattr(owner, field_name)))
    return out


def reordered(message: case_pb2.Case, keep: Callable[[int], bool], reverse: bool) -> case_pb2.Case:
    """Each fact list filtered by position and, if `reverse`, in reverse order."""
    out = case_pb2.Case(case_id=message.case_id)
    out.child.CopyFrom(message.child)
    for name in FACT_LISTS:
        kept = [fact for i, fact in enumerate(getattr(message, name)) if keep(i)]
        getattr(out, name).extend(kept[::-1] if reverse else kept)
    return out


def twinned(message: case_pb2.Case) -> case_pb2.Case:
    """Each fact list with a copy of every fact under a new id, on the same date (ties everywhere)."""
    out = case_pb2.Case()
    out.CopyFrom(message)
    for name in FACT_LISTS:
        container = getattr(out, name)
        for i, fact in enumerate(list(container)):
            twin = container.add()
            twin.CopyFrom(fact)
            twin.id = f"twin-{i}"
    return out


def variants(label: str, message: case_pb2.Case, today: dt.date, as_ofs: Sequence[dt.date]) -> list[Sample]:
    """One generated case as several distinct valid cases: the whole case at every as_of; as it
    stood on each as_of; every date moved a year back and a day on; every fact list reversed;
    every other fact dropped; every fact twinned on its date. Each distinct message once."""
    first = tuple(as_ofs[:1])
    candidates = [Sample(label, message, today, tuple(as_ofs))]
    candidates += [Sample(f"{label} as it stood on {day}", as_it_stood(message, day), today, (day,)) for day in as_ofs]
    candidates += [Sample(f"{label} moved {days} days", shifted(message, days), today, first) for days in (-365, 1)]
    candidates += [
        Sample(f"{label} reversed", reordered(message, lambda i: True, True), today, first),
        Sample(f"{label} every other fact", reordered(message, lambda i: i % 2 == 0, False), today, first),
    ]
    if fact_count(message) <= MAX_FACTS // 2:
        candidates.append(Sample(f"{label} twinned", twinned(message), today, first))
    seen: set[bytes] = set()
    samples = []
    for sample in candidates:
        data = sample.message.SerializeToString(deterministic=True)
        if data not in seen:
            seen.add(data)
            samples.append(sample)
    return samples


def course_days(course: LifeCourse, count: int) -> list[dt.date]:
    """`count` evaluation dates along a course: before it starts, its first day, evenly spread
    month ends, the day its pattern becomes visible and the day before, its last day."""
    ends = lifecourse.month_ends(course.start, course.end)
    step = max(1, len(ends) // max(1, count - 5))
    days = {course.start - dt.timedelta(days=1), course.start, course.end, *ends[::step]}
    if course.visible_on is not None:
        days |= {course.visible_on, course.visible_on - dt.timedelta(days=1)}
    return sorted(days)


def life_course_samples(family: str, count: int, seed: int, days_per_course: int) -> Iterator[Sample]:
    """The courses of one family, each as it stood on each of its dates (a distinct message per
    date) and whole (later facts included) on every third of them."""
    for index, course in enumerate(lifecourse.families(family, count, seed)):
        message = requests.case_from_json(course.case)
        label = f"lifecourse.families({family!r}, {count}, {seed}) #{index} ({course.shape})"
        days = course_days(course, days_per_course)
        yield Sample(label, message, course.end, tuple(days[::3]))
        for day in days:
            yield Sample(f"{label} as it stood on {day}", as_it_stood(message, day), course.end, (day,))


SIZES = (0, 1, 20, 200, 2000)


def sized_samples() -> Iterator[Sample]:
    end = synth.LONG_TIMELINE_END
    for size in SIZES:
        message = requests.case_from_json(synth.sized_case(size))
        assert fact_count(message) == size
        days = (
            end,
            end - dt.timedelta(days=1),
            end - dt.timedelta(days=200),
            dt.date(2015, 6, 30),
            end + dt.timedelta(days=400),
        )
        yield Sample(f"synth.sized_case({size})", message, end, days)
    for name, case in (("long_timeline_case()", synth.long_timeline_case()), ("control_case()", synth.control_case())):
        message = requests.case_from_json(case)
        start = synth.CONTROL_START if name.startswith("control") else synth.LONG_TIMELINE_START
        stop = synth.CONTROL_END if name.startswith("control") else synth.LONG_TIMELINE_END
        yield Sample(f"synth.{name}", message, stop, (*lifecourse.month_ends(start, stop)[::3], stop))


def rule_test_samples(ruleset: str) -> Iterator[Sample]:
    """The cases of a ruleset's own rule tests (hand-written, at thresholds), at their as_of and either side."""
    tests, errors = load_rule_tests(RULESETS / ruleset)
    assert not errors, errors
    for test in tests:
        assert test.case is not None, test.problem
        document = test.spec.case
        if test.spec.case_file is not None:
            folder = (RULESETS / test.file).parent
            document = json.loads((folder / test.spec.case_file).read_text(encoding="utf-8"))
        message = requests.case_from_json(json_ready(document))
        as_of = test.spec.as_of
        days = (as_of, as_of - dt.timedelta(days=1), as_of + dt.timedelta(days=1))
        yield Sample(f"rule test {test.file}: {test.name!r}", message, as_of, days)


# --- other encodings ------------------------------------------------------------------------


def unknown_fields(first: int) -> bytes:
    """Fields numbered from `first` (unknown to every message of case.proto), one of each wire type."""
    return b"".join(
        (
            encode_varint(first << 3 | 0) + encode_varint(2**40 + 7),  # varint
            encode_varint((first + 1) << 3 | 2) + encode_varint(5) + b"hello",  # length-delimited
            encode_varint((first + 2) << 3 | 1) + b"\x01" * 8,  # fixed64
            encode_varint((first + 3) << 3 | 5) + b"\x02" * 4,  # fixed32
            # a group holding one varint field
            encode_varint((first + 4) << 3 | 3)
            + encode_varint(1 << 3 | 0)
            + b"\x01"
            + encode_varint((first + 4) << 3 | 4),
        )
    )


def with_unknown_fields(samples: Iterator[Sample]) -> Iterator[Sample]:
    """Each sample with unknown fields in the case, in its child, in the first fact of each list and
    in a conference's agencies: what parsing a newer client's message keeps and serialising writes."""
    for sample in samples:
        message = case_pb2.Case()
        message.CopyFrom(sample.message)
        message.MergeFromString(unknown_fields(100))
        message.child.MergeFromString(unknown_fields(50))
        for name in FACT_LISTS:
            for fact in getattr(message, name)[:1]:
                fact.MergeFromString(unknown_fields(50))
        for conference in message.conferences[:1]:
            for part in conference.agencies[:1]:
                part.MergeFromString(unknown_fields(50))
        yield Sample(f"{sample.label} with unknown fields", message, sample.today, sample.as_ofs[:2])


def damaged_encodings(samples: Iterator[Sample], rng: random.Random, per_case: int = 40) -> Iterator[tuple[str, bytes]]:
    """Each sample's bytes cut short, with one byte changed, and with bad UTF-8 in a string."""
    for sample in samples:
        if fact_count(sample.message) > 200:
            continue
        data = sample.message.SerializeToString(deterministic=True)
        yield (
            f"{sample.label}, bad UTF-8 in case_id",
            data.replace(sample.message.case_id.encode(), b"\xff\xfe" + sample.message.case_id.encode()[2:], 1),
        )
        if not data:
            continue
        for _ in range(per_case):
            cut = rng.randrange(len(data))
            yield f"{sample.label}, cut to {cut} bytes", data[:cut]
            at, value = rng.randrange(len(data)), rng.randrange(256)
            yield f"{sample.label}, byte {at} set to {value}", data[:at] + bytes([value]) + data[at + 1 :]

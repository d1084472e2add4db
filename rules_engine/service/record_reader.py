"""A request's case read straight into records: the hot path's reader.

Validating a case field by field into pydantic models, naming every bad field (requests'
`case_model_from_proto`), costs more for a 200-fact case than evaluating it. Nearly every
case is valid, so `read_case` reads each message once into records (case.records: named
tuples with the fields and value types of the facts models), then checks whole columns at
once: every id against one regular expression, every code column as a set against the
allowed codes, each distinct date once (case.dates). The readers are generated at import
from each message's descriptor and its model, which must agree.

The checks are conservative: a case they do not accept reads as None, and requests
validates it instead, so callers get the same CaseError either way.
"""

from __future__ import annotations

import datetime as dt
import re
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import BaseModel

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.case import facts
from rules_engine.case.checks import (
    CODE,
    CODE_LIST,
    DATE,
    FREE,
    ID,
    ID_LIST,
    MAX_LIST_ITEMS,
    OPTIONAL_ID,
    PERCENT,
    FieldCheck,
    classify,
    enum_codes,
)
from rules_engine.case.dates import DAYS, FIRST_DATE, NOT_A_DATE, latest_date
from rules_engine.case.equality import DECILES, DISABILITIES, ETHNICITIES, SEXES
from rules_engine.case.facts import CaseRecord, ChildRecord
from rules_engine.case.fields import fact_fields, field_default, sub_model
from rules_engine.case.records import EMPTY, record_type_of
from rules_engine.config import MAX_FACTS

# One id per line: "\n" is not an id character, so a line count shows no id held one.
_ONE_ID = f"[{facts.ID_CHARACTERS}]{{1,{facts.ID_MAX_LENGTH}}}"
_IDS = re.compile(rf"{_ONE_ID}(?:\n{_ONE_ID})*")


class _Rejected(Exception):
    """The fast checks did not accept a value: the exact errors come from requests' validation."""


def ids_valid(ids: Sequence[str]) -> bool:
    """True when every string is an id (1-128 of letters, digits and . _ : / @ -)."""
    if not ids:
        return True
    joined = "\n".join(ids)
    return joined.count("\n") == len(ids) - 1 and _IDS.fullmatch(joined) is not None


# --- one record type and one reader per message type, generated from descriptor and model ---


class _Reader(typing.NamedTuple):
    """Reads a repeated field of one message type into records, or raises _Rejected."""

    read: Callable[[Any], list[Any]]
    fields: tuple[FieldCheck, ...]
    # Columns holding nested records (a conference's agencies), with their reader: their
    # dates join the case's for the future-date check.
    nested: tuple[tuple[int, _Reader], ...]
    # (start, end) column positions of date fields that must not end before they start.
    spans: tuple[tuple[int, int], ...]
    # Columns whose values must be distinct within one list: fact ids, a conference's agencies.
    unique: int | None
    # The fields with a column check (booleans and nested lists have none), by position.
    checked: tuple[tuple[int, FieldCheck], ...]


def _reader(descriptor: Descriptor, model: type[BaseModel], list_limit: int) -> _Reader:
    """Generate the reader of one message type: a list comprehension building its records."""
    record = record_type_of(model)
    namespace: dict[str, Any] = {"_new": tuple.__new__, "_Record": record, "_DAYS": DAYS}
    types = fact_fields(model)
    by_name = {f.name: f for f in descriptor.fields}
    expressions: list[str] = []
    fields: list[FieldCheck] = []
    nested: list[tuple[int, _Reader]] = []
    for name, info in model.model_fields.items():
        proto = by_name.get(name)
        if proto is None:
            raise RuntimeError(f"{model.__name__}.{name} has no counterpart in {descriptor.full_name}")
        helper = f"_{name}"
        if proto.type == FieldDescriptor.TYPE_MESSAGE:
            assert proto.message_type is not None and proto.is_repeated
            inner = _reader(proto.message_type, sub_model(model, name), MAX_LIST_ITEMS)
            namespace[helper] = _list_reader(inner, list_limit)
            nested.append((len(fields), inner))
            expressions.append(f"{helper}(m.{name})")
            fields.append(FieldCheck(name, FREE))
            continue
        field = classify(name, info, types.get(name))
        if proto.type == FieldDescriptor.TYPE_ENUM:
            namespace[helper] = enum_codes(proto.enum_type)
            expressions.append(f"{helper}.get(m.{name})")
        elif field.check == DATE:
            expressions.append(f"_DAYS[m.{name}]")
        elif proto.is_repeated:  # mostly empty: tuple() of an empty container costs twice the test
            expressions.append(f"(tuple(v) if (v := m.{name}) else ())")
        elif proto.has_presence:  # proto3 `optional`: unset leaves the model's default
            expressions.append(f"(m.{name} if m.HasField({name!r}) else {field_default(info)!r})")
        elif field.check in (CODE, ID) and field_default(info) is not None:
            expressions.append(f"(m.{name} or {field_default(info)!r})")
        elif field.check in (CODE, OPTIONAL_ID):
            expressions.append(f"(m.{name} or None)")
        else:
            expressions.append(f"m.{name}")
        fields.append(field)
    source = f"def read(messages):\n    return [_new(_Record, ({', '.join(expressions)},)) for m in messages]\n"
    exec(compile(source, f"<record reader for {descriptor.full_name}>", "exec"), namespace)
    names = list(model.model_fields)
    start = names.index("date") if "date" in names else -1
    ends = getattr(model, "end_fields", ())
    spans = tuple((start, names.index(end)) for end in ends)
    unique = 0 if names[0] == "id" else (names.index("agency") if model is facts.ConferenceAgency else None)
    checked = tuple((position, f) for position, f in enumerate(fields) if f.check != FREE)
    return _Reader(namespace["read"], tuple(fields), tuple(nested), spans, unique, checked)


def _list_reader(reader: _Reader, limit: int) -> Callable[[Any], tuple[Any, ...]]:
    """Read and check a nested repeated field (a conference's agencies) into a tuple of records."""

    def read(messages: Any) -> tuple[Any, ...]:
        if len(messages) > limit:
            raise _Rejected
        rows = reader.read(messages)
        _check(rows, reader, None)
        return tuple(rows)

    return read


class _DateSink:
    """Collects a case's distinct dates, for the one check against the latest plausible date."""

    __slots__ = ("dates",)

    def __init__(self) -> None:
        self.dates: set[Any] = set()

    def add(self, column: Iterable[Any]) -> None:
        self.dates.update(column)


def _check(rows: Sequence[Any], reader: _Reader, dates: _DateSink | None) -> None:
    """Raise _Rejected unless every column passes; an empty list always does.

    Dates go to `dates` for the case-wide future check; nested lists pass None, and their
    parent hands their dates on.
    """
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    for position, field in reader.checked:
        if not _column_passes(field, columns[position], dates):
            raise _Rejected
    if dates is not None:
        for position, inner in reader.nested:
            nested_rows = [row for rows in columns[position] for row in rows]
            if nested_rows:
                nested_columns = list(zip(*nested_rows, strict=True))
                for index, field in enumerate(inner.fields):
                    if field.check == DATE:
                        dates.add(nested_columns[index])
    if reader.unique is not None and len(set(columns[reader.unique])) != len(rows):
        raise _Rejected
    for start, end in reader.spans:
        if any(e is not None and e < s for s, e in zip(columns[start], columns[end], strict=True)):
            raise _Rejected


def _column_passes(field: FieldCheck, column: Sequence[Any], dates: _DateSink | None) -> bool:
    check = field.check
    if check == ID:
        return ids_valid(column)
    if check == OPTIONAL_ID:
        return ids_valid([value for value in column if value is not None])
    if check == CODE:
        return field.allowed.issuperset(column)
    if check == DATE:
        distinct = set(column)
        if NOT_A_DATE in distinct or (field.required and None in distinct):
            return False
        if dates is not None:
            dates.add(distinct)
        return True
    if check in (ID_LIST, CODE_LIST):
        if max(map(len, column)) > MAX_LIST_ITEMS:
            return False
        items = [item for values in column for item in values]
        return ids_valid(items) if check == ID_LIST else field.allowed.issuperset(items)
    if check == PERCENT:
        return all(0 <= value <= 100 for value in column)  # NaN fails too
    return True


def _fact_reader(name: str, model: type[BaseModel]) -> _Reader:
    descriptor = case_pb2.Case.DESCRIPTOR.fields_by_name[name].message_type
    assert descriptor is not None
    return _reader(descriptor, model, MAX_FACTS)


_READERS: dict[str, _Reader] = {name: _fact_reader(name, model) for name, model in facts.FACT_TYPES.items()}


def read_case(message: case_pb2.Case, today: dt.date) -> CaseRecord | None:
    """A request's case as records, or None when the fast checks do not accept it."""
    try:
        return _records(message, today)
    except (_Rejected, TypeError):
        # TypeError: a check met a value of the wrong kind (an unparsable date beside a good one).
        return None


def _records(message: case_pb2.Case, today: dt.date) -> CaseRecord:
    if not ids_valid((message.case_id,)):
        raise _Rejected
    lists = {}
    total = 0
    dates = _DateSink()
    for name, reader in _READERS.items():
        messages = getattr(message, name)
        if not messages:
            lists[name] = EMPTY
            continue
        total += len(messages)
        if total > MAX_FACTS:
            raise _Rejected
        rows = reader.read(messages)
        _check(rows, reader, dates)
        lists[name] = tuple(rows)
    child = message.child
    birth = DAYS[child.birth_date]
    if birth is NOT_A_DATE:
        raise _Rejected
    dates.dates.discard(None)
    if birth is not None:
        dates.dates.add(birth)
    # Dates outside the accepted range or more than a year ahead are named by validation.
    if dates.dates and (min(dates.dates) < FIRST_DATE or max(dates.dates) > latest_date(today)):
        raise _Rejected
    return CaseRecord(case_id=message.case_id, child=_child(child, birth), **lists)


def _child(message: case_pb2.Child, birth: dt.date | None) -> ChildRecord:
    """The child's record: its birth date (already read) and its equality monitoring codes."""
    if not (message.ethnicity or message.sex or message.disability or message.HasField("deprivation_decile")):
        return ChildRecord(birth)  # the usual case, cheapest
    ethnicity, sex, disability = message.ethnicity or None, message.sex or None, message.disability or None
    decile = message.deprivation_decile if message.HasField("deprivation_decile") else None
    if (
        (ethnicity is not None and ethnicity not in ETHNICITIES)
        or (sex is not None and sex not in SEXES)
        or (disability is not None and disability not in DISABILITIES)
        or (decile is not None and decile not in DECILES)
    ):
        raise _Rejected
    return ChildRecord(birth, ethnicity, sex, disability, decile)

"""Request cases straight into named-tuple records: the hot path's form of a case.

`wire.case_from_proto` validates a case field by field into pydantic models and reports
every bad field; for a 200-fact case that costs more than evaluating it. Nearly every
case is valid, so `case_from_proto` here reads each message once into named tuples that
have the fields and value types of the facts models (dates as `datetime.date`, codes as
text, lists as tuples, None where absent), then checks whole columns at once: every id
against one regular expression, every code column as a set against the allowed codes,
each distinct date once. Measures, filters and explanations read records and models
alike, by attribute.

The checks are conservative: anything they do not accept goes to `wire.case_from_proto`,
which names each bad field, so callers get the same CaseError either way.
"""

from __future__ import annotations

import datetime as dt
import json
import json.encoder
import operator
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.case import facts
from rules_engine.config import MAX_FACTS
from rules_engine.engine import calendar
from rules_engine.policy.filters import FieldType, fact_fields
from rules_engine.service import wire

# One id per line: "\n" is not an id character, so a line count shows no id held one.
_ONE_ID = f"[{facts.ID_CHARACTERS}]{{1,{facts.ID_MAX_LENGTH}}}"
_IDS = re.compile(rf"{_ONE_ID}(?:\n{_ONE_ID})*")
_BAD_DATE = object()  # a date field that is not YYYY-MM-DD; fails every column check
# Distinct valid dates are few (a century is 36,525); the cap only bounds hostile input.
MAX_CACHED_DATES = 100_000


class _Dates(dict[str, Any]):
    """Date text -> datetime.date, parsed once per process; "" -> None, bad text -> _BAD_DATE."""

    def __missing__(self, text: str) -> Any:
        try:
            day = wire.iso_day(text)
        except ValueError:
            return _BAD_DATE
        if len(self) >= MAX_CACHED_DATES:
            self.clear()
            self[""] = None
        self[text] = day
        return day


_DATES = _Dates({"": None})


class _Rejected(Exception):
    """The fast checks did not accept a value: the exact errors come from wire."""


def ids_valid(ids: Sequence[str]) -> bool:
    """True when every string is an id (1-128 of letters, digits and . _ : / @ -)."""
    if not ids:
        return True
    joined = "\n".join(ids)
    return joined.count("\n") == len(ids) - 1 and _IDS.fullmatch(joined) is not None


# --- one record type and one reader per message type, generated from descriptor and model ---

# What a field holds, for the column checks.
_ID, _ID_LIST, _CODE, _CODE_LIST, _DATE, _PERCENT, _FREE = "id", "id list", "code", "code list", "date", "%", ""
_OPTIONAL_ID = "optional id"  # an id that may be absent (a referral's assessment): None when empty


class _Field(typing.NamedTuple):
    name: str
    check: str
    # For codes and code lists: what may appear (None included when the field may be empty).
    allowed: frozenset[Any] = frozenset()
    required: bool = False


class _Reader(typing.NamedTuple):
    """Reads a repeated field of one message type into records, or raises _Rejected."""

    read: Callable[[Any], list[Any]]
    fields: tuple[_Field, ...]
    # Columns holding nested records (a conference's agencies), with their reader: their
    # dates join the case's for the future-date check.
    nested: tuple[tuple[int, _Reader], ...]
    # (start, end) column positions of date fields that must not end before they start.
    spans: tuple[tuple[int, int], ...]
    # Columns whose values must be distinct within one list: fact ids, a conference's agencies.
    unique: int | None
    # The fields with a column check (booleans and nested lists have none), by position.
    checked: tuple[tuple[int, _Field], ...]


RECORD_TYPES: dict[type[BaseModel], Any] = {facts.ConferenceAgencyFact: facts.ConferenceAgencyRecord}


def _record_type(model: type[BaseModel]) -> Any:
    if model not in RECORD_TYPES:
        RECORD_TYPES[model] = facts.record_type(model)
    return RECORD_TYPES[model]


def _default(info: FieldInfo) -> Any:
    return None if info.is_required() else info.default


def _classify(name: str, info: FieldInfo, field_type: FieldType | None) -> _Field:
    required = info.is_required()
    if field_type is None:
        raise RuntimeError(f"no fast check for field {name!r}")
    if field_type.kind == "date":
        return _Field(name, _DATE, required=required)
    if field_type.kind == "number":
        if not any(getattr(m, "ge", None) == 0 for m in info.metadata) or not any(
            getattr(m, "le", None) == 100 for m in info.metadata
        ):
            raise RuntimeError(f"no fast check for number field {name!r}")
        return _Field(name, _PERCENT)
    if field_type.kind == "boolean":
        return _Field(name, _FREE)
    codes = field_type.codes
    is_id = codes is None
    if is_id and not _is_id(info):
        raise RuntimeError(f"no fast check for text field {name!r}")
    if field_type.kind == "list":
        return _Field(name, _ID_LIST if is_id else _CODE_LIST, frozenset(codes or ()))
    if is_id:
        return _Field(name, _ID, required=True) if required else _Field(name, _OPTIONAL_ID)
    allowed: frozenset[Any] = frozenset(codes or ())
    default = _default(info)
    if not required and default is None:
        allowed |= {None}
    return _Field(name, _CODE, allowed, required)


def _is_id(info: FieldInfo) -> bool:
    """True when a text field is constrained as facts.Id (or a tuple of them) is."""
    constraints = [*info.metadata]
    for arg in typing.get_args(info.annotation):  # tuple[Id, ...]
        constraints += getattr(arg, "__metadata__", ())
    return any(getattr(c, "pattern", None) == facts.ID_PATTERN for c in constraints)


def _reader(descriptor: Descriptor, model: type[BaseModel], list_limit: int) -> _Reader:
    """Generate the reader of one message type: a list comprehension building its records."""
    record = _record_type(model)
    namespace: dict[str, Any] = {"_new": tuple.__new__, "_Record": record, "_DATES": _DATES}
    types = fact_fields(model)
    by_name = {f.name: f for f in descriptor.fields}
    expressions: list[str] = []
    fields: list[_Field] = []
    nested: list[tuple[int, _Reader]] = []
    for name, info in model.model_fields.items():
        proto = by_name.get(name)
        if proto is None:
            raise RuntimeError(f"{model.__name__}.{name} has no counterpart in {descriptor.full_name}")
        helper = f"_{name}"
        if proto.type == FieldDescriptor.TYPE_MESSAGE:
            assert proto.message_type is not None and proto.is_repeated
            inner = _reader(proto.message_type, wire.sub_model(model, name), wire.MAX_LIST_ITEMS)
            namespace[helper] = _list_reader(inner, list_limit)
            nested.append((len(fields), inner))
            expressions.append(f"{helper}(m.{name})")
            fields.append(_Field(name, _FREE))
            continue
        field = _classify(name, info, types.get(name))
        if proto.type == FieldDescriptor.TYPE_ENUM:
            namespace[helper] = wire.enum_codes(proto.enum_type)
            expressions.append(f"{helper}.get(m.{name})")
        elif field.check == _DATE:
            expressions.append(f"_DATES[m.{name}]")
        elif proto.is_repeated:  # mostly empty: tuple() of an empty container costs twice the test
            expressions.append(f"(tuple(v) if (v := m.{name}) else ())")
        elif proto.has_presence:  # proto3 `optional`: unset leaves the model's default
            expressions.append(f"(m.{name} if m.HasField({name!r}) else {_default(info)!r})")
        elif field.check in (_CODE, _ID) and _default(info) is not None:
            expressions.append(f"(m.{name} or {_default(info)!r})")
        elif field.check in (_CODE, _OPTIONAL_ID):
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
    checked = tuple((position, f) for position, f in enumerate(fields) if f.check != _FREE)
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
                    if field.check == _DATE:
                        dates.add(nested_columns[index])
    if reader.unique is not None and len(set(columns[reader.unique])) != len(rows):
        raise _Rejected
    for start, end in reader.spans:
        if any(e is not None and e < s for s, e in zip(columns[start], columns[end], strict=True)):
            raise _Rejected


def _column_passes(field: _Field, column: Sequence[Any], dates: _DateSink | None) -> bool:
    check = field.check
    if check == _ID:
        return ids_valid(column)
    if check == _OPTIONAL_ID:
        return ids_valid([value for value in column if value is not None])
    if check == _CODE:
        return field.allowed.issuperset(column)
    if check == _DATE:
        distinct = set(column)
        if _BAD_DATE in distinct or (field.required and None in distinct):
            return False
        if dates is not None:
            dates.add(distinct)
        return True
    if check in (_ID_LIST, _CODE_LIST):
        if max(map(len, column)) > wire.MAX_LIST_ITEMS:
            return False
        items = [item for values in column for item in values]
        return ids_valid(items) if check == _ID_LIST else field.allowed.issuperset(items)
    if check == _PERCENT:
        return all(0 <= value <= 100 for value in column)  # NaN fails too
    return True


def _fact_reader(name: str, model: type[BaseModel]) -> _Reader:
    descriptor = case_pb2.Case.DESCRIPTOR.fields_by_name[name].message_type
    assert descriptor is not None
    return _reader(descriptor, model, MAX_FACTS)


_READERS: dict[str, _Reader] = {name: _fact_reader(name, model) for name, model in facts.FACT_TYPES.items()}
CaseRecord = _record_type(facts.Case)
ChildRecord = _record_type(facts.Child)
_EMPTY: tuple[Any, ...] = ()


def case_from_proto(message: case_pb2.Case, today: dt.date, path: str = "case") -> facts.CaseFacts:
    """A request's case as records; when the fast checks do not accept it, `wire.case_from_proto`'s
    result (or its CaseError, naming every bad field)."""
    try:
        return _records(message, today)
    except (_Rejected, TypeError):
        # TypeError: a check met a value of the wrong kind (an unparsable date beside a good one).
        return wire.case_from_proto(message, today, path)


def _records(message: case_pb2.Case, today: dt.date) -> facts.CaseFacts:
    if not ids_valid((message.case_id,)):
        raise _Rejected
    lists = {}
    total = 0
    dates = _DateSink()
    for name, reader in _READERS.items():
        messages = getattr(message, name)
        if not messages:
            lists[name] = _EMPTY
            continue
        total += len(messages)
        if total > MAX_FACTS:
            raise _Rejected
        rows = reader.read(messages)
        _check(rows, reader, dates)
        lists[name] = tuple(rows)
    birth = _DATES[message.child.birth_date]
    if birth is _BAD_DATE:
        raise _Rejected
    dates.dates.discard(None)
    if birth is not None:
        dates.dates.add(birth)
    # Dates outside the calendar's bounds and more than a year ahead are named by wire.
    if dates.dates and (
        min(dates.dates) < calendar.FIRST_DATE
        or max(dates.dates) > min(today + dt.timedelta(days=wire.MAX_FUTURE), calendar.LAST_DATE)
    ):
        raise _Rejected
    record: facts.CaseFacts = CaseRecord(case_id=message.case_id, child=ChildRecord(birth), **lists)
    return record


# --- facts as the stores keep them: compact JSON, defaults left out, validated on the way in ---


def _dict_reader(model: type[BaseModel]) -> Callable[[Any], Any]:
    """Generate `read(d) -> record` for one model's stored JSON object (model_dump_json with
    exclude_defaults): absent keys take the model's defaults, dates are parsed (once each)."""
    namespace: dict[str, Any] = {"_new": tuple.__new__, "_Record": _record_type(model), "_DATES": _DATES}
    types = fact_fields(model)
    expressions = []
    for name, info in model.model_fields.items():
        default = _default(info)
        field_type = types.get(name)
        if field_type is None:  # nested models: a conference's agencies
            helper = f"_{name}"
            namespace[helper] = _dict_reader(wire.sub_model(model, name))
            expressions.append(f"tuple(map({helper}, d.get({name!r}, ())))")
        elif field_type.kind == "date":
            expressions.append(f"_DATES[d[{name!r}]]" if info.is_required() else f"_DATES[d.get({name!r}, '')]")
        elif field_type.kind == "list":
            expressions.append(f"tuple(d.get({name!r}, ()))")
        elif info.is_required():
            expressions.append(f"d[{name!r}]")
        else:
            expressions.append(f"d.get({name!r}, {default!r})")
    source = f"def read(d):\n    return _new(_Record, ({', '.join(expressions)},))\n"
    exec(compile(source, f"<stored record reader for {model.__name__}>", "exec"), namespace)
    reader: Callable[[Any], Any] = namespace["read"]
    return reader


_STORED_READERS = {name: _dict_reader(model) for name, model in facts.FACT_TYPES.items()}
_read_child = _dict_reader(facts.Child)


def case_from_stored(
    case_id: str,
    child: Any,
    stored: Mapping[str, Sequence[Any]],
    held: Mapping[str, Sequence[Any]] | None = None,
) -> facts.CaseFacts:
    """Records from stored facts already parsed from JSON (dicts by fact type), each type in
    (date, id) order as the stores answer; the stores validated every fact on the way in.

    `held`: facts of the case already in hand as records, by type (those a merge just stored),
    joined to the parsed ones; `child` may then be a record too.
    """
    lists = {}
    for name, reader in _STORED_READERS.items():
        found = stored.get(name)
        known = held.get(name) if held else None
        if known:
            lists[name] = tuple(sorted([*known, *map(reader, found or ())], key=_BY_DATE))
        else:
            lists[name] = tuple(sorted(map(reader, found), key=_BY_DATE)) if found else _EMPTY
    child_record = child if isinstance(child, ChildRecord) else _read_child(child)
    record: facts.CaseFacts = CaseRecord(case_id=case_id, child=child_record, **lists)
    return record


_BY_DATE = operator.attrgetter("date", "id")


def of(value: Any) -> Any:
    """A case (or fact) as records, whichever form it is in: compares equal across forms.

    For tests and tools; the hot path builds records directly.
    """
    if isinstance(value, BaseModel):
        return _record_type(type(value))(*(of(getattr(value, name)) for name in type(value).model_fields))
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(of(item) for item in value)
    return value


# --- records as the stores keep facts: byte for byte what model_dump_json(exclude_defaults=True) writes ---


class NeedsModelError(ValueError):
    """A value whose JSON text pydantic might spell differently (a float with an exponent)."""


def _float_text(value: float) -> str:
    # Python and pydantic agree on the shortest round-trip digits, but not on exponents
    # (1e-05 / 1e-5); a percentage near zero is left to pydantic.
    if value != 0 and abs(value) < 1e-4:
        raise NeedsModelError(value)
    return repr(value)


def _json_writer(model: type[BaseModel]) -> Callable[[Any], str]:
    """Generate `write(record) -> str`, the JSON of a record as model_dump_json(exclude_defaults=True)
    writes its model: fields in order, those equal to their default left out."""
    namespace: dict[str, Any] = {"_text": json.encoder.encode_basestring, "_float": _float_text}
    types = fact_fields(model)
    body = []
    for position, (name, info) in enumerate(model.model_fields.items()):
        field_type = types.get(name)
        value = f"r[{position}]"
        if field_type is None:  # nested models: a conference's agencies
            helper = f"_{name}"
            namespace[helper] = _json_writer(wire.sub_model(model, name))
            text = f"'[' + ','.join(map({helper}, v)) + ']'"
        elif field_type.kind == "date":
            text = "'\"' + v.isoformat() + '\"'"
        elif field_type.kind == "list":
            text = "'[' + ','.join(map(_text, v)) + ']'"
        elif field_type.kind == "boolean":
            text = "('true' if v else 'false')"
        elif field_type.kind == "number":
            text = "_float(v)"
        else:
            text = "_text(v)"
        piece = f"    v = {value}\n"
        if info.is_required():
            piece += f"    parts.append('\"{name}\":' + {text})\n"
        else:
            default = _default(info)
            test = "v is not None" if default is None else f"v != {default!r}"
            piece += f"    if {test}:\n        parts.append('\"{name}\":' + {text})\n"
        body.append(piece)
    source = "def write(r):\n    parts = []\n" + "".join(body) + "    return '{' + ','.join(parts) + '}'\n"
    exec(compile(source, f"<json writer for {model.__name__}>", "exec"), namespace)
    writer: Callable[[Any], str] = namespace["write"]
    return writer


_JSON_WRITERS: dict[str, Callable[[Any], str]] = {name: _json_writer(model) for name, model in facts.FACT_TYPES.items()}
_write_child = _json_writer(facts.Child)


def fact_json(fact_type: str, record: Any) -> str:
    """A fact record's stored JSON; raises NeedsModelError when only pydantic may write it."""
    return _JSON_WRITERS[fact_type](record)


def stored_facts(case: facts.CaseFacts) -> list[tuple[str, str]]:
    """(`<fact type>:<id>`, stored JSON) of every fact of a case given as records."""
    out = []
    for fact_type, write in _JSON_WRITERS.items():
        for record in getattr(case, fact_type):
            out.append((f"{fact_type}:{record.id}", _fact_json_or_model(fact_type, record, write)))
    return out


def child_json(child: Any) -> str:
    return _write_child(child)


def to_case(case: facts.CaseFacts) -> facts.Case:
    """Records back into a validated facts.Case (for the in-memory store, which keeps models)."""
    if isinstance(case, facts.Case):
        return case
    lists = [
        f'"{t}":[{",".join(_fact_json_or_model(t, f, write) for f in getattr(case, t))}]'
        for t, write in _JSON_WRITERS.items()
    ]
    document = f'{{"case_id":{json.dumps(case.case_id)},"child":{child_json(case.child)},{",".join(lists)}}}'
    return facts.Case.model_validate_json(document)


def _fact_json_or_model(fact_type: str, record: Any, write: Callable[[Any], str]) -> str:
    try:
        return write(record)
    except NeedsModelError:
        model = facts.FACT_TYPES[fact_type]
        return model.model_validate(record._asdict()).model_dump_json(exclude_defaults=True)

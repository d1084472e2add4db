"""The record form of a case: read from stored JSON, written as stored JSON, converted from models.

Records are named tuples with the fields and value types of the facts models (dates as
`datetime.date`, codes as text, lists as tuples, None where absent): measures, filters and
explanations read records and models alike, by attribute, and records cost far less to build.
The stores keep each fact as the compact JSON pydantic writes (model_dump_json with
exclude_defaults). Here that JSON is read into records without validating it again (the
stores validated every fact on the way in) and records are written back byte for byte as
pydantic would, so the Redis merge can compare texts to tell a changed fact from a resent
one. `as_records` and `to_case` convert between the two domain forms.

A request's case is read into records at the service edge (service.record_reader).
"""

from __future__ import annotations

import json
import json.encoder
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from rules_engine.case import facts
from rules_engine.case.dates import DAYS
from rules_engine.case.facts import CaseFacts, CaseRecord, ChildFacts, ChildRecord, FactRecord
from rules_engine.case.fields import fact_fields, field_default, sub_model
from rules_engine.errors import NeedsModelError

# The record type of each model, made once; the case's and the child's are declared in facts.
RECORD_TYPES: dict[type[BaseModel], Any] = {
    facts.Case: CaseRecord,
    facts.Child: ChildRecord,
    facts.ConferenceAgencyFact: facts.ConferenceAgencyRecord,
}
EMPTY: tuple[Any, ...] = ()  # one empty fact list for every case that has none of a type


def record_type_of(model: type[BaseModel]) -> Any:
    """The record type of a model: a named tuple with its fields, in order."""
    if model not in RECORD_TYPES:
        RECORD_TYPES[model] = facts.record_type(model)
    return RECORD_TYPES[model]


# --- facts as the stores keep them: compact JSON, defaults left out, validated on the way in ---


def _dict_reader(model: type[BaseModel]) -> Callable[[Any], Any]:
    """Generate `read(d) -> record` for one model's stored JSON object (model_dump_json with
    exclude_defaults): absent keys take the model's defaults, dates are parsed (once each)."""
    namespace: dict[str, Any] = {"_new": tuple.__new__, "_Record": record_type_of(model), "_DAYS": DAYS}
    types = fact_fields(model)
    expressions = []
    for name, info in model.model_fields.items():
        default = field_default(info)
        field_type = types.get(name)
        if field_type is None:  # nested models: a conference's agencies
            helper = f"_{name}"
            namespace[helper] = _dict_reader(sub_model(model, name))
            expressions.append(f"tuple(map({helper}, d.get({name!r}, ())))")
        elif field_type.kind == "date":
            expressions.append(f"_DAYS[d[{name!r}]]" if info.is_required() else f"_DAYS[d.get({name!r}, '')]")
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


def child_from_stored(child: Mapping[str, Any]) -> ChildRecord:
    """The child's record from its stored JSON, already parsed."""
    record: ChildRecord = _read_child(child)
    return record


def case_from_stored(
    case_id: str,
    child: ChildRecord,
    stored: Mapping[str, Sequence[Any]],
    held: Mapping[str, Sequence[FactRecord]] | None = None,
) -> CaseRecord:
    """Records from stored facts already parsed from JSON (dicts by fact type), each type in
    (date, id) order as the stores answer; the stores validated every fact on the way in.

    `held`: facts of the case already in hand as records, by type (those a merge just stored),
    joined to the parsed ones.
    """
    lists = {}
    for name, reader in _STORED_READERS.items():
        found = stored.get(name)
        known = held.get(name) if held else None
        if known:
            lists[name] = tuple(sorted([*known, *map(reader, found or ())], key=_BY_DATE))
        else:
            lists[name] = tuple(sorted(map(reader, found), key=_BY_DATE)) if found else EMPTY
    return CaseRecord(case_id, child, **lists)


_BY_DATE = operator.attrgetter("date", "id")


def of(value: Any) -> Any:
    """A case, child or fact as records, whichever form it is in: compares equal across forms.

    For tests, tools and the rare model that reaches a store; the hot path builds records directly.
    """
    if isinstance(value, BaseModel):
        return record_type_of(type(value))(*(of(getattr(value, name)) for name in type(value).model_fields))
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(of(item) for item in value)
    return value


def as_records(case: CaseFacts) -> CaseRecord:
    """A case in either form as records; records pass through unchanged."""
    if isinstance(case, CaseRecord):
        return case
    record: CaseRecord = of(case)
    return record


def child_record(child: ChildFacts) -> ChildRecord:
    """The child in either form as its record."""
    if isinstance(child, ChildRecord):
        return child
    record: ChildRecord = of(child)
    return record


# --- records as the stores keep facts: byte for byte what model_dump_json(exclude_defaults=True) writes ---


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
            namespace[helper] = _json_writer(sub_model(model, name))
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
            default = field_default(info)
            test = "v is not None" if default is None else f"v != {default!r}"
            piece += f"    if {test}:\n        parts.append('\"{name}\":' + {text})\n"
        body.append(piece)
    source = "def write(r):\n    parts = []\n" + "".join(body) + "    return '{' + ','.join(parts) + '}'\n"
    exec(compile(source, f"<json writer for {model.__name__}>", "exec"), namespace)
    writer: Callable[[Any], str] = namespace["write"]
    return writer


_JSON_WRITERS: dict[str, Callable[[Any], str]] = {name: _json_writer(model) for name, model in facts.FACT_TYPES.items()}
_write_child = _json_writer(facts.Child)


def fact_json(fact_type: str, record: FactRecord) -> str:
    """A fact record's stored JSON; raises NeedsModelError when only pydantic may write it."""
    return _JSON_WRITERS[fact_type](record)


def stored_facts(case: CaseRecord) -> list[tuple[str, str]]:
    """(`<fact type>:<id>`, stored JSON) of every fact of a case."""
    out = []
    for fact_type, write in _JSON_WRITERS.items():
        for record in getattr(case, fact_type):
            out.append((f"{fact_type}:{record.id}", _fact_json_or_model(fact_type, record, write)))
    return out


def child_json(child: ChildRecord) -> str:
    """The child's stored JSON."""
    return _write_child(child)


def to_case(case: CaseFacts) -> facts.Case:
    """A case in either form as a validated facts.Case (for the in-memory store, which keeps
    models); models pass through unchanged."""
    if isinstance(case, facts.Case):
        return case
    lists = [
        f'"{t}":[{",".join(_fact_json_or_model(t, f, write) for f in getattr(case, t))}]'
        for t, write in _JSON_WRITERS.items()
    ]
    document = f'{{"case_id":{json.dumps(case.case_id)},"child":{child_json(case.child)},{",".join(lists)}}}'
    return facts.Case.model_validate_json(document)


def _fact_json_or_model(fact_type: str, record: FactRecord, write: Callable[[Any], str]) -> str:
    try:
        return write(record)
    except NeedsModelError:
        model = facts.FACT_TYPES[fact_type]
        return model.model_validate(record._asdict()).model_dump_json(exclude_defaults=True)

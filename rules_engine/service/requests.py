"""Request messages into domain values: the case, `as_of`, ids, withdrawn facts, acknowledgements.

A case is read two ways. `case_from_proto`, what the server does, reads it straight into
records (record_reader: generated readers and whole-column checks); a case those checks do
not accept is validated by `case_model_from_proto` instead, which copies the message field by
field into pydantic models with converters generated once at import (json_format.MessageToDict
costs more than the whole conversion) and collects every violation, by field path, before
raising one CaseError. Either way the caller gets the same case or the same errors.
Every date is held to case.dates' range.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import BaseModel, ValidationError

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.case import facts
from rules_engine.case.checks import MAX_LIST_ITEMS, enum_codes
from rules_engine.case.dates import iso_day, latest_date, out_of_range
from rules_engine.case.equality import (
    DECILES,
    DISABILITIES,
    ETHNICITIES,
    NOT_RECORDED,
    SEXES,
    UNRECORDED,
    Groups,
)
from rules_engine.case.facts import CaseFacts
from rules_engine.case.fields import sub_model
from rules_engine.config import MAX_FACTS
from rules_engine.errors import CaseError, FieldViolation
from rules_engine.service import json_input
from rules_engine.service.record_reader import read_case

# The request's case as the API sends it, for callers above the service edge.
CaseMessage = case_pb2.Case

MAX_VIOLATIONS = 50  # beyond this the caller learns the count, not every path


def case_from_proto(message: case_pb2.Case, today: dt.date, path: str = "case") -> CaseFacts:
    """A request's case as records; when the fast checks do not accept it, `case_model_from_proto`'s
    model (or its CaseError, naming every bad field).

    `today` bounds dates (more than a year ahead is refused); `path` prefixes field paths,
    e.g. `cases[3]` in a batch.
    """
    record = read_case(message, today)
    return record if record is not None else case_model_from_proto(message, today, path)


def equality_groups(child: case_pb2.Child) -> Groups | None:
    """The child's equality monitoring groups (case.equality.groups) straight from the message, for
    a case the compiled core answers without the Python conversion; None when a field holds what
    is not one of its codes (validation names it)."""
    if not (child.ethnicity or child.sex or child.disability or child.HasField("deprivation_decile")):
        return UNRECORDED  # the usual case: two attribute reads
    ethnicity, sex, disability = child.ethnicity, child.sex, child.disability
    decile = child.deprivation_decile if child.HasField("deprivation_decile") else None
    if (
        (ethnicity and ethnicity not in ETHNICITIES)
        or (sex and sex not in SEXES)
        or (disability and disability not in DISABILITIES)
        or (decile is not None and decile not in DECILES)
    ):
        return None
    return (
        ethnicity or NOT_RECORDED,
        sex or NOT_RECORDED,
        disability or NOT_RECORDED,
        NOT_RECORDED if decile is None else str(decile),
    )


# -- the validating conversion: every bad field named ----------------------------------------


def _is_date(model: type[BaseModel], name: str) -> bool:
    annotation = model.model_fields[name].annotation
    return annotation is dt.date or (isinstance(annotation, types.UnionType) and dt.date in typing.get_args(annotation))


def _at(where: str, index: int, name: str) -> str:
    return f"{where}.{name}" if index < 0 else f"{where}[{index}].{name}"


# Straight-line code per field kind, generated once per message type at import (as
# dataclasses generates __init__): a generic loop over the fields costs twice as much per
# fact, and this runs for every fact of every request. `m` is the message, `out` the dict.
_TEMPLATES = {
    # Proto3 strings cannot be unset: empty means absent.
    "text": "    v = m.{name}\n    if v:\n        out['{name}'] = v\n",
    "date": (
        "    v = m.{name}\n    if v:\n        d = days.get(v) or walk.date(v, where, index, '{name}')\n"
        "        if d is not None:\n            out['{name}'] = d\n"
    ),
    "scalar": "    out['{name}'] = m.{name}\n",
    # Proto3 `optional` scalars: unset leaves the model's default (e.g. invited=True).
    "optional": "    if m.HasField('{name}'):\n        out['{name}'] = m.{name}\n",
    "enum": (
        "    v = m.{name}\n    code = {helper}.get(v)\n    if code is None:\n"
        "        walk.bad_enum(v, where, index, '{name}')\n    else:\n        out['{name}'] = code\n"
    ),
    "text_list": (
        "    v = m.{name}\n    if v:\n        if len(v) > {limit}:\n"
        "            walk.too_many({limit}, _at(where, index, '{name}'))\n"
        "        else:\n            out['{name}'] = tuple(v)\n"
    ),
    "message": "    out['{name}'] = {helper}(m.{name}, walk, _at(where, index, '{name}'), -1)\n",
    "message_list": (
        "    v = m.{name}\n    if v:\n        inner = _at(where, index, '{name}')\n"
        "        if len(v) > {limit}:\n            walk.too_many({limit}, inner)\n        else:\n"
        "            out['{name}'] = tuple([{helper}(x, walk, inner, i) for i, x in enumerate(v)])\n"
    ),
}

# A converter: (message, walk, where, index) -> the dict for the message's model, where the
# message sits at `where[index]` (or `where` when index < 0). Paths are only formatted for
# bad fields: formatting one per fact would cost more than the conversion.
_Converter = Callable[[Any, "_Walk", str, int], dict[str, Any]]


def _converter(descriptor: Descriptor, model: type[BaseModel], list_limit: int = MAX_LIST_ITEMS) -> _Converter:
    """Generate the converter of one message type from its descriptor and model, which must agree."""
    namespace: dict[str, Any] = {"_at": _at}
    body = []
    for field in descriptor.fields:
        name, helper = field.name, f"_{field.name}"
        if name not in model.model_fields or not name.isidentifier():
            raise RuntimeError(f"{descriptor.full_name}.{name} has no counterpart in {model.__name__}")
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            assert field.message_type is not None
            kind = "message_list" if field.is_repeated else "message"
            namespace[helper] = _converter(field.message_type, sub_model(model, name))
        elif field.is_repeated:
            kind = "text_list"
        elif field.type == FieldDescriptor.TYPE_ENUM:
            kind, namespace[helper] = "enum", enum_codes(field.enum_type)
        elif field.type == FieldDescriptor.TYPE_STRING:
            kind = "date" if _is_date(model, name) else "text"
        else:
            kind = "optional" if field.has_presence else "scalar"
        body.append(_TEMPLATES[kind].format(name=name, helper=helper, limit=list_limit))
    source = "def convert(m, walk, where, index):\n    out = {}\n    days = walk.days\n"
    source += "".join(body) + "    return out\n"
    exec(compile(source, f"<case converter for {descriptor.full_name}>", "exec"), namespace)
    converter: _Converter = namespace["convert"]
    return converter


# Fact lists are bounded by MAX_FACTS together (checked first), nested lists each by MAX_LIST_ITEMS.
_convert_case = _converter(case_pb2.Case.DESCRIPTOR, facts.Case, list_limit=MAX_FACTS)
_FACT_LISTS = tuple(facts.FACT_TYPES)


class _Walk:
    """One conversion: the violations found so far, the paths they cover, dates already parsed."""

    __slots__ = ("days", "latest", "reported", "violations")

    def __init__(self, today: dt.date) -> None:
        self.latest = latest_date(today)
        self.violations: list[FieldViolation] = []
        self.reported: set[str] = set()
        # Cases repeat the same few hundred dates; parse each once per call.
        self.days: dict[str, dt.date] = {}

    def add(self, path: str, description: str) -> None:
        self.reported.add(path)
        self.violations.append(FieldViolation(path, description))

    def bad_enum(self, value: int, where: str, index: int, name: str) -> None:
        self.add(_at(where, index, name), "required" if value == 0 else f"unknown value {value}")

    def too_many(self, limit: int, path: str) -> None:
        self.add(path, f"more than {limit} items")

    def date(self, text: str, where: str, index: int, name: str) -> dt.date | None:
        try:
            day = iso_day(text)
        except ValueError:
            self.add(_at(where, index, name), "not a date (YYYY-MM-DD)")
            return None
        if (outside := out_of_range(day)) is not None:
            self.add(_at(where, index, name), outside)
            return None
        if day > self.latest:
            self.add(_at(where, index, name), f"more than a year in the future ({text})")
            return None
        self.days[text] = day
        return day


def case_message_digest(message: case_pb2.Case) -> str:
    """sha256 hex of a Case message in deterministic protobuf encoding: the decision log's input digest."""
    return case_bytes_digest(message.SerializeToString(deterministic=True))


def case_bytes_digest(data: bytes) -> str:
    """The input digest of a Case already serialized deterministically (see case_message_digest)."""
    return hashlib.sha256(data).hexdigest()


def case_model_from_proto(message: case_pb2.Case, today: dt.date, path: str = "case") -> facts.Case:
    """Validate a request's case into facts.Case, or raise CaseError listing every bad field.

    `today` bounds dates (more than a year ahead is rejected); `path` prefixes field
    paths, e.g. `cases[3]` in a batch.
    """
    total = sum(len(getattr(message, name)) for name in _FACT_LISTS)
    if total > MAX_FACTS:
        raise CaseError([FieldViolation(path, f"{total} facts; at most {MAX_FACTS} per case")])
    walk = _Walk(today)
    raw = _convert_case(message, walk, path, -1)
    _check_facts(raw, path, walk)
    try:
        case = facts.Case.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field = _path(path, error["loc"])
            if field not in walk.reported:
                walk.add(field, _describe(error))
    if walk.violations:
        raise CaseError(_capped(sorted(walk.violations, key=_order)))
    return case


def _check_facts(raw: dict[str, Any], path: str, walk: _Walk) -> None:
    """Cross-field checks pydantic cannot see: duplicate ids, end before start."""
    for fact_type, model in facts.FACT_TYPES.items():
        first_at: dict[str, int] = {}
        for i, fact in enumerate(raw.get(fact_type, ())):
            fact_id = fact.get("id")
            if fact_id is not None:
                if fact_id in first_at:
                    walk.add(
                        f"{path}.{fact_type}[{i}].id",
                        f"duplicate id; first at {fact_type}[{first_at[fact_id]}]",
                    )
                else:
                    first_at[fact_id] = i
            start = fact.get("date")
            for end_field in model.end_fields:
                end = fact.get(end_field)
                if start is not None and end is not None and end < start:
                    walk.add(f"{path}.{fact_type}[{i}].{end_field}", f"before date ({start.isoformat()})")
    for i, conference in enumerate(raw.get("conferences", ())):
        # Derived conference-agency facts are keyed by agency, so one agency appears once.
        seen: set[str] = set()
        for j, part in enumerate(conference.get("agencies", ())):
            agency = part.get("agency")
            if agency in seen:
                walk.add(f"{path}.conferences[{i}].agencies[{j}].agency", "agency listed twice")
            elif agency is not None:
                seen.add(agency)


# pydantic lists a Literal's values as "'A', 'B' or 'C'".
_QUOTED = re.compile(r"'([^']*)'")
_PATH_PART = re.compile(r"\[(\d+)\]|\.?([^.\[]+)")


def _order(violation: FieldViolation) -> tuple[tuple[int, int, str], ...]:
    # Paths in document order: list indices compare as numbers, so [10] follows [9].
    return tuple((0, int(index), "") if index else (1, 0, name) for index, name in _PATH_PART.findall(violation.field))


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    return prefix + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _describe(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        # Codes are echoed (cut short) to help the caller; free text never belongs in them.
        return json_input.unknown_code(str(error["input"]), _QUOTED.findall(error["ctx"]["expected"]))
    if kind == "string_too_long":
        return f"longer than {error['ctx']['max_length']} characters"
    if kind == "string_too_short":
        return "required"
    if kind == "string_pattern_mismatch":
        return "only letters, digits and . _ : / @ - are allowed"
    return str(error["msg"])


def _capped(violations: list[FieldViolation]) -> list[FieldViolation]:
    if len(violations) <= MAX_VIOLATIONS:
        return violations
    rest = len(violations) - MAX_VIOLATIONS
    return [*violations[:MAX_VIOLATIONS], FieldViolation("case", f"{rest} more violations not shown")]


def parse_as_of(text: str) -> dt.datetime | None:
    """Parse a request's `as_of` (YYYY-MM-DD as UTC midnight, or RFC 3339); empty means now (None)."""
    if not text:
        return None
    if len(text) == 10:
        return _day_as_of(text)
    return _parse_as_of(text)


@functools.lru_cache(maxsize=64)
def _day_as_of(text: str) -> dt.datetime | None:
    # Callers send the same few days all day long: each parsed once (a refusal is not cached).
    return _parse_as_of(text)


def _parse_as_of(text: str) -> dt.datetime | None:
    try:
        if len(text) == 10:
            moment = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
        elif len(text) < 20 or text[10] not in "Tt ":
            raise ValueError
        else:
            moment = dt.datetime.fromisoformat(text.upper())
    except ValueError:
        raise CaseError([FieldViolation("as_of", "not a date (YYYY-MM-DD) or RFC 3339 timestamp")]) from None
    if moment.tzinfo is None:
        raise CaseError([FieldViolation("as_of", "RFC 3339 timestamp needs a UTC offset, e.g. Z")])
    # The date as written is the one evaluated (engine: moment.date()).
    if (outside := out_of_range(moment.date())) is not None:
        raise CaseError([FieldViolation("as_of", outside)])
    return moment


def case_from_json(obj: dict[str, Any], path: str = "case") -> case_pb2.Case:
    """Parse the proto3 JSON form of a Case (as grpcurl sends it); raise CaseError naming each
    mistake by its field path (`case.concerns[1].agnecy: unknown field; did you mean 'agency'?`)."""
    return json_input.parse_json(obj, case_pb2.Case(), path)


def request_from_json(obj: dict[str, Any]) -> pb.EvaluateRequest:
    """Parse the proto3 JSON form of an EvaluateRequest (`case`, `asOf`, `ruleset`, …), as case_from_json."""
    return json_input.parse_json(obj, pb.EvaluateRequest(), "")


# -- stored history: case ids, withdrawn facts, acknowledgements -------------------------------

_ID = facts.ID_RE  # ids become Redis key parts


def case_id_from_text(text: str, path: str = "case_id") -> str:
    """A request's case id, checked as a fact id is; raise CaseError when it is not one."""
    if not _ID.fullmatch(text):
        description = "required" if not text else "only letters, digits and . _ : / @ - are allowed (1-128)"
        raise CaseError([FieldViolation(path, description)])
    return text


def withdrawn_from_proto(refs: Sequence[pb.FactRef], path: str = "withdrawn") -> list[tuple[str, str]]:
    """(fact type, id) pairs of facts recorded in error; raise CaseError listing every bad one."""
    violations = []
    if len(refs) > MAX_FACTS:
        raise CaseError([FieldViolation(path, f"more than {MAX_FACTS} items")])
    for i, ref in enumerate(refs):
        if ref.fact_type not in facts.FACT_TYPES:
            violations.append(FieldViolation(f"{path}[{i}].fact_type", f"unknown fact type {ref.fact_type[:40]!r}"))
        if not _ID.fullmatch(ref.fact_id):
            violations.append(FieldViolation(f"{path}[{i}].fact_id", "required" if not ref.fact_id else "not an id"))
    if violations:
        raise CaseError(_capped(violations))
    return [(ref.fact_type, ref.fact_id) for ref in refs]


# An acknowledgement's reason is a code, never free text (store.lifecycle checks the same).
REASON_CODE_RE = re.compile(r"[A-Z0-9_]{1,64}")


def acknowledgement_from_proto(request: pb.AcknowledgeFlagRequest, today: dt.date) -> tuple[str, str, dt.date | None]:
    """(case id, rule id, snooze date) of an AcknowledgeFlag request; CaseError lists every bad field."""
    violations: list[FieldViolation] = []
    for path, text in (("case_id", request.case_id), ("rule_id", request.rule_id)):
        try:
            case_id_from_text(text, path)
        except CaseError as exc:
            violations.extend(exc.violations)
    if not _ID.fullmatch(request.practitioner_id):
        description = (
            "required" if not request.practitioner_id else "must be a pseudonymous id (letters, digits, ._:/@-)"
        )
        violations.append(FieldViolation("practitioner_id", description))
    if not REASON_CODE_RE.fullmatch(request.reason_code):
        description = "required" if not request.reason_code else "must be a code (A-Z, 0-9, _), not free text"
        violations.append(FieldViolation("reason_code", description))
    snooze_until = None
    try:
        snooze_until = snooze_from_text(request.snooze_until)
    except CaseError as exc:
        violations.extend(exc.violations)
    if snooze_until is not None and snooze_until <= today:
        violations.append(FieldViolation("snooze_until", f"must be after today ({today.isoformat()})"))
    if violations:
        raise CaseError(violations)
    return request.case_id, request.rule_id, snooze_until


def snooze_from_text(text: str, path: str = "snooze_until") -> dt.date | None:
    """An optional YYYY-MM-DD date; empty means no snooze."""
    if not text:
        return None
    try:
        day = iso_day(text)
    except ValueError:
        raise CaseError([FieldViolation(path, "not a date (YYYY-MM-DD)")]) from None
    if (outside := out_of_range(day)) is not None:
        raise CaseError([FieldViolation(path, outside)])
    return day

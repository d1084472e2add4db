"""Proto3 JSON from files (a Case, or an EvaluateRequest holding one): every mistake named by its field path.

protobuf's ParseError says `Message type "rules_engine.v1.Concern" has no field named "agnecy"
at "Case.concerns[1]"` and stops at the first. When it refuses a document, the document is
walked against the message descriptor instead, so each mistake is reported as every other
error is: `case.concerns[1].agnecy: unknown field; did you mean 'agency'? (value 'POLICE')`.
The walk runs only after a refusal, so well-formed files cost nothing extra.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from rules_engine.errors import CaseError, FieldViolation
from rules_engine.policy.conditions import suggest

M = TypeVar("M", bound=Message)
# Descriptors are typed Any below: the stubs' Python and upb descriptor classes differ.

# Longer code lists (agencies, factors) are named, not listed: an error message is no place for 40 codes.
MAX_CODES_LISTED = 12
# protobuf's own wording, for the mistakes the walk does not recognise.
_PROTOBUF_AT = re.compile(r'^(?:Failed to parse \w+ field: )*(.*?)(?: at "[\w.]+?\.?([^"]*)")?\.?$', re.DOTALL)


def parse_json(document: object, message: M, path: str) -> M:
    """Fill `message` from its proto3 JSON form; raise CaseError naming each mistake under `path`."""
    if not isinstance(document, dict):
        raise CaseError([FieldViolation(path or "(document)", f"expected a JSON object, not {_kind(document)}")])
    try:
        return json_format.ParseDict(document, message)
    except json_format.ParseError as exc:
        found = json_violations(document, message.DESCRIPTOR, path)
        raise CaseError(found or [_from_protobuf(str(exc), path)]) from None


def json_violations(document: dict[str, Any], descriptor: Any, path: str) -> list[FieldViolation]:
    """Unknown fields, unknown enum names and values of the wrong kind in `document`, by field path."""
    found: list[FieldViolation] = []
    fields = {**{f.name: f for f in descriptor.fields}, **{f.json_name: f for f in descriptor.fields}}
    for key, value in document.items():
        field = fields.get(key)
        if field is None:
            hint = suggest(key, list(fields))  # in the file's own style: asOf or as_of
            found.append(FieldViolation(_join(path, key), f"unknown field{hint} (value {_show(value)})"))
            continue
        where = _join(path, field.name)
        if value is None:
            continue
        if field.is_repeated:
            if not isinstance(value, list):
                found.append(FieldViolation(where, f"expected a list, not {_kind(value)}"))
                continue
            for i, item in enumerate(value):
                found.extend(_value(field, item, f"{where}[{i}]"))
        else:
            found.extend(_value(field, value, where))
    return found


def _value(field: Any, value: object, where: str) -> list[FieldViolation]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if not isinstance(value, dict):
            return [FieldViolation(where, f"expected an object, not {_kind(value)}")]
        return json_violations(value, field.message_type, where)
    if field.type == FieldDescriptor.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values if v.number != 0]
        if isinstance(value, str) and value not in field.enum_type.values_by_name:
            return [FieldViolation(where, unknown_code(value, names))]
        if not isinstance(value, str | int) or isinstance(value, bool):
            return [FieldViolation(where, f"expected a code ({', '.join(names)}), not {_kind(value)}")]
        return []
    if field.type == FieldDescriptor.TYPE_STRING and not isinstance(value, str):
        return [FieldViolation(where, f"expected text, not {_kind(value)} {_show(value)}")]
    if field.type == FieldDescriptor.TYPE_BOOL and not isinstance(value, bool):
        return [FieldViolation(where, f"expected true or false, not {_show(value)}")]
    return []


def unknown_code(value: str, codes: list[str]) -> str:
    """`unknown code 'POLIC'; did you mean 'POLICE'?`, or the valid codes when none is close."""
    shown = repr(value[:40])  # codes are echoed cut short; free text never belongs in them
    hint = suggest(value, codes)
    if hint:
        return f"unknown code {shown}{hint}"
    if len(codes) <= MAX_CODES_LISTED:
        return f"unknown code {shown}; one of {', '.join(codes)}"
    return f"unknown code {shown}; not one of the {len(codes)} codes in rules_engine/case/codes.py"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "text"


def _show(value: object) -> str:
    if isinstance(value, dict | list):
        return _kind(value)
    text = repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 42 else text[:40] + "…"


def _from_protobuf(text: str, path: str) -> FieldViolation:
    """protobuf's message with its `at "Case.concerns[1]"` turned into a field path."""
    first = text.splitlines()[0] if text else "not valid proto3 JSON"
    match = _PROTOBUF_AT.match(first)
    if match is None:
        return FieldViolation(path or "(document)", first)
    description, where = match.groups()
    return FieldViolation(_join(path, where) if where else path or "(document)", description)

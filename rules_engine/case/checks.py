"""What each fact field must hold to be accepted without validation, read from its model.

The hot path's readers (service/record_reader.py over protobuf messages, and the compiled
core's wire reader in engine/native.py over the bytes) check whole columns against these
descriptions and hand anything they do not accept to the validating path, which names the
bad field. One classification for both, so the two readers accept the same cases.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic.fields import FieldInfo

from rules_engine.case import facts
from rules_engine.case.fields import FieldType, field_default

MAX_LIST_ITEMS = 1_000  # per nested list (conference agencies, factors, member ids)


def enum_codes(descriptor: Any) -> dict[int, str]:
    """A proto enum's numbers as the domain's codes (CONFERENCE_KIND_INITIAL -> "INITIAL"): the
    names without the prefix buf's ENUM_VALUE_PREFIX rule demands; 0 (UNSPECIFIED) maps to nothing."""
    prefix = descriptor.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return {v.number: v.name.removeprefix(prefix) for v in descriptor.values if v.number != 0}


# What a field holds, for the column checks.
ID, ID_LIST, CODE, CODE_LIST, DATE, PERCENT, FREE = "id", "id list", "code", "code list", "date", "%", ""
OPTIONAL_ID = "optional id"  # an id that may be absent (a referral's assessment): None when empty


class FieldCheck(typing.NamedTuple):
    name: str
    check: str
    # For codes and code lists: what may appear (None included when the field may be empty).
    allowed: frozenset[Any] = frozenset()
    required: bool = False


def classify(name: str, info: FieldInfo, field_type: FieldType | None) -> FieldCheck:
    """The check a field's values must pass; RuntimeError for a field no fast check covers."""
    required = info.is_required()
    if field_type is None:
        raise RuntimeError(f"no fast check for field {name!r}")
    if field_type.kind == "date":
        return FieldCheck(name, DATE, required=required)
    if field_type.kind == "number":
        if not any(getattr(m, "ge", None) == 0 for m in info.metadata) or not any(
            getattr(m, "le", None) == 100 for m in info.metadata
        ):
            raise RuntimeError(f"no fast check for number field {name!r}")
        return FieldCheck(name, PERCENT)
    if field_type.kind == "boolean":
        return FieldCheck(name, FREE)
    codes = field_type.codes
    is_id = codes is None
    if is_id and not is_id_field(info):
        raise RuntimeError(f"no fast check for text field {name!r}")
    if field_type.kind == "list":
        return FieldCheck(name, ID_LIST if is_id else CODE_LIST, frozenset(codes or ()))
    if is_id:
        return FieldCheck(name, ID, required=True) if required else FieldCheck(name, OPTIONAL_ID)
    allowed: frozenset[Any] = frozenset(codes or ())
    default = field_default(info)
    if not required and default is None:
        allowed |= {None}
    return FieldCheck(name, CODE, allowed, required)


def is_id_field(info: FieldInfo) -> bool:
    """True when a text field is constrained as facts.Id (or a tuple of them) is."""
    constraints = [*info.metadata]
    for arg in typing.get_args(info.annotation):  # tuple[Id, ...]
        constraints += getattr(arg, "__metadata__", ())
    return any(getattr(c, "pattern", None) == facts.ID_PATTERN for c in constraints)

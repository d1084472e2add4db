"""What each field of a fact model holds, read from its annotations.

Filters type-check `where:` clauses against these descriptions, and the record readers and
writers are generated from them, so a field added to a model is read, written and filtered
alike. Literal codes are text with a fixed set of allowed values, bool is true/false,
int/float are numbers, tuples are lists, dates are dates; nested models (a conference's
agencies) have no description and are reached with `sub_model`.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

FieldKind = Literal["text", "number", "boolean", "date", "list"]


@dataclass(frozen=True)
class FieldType:
    """What a fact field holds, as far as filters and record readers are concerned."""

    kind: FieldKind
    nullable: bool = False
    # For coded text (and lists of codes): the allowed values; None when any text goes.
    codes: frozenset[str] | None = None


def fact_fields(model: type[BaseModel]) -> dict[str, FieldType]:
    """The described fields of a fact model, from its annotations (unsupported types left out)."""
    fields = {}
    for name, info in model.model_fields.items():
        field_type = _field_type(info.annotation)
        if field_type is not None:
            fields[name] = field_type
    return fields


def _field_type(annotation: Any) -> FieldType | None:
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        if len(members) != 1:
            return None
        annotation, origin = members[0], typing.get_origin(members[0])
    if origin is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
        origin = typing.get_origin(annotation)
    if origin is Literal:
        return FieldType("text", nullable, frozenset(str(a) for a in typing.get_args(annotation)))
    if origin is tuple:
        item = _field_type(typing.get_args(annotation)[0])
        if item is None or item.kind != "text":
            return None
        return FieldType("list", nullable, item.codes)
    if annotation is bool:
        return FieldType("boolean", nullable)
    if annotation in (int, float):
        return FieldType("number", nullable)
    if annotation is str:
        return FieldType("text", nullable)
    if annotation is dt.date:
        return FieldType("date", nullable)
    return None


def sub_model(model: type[BaseModel], name: str) -> type[BaseModel]:
    """The model of a nested field (a conference's agencies: ConferenceAgency)."""
    annotation = model.model_fields[name].annotation
    args = typing.get_args(annotation)
    sub = args[0] if args else annotation
    assert isinstance(sub, type) and issubclass(sub, BaseModel)
    return sub


def field_default(info: FieldInfo) -> Any:
    """The value a field takes when absent: its default, or None for a required field."""
    return None if info.is_required() else info.default

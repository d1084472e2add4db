"""Validate: a loaded rule file -> RuleFile of schema models, or SchemaErrors at their nodes.

Every error of every file is collected; a bad measure or rule is dropped (its name kept in
`broken_names`, so the compiler does not also report references to it as unknown) and the
rest of the file is still validated.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from rules_engine.errors import RuleFileError, SchemaError, SourcePosition
from rules_engine.policy.loader import LoadedFile
from rules_engine.policy.schema import MeasureSpec, RuleFileSections, RulesetHeader, RuleSpec
from rules_engine.policy.source import SourceMap, parent_path

SpecT = TypeVar("SpecT", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class Located(Generic[T]):
    """A validated entry and the path of its node in the file."""

    path: str
    spec: T


@dataclass(frozen=True)
class RuleFile:
    """One validated rule file."""

    file: str
    source_map: SourceMap
    header: RulesetHeader | None
    header_path: str
    parameters: dict[str, float | int | bool | str]
    measures: tuple[Located[MeasureSpec], ...]
    rules: tuple[Located[RuleSpec], ...]
    # Names and ids of entries that failed validation: known, but not compiled.
    broken_names: frozenset[str]


def validate_file(loaded: LoadedFile) -> tuple[RuleFile, list[RuleFileError]]:
    """Validate one loaded file; return what is valid and the errors of what is not."""
    source_map = loaded.source_map
    document: Any = {} if loaded.document is None else loaded.document
    errors: list[RuleFileError] = []
    sections = _validate(RuleFileSections, document, "", source_map, errors)
    if sections is None:
        empty = RuleFile(loaded.file, source_map, None, "ruleset", {}, (), (), frozenset())
        # Entries of a file whose outline is wrong are not worth validating one by one.
        return empty, errors
    broken: set[str] = set()
    context: _Context = {"source_map": source_map, "errors": errors, "broken": broken}
    measures = _validate_entries(MeasureSpec, sections.measures, "measures", "name", context)
    rules = _validate_entries(RuleSpec, sections.rules, "rules", "id", context)
    rule_file = RuleFile(
        file=loaded.file,
        source_map=source_map,
        header=sections.ruleset,
        header_path="ruleset",
        parameters=dict(sections.parameters),
        measures=measures,
        rules=rules,
        broken_names=frozenset(broken),
    )
    return rule_file, errors


class _Context(TypedDict):
    source_map: SourceMap
    errors: list[RuleFileError]
    broken: set[str]  # names of entries that failed, filled in here


def _validate_entries(
    model: type[SpecT],
    entries: Sequence[dict[str, Any]],
    section: str,
    name_key: str,
    context: _Context,
) -> tuple[Located[SpecT], ...]:
    source_map, errors, broken = context["source_map"], context["errors"], context["broken"]
    valid = []
    for index, entry in enumerate(entries):
        path = f"{section}[{index}]"
        spec = _validate(model, entry, path, source_map, errors)
        if spec is not None:
            valid.append(Located(path, spec))
        elif isinstance(entry.get(name_key), str):
            broken.add(entry[name_key])
    return tuple(valid)


def validate_model(
    model: type[SpecT], data: Any, path: str, source_map: SourceMap, errors: list[RuleFileError]
) -> SpecT | None:
    """Validate `data` (found at `path`) against `model`; append SchemaErrors at their nodes on failure."""
    return _validate(model, data, path, source_map, errors)


def _validate(
    model: type[SpecT], data: Any, path: str, source_map: SourceMap, errors: list[RuleFileError]
) -> SpecT | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors.extend(_schema_error(error, model, path, source_map) for error in exc.errors())
        return None


def loc_to_path(loc: Sequence[int | str], base: str = "") -> str:
    """Pydantic's loc ('rules', 3, 'severity') -> `rules[3].severity` (appended to `base`)."""
    path = base
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":
            path = f"{path}.{part}" if path else part
    return path


def _schema_error(error: ErrorDetails, model: type[BaseModel], base: str, source_map: SourceMap) -> SchemaError:
    loc = error["loc"]
    path = loc_to_path(loc, base)
    kind = error["type"]
    if kind == "extra_forbidden" or "[key]" in loc:
        position = source_map.key_at(path)
    elif kind == "missing":
        position = source_map.at(parent_path(path))
    else:
        position = source_map.at(path)
    position = SourcePosition(position.file, position.line, position.column, path)
    return SchemaError(_message(error, model, path), position)


def _message(error: ErrorDetails, model: type[BaseModel], path: str) -> str:
    """A sentence a policy author can act on, naming the field as it appears in the file."""
    kind = error["type"]
    loc = error["loc"]
    label = _label(path)
    given = _describe(error.get("input"))
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"unknown field {label!r}" + _suggestion(label, _fields_at(model, loc[:-1]))
    if kind == "missing":
        return f"missing required field {label!r}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"{label} must be one of {expected.replace(' or ', ', ')}, not {given}"
    if kind == "value_error":
        detail = str(ctx.get("error", error["msg"]))
        subject = f"the name {error.get('input')!r}" if "[key]" in loc else label
        return f"{subject} {detail}"
    if kind in ("string_too_long", "too_long"):
        return f"{label} is too long: at most {ctx.get('max_length')} characters"
    if kind in ("string_too_short", "too_short"):
        return f"{label} must not be empty"
    expected_type = _TYPE_WORDS.get(kind)
    if expected_type is not None:
        if not loc:
            return "a rule file must be a mapping of sections: ruleset, parameters, measures, rules"
        return f"{label} must be {expected_type}, not {given}"
    return f"{label}: {error['msg']}"


_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping of fields",
    "model_type": "a mapping of fields",
    "model_attributes_type": "a mapping of fields",
}


def _label(path: str) -> str:
    """The last key of a path, with any list index: `rules[3].tags[1]` -> `tags[1]`."""
    if not path:
        return "the file"
    return path.rsplit(".", 1)[-1]


def _describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a long text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The allowed field names of the (nested) model at `loc`, as written in files."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        info = current.model_fields.get(part)
        current = info.annotation if info is not None else None
        # Optional[Model] annotations: unwrap to the model class.
        for arg in getattr(current, "__args__", ()):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _suggestion(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""

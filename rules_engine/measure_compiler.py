"""Compile one validated measure: kind-specific fields, fact types, date fields, windows and filters."""

from __future__ import annotations

from collections.abc import Mapping

from rules_engine.compiled import CompiledMeasure, FactPredicate, MeasureKind, Window
from rules_engine.conditions import ParameterValue, parse_condition, suggest
from rules_engine.errors import CompileError, RuleFileError
from rules_engine.facts import MEASURABLE_FACT_TYPES
from rules_engine.filters import FieldType, FilterCompiler, fact_fields
from rules_engine.schema import MeasureSpec, parse_window
from rules_engine.source import SourceMap
from rules_engine.validator import Located

_ALWAYS = {"name", "kind", "description", "missing_when_absent"}
_OVER_FACTS = {"facts", "where", "date_field"}
# The optional fields each kind accepts, besides name, kind, description, missing_when_absent.
KIND_FIELDS: dict[str, set[str]] = {
    "count": _OVER_FACTS | {"window"},
    "distinct": _OVER_FACTS | {"window", "field"},
    "days_since": _OVER_FACTS,
    "working_days_since": _OVER_FACTS,
    "overdue": _OVER_FACTS | {"window", "deadline", "followup", "followup_where", "followup_date_field", "resolved_by"},
    "open": _OVER_FACTS | {"end_field"},
    "latest": _OVER_FACTS | {"last", "matching"},
    "age": set(),
}
# The fields each kind cannot do without.
KIND_REQUIRED: dict[str, tuple[str, ...]] = {
    "count": ("facts",),
    "distinct": ("facts", "field"),
    "days_since": ("facts",),
    "working_days_since": ("facts",),
    "overdue": ("facts", "deadline"),
    "open": ("facts",),
    "latest": ("facts", "last", "matching"),
    "age": (),
}
_FIELD_MODELS = {name: fact_fields(model) for name, model in MEASURABLE_FACT_TYPES.items()}


def resolve_window(text: str, parameters: Mapping[str, ParameterValue]) -> Window | None:
    """A duration written out, or named by a parameter holding one; None when neither."""
    window = parse_window(text)
    if window is None and isinstance(parameters.get(text), str):
        window = parse_window(str(parameters[text]))
    return window


class MeasureCompiler:
    """Compiles one measure; problems are appended to `errors`."""

    def __init__(
        self, located: Located[MeasureSpec], source_map: SourceMap, parameters: Mapping[str, ParameterValue]
    ) -> None:
        self.spec = located.spec
        self.path = located.path
        self.source_map = source_map
        self.parameters = parameters
        self.errors: list[RuleFileError] = []

    def compile(self) -> CompiledMeasure | None:
        spec = self.spec
        given = {name for name in spec.model_fields_set if name not in _ALWAYS}
        for name in sorted(given - KIND_FIELDS[spec.kind]):
            self._error(f"'{name}' does not apply to {spec.kind} measures", name, at_key=True)
        for name in KIND_REQUIRED[spec.kind]:
            if getattr(spec, name) is None:
                self._error(f"{spec.kind} measures need '{name}'", "")
        if spec.kind == "overdue":
            self._check_overdue_choice()
        if self.errors:
            return None
        if spec.kind == "age":
            return CompiledMeasure(spec.name, MeasureKind.AGE, "", self.source_map.at(self.path), spec.description)
        return self._compile_over_facts()

    def _check_overdue_choice(self) -> None:
        spec = self.spec
        if (spec.followup is None) == (spec.resolved_by is None):
            self._error("overdue measures need either 'followup' or 'resolved_by', not both", "")
        if spec.followup is None:
            for name in ("followup_where", "followup_date_field"):
                if getattr(spec, name) is not None:
                    self._error(f"'{name}' only applies with 'followup'", name, at_key=True)

    def _compile_over_facts(self) -> CompiledMeasure | None:
        spec = self.spec
        fact_type = self._fact_type(spec.facts or "", "facts")
        if fact_type is None:
            return None
        fields = _FIELD_MODELS[fact_type]
        date_field = self._field_of(fact_type, fields, spec.date_field, "date_field", ("date",)) or "date"
        window = self._window(spec.window, "window") if spec.window is not None else None
        deadline = self._window(spec.deadline, "deadline") if spec.deadline is not None else None
        where = self._filter(spec.where, "where", fact_type)
        field = self._field_of(fact_type, fields, spec.field, "field", ("text", "number", "boolean"))
        resolved = self._field_of(fact_type, fields, spec.resolved_by, "resolved_by", ("date",))
        end_field = self._end_field(fact_type, fields)
        matching = self._filter(spec.matching, "matching", fact_type) if spec.matching is not None else None
        last = self._last(spec.last) if spec.last is not None else 0
        followup_type, followup_where, followup_date = "", None, "date"
        if spec.followup is not None:
            followup_type = self._fact_type(spec.followup, "followup") or ""
            if followup_type:
                followup_fields = _FIELD_MODELS[followup_type]
                followup_where = self._filter(spec.followup_where, "followup_where", followup_type)
                followup_date = (
                    self._field_of(
                        followup_type,
                        followup_fields,
                        spec.followup_date_field,
                        "followup_date_field",
                        ("date",),
                    )
                    or "date"
                )
        if self.errors:
            return None
        return CompiledMeasure(
            name=spec.name,
            kind=MeasureKind(spec.kind),
            fact_type=fact_type,
            position=self.source_map.at(self.path),
            description=spec.description,
            window=window,
            date_field=date_field,
            where=where,
            where_text=spec.where or "",
            field=field or "",
            deadline=deadline,
            followup_type=followup_type,
            followup_where=followup_where,
            followup_where_text=spec.followup_where or "",
            followup_date_field=followup_date,
            resolved_field=resolved or "",
            end_field=end_field,
            last=last,
            matching=matching,
            matching_text=spec.matching or "",
            missing_when_absent=spec.missing_when_absent,
        )

    def _last(self, value: int | str) -> int:
        """`last:` as a number, or the number a parameter holds."""
        if isinstance(value, int):
            return value
        held = self.parameters.get(value)
        if isinstance(held, int) and not isinstance(held, bool) and 1 <= held <= 100:
            return held
        known = [n for n, v in self.parameters.items() if isinstance(v, int) and not isinstance(v, bool)]
        hint = suggest(value, known)
        self._error(f"'last' must be a number from 1 to 100 or a parameter holding one, not {value!r}{hint}", "last")
        return 0

    def _fact_type(self, name: str, key: str) -> str | None:
        if name in MEASURABLE_FACT_TYPES:
            return name
        self._error(f"unknown fact type {name!r}" + suggest(name, MEASURABLE_FACT_TYPES), key)
        return None

    def _field_of(
        self,
        fact_type: str,
        fields: Mapping[str, FieldType],
        name: str | None,
        key: str,
        kinds: tuple[str, ...],
    ) -> str | None:
        if name is None:
            return None
        found = fields.get(name)
        if found is not None and found.kind in kinds:
            return name
        fitting = sorted(f for f, t in fields.items() if t.kind in kinds)
        wanted = "a date field" if kinds == ("date",) else "a field"
        if found is None:
            message = f"{fact_type} has no field {name!r}" + suggest(name, fitting)
        else:
            message = f"{key} must be {wanted}; {name!r} is not one"
        self._error(f"{message} ({wanted.removeprefix('a ')}s of {fact_type}: {', '.join(fitting)})", key)
        return None

    def _end_field(self, fact_type: str, fields: Mapping[str, FieldType]) -> str:
        if self.spec.kind != "open":
            return ""
        if self.spec.end_field is not None:
            return self._field_of(fact_type, fields, self.spec.end_field, "end_field", ("date",)) or ""
        declared = MEASURABLE_FACT_TYPES[fact_type].end_fields
        if len(declared) == 1:
            return declared[0]
        self._error(f"open measures over {fact_type} need 'end_field' (a date field that ends them)", "")
        return ""

    def _window(self, text: str, key: str) -> Window | None:
        window = resolve_window(text, self.parameters)
        if window is None:
            message = f"{key} {text!r} is not a duration such as '12 months'"
            if text in self.parameters:
                message = f"parameter {text!r} holds {self.parameters[text]!r}, not a duration such as '12 months'"
            elif parse_window(text) is None:
                message = f"unknown parameter {text!r} for {key}" + suggest(text, self.parameters)
            self._error(message, key)
        return window

    def _filter(self, text: str | None, key: str, fact_type: str) -> FactPredicate | None:
        if text is None:
            return None
        path = f"{self.path}.{key}"
        try:
            parsed = parse_condition(text, lambda offset: self.source_map.at_offset(path, offset))
        except CompileError as exc:
            self.errors.append(exc)
            return None
        compiler = FilterCompiler(parsed, _FIELD_MODELS[fact_type], self.parameters, fact_type)
        predicate = compiler.compile()
        self.errors.extend(parsed.errors)
        return predicate

    def _error(self, message: str, field: str, *, at_key: bool = False) -> None:
        """Report at the value of `field` (its key, for fields that should not be there)."""
        path = f"{self.path}.{field}" if field else self.path
        position = self.source_map.key_at(path) if at_key else self.source_map.at(path)
        self.errors.append(CompileError(message, position))

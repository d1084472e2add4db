"""Compile one validated measure: kind-specific fields, fact types, date fields, windows and filters."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from rules_engine.case.facts import MEASURABLE_FACT_TYPES
from rules_engine.case.fields import FieldType, fact_fields
from rules_engine.errors import CompileError, RuleFileError
from rules_engine.policy.compiled import DERIVED_KINDS, CompiledMeasure, FactPredicate, MeasureKind, Window
from rules_engine.policy.conditions import ParameterValue, parse_condition, protected, suggest
from rules_engine.policy.filters import FilterCompiler
from rules_engine.policy.schema import MeasureSpec, parse_window
from rules_engine.policy.source import SourceMap
from rules_engine.policy.validator import Located

_ALWAYS = {"name", "kind", "description", "missing_when_absent"}
_OVER_FACTS = {"facts", "where", "date_field"}
_SINCE = {"since_latest", "since_latest_where", "since_latest_date_field"}
# The optional fields each kind accepts, besides name, kind, description, missing_when_absent.
KIND_FIELDS: dict[str, set[str]] = {
    "count": _OVER_FACTS | {"window", "overlaps", "end_field"} | _SINCE,
    "distinct": _OVER_FACTS | {"window", "field", "overlaps", "end_field"},
    "days_since": _OVER_FACTS,
    "working_days_since": _OVER_FACTS,
    "overdue": _OVER_FACTS | {"window", "deadline", "followup", "followup_where", "followup_date_field", "resolved_by"},
    "open": _OVER_FACTS | {"end_field"},
    "latest": _OVER_FACTS | {"last", "matching", "group_by"},
    "age": set(),
    "rate": _OVER_FACTS | {"window"},
    "trend": _OVER_FACTS | {"window"},
    "periods": _OVER_FACTS | {"window", "period", "at_least"},
    "longest_gap": _OVER_FACTS | {"window"},
    "longest_open": _OVER_FACTS | {"end_field"},
    "sum": {"measures"},
    "ratio": {"numerator", "denominator"},
}
# The keys naming a fact type, a fact's field or a measure: none may name the child or one of its
# equality monitoring fields (conditions.protected); filters are held to the same by parse_condition.
NAME_KEYS = (
    "facts", "followup", "since_latest", "field", "date_field", "resolved_by", "end_field", "group_by",
    "followup_date_field", "since_latest_date_field", "numerator", "denominator",
)  # fmt: skip
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
    "rate": ("facts",),
    "trend": ("facts", "window"),
    "periods": ("facts", "window", "period"),
    "longest_gap": ("facts",),
    "longest_open": ("facts",),
    "sum": ("measures",),
    "ratio": ("numerator", "denominator"),
}
# Kinds that read a fact's end date: `end_field`, or the fact type's single end field.
_WITH_END = {"open", "longest_open"}
# A periods measure looks at every period on every evaluation: a bound keeps that cheap.
MAX_PERIODS = 500
MAX_AT_LEAST = 1000
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
        if not self._reads_nothing_protected():
            return None
        given = {name for name in spec.model_fields_set if name not in _ALWAYS}
        for name in sorted(given - KIND_FIELDS[spec.kind]):
            self._error(f"'{name}' does not apply to {spec.kind} measures", name, at_key=True)
        for name in KIND_REQUIRED[spec.kind]:
            if getattr(spec, name) is None:
                self._error(f"{spec.kind} measures need '{name}'", "")
        if spec.kind == "overdue":
            self._check_overdue_choice()
        if spec.kind in ("count", "distinct"):
            self._check_overlaps()
        if self.errors:
            return None
        if spec.kind == "age":
            return CompiledMeasure(spec.name, MeasureKind.AGE, "", self.source_map.at(self.path), spec.description)
        if spec.kind in ("sum", "ratio"):
            return self._compile_derived()
        return self._compile_over_facts()

    def _reads_nothing_protected(self) -> bool:
        """Refuse, before anything else, a measure naming the child or an equality field anywhere."""
        named = [(key, getattr(self.spec, key)) for key in NAME_KEYS]
        named += [(f"measures[{i}]", name) for i, name in enumerate(self.spec.measures or ())]
        for key, name in named:
            if isinstance(name, str) and (reason := protected(name)) is not None:
                self._error(reason, key)
        return not self.errors

    def _check_overdue_choice(self) -> None:
        spec = self.spec
        if (spec.followup is None) == (spec.resolved_by is None):
            self._error("overdue measures need either 'followup' or 'resolved_by', not both", "")
        if spec.followup is None:
            for name in ("followup_where", "followup_date_field"):
                if getattr(spec, name) is not None:
                    self._error(f"'{name}' only applies with 'followup'", name, at_key=True)

    def _check_overlaps(self) -> None:
        spec = self.spec
        if spec.overlaps and spec.window is None:
            self._error("'overlaps' needs a 'window' for facts to overlap", "overlaps")
        if spec.end_field is not None and not spec.overlaps:
            self._error("'end_field' only applies with 'overlaps: true'", "end_field", at_key=True)
        if spec.overlaps and spec.since_latest is not None:
            self._error("'since_latest' cannot be combined with 'overlaps'", "since_latest", at_key=True)
        if spec.since_latest is None:
            for name in ("since_latest_where", "since_latest_date_field"):
                if getattr(spec, name) is not None:
                    self._error(f"'{name}' only applies with 'since_latest'", name, at_key=True)

    def _compile_derived(self) -> CompiledMeasure | None:
        """A sum or ratio, with no inputs yet: link_derived fills them in once every measure is compiled."""
        spec = self.spec
        if spec.missing_when_absent:
            self._error(
                f"'missing_when_absent' does not apply to {spec.kind} measures: "
                "they are missing whenever a measure they read is",
                "missing_when_absent",
                at_key=True,
            )
            return None
        return CompiledMeasure(spec.name, MeasureKind(spec.kind), "", self.source_map.at(self.path), spec.description)

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
        last = self._number(spec.last, "last", 100) if spec.last is not None else 0
        group_by = self._field_of(fact_type, fields, spec.group_by, "group_by", ("text", "number", "boolean"))
        at_least = self._number(spec.at_least, "at_least", MAX_AT_LEAST) if spec.at_least is not None else 1
        period = self._period(window) if spec.period is not None else None
        followup_type, followup_where, followup_date = self._followup()
        since_type, since_where, since_date = self._since_latest()
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
            group_by=group_by or "",
            overlaps=spec.overlaps,
            since_type=since_type,
            since_where=since_where,
            since_where_text=spec.since_latest_where or "",
            since_date_field=since_date,
            period=period,
            at_least=at_least,
            missing_when_absent=spec.missing_when_absent,
        )

    def _followup(self) -> tuple[str, FactPredicate | None, str]:
        """An overdue measure's follow-up: fact type, filter and date field."""
        spec = self.spec
        return self._other_facts(spec.followup, "followup", spec.followup_where, spec.followup_date_field)

    def _since_latest(self) -> tuple[str, FactPredicate | None, str]:
        """A count's `since_latest` facts: fact type, filter and date field."""
        spec = self.spec
        return self._other_facts(
            spec.since_latest, "since_latest", spec.since_latest_where, spec.since_latest_date_field
        )

    def _other_facts(
        self, fact_type: str | None, key: str, where: str | None, date_field: str | None
    ) -> tuple[str, FactPredicate | None, str]:
        """A second fact type a measure reads (`key`, with `key_where` and `key_date_field`):
        its name, filter and date field; ("", None, "date") when not given or unknown."""
        if fact_type is None:
            return "", None, "date"
        found = self._fact_type(fact_type, key)
        if found is None:
            return "", None, "date"
        predicate = self._filter(where, f"{key}_where", found)
        date = self._field_of(found, _FIELD_MODELS[found], date_field, f"{key}_date_field", ("date",))
        return found, predicate, date or "date"

    def _period(self, window: Window | None) -> Window | None:
        """A periods measure's `period`, which must cut its window into whole periods."""
        period = self._window(self.spec.period or "", "period")
        if period is None or window is None:
            return None
        span, slice_ = window.in_base_units(), period.in_base_units()
        if span is None or slice_ is None:
            self._error("periods measures count calendar periods; working days cannot be used", "period")
            return None
        if span[1] != slice_[1] or span[0] % slice_[0]:
            self._error(
                f"the window ({window}) must be a whole number of periods ({period}); "
                "months and years divide months and years, weeks and days divide weeks and days",
                "period",
            )
            return None
        if span[0] // slice_[0] > MAX_PERIODS:
            self._error(f"the window holds {span[0] // slice_[0]} periods; at most {MAX_PERIODS} are allowed", "period")
            return None
        return Window(slice_[0], slice_[1])

    def _number(self, value: int | str, key: str, highest: int) -> int:
        """A whole-number option (`last`, `at_least`) as written, or the number a parameter holds."""
        if isinstance(value, int):
            if value <= highest:
                return value
            self._error(f"'{key}' must be a number from 1 to {highest}, not {value}", key)
            return 0
        held = self.parameters.get(value)
        if isinstance(held, int) and not isinstance(held, bool) and 1 <= held <= highest:
            return held
        known = [n for n, v in self.parameters.items() if isinstance(v, int) and not isinstance(v, bool)]
        hint = suggest(value, known)
        self._error(
            f"'{key}' must be a number from 1 to {highest} or a parameter holding one, not {value!r}{hint}", key
        )
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
        if self.spec.kind not in _WITH_END and not self.spec.overlaps:
            return ""
        if self.spec.end_field is not None:
            return self._field_of(fact_type, fields, self.spec.end_field, "end_field", ("date",)) or ""
        declared = MEASURABLE_FACT_TYPES[fact_type].end_fields
        if len(declared) == 1:
            return declared[0]
        what = f"{self.spec.kind} measures" if self.spec.kind in _WITH_END else "measures with 'overlaps'"
        self._error(f"{what} over {fact_type} need 'end_field' (a date field that ends them)", "")
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


def derived_inputs(spec: MeasureSpec) -> list[tuple[str, str]]:
    """The measures a sum or ratio reads, as (name, path of the name within the measure)."""
    if spec.kind == "sum":
        return [(name, f"measures[{i}]") for i, name in enumerate(spec.measures or ())]
    if spec.kind == "ratio":
        named = [(spec.numerator, "numerator"), (spec.denominator, "denominator")]
        return [(name, key) for name, key in named if name is not None]
    return []


def link_derived(
    measures: Sequence[CompiledMeasure],
    specs: Mapping[str, tuple[str, SourceMap, MeasureSpec]],
    broken: Collection[str],
) -> tuple[list[CompiledMeasure], list[RuleFileError]]:
    """Give each sum and ratio its compiled inputs and order measures so that inputs come first.

    `specs` maps each measure name to (path, source map, spec); `broken` names measures
    whose errors are reported already. Unknown names and cycles are reported at the name
    that causes them; measures reading one that failed are dropped quietly.
    """
    errors: list[RuleFileError] = []
    by_name = {m.name: m for m in measures}
    known = [*specs, *broken]
    for name, (path, source_map, spec) in specs.items():
        for input_name, key in derived_inputs(spec):
            if input_name == name:
                errors.append(CompileError(f"{name!r} cannot read itself", source_map.at(f"{path}.{key}")))
            elif input_name not in specs and input_name not in broken:
                message = f"unknown measure {input_name!r} in {spec.kind} {name!r}" + suggest(input_name, known)
                errors.append(CompileError(message, source_map.at(f"{path}.{key}")))
    linked: dict[str, CompiledMeasure | None] = {}
    on_path: list[str] = []

    def link(name: str) -> CompiledMeasure | None:
        if name in linked:
            return linked[name]
        measure = by_name.get(name)
        if measure is None or measure.kind not in DERIVED_KINDS:
            linked[name] = measure
            return measure
        path, source_map, spec = specs[name]
        on_path.append(name)
        inputs: list[CompiledMeasure] = []
        for input_name, key in derived_inputs(spec):
            if input_name == name or input_name not in specs:
                continue  # reported above
            if input_name in on_path:
                cycle = " -> ".join([*on_path[on_path.index(input_name) :], input_name])
                errors.append(
                    CompileError(f"measures read each other in a cycle: {cycle}", source_map.at(f"{path}.{key}"))
                )
                continue
            found = link(input_name)
            if found is not None:
                inputs.append(found)
        on_path.pop()
        complete = len(inputs) == len(derived_inputs(spec))
        linked[name] = replace(measure, inputs=tuple(inputs)) if complete else None
        return linked[name]

    ordered: dict[str, CompiledMeasure] = {}

    def place(measure: CompiledMeasure) -> None:
        for input_measure in measure.inputs:
            place(input_measure)
        ordered.setdefault(measure.name, measure)

    for measure in measures:
        if measure.kind not in DERIVED_KINDS:
            ordered.setdefault(measure.name, measure)
    for measure in measures:
        found = link(measure.name)
        if found is not None:
            place(found)
    return list(ordered.values()), errors

"""The compiled core's Python side: a CompiledRuleset as the tables `native._core` runs, and its
answer as the same Outcome the Python engine gives.

`NativeRuleset.build` turns a ruleset into a plan: the wire schema of every fact message (from
the proto descriptors and the fact models, checked by `case.checks` as the record reader
checks them), each `where:` filter as postfix instructions over columns of doubles (see
`native/_core.pyx`), each measure as a spec. A ruleset using something the core does not run
(a filter written by hand, a distinct count of a list field, an id compared with a constant)
gets no NativeRuleset: `build` raises NotInCore and that ruleset is evaluated by the Python
engine, which stays the reference for every case.

Rule conditions are decided in the core, in Kleene's logic as engine/reference.py decides them:
durable-rules costs 74 µs per call at 20 facts and 153 µs at 200 (docs/design/compiled-core.md),
more than the whole call's budget, so the compiled path leaves it to the Python path, where it
remains the matcher.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any, overload

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import BaseModel

from rules_engine._generated.rules_engine.v1 import case_pb2, rules_engine_pb2
from rules_engine.case import checks, facts
from rules_engine.case.dates import FIRST_DATE
from rules_engine.case.fields import fact_fields, field_default, sub_model
from rules_engine.config import MAX_FACTS
from rules_engine.engine import calendar, long_measures, wire
from rules_engine.engine.explainer import MAX_EVIDENCE, cited_measures, undetermined_rule
from rules_engine.engine.results import EvidenceItem, ExplainedFlag, Outcome, UndeterminedRule
from rules_engine.policy.compiled import (
    BoolOp,
    CompiledMeasure,
    CompiledRule,
    CompiledRuleset,
    Const,
    Expr,
    FlaggedRef,
    MeasureKind,
    MeasureRef,
    MeasureValue,
    Severity,
    Window,
)
from rules_engine.policy.compiled import Not as NotExpr
from rules_engine.policy.templates import parse_template, render

# Field kinds, measure kinds and instructions: the numbers `_core.pyx` declares.
K_ID, K_OPT_ID, K_ID_LIST, K_CODE, K_CODE_LIST, K_DATE, K_PERCENT, K_BOOL, K_OPT_BOOL, K_NESTED, K_ENUM = range(1, 12)
KIND_NUMBERS = {
    MeasureKind.COUNT: 1,
    MeasureKind.DISTINCT: 2,
    MeasureKind.DAYS_SINCE: 3,
    MeasureKind.WORKING_DAYS_SINCE: 4,
    MeasureKind.OVERDUE: 5,
    MeasureKind.OPEN: 6,
    MeasureKind.LATEST: 7,
    MeasureKind.AGE: 8,
    MeasureKind.RATE: 9,
    MeasureKind.TREND: 10,
    MeasureKind.PERIODS: 11,
    MeasureKind.LONGEST_GAP: 12,
    MeasureKind.LONGEST_OPEN: 13,
    MeasureKind.SUM: 14,
    MeasureKind.RATIO: 15,
}
I_COMPARE, I_TRUTHY, I_ONE_OF, I_HOLDS, I_ALWAYS, I_AND, I_OR, I_NOT = range(1, 9)
R_CONST, R_MEASURE, R_FLAGGED, R_COMPARE, R_AND, R_OR, R_NOT, R_IN = range(1, 9)
COMPARE_NUMBERS = {"==": 1, "!=": 2, "<": 3, "<=": 4, ">": 5, ">=": 6}
DERIVED = "conference_agencies"


# --- a flag's response fields, as service/responses.py writes them and the core's flags carry
# them (the one place they are encoded; only this engine module may use the generated code) ------

SEVERITIES = {
    name: rules_engine_pb2.Severity.Value(f"SEVERITY_{name}") for name in ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")
}
SOURCE_KINDS = {
    "statutory": rules_engine_pb2.THRESHOLD_SOURCE_KIND_STATUTORY,
    "local": rules_engine_pb2.THRESHOLD_SOURCE_KIND_LOCAL,
}
_FLAG_FIELDS = rules_engine_pb2.Flag.DESCRIPTOR.fields_by_name
MEASURED_VALUES_TAG = wire.tag(_FLAG_FIELDS["measured_values"])
EXPLANATION_TAG = wire.tag(_FLAG_FIELDS["explanation"])
CONTRIBUTING_TAG = wire.tag(_FLAG_FIELDS["contributing_rule_ids"])


def measured_value(name: str, value: float | int | bool | str | None) -> rules_engine_pb2.MeasuredValue:
    # bool before number: bool is an int in Python.
    if value is None:
        return rules_engine_pb2.MeasuredValue(name=name, missing=True)
    if isinstance(value, bool):
        return rules_engine_pb2.MeasuredValue(name=name, boolean=value)
    if isinstance(value, str):
        return rules_engine_pb2.MeasuredValue(name=name, text=value)
    return rules_engine_pb2.MeasuredValue(name=name, number=float(value))


def measured_value_element(name: str, value: MeasureValue) -> bytes:
    """One Flag.measured_values element, framed."""
    return wire.framed(MEASURED_VALUES_TAG, measured_value(name, value).SerializeToString())


def rule_fields(
    rule_id: str,
    title: str,
    severity: Severity,
    escalation: str,
    condition: str,
    thresholds: tuple[tuple[str, float | int | bool | str], ...],
    source_kind: str,
    source_reference: str,
) -> bytes:
    """The Flag fields that come from the rule alone, serialized."""
    return rules_engine_pb2.Flag(
        rule_id=rule_id,
        title=title,
        severity=SEVERITIES[severity.name],
        escalation=escalation,
        condition=condition,
        thresholds=[measured_value(n, v) for n, v in thresholds],
        threshold_source=rules_engine_pb2.ThresholdSource(kind=SOURCE_KINDS[source_kind], reference=source_reference),
    ).SerializeToString()


class NotInCore(Exception):
    """The ruleset uses something the compiled core does not run: the Python engine evaluates it."""


class _Columns:
    """One fact type's columns: scalars by name (id first, date second), lists by name."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.types = fact_fields(model)
        names = list(model.model_fields)
        self.lists = [n for n in names if self.types.get(n) is not None and self.types[n].kind == "list"]
        self.nested = [n for n in names if n not in self.types]
        self.scalars = [n for n in names if n not in self.lists and n not in self.nested]
        self.interned: set[str] = set()  # id columns a filter, distinct or group_by reads

    def scalar(self, name: str) -> int:
        if name not in self.scalars:
            raise NotInCore(f"{self.model.__name__}.{name} is not a scalar column")
        return self.scalars.index(name)

    def codes(self, name: str) -> list[str] | None:
        field_type = self.types.get(name)
        return None if field_type is None or field_type.codes is None else sorted(field_type.codes)

    def is_text_id(self, name: str) -> bool:
        field_type = self.types.get(name)
        return field_type is not None and field_type.kind == "text" and field_type.codes is None


class _Plan:
    """Builds the plan `_core.Core` takes, from a ruleset; raises NotInCore for what it cannot run."""

    def __init__(self, ruleset: CompiledRuleset, core: ModuleType) -> None:
        self.core = core
        self.type_names = [*facts.FACT_TYPES, DERIVED]
        self.columns = {name: _Columns(facts.MEASURABLE_FACT_TYPES[name]) for name in self.type_names}
        self.programs: list[list[dict[str, Any]]] = []
        self.program_of: dict[tuple[str, Any], int] = {}
        self.series: dict[tuple[int, int, int], int] = {}
        self.windows: dict[Window, int] = {}
        self.deadlines: dict[Window, int] = {}
        self.periods: dict[tuple[Window, Window], int] = {}
        self.measure_index = {m.name: i for i, m in enumerate(ruleset.measures)}
        self.measure_names = [m.name for m in ruleset.measures]
        self.measures = [self._measure(i, m) for i, m in enumerate(ruleset.measures)]
        self.rule_index = {rule.id: i for i, rule in enumerate(ruleset.rules)}
        self.rules = []
        for rule in ruleset.rules:
            program: list[dict[str, Any]] = []
            self._condition(rule.condition, program)
            self.rules.append(program)

    # --- rule conditions -------------------------------------------------------------------

    def _condition(self, expr: Expr, out: list[dict[str, Any]]) -> None:
        """A condition as postfix instructions, evaluated as reference.compile_condition does."""
        if isinstance(expr, BoolOp):
            for operand in expr.operands:
                self._condition(operand, out)
            out.append({"op": R_AND if expr.op == "and" else R_OR, "value": len(expr.operands)})
        elif isinstance(expr, NotExpr):
            self._condition(expr.operand, out)
            out.append({"op": R_NOT})
        elif isinstance(expr, FlaggedRef):
            out.append({"op": R_FLAGGED, "value": self.rule_index[expr.rule_id]})
        elif isinstance(expr, MeasureRef):
            out.append({"op": R_MEASURE, "left": self.measure_index[expr.name]})
        elif isinstance(expr, Const):
            out.append({"op": R_CONST, "value": int(bool(expr.value))})
        elif expr.op in ("in", "not in"):
            if not isinstance(expr.left, MeasureRef) or not isinstance(expr.right, Const):
                raise NotInCore(f"'{expr.op}' between {expr.left} and {expr.right}")
            members = expr.right.value if isinstance(expr.right.value, tuple) else (expr.right.value,)
            out.append(
                {
                    "op": R_IN,
                    "left": self.measure_index[expr.left.name],
                    "set": [_number(v) for v in members],
                    "negate": int(expr.op == "not in"),
                }
            )
        else:
            instruction: dict[str, Any] = {"op": R_COMPARE, "cmp": COMPARE_NUMBERS[expr.op]}
            for side, operand in (("left", expr.left), ("right", expr.right)):
                if isinstance(operand, MeasureRef):
                    instruction[side] = self.measure_index[operand.name]
                else:
                    instruction[side] = -1
                    instruction[side[0] + "k"] = _number(operand.value)
            out.append(instruction)

    # --- filters -------------------------------------------------------------------------

    def _program(self, fact_type: str, where: Any) -> int:
        if where is None:
            return -1
        spec = getattr(where, "spec", None)
        if spec is None:
            raise NotInCore("a filter without a spec (a predicate written by hand)")
        key = (fact_type, spec)
        found = self.program_of.get(key)
        if found is None:
            program: list[dict[str, Any]] = []
            self._instructions(self.columns[fact_type], spec, program)
            found = self.program_of[key] = len(self.programs)
            self.programs.append(program)
        return found

    def _instructions(self, columns: _Columns, spec: tuple[Any, ...], out: list[dict[str, Any]]) -> None:
        op = spec[0]
        if op in ("and", "or"):
            self._instructions(columns, spec[1], out)
            self._instructions(columns, spec[2], out)
            out.append({"op": I_AND if op == "and" else I_OR})
        elif op == "not":
            self._instructions(columns, spec[1], out)
            out.append({"op": I_NOT})
        elif op == "always":
            out.append({"op": I_ALWAYS, "value": int(bool(spec[1]))})
        elif op == "truthy":
            out.append({"op": I_TRUTHY, "col": columns.scalar(spec[1])})
        elif op == "holds":
            if spec[1] not in columns.lists:
                raise NotInCore(f"{spec[1]} is not a list")
            out.append({"op": I_HOLDS, "list_slot": columns.lists.index(spec[1]), "code": spec[2]})
        elif op == "one_of":
            name, allowed = spec[1], spec[2]
            members = [self._constant(columns, name, v) for v in allowed if v is not None]
            out.append(
                {
                    "op": I_ONE_OF,
                    "col": columns.scalar(name),
                    "set": [m for m in members if not math.isnan(m)],
                    "set_has_none": int(None in allowed),
                }
            )
        elif op == "compare":
            _, name, compare, constant, _skip_none = spec
            instruction: dict[str, Any] = {"op": I_COMPARE, "col": columns.scalar(name)}
            if constant is None:
                instruction.update(cmp=COMPARE_NUMBERS[compare], is_none=1)
            else:
                instruction.update(cmp=COMPARE_NUMBERS[compare], k=self._constant(columns, name, constant))
            out.append(instruction)
        else:
            raise NotInCore(f"filter operation {op!r}")

    def _constant(self, columns: _Columns, name: str, value: Any) -> float:
        """A filter's constant as the column holds it: a code's index, a number, 0/1."""
        if columns.is_text_id(name):
            raise NotInCore(f"{name} (an id) compared with a constant")
        codes = columns.codes(name)
        if codes is not None:
            return float(codes.index(value)) if value in codes else -1.0
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, int | float):
            return float(value)
        raise NotInCore(f"{name} compared with {value!r}")

    # --- measures --------------------------------------------------------------------------

    def _series(self, fact_type: str, date_field: str, where: Any) -> int:
        t = self.type_names.index(fact_type)
        key = (t, self.columns[fact_type].scalar(date_field), self._program(fact_type, where))
        return self.series.setdefault(key, len(self.series))

    def _column(self, fact_type: str, name: str) -> int:
        if not name:
            return -1
        columns = self.columns[fact_type]
        if columns.is_text_id(name):
            columns.interned.add(name)
        return columns.scalar(name)

    @staticmethod
    def _index(table: dict[Any, int], key: Any) -> int:
        return -1 if key is None else table.setdefault(key, len(table))

    def _measure(self, position: int, m: CompiledMeasure) -> dict[str, Any]:
        kind = KIND_NUMBERS.get(m.kind)
        if kind is None:
            raise NotInCore(f"measure kind {m.kind}")
        inputs = [self.measure_index[i.name] for i in m.inputs]
        if any(i >= position for i in inputs):
            raise NotInCore(f"measure {m.name} reads a measure defined after it")
        spec: dict[str, Any] = {
            "kind": kind,
            "t": -1,
            "datecol": -1,
            "series": -1,
            "window": self._index(self.windows, m.window),
            "window2": -1,
            "field": -1,
            "endcol": -1,
            "overlaps": int(m.overlaps),
            "since_series": -1,
            "last": m.last,
            "matching": -1,
            "group": -1,
            "deadline": self._index(self.deadlines, m.deadline),
            "followup_series": -1,
            "resolved_col": -1,
            "period": -1,
            "at_least": m.at_least,
            "missing_when_absent": int(m.missing_when_absent),
            "inputs": inputs,
        }
        if m.kind in (MeasureKind.AGE, MeasureKind.SUM, MeasureKind.RATIO):
            return spec
        columns = self.columns.get(m.fact_type)
        if columns is None:
            raise NotInCore(f"fact type {m.fact_type}")
        spec["t"] = self.type_names.index(m.fact_type)
        spec["datecol"] = columns.scalar(m.date_field)
        spec["series"] = self._series(m.fact_type, m.date_field, m.where)
        if m.kind is MeasureKind.TREND and m.window is not None:
            spec["window2"] = self._index(self.windows, Window(2 * m.window.amount, m.window.unit))
        if m.kind is MeasureKind.DISTINCT:
            if m.field in columns.lists:
                raise NotInCore(f"distinct values of the list {m.field}")
            spec["field"] = self._column(m.fact_type, m.field)
        spec["endcol"] = self._column(m.fact_type, m.end_field)
        if m.since_type:
            spec["since_series"] = self._series(m.since_type, m.since_date_field, m.since_where)
        spec["matching"] = self._program(m.fact_type, m.matching)
        if m.group_by:
            if m.group_by in columns.lists:
                raise NotInCore(f"group_by the list {m.group_by}")
            spec["group"] = self._column(m.fact_type, m.group_by)
        if m.followup_type:
            spec["followup_series"] = self._series(m.followup_type, m.followup_date_field, m.followup_where)
        spec["resolved_col"] = self._column(m.fact_type, m.resolved_field)
        if m.kind is MeasureKind.PERIODS:
            if m.window is None or m.period is None:
                raise NotInCore(f"periods measure {m.name} without a window and a period")
            spec["period"] = self._index(self.periods, (m.window, m.period))
        return spec

    # --- the wire schema ---------------------------------------------------------------------

    def schema(self, descriptor: Descriptor | None, model: type[BaseModel], columns: _Columns) -> Any:
        """The core's Schema of one message type: each proto field's kind, column and default."""
        assert descriptor is not None
        by_name = {f.name: f for f in descriptor.fields}
        types = fact_fields(model)
        fields: list[tuple[Any, ...]] = []
        for field_name, info in model.model_fields.items():
            proto = by_name[field_name]
            if proto.type == FieldDescriptor.TYPE_MESSAGE:
                inner_model = sub_model(model, field_name)
                inner = self.schema(proto.message_type, inner_model, _Columns(inner_model))
                fields.append((proto.number, K_NESTED, 0, None, 0, 0, None, None, inner))
                continue
            check = checks.classify(field_name, info, types.get(field_name))
            fields.append(_field_entry(proto, check, field_default(info), columns))
        spans = [(columns.scalar("date"), columns.scalar(end)) for end in getattr(model, "end_fields", ())]
        id_col = columns.scalar("id") if "id" in columns.scalars else -1
        unique_col = columns.scalar("agency") if model is facts.ConferenceAgency else -1
        return self.core.Schema(
            fields, len(columns.scalars), len(columns.lists), id_col, spans, unique_col, facts.ID_MAX_LENGTH
        )

    def derived_columns(self) -> tuple[Any, ...]:
        """How `_core` builds a conference agency fact (case.facts.conference_agency_facts)."""
        derived = self.columns[DERIVED]
        conference = self.columns["conferences"]
        agency_model = sub_model(facts.Conference, "agencies")
        agency = _Columns(agency_model)
        own_codes = agency.codes("agency") or []
        kind_codes = conference.codes("kind") or []
        derived_agency_codes = derived.codes("agency") or []
        derived_kind_codes = derived.codes("conference_kind") or []
        c = derived.scalar
        return (
            len(derived.scalars),
            c("date"),
            c("conference_id") if "conference_id" in derived.interned else -1,
            c("conference_kind"),
            c("agency"),
            c("invited"),
            c("attended"),
            c("report_due_on"),
            c("report_received_on"),
            c("report_received"),
            c("report_late"),
            c("absent_without_report"),
            conference.scalar("date"),
            conference.scalar("kind"),
            [float(derived_kind_codes.index(k)) for k in kind_codes],
            agency.scalar("agency"),
            agency.scalar("invited"),
            agency.scalar("attended"),
            agency.scalar("report_due_on"),
            agency.scalar("report_received_on"),
            [float(derived_agency_codes.index(a)) for a in own_codes],
            [a.encode() for a in own_codes],
        )

    def build(self) -> Any:
        schemas: list[Any] = []
        case_fields = []
        for t, name in enumerate(self.type_names):
            if name == DERIVED:
                schemas.append(None)
                continue
            proto = case_pb2.Case.DESCRIPTOR.fields_by_name[name]
            case_fields.append((proto.number, t))
            schemas.append(self.schema(proto.message_type, facts.FACT_TYPES[name], self.columns[name]))
        windows = list(self.windows)
        deadlines = list(self.deadlines)
        periods = list(self.periods)

        @functools.lru_cache(maxsize=65536)
        def deadline_of(ordinal: int, index: int) -> int:
            return calendar.deadline(dt.date.fromordinal(ordinal), deadlines[index]).toordinal()

        working = calendar.default_calendar()
        plan = {
            "schemas": schemas,
            "type_names": self.type_names,
            "case_fields": case_fields,
            "derived_type": self.type_names.index(DERIVED),
            "conference_type": self.type_names.index("conferences"),
            "derived_columns": self.derived_columns(),
            "birth_field": case_pb2.Child.DESCRIPTOR.fields_by_name["birth_date"].number,
            "max_facts": MAX_FACTS,
            "max_list_items": checks.MAX_LIST_ITEMS,
            "first_ordinal": FIRST_DATE.toordinal(),
            "id_max_length": facts.ID_MAX_LENGTH,
            "working_days": working.working_days_between,
            "working_table": working.working_day_table(),
            "deadline_of": deadline_of,
            "deadlines": [_deadline_spec(window) for window in deadlines],
            "response_wire": _response_wire(self.type_names, self.measure_names),
            "flag_types": (ExplainedFlag, EncodedEvidence),
            "max_evidence": MAX_EVIDENCE,
            "programs": self.programs,
            "series": list(self.series),
            "measures": self.measures,
            "rules": self.rules,
        }
        return self.core.Core(plan), windows, periods


def _response_wire(type_names: Sequence[str], measure_names: Sequence[str]) -> dict[str, Any]:
    """What the core needs to write a flag's evidence and measured values as the response's
    Flag.evidence and Flag.measured_values elements, framed as service/responses.py frames them
    (engine/wire.py): the evidence tags and each fact type's fact_type field (an empty string, as
    protobuf does, is left out); each measure's element up to its number's 8 bytes (a double,
    little-endian as the wire is: a big-endian machine runs the Python engine), its whole
    element when missing, and any other value's, encoded here; the evidence count's tag."""
    if sys.byteorder != "little":
        raise NotInCore("a big-endian machine (the core writes doubles as they are in memory)")
    flag, evidence, measured = (
        rules_engine_pb2.Flag.DESCRIPTOR.fields_by_name,
        rules_engine_pb2.Evidence.DESCRIPTOR.fields_by_name,
        rules_engine_pb2.MeasuredValue.DESCRIPTOR.fields_by_name,
    )
    type_tag, element_tag, name_tag = (
        wire.tag(evidence["fact_type"]),
        wire.tag(flag["measured_values"]),
        wire.tag(measured["name"]),
    )
    number_tag, missing_field = wire.tag(measured["number"]), wire.tag(measured["missing"]) + b"\x01"

    def element(name: str, value_bytes: int, value_head: bytes) -> bytes:
        """The framed element's bytes before its value's last `value_bytes - len(value_head)` bytes."""
        body = wire.framed(name_tag, name.encode()) if name else b""
        return element_tag + wire.encode_varint(len(body) + value_bytes) + body + value_head

    return {
        "element_tag": wire.tag(flag["evidence"]),
        "fact_id_tag": wire.tag(evidence["fact_id"]),
        "date_tag": wire.tag(evidence["date"]),
        "fact_type_fields": [wire.framed(type_tag, name.encode()) if name else b"" for name in type_names],
        "measured_number": [element(name, len(number_tag) + 8, number_tag) for name in measure_names],
        "measured_missing": [element(name, len(missing_field), missing_field) for name in measure_names],
        "measured_other": lambda index, value: measured_value_element(measure_names[index], value),
        "count_tag": wire.tag(flag["evidence_count"]),
    }


# How the core works out a deadline (`_core.pyx`'s D_*): (kind, amount in the kind's unit).
D_OTHER, D_DAYS, D_WORKING = range(3)
MAX_DEADLINE_DAYS = dt.date.max.toordinal()


def _deadline_spec(window: Window) -> tuple[int, int]:
    """Days and weeks are added in the core, working days read from the calendar's table there;
    months and years step by relativedelta's rules, in Python (deadline_of)."""
    if window.amount > MAX_DEADLINE_DAYS:  # past date.max from any date: saturated in Python
        return D_OTHER, 0
    if window.unit in ("days", "weeks"):
        return D_DAYS, window.amount * (7 if window.unit == "weeks" else 1)
    if window.unit == "working_days":
        return D_WORKING, window.amount
    return D_OTHER, 0


def _field_entry(proto: FieldDescriptor, check: checks.FieldCheck, default: Any, columns: _Columns) -> tuple[Any, ...]:
    """One proto field for the core's Schema: (number, kind, column, value when absent or empty,
    absent refused, interned, codes, enum numbers, nested schema)."""
    absent: float | None = None
    declines, codes, enum_map = 0, None, None
    kind: int
    if check.check in (checks.ID_LIST, checks.CODE_LIST):
        if proto.type != FieldDescriptor.TYPE_STRING:
            raise NotInCore(f"{check.name}: a list of {proto.type}")
        kind = K_ID_LIST if check.check == checks.ID_LIST else K_CODE_LIST
        col = columns.lists.index(check.name)
        codes = [c.encode() for c in sorted(check.allowed)]
    else:
        col = columns.scalar(check.name)
        if check.check == checks.ID:
            kind, declines = K_ID, 1
        elif check.check == checks.OPTIONAL_ID:
            kind = K_OPT_ID
        elif check.check == checks.DATE:
            kind, declines = K_DATE, int(check.required)
        elif check.check == checks.PERCENT:
            if proto.type != FieldDescriptor.TYPE_DOUBLE:
                raise NotInCore(f"{check.name}: a percentage that is not a double")
            kind, absent = K_PERCENT, 0.0
        elif check.check == checks.FREE:  # a boolean: proto3 `optional` ones take the model's default
            if proto.has_presence:
                kind, absent = K_OPT_BOOL, (None if default is None else float(bool(default)))
            else:
                kind, absent = K_BOOL, 0.0
        else:  # a code: its index among the field's codes, sorted
            sorted_codes = columns.codes(check.name) or []
            none_allowed = None in check.allowed
            if proto.type == FieldDescriptor.TYPE_ENUM:  # 0 and unknown numbers read as None
                kind, declines = K_ENUM, int(not none_allowed)
                numbers = checks.enum_codes(proto.enum_type).items()
                enum_map = {n: float(sorted_codes.index(c)) for n, c in numbers if c in sorted_codes}
            else:  # "" reads as the default, else None
                kind = K_CODE
                codes = [c.encode() for c in sorted_codes]
                if default is not None:
                    absent = float(sorted_codes.index(default))
                else:
                    declines = int(not none_allowed)
    intern = int(kind in (K_ID, K_OPT_ID) and check.name in columns.interned)
    return (proto.number, kind, col, absent, declines, intern, codes, enum_map, None)


class NativeRuleset:
    """A ruleset ready for the compiled core; `evaluate` gives the Python engine's Outcome."""

    def __init__(self, ruleset: CompiledRuleset, core: ModuleType) -> None:
        self.ruleset = ruleset
        self._core, self._windows, self._periods = _Plan(ruleset, core).build()
        names = [m.name for m in ruleset.measures]
        specs = {m.name: m for m in ruleset.measures}
        rules = {rule.id: rule for rule in ruleset.rules}
        index = {name: i for i, name in enumerate(names)}
        # Flags in the order engine/evaluator.py sorts them: severity descending, then rule id.
        ordered = sorted(enumerate(ruleset.rules), key=lambda pair: (-pair[1].severity, pair[1].id))
        flag_rules = [_flag_rule(core, position, rule, ruleset, specs, rules, index) for position, rule in ordered]
        self._core.answer_with(
            flag_rules,
            dict.fromkeys(names),  # the names core.named fills in (dict(zip(...)), in C)
            dict.fromkeys(rule.id for rule in ruleset.rules),
            functools.partial(_undetermined, ruleset),
            Outcome,
        )
        self._starts: Callable[[dt.date], tuple[list[int], list[tuple[int, ...]]]] = functools.lru_cache(maxsize=1024)(
            self._window_starts
        )

    def _window_starts(self, as_of: dt.date) -> tuple[list[int], list[tuple[int, ...]]]:
        """What the core reads of the calendar at as_of: each window's start, each periods
        measure's period starts (long_measures.period_starts)."""
        return (
            [calendar.window_start(as_of, w).toordinal() for w in self._windows],
            [long_measures.period_starts(as_of, window, period) for window, period in self._periods],
        )

    def evaluate(self, data: bytes, as_of: dt.date, latest: dt.date) -> Outcome | None:
        """The Outcome of the case `data` at `as_of`, or None when the core declines the case."""
        starts, periods = self._starts(as_of)
        outcome: Outcome | None = self._core.evaluate(
            data, as_of.toordinal(), latest.toordinal(), starts, periods, as_of
        )
        return outcome


class EncodedEvidence(Sequence[EvidenceItem]):
    """A flag's evidence as the compiled core wrote it, in `wire`: the flag's whole response
    payload but its stored lifecycle (serialized Flag fields: the rule's, the explanation, the
    evidence count, the contributing rules, the measured values and the evidence elements), which
    service/responses.py writes as it is, the lifecycle after it. The evidence is read back into
    EvidenceItems from its Flag.evidence elements only if something asks (the workbench, a test,
    a JSON view): Evaluate's answer needs only the bytes, and making the items cost a tenth of an
    evaluation at 200 facts. Equal to any sequence of the same items, as the tuple the Python
    engine gives is."""

    __slots__ = ("_items", "wire")

    # The core makes these without calling __init__ (_core._encoded_evidence sets both slots):
    # what __init__ sets, it must set too.
    def __init__(self, wire: bytes) -> None:
        self.wire = wire
        self._items: tuple[EvidenceItem, ...] | None = None

    def items(self) -> tuple[EvidenceItem, ...]:
        if self._items is None:
            self._items = tuple(
                [
                    EvidenceItem(e.fact_type, e.fact_id, dt.date.fromisoformat(e.date))
                    for e in rules_engine_pb2.Flag.FromString(self.wire).evidence
                ]
            )
        return self._items

    @overload
    def __getitem__(self, index: int) -> EvidenceItem: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[EvidenceItem, ...]: ...

    def __getitem__(self, index: int | slice) -> EvidenceItem | tuple[EvidenceItem, ...]:
        return self.items()[index]

    def __len__(self) -> int:
        return len(self.items())

    def __iter__(self) -> Iterator[EvidenceItem]:
        return iter(self.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EncodedEvidence | tuple | list):
            return self.items() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.items())  # as the equal tuple's

    def __repr__(self) -> str:
        return repr(self.items())


def _number(value: Any) -> float:
    """A condition's constant as a double: measures are numbers, so only numbers and booleans."""
    if isinstance(value, bool | int | float):
        return float(value)
    raise NotInCore(f"a condition compares a measure with {value!r}")


def _flag_rule(
    core: ModuleType,
    position: int,
    rule: CompiledRule,
    ruleset: CompiledRuleset,
    specs: Mapping[str, CompiledMeasure],
    rules: Mapping[str, CompiledRule],
    index: Mapping[str, int],
) -> Any:
    """The core's FlagRule: what a rule's flag takes from the rule alone (the ExplainedFlag's
    fields that do not change, None for those of an evaluation), the measures it cites and those
    its explanation names."""
    cited = cited_measures(rule, rules, specs)
    template, parameters = rule.explanation, ruleset.parameters
    shadow = rule.status == "shadow"
    fields: tuple[Any, ...] = (rule.id, rule.title, rule.severity, rule.escalation, None, rule.condition_text)
    fields += (None, rule.thresholds, rule.source_kind, rule.source_reference, None, (), shadow, None)
    named = tuple(index[f] for _, f, _ in parse_template(template) if f is not None and f in specs)

    def text(measures: Mapping[str, Any]) -> tuple[str, bytes]:
        """The explanation, and its Flag field as the response writes it (left out when empty)."""
        written = render(template, measures, parameters)
        return written, wire.framed(EXPLANATION_TAG, written.encode()) if written else b""

    indices = tuple(index[name] for name in cited)
    rule_wire = rule_fields(
        rule.id,
        rule.title,
        rule.severity,
        rule.escalation,
        rule.condition_text,
        rule.thresholds,
        rule.source_kind,
        rule.source_reference,
    )
    depends_wire = tuple(wire.framed(CONTRIBUTING_TAG, rule_id.encode()) for rule_id in rule.depends_on)
    rule_ids = [r.id for r in ruleset.rules]
    depends_at = tuple(rule_ids.index(rule_id) for rule_id in rule.depends_on)  # where their outcomes are
    return core.FlagRule(
        position,
        fields,
        tuple(cited),
        indices,
        tuple(rule.depends_on),
        shadow,
        named,
        text,
        rule_wire,
        depends_wire,
        depends_at,
    )


def _undetermined(
    ruleset: CompiledRuleset, measures: Mapping[str, Any], outcomes: Mapping[str, bool | None]
) -> tuple[UndeterminedRule, ...]:
    """The active rules that could not be decided, as engine/evaluator.py lists them."""
    return tuple(
        undetermined_rule(rule, measures, outcomes)
        for rule in ruleset.rules
        if outcomes[rule.id] is None and rule.status == "active"
    )

"""Proto <-> domain conversion: request cases into facts.Case, evaluations into responses.

`case_from_proto` is on the hot path of every call, so it copies the message field by
field with converters generated once at import (json_format.MessageToDict costs more
than our whole conversion) and collects every violation before raising one CaseError.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from pydantic import BaseModel, ValidationError

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.case import facts
from rules_engine.config import MAX_FACTS
from rules_engine.engine import calendar
from rules_engine.engine.results import Evaluation, ExplainedFlag, RulesetStatus
from rules_engine.engine.results import UndeterminedRule as DomainUndetermined
from rules_engine.errors import CaseError, FieldViolation
from rules_engine.service import json_input
from rules_engine.store import ChronologyEntry, DecisionRecord, FlagRecord, FlagState

MAX_LIST_ITEMS = 1_000  # per nested list (conference agencies, factors, member ids)
MAX_VIOLATIONS = 50  # beyond this the caller learns the count, not every path
MAX_FUTURE = 366  # days: a date more than a year after today is a typo, not a plan


def _is_date(model: type[BaseModel], name: str) -> bool:
    annotation = model.model_fields[name].annotation
    return annotation is dt.date or (isinstance(annotation, types.UnionType) and dt.date in typing.get_args(annotation))


def enum_codes(descriptor: Any) -> dict[int, str]:
    # CONFERENCE_KIND_INITIAL -> "INITIAL": the domain codes are the names without the prefix
    # that buf's ENUM_VALUE_PREFIX rule demands; 0 (UNSPECIFIED) maps to nothing.
    prefix = descriptor.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return {v.number: v.name.removeprefix(prefix) for v in descriptor.values if v.number != 0}


def iso_day(text: str) -> dt.date:
    """A YYYY-MM-DD date, or ValueError: fromisoformat alone would also take 20240102 and week dates."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(text)
    return dt.date.fromisoformat(text)


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
    exec(compile(source, f"<wire converter for {descriptor.full_name}>", "exec"), namespace)
    converter: _Converter = namespace["convert"]
    return converter


def sub_model(model: type[BaseModel], name: str) -> type[BaseModel]:
    annotation = model.model_fields[name].annotation
    args = typing.get_args(annotation)
    sub = args[0] if args else annotation
    assert isinstance(sub, type) and issubclass(sub, BaseModel)
    return sub


# Fact lists are bounded by MAX_FACTS together (checked first), nested lists each by MAX_LIST_ITEMS.
_convert_case = _converter(case_pb2.Case.DESCRIPTOR, facts.Case, list_limit=MAX_FACTS)
_FACT_LISTS = tuple(facts.FACT_TYPES)


class _Walk:
    """One conversion: the violations found so far, the paths they cover, dates already parsed."""

    __slots__ = ("days", "latest", "reported", "violations")

    def __init__(self, today: dt.date) -> None:
        self.latest = today + dt.timedelta(days=MAX_FUTURE)
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
        if (outside := calendar.out_of_range(day)) is not None:
            self.add(_at(where, index, name), outside)
            return None
        if day > self.latest:
            self.add(_at(where, index, name), f"more than a year in the future ({text})")
            return None
        self.days[text] = day
        return day


def case_message_digest(message: case_pb2.Case) -> str:
    """sha256 hex of a Case message in deterministic protobuf encoding: the decision log's input digest."""
    return hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()


def case_from_proto(message: case_pb2.Case, today: dt.date, path: str = "case") -> facts.Case:
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
    if (outside := calendar.out_of_range(moment.date())) is not None:
        raise CaseError([FieldViolation("as_of", outside)])
    return moment


def case_from_json(obj: dict[str, Any], path: str = "case") -> case_pb2.Case:
    """Parse the proto3 JSON form of a Case (as grpcurl sends it); raise CaseError naming each
    mistake by its field path (`case.concerns[1].agnecy: unknown field; did you mean 'agency'?`)."""
    return json_input.parse_json(obj, case_pb2.Case(), path)


def request_from_json(obj: dict[str, Any]) -> pb.EvaluateRequest:
    """Parse the proto3 JSON form of an EvaluateRequest (`case`, `asOf`, `ruleset`, …), as case_from_json."""
    return json_input.parse_json(obj, pb.EvaluateRequest(), "")


# Most severe first, then by rule id, so responses are stable.
def flag_order(flag: ExplainedFlag) -> tuple[int, str]:
    return (-int(flag.severity), flag.rule_id)


SEVERITIES = {name: pb.Severity.Value(f"SEVERITY_{name}") for name in ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")}
FLAG_STATES = {state: pb.FlagState.Value(f"FLAG_STATE_{state.value}") for state in FlagState}
SOURCE_KINDS = {
    "statutory": pb.THRESHOLD_SOURCE_KIND_STATUTORY,
    "local": pb.THRESHOLD_SOURCE_KIND_LOCAL,
}


def measured_value(name: str, value: float | int | bool | str | None) -> pb.MeasuredValue:
    # bool before number: bool is an int in Python.
    if value is None:
        return pb.MeasuredValue(name=name, missing=True)
    if isinstance(value, bool):
        return pb.MeasuredValue(name=name, boolean=value)
    if isinstance(value, str):
        return pb.MeasuredValue(name=name, text=value)
    return pb.MeasuredValue(name=name, number=float(value))


def _flag_to_proto(flag: ExplainedFlag, record: FlagRecord | None = None) -> pb.Flag:
    message = pb.Flag(
        rule_id=flag.rule_id,
        title=flag.title,
        severity=SEVERITIES[flag.severity.name],
        escalation=flag.escalation,
        explanation=flag.explanation,
        condition=flag.condition,
        measured_values=[measured_value(n, v) for n, v in flag.measured_values],
        thresholds=[measured_value(n, v) for n, v in flag.thresholds],
        threshold_source=pb.ThresholdSource(kind=SOURCE_KINDS[flag.source_kind], reference=flag.source_reference),
        evidence=[
            pb.Evidence(fact_type=e.fact_type, fact_id=e.fact_id, date=e.date.isoformat()) for e in flag.evidence
        ],
        contributing_rule_ids=flag.contributing_rule_ids,
        evidence_count=flag.evidence_count,
    )
    if record is not None:
        message.state = FLAG_STATES[record.state]
        message.first_raised = rfc3339(record.first_raised)
        message.last_seen = rfc3339(record.last_seen)
        if record.state is FlagState.SNOOZED and record.acknowledgement and record.acknowledgement.snooze_until:
            message.snooze_until = record.acknowledgement.snooze_until.isoformat()
    return message


def undetermined_to_proto(rule: DomainUndetermined) -> pb.UndeterminedRule:
    return pb.UndeterminedRule(rule_id=rule.rule_id, title=rule.title, missing_measures=rule.missing_measures)


def rfc3339(moment: dt.datetime) -> str:
    """Format a moment as RFC 3339; a naive moment is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def evaluation_to_proto(evaluation: Evaluation) -> pb.EvaluateResponse:
    """The response for one evaluation; flags most severe first, then by rule id."""
    return pb.EvaluateResponse(
        case_id=evaluation.case_id,
        flags=[
            _flag_to_proto(f, evaluation.lifecycle.get(f.rule_id)) for f in sorted(evaluation.flags, key=flag_order)
        ],
        shadow_flags=[_flag_to_proto(f) for f in sorted(evaluation.shadow_flags, key=flag_order)],
        undetermined=[undetermined_to_proto(u) for u in evaluation.undetermined],
        ruleset=evaluation.ruleset,
        ruleset_version=evaluation.ruleset_version,
        decision_id=evaluation.decision_id,
        as_of=rfc3339(evaluation.as_of),
        resolved=[resolved_to_proto(r) for r in evaluation.resolved],
    )


def resolved_to_proto(record: FlagRecord) -> pb.ResolvedFlag:
    return pb.ResolvedFlag(
        rule_id=record.rule_id,
        severity=SEVERITIES[record.severity.name],
        first_raised=rfc3339(record.first_raised),
        last_seen=rfc3339(record.last_seen),
        resolved_at=rfc3339(record.resolved_at) if record.resolved_at else "",
    )


def evaluation_to_json(evaluation: Evaluation) -> dict[str, Any]:
    """The proto3 JSON form of the response, so the CLI prints what gRPC callers receive."""
    return message_to_json(evaluation_to_proto(evaluation))


def message_to_json(message: Message) -> dict[str, Any]:
    """Proto3 JSON with empty lists and zero values kept, for readable CLI output."""
    result: dict[str, Any] = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return result


def ruleset_status_to_proto(status: RulesetStatus) -> pb.RulesetInfo:
    """One ListRulesets entry."""
    return pb.RulesetInfo(
        name=status.name,
        version=status.version,
        loaded_at=rfc3339(status.loaded_at) if status.loaded_at else "",
        rule_count=status.rule_count,
        shadow_rule_count=status.shadow_rule_count,
        last_error=status.last_error,
        last_error_at=rfc3339(status.last_error_at) if status.last_error_at else "",
    )


# -- stored history ----------------------------------------------------------------------------

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
    if (outside := calendar.out_of_range(day)) is not None:
        raise CaseError([FieldViolation(path, outside)])
    return day


def stored_fact_count(case: facts.CaseFacts) -> int:
    return sum(len(getattr(case, name)) for name in _FACT_LISTS)


def flag_record_to_proto(case_id: str, record: FlagRecord) -> pb.FlagRecord:
    message = pb.FlagRecord(
        case_id=case_id,
        ruleset=record.ruleset,
        rule_id=record.rule_id,
        state=FLAG_STATES[record.state],
        severity=SEVERITIES[record.severity.name],
        first_raised=rfc3339(record.first_raised),
        last_seen=rfc3339(record.last_seen),
        resolved_at=rfc3339(record.resolved_at) if record.resolved_at else "",
    )
    if (ack := record.acknowledgement) is not None:
        message.acknowledgement.CopyFrom(
            pb.Acknowledgement(
                practitioner_id=ack.practitioner_id,
                reason_code=ack.reason_code,
                acknowledged_at=rfc3339(ack.at),
                severity=SEVERITIES[ack.severity.name],
                snooze_until=ack.snooze_until.isoformat() if ack.snooze_until else "",
            )
        )
    return message


_ENTRY_KIND = {"fact": pb.CHRONOLOGY_ENTRY_KIND_FACT, "flag_raised": pb.CHRONOLOGY_ENTRY_KIND_FLAG_RAISED}


def chronology_to_proto(case_id: str, entries: Sequence[ChronologyEntry]) -> pb.GetChronologyResponse:
    return pb.GetChronologyResponse(
        case_id=case_id,
        entries=[
            pb.ChronologyEntry(
                date=e.date.isoformat(),
                kind=_ENTRY_KIND[e.kind],
                fact_type=e.fact_type,
                fact_id=e.fact_id,
                code=e.code,
                ruleset=e.ruleset,
            )
            for e in entries
        ],
    )


def decision_to_proto(record: DecisionRecord) -> pb.Decision:
    return pb.Decision(
        decision_id=record.decision_id,
        time=rfc3339(record.time),
        case_id=record.case_id,
        ruleset=record.ruleset,
        ruleset_version=record.ruleset_version,
        input_digest=record.input_digest,
        flags=[
            pb.DecisionFlag(rule_id=f.rule_id, state=FLAG_STATES[f.state], severity=SEVERITIES[f.severity.name])
            for f in record.flags
        ],
    )

"""Results into responses: evaluations, rulesets, flag records, chronologies and decisions as messages.

Evaluate's response is the hot one, so `encode_response` writes its bytes from cached
per-rule parts instead of building one message tree. Serialized protobuf messages
concatenate into their merge, and a repeated field keeps the order of its elements. So a
Flag is encoded as the part that comes from its rule (serialized once and cached) followed
by the part that changes every call, and the response as its scalar fields followed by the
framed flags. Protobuf encodes the scalars and the rule's own fields; the fields that change
every call (a flag's explanation, evidence count, contributing rules and evidence items) and
the framing of embedded messages are written here with engine/wire.py, which the compiled core's
evidence bytes are framed with too. The bytes parse to a message equal to
`evaluation_to_proto`'s, though fields may come in a different order. The other responses,
and EvaluateBatch's evaluations, are built as messages.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.case.facts import FACT_TYPES, CaseFacts
from rules_engine.engine import wire
from rules_engine.engine.native import (
    CONTRIBUTING_TAG,
    EXPLANATION_TAG,
    SEVERITIES,
    SOURCE_KINDS,
    EncodedEvidence,
    measured_value,
    measured_value_element,
    rule_fields,
)
from rules_engine.engine.results import Evaluation, EvidenceItem, ExplainedFlag, RulesetStatus
from rules_engine.engine.results import UndeterminedRule as DomainUndetermined
from rules_engine.policy.compiled import MeasureValue, Severity
from rules_engine.store import ChronologyEntry, DecisionRecord, FlagRecord, FlagState


# Most severe first, then by rule id, so responses are stable.
def flag_order(flag: ExplainedFlag) -> tuple[int, str]:
    return (-int(flag.severity), flag.rule_id)


# SEVERITIES, SOURCE_KINDS and measured_value are engine/native.py's: the compiled core's flags
# carry their bytes, encoded there once per ruleset version with the same helpers.
FLAG_STATES = {state: pb.FlagState.Value(f"FLAG_STATE_{state.value}") for state in FlagState}


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


# -- stored history ---------------------------------------------------------------------------


def stored_fact_count(case: CaseFacts) -> int:
    return sum(len(getattr(case, name)) for name in FACT_TYPES)


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


# -- Evaluate's response as bytes -----------------------------------------------------------------

# Rulesets reload, so cached parts of rules no longer loaded must age out.
CACHE_SIZE = 4096


def _tag(message: Descriptor, name: str) -> bytes:
    return wire.tag(message.fields_by_name[name])


_FLAGS_TAG = _tag(pb.EvaluateResponse.DESCRIPTOR, "flags")
_SHADOW_FLAGS_TAG = _tag(pb.EvaluateResponse.DESCRIPTOR, "shadow_flags")
_EVIDENCE_TAG = _tag(pb.Flag.DESCRIPTOR, "evidence")
_EVIDENCE_COUNT_TAG = _tag(pb.Flag.DESCRIPTOR, "evidence_count")
_FACT_TYPE_TAG, _FACT_ID_TAG, _DATE_TAG = (_tag(pb.Evidence.DESCRIPTOR, n) for n in ("fact_type", "fact_id", "date"))
_framed = wire.framed


class EncodedEvaluateResponse:
    """A serialized EvaluateResponse plus the summary fields that logging and metrics read.

    `flags` and `shadow_flags` hold the rule ids in response order, so their `len()` is the
    flag count, as on the message. `SerializeToString` lets one gRPC response serializer
    take this and real messages alike.
    """

    __slots__ = ("case_id", "data", "decision_id", "flags", "ruleset", "ruleset_version", "shadow_flags")

    def __init__(
        self,
        data: bytes,
        *,
        case_id: str,
        ruleset: str,
        ruleset_version: str,
        decision_id: str,
        flags: tuple[str, ...],
        shadow_flags: tuple[str, ...],
    ) -> None:
        self.data = data
        self.case_id = case_id
        self.ruleset = ruleset
        self.ruleset_version = ruleset_version
        self.decision_id = decision_id
        self.flags = flags
        self.shadow_flags = shadow_flags

    def SerializeToString(self) -> bytes:
        return self.data

    def to_message(self) -> pb.EvaluateResponse:
        return pb.EvaluateResponse.FromString(self.data)


def encode_response(evaluation: Evaluation) -> EncodedEvaluateResponse:
    """Encode an evaluation's response, keeping the fields other code reads beside the bytes."""
    flags = sorted(evaluation.flags, key=flag_order)
    shadow_flags = sorted(evaluation.shadow_flags, key=flag_order)
    return EncodedEvaluateResponse(
        _encode(evaluation, flags, shadow_flags),
        case_id=evaluation.case_id,
        ruleset=evaluation.ruleset,
        ruleset_version=evaluation.ruleset_version,
        decision_id=evaluation.decision_id,
        flags=tuple(f.rule_id for f in flags),
        shadow_flags=tuple(f.rule_id for f in shadow_flags),
    )


def encode_evaluation(evaluation: Evaluation) -> bytes:
    """The serialized EvaluateResponse of an evaluation; parses equal to `evaluation_to_proto`."""
    return _encode(
        evaluation, sorted(evaluation.flags, key=flag_order), sorted(evaluation.shadow_flags, key=flag_order)
    )


def _encode(evaluation: Evaluation, flags: list[ExplainedFlag], shadow_flags: list[ExplainedFlag]) -> bytes:
    call = _Call()
    scalars = pb.EvaluateResponse(
        case_id=evaluation.case_id,
        ruleset=evaluation.ruleset,
        ruleset_version=evaluation.ruleset_version,
        decision_id=evaluation.decision_id,
        as_of=call.moment(evaluation.as_of),
    )
    # Set only when there are some: converting even an empty list argument costs.
    if evaluation.undetermined:
        scalars.undetermined.extend([undetermined_to_proto(u) for u in evaluation.undetermined])
    if evaluation.resolved:
        scalars.resolved.extend([resolved_to_proto(r) for r in evaluation.resolved])
    parts = [scalars.SerializeToString()]
    lifecycle_of = evaluation.lifecycle.get
    flag_fields, lifecycle = call.flag, call.lifecycle
    for flag in flags:
        # The flag's fields and its stored lifecycle's, framed side by side rather than copied
        # into one bytes object (serialized messages concatenate into their merge). Most flags
        # are the compiled core's, their fields written already: read here without a call.
        evidence = flag.evidence
        written = evidence.wire if type(evidence) is EncodedEvidence else flag_fields(flag)
        record = lifecycle_of(flag.rule_id)
        stored = b"" if record is None else lifecycle(record)
        parts += (_FLAGS_TAG, wire.encode_varint(len(written) + len(stored)), written, stored)
    # Shadow flags have no lifecycle, as in evaluation_to_proto.
    parts += [_framed(_SHADOW_FLAGS_TAG, call.flag(f)) for f in shadow_flags]
    return b"".join(parts)


class _Call:
    """What one response repeats: evidence that several flags cite, the lifecycle most flags share."""

    __slots__ = ("evidence", "lifecycles", "moments")

    def __init__(self) -> None:
        # The compiled core wrote its flags' evidence elements already (EncodedEvidence); the
        # Python engine's items are encoded here, each distinct item once per call, not
        # process-wide, because evidence is case data.
        self.evidence: dict[EvidenceItem, bytes] = {}
        # Most flags were raised (or last seen) at as_of, and formatting a moment costs more
        # than encoding it. Equal datetimes may differ in offset or fold, and so in their text:
        # all three make the key.
        self.moments: dict[tuple[dt.datetime, dt.tzinfo | None, int], str] = {}
        self.lifecycles: dict[tuple[FlagState, int, int, dt.date | None], bytes] = {}

    def flag(self, flag: ExplainedFlag) -> bytes:
        """A Flag's payload but its stored lifecycle (`lifecycle` writes that): the rule's cached
        fields, this call's fields, measured values, evidence. The compiled core wrote them
        already, in this order (engine/native.EncodedEvidence.wire)."""
        evidence = flag.evidence
        if type(evidence) is EncodedEvidence:
            return evidence.wire
        parts = [
            _rule_part(flag),
            # Framed here, as protobuf would write them (an empty string or a zero count left
            # out): a message per flag cost three times as much.
            _framed(EXPLANATION_TAG, flag.explanation.encode()) if flag.explanation else b"",
            _EVIDENCE_COUNT_TAG + wire.encode_varint(flag.evidence_count) if flag.evidence_count > 0 else b"",
        ]
        if flag.contributing_rule_ids:
            parts += [_framed(CONTRIBUTING_TAG, rule_id.encode()) for rule_id in flag.contributing_rule_ids]
        parts += [_measured_value(n, v) for n, v in flag.measured_values]
        elements = self.evidence
        for item in evidence:
            element = elements.get(item)
            if element is None:
                element = elements[item] = _evidence_element(item)
            parts.append(element)
        return b"".join(parts)

    def lifecycle(self, record: FlagRecord) -> bytes:
        """The Flag fields of its stored lifecycle, serialized."""
        ack = record.acknowledgement
        snoozed = ack.snooze_until if record.state is FlagState.SNOOZED and ack else None
        # The moments by identity: every record is alive until the response is written, so an id
        # names one datetime here, and most flags share theirs (last seen is this call's as_of),
        # where hashing a datetime works out its UTC offset each time.
        key = (record.state, id(record.first_raised), id(record.last_seen), snoozed)
        fields = self.lifecycles.get(key)
        if fields is None:
            fields = self.lifecycles[key] = pb.Flag(
                state=FLAG_STATES[record.state],
                first_raised=self.moment(record.first_raised),
                last_seen=self.moment(record.last_seen),
                snooze_until=snoozed.isoformat() if snoozed else "",
            ).SerializeToString()
        return fields

    def moment(self, moment: dt.datetime) -> str:
        key = (moment, moment.tzinfo, moment.fold)
        text = self.moments.get(key)
        if text is None:
            text = self.moments[key] = rfc3339(moment)
        return text


# The rule's part of a flag by the identity of its fields: a compiled rule hands every flag it
# raises the same objects, so `is` finds the part without hashing nine values (an enum's hash is
# Python code, a tuple's is worked out again each time). The entry holds the objects, so their ids
# cannot be reused while it lives; a flag whose objects are new goes through _rule_fields.
_RuleObjects = tuple[str, str, Severity, str, str, tuple[tuple[str, float | int | bool | str], ...], str, str]
_RULE_PARTS: dict[int, tuple[_RuleObjects, bytes]] = {}


def _rule_part(flag: ExplainedFlag) -> bytes:
    found = _RULE_PARTS.get(id(flag.rule_id))
    if found is not None:
        held, part = found
        if (
            held[0] is flag.rule_id
            and held[1] is flag.title
            and held[2] is flag.severity
            and held[3] is flag.escalation
            and held[4] is flag.condition
            and held[5] is flag.thresholds
            and held[6] is flag.source_kind
            and held[7] is flag.source_reference
        ):
            return part
    objects: _RuleObjects = (
        flag.rule_id,
        flag.title,
        flag.severity,
        flag.escalation,
        flag.condition,
        flag.thresholds,
        flag.source_kind,
        flag.source_reference,
    )
    part = _rule_fields(objects, _threshold_kinds(flag.thresholds))
    if len(_RULE_PARTS) >= CACHE_SIZE:
        _RULE_PARTS.clear()
    _RULE_PARTS[id(flag.rule_id)] = (objects, part)
    return part


@functools.lru_cache(maxsize=CACHE_SIZE)
def _rule_fields(objects: _RuleObjects, threshold_kinds: tuple[object, ...]) -> bytes:
    """The Flag fields that come from the rule alone, serialized (threshold_kinds: the cache key's)."""
    return rule_fields(*objects)


def _threshold_kinds(thresholds: tuple[tuple[str, float | int | bool | str], ...]) -> tuple[object, ...]:
    # Part of the rule's cache key: equal thresholds may encode differently (True == 1 but is
    # a boolean; -0.0 == 0.0 but has its sign bit set).
    return tuple([v.hex() if type(v) is float else type(v) for _, v in thresholds])


def _measured_value(name: str, value: MeasureValue) -> bytes:
    # -0.0 == 0.0 as a cache key, yet their doubles differ: encode float zeros every time.
    if value == 0 and type(value) is float:
        return measured_value_element(name, value)
    return _cached_measured_value(name, value)


# Measures take few distinct values (small counts, flags, missing). typed: True == 1, yet a
# boolean encodes differently from a number.
_cached_measured_value = functools.lru_cache(maxsize=CACHE_SIZE, typed=True)(measured_value_element)


def encode_flag(flag: ExplainedFlag) -> bytes:
    """A flag's payload but its lifecycle as the response writes it from the items and pairs
    (a flag of the Python engine's): what the compiled core's EncodedEvidence.wire must equal,
    byte for byte (tests/native holds it to this)."""
    items = flag._replace(evidence=tuple(flag.evidence), measured_values=tuple(flag.measured_values))
    return _Call().flag(items)


def encode_evidence(items: Sequence[EvidenceItem]) -> bytes:
    """A flag's Flag.evidence elements, framed, as the response writes them."""
    return b"".join([_evidence_element(item) for item in items])


def _evidence_element(item: EvidenceItem) -> bytes:
    """One Flag.evidence element, framed: three string fields, written as protobuf would (a
    field left empty is left out); setting and serializing a message per item cost twice as
    much. The fact type and date parts repeat across items and are cached."""
    fact_type, fact_id, day = item
    id_field = _framed(_FACT_ID_TAG, fact_id.encode()) if fact_id else b""
    return _framed(_EVIDENCE_TAG, b"".join((_fact_type_field(fact_type), id_field, _date_field(day))))


@functools.lru_cache(maxsize=CACHE_SIZE)
def _fact_type_field(fact_type: str) -> bytes:
    return _framed(_FACT_TYPE_TAG, fact_type.encode()) if fact_type else b""


# Evidence dates may be dates or, later, their ISO text. Dates alone say nothing about a case
# (nor do fact types): cached process-wide, unlike the ids.
@functools.lru_cache(maxsize=CACHE_SIZE)
def _date_field(day: dt.date | str) -> bytes:
    text = day if isinstance(day, str) else day.isoformat()
    return _framed(_DATE_TAG, text.encode()) if text else b""

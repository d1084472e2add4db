"""Compact JSON forms of stored facts, flag records and decision log entries, shared by both stores.

Facts are written and read back through their records (case.records), whichever form a case
arrives in: the text is byte for byte what pydantic writes, and reading it back validates
nothing again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from rules_engine.case import records
from rules_engine.case.facts import FACT_TYPES, Case, CaseFacts, CaseRecord, Child, ChildFacts, ChildRecord, Fact
from rules_engine.policy.compiled import Severity
from rules_engine.store.base import Acknowledgement, DecisionFlag, DecisionRecord, FlagRecord, FlagState

CHILD_FIELD = "child"  # facts-hash field of the child; fact fields always contain a ':'
REVISION_FIELD = "#rev"  # facts-hash field counting the merges that changed the case


def revision_of(fields: Mapping[str, str]) -> int:
    return int(fields.get(REVISION_FIELD, 0))


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def fact_field(fact_type: str, fact_id: str) -> str:
    return f"{fact_type}:{fact_id}"


def has_data(child: ChildFacts) -> bool:
    """True when any of the child's fields is set (facts checks ChildRecord against Child at import)."""
    return (
        child.birth_date is not None
        or child.ethnicity is not None
        or child.sex is not None
        or child.disability is not None
        or child.deprivation_decile is not None
    )


def fact_items(case: Case) -> list[tuple[str, Fact]]:
    """The case's facts keyed by their store field, `<fact type>:<id>`."""
    return [(fact_field(t, f.id), f) for t in FACT_TYPES for f in getattr(case, t)]


def fact_json(fact: Fact) -> str:
    # exclude_defaults keeps a 200-fact case near 20 kB; validation restores the defaults.
    return fact.model_dump_json(exclude_defaults=True)


def stored_facts(case: CaseFacts) -> list[tuple[str, str]]:
    """(`<fact type>:<id>`, stored JSON) of every fact, the case given as models or records (the
    same text either way, fact_json's: the Lua merge compares texts to tell a changed fact from a
    resent one)."""
    return records.stored_facts(records.as_records(case))


def child_json(child: ChildFacts) -> str:
    return records.child_json(records.child_record(child))


def as_case(case: CaseFacts) -> Case:
    """A case in either form as a validated facts.Case (the in-memory store keeps models)."""
    return records.to_case(case)


def _by_date(fact: Fact) -> tuple[dt.date, str]:
    return (fact.date, fact.id)


def assemble_case(case_id: str, child: Child, facts: Iterable[tuple[str, Fact]]) -> Case:
    """A Case from stored facts, each type ordered by (date, id) so both stores answer alike."""
    by_type: dict[str, list[Fact]] = {}
    for field, fact in facts:
        by_type.setdefault(field.split(":", 1)[0], []).append(fact)
    ordered: dict[str, Any] = {t: tuple(sorted(fs, key=_by_date)) for t, fs in by_type.items()}
    # Every fact was validated on the way in (or just now, by case_from_fields).
    return Case.model_construct(case_id=case_id, child=child, **{t: ordered.get(t, ()) for t in FACT_TYPES})


def _fact_arrays(fields: Mapping[str, str]) -> dict[str, str]:
    """fact type -> `"<type>":[<its stored facts' JSON>]`, a member of one JSON document."""
    by_type: dict[str, list[str]] = {}
    for field, value in fields.items():
        fact_type = field.split(":", 1)[0]
        if fact_type in FACT_TYPES:  # a type dropped from the model since it was stored is ignored
            by_type.setdefault(fact_type, []).append(value)
    return {t: f'"{t}":[{",".join(values)}]' for t, values in by_type.items()}


def case_from_fields(case_id: str, fields: Mapping[str, str]) -> Case | None:
    """Parse a stored facts hash; one pydantic parse of one JSON document is far cheaper than 200."""
    if not fields.keys() - {REVISION_FIELD}:
        return None
    arrays = _fact_arrays(fields)
    parts = [f'"case_id":{json.dumps(case_id)}', f'"child":{fields.get(CHILD_FIELD, "{}")}', *arrays.values()]
    parsed = Case.model_validate_json("{" + ",".join(parts) + "}")
    return assemble_case(case_id, parsed.child, ((t, f) for t in arrays for f in getattr(parsed, t)))


def records_from_fields(case_id: str, fields: Mapping[str, str]) -> CaseRecord:
    """A stored facts hash as records (records.case_from_stored), for evaluation: no model is
    built and nothing is validated again, which costs a third of case_from_fields."""
    return records.case_from_stored(case_id, _stored_child(fields), _parsed_facts(fields))


def merged_records(
    case_id: str, sent: CaseFacts, withdrawn: Collection[tuple[str, str]], rest: Mapping[str, str]
) -> CaseRecord:
    """The stored case after a merge, as records: the facts just sent, which the store now holds
    exactly as sent, joined to `rest`, the stored fields the merge did not set. Only `rest` is
    parsed, so resending a whole case parses nothing."""
    held = records.as_records(sent)
    gone = set(withdrawn)  # a fact sent and withdrawn in one request ends withdrawn
    # By id, the last one sent winning as in the hash: requests are checked for duplicate ids,
    # but a case built in code is not.
    lists = {t: list({f.id: f for f in getattr(held, t) if (t, f.id) not in gone}.values()) for t in FACT_TYPES}
    child = held.child if has_data(held.child) else _stored_child(rest)
    return records.case_from_stored(case_id, child, _parsed_facts(rest), lists)


def _stored_child(fields: Mapping[str, str]) -> ChildRecord:
    return records.child_from_stored(json.loads(fields.get(CHILD_FIELD, "{}")))


def _parsed_facts(fields: Mapping[str, str]) -> dict[str, list[Any]]:
    """The stored facts' JSON of a facts hash, parsed in one document: fact type -> dicts."""
    parsed: dict[str, list[Any]] = json.loads("{" + ",".join(_fact_arrays(fields).values()) + "}")
    return parsed


def fields_digest(case_id: str, fields: Mapping[str, str]) -> str:
    """sha256 hex of a stored facts hash, in field order: the decision log's input digest for a
    stored case (the stored JSON is canonical already: one writer, compact, defaults left out)."""
    digest = hashlib.sha256(case_id.encode())
    for field in sorted(fields.keys() - {REVISION_FIELD}):
        digest.update(f"\n{field}\t{fields[field]}".encode())
    return digest.hexdigest()


def flag_to_json(record: FlagRecord) -> str:
    data: dict[str, Any] = {
        "ruleset": record.ruleset,
        "rule_id": record.rule_id,
        "state": record.state.value,
        "severity": int(record.severity),
        "first_raised": record.first_raised.isoformat(),
        "last_seen": record.last_seen.isoformat(),
        "raised": [t.isoformat() for t in record.raised],
    }
    if record.resolved_at is not None:
        data["resolved_at"] = record.resolved_at.isoformat()
    if (ack := record.acknowledgement) is not None:
        data["ack"] = {
            "practitioner_id": ack.practitioner_id,
            "reason_code": ack.reason_code,
            "at": ack.at.isoformat(),
            "severity": int(ack.severity),
        }
        if ack.snooze_until is not None:
            data["ack"]["snooze_until"] = ack.snooze_until.isoformat()
    return compact_json(data)


def flag_from_json(text: str) -> FlagRecord:
    data = json.loads(text)
    ack = data.get("ack")
    until = ack.get("snooze_until") if ack else None
    return FlagRecord(
        ruleset=data["ruleset"],
        rule_id=data["rule_id"],
        state=FlagState(data["state"]),
        severity=Severity(data["severity"]),
        first_raised=dt.datetime.fromisoformat(data["first_raised"]),
        last_seen=dt.datetime.fromisoformat(data["last_seen"]),
        # Lua's cjson writes an empty array as {}; a stored record always has one episode anyway.
        raised=tuple(dt.datetime.fromisoformat(t) for t in (data.get("raised") or [])),
        resolved_at=dt.datetime.fromisoformat(data["resolved_at"]) if data.get("resolved_at") else None,
        acknowledgement=Acknowledgement(
            practitioner_id=ack["practitioner_id"],
            reason_code=ack["reason_code"],
            at=dt.datetime.fromisoformat(ack["at"]),
            severity=Severity(ack["severity"]),
            snooze_until=dt.date.fromisoformat(until) if until else None,
        )
        if ack
        else None,
    )


def flags_json(flags: Iterable[DecisionFlag]) -> str:
    entries = [{"rule_id": f.rule_id, "state": f.state, "severity": f.severity.name} for f in flags]
    return compact_json(entries)


def decision_fields(record: DecisionRecord) -> dict[str, str]:
    """A decision log stream entry; `flags` is compact JSON of rule_id, state and severity name."""
    return {
        "decision_id": record.decision_id,
        "time": record.time.isoformat(),
        "case_id": record.case_id,
        "ruleset": record.ruleset,
        "ruleset_version": record.ruleset_version,
        "input_digest": record.input_digest,
        "flags": flags_json(record.flags),
    }


def decision_from_fields(fields: Mapping[str, str]) -> DecisionRecord:
    flags = json.loads(fields["flags"]) or []  # cjson writes an empty array as {}
    return DecisionRecord(
        decision_id=fields["decision_id"],
        time=dt.datetime.fromisoformat(fields["time"]),
        case_id=fields["case_id"],
        ruleset=fields["ruleset"],
        ruleset_version=fields["ruleset_version"],
        input_digest=fields["input_digest"],
        flags=tuple(DecisionFlag(f["rule_id"], FlagState(f["state"]), Severity[f["severity"]]) for f in flags),
    )

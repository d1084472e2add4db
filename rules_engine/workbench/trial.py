"""Try a case: evaluate it with a served ruleset and dress the outcome as the page shows it.

The outcome is the engine's own (PreparedRuleset.evaluate: measures, the Matcher, the explainer),
from the version the service is serving; nothing is recorded in the store. Flags carry what the
API's Flag carries (explanation, measured values, thresholds, evidence), in JSON the page reads
without protobuf's enum names.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rules_engine.case.facts import FACT_TYPES, Case
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.engine.results import ExplainedFlag, Outcome, UndeterminedRule
from rules_engine.policy.compiled import Severity
from rules_engine.service import requests

# A Case field name -> its proto3 JSON name (`strategy_discussions` -> `strategyDiscussions`), so
# the page can find an evidence fact in the case as pasted.
JSON_NAMES = {name: requests.CaseMessage.DESCRIPTOR.fields_by_name[name].json_name for name in FACT_TYPES}


def severity_name(severity: Severity) -> str:
    return severity.name.lower()


def flag_json(flag: ExplainedFlag) -> dict[str, Any]:
    return {
        "rule_id": flag.rule_id,
        "title": flag.title,
        "severity": severity_name(flag.severity),
        "escalation": flag.escalation,
        "explanation": flag.explanation,
        "condition": flag.condition,
        "thresholds": [{"parameter": name, "value": value} for name, value in flag.thresholds],
        "measured": dict(flag.measured_values),
        "source": {"kind": flag.source_kind, "reference": flag.source_reference},
        "evidence": [
            {
                "fact_type": item.fact_type,
                "json_field": JSON_NAMES.get(item.fact_type, item.fact_type),
                "fact_id": item.fact_id,
                "date": item.date.isoformat(),
            }
            for item in flag.evidence
        ],
        "evidence_count": flag.evidence_count,
        "contributing_rule_ids": list(flag.contributing_rule_ids),
        "shadow": flag.shadow,
    }


def undetermined_json(rule: UndeterminedRule) -> dict[str, Any]:
    return {"rule_id": rule.rule_id, "title": rule.title, "missing": list(rule.missing_measures)}


def facts_json(case: Case) -> dict[str, Any]:
    """The validated case: the child, and the fact lists by Case field name (as evidence names
    them), dates as text; what the page lays out as a table per fact type."""
    dumped: dict[str, Any] = case.model_dump(mode="json", exclude_none=True)
    return {"child": dumped.get("child", {}), **{name: dumped[name] for name in FACT_TYPES if dumped.get(name)}}


def outcome_json(prepared: PreparedRuleset, case: Case, as_of: dt.date, outcome: Outcome) -> dict[str, Any]:
    ruleset = prepared.ruleset
    return {
        "ruleset": ruleset.name,
        "version": ruleset.version,
        "as_of": as_of.isoformat(),
        "case_id": case.case_id,
        "flags": [flag_json(f) for f in outcome.flags],
        "shadow_flags": [flag_json(f) for f in outcome.shadow_flags],
        "undetermined": [undetermined_json(u) for u in outcome.undetermined],
        "values": dict(outcome.measures),
        "facts": facts_json(case),
    }


def evaluate(prepared: PreparedRuleset, case: Case, as_of: dt.date) -> dict[str, Any]:
    """The case's flags, shadow flags, undetermined rules and measured values on `as_of`."""
    return outcome_json(prepared, case, as_of, prepared.evaluate(case, as_of))

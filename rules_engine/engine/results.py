"""The result of evaluating a ruleset over a case: explained flags and what could not be decided."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from rules_engine.policy.compiled import MeasureValue, Severity, SourceKind
from rules_engine.store.base import FlagRecord


class EvidenceItem(NamedTuple):
    """A fact behind a flag. A tuple, not a dataclass: flags build hundreds of these per call."""

    fact_type: str
    fact_id: str
    date: dt.date


class ExplainedFlag(NamedTuple):
    """A rule that holds, explained. A named tuple: a call builds one per flag, three times as
    fast as a frozen dataclass of 14 fields."""

    rule_id: str
    title: str
    severity: Severity
    escalation: str
    explanation: str
    condition: str
    measured_values: tuple[tuple[str, MeasureValue], ...]
    thresholds: tuple[tuple[str, float | int | bool | str], ...]
    source_kind: SourceKind
    source_reference: str
    # The most recent facts behind the flag: a tuple from the Python engine, the compiled core's
    # written elements (engine/native.EncodedEvidence) from the core.
    evidence: Sequence[EvidenceItem]
    contributing_rule_ids: tuple[str, ...] = ()
    shadow: bool = False
    # Facts behind the flag in all; `evidence` holds the most recent of them.
    evidence_count: int = 0


@dataclass(frozen=True)
class UndeterminedRule:
    rule_id: str
    title: str
    missing_measures: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """Everything one evaluation decided, before it is dressed as a response."""

    measures: dict[str, MeasureValue]
    outcomes: dict[str, bool | None]
    flags: tuple[ExplainedFlag, ...]
    shadow_flags: tuple[ExplainedFlag, ...]
    undetermined: tuple[UndeterminedRule, ...]
    matcher_fallback: bool  # the Matcher failed and the reference evaluator answered


@dataclass(frozen=True)
class Evaluation:
    case_id: str
    ruleset: str
    ruleset_version: str
    decision_id: str
    as_of: dt.datetime
    flags: tuple[ExplainedFlag, ...]
    shadow_flags: tuple[ExplainedFlag, ...] = ()
    undetermined: tuple[UndeterminedRule, ...] = ()
    # True when the Matcher failed and the pure-Python reference evaluator answered.
    matcher_fallback: bool = False
    measures: dict[str, MeasureValue] = field(default_factory=dict)
    # The stored lifecycle of each active flag, by rule id; empty when it could not be recorded.
    lifecycle: dict[str, FlagRecord] = field(default_factory=dict)
    # Flags raised before that this evaluation found no longer hold.
    resolved: tuple[FlagRecord, ...] = ()


@dataclass(frozen=True)
class RulesetStatus:
    """What ListRulesets reports for one ruleset."""

    name: str
    version: str
    loaded_at: dt.datetime | None
    rule_count: int
    shadow_rule_count: int
    last_error: str = ""
    last_error_at: dt.datetime | None = None

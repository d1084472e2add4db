"""The result of evaluating a ruleset over a case: explained flags and what could not be decided."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from rules_engine.compiled import MeasureValue, Severity, SourceKind
from rules_engine.facts import Case


@dataclass(frozen=True)
class EvidenceItem:
    fact_type: str
    fact_id: str
    date: dt.date


@dataclass(frozen=True)
class ExplainedFlag:
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
    evidence: tuple[EvidenceItem, ...]
    contributing_rule_ids: tuple[str, ...] = ()
    shadow: bool = False


@dataclass(frozen=True)
class UndeterminedRule:
    rule_id: str
    title: str
    missing_measures: tuple[str, ...]


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
    # True when the matching engine failed and the pure-Python evaluator answered.
    engine_fallback: bool = False
    measures: dict[str, MeasureValue] = field(default_factory=dict)


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


class EvaluationService(Protocol):
    """What the gRPC servicer and the CLI need from the engine.

    Raises CaseError (bad case), RulesetNotFoundError (unknown ruleset name),
    StoreUnavailableError (the case store is down) or EvaluationError.
    """

    def evaluate(self, case: Case, as_of: dt.datetime | None = None, ruleset: str | None = None) -> Evaluation:
        """Evaluate one case; `as_of` None means now; `ruleset` None means the only one loaded."""
        ...

    def list_rulesets(self) -> list[RulesetStatus]: ...

"""The result of evaluating a ruleset over a case: explained flags and what could not be decided."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from rules_engine.case.facts import CaseFacts
from rules_engine.policy.compiled import MeasureValue, Severity, SourceKind
from rules_engine.store.base import CaseDeletion, ChronologyEntry, DecisionRecord, FlagRecord


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
    evidence: tuple[EvidenceItem, ...]
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


class EvaluationService(Protocol):
    """What the gRPC servicer and the CLI need from the engine.

    Raises CaseError (bad case), RulesetNotFoundError (unknown ruleset name),
    StoreUnavailableError (the case store is down) or EvaluationError.
    """

    def evaluate(
        self,
        case: CaseFacts,
        as_of: dt.datetime | None = None,
        ruleset: str | None = None,
        input_digest: str | None = None,
    ) -> Evaluation:
        """Evaluate one case; `as_of` None means now; `ruleset` None means the only one loaded.

        `input_digest` is what the decision log records for the input (the caller hashes the
        request's bytes, far cheaper than serialising the case again); None: computed here,
        which needs a facts.Case.
        """
        ...

    def list_rulesets(self) -> list[RulesetStatus]: ...


@runtime_checkable
class CaseStateService(EvaluationService, Protocol):
    """What the servicer needs for stored case history; every method may raise StoreUnavailableError."""

    def evaluate_history(
        self,
        case: CaseFacts,
        withdrawn: Sequence[tuple[str, str]] = (),
        as_of: dt.datetime | None = None,
        ruleset: str | None = None,
    ) -> Evaluation:
        """Merge `case` into the stored case, remove `withdrawn` (fact type, id), evaluate the whole history."""
        ...

    def record_facts(self, case: CaseFacts, withdrawn: Sequence[tuple[str, str]] = ()) -> CaseFacts:
        """Merge without evaluating; returns the whole stored case."""
        ...

    def acknowledge(
        self,
        case_id: str,
        ruleset: str | None,
        rule_id: str,
        *,
        practitioner_id: str,
        reason_code: str,
        snooze_until: dt.date | None = None,
    ) -> FlagRecord: ...

    def delete_case(self, case_id: str) -> CaseDeletion:
        """Forget everything stored for the case (the decision log keeps its entries); idempotent."""
        ...

    def chronology(self, case_id: str) -> list[ChronologyEntry]: ...

    def decisions(self, case_id: str | None = None, limit: int = 100) -> list[DecisionRecord]: ...

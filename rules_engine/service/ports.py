"""What the service edge needs from the engine and from a call: the Protocols the servicer is written against.

engine.Engine implements CaseStateService; tests serve smaller services of their own. Each
door (gRPC, Connect) adapts its own call object to CallContext.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from rules_engine.case.facts import CaseFacts
from rules_engine.engine.encoded import EncodedCase
from rules_engine.engine.equality import MIN_CELL, EqualityReport
from rules_engine.engine.results import Evaluation, RulesetStatus
from rules_engine.store.base import CaseDeletion, ChronologyEntry, DecisionRecord, FlagRecord


class CallContext(Protocol):
    """What the servicer core needs from the call it answers, whichever protocol carried it."""

    def seconds_left(self) -> float | None:
        """Seconds until the caller's deadline (negative once past it); None: no deadline."""
        ...


class EvaluationService(Protocol):
    """What the gRPC servicer and the CLI need from the engine.

    Raises CaseError (bad case), RulesetNotFoundError (unknown ruleset name),
    StoreUnavailableError (the case store is down) or EvaluationError.
    """

    def evaluate(
        self,
        case: CaseFacts | EncodedCase,
        as_of: dt.datetime | None = None,
        ruleset: str | None = None,
        input_digest: str | None = None,
    ) -> Evaluation:
        """Evaluate one case; `as_of` None means now; `ruleset` None means the only one loaded.

        The servicer core sends the request's case as an EncodedCase (its bytes and digest);
        the service converts it (EncodedCase.decode) only if it must, and a bad case is refused
        with decode's CaseError before any other error of the call. `input_digest` is what the
        decision log records for a case given as CaseFacts (the caller hashes the request's
        bytes, far cheaper than serialising the case again); None: an EncodedCase's digest, else
        computed here, which needs a facts.Case.
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

    def equality_report(self, ruleset: str | None = None, threshold: int = MIN_CELL) -> EqualityReport:
        """The equality monitoring counters as the suppressed report (engine/equality.report)."""
        ...

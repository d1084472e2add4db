"""The engine: holds the ruleset registry and the clock, and turns a case into an Evaluation."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from rules_engine.evaluation import Evaluation, RulesetStatus
from rules_engine.facts import Case
from rules_engine.registry import Registry


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Engine:
    """Implements EvaluationService over a Registry. The only place that reads the clock."""

    def __init__(self, registry: Registry, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.registry = registry
        self._clock = clock

    def evaluate(self, case: Case, as_of: dt.datetime | None = None, ruleset: str | None = None) -> Evaluation:
        moment = as_of or self._clock()
        with self.registry.lease(ruleset) as prepared:
            outcome = prepared.evaluate(case, moment.date())
            compiled = prepared.ruleset
        return Evaluation(
            case_id=case.case_id,
            ruleset=compiled.name,
            ruleset_version=compiled.version,
            decision_id=uuid.uuid4().hex,
            as_of=moment,
            flags=outcome.flags,
            shadow_flags=outcome.shadow_flags,
            undetermined=outcome.undetermined,
            engine_fallback=outcome.engine_fallback,
            measures=outcome.measures,
        )

    def list_rulesets(self) -> list[RulesetStatus]:
        return self.registry.statuses()

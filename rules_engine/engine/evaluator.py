"""Evaluate: a compiled ruleset, a case and `as_of` in; rule outcomes and explained flags out."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from rules_engine import metrics
from rules_engine import native as native_loader
from rules_engine.case.facts import CaseFacts
from rules_engine.config import MATCHERS, MatcherName
from rules_engine.engine.case_index import build_index
from rules_engine.engine.explainer import EvidenceCacheEntry, cited_measures, explain, undetermined_rule
from rules_engine.engine.matching import Matcher
from rules_engine.engine.measures import compute_measures
from rules_engine.engine.native import NativeRuleset, NotInCore
from rules_engine.engine.reference import ReferenceEvaluator, Truth
from rules_engine.engine.results import ExplainedFlag, Outcome, UndeterminedRule
from rules_engine.errors import EvaluationError
from rules_engine.policy.compiled import CompiledRule, CompiledRuleset, MeasureValue

__all__ = ["Outcome", "PreparedRuleset"]

log = logging.getLogger(__name__)


class PreparedRuleset:
    """A compiled ruleset with its Matcher and reference evaluator: prepare once, evaluate often.

    `matcher="reference"` leaves durable-rules out: the reference evaluator decides alone.
    `evaluate_encoded` runs the compiled core (engine/native.py) on a case's bytes when it is
    built and runs this ruleset; `native=False` leaves it out.
    """

    def __init__(self, ruleset: CompiledRuleset, matcher: MatcherName = "durable", native: bool = True) -> None:
        if matcher not in MATCHERS:
            raise ValueError(f"unknown matcher {matcher!r}; choose one of {', '.join(MATCHERS)}")
        self.ruleset = ruleset
        self.reference = ReferenceEvaluator(ruleset)
        self.matcher = Matcher(ruleset) if matcher == "durable" else None
        self.native, self.native_missing = _native_ruleset(ruleset) if native else (None, "off")
        self._measure_specs = {m.name: m for m in ruleset.measures}
        rules = {rule.id: rule for rule in ruleset.rules}
        self._cited = {rule.id: cited_measures(rule, rules, self._measure_specs) for rule in ruleset.rules}
        self._by_level: list[list[CompiledRule]] = [[] for _ in range(ruleset.levels)]
        for rule in ruleset.rules:
            self._by_level[rule.level].append(rule)

    def close(self) -> None:
        if self.matcher is not None:
            self.matcher.close()

    def evaluate(self, case: CaseFacts, as_of: dt.date) -> Outcome:
        index = build_index(case)
        measures = compute_measures(self.ruleset.measures, index, as_of)
        fallback = False
        if self.matcher is None:
            outcomes = self.reference.evaluate(measures)
        else:
            try:
                outcomes = self._match(self.matcher, measures)
            except EvaluationError:
                # Counted by the caller (matcher_fallback); the reference gives the same answer.
                log.exception("matching engine failed; answering with the reference evaluator")
                outcomes = self.reference.evaluate(measures)
                fallback = True
        flags: list[ExplainedFlag] = []
        shadow: list[ExplainedFlag] = []
        undetermined: list[UndeterminedRule] = []
        params = self.ruleset.parameters
        evidence: dict[str, EvidenceCacheEntry] = {}
        for rule in self.ruleset.rules:
            outcome = outcomes[rule.id]
            if outcome is True:
                flag = explain(
                    rule, measures, params, outcomes, self._measure_specs, index, as_of, self._cited[rule.id], evidence
                )
                (shadow if flag.shadow else flags).append(flag)
            elif outcome is None and rule.status == "active":
                undetermined.append(undetermined_rule(rule, measures, outcomes))
        flags.sort(key=lambda f: (-f.severity, f.rule_id))
        shadow.sort(key=lambda f: (-f.severity, f.rule_id))
        return Outcome(measures, outcomes, tuple(flags), tuple(shadow), tuple(undetermined), fallback)

    def evaluate_encoded(self, data: bytes, as_of: dt.date, latest: dt.date) -> Outcome | None:
        """The compiled core's Outcome for a case's Case message bytes (`latest`: the latest date a
        fact may carry); None when there is no core for this ruleset or it declines the case, and
        the caller converts and validates the case for `evaluate` (which names a bad field)."""
        if self.native is None:
            metrics.count_native_fallback(self.native_missing)
            return None
        try:
            outcome = self.native.evaluate(data, as_of, latest)
        except Exception:
            # The Python engine is the reference and answers instead; the core's fault is a bug.
            log.exception("compiled core failed; evaluating with the Python engine")
            metrics.count_native_fallback("error")
            return None
        if outcome is None:
            metrics.count_native_fallback("declined")
        return outcome

    def _match(self, matcher: Matcher, measures: Mapping[str, MeasureValue]) -> dict[str, Truth]:
        outcomes: dict[str, Truth] = {}
        # Flags of decided lower-level rules, handed to composite rules; undetermined ones are left out.
        decided: dict[str, bool] = {}
        missing = {name for name, value in measures.items() if value is None}
        for level, rules in enumerate(self._by_level):
            held = matcher.match_level(level, measures, decided)
            for rule in rules:
                if rule.id in held:
                    outcome: Truth = True
                elif (missing and not missing.isdisjoint(rule.measures)) or any(
                    outcomes.get(d) is None for d in rule.depends_on
                ):
                    # Only rules that read missing data can be undetermined: ask the reference.
                    outcome = self.reference.rule(rule.id, measures, outcomes)
                    if outcome is True:
                        raise EvaluationError("engine and reference disagree", rule.id)
                else:
                    outcome = False
                outcomes[rule.id] = outcome
                if outcome is not None:
                    decided[rule.id] = outcome
        return outcomes


def _native_ruleset(ruleset: CompiledRuleset) -> tuple[NativeRuleset | None, str]:
    """The compiled core for a ruleset, or None and why (counted as the fallback's reason)."""
    core = native_loader.load()
    if core is None:
        return None, "unavailable"
    try:
        return NativeRuleset(ruleset, core), ""
    except NotInCore as exc:
        log.warning("ruleset %s runs on the Python engine: the compiled core does not run %s", ruleset.name, exc)
        return None, "ruleset"

"""Explain: turn the rules that hold into flags that cite their measured values and evidence."""

from __future__ import annotations

import datetime as dt
import heapq
import operator
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rules_engine.engine.case_index import CaseIndex
from rules_engine.engine.measures import evidence_facts, evidence_items
from rules_engine.engine.reference import Truth
from rules_engine.engine.results import EvidenceItem, ExplainedFlag, UndeterminedRule
from rules_engine.policy.compiled import CompiledMeasure, CompiledRule, MeasureValue
from rules_engine.policy.templates import parse_template, render

# A flag lists its most recent facts and counts the rest: twenty is enough to see the
# pattern, and GetChronology gives the whole history.
MAX_EVIDENCE = 20
# Per measure, once per evaluation: its evidence facts and the newest of them as items.
EvidenceCacheEntry = tuple[Sequence[Any], tuple[EvidenceItem, ...]]


def explain(
    rule: CompiledRule,
    measures: Mapping[str, MeasureValue],
    parameters: Mapping[str, float | int | bool | str],
    outcomes: Mapping[str, Truth],
    measure_specs: Mapping[str, CompiledMeasure],
    index: CaseIndex,
    as_of: dt.date,
    cited: tuple[str, ...],
    evidence_cache: dict[str, EvidenceCacheEntry],
) -> ExplainedFlag:
    """Explain one rule that holds; `cited` names the measures it reports (see cited_measures)."""
    sources = []
    for name in cited:
        found = evidence_cache.get(name)
        if found is None:
            # Composite flags cite their base rules' measures: look each up once per evaluation.
            spec = measure_specs[name]
            facts = evidence_facts(spec, index, as_of)
            found = evidence_cache[name] = (facts, evidence_items(spec, facts, MAX_EVIDENCE))
        if found[0]:
            sources.append(found)
    recent: Sequence[EvidenceItem]
    if len(sources) == 1:  # the usual case: one measure's facts, each once, newest first already
        facts, recent = sources[0]
        count = len(facts)
    else:
        behind: set[int] = set()  # the facts behind the flag, by identity (the index holds each once)
        newest: dict[tuple[str, str], EvidenceItem] = {}
        for facts, items in sources:
            behind.update(map(id, facts))
            for item in items:
                newest.setdefault((item.fact_type, item.fact_id), item)
        recent = heapq.nlargest(MAX_EVIDENCE, newest.values(), key=_NEWEST_FIRST)
        count = len(behind)
    return ExplainedFlag(
        rule_id=rule.id,
        title=rule.title,
        severity=rule.severity,
        escalation=rule.escalation,
        explanation=render(rule.explanation, measures, parameters),
        condition=rule.condition_text,
        measured_values=tuple([(name, measures.get(name)) for name in cited]),
        thresholds=rule.thresholds,
        source_kind=rule.source_kind,
        source_reference=rule.source_reference,
        evidence=tuple(recent),
        evidence_count=count,
        contributing_rule_ids=tuple([dep for dep in rule.depends_on if outcomes.get(dep) is True]),
        shadow=rule.status == "shadow",
    )


# Most recent first; ties by fact type and id, so the order does not depend on the input's.
_NEWEST_FIRST = operator.attrgetter("date", "fact_type", "fact_id")


def undetermined_rule(
    rule: CompiledRule, measures: Mapping[str, MeasureValue], outcomes: Mapping[str, Truth]
) -> UndeterminedRule:
    """Why `rule` could not be decided: its measures that are missing, and the rules it depends on
    that were not decided either (as `flagged(<rule id>)`)."""
    missing = tuple(m for m in rule.measures if measures.get(m) is None)
    missing += tuple(f"flagged({d})" for d in rule.depends_on if outcomes.get(d) is None)
    return UndeterminedRule(rule.id, rule.title, missing)


def cited_measures(rule: CompiledRule, rules: Mapping[str, CompiledRule], known: Collection[str]) -> tuple[str, ...]:
    """The measures a flag reports: its condition's, its template's, and for a composite rule
    those of the rules it builds on, so a composite flag shows the facts behind it too."""
    names: dict[str, None] = dict.fromkeys(rule.measures)
    for _literal, field, _spec in parse_template(rule.explanation):
        if field is not None and field in known:
            names.setdefault(field)
    for dependency in rule.depends_on:
        names.update(dict.fromkeys(cited_measures(rules[dependency], rules, known)))
    return tuple(names)

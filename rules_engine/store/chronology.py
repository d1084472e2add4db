"""One case's chronology: stored facts across agencies, oldest first, with flags' first-raised dates."""

from __future__ import annotations

from collections.abc import Iterable

from rules_engine.facts import FACT_TYPES, Case, Fact
from rules_engine.store.base import ChronologyEntry, FlagRecord

# The field that names who or what a fact is, in the order tried; most types have one of these.
_CODE_FIELDS = ("agency", "kind", "source", "reason", "relationship")


def _code(fact: Fact) -> str:
    for name in _CODE_FIELDS:
        value = getattr(fact, name, None)
        if isinstance(value, str):
            return value
    agencies = getattr(fact, "agencies", None)
    if agencies and all(isinstance(a, str) for a in agencies):
        return "+".join(agencies)
    return ""


def build_chronology(case: Case | None, flags: Iterable[FlagRecord]) -> list[ChronologyEntry]:
    entries = []
    if case is not None:
        entries = [ChronologyEntry(f.date, "fact", t, f.id, _code(f)) for t in FACT_TYPES for f in getattr(case, t)]
    entries += [
        ChronologyEntry(raised.date(), "flag_raised", "flag", r.rule_id, r.severity.name, r.ruleset)
        for r in flags
        for raised in r.raised
    ]
    # A flag is raised on what was known that day, so it follows the day's facts.
    return sorted(entries, key=lambda e: (e.date, e.kind != "fact", e.fact_type, e.fact_id, e.ruleset))

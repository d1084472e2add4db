"""One case's chronology: stored facts across agencies, oldest first, with flags' first-raised dates."""

from __future__ import annotations

from collections.abc import Iterable

from rules_engine.case.facts import FACT_TYPES, Case, Fact
from rules_engine.store.base import ChronologyEntry, FlagRecord

# The field that names who or what a fact is, in the order tried; most types have one of these.
_CODE_FIELDS = ("agency", "kind", "source", "reason", "relationship")
# Types whose code is another field: a recorded factor's factor says more than the agency
# that recorded it, as an assessment's factors would.
_TYPE_CODE_FIELDS = {"recorded_factors": "factor", "plan_reviews": "plan_kind", "transfers": "direction"}


def _code(fact_type: str, fact: Fact) -> str:
    if (special := _TYPE_CODE_FIELDS.get(fact_type)) is not None:
        value = getattr(fact, special, None)
        return value if isinstance(value, str) else ""
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
        entries = [ChronologyEntry(f.date, "fact", t, f.id, _code(t, f)) for t in FACT_TYPES for f in getattr(case, t)]
    entries += [
        ChronologyEntry(raised.date(), "flag_raised", "flag", r.rule_id, r.severity.name, r.ruleset)
        for r in flags
        for raised in r.raised
    ]
    # A flag is raised on what was known that day, so it follows the day's facts.
    return sorted(entries, key=lambda e: (e.date, e.kind != "fact", e.fact_type, e.fact_id, e.ruleset))

"""Small builders of cases, sightings and decisions for the store tests."""

from __future__ import annotations

import datetime as dt
import time

from rules_engine.case.facts import Case, Child, Concern, Conference, ConferenceAgency, Plan, Visit
from rules_engine.policy.compiled import Severity
from rules_engine.store import CaseStore, DecisionRecord, FlagSighting, MemoryStore

NOW = dt.datetime(2025, 3, 10, 9, 30, tzinfo=dt.UTC)
CASE = "case-1"


def concern(fact_id: str, day: int = 1, agency: str = "POLICE", **extra: object) -> Concern:
    return Concern.model_validate({"id": fact_id, "date": dt.date(2025, 1, day), "agency": agency, **extra})


def case(*concerns: Concern, case_id: str = CASE, **facts: object) -> Case:
    return Case.model_validate({"case_id": case_id, "concerns": concerns, **facts})


def big_case(n: int = 200, case_id: str = CASE) -> Case:
    """A realistic case of `n` facts across several types."""
    start = dt.date(2020, 1, 1)
    concerns = [
        Concern(
            id=f"c{i}",
            date=start + dt.timedelta(days=i * 3),
            agency="POLICE",
            category="NEGLECT",
            household_member_ids=("hm-1",),
        )
        for i in range(n // 2)
    ]
    visits = [Visit(id=f"v{i}", date=start + dt.timedelta(days=i * 5), child_seen=True) for i in range(n // 4)]
    plans = [Plan(id=f"p{i}", date=start + dt.timedelta(days=i * 30), kind="CHILD_IN_NEED") for i in range(n // 8)]
    conferences = [
        Conference(
            id=f"k{i}",
            date=start + dt.timedelta(days=i * 40),
            kind="REVIEW",
            agencies=(ConferenceAgency(agency="HEALTH", attended=True),),
        )
        for i in range(n - n // 2 - n // 4 - n // 8)
    ]
    return Case(
        case_id=case_id,
        child=Child(birth_date=dt.date(2015, 6, 1)),
        concerns=tuple(concerns),
        visits=tuple(visits),
        plans=tuple(plans),
        conferences=tuple(conferences),
    )


def flags(*pairs: tuple[str, Severity]) -> list[FlagSighting]:
    return [FlagSighting(rule_id, severity) for rule_id, severity in pairs]


def decision(decision_id: str, case_id: str = CASE, when: dt.datetime = NOW) -> DecisionRecord:
    return DecisionRecord(decision_id, when, case_id, "safeguarding", "abc123def456", "0" * 64)


def advance(store: CaseStore, clock: object, seconds: float) -> None:
    """Let time pass: the memory store's injected clock moves, Redis's really passes."""
    if isinstance(store, MemoryStore):
        clock.now += seconds  # type: ignore[attr-defined]
    else:
        time.sleep(seconds)

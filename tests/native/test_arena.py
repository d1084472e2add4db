"""The core's C memory: an evaluation carves its tables, series and evidence from one arena, and the
Core keeps the last one's memory for the next. An evaluation calls Python now and then (the
calendar, an explanation's text, the undetermined rules), and another thread may evaluate
meanwhile with an arena of its own; every answer must be the one a lone evaluation gives."""

from __future__ import annotations

import datetime as dt
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from rules_engine import native
from rules_engine.case.dates import latest_date
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.engine.native import EncodedEvidence
from rules_engine.engine.results import Outcome
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

ROOT = Path(__file__).resolve().parents[2]
SIZES = (0, 1, 20, 200, 2000, 7)
DAYS = (0, 45, 400)


@pytest.fixture(scope="module")
def prepared() -> Any:
    if native.load() is None:
        pytest.fail(f"the compiled core is not loaded: {native.unavailable_reason()}")
    return PreparedRuleset(compile_ruleset(ROOT / "rulesets" / "safeguarding"), matcher="reference")


def _calls() -> list[tuple[bytes, dt.date]]:
    cases = [requests.case_from_json(sized_case(n)).SerializeToString(deterministic=True) for n in SIZES]
    return [(data, LONG_TIMELINE_END + dt.timedelta(days=d)) for data in cases for d in DAYS]


def _wire(evidence: object) -> bytes:
    """A core flag's response bytes (its evidence's)."""
    assert isinstance(evidence, EncodedEvidence)
    return evidence.wire


def _answer(outcome: Outcome | None) -> Any:
    assert outcome is not None
    flags = [(f.rule_id, f.evidence_count, _wire(f.evidence), f.measured_values) for f in outcome.flags]
    return outcome.measures, outcome.outcomes, flags, outcome.undetermined


def test_evaluations_of_every_size_in_turn_answer_as_each_alone(prepared: Any) -> None:
    """Large and small cases one after another (each evaluation reuses the last one's memory)
    answer as the first evaluation of each did."""
    calls = _calls()
    first = [_answer(prepared.evaluate_encoded(data, as_of, latest_date(as_of))) for data, as_of in calls]
    for _ in range(2):
        for (data, as_of), want in zip(reversed(calls), reversed(first), strict=True):
            assert _answer(prepared.evaluate_encoded(data, as_of, latest_date(as_of))) == want


def test_evaluations_in_threads_answer_as_alone(prepared: Any) -> None:
    calls = _calls()
    want = [_answer(prepared.evaluate_encoded(data, as_of, latest_date(as_of))) for data, as_of in calls]
    failures: list[str] = []

    def run(offset: int) -> None:
        for k in range(3 * len(calls)):
            i = (offset + k) % len(calls)
            data, as_of = calls[i]
            if _answer(prepared.evaluate_encoded(data, as_of, latest_date(as_of))) != want[i]:
                failures.append(f"call {i} in thread {offset}")

    threads = [threading.Thread(target=run, args=(offset,)) for offset in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch at the core's every call into Python
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []

"""The compiled core's fallback: the Python engine answers, and each reason is counted (and an
error logged), so a core that is off, declines or raises never costs a call its answer."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from rules_engine import native
from rules_engine.case.dates import latest_date
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.engine.registry import Registry
from rules_engine.engine.wire import encode_varint
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.tools.synth import LONG_TIMELINE_END, sized_case

ROOT = Path(__file__).resolve().parents[2]
AS_OF = LONG_TIMELINE_END


def _fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("rules_engine_native_fallbacks_total", {"reason": reason}) or 0.0


def _case_bytes(facts: int = 20) -> bytes:
    return requests.case_from_json(sized_case(facts)).SerializeToString(deterministic=True)


@pytest.fixture(scope="module")
def compiled() -> Any:
    if native.load() is None:
        pytest.fail(f"the compiled core is not loaded: {native.unavailable_reason()}")
    return compile_ruleset(ROOT / "rulesets" / "safeguarding")


def test_a_ruleset_without_the_core_is_counted_and_answered_by_python(compiled: Any) -> None:
    prepared = PreparedRuleset(compiled, matcher="reference", native=False)
    before = _fallbacks("off")
    assert prepared.evaluate_encoded(_case_bytes(), AS_OF, latest_date(AS_OF)) is None
    assert _fallbacks("off") == before + 1


def test_a_declined_case_is_counted(compiled: Any) -> None:
    prepared = PreparedRuleset(compiled, matcher="reference")
    message = requests.case_from_json(sized_case(20))
    message.concerns[0].date = "2024-02-30"  # not a date: the Python path names it
    before = _fallbacks("declined")
    assert prepared.evaluate_encoded(message.SerializeToString(), AS_OF, latest_date(AS_OF)) is None
    assert _fallbacks("declined") == before + 1


def test_a_core_that_raises_is_logged_counted_and_declined(
    compiled: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    prepared = PreparedRuleset(compiled, matcher="reference")
    assert prepared.native is not None

    def broken(data: bytes, as_of: dt.date, latest: dt.date) -> None:
        raise RuntimeError("a bug in the core")

    monkeypatch.setattr(prepared.native, "evaluate", broken)
    before = _fallbacks("error")
    with caplog.at_level(logging.ERROR, logger="rules_engine.engine.evaluator"):
        assert prepared.evaluate_encoded(_case_bytes(), AS_OF, latest_date(AS_OF)) is None
    assert _fallbacks("error") == before + 1
    assert any("compiled core failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_the_core_answers_as_the_python_engine(compiled: Any) -> None:
    prepared = PreparedRuleset(compiled, matcher="reference")
    message = requests.case_from_json(sized_case(200))
    got = prepared.evaluate_encoded(message.SerializeToString(deterministic=True), AS_OF, latest_date(AS_OF))
    want = prepared.evaluate(requests.case_from_proto(message, AS_OF), AS_OF)
    assert got is not None and got == want
    assert got.flags  # the 200-fact case raises flags: the comparison is not of two empty answers


def test_the_registry_says_which_engine_answers_a_ruleset(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(ROOT / "rulesets", compile_ruleset, matcher="reference")
    with caplog.at_level(logging.INFO, logger="rules_engine.engine.registry"):
        registry.reload()
    registry.close()
    engines = {getattr(r, "ruleset", None): getattr(r, "engine", None) for r in caplog.records}
    assert engines.get("safeguarding") == "compiled"
    assert engines.get("starter") == "compiled"


@pytest.mark.parametrize(
    "extra",
    [
        encode_varint((2**29 - 1) << 3 | 2) + encode_varint(3) + b"abc",  # the largest field number protobuf allows
        encode_varint(2**63 + 2) + b"\x00",  # a tag no protobuf writer makes: field number beyond 2**32
        encode_varint(7 << 3 | 3) * 5_000 + b"\x00",  # groups nested far deeper than protobuf's limit
    ],
)
def test_hostile_bytes_are_declined_or_answered_never_a_crash(compiled: Any, extra: bytes) -> None:
    prepared = PreparedRuleset(compiled, matcher="reference")
    data = _case_bytes() + extra
    for cut in (len(data), len(data) - 1):
        outcome = prepared.evaluate_encoded(data[:cut], AS_OF, latest_date(AS_OF))
        assert outcome is None or outcome.flags

"""The request's case goes to the engine as its bytes (EncodedCase): serialised once, decoded only when the
compiled core declines, and refused exactly as the Python conversion refuses it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.case.dates import latest_date
from rules_engine.case.facts import CaseFacts
from rules_engine.engine.encoded import EncodedCase
from rules_engine.engine.engine import Engine
from rules_engine.engine.evaluator import Outcome, PreparedRuleset
from rules_engine.engine.registry import Registry
from rules_engine.errors import CaseError, FieldViolation, RulesetNotFoundError, RulesetRequiredError
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.service.core import ServicerCore, encode_case
from rules_engine.store import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2025, 7, 1, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


class NoDeadline:
    def seconds_left(self) -> float | None:
        return None


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    loaded = Registry(ROOT / "rulesets", compile_ruleset)  # starter and safeguarding: a request must name one
    loaded.reload()
    yield loaded
    loaded.close()


@pytest.fixture
def engine(registry: Registry) -> Engine:
    return Engine(registry, clock=lambda: NOW, store=MemoryStore())


@pytest.fixture
def core(engine: Engine) -> ServicerCore:
    return ServicerCore(engine, clock=lambda: NOW)


def good_case(case_id: str = "case-1") -> case_pb2.Case:
    case = case_pb2.Case(case_id=case_id)
    case.child.birth_date = "2024-11-01"
    for i in range(4):
        case.concerns.add(id=f"c{i}", date=f"2025-0{i + 1}-10", agency="POLICE", category="NEGLECT")
    return case


def _bad_date(case: case_pb2.Case) -> None:
    case.concerns[1].date = "2025-13-01"


def _unknown_code(case: case_pb2.Case) -> None:
    case.concerns[0].agency = "SCHOOL"


def _duplicate_id(case: case_pb2.Case) -> None:
    case.concerns[2].id = "c0"


def _far_future(case: case_pb2.Case) -> None:
    case.concerns[3].date = "2027-01-01"


def _bad_case_id(case: case_pb2.Case) -> None:
    case.case_id = "case 1"


def _no_case_id(case: case_pb2.Case) -> None:
    case.case_id = ""


def _bad_case_id_and_date(case: case_pb2.Case) -> None:
    case.case_id = "x" * 129
    case.concerns[0].date = "soon"


BAD = [_bad_date, _unknown_code, _duplicate_id, _far_future, _bad_case_id, _no_case_id, _bad_case_id_and_date]


def bad_case(spoil: Callable[[case_pb2.Case], None]) -> case_pb2.Case:
    case = good_case()
    spoil(case)
    return case


def violations_of(call: Callable[..., Any], *args: Any) -> list[FieldViolation]:
    with pytest.raises(CaseError) as caught:
        call(*args)
    return caught.value.violations


@pytest.mark.parametrize("spoil", BAD, ids=lambda f: f.__name__)
def test_a_bad_case_is_refused_with_the_python_conversions_violations(
    core: ServicerCore, spoil: Callable[[case_pb2.Case], None]
) -> None:
    message = bad_case(spoil)
    expected = violations_of(lambda: requests.case_from_proto(message, TODAY))
    assert expected
    request = pb.EvaluateRequest(case=message, ruleset="starter")
    assert violations_of(lambda: core.evaluate(request, NoDeadline())) == expected
    # An unknown ruleset, or none named with two loaded: the case's own fields are still what is refused.
    for ruleset in ("no-such-ruleset", ""):
        request = pb.EvaluateRequest(case=message, ruleset=ruleset)
        assert violations_of(core.evaluate, request, NoDeadline()) == expected


def test_a_good_case_with_a_bad_ruleset_is_refused_for_the_ruleset(core: ServicerCore) -> None:
    with pytest.raises(RulesetNotFoundError):
        core.evaluate(pb.EvaluateRequest(case=good_case(), ruleset="no-such-ruleset"), NoDeadline())
    with pytest.raises(RulesetRequiredError):
        core.evaluate(pb.EvaluateRequest(case=good_case()), NoDeadline())


def test_a_bad_as_of_and_a_bad_case_are_refused_together(core: ServicerCore) -> None:
    message = bad_case(_bad_date)
    request = pb.EvaluateRequest(case=message, as_of="yesterday", ruleset="starter")
    fields = [v.field for v in violations_of(lambda: core.evaluate(request, NoDeadline()))]
    assert fields == ["as_of", "case.concerns[1].date"]


def test_a_batch_names_the_bad_case_by_its_index(core: ServicerCore) -> None:
    request = pb.EvaluateBatchRequest(cases=[good_case("a"), bad_case(_bad_date), good_case("c")], ruleset="starter")
    answers = list(core.evaluate_batch(request, NoDeadline()))
    assert [a.WhichOneof("result") for a in answers] == ["evaluation", "error", "evaluation"]
    assert answers[1].error.code == "INVALID_ARGUMENT"
    assert answers[1].error.message == "invalid case: cases[1].concerns[1].date: not a date (YYYY-MM-DD)"
    # No ruleset named while two are loaded: a bad case is still answered as bad, then the batch ends.
    spoiled = bad_case(_bad_case_id)
    request = pb.EvaluateBatchRequest(cases=[spoiled, good_case()])
    answers = []
    with pytest.raises(RulesetRequiredError):
        for answer in core.evaluate_batch(request, NoDeadline()):
            answers.append(answer)
    [violation] = violations_of(requests.case_from_proto, spoiled, TODAY, "cases[0]")
    assert [a.error.message for a in answers] == [f"invalid case: {violation.field}: {violation.description}"]


def test_the_decision_log_keeps_the_digest_of_the_request_bytes(core: ServicerCore, engine: Engine) -> None:
    message = good_case()
    core.evaluate(pb.EvaluateRequest(case=message, ruleset="starter"), NoDeadline())
    [decision] = engine.decisions("case-1")
    assert decision.input_digest == requests.case_message_digest(message)


def test_an_encoded_case_is_the_deterministic_bytes_once() -> None:
    message = good_case()
    encoded = encode_case(message, TODAY, "cases[2]")
    assert encoded.data == message.SerializeToString(deterministic=True)
    assert encoded.digest == requests.case_message_digest(message)
    assert (encoded.case_id, encoded.latest) == ("case-1", latest_date(TODAY))
    assert encoded.decode() == requests.case_from_proto(message, TODAY)
    spoiled = encode_case(bad_case(_bad_date), TODAY, "cases[2]")
    assert [v.field for v in violations_of(spoiled.decode)] == ["cases[2].concerns[1].date"]


class Core:
    """A stand-in compiled core on PreparedRuleset: answers with `answer` (None: declines), records its calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answer: Callable[[PreparedRuleset], Outcome | None]) -> None:
        self.calls: list[tuple[bytes, dt.date, dt.date]] = []

        def evaluate_encoded(prepared: PreparedRuleset, data: bytes, as_of: dt.date, latest: dt.date) -> Outcome | None:
            self.calls.append((data, as_of, latest))
            return answer(prepared)

        monkeypatch.setattr(PreparedRuleset, "evaluate_encoded", evaluate_encoded, raising=False)


def counting_decode(encoded: EncodedCase) -> tuple[EncodedCase, list[int]]:
    decoded: list[int] = []

    def decode() -> CaseFacts:
        decoded.append(1)
        return encoded.decode()

    return encoded._replace(decode=decode), decoded


def test_the_core_answers_without_the_case_being_decoded(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, registry: Registry
) -> None:
    with registry.lease("starter") as prepared:
        reference = prepared.evaluate(requests.case_from_proto(good_case(), TODAY), TODAY)
    core = Core(monkeypatch, lambda _: reference)
    encoded, decoded = counting_decode(encode_case(good_case(), TODAY))
    evaluation = engine.evaluate(encoded, NOW, "starter")
    assert evaluation.flags == reference.flags
    assert core.calls == [(encoded.data, TODAY, latest_date(TODAY))]
    assert decoded == []


def test_a_declining_core_hands_the_case_to_python(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    core = Core(monkeypatch, lambda _: None)
    encoded, decoded = counting_decode(encode_case(good_case(), TODAY))
    evaluation = engine.evaluate(encoded, NOW, "starter")
    assert len(core.calls) == 1 and decoded == [1]
    assert evaluation.case_id == "case-1"

    spoiled, decoded = counting_decode(encode_case(bad_case(_bad_date), TODAY))
    with pytest.raises(CaseError):
        engine.evaluate(spoiled, NOW, "starter")
    assert len(core.calls) == 2 and decoded == [1]


def test_a_bad_case_id_never_reaches_the_core(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine checks the case id first, as the Python path does, rather than have the core read
    # the whole case only to decline it.
    core = Core(monkeypatch, lambda _: pytest.fail("the core was asked"))
    for spoil in (_bad_case_id, _no_case_id):
        message = bad_case(spoil)
        expected = violations_of(requests.case_from_proto, message, TODAY)
        assert violations_of(engine.evaluate, encode_case(message, TODAY), NOW, "starter") == expected
    assert core.calls == []

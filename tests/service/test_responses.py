"""responses.encode_response: serialized responses that parse equal to evaluation_to_proto's, byte for byte in size."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import unknown_fields
from google.protobuf.internal import encoder
from google.protobuf.message import Message

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.engine.results import Evaluation, EvidenceItem, ExplainedFlag, UndeterminedRule
from rules_engine.engine.wire import encode_varint
from rules_engine.policy.compiled import Severity
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests, responses
from rules_engine.service.responses import EncodedEvaluateResponse, encode_evaluation, encode_response
from rules_engine.store import Acknowledgement, FlagRecord, FlagState
from rules_engine.tools import synth

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "case.json"
LONG_END = dt.datetime.combine(synth.LONG_TIMELINE_END, dt.time(), dt.UTC)
CONTROL_END = dt.datetime.combine(synth.CONTROL_END, dt.time(), dt.UTC)
EXAMPLE_AS_OF = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)
SAFEGUARDING = "safeguarding"


def assert_encodes_as_wire(evaluation: Evaluation) -> None:
    """The encoded bytes parse to evaluation_to_proto's message, with nothing left over and nothing unknown."""
    expected = responses.evaluation_to_proto(evaluation)
    data = encode_evaluation(evaluation)
    parsed = pb.EvaluateResponse.FromString(data)
    assert parsed == expected
    # The same fields, only (perhaps) in another order: no field is written twice or left out.
    assert len(data) == len(expected.SerializeToString())
    assert parsed.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    assert_no_unknown_fields(parsed)


def assert_no_unknown_fields(message: Message) -> None:
    assert len(unknown_fields.UnknownFieldSet(message)) == 0, type(message).__name__
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for sub in value if field.is_repeated else [value]:
            assert_no_unknown_fields(sub)


# -- real evaluations --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    loaded = Registry(ROOT / "rulesets", compile_ruleset)
    loaded.reload()
    yield loaded
    loaded.close()


def _case(obj: dict[str, Any], as_of: dt.datetime) -> Any:
    return requests.case_model_from_proto(requests.case_from_json(obj), as_of.date())


def _stateless(registry: Registry) -> Iterator[tuple[str, Evaluation]]:
    engine = Engine(registry)
    for facts in (20, 200, 2000):
        for seed in (1, 2, 3):
            case = synth.sized_case(facts, seed)
            for as_of in (LONG_END, LONG_END - dt.timedelta(days=400)):
                yield (
                    f"sized-{facts}-{seed}@{as_of.date()}",
                    engine.evaluate(_case(case, LONG_END), as_of, SAFEGUARDING),
                )
    for seed in (7, 11):
        as_of = LONG_END - dt.timedelta(days=365 * 6)
        yield f"long-{seed}", engine.evaluate(_case(synth.long_timeline_case(seed), LONG_END), as_of, SAFEGUARDING)
    yield "control", engine.evaluate(_case(synth.control_case(), CONTROL_END), CONTROL_END, SAFEGUARDING)
    # A caseload of every kind, through both rulesets: the starter one leaves rules undetermined.
    for i, (kind, case) in enumerate(synth.generate(20, seed=2025, as_of=EXAMPLE_AS_OF.date())):
        for ruleset in (SAFEGUARDING, "starter"):
            yield f"{kind}-{i}-{ruleset}", engine.evaluate(_case(case, EXAMPLE_AS_OF), EXAMPLE_AS_OF, ruleset)
    example = json.loads(EXAMPLE.read_text())
    yield "example", engine.evaluate(_case(example, EXAMPLE_AS_OF), EXAMPLE_AS_OF, "starter")
    infant = copy.deepcopy(example)
    infant["child"]["birthDate"] = "2024-11-02"  # under one: the shadow rule holds
    yield "example-infant", engine.evaluate(_case(infant, EXAMPLE_AS_OF), EXAMPLE_AS_OF, "starter")
    unborn = copy.deepcopy(example)
    del unborn["child"]  # no age: rules reading it are undetermined
    yield "example-no-child", engine.evaluate(_case(unborn, EXAMPLE_AS_OF), EXAMPLE_AS_OF, "starter")


def _lifecycle(registry: Registry) -> Iterator[tuple[str, Evaluation]]:
    """One case over time: new flags, then ongoing, acknowledged, snoozed and resolved ones."""
    now = LONG_END
    engine = Engine(registry, clock=lambda: now)
    big = synth.sized_case(200)
    yield "first", engine.evaluate(_case(big, now), now, SAFEGUARDING)
    now += dt.timedelta(days=1)
    second = engine.evaluate(_case(big, now), now, SAFEGUARDING)
    yield "second", second
    first_rule, second_rule = (f.rule_id for f in second.flags[:2])
    engine.acknowledge(big["caseId"], SAFEGUARDING, first_rule, practitioner_id="sw-1", reason_code="DISCUSSED")
    engine.acknowledge(
        big["caseId"],
        SAFEGUARDING,
        second_rule,
        practitioner_id="sw-1",
        reason_code="AWAITING_CONFERENCE",
        snooze_until=now.date() + dt.timedelta(days=30),
    )
    # An offset as_of: the same instant as UTC would have other text.
    now += dt.timedelta(days=1)
    plus_one = dt.timezone(dt.timedelta(hours=1))
    yield "acknowledged", engine.evaluate(_case(big, now), now.astimezone(plus_one), SAFEGUARDING)
    now += dt.timedelta(days=1)
    small = {**synth.sized_case(20), "caseId": big["caseId"]}
    yield "resolved", engine.evaluate(_case(small, now), now, SAFEGUARDING)


@pytest.fixture(scope="module")
def real_evaluations(registry: Registry) -> list[tuple[str, Evaluation]]:
    return [*_stateless(registry), *_lifecycle(registry)]


def test_real_evaluations_encode_as_wire(real_evaluations: list[tuple[str, Evaluation]]) -> None:
    for label, evaluation in real_evaluations:
        try:
            assert_encodes_as_wire(evaluation)
        except AssertionError as exc:
            raise AssertionError(f"{label}: {exc}") from exc


def test_real_evaluations_cover_what_the_encoding_distinguishes(real_evaluations: list[tuple[str, Evaluation]]) -> None:
    evaluations = [e for _, e in real_evaluations]
    states = {r.state for e in evaluations for r in e.lifecycle.values()}
    assert {FlagState.NEW, FlagState.ONGOING, FlagState.ACKNOWLEDGED, FlagState.SNOOZED} <= states
    assert any(e.shadow_flags for e in evaluations)
    assert any(e.undetermined for e in evaluations)
    assert any(e.resolved for e in evaluations)
    assert any(f.contributing_rule_ids for e in evaluations for f in e.flags)
    # Evidence shared between flags is what the per-call encoding saves on.
    assert any(
        len({i for f in e.flags for i in f.evidence}) < sum(len(f.evidence) for f in e.flags) for e in evaluations
    )


# -- hand-made evaluations ---------------------------------------------------------------------

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
SHARED = EvidenceItem("concerns", "c1", dt.date(2024, 1, 2))


def _flag(rule_id: str, severity: Severity = Severity.MEDIUM, **changes: Any) -> ExplainedFlag:
    flag = ExplainedFlag(
        rule_id=rule_id,
        title=rule_id.title(),
        severity=severity,
        escalation="Team manager",
        explanation="because",
        condition="x >= 1",
        measured_values=(("x", 2),),
        thresholds=(("min", 1),),
        source_kind="statutory",
        source_reference="Working Together 2023",
        evidence=(SHARED, EvidenceItem("visits", "v1", dt.date(2024, 2, 3))),
        evidence_count=2,
    )
    return flag._replace(**changes)


def _record(rule_id: str, state: FlagState, **changes: Any) -> FlagRecord:
    record = FlagRecord(
        ruleset="demo",
        rule_id=rule_id,
        state=state,
        severity=Severity.MEDIUM,
        first_raised=NOW - dt.timedelta(days=3),
        last_seen=NOW,
        raised=(NOW - dt.timedelta(days=3),),
    )
    return record._replace(**changes)


def _evaluation(*flags: ExplainedFlag, **changes: Any) -> Evaluation:
    return dataclasses.replace(Evaluation("case-1", "demo", "abc", "d1", NOW, flags=flags), **changes)


def _ack(snooze_until: dt.date | None = None) -> Acknowledgement:
    return Acknowledgement("sw-1", "DISCUSSED", NOW, Severity.MEDIUM, snooze_until)


def test_empty_evaluation() -> None:
    assert_encodes_as_wire(_evaluation())
    assert_encodes_as_wire(Evaluation("", "", "", "", dt.datetime(2025, 1, 2), flags=()))


def test_every_flag_state() -> None:
    snooze = dt.date(2025, 2, 1)
    records = {
        "new": _record("new", FlagState.NEW),
        "ongoing": _record("ongoing", FlagState.ONGOING),
        "acknowledged": _record("acknowledged", FlagState.ACKNOWLEDGED, acknowledgement=_ack()),
        "snoozed": _record("snoozed", FlagState.SNOOZED, acknowledgement=_ack(snooze)),
        "snoozed-no-date": _record("snoozed-no-date", FlagState.SNOOZED, acknowledgement=_ack()),
        "snoozed-no-ack": _record("snoozed-no-ack", FlagState.SNOOZED),
        # A snooze date on a state other than SNOOZED is not reported.
        "acknowledged-dated": _record("acknowledged-dated", FlagState.ACKNOWLEDGED, acknowledgement=_ack(snooze)),
        "resolved": _record("resolved", FlagState.RESOLVED, resolved_at=NOW),
    }
    evaluation = _evaluation(*(_flag(rule_id) for rule_id in [*records, "unrecorded"]), lifecycle=records)

    assert_encodes_as_wire(evaluation)
    flags = {f.rule_id: f for f in pb.EvaluateResponse.FromString(encode_evaluation(evaluation)).flags}
    assert flags["snoozed"].snooze_until == "2025-02-01"
    assert flags["unrecorded"].state == pb.FLAG_STATE_UNSPECIFIED


def test_moments_equal_in_time_keep_their_own_offsets() -> None:
    plus_one = dt.timezone(dt.timedelta(hours=1))
    record = _record(
        "a",
        FlagState.ONGOING,
        first_raised=NOW,  # == as_of below, but its text is UTC's
        last_seen=NOW.replace(tzinfo=None),  # naive: taken as UTC
    )
    evaluation = _evaluation(_flag("a"), lifecycle={"a": record}, as_of=NOW.astimezone(plus_one))

    assert_encodes_as_wire(evaluation)
    response = pb.EvaluateResponse.FromString(encode_evaluation(evaluation))
    assert response.as_of == "2025-01-02T04:04:05+01:00"
    assert (response.flags[0].first_raised, response.flags[0].last_seen) == ("2025-01-02T03:04:05Z",) * 2


def test_shadow_flags_have_no_lifecycle() -> None:
    evaluation = _evaluation(
        _flag("a"),
        shadow_flags=(_flag("s", Severity.LOW, shadow=True), _flag("r", Severity.HIGH, shadow=True)),
        # A record under a shadow flag's id is not used for it.
        lifecycle={"a": _record("a", FlagState.NEW), "s": _record("s", FlagState.NEW)},
    )

    assert_encodes_as_wire(evaluation)
    response = encode_response(evaluation)
    assert response.shadow_flags == ("r", "s")
    assert [f.state for f in response.to_message().shadow_flags] == [pb.FLAG_STATE_UNSPECIFIED] * 2


def test_measured_values_of_every_kind() -> None:
    values: tuple[tuple[str, Any], ...] = (("none", None), ("yes", True), ("no", False), ("one", 1), ("zero", 0))
    values += (("big", 2**40), ("half", 0.5), ("zero-float", 0.0), ("minus-zero", -0.0), ("text", "NEG"), ("", 3))
    # The same name and equal values of other types, twice over: caches must keep them apart.
    flags = [_flag(f"f{i}", measured_values=values) for i in range(2)]
    flags += [
        _flag("g", measured_values=(("one", True), ("yes", 1), ("no", 0.0), ("zero", False), ("minus-zero", 0.0)))
    ]
    evaluation = _evaluation(*flags)

    assert_encodes_as_wire(evaluation)
    parsed = pb.EvaluateResponse.FromString(encode_evaluation(evaluation))
    by_name = {v.name: v for v in parsed.flags[0].measured_values}
    assert math.copysign(1.0, by_name["minus-zero"].number) == -1.0
    assert by_name["none"].missing
    g = parsed.flags[2].measured_values
    assert [v.WhichOneof("value") for v in g] == ["boolean", "number", "number", "boolean", "number"]
    assert math.copysign(1.0, g[4].number) == 1.0


def test_thresholds_and_rule_fields() -> None:
    thresholds = (("min", 1), ("on", True), ("ratio", 0.25), ("category", "NEG"), ("zero", -0.0))
    evaluation = _evaluation(
        _flag("a", thresholds=thresholds, source_kind="local", source_reference="Local policy"),
        _flag("b", thresholds=()),
        _flag("c", Severity.CRITICAL, escalation="", condition="", title=""),
    )
    assert_encodes_as_wire(evaluation)


def test_rules_equal_but_for_threshold_types_encode_apart() -> None:
    # ("on", True) == ("on", 1): a cache keyed on the thresholds alone would answer the first for both.
    # Comparing the parsed messages would miss -0.0 for 0.0: assert_encodes_as_wire compares bytes too.
    for value in (1, True, 1.0, 1, True, 0.0, -0.0, 0.0, False):
        assert_encodes_as_wire(_evaluation(_flag("a", thresholds=(("on", value),))))


def test_changed_rule_text_is_not_served_from_the_cache() -> None:
    assert_encodes_as_wire(_evaluation(_flag("a", title="Old title")))
    evaluation = _evaluation(_flag("a", title="New title"))

    assert_encodes_as_wire(evaluation)
    assert pb.EvaluateResponse.FromString(encode_evaluation(evaluation)).flags[0].title == "New title"


def test_unicode_text() -> None:
    evaluation = _evaluation(
        _flag(
            "a",
            title="Inquiétude répétée",
            explanation="Ćhild seen 0 times — 3 concerns ✔ in 12 months 👶; «fin»",
            escalation="Responsable d'équipe",
            measured_values=(("déjà_vu", 2), ("label", "NÉG")),
        ),
        case_id="cas-é",
    )
    assert_encodes_as_wire(evaluation)


def test_evidence_shared_reordered_and_long() -> None:
    long_id = "x" * 128  # its element's length needs two varint bytes
    items = [EvidenceItem("concerns", f"c{i}", dt.date(2024, 1, 1) + dt.timedelta(days=i)) for i in range(25)]
    long_item = EvidenceItem("allocations", long_id, dt.date(2023, 5, 6))
    evaluation = _evaluation(
        _flag("a", evidence=(*items[:20], long_item), evidence_count=40),
        _flag("b", evidence=tuple(reversed(items[5:])), explanation="é" * 20_000),  # a 3-byte flag length
        _flag("c", evidence=(items[3], items[3], long_item)),  # repeats within a flag are kept
        _flag("d", evidence=()),
        shadow_flags=(_flag("s", evidence=(long_item, SHARED)),),
    )

    assert_encodes_as_wire(evaluation)
    flags = pb.EvaluateResponse.FromString(encode_evaluation(evaluation)).flags
    assert [e.fact_id for e in flags[2].evidence] == ["c3", "c3", long_id]


def test_evidence_dates_may_be_iso_text() -> None:
    as_dates = _evaluation(_flag("a"))
    # _make: the ISO text the date field may become is not its declared type yet.
    texts = tuple(EvidenceItem._make((i.fact_type, i.fact_id, i.date.isoformat())) for i in _flag("a").evidence)
    as_text = _evaluation(_flag("a", evidence=texts))

    assert encode_evaluation(as_text) == encode_evaluation(as_dates)
    assert_encodes_as_wire(as_dates)


def test_undetermined_resolved_and_contributing() -> None:
    resolved = (
        _record("gone", FlagState.RESOLVED, resolved_at=NOW, severity=Severity.HIGH),
        _record("unknown-end", FlagState.RESOLVED),
    )
    evaluation = _evaluation(
        _flag("composite", contributing_rule_ids=("a", "b")),
        undetermined=(UndeterminedRule("u", "U", ("gap", "flagged(a)")), UndeterminedRule("v", "V", ())),
        resolved=resolved,
    )
    assert_encodes_as_wire(evaluation)


def test_flags_are_ordered_as_wire_orders_them() -> None:
    evaluation = _evaluation(
        _flag("b", Severity.LOW), _flag("z", Severity.CRITICAL), _flag("a", Severity.LOW), _flag("m", Severity.INFO)
    )

    assert_encodes_as_wire(evaluation)
    assert encode_response(evaluation).flags == ("z", "a", "b", "m")


def test_encoded_response_carries_the_summary_and_serializes_like_a_message() -> None:
    evaluation = _evaluation(_flag("a"), _flag("b"), shadow_flags=(_flag("s"),), decision_id="dec-9")

    response = encode_response(evaluation)

    assert isinstance(response, EncodedEvaluateResponse)
    assert (response.case_id, response.ruleset, response.ruleset_version, response.decision_id) == (
        "case-1",
        "demo",
        "abc",
        "dec-9",
    )
    assert (len(response.flags), len(response.shadow_flags)) == (2, 1)
    assert response.data == encode_evaluation(evaluation)
    serialize: Callable[[Any], bytes] = lambda r: r.SerializeToString()  # noqa: E731 - a gRPC response_serializer
    assert serialize(response) == response.data
    assert pb.EvaluateResponse.FromString(serialize(responses.evaluation_to_proto(evaluation))) == response.to_message()


# -- varints -----------------------------------------------------------------------------------

BOUNDARIES = [0, 1, 127, 128, 300, 16383, 16384, 2**21 - 1, 2**21, 2**32 - 1, 2**32, 2**63 - 1]


@pytest.mark.parametrize("value", BOUNDARIES)
def test_varint_matches_protobuf(value: int) -> None:
    assert encode_varint(value) == encoder._VarintBytes(value)  # type: ignore[attr-defined]  # internal: a reference only


def test_varint_boundaries_by_hand() -> None:
    assert encode_varint(0) == b"\x00"
    assert encode_varint(127) == b"\x7f"
    assert encode_varint(128) == b"\x80\x01"
    assert encode_varint(16383) == b"\xff\x7f"
    assert encode_varint(16384) == b"\x80\x80\x01"
    assert encode_varint(2**32) == b"\x80\x80\x80\x80\x10"

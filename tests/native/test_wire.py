"""The compiled core writes each flag's response bytes, all but the stored lifecycle
(EncodedEvidence.wire); the differential test holds the items and pairs beside them to the Python
engine's, and the bytes to service/responses.py's own encoding of those, on every case it runs.
Here: the core's date text on every day a date can hold; whole responses written with the core's
bytes (lifecycles appended), byte for byte the responses written from the items and pairs alone,
and parsing equal to evaluation_to_proto; and the evidence read back as items."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.cli.common import load_engine
from rules_engine.engine.native import EncodedEvidence
from rules_engine.engine.results import EvidenceItem, ExplainedFlag
from rules_engine.service.core import encode_case
from rules_engine.service.requests import case_from_json
from rules_engine.service.responses import encode_evaluation, encode_evidence, evaluation_to_proto
from rules_engine.tools import synth
from tests.native.cases import RULESETS


def test_the_date_text_is_isoformat_on_every_day(core: Any) -> None:
    for ordinal in range(dt.date.min.toordinal(), dt.date.max.toordinal() + 1):
        assert core.iso_date(ordinal) == dt.date.fromordinal(ordinal).isoformat().encode(), ordinal


def test_the_date_text_table_gives_the_same_text_as_it_fills_and_replaces(core: Any) -> None:
    # twice over every day of 1900-2100, then days 8,192 apart (one entry of the table in turn)
    days = [*range(dt.date(1900, 1, 1).toordinal(), dt.date(2100, 1, 1).toordinal())] * 2
    days += [dt.date(2020, 1, 1).toordinal() + 8192 * k for k in range(-80, 80)] * 2
    for ordinal in days:
        assert core.date_text(ordinal) == core.iso_date(ordinal), ordinal


def test_responses_written_with_the_cores_evidence_are_the_same_bytes(core: Any) -> None:
    engine, _ = load_engine(RULESETS)
    case = case_from_json(synth.long_timeline_case())
    encoded = encode_case(case, synth.LONG_TIMELINE_END)
    written = lifecycles = 0
    for year in range(2008, synth.LONG_TIMELINE_END.year + 1):
        as_of = dt.datetime(year, 6, 30, tzinfo=dt.UTC)
        for ruleset in ("safeguarding", "starter"):
            evaluation = engine.evaluate(encoded, as_of, ruleset)
            flags = (*evaluation.flags, *evaluation.shadow_flags)
            assert all(type(f.evidence) is EncodedEvidence for f in flags), "the compiled core did not answer"
            assert all(type(f.measured_values) is tuple for f in flags)
            from_items = dataclasses.replace(
                evaluation, flags=_as_items(evaluation.flags), shadow_flags=_as_items(evaluation.shadow_flags)
            )
            data = encode_evaluation(evaluation)
            assert data == encode_evaluation(from_items)
            assert pb.EvaluateResponse.FromString(data) == evaluation_to_proto(evaluation)
            written += len(flags)
            lifecycles += sum(f.rule_id in evaluation.lifecycle for f in evaluation.flags)
    assert written > 20  # the timeline raises flags in most years
    assert lifecycles > 20  # and the store keeps their lifecycles, appended to the core's bytes


def _as_items(flags: tuple[ExplainedFlag, ...]) -> tuple[ExplainedFlag, ...]:
    """The flags as the Python engine gives them: items and pairs, no bytes written by the core."""
    return tuple(f._replace(evidence=tuple(f.evidence), measured_values=tuple(f.measured_values)) for f in flags)


def test_evidence_read_back_is_a_sequence_of_items_equal_to_the_tuple() -> None:
    items = (
        EvidenceItem("concerns", "c1", dt.date(2024, 2, 29)),
        EvidenceItem("visits", "", dt.date(1, 1, 1)),  # an empty id is left out of the bytes
    )
    evidence = EncodedEvidence(encode_evidence(items))
    assert evidence == items and items == evidence and evidence == list(items)
    assert evidence != items[:1] and evidence != "concerns"
    assert hash(evidence) == hash(items) and repr(evidence) == repr(items)
    assert len(evidence) == 2 and evidence[1] == items[1] and evidence[:1] == items[:1]
    assert [item.fact_id for item in evidence] == ["c1", ""]
    assert evidence == EncodedEvidence(encode_evidence(items))

"""The compiled core writes each flag's evidence as the response's bytes (Outcome.evidence_wire);
the differential test holds those bytes to service/responses.py's own encoding on every case it
runs. Here: the core's date text on every day a date can hold, and whole responses written with
the core's bytes, byte for byte the responses written from the evidence items alone."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from rules_engine.cli.common import load_engine
from rules_engine.service.core import encode_case
from rules_engine.service.requests import case_from_json
from rules_engine.service.responses import encode_evaluation
from rules_engine.tools import synth
from tests.native.cases import RULESETS


def test_the_date_text_is_isoformat_on_every_day(core: Any) -> None:
    for ordinal in range(dt.date.min.toordinal(), dt.date.max.toordinal() + 1):
        assert core.iso_date(ordinal) == dt.date.fromordinal(ordinal).isoformat().encode(), ordinal


def test_responses_written_with_the_cores_evidence_are_the_same_bytes(core: Any) -> None:
    engine, _ = load_engine(RULESETS)
    case = case_from_json(synth.long_timeline_case())
    encoded = encode_case(case, synth.LONG_TIMELINE_END)
    written = 0
    for year in range(2008, synth.LONG_TIMELINE_END.year + 1):
        as_of = dt.datetime(year, 6, 30, tzinfo=dt.UTC)
        for ruleset in ("safeguarding", "starter"):
            evaluation = engine.evaluate(encoded, as_of, ruleset)
            assert evaluation.evidence_wire is not None, "the compiled core did not answer"
            from_items = dataclasses.replace(evaluation, evidence_wire=None)
            assert encode_evaluation(evaluation) == encode_evaluation(from_items)
            written += len(evaluation.flags) + len(evaluation.shadow_flags)
    assert written > 20  # the timeline raises flags in most years

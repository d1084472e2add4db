"""The child's equality monitoring fields reach the compiled core as fields it skips: a case carrying
them is answered by the core (never declined for them), with the outcome the same case has without
them, and the Python path reads them into the child's record."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.service.requests import case_from_json, case_from_proto
from rules_engine.tools import synth

EQUALITY = {"ethnicity": "MWBC", "sex": "2", "disability": "YES", "deprivation_decile": 1}


def _with_child(message: case_pb2.Case, **fields: Any) -> case_pb2.Case:
    copy = case_pb2.Case()
    copy.CopyFrom(message)
    for name, value in fields.items():
        setattr(copy.child, name, value)
    return copy


@pytest.mark.parametrize("seed", [7, 8])
def test_the_core_skips_the_equality_fields_and_answers_as_without_them(
    core: Any, durable: dict[str, PreparedRuleset], seed: int
) -> None:
    plain = case_from_json(synth.long_timeline_case(seed))
    monitored = _with_child(plain, **EQUALITY)
    assert monitored.child.birth_date  # the birth date, which rules read, is still there
    latest = synth.LONG_TIMELINE_END + dt.timedelta(days=365)
    for name, prepared in durable.items():
        for year in (2012, 2018, 2023):
            day = dt.date(year, 6, 30)
            with_fields = prepared.evaluate_encoded(monitored.SerializeToString(deterministic=True), day, latest)
            without = prepared.evaluate_encoded(plain.SerializeToString(deterministic=True), day, latest)
            assert with_fields is not None, f"{name}: the core declined a case for its equality fields"
            assert without is not None
            assert with_fields.flags == without.flags and with_fields.measures == without.measures
            python = prepared.evaluate(case_from_proto(monitored, latest), day)
            assert python.flags == with_fields.flags


def test_each_field_alone_and_every_code_is_skipped(core: Any, durable: dict[str, PreparedRuleset]) -> None:
    plain = case_from_json(synth.long_timeline_case(7))
    latest = synth.LONG_TIMELINE_END + dt.timedelta(days=365)
    prepared = durable["safeguarding"]
    values: list[tuple[str, Any]] = [("ethnicity", c) for c in ("WBRI", "NOBT", "REFU")]
    values += [("sex", c) for c in ("0", "1", "2", "9")]
    values += [("disability", c) for c in ("YES", "NO", "NOT_KNOWN")]
    values += [("deprivation_decile", d) for d in (1, 5, 10)]
    for name, value in values:
        data = _with_child(plain, **{name: value}).SerializeToString(deterministic=True)
        assert prepared.evaluate_encoded(data, dt.date(2020, 1, 1), latest) is not None, (name, value)


def test_the_python_path_reads_them_into_the_childs_record() -> None:
    message = _with_child(case_from_json(synth.long_timeline_case(7)), **EQUALITY)
    child = case_from_proto(message, synth.LONG_TIMELINE_END).child
    assert (child.ethnicity, child.sex, child.disability, child.deprivation_decile) == ("MWBC", "2", "YES", 1)

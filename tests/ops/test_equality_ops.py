"""Equality monitoring in operation (a real gRPC server over Redis): the characteristics reach neither the
logs nor the metrics, which carry totals only, and GetEqualityReport answers from Redis's counters."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.logs import JsonFormatter
from tests.ops.conftest import Served
from tests.ops.helpers import fetch, flagged_case, parse, request

CODES = ("MWBC", "BAFR", "deprivation", "ethnicity", "disability")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _case(case_id: str, ethnicity: str) -> pb.EvaluateRequest:
    case = flagged_case(case_id)
    case.child.ethnicity, case.child.sex, case.child.disability = ethnicity, "2", "YES"
    case.child.deprivation_decile = 1
    return request(case)


def test_characteristics_stay_out_of_logs_and_metrics_and_the_report_reads_redis(
    served: Served, log_lines: io.StringIO
) -> None:
    before = _totals(served)
    for i in range(12):
        served.stub.Evaluate(_case(f"eq-ops-{i}", "MWBC" if i % 2 else "BAFR"), timeout=10)
    served.stub.Evaluate(_case("eq-ops-0", "BAFR"), timeout=10)  # again: counted once
    bad = _case("eq-ops-bad", "MWBC")
    bad.case.child.ethnicity = "MWBC-but-not-a-code"
    with pytest.raises(Exception, match="INVALID_ARGUMENT"):
        served.stub.Evaluate(bad, timeout=10)
    report = served.stub.GetEqualityReport(pb.GetEqualityReportRequest(ruleset="starter"), timeout=10)
    after = _totals(served)

    text = log_lines.getvalue()
    assert text  # the calls were logged ...
    for line in text.splitlines():
        record = json.loads(line)
        for code in CODES:  # ... and no characteristic, code or field name, went with them
            assert code not in json.dumps(record), record
    exposition = fetch(served.metrics_url)
    for code in CODES:
        assert code not in exposition
    assert after["evaluated"] - before["evaluated"] == 12
    assert after["flagged"] - before["flagged"] == 12

    (version,) = report.versions
    assert version.ruleset == "starter" and version.version == served.version
    (whole,) = [b.whole for b in version.rules[0].breakdowns if b.characteristic == "sex"]
    assert version.rules[0].rule_id == "*" and whole.evaluated == 12
    # 6 and 6: each group under 10 is withheld, and the whole is not enough to work either out.
    (ethnicity,) = [b for b in version.rules[0].breakdowns if b.characteristic == "ethnicity"]
    assert ethnicity.whole.evaluated == 12 and not any(g.HasField("evaluated") for g in ethnicity.groups)


def _totals(served: Served) -> dict[str, float]:
    _, samples = parse(fetch(served.metrics_url))
    totals = {"evaluated": 0.0, "flagged": 0.0}
    for (name, labels), value in samples.items():
        if name == "rules_engine_equality_cases_total":
            assert {k for k, _ in labels} == {"outcome"}
            totals[dict(labels)["outcome"]] = value
    return totals

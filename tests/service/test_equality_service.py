"""Equality monitoring through the service core: every Evaluate counted (stateless, stored history,
batches, the compiled core answering or not), acknowledgements counted, GetEqualityReport's
threshold, refusals and suppressed cells left unset, and bad equality codes refused on every path."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.errors import CaseError, RulesetNotFoundError
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.service.core import ServicerCore, encode_case

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)


class Call:
    def seconds_left(self) -> float | None:
        return None


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    registry = Registry(ROOT / "rulesets", compile_ruleset)
    registry.reload()
    yield registry
    registry.close()


@pytest.fixture
def core(registry: Registry) -> ServicerCore:
    return ServicerCore(Engine(registry, clock=lambda: AS_OF), clock=lambda: AS_OF)


def _request(case_id: str, **child: Any) -> pb.EvaluateRequest:
    request = requests.request_from_json(json.loads((ROOT / "examples" / "evaluate-request.json").read_text()))
    request.case.case_id = case_id
    request.as_of = "2025-06-30"  # the example names the starter ruleset
    for name, value in child.items():
        setattr(request.case.child, name, value)
    return request


def _report(core: ServicerCore, **fields: Any) -> pb.GetEqualityReportResponse:
    return core.get_equality_report(pb.GetEqualityReportRequest(**fields), Call())


def _row(response: pb.GetEqualityReportResponse, rule_id: str, characteristic: str, group: str) -> pb.EqualityGroupRow:
    (version,) = [v for v in response.versions if v.ruleset == "starter"]
    (rule,) = [r for r in version.rules if r.rule_id == rule_id]
    (breakdown,) = [b for b in rule.breakdowns if b.characteristic == characteristic]
    if group == "*":
        return breakdown.whole
    (row,) = [g for g in breakdown.groups if g.group == group]
    return row


def test_evaluations_are_counted_and_reported_with_small_cells_left_unset(core: ServicerCore) -> None:
    for i in range(14):
        core.evaluate(_request(f"w-{i}", ethnicity="WBRI", sex="1", disability="NO", deprivation_decile=3), Call())
    for i in range(11):
        core.evaluate(_request(f"b-{i}", ethnicity="BAFR", sex="2", disability="YES", deprivation_decile=3), Call())
    core.evaluate(_request("b-0", ethnicity="BAFR", sex="2"), Call())  # again: the same case, counted once
    core.evaluate(_request("n-1"), Call())  # nothing recorded: one case, a small group
    response = _report(core)
    assert response.threshold == 10 and response.lifecycle
    whole = _row(response, "*", "ethnicity", "*")
    assert whole.evaluated == 26
    # The example raises flags for every case: "0 cases not flagged" is a small number, so flagged is withheld.
    assert not whole.HasField("flagged") and not whole.flag.HasField("rate")
    assert _row(response, "*", "ethnicity", "WBRI").evaluated == 14
    # One case not recorded: withheld, and so is the next smallest group, whose count would give it away.
    assert not _row(response, "*", "ethnicity", "not recorded").HasField("evaluated")
    assert not _row(response, "*", "ethnicity", "BAFR").HasField("evaluated")
    assert _row(response, "*", "deprivation_decile", "3").HasField("evaluated") is False  # 25 of 26: 1 left over
    row = _row(response, "*", "sex", "1")
    assert row.evaluated == 14 and row.flag.denominator == 14 and not row.flag.HasField("numerator")


def test_acknowledgements_and_stored_history_are_counted(core: ServicerCore) -> None:
    for i in range(12):
        request = _request(f"h-{i}", ethnicity="AIND", sex="2", disability="NOT_KNOWN", deprivation_decile=1)
        request.use_stored_history = True
        answer = pb.EvaluateResponse.FromString(core.evaluate(request, Call()).SerializeToString())
        rule_id = answer.flags[0].rule_id
        core.acknowledge_flag(
            pb.AcknowledgeFlagRequest(
                case_id=f"h-{i}", rule_id=rule_id, practitioner_id="p1", reason_code="REVIEWED", ruleset="starter"
            ),
            Call(),
        )
    response = _report(core, ruleset="starter")
    row = _row(response, "*", "ethnicity", "AIND")
    assert row.evaluated == 12
    assert not row.HasField("snoozed")  # 0: withheld, as every cell under 10
    # Every flagged case acknowledged, none snoozed: snoozed (0) is withheld, so acknowledged is too.
    assert not row.HasField("acknowledged")
    counts = core._service.store.equality_counts()  # type: ignore[attr-defined]
    assert sum(n for k, n in counts.items() if k[2:] == ("*", "ethnicity", "AIND", "acknowledged")) == 12


def test_a_batch_is_counted_case_by_case(core: ServicerCore) -> None:
    batch = pb.EvaluateBatchRequest(
        cases=[_request(f"batch-{i}", ethnicity="CHNE").case for i in range(10)], as_of="2025-06-30", ruleset="starter"
    )
    assert len(list(core.evaluate_batch(batch, Call()))) == 10
    assert _row(_report(core), "*", "ethnicity", "CHNE").evaluated == 10


def test_the_threshold_can_rise_never_fall(core: ServicerCore) -> None:
    for i in range(12):
        core.evaluate(_request(f"t-{i}", ethnicity="WBRI"), Call())
    assert _row(_report(core, threshold=10), "*", "ethnicity", "WBRI").evaluated == 12
    assert not _row(_report(core, threshold=20), "*", "ethnicity", "WBRI").HasField("evaluated")
    assert _report(core, threshold=20).threshold == 20
    with pytest.raises(CaseError, match="threshold: must be at least 10"):
        _report(core, threshold=9)
    with pytest.raises(CaseError):
        _report(core, threshold=-1)


def test_an_unknown_ruleset_is_not_found(core: ServicerCore) -> None:
    with pytest.raises(RulesetNotFoundError):
        _report(core, ruleset="no-such-ruleset")
    assert _report(core, ruleset="safeguarding").versions == []  # loaded, nothing counted yet


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("ethnicity", "WHITE", "case.child.ethnicity"),
        ("sex", "M", "case.child.sex"),
        ("disability", "yes", "case.child.disability"),
        ("deprivation_decile", 11, "case.child.deprivation_decile"),
        ("deprivation_decile", 0, "case.child.deprivation_decile"),
    ],
)
def test_a_bad_equality_code_is_refused_though_the_compiled_core_skips_it(
    core: ServicerCore, field: str, value: Any, path: str
) -> None:
    request = _request("bad", **{field: value})
    with pytest.raises(CaseError) as info:
        encode_case(request.case, AS_OF.date())
    assert [v.field for v in info.value.violations] == [path]
    with pytest.raises(CaseError):
        core.evaluate(request, Call())
    stored = _request("bad-stored", **{field: value})
    stored.use_stored_history = True
    with pytest.raises(CaseError):
        core.evaluate(stored, Call())


def test_groups_read_from_the_message_are_the_records_groups() -> None:
    from rules_engine.case.equality import groups

    request = _request("g", ethnicity="MWAS", sex="9", deprivation_decile=10)
    record = requests.case_from_proto(request.case, AS_OF.date())
    assert requests.equality_groups(request.case.child) == groups(record.child) == ("MWAS", "9", "not recorded", "10")
    assert encode_case(request.case, AS_OF.date()).groups == groups(record.child)

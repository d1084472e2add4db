"""/metrics of a running server: promtool accepts it and every metric counts what was sent."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from tests.ops.conftest import Served
from tests.ops.helpers import fetch, flagged_case, parse, promtool_check, request, value

FAMILIES = {
    "rules_engine_evaluations",
    "rules_engine_evaluation_seconds",
    "rules_engine_flags",
    "rules_engine_shadow_flags",
    "rules_engine_engine_fallbacks",
    "rules_engine_ruleset_info",
    "rules_engine_ruleset_reloads",
    "rules_engine_ruleset_last_reload_success_timestamp_seconds",
    "rules_engine_store_operation_seconds",
    "rules_engine_store_errors",
    "rules_engine_grpc_requests",
    "rules_engine_grpc_request_seconds",
}


def test_metrics_count_what_was_sent(served: Served, tmp_path: Path) -> None:
    started = time.time()
    _, before = parse(fetch(served.metrics_url))

    first = served.stub.Evaluate(request(flagged_case("case-ops-1")), timeout=10)
    again = served.stub.Evaluate(request(flagged_case("case-ops-1")), timeout=10)
    quiet = served.stub.Evaluate(request(flagged_case("case-ops-2")), timeout=10)
    bad = flagged_case("case-ops-3")
    bad.concerns[0].date = "not a date"
    with pytest.raises(grpc.RpcError) as caught:
        served.stub.Evaluate(request(bad), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"cumulative-concerns", "worker-churn"} <= {f.rule_id for f in first.flags}
    assert [f.rule_id for f in first.shadow_flags] == ["infant-with-concerns"]
    assert len(again.flags) == len(first.flags) == len(quiet.flags)

    text = fetch(served.metrics_url)
    assert promtool_check(text, tmp_path) == ""
    families, after = parse(text)
    assert families >= FAMILIES

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    starter = {"ruleset": "starter"}
    assert delta("rules_engine_evaluations_total", **starter, outcome="ok") == 3
    assert delta("rules_engine_evaluations_total", **starter, outcome="invalid") == 1
    assert delta("rules_engine_evaluations_total", **starter, outcome="error") == 0
    assert delta("rules_engine_evaluation_seconds_count", **starter) == 3
    assert value(after, "rules_engine_evaluation_seconds_sum", **starter) > 0

    evaluate = {"service": "rules_engine.v1.RulesEngineService", "method": "Evaluate"}
    assert delta("rules_engine_grpc_requests_total", **evaluate, code="OK") == 3
    assert delta("rules_engine_grpc_requests_total", **evaluate, code="INVALID_ARGUMENT") == 1
    assert delta("rules_engine_grpc_request_seconds_count", **evaluate) == 4

    # case-ops-1 twice (new, then ongoing) and case-ops-2 once (new): lifecycle from the Redis store.
    churn = {**starter, "rule": "worker-churn", "severity": "medium"}
    assert delta("rules_engine_flags_total", **churn, state="new") == 2
    assert delta("rules_engine_flags_total", **churn, state="ongoing") == 1
    assert delta("rules_engine_flags_total", **churn, state="stateless") == 0
    flags_sent = len(first.flags) + len(again.flags) + len(quiet.flags)
    assert delta("rules_engine_flags_total", **starter) == flags_sent
    assert delta("rules_engine_shadow_flags_total", **starter, rule="infant-with-concerns") == 3
    # Present, and not moved by these calls (other tests in this process may count fallbacks of
    # their own starter rulesets: the registry is the process's).
    assert ("rules_engine_engine_fallbacks_total", frozenset(starter.items())) in after
    assert delta("rules_engine_engine_fallbacks_total", **starter) == 0

    assert value(after, "rules_engine_ruleset_info", ruleset="starter", version=served.version) == 1
    assert delta("rules_engine_ruleset_reloads_total", **starter, result="loaded") == 0
    assert value(after, "rules_engine_ruleset_reloads_total", **starter, result="loaded") >= 1
    reloaded = value(after, "rules_engine_ruleset_last_reload_success_timestamp_seconds", **starter)
    assert started - 120 < reloaded <= time.time()

    # One round trip per stateless evaluation: the decision and the flags' lifecycle.
    assert delta("rules_engine_store_operation_seconds_count", operation="record_evaluation") == 3
    assert delta("rules_engine_store_errors_total") == 0


def test_unknown_ruleset_names_never_become_labels(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        served.stub.Evaluate(request(flagged_case("case-ops-4"), ruleset="no-such-ruleset-xyz"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    text = fetch(served.metrics_url)
    assert "no-such-ruleset-xyz" not in text
    _, samples = parse(text)
    assert value(samples, "rules_engine_evaluations_total", ruleset="unknown", outcome="invalid") >= 1
    assert value(samples, "rules_engine_grpc_requests_total", method="Evaluate", code="NOT_FOUND") >= 1


def test_batch_counts_each_case_and_the_stream_status(served: Served) -> None:
    from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb

    _, before = parse(fetch(served.metrics_url))
    bad = flagged_case("case-ops-6")
    bad.concerns[0].agency = "NOT_AN_AGENCY"
    batch = pb.EvaluateBatchRequest(cases=[flagged_case("case-ops-5"), bad], as_of="2025-06-30", ruleset="starter")
    answers = list(served.stub.EvaluateBatch(batch, timeout=10))
    assert [a.WhichOneof("result") for a in answers] == ["evaluation", "error"]

    _, after = parse(fetch(served.metrics_url))

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("rules_engine_evaluations_total", ruleset="starter", outcome="ok") == 1
    assert delta("rules_engine_evaluations_total", ruleset="starter", outcome="invalid") == 1
    assert delta("rules_engine_grpc_requests_total", method="EvaluateBatch", code="OK") == 1

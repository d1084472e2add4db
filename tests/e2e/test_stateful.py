"""Stored case history end to end: a real server with the real engine, over the memory store and a real Redis."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.store import CaseStore, MemoryStore, StoreSettings
from rules_engine.store.redis import RedisStore
from tests.e2e.harness import RunningServer
from tests.redis_server import RedisServer, free_port
from tests.serve_process import wait_serving

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.datetime.now(dt.UTC).date()
AS_OF = TODAY.isoformat()
RULE = "many-concerns"

_RULESET = """
ruleset: {name: demo, description: Stateful end-to-end tests.}
parameters: {concerns_threshold: 3}
measures:
  - {name: concerns_12m, description: Concerns in 12 months, kind: count, facts: concerns, window: 12 months}
"""
_RULES = """
rules:
  - id: many-concerns
    title: Three or more concerns in 12 months
    condition: concerns_12m >= concerns_threshold
    severity: medium
    escalation: Team manager
    explanation: "{concerns_12m} concerns in 12 months."
    source: {kind: local, reference: "Test policy"}
"""


@pytest.fixture(scope="module")
def rulesets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rulesets")
    (root / "demo").mkdir()
    (root / "demo" / "ruleset.yaml").write_text(_RULESET)
    (root / "demo" / "rules.yaml").write_text(_RULES)
    return root


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent=False)
    server.start()
    yield server
    server.stop()


_prefixes = itertools.count()


@pytest.fixture(params=["memory", "redis"])
def case_store(request: pytest.FixtureRequest) -> Iterator[CaseStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    store = RedisStore(server.url, StoreSettings(key_prefix=f"e2e{next(_prefixes)}:"))
    yield store
    store.close()


@pytest.fixture
def stub(
    start_server: Callable[..., RunningServer], rulesets: Path, case_store: CaseStore
) -> Iterator[pb_grpc.RulesEngineServiceStub]:
    registry = Registry(rulesets, compile_ruleset)
    registry.reload()
    yield start_server(Engine(registry, store=case_store)).stub
    registry.close()


def _days_ago(days: int) -> str:
    return (TODAY - dt.timedelta(days=days)).isoformat()


def _case(*concern_ids: str, case_id: str = "case-1", days_ago: int = 10, agency: str = "POLICE") -> case_pb2.Case:
    case = case_pb2.Case(case_id=case_id)
    for fact_id in concern_ids:
        case.concerns.add(id=fact_id, date=_days_ago(days_ago), agency=agency, category="NEGLECT")
    return case


def _stored(
    stub: pb_grpc.RulesEngineServiceStub, case: case_pb2.Case, as_of: str = AS_OF, **extra: object
) -> pb.EvaluateResponse:
    request = pb.EvaluateRequest(case=case, as_of=as_of, use_stored_history=True, **extra)  # type: ignore[arg-type]
    response: pb.EvaluateResponse = stub.Evaluate(request, timeout=10)
    return response


def _measured(response: pb.EvaluateResponse) -> float | None:
    for flag in response.flags:
        for value in flag.measured_values:
            return value.number
    return None


def _states(response: pb.EvaluateResponse) -> list[tuple[str, str]]:
    return [(f.rule_id, pb.FlagState.Name(f.state)) for f in response.flags]


# -- stored history ---------------------------------------------------------------------------


def test_facts_sent_in_two_calls_are_merged_and_counted_together(stub: pb_grpc.RulesEngineServiceStub) -> None:
    assert list(_stored(stub, _case("c1", "c2")).flags) == []

    response = _stored(stub, _case("c3"))

    assert _states(response) == [(RULE, "FLAG_STATE_NEW")]
    assert _measured(response) == 3.0
    assert sorted(e.fact_id for e in response.flags[0].evidence) == ["c1", "c2", "c3"]
    assert response.flags[0].first_raised.startswith(AS_OF)


def test_the_same_fact_twice_is_stored_once(stub: pb_grpc.RulesEngineServiceStub) -> None:
    _stored(stub, _case("c1", "c2"))
    assert list(_stored(stub, _case("c1")).flags) == []  # still two, not three

    recorded = stub.RecordFacts(pb.RecordFactsRequest(case=_case("c2")), timeout=10)

    assert recorded.stored_fact_count == 2


def test_a_corrected_fact_replaces_the_old_one(stub: pb_grpc.RulesEngineServiceStub) -> None:
    assert _states(_stored(stub, _case("c1", "c2", "c3"))) == [(RULE, "FLAG_STATE_NEW")]

    # c3 was entered with the wrong year: corrected, it falls outside the 12 months.
    response = _stored(stub, _case("c3", days_ago=800))

    assert list(response.flags) == []
    assert [r.rule_id for r in response.resolved] == [RULE]
    chronology = stub.GetChronology(pb.GetChronologyRequest(case_id="case-1"), timeout=10)
    assert [(e.fact_id, e.date) for e in chronology.entries if e.fact_id == "c3"] == [("c3", _days_ago(800))]


def test_a_withdrawn_fact_is_removed(stub: pb_grpc.RulesEngineServiceStub) -> None:
    _stored(stub, _case("c1", "c2", "c3"))

    response = _stored(stub, _case(), withdrawn=[pb.FactRef(fact_type="concerns", fact_id="c2")])

    assert list(response.flags) == []
    chronology = stub.GetChronology(pb.GetChronologyRequest(case_id="case-1"), timeout=10)
    assert [e.fact_id for e in chronology.entries if e.kind == pb.CHRONOLOGY_ENTRY_KIND_FACT] == ["c1", "c3"]


def test_a_bad_withdrawal_is_invalid(stub: pb_grpc.RulesEngineServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _stored(stub, _case("c1"), withdrawn=[pb.FactRef(fact_type="gossip", fact_id="c2")])

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "withdrawn[0].fact_type" in (caught.value.details() or "")


def test_flag_is_new_then_ongoing_then_resolved(stub: pb_grpc.RulesEngineServiceStub) -> None:
    first = _stored(stub, _case("c1", "c2", "c3"))
    second = _stored(stub, _case("c4"))
    gone = _stored(stub, _case(), withdrawn=[pb.FactRef(fact_type="concerns", fact_id=i) for i in ("c1", "c2")])
    back = _stored(stub, _case("c5"))

    assert _states(first) == [(RULE, "FLAG_STATE_NEW")]
    assert _states(second) == [(RULE, "FLAG_STATE_ONGOING")]
    assert second.flags[0].first_raised == first.flags[0].first_raised
    assert list(gone.flags) == []
    assert [(r.rule_id, r.severity) for r in gone.resolved] == [(RULE, pb.SEVERITY_MEDIUM)]
    assert _states(back) == [(RULE, "FLAG_STATE_NEW")]  # a new episode


# -- acknowledgement and snooze ---------------------------------------------------------------


def _acknowledge(stub: pb_grpc.RulesEngineServiceStub, **fields: str) -> pb.AcknowledgeFlagResponse:
    values = {"case_id": "case-1", "rule_id": RULE, "practitioner_id": "sw-17", "reason_code": "PLAN_IN_PLACE"}
    request = pb.AcknowledgeFlagRequest(**{**values, **fields})
    response: pb.AcknowledgeFlagResponse = stub.AcknowledgeFlag(request, timeout=10)
    return response


def test_acknowledged_flag_stays_acknowledged(stub: pb_grpc.RulesEngineServiceStub) -> None:
    _stored(stub, _case("c1", "c2", "c3"))

    flag = _acknowledge(stub).flag

    assert (flag.state, flag.ruleset, flag.acknowledgement.practitioner_id) == (
        pb.FLAG_STATE_ACKNOWLEDGED,
        "demo",
        "sw-17",
    )
    assert _states(_stored(stub, _case("c4"))) == [(RULE, "FLAG_STATE_ACKNOWLEDGED")]


def test_snoozed_flag_is_not_new_again_until_the_snooze_ends(stub: pb_grpc.RulesEngineServiceStub) -> None:
    _stored(stub, _case("c1", "c2", "c3"))
    until = (TODAY + dt.timedelta(days=14)).isoformat()

    assert _acknowledge(stub, snooze_until=until).flag.state == pb.FLAG_STATE_SNOOZED
    during = _stored(stub, _case("c4"))
    later = _stored(stub, _case(), as_of=(TODAY + dt.timedelta(days=7)).isoformat())
    ended = _stored(stub, _case(), as_of=until)

    assert _states(during) == [(RULE, "FLAG_STATE_SNOOZED")]
    assert during.flags[0].snooze_until == until
    assert _states(later) == [(RULE, "FLAG_STATE_SNOOZED")]
    assert _states(ended) == [(RULE, "FLAG_STATE_NEW")]
    assert ended.flags[0].snooze_until == ""


def test_acknowledge_maps_its_errors(stub: pb_grpc.RulesEngineServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as not_raised:
        _acknowledge(stub)
    _stored(stub, _case("c1", "c2", "c3"))
    with pytest.raises(grpc.RpcError) as free_text:
        _acknowledge(stub, reason_code="spoke to mum, fine")
    with pytest.raises(grpc.RpcError) as past:
        _acknowledge(stub, snooze_until=TODAY.isoformat())
    with pytest.raises(grpc.RpcError) as bad_date:
        _acknowledge(stub, snooze_until="next week")

    assert not_raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert free_text.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert past.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_date.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- chronology and decision log --------------------------------------------------------------


def test_chronology_is_oldest_first_across_agencies_with_flags_interleaved(
    stub: pb_grpc.RulesEngineServiceStub,
) -> None:
    case = _case("p1", days_ago=30)
    case.concerns.add(id="h1", date=_days_ago(20), agency="HEALTH", category="NEGLECT")
    case.concerns.add(id="s1", date=_days_ago(5), agency="EDUCATION", category="NEGLECT")
    case.referrals.add(id="r1", date=_days_ago(25), source="5A")
    _stored(stub, case, as_of=_days_ago(5))
    _stored(stub, _case("s2", days_ago=2, agency="EDUCATION"))

    chronology = stub.GetChronology(pb.GetChronologyRequest(case_id="case-1"), timeout=10)

    assert [(e.date, e.fact_type, e.fact_id, e.code) for e in chronology.entries] == [
        (_days_ago(30), "concerns", "p1", "POLICE"),
        (_days_ago(25), "referrals", "r1", "5A"),
        (_days_ago(20), "concerns", "h1", "HEALTH"),
        (_days_ago(5), "concerns", "s1", "EDUCATION"),
        (_days_ago(5), "flag", RULE, "MEDIUM"),  # raised on what was known that day
        (_days_ago(2), "concerns", "s2", "EDUCATION"),
    ]
    assert chronology.entries[4].kind == pb.CHRONOLOGY_ENTRY_KIND_FLAG_RAISED
    assert chronology.entries[4].ruleset == "demo"


def test_decisions_are_listed_without_names_or_free_text(stub: pb_grpc.RulesEngineServiceStub) -> None:
    first = _stored(stub, _case("c1", "c2", "c3"))
    stateless = stub.Evaluate(pb.EvaluateRequest(case=_case("c1", "c2", "c3", "c4"), as_of=AS_OF), timeout=10)
    stub.Evaluate(pb.EvaluateRequest(case=_case("c9", case_id="case-2"), as_of=AS_OF), timeout=10)

    listed = stub.ListDecisions(pb.ListDecisionsRequest(case_id="case-1"), timeout=10).decisions
    everything = stub.ListDecisions(pb.ListDecisionsRequest(limit=2), timeout=10).decisions

    assert [d.decision_id for d in listed] == [stateless.decision_id, first.decision_id]
    assert [(f.rule_id, f.state) for f in listed[1].flags] == [(RULE, pb.FLAG_STATE_NEW)]
    assert [(f.rule_id, f.state) for f in listed[0].flags] == [(RULE, pb.FLAG_STATE_ONGOING)]
    assert (listed[0].ruleset, len(listed[0].input_digest)) == ("demo", 64)
    assert [d.case_id for d in everything] == ["case-2", "case-1"]
    text = str(listed)
    for secret in ("Three or more", "Team manager", "NEGLECT", "POLICE", '"c1"', "concerns in 12 months"):
        assert secret not in text


def test_stateless_evaluate_reports_states_but_stores_no_facts(stub: pb_grpc.RulesEngineServiceStub) -> None:
    request = pb.EvaluateRequest(case=_case("c1", "c2", "c3"), as_of=AS_OF)

    first, second = stub.Evaluate(request, timeout=10), stub.Evaluate(request, timeout=10)

    assert (_states(first), _states(second)) == ([(RULE, "FLAG_STATE_NEW")], [(RULE, "FLAG_STATE_ONGOING")])
    assert stub.RecordFacts(pb.RecordFactsRequest(case=_case()), timeout=10).stored_fact_count == 0


# -- two server processes over one Redis ------------------------------------------------------


def _serve(rulesets: Path, redis_url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "rules_engine", "serve", "--plaintext", "--rulesets", str(rulesets)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0", "--redis-url", redis_url]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, port


@pytest.mark.slow
def test_two_processes_store_each_fact_once_and_report_each_flag_new_once(
    rulesets: Path, redis_server: RedisServer
) -> None:
    servers = [_serve(rulesets, redis_server.url) for _ in range(2)]
    channels: list[grpc.Channel] = []
    try:
        for process, port in servers:
            wait_serving(f"127.0.0.1:{port}", process)
        channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _, port in servers]
        stubs = [pb_grpc.RulesEngineServiceStub(channel) for channel in channels]
        cases = [f"concurrent-{i}" for i in range(4)]
        pool_ids = [f"c{i}" for i in range(12)]
        rng = random.Random(5)
        # Each call sends 1-3 facts from one overlapping pool: the flag needs facts from several calls.
        calls = [(rng.choice(cases), rng.sample(pool_ids, rng.randint(1, 3))) for _ in range(240)]

        aborted = Counter[str]()

        def call(index: int) -> tuple[str, list[str], pb.EvaluateResponse]:
            case_id, ids = calls[index]
            while True:  # ABORTED (the case kept changing) is the documented cue to retry
                try:
                    return case_id, ids, _stored(stubs[index % 2], _case(*ids, case_id=case_id))
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.ABORTED or aborted[case_id] >= 20:
                        raise
                    aborted[case_id] += 1

        with futures.ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(call, range(len(calls))))

        sent: dict[str, set[str]] = {c: set() for c in cases}
        new_reports: Counter[str] = Counter()
        for case_id, ids, response in results:
            sent[case_id].update(ids)
            new_reports[case_id] += sum(f.state == pb.FLAG_STATE_NEW for f in response.flags)
            assert not response.resolved  # facts only grow: nothing may resolve, not even from a stale view
        for case_id in cases:
            chronology = stubs[0].GetChronology(pb.GetChronologyRequest(case_id=case_id), timeout=10)
            stored = [e.fact_id for e in chronology.entries if e.kind == pb.CHRONOLOGY_ENTRY_KIND_FACT]
            assert sorted(stored) == sorted(sent[case_id])  # every fact, each exactly once
            raised = [e for e in chronology.entries if e.kind == pb.CHRONOLOGY_ENTRY_KIND_FLAG_RAISED]
            assert len(raised) == (1 if len(sent[case_id]) >= 3 else 0)
            assert new_reports[case_id] == len(raised), case_id
        decisions = stubs[1].ListDecisions(pb.ListDecisionsRequest(limit=1000), timeout=10).decisions
        assert len(decisions) == len(calls)
    finally:
        for channel in channels:
            channel.close()
        for process, _ in servers:
            process.terminate()
        for process, _ in servers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- Redis stopping and starting mid-run -------------------------------------------------------


class _Writer(threading.Thread):
    """Stored-history calls, one new fact each, one after another, each with a 2 s deadline."""

    def __init__(self, stub: pb_grpc.RulesEngineServiceStub) -> None:
        super().__init__()
        self.stub = stub
        self.outcomes: list[tuple[str, grpc.StatusCode, float]] = []  # fact id, code, seconds
        self.stopping = threading.Event()

    def run(self) -> None:
        for i in itertools.count():
            if self.stopping.is_set():
                return
            started = time.monotonic()
            request = pb.EvaluateRequest(case=_case(f"f{i}", case_id="fault"), as_of=AS_OF, use_stored_history=True)
            try:
                self.stub.Evaluate(request, timeout=2)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
            self.outcomes.append((f"f{i}", code, time.monotonic() - started))
            time.sleep(0.01)

    def count(self, code: grpc.StatusCode) -> int:
        return sum(c == code for _, c, _ in self.outcomes)

    def wait_for(self, code: grpc.StatusCode, at_least: int, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while self.count(code) < at_least:
            assert time.monotonic() < deadline, f"fewer than {at_least} {code.name} in {seconds} s"
            time.sleep(0.02)


@pytest.mark.slow
def test_calls_fail_fast_while_redis_is_down_and_no_acknowledged_write_is_lost(
    start_server: Callable[..., RunningServer], rulesets: Path, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path, persistent=True)  # AOF, fsync on every write
    redis.start()
    store = RedisStore(redis.url, socket_timeout=0.5, connect_timeout=0.5)
    registry = Registry(rulesets, compile_ruleset)
    registry.reload()
    stub = start_server(Engine(registry, store=store)).stub
    writer = _Writer(stub)
    writer.start()
    try:
        writer.wait_for(grpc.StatusCode.OK, 20)
        redis.kill()
        down_from = len(writer.outcomes)
        writer.wait_for(grpc.StatusCode.UNAVAILABLE, 10)
        stateless = stub.Evaluate(pb.EvaluateRequest(case=_case("a", "b", "c"), as_of=AS_OF), timeout=2)
        assert [f.rule_id for f in stateless.flags] == [RULE]  # the request's own facts still evaluate
        with pytest.raises(grpc.RpcError) as chronology_down:
            stub.GetChronology(pb.GetChronologyRequest(case_id="fault"), timeout=2)
        redis.start()  # same port, same directory: the AOF is replayed
        writer.wait_for(grpc.StatusCode.OK, writer.count(grpc.StatusCode.OK) + 20)
    finally:
        writer.stopping.set()
        writer.join()

    outcomes = writer.outcomes
    codes = Counter(code for _, code, _ in outcomes)
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
    assert max(seconds for _, _, seconds in outcomes) < 2.0  # none reached its deadline
    assert chronology_down.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "case store unavailable" in (chronology_down.value.details() or "")
    assert [code for _, code, _ in outcomes[down_from:]][-20:] == [grpc.StatusCode.OK] * 20  # no restart needed
    chronology = stub.GetChronology(pb.GetChronologyRequest(case_id="fault"), timeout=5)
    stored = {e.fact_id for e in chronology.entries if e.kind == pb.CHRONOLOGY_ENTRY_KIND_FACT}
    assert {fact_id for fact_id, code, _ in outcomes if code == grpc.StatusCode.OK} <= stored
    store.close()
    registry.close()
    redis.stop()


def test_decisions_cli_prints_json_lines(rulesets: Path, redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    registry = Registry(rulesets, compile_ruleset)
    registry.reload()
    case_id = f"cli-{time.monotonic_ns()}"
    engine = Engine(registry, store=store)
    from rules_engine.service import requests

    message = _case("c1", "c2", "c3", case_id=case_id)
    evaluation = engine.evaluate(requests.case_model_from_proto(message, TODAY))
    registry.close()
    store.close()

    result = subprocess.run(
        [sys.executable, "-m", "rules_engine", "decisions", "--case", case_id, "--redis-url", redis_server.url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    assert record["decisionId"] == evaluation.decision_id
    assert record["flags"] == [{"ruleId": RULE, "state": "FLAG_STATE_NEW", "severity": "SEVERITY_MEDIUM"}]


# -- forgetting a case ------------------------------------------------------------------------


def test_delete_case_forgets_the_case_and_is_idempotent(
    stub: pb_grpc.RulesEngineServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    _stored(stub, _case("c1", "c2", "c3"))
    _acknowledge(stub)
    _stored(stub, _case("x1", case_id="case-2"))
    logged = stub.ListDecisions(pb.ListDecisionsRequest(), timeout=10).decisions

    with caplog.at_level("INFO", logger="rules_engine"):
        deleted = stub.DeleteCase(pb.DeleteCaseRequest(case_id="case-1"), timeout=10)
    assert (deleted.case_id, deleted.deleted_facts, deleted.deleted_flags, deleted.deleted_decisions) == (
        "case-1",
        3,
        1,
        1,
    )
    [record] = [r for r in caplog.records if r.getMessage() == "case deleted"]
    assert (record.case_id, record.facts, record.flags, record.decisions) == ("case-1", 3, 1, 1)  # type: ignore[attr-defined]

    assert list(stub.GetChronology(pb.GetChronologyRequest(case_id="case-1"), timeout=10).entries) == []
    assert list(stub.ListDecisions(pb.ListDecisionsRequest(case_id="case-1"), timeout=10).decisions) == []
    # The decision log keeps its entries (ids and digests); the other case keeps everything.
    assert stub.ListDecisions(pb.ListDecisionsRequest(), timeout=10).decisions == logged
    assert len(stub.GetChronology(pb.GetChronologyRequest(case_id="case-2"), timeout=10).entries) == 1
    # The flag's history went with it: a new concern starts from nothing.
    assert list(_stored(stub, _case("c4")).flags) == []

    again = stub.DeleteCase(pb.DeleteCaseRequest(case_id="case-9"), timeout=10)
    assert (again.deleted_facts, again.deleted_flags, again.deleted_decisions) == (0, 0, 0)
    with pytest.raises(grpc.RpcError) as info:
        stub.DeleteCase(pb.DeleteCaseRequest(case_id=""), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

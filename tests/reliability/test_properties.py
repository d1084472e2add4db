"""Property-based edge testing of the whole request space through a real `serve` process (issue 14, point 1).

Hypothesis builds every request message of rules_engine.v1.RulesEngineService from the service's
descriptors, with valid shapes and extreme values in every field: dates at both ends of the
calendar, either side of the accepted bounds, around leap days and bank holidays; empty and
maximal lists (10,000 facts, 1,000 nested items, one over each); maximal strings (ids of 128,
text of 256 characters, one over each); every enum value and unknown numbers; ids drawn from a
small pool so that they collide across facts, cases and calls; facts that reference each other
wrongly (a referral's assessment_id, a concern's sibling, a review's plan_id naming nothing or
the wrong fact). The property: every answer is OK or a documented client error, never INTERNAL
or UNKNOWN; INVALID_ARGUMENT always carries BadRequest details whose field paths start with a
field of the request; a batch's per-case errors are INVALID_ARGUMENT. Afterwards the server is
still SERVING and its resident memory grew by less than a bound.

The bounded profile runs in `make test`. The long one:

    RULES_ENGINE_PROPERTY_EXAMPLES=100000 .venv/bin/pytest -s -p no:cacheprovider tests/reliability/test_properties.py

(`make fuzz-long`); its figures are in RELIABILITY.md.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.case import facts
from rules_engine.case.checks import MAX_LIST_ITEMS
from rules_engine.case.fields import fact_fields, sub_model
from rules_engine.config import MAX_FACTS
from rules_engine.server.limits import MAX_STRING_CHARS
from rules_engine.service.requests import case_from_json
from tests.redis_server import free_port
from tests.serve_process import serve

ROOT = Path(__file__).resolve().parents[2]
SERVICE = pb.DESCRIPTOR.services_by_name["RulesEngineService"]
EXAMPLES = int(os.environ.get("RULES_ENGINE_PROPERTY_EXAMPLES", "1500"))
# Resident memory may grow this much over the run: caches filling (dates, windows, the
# decision log's bounded in-memory stream, stored cases from the small id pool), not leaks.
LONG = EXAMPLES > 10_000
RSS_GROWTH_LIMIT_MIB = 40  # both profiles: the long one grew 18 MiB over 100,000 requests (RELIABILITY.md)
# The long profile's last quarter of rounds repeats the quarter before: every date, case id and
# window already seen, so each bounded cache and store is as full as that traffic makes it, and
# what RSS does then is the level a long-running worker settles at.
REPEATED_ROUNDS_GROWTH_LIMIT_MIB = 12
# Documented client errors (README, "The API"): INVALID_ARGUMENT with BadRequest, an unknown
# ruleset or a flag not raised (NOT_FOUND), limits (RESOURCE_EXHAUSTED), a case rewritten
# while it was evaluated (ABORTED, retry).
CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
}

# -- value pools: extremes and collisions -----------------------------------------------------

TODAY = dt.datetime.now(dt.UTC).date()
_EDGE_DATES = [
    "1900-01-01", "1900-01-02", "1900-02-28", "1900-03-01", "2199-12-31", "2199-12-30",
    "2000-02-29", "2024-02-29", "2023-02-28", "2024-03-01", "2100-02-28", "2196-02-29",
    # Bank holidays in England and Wales, substitute days and moved ones among them.
    "2025-12-25", "2025-12-26", "2021-12-27", "2021-12-28", "2020-05-08", "2025-04-18", "2025-04-21",
    "2025-08-25", "2022-06-03", "2022-09-19", "2023-05-08", "1999-12-31", "2000-01-01",
    TODAY.isoformat(), (TODAY + dt.timedelta(days=366)).isoformat(), (TODAY - dt.timedelta(days=1)).isoformat(),
]  # fmt: skip
# Outside the accepted dates, past the year ahead, or not dates (fullwidth digits among them).
_BAD_DATES = [
    "1899-12-31", "0001-01-01", "0001-12-31", "2200-01-01", "9999-12-31", "9998-12-31",
    (TODAY + dt.timedelta(days=367)).isoformat(), "", "2025-02-30", "2025-1-1", "20250101", "2023-02-29",
    "1900-02-29", "2025-13-01", "\uff11\uff19\uff19\uff19-01-01",
]  # fmt: skip
_AS_OF_TIMES = [
    "1900-01-01T00:00:00+14:00",
    "2199-12-31T23:59:59-12:00",
    "2024-02-29T12:00:00Z",
    "2025-06-30t10:00:00z",
]
_BAD_AS_OF = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2025-06-30T10:00:00", "2199-12-31T24:00:00Z"]
# A small pool, so ids collide: within a fact list, across fact types, with case ids, and with
# the ids one fact uses to name another (assessment_id, subject_child_id, plan_id).
ID_POOL = ["c1", "c2", "a1", "p1", "case-1", "case-2", "sib-1", "w1", "x" * 128]
_BAD_IDS = ["", "x" * 129, "a b", "é", "c1\n", "../c1", "a" * 300]
LONGEST = MAX_STRING_CHARS
_TEXT = ["", "x", "x" * LONGEST, "é", "free text"]
_BAD_TEXT = ["x" * (LONGEST + 1), "\x00"]
_RULESETS = ["starter", "safeguarding"]
_BAD_RULESETS = ["", "nope", "s" * LONGEST, "s" * (LONGEST + 1)]
_RULE_IDS = ["cumulative-concerns", "worker-churn", "referral-not-decided", "nope"]
_REASONS = ["REVIEWED", "PLAN_IN_PLACE", "A" * 64]
_BAD_REASONS = ["", "spoke to mum", "A" * 65, "reviewed"]
_INTEGERS = [0, 1, -1, 2, 100, 999, 1000, 1001, 2**31 - 1, -(2**31)]
_DOUBLES = [0.0, -0.0, 100.0, 50.5, 1e-5, 5e-324]
_BAD_DOUBLES = [100.0000001, -1e-300, float("nan"), float("inf")]


def _codes() -> dict[str, list[str]]:
    """Every code a field name takes in any fact model (agency, category, factor, ...)."""
    found: dict[str, set[str]] = {}

    def visit(model: type[BaseModel]) -> None:
        for name, field_type in fact_fields(model).items():
            if field_type.codes:
                found.setdefault(name, set()).update(field_type.codes)
        for name in model.model_fields:
            if name not in fact_fields(model):
                visit(sub_model(model, name))

    for model in (*facts.FACT_TYPES.values(), facts.Child):
        visit(model)
    return {name: sorted(codes) for name, codes in found.items()}


CODES = _codes()


def _pool(good: list[Any], bad: list[Any], hostile: bool) -> st.SearchStrategy[Any]:
    return st.sampled_from(good + bad if hostile else good)


def _dates(hostile: bool) -> st.SearchStrategy[str]:
    any_day = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2199, 12, 31)).map(dt.date.isoformat)
    return st.one_of(_pool(_EDGE_DATES, _BAD_DATES, hostile), any_day)


def _string(name: str, hostile: bool) -> st.SearchStrategy[str]:
    """Values for a text field, chosen by its name; `hostile` adds values the service must refuse."""
    if name == "as_of":
        return st.one_of(_dates(hostile), _pool(_AS_OF_TIMES, _BAD_AS_OF, hostile))
    if "date" in name or name.endswith("_on") or name == "snooze_until":
        return _dates(hostile)
    if name == "ruleset":
        return _pool(_RULESETS, _BAD_RULESETS, hostile)
    if name == "rule_id":
        return _pool(_RULE_IDS, _BAD_IDS, hostile)
    if name == "reason_code":
        return _pool(_REASONS, _BAD_REASONS, hostile)
    if name == "fact_type":
        return _pool(list(facts.FACT_TYPES), ["", "nope", "Concerns"], hostile)
    if name in CODES:
        return _pool(CODES[name], ["nope", "police", "X" * 257], hostile)
    if name == "id" or name.endswith("_id"):
        return _pool(ID_POOL, _BAD_IDS, hostile)
    return _pool(_TEXT, _BAD_TEXT, hostile)


def _repeated_strings(name: str, hostile: bool) -> st.SearchStrategy[list[str]]:
    item = _string(name if name in CODES else "id", hostile)
    # Maximal nested lists: exactly MAX_LIST_ITEMS items, and (hostile) one more.
    sizes = [MAX_LIST_ITEMS, MAX_LIST_ITEMS + 1] if hostile else [MAX_LIST_ITEMS]
    longest = st.sampled_from(sizes).flatmap(lambda n: item.map(lambda value: [value] * n))
    return st.one_of(st.lists(item, max_size=4), longest)


def _scalar(field: FieldDescriptor, hostile: bool) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        return _string(field.name, hostile)
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return _pool(known[1:], [0, max(known) + 1, -1, 2**31 - 1], hostile)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _pool(_DOUBLES, _BAD_DOUBLES, hostile)
    return st.sampled_from(_INTEGERS)


def message_values(descriptor: Descriptor, hostile: bool, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Field values for a message type; unset fields keep proto3 defaults (or stay unset when optional)."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            assert field.message_type is not None
            inner = message_values(field.message_type, hostile, depth + 1)
            if not field.is_repeated:
                fields[field.name] = inner
            else:
                fields[field.name] = st.lists(inner, max_size=3 if depth == 0 else 2)
        elif field.is_repeated:
            fields[field.name] = _repeated_strings(field.name, hostile)
        else:
            fields[field.name] = _scalar(field, hostile)
    return st.fixed_dictionaries({}, optional=fields)


def build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            container = getattr(message, name)
            if field.is_repeated:
                inner_cls = type(container.add())
                del container[:]
                container.extend(build(inner_cls, v) for v in value)
            else:
                container.CopyFrom(build(type(container), value))
        elif field.is_repeated:
            getattr(message, name).extend(value)
        else:
            setattr(message, name, value)
    return message


def _stretch(message: Message, size: str) -> None:
    """Grow a request's case (or its batch's first case) to the most facts allowed, or one more."""
    if size == "as generated":
        return
    cases = [message.case] if "case" in message.DESCRIPTOR.fields_by_name else list(getattr(message, "cases", []))
    if not cases:
        return
    case = cases[0]
    total = MAX_FACTS if size == "maximal" else MAX_FACTS + 1
    missing = total - sum(len(getattr(case, name)) for name in facts.FACT_TYPES)
    for i in range(max(0, missing)):
        case.visits.add(id=f"v{i}", date=_EDGE_DATES[i % len(_EDGE_DATES)], child_seen=i % 2 == 0)


def _batch_of(size: int) -> Any:
    # The most cases a batch may hold, and one more (RESOURCE_EXHAUSTED before any is evaluated).
    return pb.EvaluateBatchRequest(ruleset="starter", cases=[pb.EvaluateRequest().case] * size)


METHODS: list[MethodDescriptor] = list(SERVICE.methods)


@st.composite
def requests(draw: st.DrawFn) -> tuple[MethodDescriptor, Message]:
    """One call: any method of the service with a request built from its descriptor."""
    method = draw(st.sampled_from(METHODS))
    request_cls = type(getattr(pb, method.input_type.name)())
    if method.name == "EvaluateBatch" and draw(st.integers(0, 60)) == 0:
        return method, _batch_of(draw(st.sampled_from([1000, 1001])))
    # Half the requests hold only values the service should accept (at their extremes), so that
    # evaluation itself meets the edges; the other half may hold refused values anywhere.
    hostile = draw(st.booleans())
    message = build(request_cls, draw(message_values(method.input_type, hostile)))
    if draw(st.integers(0, 80)) == 0:
        _stretch(message, draw(st.sampled_from(["maximal", "one over"])))
    return method, message


# -- the server and the property ----------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Run:
    """The server under test and what it answered."""

    def __init__(self, channel: grpc.Channel, pid: int) -> None:
        self.channel = channel
        self.pid = pid
        self.codes: Counter[str] = Counter()
        self.requests = 0
        self.calls: dict[str, Any] = {}
        for method in METHODS:
            request_cls = type(getattr(pb, method.input_type.name)())
            response_cls = type(getattr(pb, method.output_type.name)())
            path = f"/{SERVICE.full_name}/{method.name}"
            factory = channel.unary_stream if method.server_streaming else channel.unary_unary
            self.calls[method.name] = factory(
                path, request_serializer=request_cls.SerializeToString, response_deserializer=response_cls.FromString
            )

    def call(self, method: MethodDescriptor, request: Message) -> None:
        self.requests += 1
        try:
            if method.server_streaming:
                for item in self.calls[method.name](request, timeout=120):
                    if item.HasField("error"):
                        self.codes[f"{method.name} item {item.error.code}"] += 1
                        assert item.error.code == "INVALID_ARGUMENT", (method.name, item.error)
            else:
                self.calls[method.name](request, timeout=120)
            self.codes["OK"] += 1
        except grpc.RpcError as exc:
            code = exc.code()
            self.codes[code.name] += 1
            assert code in CLIENT_ERRORS, (method.name, code, exc.details(), request)
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                _check_bad_request(exc, request)


def _check_bad_request(exc: grpc.RpcError, request: Message) -> None:
    """INVALID_ARGUMENT names the request message and carries BadRequest with fields of it."""
    status = rpc_status.from_call(exc)
    assert status is not None and status.code == code_pb2.INVALID_ARGUMENT, exc.details()
    bad_request = error_details_pb2.BadRequest()
    assert status.details and status.details[0].Unpack(bad_request), exc.details()
    assert bad_request.field_violations, exc.details()
    assert (exc.details() or "").startswith(f"invalid {request.DESCRIPTOR.name}: "), exc.details()
    top = set(request.DESCRIPTOR.fields_by_name)
    for violation in bad_request.field_violations:
        head = violation.field.split(".")[0].split("[")[0]
        assert head in top, (violation.field, exc.details())


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    port = free_port()
    # No default ruleset: a request naming none meets the refusal with two loaded.
    # As the image runs it (MALLOC_ARENA_MAX, Dockerfile); the long profile sets the in-memory
    # store's bounds small enough to fill within the run, so what it shows is the level.
    bounds = ["--max-cases", "1000", "--decision-log-max-entries", "1000", "--case-decisions-max-entries", "10"]
    args = ["--metrics-port", "0", "--rulesets", str(ROOT / "rulesets"), *(bounds if LONG else [])]
    with serve(port, *args, env={"MALLOC_ARENA_MAX": "2"}) as process:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Run(channel, process.pid)
        assert process.poll() is None, "the server died"


# Hypothesis keeps a tree of every example of a run, so its cost per example grows with the run
# (a single 100,000-example run had reached 800 MiB and slowed to a crawl): long profiles run in
# rounds of at most ROUND examples, each with its own fixed seed, against the same server.
ROUND = 5_000
PROFILE = settings(
    max_examples=min(EXAMPLES, ROUND),
    deadline=None,
    derandomize=False,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def test_every_answer_is_ok_or_a_documented_client_error(run: Run) -> None:
    # Warm up (rulesets compiled, caches and the calendar built) before the first reading.
    warm = pb.EvaluateRequest(ruleset="safeguarding", as_of="2025-06-30")
    warm.case.CopyFrom(case_from_json({"caseId": "warm", "concerns": [{"id": "c", "date": "2025-01-01"}]}))
    for method in METHODS:
        run.call(method, type(getattr(pb, method.input_type.name)())())
    run.call(SERVICE.methods_by_name["Evaluate"], warm)
    before = _rss_kib(run.pid)
    started = time.monotonic()
    sent_before = run.requests

    rss = [before]
    rounds = -(-EXAMPLES // ROUND)
    repeated = rounds // 4 if LONG else 0
    for round_number in range(rounds):
        examples = min(ROUND, EXAMPLES - round_number * ROUND)
        fresh = round_number - repeated if round_number >= rounds - repeated else round_number

        @seed(20_261_203 + fresh)  # reproducible in CI and in the long profile
        @settings(PROFILE, max_examples=examples)
        @given(call=requests())
        def one_call(call: tuple[MethodDescriptor, Message]) -> None:
            run.call(*call)

        one_call()
        rss.append(_rss_kib(run.pid))
    sent = run.requests - sent_before
    elapsed = time.monotonic() - started
    after = _rss_kib(run.pid)
    health = health_pb2_grpc.HealthStub(run.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    internal = run.codes["INTERNAL"] + run.codes["UNKNOWN"]
    print(
        f"\nproperty run: {sent:,} requests in {elapsed:.0f} s; INTERNAL/UNKNOWN {internal}; "
        f"RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB (by round: {', '.join(f'{k / 1024:.0f}' for k in rss)}); "
        "health SERVING; " + ", ".join(f"{code} {count:,}" for code, count in run.codes.most_common())
    )
    assert internal == 0
    assert (after - before) / 1024 < RSS_GROWTH_LIMIT_MIB, (before, after)
    if repeated:
        level = (rss[-1] - rss[-1 - repeated]) / 1024
        print(f"the last {repeated} rounds (repeats of the {repeated} before) grew RSS {level:+.1f} MiB")
        assert level < REPEATED_ROUNDS_GROWTH_LIMIT_MIB, rss

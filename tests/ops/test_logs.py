"""Logs are JSON lines with decision and case ids, and never what a request said about anyone."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import grpc
import pytest

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.errors import StoreUnavailableError
from rules_engine.logs import BackgroundWriter, JsonFormatter, log_fields
from tests.ops.conftest import Served
from tests.ops.helpers import AS_OF, flagged_case, request

MARKER = "SECRET-NAME-MARKER"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything logged during the test, through the production formatter."""
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


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _refused(served: Served, message: pb.EvaluateRequest) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        served.stub.Evaluate(message, timeout=10)
    code: grpc.StatusCode = caught.value.code()
    return code


def test_requests_with_personal_text_leave_only_ids_in_the_logs(served: Served, log_lines: io.StringIO) -> None:
    # Accepted: markers in fact ids and worker ids, which are evaluated and stored.
    accepted = served.stub.Evaluate(request(flagged_case("case-log-1", MARKER)), timeout=10)
    # Refused: markers in a code, a date, the child's birth date and the ruleset name.
    bad = flagged_case(f"{MARKER}-case")
    bad.concerns[0].agency = f"{MARKER}-agency"
    bad.concerns[1].date = f"{MARKER} 2025"
    bad.child.birth_date = f"{MARKER}-born"
    assert _refused(served, request(bad)) == grpc.StatusCode.INVALID_ARGUMENT
    assert _refused(served, request(flagged_case("case-log-2"), f"{MARKER}-ruleset")) == grpc.StatusCode.NOT_FOUND
    batch = pb.EvaluateBatchRequest(cases=[bad, flagged_case("case-log-3", MARKER)], as_of=AS_OF, ruleset="starter")
    assert [a.WhichOneof("result") for a in served.stub.EvaluateBatch(batch, timeout=10)] == ["error", "evaluation"]

    text = log_lines.getvalue()
    assert MARKER not in text
    lines = _lines(log_lines)
    [evaluated] = [line for line in lines if line["event"] == "case evaluated"]
    assert evaluated["decision_id"] == accepted.decision_id
    assert evaluated["case_id"] == "case-log-1"
    assert evaluated["ruleset"] == "starter"
    assert evaluated["version"] == accepted.ruleset_version
    assert evaluated["flags"] == len(accepted.flags)
    assert isinstance(evaluated["duration_ms"], float)
    assert {"time", "level", "logger", "event"} <= evaluated.keys()
    refused = [line for line in lines if line["event"] == "case not evaluated"]
    assert [(line["code"], line["ruleset"]) for line in refused] == [
        ("INVALID_ARGUMENT", "starter"),
        ("NOT_FOUND", "unknown"),
    ]
    assert all("case_id" not in line for line in refused)  # a refused case id may be the bad field
    [batch_line] = [line for line in lines if line["event"] == "batch evaluated"]
    assert (batch_line["cases"], batch_line["errors"], batch_line["code"]) == (2, 1, "OK")


def _record(logger: str, message: object, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.getLogger(logger).makeRecord(logger, logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_only_whitelisted_fields_and_our_own_arguments_are_written() -> None:
    formatter = JsonFormatter()

    ours = json.loads(formatter.format(_record("rules_engine.server.server", "serving %s on port %d", "svc", 50051)))
    theirs = json.loads(formatter.format(_record("redis.client", "bad reply %s", MARKER)))
    extra = json.loads(formatter.format(_record("rules_engine.x", "event", case_id="case-9", name=MARKER, facts=[1])))

    assert ours["event"] == "serving svc on port 50051"
    assert theirs["event"] == "bad reply %s"
    assert extra == {k: extra[k] for k in ("time", "level", "logger", "event", "case_id")}
    assert extra["case_id"] == "case-9"


def test_exception_messages_are_replaced_by_their_type_unless_known_safe() -> None:
    formatter = JsonFormatter()
    lines = []
    for exc in (ValueError(f"bad date {MARKER}"), StoreUnavailableError("case store unavailable: Redis timed out")):
        try:
            raise exc
        except Exception:
            record = logging.getLogger("rules_engine.service.servicer").makeRecord(
                "rules_engine.service.servicer",
                logging.ERROR,
                __file__,
                1,
                "failed",
                (),
                (type(exc), exc, exc.__traceback__),
            )
            lines.append(json.loads(formatter.format(record)))

    assert MARKER not in json.dumps(lines)
    assert lines[0]["error_type"] == "ValueError"
    assert "error" not in lines[0]
    assert "raise exc" in str(lines[0]["stack"])
    assert lines[1]["error"] == "case store unavailable: Redis timed out"


def test_background_writer_writes_every_line_in_order_without_being_woken() -> None:
    stream = io.StringIO()
    target = logging.StreamHandler(stream)
    target.setFormatter(JsonFormatter())
    writer = BackgroundWriter(target)
    logger = logging.getLogger("rules_engine.test_background")
    logger.propagate = False
    logger.addHandler(writer)
    try:
        for n in range(500):
            logger.warning("line %d", n)
        deadline = time.monotonic() + 5
        while len(_lines(stream)) < 500 and time.monotonic() < deadline:
            time.sleep(BackgroundWriter.FLUSH_SECONDS)
        assert [line["event"] for line in _lines(stream)] == [f"line {n}" for n in range(500)]
        logger.warning("last")
        writer.stop()  # writes what is pending
        assert _lines(stream)[-1]["event"] == "last"
    finally:
        logger.removeHandler(writer)
        logger.propagate = True


class _CountingStream(io.StringIO):
    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_background_writer_writes_a_batch_in_one_call_keeping_filters_and_bad_records_apart() -> None:
    stream = _CountingStream()
    target = logging.StreamHandler(stream)
    target.setFormatter(JsonFormatter())
    target.addFilter(lambda record: record.msg != "filtered")
    errors: list[logging.LogRecord] = []
    target.handleError = errors.append  # type: ignore[method-assign,assignment]  # record what StreamHandler reports
    writer = BackgroundWriter(target)
    writer.stop()  # no thread: the batch below is written by one flush
    logger = logging.getLogger("rules_engine.test_batched")
    logger.propagate = False
    logger.addHandler(writer)
    try:
        logger.warning("first")
        logger.warning("filtered")
        logger.warning("%d bad", "not a number")  # formatting fails: its template is written instead
        logger.warning("last")
        writer.flush()
    finally:
        logger.removeHandler(writer)
        logger.propagate = True
    assert [line["event"] for line in _lines(stream)] == ["first", "%d bad", "last"]
    assert stream.writes == 1
    assert stream.getvalue().endswith("\n")
    assert errors == []


def _writer_to(
    stream: io.StringIO, logger_name: str
) -> tuple[logging.Logger, BackgroundWriter, logging.StreamHandler[io.StringIO]]:
    target = logging.StreamHandler(stream)
    target.setFormatter(JsonFormatter())
    writer = BackgroundWriter(target)
    writer.stop()  # no thread: each test flushes when it reads
    logger = logging.getLogger(logger_name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(writer)
    return logger, writer, target


def test_log_fields_writes_the_line_logging_would_from_its_parts() -> None:
    stream = io.StringIO()
    logger, writer, _ = _writer_to(stream, "rules_engine.test_fields")
    fields = {"case_id": "case-9", "flags": 3, "duration_ms": 1.25, "child_name": MARKER, "thing": object()}
    try:
        log_fields(logger, logging.INFO, "case evaluated", fields)
        logger.info("case evaluated", extra=fields)
        log_fields(logger, logging.DEBUG, "below the level", fields)
        writer.flush()
    finally:
        logger.removeHandler(writer)
        logger.propagate = True
    fast, usual = _lines(stream)
    assert MARKER not in stream.getvalue()  # only whitelisted scalars, as from a record
    assert str(fast.pop("time")) <= str(usual.pop("time"))  # ISO 8601 in UTC: text order is time order
    assert (
        fast
        == usual
        == {
            "level": "INFO",
            "logger": "rules_engine.test_fields",
            "event": "case evaluated",
            "case_id": "case-9",
            "flags": 3,
            "duration_ms": 1.25,
        }
    )


def test_log_fields_gives_a_record_to_anything_but_a_plain_background_writer() -> None:
    stream = io.StringIO()
    logger, writer, target = _writer_to(stream, "rules_engine.test_fields_records")
    seen: list[logging.LogRecord] = []
    target.addFilter(lambda record: seen.append(record) or record.getMessage() != "dropped")  # type: ignore[func-returns-value]
    captured: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = captured.append  # type: ignore[method-assign,assignment]
    try:
        log_fields(logger, logging.INFO, "kept", {"case_id": "case-1"})
        log_fields(logger, logging.INFO, "dropped", {"case_id": "case-2"})
        logger.addHandler(capture)  # as a test's log capture would
        log_fields(logger, logging.WARNING, "captured", {"case_id": "case-3"})
        writer.flush()
    finally:
        logger.removeHandler(writer)
        logger.removeHandler(capture)
        logger.propagate = True
    # The target's filter saw records, with their fields and level, and kept its choice.
    assert [(r.getMessage(), r.levelname, r.__dict__["case_id"]) for r in seen] == [
        ("kept", "INFO", "case-1"),
        ("dropped", "INFO", "case-2"),
        ("captured", "WARNING", "case-3"),
    ]
    assert [line["event"] for line in _lines(stream)] == ["kept", "captured"]
    assert [(r.getMessage(), r.__dict__["case_id"]) for r in captured] == [("captured", "case-3")]

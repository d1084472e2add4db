"""Structured JSON logs, one line per event, carrying only whitelisted ids and counts.

A log line never holds a fact's content, a name or free text from a request:
- only the fields in CONTEXT_FIELDS are copied from a record's `extra`;
- a message is formatted with its arguments only when it comes from our own code
  (a `rules_engine` logger), whose calls pass ids, codes and counts; other libraries'
  messages are emitted as their constant template;
- an exception is reported by its type and stack frames; its message only when it is
  one of SAFE_MESSAGE_ERRORS, whose text names files, rules or hosts, never case content.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import datetime as dt
import json
import logging
import sys
import threading
import time
import traceback
from typing import IO, Any

from rules_engine.errors import RuleFileError, RuleFileErrors, StoreUnavailableError

# Pseudonymous ids, names from our configuration, codes and numbers.
CONTEXT_FIELDS = frozenset(
    {
        "decision_id",
        "case_id",
        "ruleset",
        "version",
        "rule_id",
        "method",
        "code",
        "duration_ms",
        "error_type",
        "flags",
        "shadow_flags",
        # Counts of what DeleteCase removed.
        "facts",
        "decisions",
        "cases",
        "errors",
        "operation",
        "count",
        # A client's name from the clients file (security.py); never its token.
        "client",
        # Rule-file errors are `file:line:column: message` about policy text, never case content.
        "rule_file_error",
        "pid",
        "exit_code",
        "reason",
        # Which engine evaluates a ruleset: "compiled", or "python (why)".
        "engine",
    }
)
# A line as log_fields hands it over: created (time.time()), level, logger name, message, fields.
_Fields = tuple[float, int, str, str, dict[str, Any]]
# Their messages name rule files and store hosts, never anything from a request.
SAFE_MESSAGE_ERRORS: tuple[type[BaseException], ...] = (RuleFileError, RuleFileErrors, StoreUnavailableError)
OUR_LOGGERS = "rules_engine"
_SCALARS = (str, int, float, bool)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event and whitelisted context."""

    def __init__(self) -> None:
        super().__init__()
        # The time up to its seconds, for the second it was made: a line per evaluation would
        # otherwise build a datetime and format it each time (a tenth of the line's cost).
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": _event(record),
        }
        for key in CONTEXT_FIELDS.intersection(record.__dict__):
            value = record.__dict__[key]
            if value is None or isinstance(value, _SCALARS):
                line[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["error_type"] = type(exc).__name__
            if isinstance(exc, SAFE_MESSAGE_ERRORS):
                line["error"] = str(exc).splitlines()[0] if str(exc) else ""
            # Frames only: traceback lines show our source code, not the values it held.
            line["stack"] = "".join(traceback.format_tb(exc.__traceback__))
        elif record.stack_info:
            line["stack"] = record.stack_info
        return _ENCODER.encode(line)

    def format_fields(self, created: float, level: int, name: str, message: str, fields: dict[str, Any]) -> str:
        """The line `format` writes for a record of these, with `fields` as its extra (log_fields)."""
        line: dict[str, Any] = {
            "time": self._time(created),
            "level": logging.getLevelName(level),
            "logger": name,
            "event": message,
        }
        for key, value in fields.items():
            if key in CONTEXT_FIELDS and (value is None or isinstance(value, _SCALARS)):
                line[key] = value
        return _ENCODER.encode(line)

    def _time(self, created: float) -> str:
        """ISO 8601 in UTC to the millisecond, as datetime.isoformat(timespec="milliseconds") writes it."""
        second = int(created)
        cached = self._second
        if cached[0] != second:
            text = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
            cached = self._second = (second, text)
        return f"{cached[1]}.{int((created - second) * 1000):03d}+00:00"  # a LogRecord's msecs


def _event(record: logging.LogRecord) -> str:
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    if not record.args:
        return template
    if record.name != OUR_LOGGERS and not record.name.startswith(OUR_LOGGERS + "."):
        return template
    try:
        return template % record.args
    except (TypeError, ValueError, KeyError):
        return template


def _unserialisable(value: object) -> str:
    return type(value).__name__


# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_unserialisable)


def configure_logging(
    level: str | int = "INFO", stream: IO[str] | None = None, background: bool = False
) -> logging.Handler:
    """Send every logger's records, as JSON lines, to `stream` (stderr); returns the handler installed.

    With `background`, serving threads only hand their records over; one thread formats and
    writes them (see BackgroundWriter).
    """
    output = logging.StreamHandler(stream or sys.stderr)
    output.setFormatter(JsonFormatter())
    handler: logging.Handler = output
    if background:
        _stop_writers()
        handler = BackgroundWriter(output)
        _writers.append(handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    _skip_unused_record_fields()
    return handler


def _skip_unused_record_fields() -> None:
    """Stop logging from gathering what JsonFormatter never writes: the caller's file, line and
    function (found by walking the stack for every record), and thread and process names.

    These are the switches the logging HOWTO's "Optimization" section names; together they
    took about a sixth off the cost of an evaluation's log line (callgrind, 29,000 of 178,000
    instructions).
    """
    logging._srcfile = None  # documented: no sys._getframe walk per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # Python 3.12; harmless on 3.11


class BackgroundWriter(logging.Handler):
    """Keeps records in a deque that one thread empties into `target` every FLUSH_SECONDS.

    A serving thread's log line costs a deque append: it neither waits for the stream's lock
    (threads queued on it for every evaluation) nor wakes the writer (waking a thread per
    record, as logging's QueueHandler does, cost a tenth of the server's time under load).
    """

    FLUSH_SECONDS = 0.05
    # Lines kept while the writer falls behind (a stalled stderr); the oldest go first. A record
    # with its extras is about 1 KiB, so this bounds a stall's cost to about 10 MiB.
    MAX_PENDING = 10_000

    def __init__(self, target: logging.Handler) -> None:
        super().__init__()
        self.target = target
        self._pending: collections.deque[logging.LogRecord | _Fields] = collections.deque(maxlen=self.MAX_PENDING)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        self._pending.append(record)

    def emit_fields(self, entry: _Fields) -> None:
        """A line given as its parts (log_fields), made into a record only if the target needs one."""
        self._pending.append(entry)

    def flush(self) -> None:
        self._write_pending()

    def stop(self) -> None:
        """Write what is pending and end the thread."""
        self._stopping.set()
        self._thread.join()
        self._write_pending()

    def _run(self) -> None:
        while not self._stopping.wait(self.FLUSH_SECONDS):
            self._write_pending()

    def _write_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        records = []
        while True:
            try:
                records.append(pending.popleft())
            except IndexError:
                break
        target = self.target
        if type(target) is logging.StreamHandler:
            _write_lines(target, records)
        else:
            for record in records:
                target.handle(_as_record(record))  # reports its own errors (logging.Handler.handleError)
        with contextlib.suppress(ValueError, OSError):  # a closed or broken stream: lines are lost, not the process
            target.flush()


def _write_lines(target: logging.StreamHandler[IO[str]], records: list[logging.LogRecord | _Fields]) -> None:
    """What target.handle does for each record (filter, format, write), with the lines written in
    one call: StreamHandler writes and flushes each line, a system call per line under load."""
    lines = []
    formatter = target.formatter
    # A line given as parts is formatted from them when nothing would look at its record.
    direct = formatter if type(formatter) is JsonFormatter and not target.filters else None
    for entry in records:
        try:
            if direct is not None and type(entry) is tuple:
                lines.append(direct.format_fields(*entry))
                continue
            record = _as_record(entry)
            if target.filter(record):
                lines.append(target.format(record))
        except RecursionError:
            raise
        except Exception:  # as StreamHandler.emit: reported by handleError, the other lines go on
            target.handleError(_as_record(entry))
    if not lines:
        return
    lines.append("")  # the last line's terminator
    with target.lock:  # type: ignore[union-attr]  # a handler's lock exists once it is built
        try:
            target.stream.write(target.terminator.join(lines))
        except RecursionError:
            raise
        except Exception:
            target.handleError(_as_record(records[-1]))


def log_fields(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """`logger.log(level, message, extra=fields)`, for a line written on every call.

    When the logger's records would go only to background writers (as `serve` configures
    logging), the line goes to them as its parts: no LogRecord is made on the serving thread
    and the writer formats the parts (about 6 µs in all, against 15 through a record). Any other
    handler or a filter on the way (a test's capture, say) gets a record through logging, as usual.
    """
    if not logger.isEnabledFor(level):
        return
    writers = _direct_writers(logger, level)
    if writers is None:
        logger.log(level, message, extra=fields)
        return
    entry = (time.time(), level, logger.name, message, fields)
    for writer in writers:
        writer.emit_fields(entry)


def _direct_writers(logger: logging.Logger, level: int) -> list[BackgroundWriter] | None:
    """The handlers logging would pass the record to (Logger.callHandlers), if each is a
    background writer without filters; else None (none at all: logging's last resort applies)."""
    if logger.filters:
        return None
    writers = []
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if type(handler) is not BackgroundWriter or handler.filters:
                return None
            if level >= handler.level:
                writers.append(handler)
        current = current.parent if current.propagate else None
    return writers or None


def _as_record(entry: logging.LogRecord | _Fields) -> logging.LogRecord:
    """The record logging would have made of a line given as its parts."""
    if isinstance(entry, logging.LogRecord):
        return entry
    created, level, name, message, fields = entry
    record = logging.makeLogRecord({**fields, "name": name, "msg": message, "levelno": level})
    record.levelname = logging.getLevelName(level)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return record


# Background writers; stopped (what is pending written) at exit.
_writers: list[BackgroundWriter] = []


@atexit.register
def _stop_writers() -> None:
    """Write what is pending, so the last lines ("stopped") are written."""
    while _writers:
        _writers.pop().stop()

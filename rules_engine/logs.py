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
import datetime as dt
import json
import logging
import logging.handlers
import sys
import traceback
from queue import SimpleQueue
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
    }
)
# Their messages name rule files and store hosts, never anything from a request.
SAFE_MESSAGE_ERRORS: tuple[type[BaseException], ...] = (RuleFileError, RuleFileErrors, StoreUnavailableError)
OUR_LOGGERS = "rules_engine"
_SCALARS = (str, int, float, bool)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event and whitelisted context."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
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
        return json.dumps(line, ensure_ascii=False, default=_unserialisable)


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


def configure_logging(
    level: str | int = "INFO", stream: IO[str] | None = None, background: bool = False
) -> logging.Handler:
    """Send every logger's records, as JSON lines, to `stream` (stderr); returns the handler installed.

    With `background`, serving threads format their line and hand it to a queue; one thread
    writes. Under load, threads otherwise queue on the stream's lock for every evaluation.
    """
    output = logging.StreamHandler(stream or sys.stderr)
    handler: logging.Handler
    if background:
        output.setFormatter(logging.Formatter("%(message)s"))  # records arrive formatted
        queue: SimpleQueue[logging.LogRecord] = SimpleQueue()
        handler = logging.handlers.QueueHandler(queue)
        _stop_listeners()
        listener = logging.handlers.QueueListener(queue, output)
        listener.start()
        _listeners.append(listener)
    else:
        handler = output
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


# The writing thread of background logging; stopped (queue flushed) at exit.
_listeners: list[logging.handlers.QueueListener] = []


@atexit.register
def _stop_listeners() -> None:
    """Flush the queue, so the last lines ("stopped") are written."""
    while _listeners:
        _listeners.pop().stop()

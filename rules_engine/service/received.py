"""The case bytes of Evaluate requests, as the client sent them, from a door's parse to the servicer.

A door's deserializer parses the request (protobuf checks every field, UTF-8 included) and
holds its `case` field's bytes here, under the request object; the servicer takes them for the
request object it was handed. The bytes are the decision log's input digest, the evaluation
cache's key and the compiled core's input, so the case is not serialised again (at 200 facts
that cost as much as the parse). A request found with nothing held (a batch, a JSON body, a case
field sent twice, which protobuf merges) has its case serialised as before.

grpcio parses on its polling thread and calls the servicer on a worker thread, so the bytes are
held in one dict for all threads (its single operations are atomic), by the request's id, and
given only for that very object. Requests refused before the servicer leave their bytes
behind: the dict is emptied when it reaches MAX_HELD, and a call whose bytes went that way
serialises its case.
"""

from __future__ import annotations

from google.protobuf.message import Message

from rules_engine.engine import wire

CASE_FIELD = 1  # EvaluateRequest.case
MAX_HELD = 256  # a few times the calls in flight; at most this many cases' bytes kept

_held: dict[int, tuple[Message, bytes]] = {}


def hold(request: Message, data: bytes) -> None:
    """Keep the case bytes of `request`, which was parsed from `data`, for the servicer's `take`."""
    case_bytes = wire.field_once(data, CASE_FIELD)
    if case_bytes is None:
        return
    if len(_held) >= MAX_HELD:
        _held.clear()
    _held[id(request)] = (request, case_bytes)


def take(request: Message) -> bytes | None:
    """The case bytes held for this very request object, once; None for any other."""
    entry = _held.pop(id(request), None)
    if entry is None or entry[0] is not request:
        return None
    return entry[1]

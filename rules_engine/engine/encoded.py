"""A request's case as its bytes: what the compiled core reads, with the Python conversion kept for when it
declines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import NamedTuple

from rules_engine.case.equality import Groups
from rules_engine.case.facts import CaseFacts


class EncodedCase(NamedTuple):
    """A case as the request carried it, serialised once by the caller (service/core.py).

    `data` is the `Case` message's bytes as the client sent them (service/received.py) or, where
    they were not kept, in deterministic protobuf encoding; `digest` is their sha256 hex (the
    decision log's input digest and the evaluation cache's key). `case_id` is the message's case
    id as sent, not yet checked. `latest` is the latest date a fact may carry
    (case.dates.latest_date of the request's today). `decode` is the Python conversion and
    validation (requests.case_from_proto): the case as records or a model, or CaseError naming
    every bad field; the engine calls it only when the compiled core cannot answer. `groups` are
    the child's equality monitoring groups (case.equality.groups), read from the message by the
    caller, since the core answers without the Python case; None: taken from `decode()`.
    """

    data: bytes
    digest: str
    case_id: str
    latest: dt.date
    decode: Callable[[], CaseFacts]
    groups: Groups | None = None

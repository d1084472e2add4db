"""Evaluations already done: a bounded, thread-safe LRU of evaluator Outcomes.

Case management systems re-evaluate the same case many times a day. An Outcome depends only on
the ruleset version, the case's facts and the `as_of` day, so it is kept under
(ruleset name, ruleset version, as_of day, case digest) and a repeat skips conversion and
evaluation: it costs only the lifecycle and decision-log write, which the engine does on every
call, with its own decision id and moment. What is kept is the Outcome (measures, rule outcomes,
flags, shadow flags, undetermined rules), never a decision: no decision id, time or lifecycle.

The digest is the sha256 of the request's `Case` bytes (as sent, or their deterministic
encoding; see store.base.DecisionRecord.input_digest) for a stateless call, or the store's
digest of the merged stored case for stored history; two different inputs share a key only
through a sha256 collision. A hot reload changes the version, so the old
version's entries are no longer asked for and age out of the LRU.

An OrderedDict under one lock (not cachetools, whose LRUCache is not thread-safe either and does
more work per call): a lookup is a dict get and a move_to_end, well under a microsecond.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from typing import NamedTuple

from rules_engine import metrics
from rules_engine.engine.results import Outcome


class CacheKey(NamedTuple):
    ruleset: str
    version: str
    as_of: dt.date
    digest: str


class EvaluationCache:
    """At most `max_entries` Outcomes, the least recently used dropped first; 0 keeps nothing."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must not be negative, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, Outcome] = OrderedDict()
        self._lock = threading.Lock()
        metrics.start_evaluation_cache()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> Outcome | None:
        """The Outcome kept under `key` (now the most recently used), or None; counted as a hit or a miss."""
        with self._lock:
            outcome = self._entries.get(key)
            if outcome is not None:
                self._entries.move_to_end(key)
        metrics.count_evaluation_cache(outcome is not None)
        return outcome

    def put(self, key: CacheKey, outcome: Outcome) -> None:
        """Keep `outcome`, unless the reference evaluator answered for a failed matcher: that call
        is counted as a fallback, and the next one should ask the matcher again."""
        if outcome.matcher_fallback or not self.max_entries:
            return
        with self._lock:
            self._entries[key] = outcome
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            size = len(self._entries)
        metrics.set_evaluation_cache_size(size)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        metrics.set_evaluation_cache_size(0)

"""The in-memory case store: the embedded default, behaving as the Redis store does, for one process."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rules_engine import metrics
from rules_engine.case.equality import Groups
from rules_engine.case.facts import Case, CaseFacts, Child, Fact
from rules_engine.config import Settings
from rules_engine.errors import CaseChangedError, FlagNotFoundError
from rules_engine.policy.compiled import Severity
from rules_engine.store import equality, lifecycle
from rules_engine.store.base import (
    DEFAULT_SETTINGS,
    FLAG_STATE_VALUES,
    CaseDeletion,
    CaseStore,
    ChronologyEntry,
    DecisionFlag,
    DecisionRecord,
    FlagRecord,
    FlagState,
    FlagStates,
    MergedCase,
    Sighting,
    StoredCase,
    StoreSettings,
    case_digest,
)
from rules_engine.store.chronology import build_chronology
from rules_engine.store.codec import as_case, assemble_case, fact_field, fact_items, has_data

log = logging.getLogger(__name__)

# Cases the embedded store keeps at most (each with its facts, flags and decision index):
# the server's default, `--max-cases`.
MAX_CASES = Settings.max_cases

# A decision as the log keeps it: strings, numbers and a datetime in plain tuples. The garbage
# collector stops tracking such tuples, so a full log (100,000 decisions by default) adds nothing
# to a collection; as DecisionRecords with their flags it held 1.5 million tracked objects and a
# full collection took half a second. Flags are shared: a ruleset has few (rule, state, severity).
_PackedFlag = tuple[str, str, int]
_Packed = tuple[str, dt.datetime, str, str, str, str, tuple[_PackedFlag, ...]]
_SHARED_FLAGS: dict[_PackedFlag, _PackedFlag] = {}
MAX_SHARED_FLAGS = 10_000  # rules x states x severities of the loaded rulesets, with room for reloads


def _shared(flag: DecisionFlag | FlagRecord) -> _PackedFlag:
    key = (flag.rule_id, FLAG_STATE_VALUES[flag.state], int(flag.severity))
    found = _SHARED_FLAGS.get(key)
    if found is None:
        if len(_SHARED_FLAGS) >= MAX_SHARED_FLAGS:
            _SHARED_FLAGS.clear()
        found = _SHARED_FLAGS[key] = key
    return found


def _pack(record: DecisionRecord, flags_of: Sequence[DecisionFlag | FlagRecord] | None = None) -> _Packed:
    """The record as kept, with `flags_of` in place of its flags when given (not a copy of the
    record made for them: a frozen dataclass costs microseconds to build, on every evaluation).
    The flags may be the lifecycle's records themselves: their rule, state and severity are what
    a decision keeps of them (lifecycle.decision_flags)."""
    flags = tuple([_shared(f) for f in (record.flags if flags_of is None else flags_of)])
    return (
        record.decision_id,
        record.time,
        record.case_id,
        record.ruleset,
        record.ruleset_version,
        record.input_digest,
        flags,
    )


def _unpack(packed: _Packed) -> DecisionRecord:
    decision_id, time, case_id, ruleset, version, digest, flags = packed
    decision_flags = tuple(DecisionFlag(rule_id, FlagState(state), Severity(level)) for rule_id, state, level in flags)
    return DecisionRecord(decision_id, time, case_id, ruleset, version, digest, decision_flags)


@dataclass
class _CaseState:
    expires_at: float
    child: Child = field(default_factory=Child)
    facts: dict[str, Fact] = field(default_factory=dict)
    flags: dict[tuple[str, str], FlagRecord] = field(default_factory=dict)
    decisions: deque[_Packed] = field(default_factory=deque)
    revision: int = 0  # merges that changed the facts or the child
    # Per ruleset: what the equality monitoring counters hold of this case (store/equality.py).
    equality: dict[str, equality.Marker] = field(default_factory=dict)


@dataclass(frozen=True)
class _Writes:
    """The merged child and facts read_merged built, which commit_evaluation swaps in whole."""

    child: Child
    facts: dict[str, Fact]
    changed: bool


class MemoryStore(CaseStore):
    """Thread-safe under one lock; expired cases are dropped when next touched, as Redis would have."""

    def __init__(
        self,
        settings: StoreSettings = DEFAULT_SETTINGS,
        clock: Callable[[], float] = time.time,
        max_cases: int = MAX_CASES,
    ) -> None:
        self.settings = settings
        self._clock = clock  # seconds; tests inject one to pass the retention period
        self._lock = threading.Lock()
        # Least recently written first: past max_cases the oldest case is forgotten, so a
        # long-running process evaluating ever new cases cannot grow without bound.
        self._cases: OrderedDict[str, _CaseState] = OrderedDict()
        self._max_cases = max_cases
        self.evicted = 0
        self._log: deque[tuple[float, _Packed]] = deque()
        # The revision each deleted case had, kept for the retention period (bounded as the cases
        # are): a case written again continues from it, so a revision never repeats for a case id
        # and an evaluation read before a delete cannot commit onto the recreated case.
        self._tombstones: OrderedDict[str, tuple[int, float]] = OrderedDict()
        # Equality monitoring: (ruleset, version, rule, outcome, groups) -> cases, read out by
        # characteristic (equality.marginals): never handed out whole.
        self._equality: equality.JointCounts = {}

    def merge_case(
        self,
        case_id: str,
        incoming: CaseFacts,
        withdrawn: Sequence[tuple[str, str]] = (),
        *,
        now: dt.datetime,
    ) -> StoredCase:
        incoming = as_case(incoming)  # this store keeps models: equal facts compare equal
        with self._lock:
            state = self._touch(case_id)
            changed = False
            if has_data(incoming.child) and incoming.child != state.child:
                state.child, changed = incoming.child, True
            for key, fact in fact_items(incoming):
                if state.facts.get(key) != fact:
                    state.facts[key], changed = fact, True
            for fact_type, fact_id in withdrawn:
                if state.facts.pop(fact_field(fact_type, fact_id), None) is not None:
                    changed = True
            state.revision += changed
            return self._stored(case_id, state)

    def load_case(self, case_id: str) -> Case | None:
        with self._lock:
            state = self._live(case_id)
            if state is None or (not state.facts and not has_data(state.child)):
                return None
            return assemble_case(case_id, state.child, state.facts.items())

    def record_flags(self, case_id: str, ruleset: str, raised: Sequence[Sighting], now: dt.datetime) -> FlagStates:
        with self._lock:
            return self._record(case_id, ruleset, raised, now)[1]

    def record_evaluation(
        self,
        case_id: str,
        ruleset: str,
        raised: Sequence[Sighting],
        decision: DecisionRecord,
        now: dt.datetime,
        *,
        revision: int | None = None,
        groups: Groups | None = None,
    ) -> FlagStates:
        with self._lock:
            if revision is not None:
                live = self._live(case_id)
                if self._revision(case_id, live) != revision:
                    current = live or _CaseState(expires_at=0, revision=self._revision(case_id, None))
                    raise CaseChangedError(self._stored(case_id, current))
            state, states = self._record(case_id, ruleset, raised, now)
            self._append_packed(state, _pack(decision, (*states.raised, *states.resolved)))
            if groups is not None:
                self._count_evaluation(state, ruleset, decision.ruleset_version, groups, states)
            return states

    def read_merged(self, case_id: str, incoming: CaseFacts, withdrawn: Sequence[tuple[str, str]] = ()) -> MergedCase:
        incoming = as_case(incoming)
        with self._lock:
            state = self._live(case_id)
            child = state.child if state else Child()
            facts = dict(state.facts) if state else {}
            revision = self._revision(case_id, state)
        changed = False
        if has_data(incoming.child) and incoming.child != child:
            child, changed = incoming.child, True
        for key, fact in fact_items(incoming):
            if facts.get(key) != fact:
                facts[key], changed = fact, True
        for fact_type, fact_id in withdrawn:
            if facts.pop(fact_field(fact_type, fact_id), None) is not None:
                changed = True
        case = assemble_case(case_id, child, facts.items())
        return MergedCase(case_id, StoredCase(case, revision, case_digest(case)), _Writes(child, facts, changed))

    def commit_evaluation(
        self,
        merged: MergedCase,
        ruleset: str,
        raised: Sequence[Sighting],
        decision: DecisionRecord,
        now: dt.datetime,
        *,
        groups: Groups | None = None,
    ) -> FlagStates:
        writes = merged.writes
        if not isinstance(writes, _Writes):
            raise TypeError("a MergedCase from another store")
        lifecycle.check_ruleset(ruleset)
        with self._lock:
            current = self._live(merged.case_id)
            if self._revision(merged.case_id, current) != merged.stored.revision:
                raise CaseChangedError(merged.stored)
            # Everything that can fail runs before the first change: the lifecycle and the packed
            # decision are computed aside, then swapped in by plain assignments.
            states, updates = self._flag_updates(current.flags if current else {}, ruleset, raised, now)
            packed = _pack(decision, (*states.raised, *states.resolved))
            state = self._touch(merged.case_id)
            if writes.changed:
                state.child, state.facts, state.revision = writes.child, writes.facts, state.revision + 1
            state.flags.update(updates)
            self._append_packed(state, packed)
            if groups is not None:
                self._count_evaluation(state, ruleset, decision.ruleset_version, groups, states)
            return states

    def delete_case(self, case_id: str) -> CaseDeletion:
        with self._lock:
            state = self._live(case_id)
            if state is None:
                return CaseDeletion(0, 0, 0)
            del self._cases[case_id]
            self._tombstones[case_id] = (state.revision + 1, self._clock() + self.settings.retention.total_seconds())
            self._tombstones.move_to_end(case_id)
            if len(self._tombstones) > self._max_cases:
                self._tombstones.popitem(last=False)
            return CaseDeletion(len(state.facts) + has_data(state.child), len(state.flags), len(state.decisions))

    def acknowledge(
        self,
        case_id: str,
        ruleset: str,
        rule_id: str,
        *,
        practitioner_id: str,
        reason_code: str,
        snooze_until: dt.date | None = None,
        now: dt.datetime,
    ) -> FlagRecord:
        lifecycle.check_acknowledgement(practitioner_id, reason_code, snooze_until, now.date())
        with self._lock:
            state = self._live(case_id)
            prev = state.flags.get((ruleset, rule_id)) if state else None
            if state is None or prev is None or prev.state is FlagState.RESOLVED:
                raise FlagNotFoundError(f"flag {rule_id!r} of ruleset {ruleset!r} is not raised for the case")
            record = lifecycle.acknowledged(prev, practitioner_id, reason_code, snooze_until, now)
            state.flags[(ruleset, rule_id)] = record
            self._touch(case_id)
            marker = state.equality.get(ruleset)
            if marker is not None:
                outcome = equality.ACKNOWLEDGED if snooze_until is None else equality.SNOOZED
                self._count(state, ruleset, equality.dismissed(marker, rule_id, outcome))
            return record

    def equality_counts(self) -> dict[equality.CellKey, int]:
        with self._lock:
            return equality.marginals(self._equality)

    def append_decision(self, record: DecisionRecord) -> None:
        with self._lock:
            self._append(record)

    def decisions(self, case_id: str | None = None, limit: int = 100) -> list[DecisionRecord]:
        with self._lock:
            self._trim_log()
            if case_id is None:
                newest = [packed for _, packed in itertools.islice(reversed(self._log), limit)]
            else:
                state = self._live(case_id)
                newest = list(itertools.islice(reversed(state.decisions), limit)) if state else []
        return [_unpack(packed) for packed in newest]

    def chronology(self, case_id: str) -> list[ChronologyEntry]:
        with self._lock:
            state = self._live(case_id)
            if state is None:
                return []
            case = assemble_case(case_id, state.child, state.facts.items())
            return build_chronology(case, state.flags.values())

    def retention_left(self, case_id: str) -> dt.timedelta | None:
        with self._lock:
            state = self._live(case_id)
            return dt.timedelta(seconds=state.expires_at - self._clock()) if state else None

    def ping(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _count_evaluation(
        self, state: _CaseState, ruleset: str, version: str, groups: Groups, states: FlagStates
    ) -> None:
        marker = state.equality.get(ruleset)
        raised = tuple([r.rule_id for r in states.raised])
        if equality.unchanged(marker, version, groups, raised, len(states.resolved)):
            return  # the usual re-evaluation: nothing new to count
        resolved = [r.rule_id for r in states.resolved]
        self._count(state, ruleset, equality.evaluated(marker, version, groups, raised, resolved))

    def _count(self, state: _CaseState, ruleset: str, counted: equality.Counted) -> None:
        if counted.marker is None:
            return
        state.equality[ruleset] = counted.marker
        equality.apply(self._equality, ruleset, counted)
        if counted.new:
            metrics.count_equality(counted.new)

    @staticmethod
    def _assemble(case_id: str, state: _CaseState) -> Case:
        return assemble_case(case_id, state.child, state.facts.items())

    def _stored(self, case_id: str, state: _CaseState) -> StoredCase:
        case = self._assemble(case_id, state)
        return StoredCase(case, state.revision, case_digest(case))

    def _live(self, case_id: str) -> _CaseState | None:
        state = self._cases.get(case_id)
        if state is not None and self._clock() >= state.expires_at:
            del self._cases[case_id]
            return None
        return state

    def _revision(self, case_id: str, state: _CaseState | None) -> int:
        """The case's revision: its state's, or after a delete the tombstone's (0 if neither lives)."""
        if state is not None:
            return state.revision
        tombstone = self._tombstones.get(case_id)
        if tombstone is None:
            return 0
        if self._clock() >= tombstone[1]:
            del self._tombstones[case_id]
            return 0
        return tombstone[0]

    def _touch(self, case_id: str) -> _CaseState:
        """The case's state with its retention refreshed, as every Redis write EXPIREs the case's keys."""
        expires_at = self._clock() + self.settings.retention.total_seconds()
        state = self._live(case_id)
        if state is None:
            state = self._cases[case_id] = _CaseState(expires_at, revision=self._revision(case_id, None))
            self._tombstones.pop(case_id, None)
            if len(self._cases) > self._max_cases:
                self._cases.popitem(last=False)
                self.evicted += 1
                if self.evicted == 1 or self.evicted % 10_000 == 0:
                    log.warning(
                        "in-memory store full: least recently written cases forgotten; use Redis to keep them",
                        extra={"count": self.evicted},
                    )
        else:
            self._cases.move_to_end(case_id)
        state.expires_at = expires_at
        return state

    def _record(
        self, case_id: str, ruleset: str, raised: Sequence[Sighting], now: dt.datetime
    ) -> tuple[_CaseState, FlagStates]:
        """The case's state, touched, and the lifecycle this evaluation leaves it with."""
        lifecycle.check_ruleset(ruleset)
        state = self._touch(case_id)
        states, updates = self._flag_updates(state.flags, ruleset, raised, now)
        state.flags.update(updates)
        return state, states

    def _flag_updates(
        self,
        flags: dict[tuple[str, str], FlagRecord],
        ruleset: str,
        raised: Sequence[Sighting],
        now: dt.datetime,
    ) -> tuple[FlagStates, dict[tuple[str, str], FlagRecord]]:
        """The lifecycle after one evaluation, and the records to store; `flags` is left as it was."""
        sightings = lifecycle.unique_sightings(raised)
        cap = self.settings.raised_history
        out = []
        updates: dict[tuple[str, str], FlagRecord] = {}
        kept = 0  # of `flags`, how many this evaluation raised again
        for sighting in sightings:
            key = (ruleset, sighting.rule_id)
            prev = flags.get(key)
            kept += prev is not None
            record = updates[key] = lifecycle.seen(prev, sighting, ruleset, now, cap)
            out.append(record)
        if kept == len(flags):  # the usual re-evaluation: every flag kept was raised again
            return FlagStates(tuple(out), ()), updates
        gone = []
        # Sorted are only the flags that stopped holding, not every one kept.
        for key in sorted(
            [
                key
                for key, prev in flags.items()
                if key[0] == ruleset and key not in updates and prev.state is not FlagState.RESOLVED
            ]
        ):
            record = updates[key] = lifecycle.resolved(flags[key], now)
            gone.append(record)
        return FlagStates(tuple(out), tuple(gone)), updates

    def _append(self, record: DecisionRecord) -> None:
        self._append_packed(self._touch(record.case_id), _pack(record))

    def _append_packed(self, state: _CaseState, packed: _Packed) -> None:
        now = self._clock()
        self._log.append((now, packed))
        self._trim_log(now)
        state.decisions.append(packed)
        while len(state.decisions) > self.settings.case_decision_maxlen:
            state.decisions.popleft()

    def _trim_log(self, now: float | None = None) -> None:
        """Drop the decisions past the log's length or age; `now` is the clock's reading, if taken."""
        maxlen, max_age = self.settings.decision_maxlen, self.settings.decision_max_age
        while maxlen is not None and len(self._log) > maxlen:
            self._log.popleft()
        if max_age is None:
            return
        oldest = (self._clock() if now is None else now) - max_age.total_seconds()
        while self._log and self._log[0][0] < oldest:
            self._log.popleft()

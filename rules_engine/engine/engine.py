"""The engine: holds the ruleset registry, the case store and the clock, and turns a case into an Evaluation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from rules_engine import metrics
from rules_engine.case import equality
from rules_engine.case.facts import ID_RE, Case, CaseFacts
from rules_engine.config import Settings
from rules_engine.engine.encoded import EncodedCase
from rules_engine.engine.equality import MIN_CELL, Cell, EqualityReport, check_threshold, report
from rules_engine.engine.evaluation_cache import CacheKey, EvaluationCache
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.engine.registry import Registry
from rules_engine.engine.results import Evaluation, Outcome, RulesetStatus
from rules_engine.errors import CaseChangedError, RulesetNotFoundError, RulesetRequiredError, StoreUnavailableError
from rules_engine.policy.compiled import Severity
from rules_engine.store import (
    FLAG_STATE_VALUES,
    CaseDeletion,
    CaseStore,
    ChronologyEntry,
    DecisionRecord,
    FlagRecord,
    FlagStates,
    MemoryStore,
    StoreSettings,
    case_digest,
    open_store,
)

log = logging.getLogger(__name__)

# Evaluations of one case racing in several processes: each retry evaluates the newer facts, so
# this many in a row means the case is being rewritten faster than it can be evaluated (ABORTED).
MAX_RECORD_ATTEMPTS = 10
RETRY_JITTER_SECONDS = 0.002  # times the attempt number, so racing writers fall out of step
# After the store fails a best-effort write, stateless calls skip it this long rather than each
# waiting out a connect timeout; stored-history calls always try, and fail fast.
STORE_RETRY_SECONDS = 1.0
# The in-memory store keeps its decision log in the process: bound it lower than Redis's stream.
MEMORY_DECISION_MAXLEN = 100_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def open_case_store(settings: Settings) -> CaseStore:
    """The case store the settings name: in-memory unless `store_url` is a redis:// or rediss:// URL."""
    in_memory = settings.store_url is None or settings.store_url.startswith("memory:")
    maxlen = settings.decision_log_max_entries
    if maxlen is None:
        maxlen = MEMORY_DECISION_MAXLEN if in_memory else StoreSettings.decision_maxlen
    store_settings = StoreSettings(
        retention=dt.timedelta(days=settings.retention_days),
        decision_maxlen=maxlen,
        decision_max_age=(
            dt.timedelta(days=settings.decision_log_max_age_days) if settings.decision_log_max_age_days else None
        ),
        case_decision_maxlen=settings.case_decisions_max_entries,
    )
    if in_memory:
        return MemoryStore(store_settings, max_cases=settings.max_cases)
    return open_store(
        settings.store_url,
        store_settings,
        sentinels=settings.redis_sentinels,
        sentinel_service=settings.redis_sentinel_service,
        socket_timeout=settings.redis_timeout_seconds,
        connect_timeout=settings.redis_timeout_seconds,
    )


class Engine:
    """Implements service.ports.CaseStateService over a Registry and a CaseStore; the only place that reads
    the clock."""

    def __init__(
        self,
        registry: Registry,
        clock: Callable[[], dt.datetime] = utcnow,
        store: CaseStore | None = None,
        evaluation_cache_size: int = Settings.evaluation_cache_size,
        *,
        equality_monitoring: bool = True,
    ) -> None:
        self.registry = registry
        # Count every recorded evaluation for equality monitoring (store/equality.py); off only to
        # measure what the counting costs (benchmarks/equality_cost.py).
        self.equality_monitoring = equality_monitoring
        self.store: CaseStore = store if store is not None else MemoryStore()
        self._clock = clock
        # Outcomes of requests already evaluated (engine/evaluation_cache.py); None: off.
        self.evaluation_cache = EvaluationCache(evaluation_cache_size) if evaluation_cache_size else None
        self._lock = threading.Lock()
        self._skip_until = 0.0  # monotonic; best-effort writes are skipped before it
        self.unrecorded = 0  # stateless evaluations whose decision could not be recorded

    def evaluate(
        self,
        case: CaseFacts | EncodedCase,
        as_of: dt.datetime | None = None,
        ruleset: str | None = None,
        input_digest: str | None = None,
    ) -> Evaluation:
        """Evaluate the request's facts; the decision and flag lifecycle are recorded if the store answers.

        An EncodedCase is evaluated from its bytes (decoded in Python only when the compiled core
        cannot answer) and its evaluation is cached by digest; a CaseFacts is evaluated as given.
        The store being down never fails this call: the flags come back without their states.
        """
        started = time.perf_counter()
        # Only a digest of exactly the evaluated input keys the cache: a CaseFacts' input_digest is
        # the caller's word, so a case given as facts is evaluated every time.
        digest = case.digest if isinstance(case, EncodedCase) else None
        answer = self._evaluate(case, as_of or self._clock(), ruleset, digest)
        if time.monotonic() < self._skip_until:
            evaluation = self._unrecorded(answer)
        else:
            try:
                states = self.store.record_evaluation(
                    answer.case_id,
                    answer.ruleset,
                    answer.outcome.flags,  # shadow flags are for review, not action: they have no lifecycle
                    self._decision(answer, input_digest or _digest(case)),
                    answer.as_of,
                    groups=_groups(case) if self.equality_monitoring else None,
                )
            except StoreUnavailableError as exc:
                self._skip_until = time.monotonic() + STORE_RETRY_SECONDS
                log.warning("decision not recorded: %s", exc)
                evaluation = self._unrecorded(answer)
            else:
                evaluation = answer.evaluation(states)
        _record_metrics(evaluation, started)
        return evaluation

    def evaluate_history(
        self,
        case: CaseFacts,
        withdrawn: Sequence[tuple[str, str]] = (),
        as_of: dt.datetime | None = None,
        ruleset: str | None = None,
    ) -> Evaluation:
        """Evaluate the stored case with `case` merged in and `withdrawn` removed; write only on success.

        Two store round trips: read_merged reads the stored case and merges in memory, writing
        nothing; the evaluation runs; commit_evaluation writes the merged facts, the flag lifecycle
        and the decision in one atomic step, guarded by the revision that was read. A failure at any
        point before that step leaves the store as it was. Raises StoreUnavailableError when the
        store is down, CaseChangedError when other writers kept changing the case through
        MAX_RECORD_ATTEMPTS evaluations.
        """
        started = time.perf_counter()
        moment = as_of or self._clock()
        for attempt in range(MAX_RECORD_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, RETRY_JITTER_SECONDS * attempt))
            merged = self.store.read_merged(case.case_id, case, withdrawn)
            # The stored digest is of the merged facts (the memory store's canonical JSON of the
            # case, Redis's stored fields), so an unchanged history is a cache hit.
            answer = self._evaluate(merged.stored.case, moment, ruleset, merged.stored.digest)
            try:
                states = self.store.commit_evaluation(
                    merged,
                    answer.ruleset,
                    answer.outcome.flags,
                    self._decision(answer, merged.stored.digest),
                    moment,
                    groups=equality.groups(merged.stored.case.child) if self.equality_monitoring else None,
                )
            except CaseChangedError:
                # Another writer changed the facts since they were read: recording this view could
                # resolve flags the newer facts hold, so read again and evaluate the current case.
                continue
            evaluation = answer.evaluation(states)
            _record_metrics(evaluation, started)
            return evaluation
        raise CaseChangedError(merged.stored)

    def record_facts(self, case: CaseFacts, withdrawn: Sequence[tuple[str, str]] = ()) -> CaseFacts:
        return self.store.merge_case(case.case_id, case, withdrawn, now=self._clock()).case

    def acknowledge(
        self,
        case_id: str,
        ruleset: str | None,
        rule_id: str,
        *,
        practitioner_id: str,
        reason_code: str,
        snooze_until: dt.date | None = None,
    ) -> FlagRecord:
        with self.registry.lease(ruleset) as prepared:  # resolves the default ruleset's name
            name = prepared.ruleset.name
        return self.store.acknowledge(
            case_id,
            name,
            rule_id,
            practitioner_id=practitioner_id,
            reason_code=reason_code,
            snooze_until=snooze_until,
            now=self._clock(),
        )

    def delete_case(self, case_id: str) -> CaseDeletion:
        """Forget everything stored for a case; logged with the case id and counts only."""
        deleted = self.store.delete_case(case_id)
        log.info(
            "case deleted",
            extra={
                "case_id": case_id,
                "facts": deleted.facts,
                "flags": deleted.flags,
                "decisions": deleted.decisions,
            },
        )
        return deleted

    def chronology(self, case_id: str) -> list[ChronologyEntry]:
        return self.store.chronology(case_id)

    def equality_report(self, ruleset: str | None = None, threshold: int = MIN_CELL) -> EqualityReport:
        """The equality monitoring report of the store's counters (of one ruleset, or all), suppressed
        at `threshold` (never under MIN_CELL). The loaded versions' active rules all have rows, so a
        rule that never flagged shows as such; older versions show the rules they counted.

        Raises RulesetNotFoundError for a ruleset neither loaded nor counted.
        """
        check_threshold(threshold)
        counts = {
            Cell(*key): n for key, n in self.store.equality_counts().items() if ruleset is None or key[0] == ruleset
        }
        loaded = self.registry.names()
        if ruleset is not None and ruleset not in loaded and not counts:
            raise RulesetNotFoundError(f"no ruleset {ruleset[:64]!r} is loaded or counted")
        rules: dict[tuple[str, str], list[str]] = {}
        for name in loaded:
            if ruleset is None or name == ruleset:
                with self.registry.lease(name) as prepared:
                    compiled = prepared.ruleset
                    # Shadow rules have no lifecycle, so nothing of theirs is counted.
                    rules[(compiled.name, compiled.version)] = [r.id for r in compiled.rules if r.status == "active"]
        # The store follows every flag's lifecycle: none dismissed or resolved yet is a count of 0.
        return dataclasses.replace(report(counts, threshold, rules=rules), lifecycle=True)

    def decisions(self, case_id: str | None = None, limit: int = 100) -> list[DecisionRecord]:
        return self.store.decisions(case_id, limit)

    def list_rulesets(self) -> list[RulesetStatus]:
        return self.registry.statuses()

    def close(self) -> None:
        self.store.close()

    def _evaluate(
        self, case: CaseFacts | EncodedCase, moment: dt.datetime, ruleset: str | None, digest: str | None = None
    ) -> _Answer:
        """The Evaluation of `case` at `moment`: from the cache when `digest` (of exactly these facts)
        was evaluated on this day by this ruleset version, else evaluated (and kept)."""
        day = moment.date()
        try:
            with self.registry.lease(ruleset) as prepared:
                compiled = prepared.ruleset
                if digest is None or self.evaluation_cache is None:
                    outcome = _outcome(prepared, case, day)
                else:
                    key = CacheKey(compiled.name, compiled.version, day, digest)
                    cached = self.evaluation_cache.get(key)
                    if cached is None:
                        outcome = _outcome(prepared, case, day)
                        self.evaluation_cache.put(key, outcome)
                    else:
                        outcome = cached
        except (RulesetNotFoundError, RulesetRequiredError):
            # A bad case is refused for its fields before the ruleset is looked at, as when the
            # caller converted it first.
            if isinstance(case, EncodedCase):
                case.decode()
            raise
        return _Answer(case.case_id, compiled.name, compiled.version, new_decision_id(), moment, outcome)

    def _decision(self, answer: _Answer, input_digest: str) -> DecisionRecord:
        return DecisionRecord(
            decision_id=answer.decision_id,
            time=self._clock(),
            case_id=answer.case_id,
            ruleset=answer.ruleset,
            ruleset_version=answer.ruleset_version,
            input_digest=input_digest,
        )

    def _unrecorded(self, answer: _Answer) -> Evaluation:
        with self._lock:
            self.unrecorded += 1
        return answer.evaluation()


class _Answer(NamedTuple):
    """An evaluation before the store has answered: made into the Evaluation once its lifecycle
    is known (a frozen dataclass costs microseconds to build, so it is built once per call)."""

    case_id: str
    ruleset: str
    ruleset_version: str
    decision_id: str
    as_of: dt.datetime
    outcome: Outcome

    def evaluation(self, states: FlagStates | None = None) -> Evaluation:
        """The Evaluation, with the flags' stored lifecycle when the store recorded it."""
        outcome = self.outcome
        return Evaluation(
            case_id=self.case_id,
            ruleset=self.ruleset,
            ruleset_version=self.ruleset_version,
            decision_id=self.decision_id,
            as_of=self.as_of,
            flags=outcome.flags,
            shadow_flags=outcome.shadow_flags,
            undetermined=outcome.undetermined,
            matcher_fallback=outcome.matcher_fallback,
            measures=outcome.measures,
            lifecycle={} if states is None else {r.rule_id: r for r in states.raised},
            resolved=() if states is None else states.resolved,
        )


# Decision ids made ahead, IDS_AT_ONCE from one os.urandom call: a getrandom call per id lets go
# of the GIL in the middle of every evaluation. list.pop and list.extend are atomic, so threads
# share the list without a lock; a forked child starts with none of its parent's.
IDS_AT_ONCE = 256
_ids: list[str] = []
os.register_at_fork(after_in_child=_ids.clear)


def new_decision_id() -> str:
    """A random (version 4) UUID as 32 hex digits, as uuid.uuid4().hex gives, without building the
    UUID object, whose checks cost more than the random bytes on every call."""
    while True:
        try:
            return _ids.pop()
        except IndexError:
            _ids.extend(_random_ids(IDS_AT_ONCE))


def _random_ids(n: int) -> list[str]:
    raw = bytearray(os.urandom(16 * n))
    for start in range(0, 16 * n, 16):
        raw[start + 6] = raw[start + 6] & 0x0F | 0x40  # version 4
        raw[start + 8] = raw[start + 8] & 0x3F | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return [text[i : i + 32] for i in range(0, 32 * n, 32)]


def _outcome(prepared: PreparedRuleset, case: CaseFacts | EncodedCase, day: dt.date) -> Outcome:
    if not isinstance(case, EncodedCase):
        return prepared.evaluate(case, day)
    # A bad case id goes straight to the Python path, which names it (the core would decline it too,
    # after reading the whole case for nothing).
    if ID_RE.fullmatch(case.case_id):
        outcome = prepared.evaluate_encoded(case.data, day, case.latest)
        if outcome is not None:
            return outcome
    # The core declined (or is not loaded, or the case id is bad): convert and validate in Python,
    # which raises the CaseError naming every bad field.
    return prepared.evaluate(case.decode(), day)


def _digest(case: CaseFacts | EncodedCase) -> str:
    if isinstance(case, EncodedCase):
        return case.digest
    if not isinstance(case, Case):
        raise TypeError("a case given as records needs its input digest")
    return case_digest(case)


def _groups(case: CaseFacts | EncodedCase) -> equality.Groups:
    """The child's equality monitoring groups: read by the service from the request's message, so
    a case the compiled core answered is not converted for them."""
    if isinstance(case, EncodedCase):
        if case.groups is not None:
            return case.groups
        return equality.groups(case.decode().child)
    return equality.groups(case.child)


# An enum's .name is a property written in Python: looked up here, for every flag of every call.
_SEVERITY_NAMES = {severity: severity.name for severity in Severity}


def _record_metrics(evaluation: Evaluation, started: float) -> None:
    """Latency (store included), flags by lifecycle state, shadow hits and fallbacks of an answered call."""
    seconds = time.perf_counter() - started
    lifecycle = evaluation.lifecycle
    flags = []
    for flag in evaluation.flags:
        record = lifecycle.get(flag.rule_id)  # none when the store did not record the evaluation
        flags.append(
            (flag.rule_id, _SEVERITY_NAMES[flag.severity], None if record is None else FLAG_STATE_VALUES[record.state])
        )
    metrics.record_evaluation(
        evaluation.ruleset,
        seconds,
        flags,
        [flag.rule_id for flag in evaluation.shadow_flags],
        evaluation.matcher_fallback,
    )

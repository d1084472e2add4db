"""The case store interface and its value types: stored history, flag lifecycle, decision log, chronology."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple, Protocol

from rules_engine.case.equality import Groups
from rules_engine.case.facts import Case, CaseFacts
from rules_engine.config import Settings
from rules_engine.policy.compiled import Severity

# Seven years, as for closed children's social care records; a case's keys expire this long after
# its last write, and every write refreshes the period.
DEFAULT_RETENTION = dt.timedelta(days=7 * 365 + 2)


class FlagState(StrEnum):
    """Where a flag stands for a case."""

    NEW = "NEW"  # first raised, raised again after resolving, or its snooze ended or severity rose
    ONGOING = "ONGOING"  # raised before and still holding
    SNOOZED = "SNOOZED"  # still holding, snoozed by a practitioner until a future date
    ACKNOWLEDGED = "ACKNOWLEDGED"  # still holding, acknowledged by a practitioner
    RESOLVED = "RESOLVED"  # raised before, not raised by the latest evaluation


# Each state's value as a plain str: an enum's .value is a property written in Python, and the
# engine's metrics and the memory store's decision log read it for every flag of every call.
FLAG_STATE_VALUES = {state: state.value for state in FlagState}


@dataclass(frozen=True)
class StoreSettings:
    """What both stores honour the same way."""

    retention: dt.timedelta = DEFAULT_RETENTION
    # The shared decision log: kept to about this many entries (None: unbounded by length) ...
    decision_maxlen: int | None = 1_000_000
    # ... and entries older than this are trimmed (None: unbounded by age).
    decision_max_age: dt.timedelta | None = None
    # The per-case decision index: newest entries kept per case; it expires with the case.
    case_decision_maxlen: int = Settings.case_decisions_max_entries
    # Each flag keeps the dates it was first raised in each episode, at most this many.
    raised_history: int = 100
    key_prefix: str = "re:"


DEFAULT_SETTINGS = StoreSettings()


class Sighting(Protocol):
    """What the lifecycle reads of a raised flag: its rule and severity. The engine hands the
    store its explained flags as they are, rather than a copy of these two fields per flag."""

    @property
    def rule_id(self) -> str: ...

    @property
    def severity(self) -> Severity: ...


class FlagSighting(NamedTuple):
    """A flag the latest evaluation raised: its rule and severity."""

    rule_id: str
    severity: Severity


@dataclass(frozen=True)
class Acknowledgement:
    """A practitioner's recorded response to a raised flag; ids and codes only, no free text."""

    practitioner_id: str
    reason_code: str
    at: dt.datetime
    # The severity acknowledged: a rise above it makes the flag NEW again.
    severity: Severity
    snooze_until: dt.date | None = None


class FlagRecord(NamedTuple):
    """The remembered lifecycle of one rule's flag for one case and ruleset.

    A named tuple, like DecisionFlag: every call builds one per flag, and a frozen dataclass
    costs twice as much to build (its __init__ sets each field through object.__setattr__)."""

    ruleset: str
    rule_id: str
    state: FlagState
    severity: Severity
    first_raised: dt.datetime  # start of the current (or last) episode
    last_seen: dt.datetime
    # When each episode began, oldest first; the chronology shows every one.
    raised: tuple[dt.datetime, ...]
    resolved_at: dt.datetime | None = None
    acknowledgement: Acknowledgement | None = None


@dataclass(frozen=True)
class FlagStates:
    """What record_flags found: the raised flags in the order given, and those that stopped holding."""

    raised: tuple[FlagRecord, ...]
    resolved: tuple[FlagRecord, ...]

    def state_of(self, rule_id: str) -> FlagState | None:
        for record in (*self.raised, *self.resolved):
            if record.rule_id == rule_id:
                return record.state
        return None

    @property
    def new(self) -> tuple[str, ...]:
        return tuple(r.rule_id for r in self.raised if r.state is FlagState.NEW)


class DecisionFlag(NamedTuple):
    rule_id: str
    state: FlagState
    severity: Severity


@dataclass(frozen=True)
class DecisionRecord:
    """One entry of the decision log. Ids, codes and a digest only: never names or free text."""

    decision_id: str
    time: dt.datetime
    case_id: str
    ruleset: str
    ruleset_version: str
    # sha256 hex of the evaluated input: of the request's Case bytes as the client sent them
    # (service/received.py), else of the Case message in deterministic protobuf encoding
    # (requests.case_message_digest: a JSON body, a batch), or for stored history of the stored
    # case (case_digest).
    input_digest: str
    flags: tuple[DecisionFlag, ...] = ()


@dataclass(frozen=True)
class ChronologyEntry:
    """One line of a case's chronology: a stored fact, or the date a flag was first raised."""

    date: dt.date
    kind: Literal["fact", "flag_raised"]
    fact_type: str  # a Case field name (e.g. "concerns"), or "flag"
    fact_id: str  # the fact's id, or the flag's rule id
    code: str = ""  # agency, kind, source, reason or relationship code; a flag's severity name
    ruleset: str = ""  # for flags


@dataclass(frozen=True)
class StoredCase:
    """A case as stored, with its revision (how many merges have changed it) and its digest."""

    case: CaseFacts  # a facts.Case, or records (the Redis store answers with those: far cheaper)
    revision: int
    # sha256 hex of the case as the store holds it: what the decision log records as the input.
    digest: str


@dataclass(frozen=True)
class MergedCase:
    """A request merged into the stored case in memory, nothing written: read_merged's answer,
    which commit_evaluation writes with the evaluation's flags and decision in one step."""

    case_id: str
    stored: StoredCase  # the merged case, the revision it was read at, the merged case's digest
    writes: object  # what commit_evaluation must write to the facts, in the store's own form


class CaseDeletion(NamedTuple):
    """What delete_case removed: counts only, for the log (never the facts themselves)."""

    facts: int
    flags: int
    decisions: int  # entries of the case's decision index; the shared log keeps its own


class CaseStore(Protocol):
    """Remembers cases between requests. Every method may raise StoreUnavailableError."""

    def merge_facts(
        self,
        case_id: str,
        incoming: CaseFacts,
        withdrawn: Sequence[tuple[str, str]] = (),
        *,
        now: dt.datetime,
    ) -> CaseFacts:
        """Upsert `incoming`'s facts by (fact type, id), remove `withdrawn`, return the whole stored case.

        The child is replaced when the incoming one has data. A fact both sent and withdrawn is withdrawn.
        Implementations inherit this from merge_case.
        """
        return self.merge_case(case_id, incoming, withdrawn, now=now).case

    def merge_case(
        self,
        case_id: str,
        incoming: CaseFacts,
        withdrawn: Sequence[tuple[str, str]] = (),
        *,
        now: dt.datetime,
    ) -> StoredCase:
        """merge_facts, also returning the revision to pass to record_evaluation."""
        ...

    def load_case(self, case_id: str) -> Case | None: ...

    def record_flags(self, case_id: str, ruleset: str, raised: Sequence[Sighting], now: dt.datetime) -> FlagStates:
        """Atomically update each rule's lifecycle from one evaluation's raised flags."""
        ...

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
        """record_flags and append_decision in one atomic step; `decision.flags` is filled from the states.

        With `revision` (from merge_case), raises CaseChangedError, writing nothing, when a merge has
        changed the case since: the caller evaluates `error.current` and records again. With `groups`
        (the child's, case.equality.groups), the evaluation is counted for equality monitoring in
        the same step (store/equality.py: under `decision.ruleset_version`).
        """
        ...

    def read_merged(self, case_id: str, incoming: CaseFacts, withdrawn: Sequence[tuple[str, str]] = ()) -> MergedCase:
        """The stored case with `incoming` upserted and `withdrawn` removed, as merge_case would
        store it, but written nowhere: a stored-history Evaluate writes only once it has succeeded."""
        ...

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
        """Write the merged facts, the flag lifecycle and the decision as one atomic step (with
        `groups`, the equality monitoring counts too, as record_evaluation).

        Raises CaseChangedError, writing nothing, when the facts changed since read_merged read
        them; any other failure also leaves the case, its lifecycle and the decision log as they were.
        """
        ...

    def delete_case(self, case_id: str) -> CaseDeletion:
        """Forget a case: its facts, flag lifecycle with acknowledgements, and decision index.

        The shared decision log keeps its entries (ids, codes and digests only). Idempotent:
        a case with nothing stored gives zero counts.
        """
        ...

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
        """Record a practitioner's acknowledgement (or snooze until a later date) of a raised flag.

        Raises FlagNotFoundError when the flag is not currently raised for the case, and
        AcknowledgementError for a malformed id or code or a snooze date not after today. The
        case's first dismissal of a flag is counted for equality monitoring in the same step.
        """
        ...

    def equality_counts(self) -> dict[tuple[str, str, str, str, str, str], int]:
        """The equality monitoring counters: (ruleset, version, rule id, characteristic, group,
        outcome) -> cases (store/equality.py). No case ids: aggregates only."""
        ...

    def append_decision(self, record: DecisionRecord) -> None: ...

    def decisions(self, case_id: str | None = None, limit: int = 100) -> list[DecisionRecord]:
        """The newest `limit` decisions, newest first; of one case while its history is retained."""
        ...

    def chronology(self, case_id: str) -> list[ChronologyEntry]:
        """Stored facts of every type, oldest first, with the dates flags were first raised."""
        ...

    def retention_left(self, case_id: str) -> dt.timedelta | None:
        """How long the case's history is kept unless written again; None when nothing is stored."""
        ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def case_digest(case: Case) -> str:
    """sha256 hex of the case's canonical JSON: what the decision log records instead of the input."""
    return hashlib.sha256(case.model_dump_json(exclude_defaults=True).encode()).hexdigest()

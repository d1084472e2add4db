"""The Redis case store; the only module that imports redis.

Keys of one case share the hash tag `{case_id}`, so one Redis Cluster slot holds them all:

    <prefix>{<case_id>}:facts      hash  "<fact type>:<id>" -> fact JSON, "child" -> child JSON
    <prefix>{<case_id>}:flags      hash  "<ruleset>/<rule_id>" -> flag record JSON
    <prefix>{<case_id>}:decisions  stream, the case's newest decisions (an index of the log)
    <prefix>{<case_id>}:equality   hash  "<ruleset>" -> what the equality counts hold of the case
    <prefix>decisions              stream, the decision log of every case, for downstream consumers
    <prefix>equality-counts        hash  "<ruleset>/<version>/<rule>/<characteristic>/<group>/<outcome>"
                                         -> cases (store/equality.py); no case ids

One flags hash per case (not per ruleset) keeps every key name known to the client, so each Lua
script declares all the keys it touches and retention is refreshed on a fixed set of three keys.

On a Redis Cluster (`redis+cluster://host:port[,host:port...]`) the shared log lies in another
slot than the case, and a script may only touch one slot. A script then appends the decision
to the case's index and to the outbox of the case's slot, `<prefix>{<tag>}:outbox` (a tag chosen
to hash to that slot), atomically with the facts and lifecycle; the client then copies the entry
to the shared log and deletes it from the outbox. If the log's master fails between the two, the
decision is still held in the outbox and the process remembers it: a background thread (cluster
mode only) retries each such copy every DRAIN_INTERVAL_SECONDS, and a read of the whole log first
forwards what this process holds back. If the process dies between the two, the decision waits in
its outbox until a sweep (drain_outbox, every SWEEP_INTERVAL_SECONDS in each process's thread,
first soon after the store opens) finds it by scanning the outboxes. An acknowledged decision is
never lost, though the log may rarely hold one twice (consumers dedupe by decision_id). Per-slot
logs instead would make reading the newest decisions a merge of 16,384 streams.

The equality counts are per slot on a cluster for the same reason, `<prefix>{<tag>}:equality-counts`,
written by the case's own scripts atomically with its lifecycle; reading them (rare: an operator's
report) sums every slot's hash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, NamedTuple

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import SSLConnection, parse_url
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.retry import Retry
from redis.sentinel import Sentinel

from rules_engine import metrics
from rules_engine.case.equality import Groups
from rules_engine.case.facts import Case, CaseFacts
from rules_engine.errors import CaseChangedError, FlagNotFoundError, StoreUnavailableError
from rules_engine.store import equality, lifecycle, scripts
from rules_engine.store.base import (
    DEFAULT_SETTINGS,
    CaseDeletion,
    CaseStore,
    ChronologyEntry,
    DecisionRecord,
    FlagRecord,
    FlagStates,
    MergedCase,
    Sighting,
    StoredCase,
    StoreSettings,
)
from rules_engine.store.chronology import build_chronology
from rules_engine.store.codec import (
    CHILD_FIELD,
    case_from_fields,
    child_json,
    compact_json,
    decision_fields,
    decision_from_fields,
    fact_field,
    fields_digest,
    flag_from_json,
    has_data,
    merged_records,
    records_from_fields,
    revision_of,
    stored_facts,
)

log = logging.getLogger(__name__)

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
# An outbox entry younger than this may still be in its writer's hands, about to be copied.
OUTBOX_SETTLE_SECONDS = 2.0
# How often a process retries the copies to the log that failed in it (cheap: those entries only).
DRAIN_INTERVAL_SECONDS = 0.5
# How often a process scans every outbox for decisions a process that died left behind (a SCAN of
# each master's keyspace, so not often); and how soon again after a sweep that failed.
SWEEP_INTERVAL_SECONDS = 30.0
SWEEP_RETRY_SECONDS = 2.0

# Redis refusing work it would normally do: out of memory under noeviction, a replica after a
# failover, still loading its data. The caller may retry, as with a lost connection.
_UNAVAILABLE_REPLIES = ("OOM", "READONLY", "MASTERDOWN", "LOADING", "BUSY", "CLUSTERDOWN", "TRYAGAIN")


class RedisStore(CaseStore):
    """Shares case state between processes; each call is at most one round trip to Redis.

    Each public operation runs inside metrics.observe_store: its latency, and its failures.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        settings: StoreSettings = DEFAULT_SETTINGS,
        *,
        sentinels: Sequence[tuple[str, int]] = (),
        sentinel_service: str = "mymaster",
        sentinel_password: str | None = None,
        socket_timeout: float = 0.5,
        connect_timeout: float = 0.5,
        health_check_interval: int = 5,
        max_connections: int | None = None,
        ssl_ca_certs: str | None = None,
        drain_interval: float = DRAIN_INTERVAL_SECONDS,
        sweep_interval: float = SWEEP_INTERVAL_SECONDS,
    ) -> None:
        self.settings = settings
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            "health_check_interval": health_check_interval,
            # Fail fast: the gRPC caller has a deadline and may retry; a retried script could
            # also append a decision twice. A connection the server closed is replaced when the
            # pool hands it out, so recovery after a Redis restart needs no retry.
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": True,
        }
        if ssl_ca_certs is not None:
            options["ssl_ca_certs"] = ssl_ca_certs
        self._sentinel: Sentinel | None = None
        self._cluster = False
        if sentinels:
            parsed: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call, unused-ignore]
            for address in ("host", "port"):
                parsed.pop(address, None)
            if parsed.pop("connection_class", None) is SSLConnection:
                parsed["ssl"] = True
            if max_connections is not None:
                parsed["max_connections"] = max_connections
            sentinel_options: dict[str, Any] = {
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": connect_timeout,
            }
            if sentinel_password is not None:
                sentinel_options["password"] = sentinel_password
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
                list(sentinels), sentinel_kwargs=sentinel_options, **parsed, **options
            )
            self._client: redis.Redis = self._sentinel.master_for(sentinel_service)  # type: ignore[no-untyped-call, unused-ignore]
            self._where = f"sentinel service {sentinel_service}"
        elif url.startswith(CLUSTER_SCHEMES):
            if max_connections is not None:
                options["max_connections"] = max_connections
            nodes, cluster_options = _cluster_nodes(url)
            # Redirections after a failover (MOVED) are followed within a call; a lost node fails it.
            self._client = RedisCluster(  # type: ignore[assignment]
                startup_nodes=nodes, **cluster_options, **options
            )
            self._where = f"cluster {nodes[0].host}:{nodes[0].port}"
            self._cluster = True
        else:
            if max_connections is not None:
                options["max_connections"] = max_connections
            self._client = redis.Redis.from_url(url, **options)
            kwargs = self._client.connection_pool.connection_kwargs
            self._where = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
        # EVALSHA with the script's digest; redis-py loads the script again on NOSCRIPT.
        self._merge = self._client.register_script(scripts.MERGE)
        self._record = self._client.register_script(scripts.RECORD)
        self._append = self._client.register_script(scripts.APPEND)
        self._acknowledge = self._client.register_script(scripts.ACKNOWLEDGE)
        self._read = self._client.register_script(scripts.READ)
        self._commit = self._client.register_script(scripts.COMMIT)
        self._delete = self._client.register_script(scripts.DELETE)
        self._start_drain(drain_interval, sweep_interval)

    def _start_drain(self, drain_interval: float, sweep_interval: float) -> None:
        """The outbox drain's state, and in cluster mode its thread."""
        # Cluster mode: outbox -> ids of decisions this process failed to copy to the log.
        self._pending: dict[str, set[str]] = {}
        self.copies_held_back = 0  # since the store opened: copies that failed and were retried
        self._pending_lock = threading.Lock()
        # One retry of failed copies at a time (the thread's or a reader's), and one sweep; apart,
        # so a long sweep does not hold up a read of the log.
        self._retry_lock = threading.Lock()
        self._sweep_lock = threading.Lock()
        self._sweep_due = True  # a process that died may have left decisions in an outbox
        self._swept_at = 0.0
        self._drain_interval, self._sweep_interval = drain_interval, sweep_interval
        self._closing = threading.Event()
        self._drainer: threading.Thread | None = None
        if self._cluster:
            self._drainer = threading.Thread(target=self._drain_loop, name="outbox-drain", daemon=True)
            self._drainer.start()

    # -- keys ------------------------------------------------------------------------------

    def case_keys(self, case_id: str) -> list[str]:
        """The case's facts, flags and decision index keys, in the order the scripts expect."""
        base = f"{self.settings.key_prefix}{{{case_id}}}"
        return [f"{base}:facts", f"{base}:flags", f"{base}:decisions"]

    def equality_key(self, case_id: str) -> str:
        """The case's equality marker: what the counts hold of it, by ruleset."""
        return f"{self.settings.key_prefix}{{{case_id}}}:equality"

    def equality_counts_key(self, case_id: str) -> str:
        """The counts hash the case's scripts add to: the one hash, or on a cluster its slot's."""
        if not self._cluster:
            return f"{self.settings.key_prefix}equality-counts"
        slot = key_slot(self.case_keys(case_id)[0].encode())
        return f"{self.settings.key_prefix}{{{_slot_tags()[slot]}}}:equality-counts"

    @property
    def log_key(self) -> str:
        return f"{self.settings.key_prefix}decisions"

    def outbox_key(self, case_id: str) -> str:
        """The outbox of the case's slot, where a cluster's scripts leave decisions for the log."""
        slot = key_slot(self.case_keys(case_id)[0].encode())
        return f"{self.settings.key_prefix}{{{_slot_tags()[slot]}}}:outbox"

    def _log_target(self, case_id: str) -> str:
        return self.outbox_key(case_id) if self._cluster else self.log_key

    def _forward(self, case_id: str, entry_id: str | None, decision: DecisionRecord, states: FlagStates) -> None:
        """On a cluster: copy a decision from its slot's outbox to the log; it stays there on failure."""
        if not self._cluster or not entry_id:
            return
        fields = decision_fields(dataclasses.replace(decision, flags=lifecycle.decision_flags(states)))
        outbox = self.outbox_key(case_id)
        try:
            self._copy_to_log(outbox, entry_id, fields)
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            # The decision is stored with the case and held in the outbox: the call has succeeded.
            # The drain thread copies it once the log's master answers.
            with self._pending_lock:
                self._pending.setdefault(outbox, set()).add(entry_id)
                self.copies_held_back += 1
            log.warning("decision kept in its slot's outbox until the log answers: %s", type(exc).__name__)

    def _copy_to_log(self, outbox: str, entry_id: str, fields: dict[str, str]) -> None:
        s = self.settings
        self._client.xadd(self.log_key, fields, maxlen=s.decision_maxlen, approximate=True)  # type: ignore[arg-type]
        if s.decision_max_age is not None:
            cutoff = int((time.time() - s.decision_max_age.total_seconds()) * 1000)
            self._client.xtrim(self.log_key, minid=str(cutoff), approximate=False)  # as the scripts do
        self._client.xdel(outbox, entry_id)

    @property
    def pending_copies(self) -> int:
        """Decisions this process holds back in outboxes until the log answers (cluster mode)."""
        with self._pending_lock:
            return sum(len(ids) for ids in self._pending.values())

    def drain_pending(self) -> int:
        """Copy to the log the decisions whose copy failed in this process; no scan, one read each.

        Raises StoreUnavailableError when Redis does not answer; what was not copied stays pending.
        """
        with self._pending_lock:
            if not self._pending:
                return 0
        moved = 0
        with self._retry_lock:
            with self._pending_lock:
                pending = [(outbox, entry_id) for outbox, ids in self._pending.items() for entry_id in sorted(ids)]
            for outbox, entry_id in pending:
                with self._reach():
                    # Still there unless a sweep elsewhere has copied it meanwhile.
                    held: list[tuple[str, dict[str, str]]] = self._client.xrange(  # type: ignore[assignment]
                        outbox, min=entry_id, max=entry_id
                    )
                    for _, fields in held:
                        self._copy_to_log(outbox, entry_id, fields)
                        moved += 1
                with self._pending_lock:
                    ids = self._pending.get(outbox, set())
                    ids.discard(entry_id)
                    if not ids:
                        self._pending.pop(outbox, None)
        if moved:
            log.info("decisions held in outboxes copied to the log", extra={"count": moved})
        return moved

    def drain_outbox(self, settle_seconds: float = OUTBOX_SETTLE_SECONDS) -> int:
        """Sweep: copy decisions left in every slot's outbox (older than `settle_seconds`) to the log.

        Scans each master's keyspace for outboxes; the drain thread runs it every sweep interval
        for decisions a process that died between its write and its copy left behind.
        """
        if not self._cluster:
            return 0
        with self._sweep_lock, self._reach():
            newest = f"{int((time.time() - settle_seconds) * 1000)}"
            moved = 0
            pattern = f"{self.settings.key_prefix}{{o*}}:outbox"
            for outbox in self._client.scan_iter(match=pattern, count=1000, _type="STREAM"):
                entries: list[tuple[str, dict[str, str]]] = self._client.xrange(  # type: ignore[assignment]
                    outbox, max=newest, count=1000
                )
                for entry_id, fields in entries:
                    self._copy_to_log(outbox, entry_id, fields)
                    moved += 1
                with self._pending_lock:  # copied by this sweep: nothing left for drain_pending
                    ids = self._pending.get(outbox)
                    if ids is not None:
                        ids.difference_update(entry_id for entry_id, _ in entries)
                        if not ids:
                            del self._pending[outbox]
            self._sweep_due = False
        if moved:
            log.warning("decisions forwarded from outboxes to the log", extra={"count": moved})
        return moved

    def _drain_loop(self) -> None:
        """The drain thread (cluster mode): retries failed copies, sweeps now and then; never raises."""
        while not self._closing.wait(self._drain_interval):
            try:
                self.drain_pending()
                since = time.monotonic() - self._swept_at
                if since >= self._sweep_interval or (self._sweep_due and since >= SWEEP_RETRY_SECONDS):
                    self._swept_at = time.monotonic()
                    self._sweep_due = True  # until a sweep completes
                    self.drain_outbox()
            except StoreUnavailableError as exc:
                log.debug("outbox drain deferred: %s", exc)
            except Exception:  # a bug must not end the thread: the next interval tries again
                log.exception("outbox drain failed")

    def _lifecycle_args(self, ruleset: str, raised: Sequence[Sighting], now: dt.datetime) -> list[str | int]:
        """What the RECORD and COMMIT scripts both take first: the common settings, the ruleset,
        the moment and the flags raised (each rule once, at its highest severity)."""
        lifecycle.check_ruleset(ruleset)
        sightings = [[s.rule_id, int(s.severity)] for s in lifecycle.unique_sightings(raised)]
        return [
            *self._common_args(),
            ruleset,
            now.isoformat(),
            now.date().isoformat(),
            self.settings.raised_history,
            compact_json(sightings),
        ]

    def _common_args(self) -> list[str | int]:
        s = self.settings
        return [
            max(1, int(s.retention.total_seconds() * 1000)),
            "" if s.decision_maxlen is None else s.decision_maxlen,
            "" if s.decision_max_age is None else int(s.decision_max_age.total_seconds() * 1000),
            s.case_decision_maxlen,
        ]

    # -- facts -----------------------------------------------------------------------------

    def merge_case(
        self,
        case_id: str,
        incoming: CaseFacts,
        withdrawn: Sequence[tuple[str, str]] = (),
        *,
        now: dt.datetime,
    ) -> StoredCase:
        with metrics.observe_store("merge_case"):
            upserts = stored_facts(incoming)
            if has_data(incoming.child):
                upserts.append((CHILD_FIELD, child_json(incoming.child)))
            deleted = [fact_field(t, i) for t, i in withdrawn]
            args: list[str | int] = [*self._common_args(), len(upserts), *(part for pair in upserts for part in pair)]
            args += deleted
            # The reply holds the stored fields the merge did not set: the rest the caller has.
            flat = self._run(self._merge, self.case_keys(case_id), args)
            rest = _pairs(flat)
            fields = dict(upserts)
            for field in deleted:
                fields.pop(field, None)
            fields.update(rest)
            case = merged_records(case_id, incoming, withdrawn, rest)
            return StoredCase(case, revision_of(rest), fields_digest(case_id, fields))

    def read_merged(self, case_id: str, incoming: CaseFacts, withdrawn: Sequence[tuple[str, str]] = ()) -> MergedCase:
        with metrics.observe_store("read_merged"):
            upserts = stored_facts(incoming)
            if has_data(incoming.child):
                upserts.append((CHILD_FIELD, child_json(incoming.child)))
            deleted = [fact_field(t, i) for t, i in withdrawn]
            args: list[str | int] = [len(upserts), *(part for pair in upserts for part in pair), *deleted]
            # One read-only script: the stored fields the request did not send, and which sent ones differ.
            revision, flat, differing = self._run(self._read, self.case_keys(case_id)[:1], args)
            rest = _pairs(flat)
            fields = dict(upserts)
            gone = [field for field in deleted if field in fields or field in rest]
            for field in gone:
                fields.pop(field, None)
                rest.pop(field, None)
            fields.update(rest)
            case = merged_records(case_id, incoming, withdrawn, rest)
            writes = _Writes([upserts[i - 1] for i in differing], gone)
            return MergedCase(case_id, StoredCase(case, int(revision), fields_digest(case_id, fields)), writes)

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
        with metrics.observe_store("commit_evaluation"):
            writes = merged.writes
            if not isinstance(writes, _Writes):
                raise TypeError("a MergedCase from another store")
            args = self._lifecycle_args(ruleset, raised, now)
            args += [
                merged.stored.revision,
                _equality_arg(decision.ruleset_version, groups),
                len(writes.sets),
                *(part for pair in writes.sets for part in pair),
                len(writes.deletes),
                *writes.deletes,
                *_decision_args(decision),
            ]
            keys = [*self.case_keys(merged.case_id), self._log_target(merged.case_id)]
            if groups is not None:
                keys += [self.equality_key(merged.case_id), self.equality_counts_key(merged.case_id)]
            reply = self._run(self._commit, keys, args)
            if reply[0] == "changed":
                raise CaseChangedError(merged.stored)
            raised_out, resolved_out, logged, counted = reply
            _count_equality(counted)
            states = _states(raised_out, resolved_out)
            self._forward(merged.case_id, logged, decision, states)
            return states

    def delete_case(self, case_id: str) -> CaseDeletion:
        with metrics.observe_store("delete_case"):
            args: list[str | int] = [self._common_args()[0]]
            keys = [*self.case_keys(case_id), self.equality_key(case_id)]
            facts, flags, decisions = self._run(self._delete, keys, args)
            return CaseDeletion(int(facts), int(flags), int(decisions))

    def load_case(self, case_id: str) -> Case | None:
        with metrics.observe_store("load_case"):
            with self._reach():
                fields: dict[str, str] = self._client.hgetall(self.case_keys(case_id)[0])  # type: ignore[assignment]
            return case_from_fields(case_id, fields)

    def retention_left(self, case_id: str) -> dt.timedelta | None:
        with metrics.observe_store("retention_left"):
            with self._reach():
                pipe = self._client.pipeline(transaction=False)
                for key in self.case_keys(case_id):
                    pipe.pttl(key)
                pipe.hlen(self.case_keys(case_id)[0])
                *ttls, facts_fields = pipe.execute()
                if facts_fields <= 1:  # no facts hash, or a deleted case's tombstone (the revision alone)
                    ttls[0] = -2
                left = [ms for ms in ttls if ms >= 0]  # -2: no such key
            return dt.timedelta(milliseconds=max(left)) if left else None

    # -- flags -----------------------------------------------------------------------------

    def record_flags(self, case_id: str, ruleset: str, raised: Sequence[Sighting], now: dt.datetime) -> FlagStates:
        with metrics.observe_store("record_flags"):
            return self._record_states(case_id, ruleset, raised, None, now)

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
        with metrics.observe_store("record_evaluation"):
            return self._record_states(case_id, ruleset, raised, decision, now, revision, groups)

    def _record_states(
        self,
        case_id: str,
        ruleset: str,
        raised: Sequence[Sighting],
        decision: DecisionRecord | None,
        now: dt.datetime,
        revision: int | None = None,
        groups: Groups | None = None,
    ) -> FlagStates:
        args = self._lifecycle_args(ruleset, raised, now)
        counting = decision is not None and groups is not None
        version = decision.ruleset_version if decision is not None else ""
        args += [
            "0" if decision is None else "1",
            "" if revision is None else revision,
            _equality_arg(version, groups) if counting else "",
        ]
        keys = self.case_keys(case_id)
        if decision is not None:
            keys.append(self._log_target(case_id))
            args += _decision_args(decision)
        if counting:
            keys += [self.equality_key(case_id), self.equality_counts_key(case_id)]
        reply = self._run(self._record, keys, args)
        if reply[0] == "changed":
            raise CaseChangedError(_stored_case(case_id, reply[1]))
        raised_out, resolved_out, logged, counted = reply
        _count_equality(counted)
        states = _states(raised_out, resolved_out)
        if decision is not None:
            self._forward(case_id, logged, decision, states)
        return states

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
        with metrics.observe_store("acknowledge"):
            lifecycle.check_acknowledgement(practitioner_id, reason_code, snooze_until, now.date())
            args: list[str | int] = [
                *self._common_args(),
                f"{ruleset}/{rule_id}",
                practitioner_id,
                reason_code,
                now.isoformat(),
                "" if snooze_until is None else snooze_until.isoformat(),
                ruleset,
                rule_id,
            ]
            keys = [*self.case_keys(case_id), self.equality_key(case_id), self.equality_counts_key(case_id)]
            reply = self._run(self._acknowledge, keys, args)
            if reply is None:
                raise FlagNotFoundError(f"flag {rule_id!r} of ruleset {ruleset!r} is not raised for the case")
            text, counted = reply
            _count_equality(counted)
            return flag_from_json(text)

    def equality_counts(self) -> dict[equality.CellKey, int]:
        with metrics.observe_store("equality_counts"), self._reach():
            if self._cluster:
                pattern = f"{self.settings.key_prefix}{{o*}}:equality-counts"
                keys = list(self._client.scan_iter(match=pattern, count=1000, _type="HASH"))
            else:
                keys = [self.equality_counts_key("")]
            counts: dict[equality.CellKey, int] = {}
            for key in keys:
                fields: dict[str, str] = self._client.hgetall(key)  # type: ignore[assignment]
                for field, value in fields.items():
                    cell = equality.cell_key(field)
                    if cell is not None:
                        counts[cell] = counts.get(cell, 0) + int(value)
            return {cell: n for cell, n in counts.items() if n}

    # -- decision log ----------------------------------------------------------------------

    def append_decision(self, record: DecisionRecord) -> None:
        with metrics.observe_store("append_decision"):
            fields = decision_fields(record)
            args = [*self._common_args(), *(part for pair in fields.items() for part in pair)]
            logged = self._run(self._append, [*self.case_keys(record.case_id), self._log_target(record.case_id)], args)
            self._forward(record.case_id, logged, record, FlagStates((), ()))

    def decisions(self, case_id: str | None = None, limit: int = 100) -> list[DecisionRecord]:
        with metrics.observe_store("decisions"):
            # A case's decisions come from its own index stream: reading them never scans the log.
            key = self.log_key if case_id is None else self.case_keys(case_id)[2]
            if case_id is None and self._pending:  # what this process holds back goes first
                with suppress(StoreUnavailableError):
                    self.drain_pending()
            with self._reach():
                entries: list[tuple[str, dict[str, str]]] = self._client.xrevrange(  # type: ignore[assignment]
                    key, count=limit
                )
            return [decision_from_fields(fields) for _, fields in entries]

    # -- chronology ------------------------------------------------------------------------

    def chronology(self, case_id: str) -> list[ChronologyEntry]:
        with metrics.observe_store("chronology"):
            facts_key, flags_key, _ = self.case_keys(case_id)
            with self._reach():
                pipe = self._client.pipeline(transaction=False)
                pipe.hgetall(facts_key)
                pipe.hgetall(flags_key)
                facts, flags = pipe.execute()
            case = case_from_fields(case_id, facts)
            return build_chronology(case, (flag_from_json(t) for t in flags.values()))

    # -- lifecycle -------------------------------------------------------------------------

    def ping(self) -> None:
        with metrics.observe_store("ping"), self._reach():
            self._client.ping()

    def close(self) -> None:
        self._closing.set()
        if self._drainer is not None:
            self._drainer.join(timeout=5)
        self._client.close()
        if self._sentinel is not None:
            for client in self._sentinel.sentinels:
                client.close()

    def _run(self, script: Script, keys: list[str], args: list[str | int]) -> Any:
        with self._reach():
            return script(keys=keys, args=args)

    @contextmanager
    def _reach(self) -> Iterator[None]:
        """Turn Redis being away into StoreUnavailableError; its message names no case or fact."""
        try:
            yield
        except (redis.exceptions.ClusterError, redis.exceptions.RedisClusterException) as exc:
            # No node answers for the slot (a master failing over), or the cluster is down.
            raise StoreUnavailableError(f"case store unavailable: Redis {self._where}: {type(exc).__name__}") from exc
        except redis.TimeoutError as exc:
            raise StoreUnavailableError(f"case store unavailable: Redis at {self._where} timed out") from exc
        except redis.ConnectionError as exc:
            raise StoreUnavailableError(f"case store unavailable: cannot reach Redis at {self._where}") from exc
        except redis.ResponseError as exc:
            if str(exc).startswith(_UNAVAILABLE_REPLIES):
                reply = str(exc).split(" ", 1)[0]
                message = f"case store unavailable: Redis at {self._where} replied {reply}"
                raise StoreUnavailableError(message) from exc
            raise


_SLOT_TAGS: list[str] = []


def _slot_tags() -> list[str]:
    """For each cluster slot, a short hash tag that hashes to it (about 0.1 s to find them all)."""
    if not _SLOT_TAGS:
        tags: dict[int, str] = {}
        n = 0
        while len(tags) < REDIS_CLUSTER_HASH_SLOTS:
            tags.setdefault(key_slot(f"o{n}".encode()), f"o{n}")
            n += 1
        _SLOT_TAGS[:] = [tags[slot] for slot in range(REDIS_CLUSTER_HASH_SLOTS)]
    return _SLOT_TAGS


def _cluster_nodes(url: str) -> tuple[list[ClusterNode], dict[str, Any]]:
    """`redis+cluster://[user:password@]host:port[,host:port...]` as startup nodes and options."""
    scheme, rest = url.split("://", 1)
    options: dict[str, Any] = {"ssl": True} if scheme.startswith("rediss") else {}
    rest = rest.split("/", 1)[0]
    if "@" in rest:
        credentials, rest = rest.rsplit("@", 1)
        user, _, password = credentials.rpartition(":")
        options.update({"username": user or None, "password": password or None})
    nodes = []
    for address in rest.split(","):
        host, _, port = address.rpartition(":")
        nodes.append(ClusterNode(host or "localhost", int(port or 6379)))  # type: ignore[no-untyped-call, unused-ignore]
    return nodes, options


class _Writes(NamedTuple):
    """What COMMIT writes to the facts hash: the sent pairs that differ, the withdrawn fields held."""

    sets: list[tuple[str, str]]
    deletes: list[str]


def _states(raised: list[str], resolved: list[str]) -> FlagStates:
    return FlagStates(tuple(flag_from_json(t) for t in raised), tuple(flag_from_json(t) for t in resolved))


def _stored_case(case_id: str, flat: list[str]) -> StoredCase:
    """A case from a flat HGETALL reply of its facts hash."""
    fields = _pairs(flat)
    return StoredCase(records_from_fields(case_id, fields), revision_of(fields), fields_digest(case_id, fields))


def _equality_arg(version: str, groups: Groups | None) -> str:
    """The scripts' equality argument: '' to count nothing, else the version and the child's four
    groups, tab-separated (no part holds a tab: a version is hex digits, groups checked codes)."""
    if groups is None:
        return ""
    return f"{version}\t{groups[0]}\t{groups[1]}\t{groups[2]}\t{groups[3]}"


def _count_equality(outcomes: list[str]) -> None:
    if outcomes:
        metrics.count_equality(outcomes)


def _decision_args(decision: DecisionRecord) -> list[str]:
    """A decision's fields as script arguments; its flags are left out, since the script writes
    them from the states it computes."""
    fields = decision_fields(decision)
    del fields["flags"]
    return [part for pair in fields.items() for part in pair]


def _pairs(flat: list[str]) -> dict[str, str]:
    """A flat field, value, field, value... reply as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))

"""The Redis case store; the only module that imports redis.

Keys of one case share the hash tag `{case_id}`, so one Redis Cluster slot holds them all:

    <prefix>{<case_id>}:facts      hash  "<fact type>:<id>" -> fact JSON, "child" -> child JSON
    <prefix>{<case_id>}:flags      hash  "<ruleset>/<rule_id>" -> flag record JSON
    <prefix>{<case_id>}:decisions  stream, the case's newest decisions (an index of the log)
    <prefix>decisions              stream, the decision log of every case, for downstream consumers

One flags hash per case (not per ruleset) keeps every key name known to the client, so each Lua
script declares all the keys it touches and retention is refreshed on a fixed set of three keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.connection import SSLConnection, parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from rules_engine import metrics
from rules_engine.errors import CaseChangedError, FlagNotFoundError, StoreUnavailableError
from rules_engine.facts import Case, CaseFacts
from rules_engine.store import lifecycle, scripts
from rules_engine.store.base import (
    DEFAULT_SETTINGS,
    CaseDeletion,
    CaseStore,
    ChronologyEntry,
    DecisionRecord,
    FlagRecord,
    FlagSighting,
    FlagStates,
    MergedCase,
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

# Redis refusing work it would normally do: out of memory under noeviction, a replica after a
# failover, still loading its data. The caller may retry, as with a lost connection.
_UNAVAILABLE_REPLIES = ("OOM", "READONLY", "MASTERDOWN", "LOADING", "BUSY", "CLUSTERDOWN", "TRYAGAIN")


@metrics.instrument_store  # each operation's latency and errors
class RedisStore(CaseStore):
    """Shares case state between processes; each call is at most one round trip to Redis."""

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
        if sentinels:
            parsed: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
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
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(sentinels), sentinel_kwargs=sentinel_options, **parsed, **options
            )
            self._client: redis.Redis = self._sentinel.master_for(sentinel_service)  # type: ignore[no-untyped-call]
            self._where = f"sentinel service {sentinel_service}"
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

    # -- keys ------------------------------------------------------------------------------

    def case_keys(self, case_id: str) -> list[str]:
        """The case's facts, flags and decision index keys, in the order the scripts expect."""
        base = f"{self.settings.key_prefix}{{{case_id}}}"
        return [f"{base}:facts", f"{base}:flags", f"{base}:decisions"]

    @property
    def log_key(self) -> str:
        return f"{self.settings.key_prefix}decisions"

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
        raised: Sequence[FlagSighting],
        decision: DecisionRecord,
        now: dt.datetime,
    ) -> FlagStates:
        writes = merged.writes
        if not isinstance(writes, _Writes):
            raise TypeError("a MergedCase from another store")
        lifecycle.check_ruleset(ruleset)
        sightings = [[s.rule_id, int(s.severity)] for s in lifecycle.unique_sightings(raised)]
        fields = decision_fields(decision)
        del fields["flags"]  # the script writes them from the states it computes
        args: list[str | int] = [
            *self._common_args(),
            ruleset,
            now.isoformat(),
            now.date().isoformat(),
            self.settings.raised_history,
            compact_json(sightings),
            merged.stored.revision,
            len(writes.sets),
            *(part for pair in writes.sets for part in pair),
            len(writes.deletes),
            *writes.deletes,
            *(part for pair in fields.items() for part in pair),
        ]
        reply = self._run(self._commit, [*self.case_keys(merged.case_id), self.log_key], args)
        if reply[0] == "changed":
            raise CaseChangedError(merged.stored)
        raised_out, resolved_out, _ = reply
        return FlagStates(tuple(flag_from_json(t) for t in raised_out), tuple(flag_from_json(t) for t in resolved_out))

    def delete_case(self, case_id: str) -> CaseDeletion:
        facts, flags, decisions = self._run(self._delete, self.case_keys(case_id), [])
        return CaseDeletion(int(facts), int(flags), int(decisions))

    def load_case(self, case_id: str) -> Case | None:
        with self._reach():
            fields: dict[str, str] = self._client.hgetall(self.case_keys(case_id)[0])  # type: ignore[assignment]
        return case_from_fields(case_id, fields)

    def retention_left(self, case_id: str) -> dt.timedelta | None:
        with self._reach():
            pipe = self._client.pipeline(transaction=False)
            for key in self.case_keys(case_id):
                pipe.pttl(key)
            left = [ms for ms in pipe.execute() if ms >= 0]  # -2: no such key
        return dt.timedelta(milliseconds=max(left)) if left else None

    # -- flags -----------------------------------------------------------------------------

    def record_flags(self, case_id: str, ruleset: str, raised: Sequence[FlagSighting], now: dt.datetime) -> FlagStates:
        return self._record_states(case_id, ruleset, raised, None, now)

    def record_evaluation(
        self,
        case_id: str,
        ruleset: str,
        raised: Sequence[FlagSighting],
        decision: DecisionRecord,
        now: dt.datetime,
        *,
        revision: int | None = None,
    ) -> FlagStates:
        return self._record_states(case_id, ruleset, raised, decision, now, revision)

    def _record_states(
        self,
        case_id: str,
        ruleset: str,
        raised: Sequence[FlagSighting],
        decision: DecisionRecord | None,
        now: dt.datetime,
        revision: int | None = None,
    ) -> FlagStates:
        lifecycle.check_ruleset(ruleset)
        sightings = [[s.rule_id, int(s.severity)] for s in lifecycle.unique_sightings(raised)]
        args: list[str | int] = [
            *self._common_args(),
            ruleset,
            now.isoformat(),
            now.date().isoformat(),
            self.settings.raised_history,
            compact_json(sightings),
            "0" if decision is None else "1",
            "" if revision is None else revision,
        ]
        keys = self.case_keys(case_id)
        if decision is not None:
            keys.append(self.log_key)
            fields = decision_fields(decision)
            del fields["flags"]  # the script writes them from the states it computes
            args += [part for pair in fields.items() for part in pair]
        raised_out, resolved_out = self._run(self._record, keys, args)
        if raised_out == "changed":
            raise CaseChangedError(_stored_case(case_id, resolved_out))
        return FlagStates(tuple(flag_from_json(t) for t in raised_out), tuple(flag_from_json(t) for t in resolved_out))

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
        args: list[str | int] = [
            *self._common_args(),
            f"{ruleset}/{rule_id}",
            practitioner_id,
            reason_code,
            now.isoformat(),
            "" if snooze_until is None else snooze_until.isoformat(),
        ]
        text = self._run(self._acknowledge, self.case_keys(case_id), args)
        if text is None:
            raise FlagNotFoundError(f"flag {rule_id!r} of ruleset {ruleset!r} is not raised for the case")
        return flag_from_json(text)

    # -- decision log ----------------------------------------------------------------------

    def append_decision(self, record: DecisionRecord) -> None:
        fields = decision_fields(record)
        args = [*self._common_args(), *(part for pair in fields.items() for part in pair)]
        self._run(self._append, [*self.case_keys(record.case_id), self.log_key], args)

    def decisions(self, case_id: str | None = None, limit: int = 100) -> list[DecisionRecord]:
        # A case's decisions come from its own index stream: reading them never scans the log.
        key = self.log_key if case_id is None else self.case_keys(case_id)[2]
        with self._reach():
            entries: list[tuple[str, dict[str, str]]] = self._client.xrevrange(  # type: ignore[assignment]
                key, count=limit
            )
        return [decision_from_fields(fields) for _, fields in entries]

    # -- chronology ------------------------------------------------------------------------

    def chronology(self, case_id: str) -> list[ChronologyEntry]:
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
        with self._reach():
            self._client.ping()

    def close(self) -> None:
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


class _Writes(NamedTuple):
    """What COMMIT writes to the facts hash: the sent pairs that differ, the withdrawn fields held."""

    sets: list[tuple[str, str]]
    deletes: list[str]


def _stored_case(case_id: str, flat: list[str]) -> StoredCase:
    """A case from a flat HGETALL reply of its facts hash."""
    fields = _pairs(flat)
    return StoredCase(records_from_fields(case_id, fields), revision_of(fields), fields_digest(case_id, fields))


def _pairs(flat: list[str]) -> dict[str, str]:
    """A flat field, value, field, value... reply as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))

"""What only the Redis store must show: key layout, atomicity across clients, and riding out an outage."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from rules_engine.case import records
from rules_engine.case.facts import Child
from rules_engine.errors import StoreUnavailableError
from rules_engine.policy.compiled import Severity
from rules_engine.store import StoreSettings
from rules_engine.store.codec import case_from_fields, fields_digest, revision_of
from rules_engine.store.redis import RedisStore
from tests.store.conftest import RedisServer, free_port
from tests.store.helpers import CASE, NOW, big_case, case, concern, decision, flags


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def rstore(redis_server: RedisServer) -> Iterator[RedisStore]:
    store = RedisStore(redis_server.url, StoreSettings(key_prefix=f"r{time.monotonic_ns()}:"))
    yield store
    store.close()


def test_one_case_keys_share_a_hash_slot(rstore: RedisStore, raw: redis.Redis) -> None:
    rstore.merge_facts(CASE, case(concern("a")), now=NOW)
    rstore.record_evaluation(CASE, "rs", flags(("R1", Severity.HIGH)), decision("d1"), now=NOW)
    keys = sorted(raw.keys(f"{rstore.settings.key_prefix}{{{CASE}}}*"))
    assert keys == sorted(rstore.case_keys(CASE))
    assert len({key_slot(str(k).encode()) for k in keys}) == 1
    assert all(raw.pttl(k) > 0 for k in keys)
    assert raw.pttl(rstore.log_key) == -1  # the shared log is trimmed, not expired


def test_stored_fact_json_is_compact(rstore: RedisStore, raw: redis.Redis) -> None:
    rstore.merge_facts(CASE, case(concern("a")), now=NOW)
    stored = raw.hget(rstore.case_keys(CASE)[0], "concerns:a")
    assert stored == '{"id":"a","date":"2025-01-01","agency":"POLICE"}'


def test_log_entry_holds_ids_codes_and_a_digest_only(rstore: RedisStore, raw: redis.Redis) -> None:
    rstore.record_evaluation(CASE, "rs", flags(("R1", Severity.HIGH)), decision("d1"), now=NOW)
    entries: list[tuple[str, dict[str, str]]] = raw.xrange(rstore.log_key)  # type: ignore[assignment]
    [(_, fields)] = entries
    assert fields == {
        "decision_id": "d1",
        "time": NOW.isoformat(),
        "case_id": CASE,
        "ruleset": "safeguarding",
        "ruleset_version": "abc123def456",
        "input_digest": "0" * 64,
        "flags": '[{"rule_id":"R1","state":"NEW","severity":"HIGH"}]',
    }


def test_scripts_are_reloaded_after_script_flush(rstore: RedisStore, raw: redis.Redis) -> None:
    rstore.merge_facts(CASE, case(concern("a")), now=NOW)
    raw.script_flush()  # as after a failover to a replica that never saw the scripts
    assert [c.id for c in rstore.merge_facts(CASE, case(concern("b")), now=NOW).concerns] == ["a", "b"]


def test_concurrent_writers_store_each_fact_once_and_report_each_flag_new_once(
    redis_server: RedisServer,
) -> None:
    settings = StoreSettings(key_prefix=f"c{time.monotonic_ns()}:")
    # Two clients with their own connection pools stand for two server processes.
    stores = [RedisStore(redis_server.url, settings), RedisStore(redis_server.url, settings)]
    cases = [f"case-{i}" for i in range(4)]
    rules = flags(("R1", Severity.HIGH), ("R2", Severity.MEDIUM), ("R3", Severity.LOW))
    new_reports: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            store = stores[worker % 2]
            for round_ in range(25):
                for case_id in cases:
                    # Overlapping fact ids: every worker sends some of the same 20 facts each round.
                    ids = [f"f{(worker + round_ + k) % 20}" for k in range(5)]
                    store.merge_facts(case_id, case(*(concern(i) for i in ids), case_id=case_id), now=NOW)
                    states = store.record_evaluation(
                        case_id, "rs", rules, decision(f"{worker}-{round_}", case_id), now=NOW
                    )
                    with lock:
                        new_reports.update((case_id, rule_id) for rule_id in states.new)
        except BaseException as exc:  # reported below; a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert new_reports == Counter({(c, r.rule_id): 1 for c in cases for r in rules})
        for case_id in cases:
            stored = stores[0].load_case(case_id)
            assert stored is not None
            assert sorted(c.id for c in stored.concerns) == sorted(f"f{i}" for i in range(20))
            assert len(stores[1].decisions(case_id, limit=1000)) == 16 * 25
    finally:
        for s in stores:
            s.close()


def _timed(call: object) -> float:
    start = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        call()  # type: ignore[operator]
    assert CASE not in str(info.value) and "POLICE" not in str(info.value)
    return time.monotonic() - start


def test_outage_fails_fast_and_recovers_without_losing_acknowledged_writes(
    persistent_redis_server: RedisServer,
) -> None:
    server = persistent_redis_server
    store = RedisStore(server.url, StoreSettings(key_prefix="fault:"))
    acknowledged: list[str] = []
    try:
        for i in range(20):
            store.merge_facts(CASE, case(concern(f"f{i}")), now=NOW)
            acknowledged.append(f"f{i}")
            store.record_evaluation(CASE, "rs", flags(("R1", Severity.HIGH)), decision(f"d{i}"), now=NOW)
        server.kill()  # mid-run, SIGKILL: nothing gets flushed on the way out
        calls = [
            lambda: store.merge_facts(CASE, case(concern("lost")), now=NOW),
            lambda: store.load_case(CASE),
            lambda: store.record_evaluation(CASE, "rs", [], decision("lost"), now=NOW),
            lambda: store.decisions(CASE),
            lambda: store.chronology(CASE),
            store.ping,
        ]
        assert max(_timed(c) for c in calls) < 0.3  # refused connections fail at once

        server.start()  # same port, same AOF directory
        stored = store.load_case(CASE)  # the same client object reconnects by itself
        assert stored is not None
        assert sorted(c.id for c in stored.concerns) == sorted(acknowledged)
        assert [d.decision_id for d in store.decisions(CASE, limit=100)] == [f"d{i}" for i in reversed(range(20))]
        assert store.record_flags(CASE, "rs", flags(("R1", Severity.HIGH)), now=NOW).new == ()
    finally:
        store.close()


def test_a_hung_redis_times_out_within_the_socket_timeout(persistent_redis_server: RedisServer) -> None:
    server = persistent_redis_server
    store = RedisStore(server.url, StoreSettings(key_prefix="hung:"), socket_timeout=0.3, connect_timeout=0.3)
    assert server.process is not None
    pid = server.process.pid
    try:
        store.merge_facts(CASE, case(concern("a")), now=NOW)
        os.kill(pid, signal.SIGSTOP)  # accepts connections (kernel backlog) but never answers
        try:
            durations = [
                _timed(lambda: store.load_case(CASE)),
                _timed(lambda: store.merge_facts(CASE, case(concern("b")), now=NOW)),
            ]
        finally:
            os.kill(pid, signal.SIGCONT)
        assert max(durations) < 0.9
        stored = store.load_case(CASE)
        assert stored is not None and "a" in [c.id for c in stored.concerns]
    finally:
        store.close()


def test_nothing_listening_fails_fast() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert _timed(store.ping) < 0.3
    finally:
        store.close()


def test_open_store_picks_the_store_by_url(redis_server: RedisServer) -> None:
    from rules_engine.store import MemoryStore, open_store

    assert isinstance(open_store(None), MemoryStore)
    store = open_store(redis_server.url)
    try:
        assert isinstance(store, RedisStore)
        store.ping()
    finally:
        store.close()


def test_time_is_stored_as_given(rstore: RedisStore) -> None:
    london = dt.timezone(dt.timedelta(hours=1))
    when = dt.datetime(2025, 6, 1, 0, 30, tzinfo=london)  # still 31 May in UTC
    rstore.record_flags(CASE, "rs", flags(("R1", Severity.HIGH)), now=when)
    [entry] = rstore.chronology(CASE)
    assert entry.date == dt.date(2025, 6, 1)


def test_a_merge_returns_what_was_stored_though_redis_sends_back_only_what_was_not_sent(
    rstore: RedisStore, raw: redis.Redis
) -> None:
    """The merge reply leaves out the fields just set; the case and digest must still be the whole
    stored case's, as reading the hash back gives them."""
    born = Child(birth_date=dt.date(2016, 4, 1))
    rstore.merge_case(CASE, case(concern("a", 1), concern("b", 2), child=born), now=NOW)
    steps = [
        (case(concern("b", 2, agency="HEALTH"), concern("c", 3)), []),  # one changed, one new, "a" kept
        (records.of(case(concern("c", 3))), [("concerns", "a")]),  # records, a withdrawal
        (case(concern("d", 3)), [("concerns", "d")]),  # sent and withdrawn at once: withdrawn
        (case(concern("e", 3), concern("e", 4)), []),  # one id twice (only code builds that): the last
        (big_case(60), []),
        (case(), []),  # nothing sent: everything comes back
    ]
    for incoming, withdrawn in steps:
        merged = rstore.merge_case(CASE, incoming, withdrawn, now=NOW)
        fields = raw.hgetall(rstore.case_keys(CASE)[0])
        assert records.of(merged.case) == records.of(case_from_fields(CASE, fields))
        assert merged.digest == fields_digest(CASE, fields)
        assert merged.revision == revision_of(fields)


def test_resending_a_stored_case_writes_nothing(rstore: RedisStore, raw: redis.Redis) -> None:
    big = big_case(100)
    first = rstore.merge_case(CASE, big, now=NOW)
    before = raw.info("commandstats")["cmdstat_hset"]["calls"]  # the first merge wrote every fact
    again = rstore.merge_case(CASE, records.of(big), now=NOW)
    assert raw.info("commandstats")["cmdstat_hset"]["calls"] == before
    assert again.revision == first.revision and again.digest == first.digest


def test_merges_larger_than_one_script_batch_round_trip(rstore: RedisStore, raw: redis.Redis) -> None:
    """The merge script compares and writes in batches of 1,000 facts; 2,500 take three."""
    big = big_case(2_500)
    first = rstore.merge_case(CASE, big, now=NOW)
    changed = records.of(big)._replace(concerns=(*records.of(big).concerns[1:], records.of(concern("new", 2))))
    second = rstore.merge_case(CASE, changed, now=NOW)
    fields = raw.hgetall(rstore.case_keys(CASE)[0])
    assert len(fields) == 2_500 + 1 + 1 + 1  # the facts, "new", the child and the revision
    assert records.of(second.case) == records.of(case_from_fields(CASE, fields))
    assert second.revision == first.revision + 1 and second.digest == fields_digest(CASE, fields)

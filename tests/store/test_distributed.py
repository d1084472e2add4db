"""The Redis store on a real Redis Cluster (three masters) and through a Sentinel failover (issue 14, point 6).

The shared store behaviour runs on the cluster too (the `store` fixture's "cluster" param); these
are what only a distributed Redis shows.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from redis.crc import key_slot

from rules_engine.case import records
from rules_engine.case.facts import Concern
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.errors import StoreUnavailableError
from rules_engine.policy.compiled import Severity
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.store import StoreSettings, open_store
from rules_engine.store.redis import OUTBOX_SETTLE_SECONDS, RedisStore
from tests.redis_cluster import RedisClusterServers, SentinelSetup
from tests.store.helpers import CASE, NOW, case, concern, decision, flags

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.datetime(2025, 6, 30, 12, tzinfo=dt.UTC)


@pytest.fixture
def cstore(redis_cluster: RedisClusterServers) -> Iterator[RedisStore]:
    store = open_store(redis_cluster.url, StoreSettings(key_prefix=f"d{time.monotonic_ns()}:"))
    assert isinstance(store, RedisStore)
    yield store
    store.close()


def test_every_key_of_a_case_and_its_outbox_share_one_slot_on_the_cluster(cstore: RedisStore) -> None:
    for case_id in ("case-1", "a", "Zx-99", "case:with:colons"):
        cstore.merge_facts(case_id, case(concern("a"), case_id=case_id), now=NOW)
        cstore.record_evaluation(case_id, "rs", flags(("R1", Severity.HIGH)), decision("d", case_id), now=NOW)
        keys = [*cstore.case_keys(case_id), cstore.outbox_key(case_id)]
        assert len({key_slot(k.encode()) for k in keys}) == 1
        assert all(cstore._client.exists(k) for k in keys[:3])
    # Every decision reached the shared log, and no outbox holds one any more.
    assert len(cstore.decisions(None)) == 4
    assert all(cstore._client.xlen(cstore.outbox_key(c)) == 0 for c in ("case-1", "a", "Zx-99"))


def test_a_decision_the_log_cannot_take_waits_in_its_outbox_and_is_forwarded(cstore: RedisStore) -> None:
    """The case's slot holds the decision atomically with the case; the shared log may lag, never lose it."""
    cstore._client.set(cstore.log_key, "not a stream")  # the log refuses the copy
    states = cstore.record_evaluation(CASE, "rs", flags(("R1", Severity.HIGH)), decision("d1"), now=NOW)
    assert states.new == ("R1",)  # the call succeeded: the decision is stored with the case
    assert [d.decision_id for d in cstore.decisions(CASE)] == ["d1"]
    outbox = cstore.outbox_key(CASE)
    assert cstore._client.xlen(outbox) == 1

    cstore._client.delete(cstore.log_key)
    assert cstore.drain_outbox(settle_seconds=0) == 1
    assert [(d.decision_id, [f.rule_id for f in d.flags]) for d in cstore.decisions(None)] == [("d1", ["R1"])]
    assert cstore._client.xlen(outbox) == 0


def _until(check: Callable[[], bool], seconds: float) -> float:
    """Poll `check` until it holds; the seconds it took (fails the test after `seconds`)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, "not within the time allowed"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_refused_copy_reaches_the_log_within_the_drain_interval_with_no_further_call(
    redis_cluster: RedisClusterServers,
) -> None:
    """The drain thread retries the copy on its own: nobody evaluates or reads again."""
    store = RedisStore(redis_cluster.url, StoreSettings(key_prefix=f"d{time.monotonic_ns()}:"), drain_interval=0.2)
    try:
        raw = store._client
        raw.set(store.log_key, "not a stream")  # the log refuses the copy
        store.record_evaluation(CASE, "rs", flags(("R1", Severity.HIGH)), decision("d1"), now=NOW)
        assert store.pending_copies == 1 and raw.xlen(store.outbox_key(CASE)) == 1
        raw.delete(store.log_key)  # the log answers again
        took = _until(lambda: raw.exists(store.log_key) and raw.xlen(store.log_key) == 1, seconds=2.0)
        assert took < 0.2 + 0.3  # one interval, plus the copy
        assert raw.xlen(store.outbox_key(CASE)) == 0 and store.pending_copies == 0
        assert [(d.decision_id, [f.rule_id for f in d.flags]) for d in store.decisions(None)] == [("d1", ["R1"])]
    finally:
        store.close()
    assert store._drainer is not None and not store._drainer.is_alive()  # stopped on close


def test_a_read_of_the_whole_log_first_forwards_what_the_process_holds_back(redis_cluster: RedisClusterServers) -> None:
    store = RedisStore(redis_cluster.url, StoreSettings(key_prefix=f"d{time.monotonic_ns()}:"), drain_interval=3600)
    try:
        store._client.set(store.log_key, "not a stream")
        store.record_evaluation(CASE, "rs", flags(("R1", Severity.HIGH)), decision("d1"), now=NOW)
        store._client.delete(store.log_key)
        assert [d.decision_id for d in store.decisions(None)] == ["d1"]  # the thread has not run yet
        assert store.pending_copies == 0
    finally:
        store.close()


def test_a_sweep_forwards_what_a_process_that_died_left_in_an_outbox(redis_cluster: RedisClusterServers) -> None:
    """A decision whose writer died before copying it is found by another process's sweep."""
    settings = StoreSettings(key_prefix=f"d{time.monotonic_ns()}:")
    dead = RedisStore(redis_cluster.url, settings, drain_interval=3600, sweep_interval=3600)
    dead._client.set(dead.log_key, "not a stream")
    dead.record_evaluation(CASE, "rs", flags(("R1", Severity.HIGH)), decision("d1"), now=NOW)
    dead._client.delete(dead.log_key)
    dead.close()  # its pending copy dies with it; the decision is in the outbox
    alive = RedisStore(redis_cluster.url, settings, drain_interval=0.1, sweep_interval=0.5)
    try:
        raw = alive._client
        # Entries settle OUTBOX_SETTLE_SECONDS (a writer may still be copying them), then a sweep copies.
        _until(lambda: raw.exists(alive.log_key) and raw.xlen(alive.log_key) == 1, seconds=OUTBOX_SETTLE_SECONDS + 2)
        assert raw.xlen(alive.outbox_key(CASE)) == 0
    finally:
        alive.close()


def test_serve_opens_a_cluster_store_from_a_redis_cluster_url(redis_cluster: RedisClusterServers) -> None:
    from rules_engine.config import Settings
    from rules_engine.engine.engine import open_case_store

    store = open_case_store(Settings(store_url=redis_cluster.url))
    try:
        assert isinstance(store, RedisStore) and store._cluster
        store.ping()
    finally:
        store.close()


# -- Sentinel failover under load -------------------------------------------------------------------


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelSetup]:
    setup = SentinelSetup(tmp_path)
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


class _Load:
    """Writers of stored-history Evaluates, each on its own case, each call adding one concern."""

    def __init__(self, engine: Engine, writers: int) -> None:
        message = requests.case_from_json(json.loads((ROOT / "examples" / "case.json").read_text(encoding="utf-8")))
        self.base = requests.case_from_proto(message, AS_OF.date())
        self.engine = engine
        self.outcomes: Counter[str] = Counter()
        self.acknowledged: dict[str, list[tuple[str, str]]] = {f"fo-case-{w}": [] for w in range(writers)}
        self.last_ok = 0.0
        self.oks: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._write, args=(c,)) for c in self.acknowledged]

    def __enter__(self) -> _Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _write(self, case_id: str) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            fact = records.of(Concern(id=f"{case_id}-{n}", date=dt.date(2025, 6, 1), agency="POLICE"))
            sent = self.base._replace(case_id=case_id, concerns=(*self.base.concerns, fact))
            try:
                evaluation = self.engine.evaluate_history(sent, (), AS_OF, "starter")
            except StoreUnavailableError:
                self._count("UNAVAILABLE")
                time.sleep(0.02)
                continue
            except Exception as exc:  # anything else fails the test
                self._count(type(exc).__name__)
                continue
            self.acknowledged[case_id].append((fact.id, evaluation.decision_id))
            with self._lock:
                self.outcomes["OK"] += 1
                self.oks.append(time.monotonic())

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def lost(self, store: RedisStore) -> int:
        """Calls answered OK whose fact or decision is not in the store now."""
        lost = 0
        for case_id, done in self.acknowledged.items():
            stored = store.load_case(case_id)
            held = {c.id for c in stored.concerns} if stored else set()
            logged = {d.decision_id for d in store.decisions(case_id, limit=1000)}
            lost += sum(1 for fact_id, decision_id in done if fact_id not in held or decision_id not in logged)
        return lost


@pytest.mark.slow
def test_sentinel_failover_under_load_loses_no_acknowledged_write(sentinel: SentinelSetup) -> None:
    """4 writers of stored-history Evaluates; the master is stopped mid-load and Sentinel promotes the
    replica. Callers see only success or StoreUnavailableError (UNAVAILABLE on the wire); every
    call that succeeded is found afterwards: its fact in the case, its decision in the case's index."""
    registry = Registry(ROOT / "rulesets", compile_ruleset)
    registry.reload()
    store = RedisStore("redis://", StoreSettings(key_prefix="fo:"), sentinels=sentinel.sentinels)
    try:
        with _Load(Engine(registry, clock=lambda: AS_OF, store=store), writers=4) as load:
            time.sleep(1.0)
            old_master = sentinel.master()
            stopped = time.monotonic()
            sentinel.stop_master()
            exited = time.monotonic()  # any call answered OK after this was written on the new master
            while sentinel.master() == old_master or not load.oks or load.oks[-1] < exited:
                assert time.monotonic() < exited + 30, "no failover within 30 s"
                time.sleep(0.05)
            recovered = min(t for t in load.oks if t > exited)
            time.sleep(1.0)
        lost = load.lost(store)
        print(
            f"\nsentinel failover: {sum(load.outcomes.values())} calls, {dict(load.outcomes)}, "
            f"lost {lost}; master shut down in {exited - stopped:.2f} s, "
            f"writes resumed {recovered - exited:.2f} s after it exited"
        )
        assert set(load.outcomes) <= {"OK", "UNAVAILABLE"}
        assert load.outcomes["OK"] > 100
        assert lost == 0
    finally:
        store.close()
        registry.close()


# -- failover inside a Redis Cluster ----------------------------------------------------------------


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[RedisClusterServers]:
    """Three masters, each with a replica; a master unreachable for 1 s is failed over."""
    cluster = RedisClusterServers(tmp_path, masters=3, replicas=1, node_timeout_ms=1000)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _within(slot: int, ranges: list[tuple[int, int]]) -> bool:
    return any(first <= slot <= last for first, last in ranges)


class _ClusterLoad:
    """Writers over many case ids (each case written by one writer), alternating a stored-history
    Evaluate and a RecordFacts, each call adding one concern."""

    def __init__(self, engine: Engine, store: RedisStore, writers: int, cases_each: int) -> None:
        message = requests.case_from_json(json.loads((ROOT / "examples" / "case.json").read_text(encoding="utf-8")))
        self.base = requests.case_from_proto(message, AS_OF.date())
        self.engine, self.store = engine, store
        self.outcomes: Counter[str] = Counter()
        self.facts: dict[str, list[str]] = {}  # case -> concern ids of calls answered OK
        self.decisions: dict[str, list[str]] = {}  # case -> decision ids of Evaluates answered OK
        self.oks: list[tuple[float, int]] = []  # (when, slot of the case)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._write, args=([f"cf-{w}-{c}" for c in range(cases_each)],))
            for w in range(writers)
        ]

    def __enter__(self) -> _ClusterLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _write(self, case_ids: list[str]) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            case_id = case_ids[n % len(case_ids)]
            fact = records.of(Concern(id=f"{case_id}-{n}", date=dt.date(2025, 6, 1), agency="POLICE"))
            sent = self.base._replace(case_id=case_id, concerns=(*self.base.concerns, fact))
            decision_id = None
            try:
                if n % 2:
                    decision_id = self.engine.evaluate_history(sent, (), AS_OF, "starter").decision_id
                else:
                    self.engine.record_facts(sent)
            except StoreUnavailableError:
                self._count("UNAVAILABLE")
                time.sleep(0.02)
                continue
            except Exception as exc:  # anything else fails the test
                self._count(type(exc).__name__)
                continue
            with self._lock:
                self.outcomes["OK"] += 1
                self.oks.append((time.monotonic(), key_slot(self.store.case_keys(case_id)[0].encode())))
                self.facts.setdefault(case_id, []).append(fact.id)
                if decision_id is not None:
                    self.decisions.setdefault(case_id, []).append(decision_id)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def lost(self) -> tuple[int, int]:
        """OK'd calls whose fact or decision is not in its case now; OK'd decisions not in the log."""
        lost = 0
        for case_id, fact_ids in self.facts.items():
            stored = self.store.load_case(case_id)
            held = {c.id for c in stored.concerns} if stored else set()
            indexed = {d.decision_id for d in self.store.decisions(case_id, limit=1000)}
            lost += sum(1 for f in fact_ids if f not in held)
            lost += sum(1 for d in self.decisions.get(case_id, []) if d not in indexed)
        logged = {d.decision_id for d in self.store.decisions(None, limit=1_000_000)}
        missing = sum(1 for ids in self.decisions.values() for d in ids if d not in logged)
        return lost, missing


@pytest.mark.slow
def test_cluster_failover_under_load_loses_no_acknowledged_write(replicated_cluster: RedisClusterServers) -> None:
    """6 writers over 240 case ids on 3 masters with a replica each; the master serving the decision
    log's slot is stopped (SIGTERM) mid-load and its replica takes over. Callers see only success or
    StoreUnavailableError (UNAVAILABLE on the wire); every OK'd fact is in its case, every OK'd
    decision in its case's index and, once the drain thread has copied what the failover held back
    in outboxes, in the shared log."""
    cluster = replicated_cluster
    registry = Registry(ROOT / "rulesets", compile_ruleset)
    registry.reload()
    store = RedisStore(cluster.url, StoreSettings(key_prefix="cf:"), drain_interval=0.2)
    try:
        with _ClusterLoad(Engine(registry, clock=lambda: AS_OF, store=store), store, writers=6, cases_each=40) as load:
            time.sleep(1.0)
            log_slot = key_slot(store.log_key.encode())
            old_master = cluster.master_of(log_slot)
            ranges = next(r for port, _, r in cluster.nodes() if port == old_master)
            stopped = time.monotonic()
            cluster.stop_node(old_master)
            exited = time.monotonic()
            promoted_at: float | None = None
            resumed: list[float] = []
            while not resumed:  # a replica serves the slots, and a case there was written after the stop
                assert time.monotonic() < exited + 30, "no failover within 30 s"
                with suppress(LookupError):
                    if promoted_at is None and cluster.master_of(log_slot) != old_master:
                        promoted_at = time.monotonic()
                if promoted_at is not None:
                    resumed = [t for t, slot in list(load.oks) if t > exited and _within(slot, ranges)]
                time.sleep(0.05)
            time.sleep(1.0)
        _until(lambda: store.pending_copies == 0, seconds=10)  # the drain thread, no further call
        lost, not_logged = load.lost()
        promoted = (promoted_at or exited) - exited
        print(
            f"\ncluster failover: {sum(load.outcomes.values())} calls, {dict(load.outcomes)}, lost {lost}, "
            f"decisions missing from the log {not_logged} of {sum(len(d) for d in load.decisions.values())} "
            f"({store.copies_held_back} held in outboxes, then copied by the drain thread); "
            f"master shut down in {exited - stopped:.2f} s, replica promoted {promoted:.2f} s and "
            f"writes to its slots resumed {resumed[0] - exited:.2f} s after it exited"
        )
        assert set(load.outcomes) <= {"OK", "UNAVAILABLE"}
        assert load.outcomes["OK"] > 100 and load.outcomes["UNAVAILABLE"] > 0
        assert lost == 0 and not_logged == 0
    finally:
        store.close()
        registry.close()

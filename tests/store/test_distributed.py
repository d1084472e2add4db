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
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from rules_engine import records, wire
from rules_engine.compiled import Severity
from rules_engine.compiler import compile_ruleset
from rules_engine.engine import Engine
from rules_engine.errors import StoreUnavailableError
from rules_engine.facts import Concern
from rules_engine.registry import Registry
from rules_engine.store import StoreSettings, open_store
from rules_engine.store.redis import RedisStore
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


def test_serve_opens_a_cluster_store_from_a_redis_cluster_url(redis_cluster: RedisClusterServers) -> None:
    from rules_engine.config import Settings
    from rules_engine.engine import open_case_store

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
        message = wire.case_from_json(json.loads((ROOT / "examples" / "case.json").read_text(encoding="utf-8")))
        self.base = records.case_from_proto(message, AS_OF.date())
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

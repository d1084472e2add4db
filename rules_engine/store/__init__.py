"""The state interface: memory.py (embedded default), redis.py (the only redis import)."""

from __future__ import annotations

from rules_engine.store.base import (
    DEFAULT_RETENTION,
    DEFAULT_SETTINGS,
    FLAG_STATE_VALUES,
    Acknowledgement,
    CaseDeletion,
    CaseStore,
    ChronologyEntry,
    DecisionFlag,
    DecisionRecord,
    FlagRecord,
    FlagSighting,
    FlagState,
    FlagStates,
    MergedCase,
    Sighting,
    StoredCase,
    StoreSettings,
    case_digest,
)
from rules_engine.store.memory import MemoryStore


def open_store(url: str | None, settings: StoreSettings = DEFAULT_SETTINGS, **redis_options: object) -> CaseStore:
    """A store for a URL: None or `memory://` for the in-memory store, `redis://` or `rediss://` for Redis."""
    if url is None or url.startswith("memory:"):
        return MemoryStore(settings)
    # Imported here so that running without Redis never imports redis.
    from rules_engine.store.redis import RedisStore

    return RedisStore(url, settings, **redis_options)  # type: ignore[arg-type]


__all__ = [
    "DEFAULT_RETENTION",
    "DEFAULT_SETTINGS",
    "FLAG_STATE_VALUES",
    "Acknowledgement",
    "CaseDeletion",
    "CaseStore",
    "ChronologyEntry",
    "DecisionFlag",
    "DecisionRecord",
    "FlagRecord",
    "FlagSighting",
    "FlagState",
    "FlagStates",
    "MemoryStore",
    "MergedCase",
    "Sighting",
    "StoreSettings",
    "StoredCase",
    "case_digest",
    "open_store",
]

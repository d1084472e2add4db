"""Loaded ruleset versions: atomic swap on reload, last good version kept, old ones released when idle."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rules_engine.config import MatcherName
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.engine.results import RulesetStatus
from rules_engine.errors import (
    RuleFileError,
    RuleFileErrors,
    RulesEngineError,
    RulesetNotFoundError,
    RulesetRequiredError,
)
from rules_engine.policy.compiled import CompiledRuleset
from rules_engine.policy.compiler import rulesets_in

log = logging.getLogger(__name__)

# Checks a candidate version before it goes live (e.g. its own rule tests); returns
# the problems found, empty when it may serve.
Gate = Callable[[PreparedRuleset], list[str]]


@dataclass
class _Version:
    prepared: PreparedRuleset
    loaded_at: dt.datetime
    leases: int = 0
    retired: bool = False


@dataclass
class _Slot:
    """One ruleset name: its active version and what went wrong last."""

    active: _Version | None = None
    last_error: str = ""
    last_error_at: dt.datetime | None = None
    retired: list[_Version] = field(default_factory=list)


@dataclass(frozen=True)
class ReloadResult:
    name: str
    outcome: str  # "loaded", "unchanged", "refused", "removed"
    version: str = ""
    error: str = ""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Registry:
    def __init__(
        self,
        root: Path,
        compile_fn: Callable[[Path], CompiledRuleset],
        matcher: MatcherName = "durable",
        gate: Gate | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        on_reload: Callable[[ReloadResult], None] | None = None,
        default: str | None = None,
    ) -> None:
        self.root = root
        # The ruleset a request naming none gets; None: the only one loaded, else the request is refused.
        self.default = default or None
        self._compile = compile_fn
        self._matcher: MatcherName = matcher
        self._gate = gate
        # Told of every ruleset's result on each reload (e.g. to count refusals in a metric).
        self._on_reload = on_reload
        self._clock = clock
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._dirs: dict[Path, str] = {}

    def reload(self) -> list[ReloadResult]:
        """Compile every ruleset under root; swap in valid changes, keep the last good version otherwise."""
        with self._reload_lock:
            results = []
            seen: set[Path] = set()
            for directory in rulesets_in(self.root):
                seen.add(directory)
                results.append(self._reload_one(directory))
            for directory in set(self._dirs) - seen:
                # A ruleset whose directory went away keeps serving: removal is refused like any
                # other bad change, so a half-synced ConfigMap never drops rules.
                name = self._dirs[directory]
                self._refuse(name, f"{directory}: ruleset directory is missing; keeping the last good version")
                results.append(ReloadResult(name, "refused", error="directory missing"))
            if self._on_reload is not None:
                for result in results:
                    self._on_reload(result)
            return results

    def _reload_one(self, directory: Path) -> ReloadResult:
        name = self._dirs.get(directory, directory.name)
        try:
            compiled = self._compile(directory)
        except RuleFileErrors as exc:
            return self._refuse(name, str(exc))
        except RuleFileError as exc:
            return self._refuse(name, str(exc))
        name = compiled.name
        self._dirs[directory] = name
        with self._lock:
            slot = self._slots.setdefault(name, _Slot())
            if slot.active is not None and slot.active.prepared.ruleset.version == compiled.version:
                return ReloadResult(name, "unchanged", compiled.version)
        try:
            prepared = PreparedRuleset(compiled, matcher=self._matcher)
        except RulesEngineError as exc:
            return self._refuse(name, f"{directory}: {exc}")
        problems = self._gate(prepared) if self._gate else []
        if problems:
            prepared.close()
            return self._refuse(name, "\n".join(problems))
        with self._lock:
            old = slot.active
            slot.active = _Version(prepared, self._clock())
            if old is not None:
                old.retired = True
                if old.leases == 0:
                    old.prepared.close()
                else:
                    slot.retired.append(old)
        # Which engine answers: "compiled", or why the Python engine does (unavailable, ruleset, off).
        engine = "compiled" if prepared.native is not None else f"python ({prepared.native_missing})"
        log.info("ruleset loaded", extra={"ruleset": name, "version": compiled.version, "engine": engine})
        return ReloadResult(name, "loaded", compiled.version)

    def _refuse(self, name: str, error: str) -> ReloadResult:
        with self._lock:
            slot = self._slots.setdefault(name, _Slot())
            slot.last_error = error
            slot.last_error_at = self._clock()
        log.warning("ruleset reload refused", extra={"ruleset": name, "rule_file_error": error.splitlines()[0]})
        return ReloadResult(name, "refused", error=error)

    def lease(self, name: str | None = None) -> Lease:
        """The active version of a ruleset, kept alive until the block ends even if a reload swaps it:
        `with registry.lease(name) as prepared:`."""
        return Lease(self, name)

    def _take(self, name: str | None) -> _Version:
        with self._lock:
            version = self._active(name)
            version.leases += 1
        return version

    def _give_back(self, version: _Version) -> None:
        with self._lock:
            version.leases -= 1
            if version.retired and version.leases == 0:
                version.prepared.close()
                for slot in self._slots.values():
                    if version in slot.retired:
                        slot.retired.remove(version)

    def _active(self, name: str | None) -> _Version:
        if not name and self.default is not None:
            name = self.default
        if not name:
            live = [s.active for s in self._slots.values() if s.active is not None]
            if len(live) == 1:
                return live[0]
            if not live:
                raise RulesetNotFoundError("no ruleset is loaded")
            # Called with self._lock held (a plain Lock): self.names() here would deadlock.
            raise RulesetRequiredError(sorted(n for n, s in self._slots.items() if s.active is not None))
        slot = self._slots.get(name)
        if slot is None or slot.active is None:
            raise RulesetNotFoundError(f"no ruleset named {name!r} is loaded")
        return slot.active

    def names(self) -> list[str]:
        with self._lock:
            return sorted(n for n, s in self._slots.items() if s.active is not None)

    def statuses(self) -> list[RulesetStatus]:
        with self._lock:
            result = []
            for name, slot in sorted(self._slots.items()):
                active = slot.active
                rules = active.prepared.ruleset.rules if active else ()
                result.append(
                    RulesetStatus(
                        name=name,
                        version=active.prepared.ruleset.version if active else "",
                        loaded_at=active.loaded_at if active else None,
                        rule_count=sum(1 for r in rules if r.status == "active"),
                        shadow_rule_count=sum(1 for r in rules if r.status == "shadow"),
                        last_error=slot.last_error,
                        last_error_at=slot.last_error_at,
                    )
                )
            return result

    def close(self) -> None:
        with self._lock:
            for slot in self._slots.values():
                if slot.active is not None:
                    slot.active.prepared.close()
                for version in slot.retired:
                    version.prepared.close()
            self._slots.clear()


class Lease:
    """A ruleset version held for one `with` block (Registry.lease). A class rather than a
    generator-based context manager: every evaluation takes one, and a generator costs twice as much."""

    __slots__ = ("_name", "_registry", "_version")

    def __init__(self, registry: Registry, name: str | None) -> None:
        self._registry = registry
        self._name = name
        self._version: _Version | None = None

    def __enter__(self) -> PreparedRuleset:
        if self._version is not None:
            raise RuntimeError("a lease is entered once")
        self._version = self._registry._take(self._name)
        return self._version.prepared

    def __exit__(self, *exc_info: object) -> None:
        version, self._version = self._version, None
        if version is not None:
            self._registry._give_back(version)

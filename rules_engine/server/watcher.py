"""Watch the rulesets directory and reload the registry when its resolved contents change, or on request.

Kubernetes mounts a ConfigMap as `..data -> ..2025_06_30_...` with each file a symlink
through `..data`; an update swaps the `..data` link in one rename. So changes are judged
on the resolved tree: a fingerprint of every file's real path and bytes, the way the
registry will read them. watchfiles (inotify and friends) wakes the loop early; the
fingerprint is also taken every `interval` seconds, so a missed event only delays a
reload, and the loop still works where no file events exist (some network filesystems).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def fingerprint(root: Path) -> str:
    """A digest of every file under `root` (symlinks followed, hidden entries skipped): real path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(_files(root)):
        try:
            data = path.read_bytes()
        except OSError:
            data = b"\0unreadable"
        name = str(path.relative_to(root)).encode()
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _files(root: Path) -> Iterator[Path]:
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        # `..data` and `..2025_...` are reached through the visible symlinks, not walked twice.
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _files(entry)
        elif entry.is_file():
            yield entry


class Watcher:
    """Calls `reload` when the tree under `root` changes or `trigger()` is called (SIGHUP); one thread."""

    def __init__(self, root: Path, reload: Callable[[], object], interval: float = 1.0) -> None:
        self.root = root
        self._reload = reload
        self._interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: threading.Thread | None = None
        self._seen = fingerprint(root)
        self._forced = False  # set by trigger(): reload even if nothing changed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ruleset-watcher", daemon=True)
        self._thread.start()
        self._events = threading.Thread(target=self._listen, name="ruleset-events", daemon=True)
        self._events.start()

    def trigger(self) -> None:
        """Reload now, whether or not anything changed (safe to call from a signal handler)."""
        self._forced = True
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in (self._thread, self._events):
            if thread is not None:
                thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            current = fingerprint(self.root)
            if current == self._seen and not self._forced:
                continue
            reason = "SIGHUP" if self._forced else "change under " + str(self.root)
            self._forced = False
            self._seen = current
            log.info("reloading rulesets (%s)", reason)
            try:
                self._reload()
            except Exception:
                # The registry already keeps the last good version; the watcher must outlive any failure.
                log.exception("ruleset reload failed")

    def _listen(self) -> None:
        """Wake the loop on file events; without watchfiles the loop polls alone."""
        try:
            from watchfiles import watch
        except ImportError:
            return
        target = os.path.realpath(self.root)
        try:
            for _changes in watch(target, stop_event=self._stop, debounce=200, rust_timeout=500, yield_on_timeout=True):
                if _changes:
                    self._wake.set()
        except Exception:  # e.g. the inotify watch limit: polling still covers it
            log.warning("file events unavailable for %s; polling every %ss", target, self._interval, exc_info=True)

"""The compiled core's build and loader: `make test` runs with a fresh build of rules_engine/native
(a missing core FAILS here: CI must build it), a stale build is refused, and RULES_ENGINE_NATIVE=0
forces the Python path."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rules_engine import native


@pytest.fixture(autouse=True)
def _switch_unset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test decides the switch; the process's cached answer is recomputed after a test that reset it."""
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    yield
    native._reset()


def _sources_copy(tmp_path: Path) -> Path:
    for path in native.source_files():
        shutil.copy2(path, tmp_path / path.name)
    return tmp_path


def test_the_core_is_built_from_the_sources_beside_it() -> None:
    module, reason = native.check()
    assert reason is None, f"{reason} (`make setup` or `make native` builds it)"
    assert module is not None
    assert Path(module.__file__ or "").parent == native.DIRECTORY
    assert native.source_digest(native.source_files()) == module.SOURCE_DIGEST
    assert "_core.pyx" in {path.name for path in native.SOURCE_FILES}
    assert native.DIGEST_FILE not in {path.name for path in native.SOURCE_FILES}


def test_load_gives_the_core_once_per_process() -> None:
    native._reset()
    module = native.load()
    assert module is not None, native.unavailable_reason()
    assert native.unavailable_reason() is None
    assert native.load() is module


def test_the_same_sources_elsewhere_have_the_same_digest(tmp_path: Path) -> None:
    module, reason = native.check(_sources_copy(tmp_path))
    assert reason is None and module is not None


def test_a_changed_byte_in_the_sources_makes_the_build_stale(tmp_path: Path) -> None:
    sources = _sources_copy(tmp_path)
    core = sources / "_core.pyx"
    data = bytearray(core.read_bytes())
    data[-1] ^= 0x01
    core.write_bytes(bytes(data))
    module, reason = native.check(sources)
    assert module is None
    assert reason is not None and reason.startswith("stale build:") and "run `make native`" in reason


def test_a_new_include_makes_the_build_stale(tmp_path: Path) -> None:
    sources = _sources_copy(tmp_path)
    (sources / "_new_part.pxi").write_text("cdef int NEW_PART = 1\n", encoding="utf-8")
    module, reason = native.check(sources)
    assert module is None and reason is not None and reason.startswith("stale build:")


def test_without_sources_the_embedded_digest_is_trusted(tmp_path: Path) -> None:
    # A wheel may ship the built module without its sources.
    module, reason = native.check(tmp_path)
    assert reason is None and module is not None


def test_a_module_without_a_digest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_MODULE", "json")
    module, reason = native.check()
    assert module is None and reason is not None and "embeds no SOURCE_DIGEST" in reason


def test_a_missing_core_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_MODULE", "rules_engine.native._no_such_core")
    module, reason = native.check()
    assert module is None and reason is not None and "not built" in reason and "make native" in reason


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_the_switch_forces_the_python_path(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(native.ENV_SWITCH, value)
    module, reason = native.check()
    assert module is None and reason is not None and reason.startswith(f"{native.ENV_SWITCH}=")


def test_the_reason_is_logged_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    native._reset()
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert native.load() is None
        assert native.load() is None
        assert native.unavailable_reason() == f"{native.ENV_SWITCH}=0 forces the Python path"
    assert [record.getMessage() for record in caplog.records] == [
        "compiled core unavailable, evaluating in Python: RULES_ENGINE_NATIVE=0 forces the Python path"
    ]


def test_the_switch_in_a_fresh_process() -> None:
    script = "from rules_engine import native; print(native.load(), native.unavailable_reason(), sep='|')"
    env = {**os.environ, native.ENV_SWITCH: "0"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"None|{native.ENV_SWITCH}=0 forces the Python path"

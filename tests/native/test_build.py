"""The compiled core's build and loader.

`make test` runs with a fresh build of rules_engine/native: a missing, stale or broken core FAILS
here (CI must build it). The loader's refusals (a stale build, a missing or raising module, the
RULES_ENGINE_NATIVE=0 switch) are shown on a stand-in module that embeds a digest as the real
build does, so they hold whatever state the real core is in.
"""

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


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the core's sources, and a stand-in `_core` built from them (it embeds their digest)."""
    copy = tmp_path / "sources"
    copy.mkdir()
    for path in native.source_files():
        shutil.copy2(path, copy / path.name)
    modules = tmp_path / "modules"
    modules.mkdir()
    digest = native.source_digest(native.source_files(copy))
    (modules / "stand_in_core.py").write_text(f'SOURCE_DIGEST = "{digest}"\n', encoding="utf-8")
    (modules / "raising_core.py").write_text("raise TypeError('half-written core')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.setattr(native, "_MODULE", "stand_in_core")
    return copy


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


# The real build.


def test_the_core_is_built_from_the_sources_beside_it() -> None:
    module, reason = native.check()
    assert reason is None, f"{reason} (`make setup` or `make native` builds it)"
    assert module is not None
    assert Path(module.__file__ or "").parent == native.DIRECTORY
    assert native.source_digest(native.source_files()) == module.SOURCE_DIGEST
    names = {path.name for path in native.SOURCE_FILES}
    assert "_core.pyx" in names
    assert native.DIGEST_FILE not in names


def test_load_gives_the_core_once_per_process() -> None:
    native._reset()
    module = native.load()
    assert module is not None, native.unavailable_reason()
    assert native.unavailable_reason() is None
    assert native.load() is module


# The loader's rules, on a stand-in module.


def test_a_build_of_these_sources_is_accepted(sources: Path) -> None:
    module, reason = native.check(sources)
    assert reason is None
    assert module is not None and module.__name__ == "stand_in_core"


def test_a_changed_byte_in_the_sources_makes_the_build_stale(sources: Path) -> None:
    _flip_last_byte(sources / "_core.pyx")
    module, reason = native.check(sources)
    assert module is None
    assert reason is not None and reason.startswith("stale build:") and "run `make native`" in reason


def test_a_new_include_makes_the_build_stale(sources: Path) -> None:
    (sources / "_new_part.pxi").write_text("cdef int NEW_PART = 1\n", encoding="utf-8")
    module, reason = native.check(sources)
    assert module is None and reason is not None and reason.startswith("stale build:")


def test_the_generated_digest_file_is_not_hashed(sources: Path) -> None:
    (sources / native.DIGEST_FILE).write_text('SOURCE_DIGEST = "anything"\n', encoding="utf-8")
    assert native.check(sources) == native.check(sources)
    assert native.check(sources)[1] is None


def test_without_sources_the_embedded_digest_is_trusted(sources: Path, tmp_path: Path) -> None:
    # A wheel may ship the built module without its sources.
    empty = tmp_path / "empty"
    empty.mkdir()
    module, reason = native.check(empty)
    assert reason is None and module is not None


def test_a_module_without_a_digest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_MODULE", "json")
    module, reason = native.check()
    assert module is None and reason is not None and "embeds no SOURCE_DIGEST" in reason


def test_a_missing_core_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_MODULE", "rules_engine.native._no_such_core")
    module, reason = native.check()
    assert module is None and reason is not None and "not built" in reason and "make native" in reason


def test_a_core_that_raises_at_import_is_reported_not_raised(sources: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_MODULE", "raising_core")
    module, reason = native.check(sources)
    assert module is None
    assert reason == "the compiled core failed to import (TypeError: half-written core)"


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_the_switch_forces_the_python_path(sources: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(native.ENV_SWITCH, value)
    module, reason = native.check(sources)
    assert module is None and reason is not None and reason.startswith(f"{native.ENV_SWITCH}=")


def test_the_reason_is_logged_once(
    sources: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
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


# How the build is wired.


def test_the_image_build_gets_the_build_script() -> None:
    root = native.DIRECTORY.parents[1]
    copies = [
        line for line in (root / "Dockerfile").read_text(encoding="utf-8").splitlines() if line.startswith("COPY")
    ]
    assert any("setup.py" in line.split() for line in copies)
    assert "!setup.py" in (root / ".dockerignore").read_text(encoding="utf-8").splitlines()

"""An edited ruleset from the browser: the uploaded files laid over a copy of the served ruleset's
directory, in a temporary directory that is gone when the preview ends.

A policy officer edits one file, so the upload need not be the whole directory: each uploaded
path (relative to the ruleset's directory: `rules.yaml`, `tests/history.yaml`) replaces or adds
that file, and every other file, the ruleset's own tests among them, is the served one. Paths
are checked before anything is written: relative, no `..`, no hidden parts, rule-file or
fixture suffixes only, and the sizes the loader accepts.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from rules_engine.errors import CaseError, FieldViolation
from rules_engine.policy.loader import MAX_FILE_BYTES, RULE_FILE_SUFFIXES

MAX_FILES = 200
MAX_DEPTH = 4
# Rule files, rule-test files and the JSON case fixtures tests may name (case_file).
SUFFIXES = (*RULE_FILE_SUFFIXES, ".json")


def _path_problem(name: str) -> str | None:
    """Why `name` cannot be a file of the edited ruleset, or None when it can."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return "a path relative to the ruleset's directory, with / between parts"
    parts = PurePosixPath(name).parts
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts) or ".." in name.split("/"):
        return "no '.', '..' or hidden parts"
    if len(parts) > MAX_DEPTH:
        return f"at most {MAX_DEPTH} levels deep"
    if PurePosixPath(name).suffix not in SUFFIXES:
        return f"only {', '.join(SUFFIXES)} files"
    return None


def read_files(value: object, field: str = "files") -> dict[PurePosixPath, str]:
    """The body's `files` ({relative path: text}); CaseError naming each bad entry."""
    if not isinstance(value, Mapping) or not value:
        raise CaseError([FieldViolation(field, "required: an object of {relative path: file text}")])
    if len(value) > MAX_FILES:
        raise CaseError([FieldViolation(field, f"{len(value)} files; at most {MAX_FILES}")])
    files: dict[PurePosixPath, str] = {}
    violations = []
    for name, text in value.items():
        where = f"{field}[{str(name)[:80]!r}]"
        problem = _path_problem(name) if isinstance(name, str) else "a path"
        if problem is None and not isinstance(text, str):
            problem = "the file's text"
        if problem is None and len(text.encode("utf-8")) > MAX_FILE_BYTES:
            problem = f"larger than {MAX_FILE_BYTES:,} bytes"
        if problem is not None:
            violations.append(FieldViolation(where, problem))
        else:
            files[PurePosixPath(name)] = text
    if violations:
        raise CaseError(violations)
    return files


@contextmanager
def edited_copy(directory: Path, files: Mapping[PurePosixPath, str]) -> Iterator[Path]:
    """A temporary copy of `directory` (same name, so rule files are named alike) with `files`
    written over it; removed on exit. Symbolic links are followed, as a mounted ConfigMap's are."""
    with tempfile.TemporaryDirectory(prefix="rules-engine-workbench-") as tmp:
        target = Path(tmp) / directory.name
        shutil.copytree(directory, target, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        root = target.resolve()
        for name, text in files.items():
            path = target.joinpath(*name.parts)
            # Checked by read_files already; the resolved path is checked again before writing.
            if not path.resolve().is_relative_to(root) or path.is_dir():
                raise CaseError([FieldViolation(f"files[{str(name)!r}]", "not a file of the ruleset's directory")])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        yield target

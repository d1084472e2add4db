"""Check: every problem in a rulesets directory in one run, root causes first, and warnings.

A file that fails to load (a duplicate key, a YAML syntax error) takes its parameters,
measures and rules with it, so every other file's reference to them fails too. Those
follow-on errors are counted under the file that caused them rather than listed, and the
load errors come first: one mistake reads as one error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rules_engine.errors import CompileError, LoadError, RuleFileError, RuleFileWarning, SchemaError, SourcePosition
from rules_engine.policy.compiler import compile_checked, rulesets_in
from rules_engine.policy.loader import FailedFile

# The names an error is about: the quoted identifiers and rule ids of its message.
_QUOTED = re.compile(r"'([A-Za-z_][\w-]*)'")


@dataclass(frozen=True)
class FollowOn:
    """Errors elsewhere that follow from one file failing to load."""

    file: str
    count: int

    def __str__(self) -> str:
        noun = "error follows" if self.count == 1 else "errors follow"
        return f"{self.count} further {noun} from {self.file} failing to load; fix it and check again"


@dataclass
class CheckReport:
    """What `rules-engine check` prints: errors (root causes first), follow-ons, warnings."""

    errors: list[RuleFileError] = field(default_factory=list)
    follow_ons: list[FollowOn] = field(default_factory=list)
    warnings: list[RuleFileWarning] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.follow_ons)

    def lines(self) -> list[str]:
        return [*map(str, self.errors), *map(str, self.follow_ons), *map(str, self.warnings)]


def check(root: Path) -> CheckReport:
    """Check the rulesets under `root`, or `root` itself if it is one ruleset."""
    report = CheckReport()
    if not root.is_dir():
        report.errors.append(LoadError(f"{root} is not a directory", _at(root)))
        return report
    directories = rulesets_in(root)
    if not directories:
        report.errors.append(LoadError("no rule files (*.yaml) found", _at(root)))
        return report
    causes: list[RuleFileError] = []
    for directory in directories:
        checked = compile_checked(directory)
        found, others, follow_ons = _split(checked.errors, checked.failed)
        causes.extend(found)
        report.errors.extend(others)
        report.follow_ons.extend(follow_ons)
        report.warnings.extend(checked.warnings)
    report.errors[:0] = causes
    return report


def _split(
    errors: list[RuleFileError], failed: tuple[FailedFile, ...]
) -> tuple[list[RuleFileError], list[RuleFileError], list[FollowOn]]:
    """(root causes, other errors, follow-ons counted per failed file)."""
    failed_files = {f.file: f for f in failed}
    causes: list[RuleFileError] = []
    others: list[RuleFileError] = []
    counts: dict[str, int] = {}
    for error in errors:
        if error.position.file in failed_files:
            causes.append(error)
            continue
        cause = _cause(error, failed) if isinstance(error, CompileError | SchemaError) else None
        if cause is None:
            others.append(error)
        else:
            counts[cause] = counts.get(cause, 0) + 1
    return causes, others, [FollowOn(file, count) for file, count in counts.items()]


def _cause(error: RuleFileError, failed: tuple[FailedFile, ...]) -> str | None:
    """The failed file an error follows from: it is about a name that file declares (or, for a
    file whose names cannot be read, about a name that is unknown)."""
    # A suggestion ("did you mean 'x'?") names something known, not what failed.
    names = _QUOTED.findall(error.message.split("; did you mean", 1)[0])
    if not names:
        return None
    for file in failed:
        if any(name in file.names for name in names):
            return file.file
    for file in failed:
        if not file.names_known and "unknown" in error.message:
            return file.file
    return None


def _at(path: Path) -> SourcePosition:
    return SourcePosition(path.name or str(path), 1, 1)

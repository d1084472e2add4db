"""Impact preview: evaluate two versions of the rulesets on the same cases and count, per rule, what changes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rules_engine import wire
from rules_engine.compiler import compile_ruleset
from rules_engine.errors import CaseError, RulesEngineError
from rules_engine.evaluator import PreparedRuleset
from rules_engine.facts import Case
from rules_engine.ruletest import rulesets_in

EXAMPLES = 5


class DiffInputError(RulesEngineError):
    """A revision that cannot be read, or a line of the case file that is not a case."""


@dataclass
class RuleChange:
    """What a rule does to the corpus in head compared with base."""

    ruleset: str
    rule_id: str
    title: str
    presence: str = ""  # "added" or "removed" when the rule exists on one side only
    newly_flagged: list[str] = field(default_factory=list)
    no_longer_flagged: list[str] = field(default_factory=list)
    unchanged_flagged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.newly_flagged or self.no_longer_flagged or self.presence)


@dataclass
class Impact:
    """The whole comparison: one RuleChange per rule of either side, in head's order then base's."""

    base: str
    head: str
    cases: int
    as_of: dt.date
    changes: list[RuleChange]


@contextmanager
def materialise(spec: str) -> Iterator[Path]:
    """A rulesets directory for `spec`: the directory itself, or `REV:path` extracted with git archive."""
    if Path(spec).exists() or ":" not in spec:
        yield Path(spec)
        return
    revision, _, path = spec.partition(":")
    path = path.strip("/") or "."
    name = Path(path).name if path != "." else "rulesets"
    with tempfile.TemporaryDirectory(prefix="rules-engine-diff-") as tmp:
        target = Path(tmp) / name
        target.mkdir()
        archive = Path(tmp) / "tree.tar"
        # `REV:path` names a tree relative to the repository's top; git archive writes its contents.
        done = subprocess.run(
            ["git", "archive", "--format=tar", f"--output={archive}", f"{revision}:{path}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise DiffInputError(f"{spec}: {done.stderr.strip() or 'git archive failed'}")
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        yield target


def read_cases(path: Path, as_of: dt.date) -> list[Case]:
    """Cases from JSON lines (proto3 JSON of Case), converted as the server converts requests."""
    cases = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                message = wire.case_from_json(json.loads(line))
                cases.append(wire.case_from_proto(message, as_of))
            except (ValueError, CaseError) as exc:
                raise DiffInputError(f"{path}:{number}: {exc}") from None
    return cases


def _prepare(root: Path, stack: ExitStack) -> dict[str, PreparedRuleset]:
    prepared: dict[str, PreparedRuleset] = {}
    for directory in rulesets_in(root):
        # The reference evaluator: equal to the engine (tests/unit/test_matching.py) and no registration.
        ruleset = PreparedRuleset(compile_ruleset(directory), use_engine=False)
        stack.callback(ruleset.close)
        prepared[ruleset.ruleset.name] = ruleset
    return prepared


def compare(
    base: Path,
    head: Path,
    cases: list[Case],
    as_of: dt.date,
    progress: Callable[[Iterable[Case]], Iterable[Case]] = lambda items: items,
) -> Impact:
    """Evaluate every case on both sides; raise RuleFileErrors when either side does not compile."""
    with ExitStack() as stack:
        before, after = _prepare(base, stack), _prepare(head, stack)
        changes: dict[tuple[str, str], RuleChange] = {}
        for name in [*after, *(n for n in before if n not in after)]:
            head_rules = {r.id: r for r in after[name].ruleset.rules} if name in after else {}
            base_rules = {r.id: r for r in before[name].ruleset.rules} if name in before else {}
            for rule_id, rule in [*head_rules.items(), *((i, r) for i, r in base_rules.items() if i not in head_rules)]:
                presence = "" if rule_id in head_rules and rule_id in base_rules else "added"
                presence = "removed" if rule_id not in head_rules else presence
                changes[name, rule_id] = RuleChange(name, rule_id, rule.title, presence)
        for case in progress(cases):
            for name in {*before, *after}:
                was = before[name].evaluate(case, as_of).outcomes if name in before else {}
                now = after[name].evaluate(case, as_of).outcomes if name in after else {}
                for rule_id in {*was, *now}:
                    change = changes[name, rule_id]
                    flagged_before, flagged_after = was.get(rule_id) is True, now.get(rule_id) is True
                    if flagged_after and not flagged_before:
                        change.newly_flagged.append(case.case_id)
                    elif flagged_before and not flagged_after:
                        change.no_longer_flagged.append(case.case_id)
                    elif flagged_before and flagged_after:
                        change.unchanged_flagged.append(case.case_id)
    return Impact(str(base), str(head), len(cases), as_of, list(changes.values()))

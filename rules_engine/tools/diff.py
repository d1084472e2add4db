"""Impact preview: evaluate two versions of the rulesets on the same cases and count, per rule, what changes.

Besides the counts it says what changed between the versions (parameters, rules added,
removed or edited), how many sampled cases lie near each changed threshold (a sample with
none cannot show the change), and whether the head version passes its own tests.
"""

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

from rules_engine.case.facts import Case
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.errors import CaseError, DiffInputError
from rules_engine.policy.compiled import Compare, CompiledRule, CompiledRuleset, Const, MeasureRef, walk
from rules_engine.policy.compiler import compile_ruleset, rulesets_in
from rules_engine.service import requests
from rules_engine.tools.ruletest import gate

EXAMPLES = 5
# A case lies near a changed threshold when its measured value is within this of the old or
# the new value, or between them.
NEAR = 1
ParameterValue = float | int | bool | str


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
    # How the rule itself differs: "condition", "severity medium -> high", "title", and the
    # changed parameters its condition compares against.
    edits: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """The rule flags different cases (or exists on one side only)."""
        return bool(self.newly_flagged or self.no_longer_flagged or self.presence)


@dataclass
class ParameterChange:
    """A parameter whose value differs between base and head (None: absent on that side)."""

    ruleset: str
    name: str
    old: ParameterValue | None
    new: ParameterValue | None
    rules: list[str] = field(default_factory=list)  # rules whose conditions compare against it
    measures: list[str] = field(default_factory=list)  # the measures compared against it
    near: int | None = None  # sampled cases near the change; None when it is not a number

    @property
    def numeric(self) -> bool:
        return _number(self.old) is not None and _number(self.new) is not None

    def span(self) -> tuple[float, float]:
        """The measured values that lie near the change: between old and new, or within NEAR."""
        old, new = _number(self.old), _number(self.new)
        assert old is not None and new is not None
        return min(old, new) - NEAR, max(old, new) + NEAR

    def describe(self) -> str:
        if self.old is None:
            return f"parameter {self.name} added ({self.new})"
        if self.new is None:
            return f"parameter {self.name} removed (was {self.old})"
        return f"parameter {self.name} {self.old} -> {self.new}"


@dataclass
class Impact:
    """The whole comparison: one RuleChange per rule of either side, in head's order then base's."""

    base: str
    head: str
    cases: int
    as_of: dt.date
    changes: list[RuleChange]  # rules that flag differently first, then edited ones, then the rest
    parameters: list[ParameterChange] = field(default_factory=list)
    # Per head ruleset whose own tests fail: the failure lines, as the reload gate reports them.
    head_test_failures: dict[str, list[str]] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """What makes the counts unreliable: a sample with no case near a changed threshold,
        or a head version that fails its own tests (the server would refuse it)."""
        found = []
        for change in self.parameters:
            if change.near == 0:
                low, high = change.span()
                found.append(
                    f"no case in the sample has {' or '.join(change.measures)} between {_show(low)} and "
                    f"{_show(high)}, near {change.describe()} ({change.ruleset}): these counts cannot show "
                    f"what the change does; try a bigger sample, e.g. rules-engine synth --cases "
                    f"{max(1000, 10 * self.cases)} --seed 1 > cases.jsonl"
                )
        for ruleset, lines in self.head_test_failures.items():
            summary = lines[-1] if lines else "its tests fail"
            found.append(f"head ruleset {ruleset} fails its own tests ({summary}); a reload would refuse it")
        return found


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


def case_from_line(line: str, as_of: dt.date, path: str = "case") -> Case:
    """One line of a caseload (proto3 JSON of Case) as a Case, converted as the server converts
    requests; ValueError when it is not JSON, CaseError naming each bad field under `path`."""
    message = requests.case_from_json(json.loads(line), path)
    return requests.case_model_from_proto(message, as_of, path)


def read_cases(path: Path, as_of: dt.date) -> list[Case]:
    """Cases from JSON lines (proto3 JSON of Case), converted as the server converts requests."""
    cases = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                cases.append(case_from_line(line, as_of))
            except (ValueError, CaseError) as exc:
                raise DiffInputError(f"{path}:{number}: {exc}") from None
    return cases


def _prepare(root: Path, stack: ExitStack) -> dict[str, PreparedRuleset]:
    prepared: dict[str, PreparedRuleset] = {}
    for directory in rulesets_in(root):
        # The reference evaluator: equal to the Matcher (tests/engine/test_matching.py) and no registration.
        ruleset = PreparedRuleset(compile_ruleset(directory), matcher="reference")
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
        parameters: list[ParameterChange] = []
        for name in [*after, *(n for n in before if n not in after)]:
            head_set = after[name].ruleset if name in after else None
            base_set = before[name].ruleset if name in before else None
            head_rules = {r.id: r for r in head_set.rules} if head_set else {}
            base_rules = {r.id: r for r in base_set.rules} if base_set else {}
            moved = _parameter_changes(name, base_set, head_set)
            parameters.extend(moved)
            for rule_id, rule in [*head_rules.items(), *((i, r) for i, r in base_rules.items() if i not in head_rules)]:
                presence = "" if rule_id in head_rules and rule_id in base_rules else "added"
                presence = "removed" if rule_id not in head_rules else presence
                change = changes[name, rule_id] = RuleChange(name, rule_id, rule.title, presence)
                if not presence:
                    change.edits = _edits(base_rules[rule_id], rule, moved)
        for case in progress(cases):
            for name in {*before, *after}:
                was_outcome = before[name].evaluate(case, as_of) if name in before else None
                now_outcome = after[name].evaluate(case, as_of) if name in after else None
                was = was_outcome.outcomes if was_outcome else {}
                now = now_outcome.outcomes if now_outcome else {}
                measured = {
                    **(was_outcome.measures if was_outcome else {}),
                    **(now_outcome.measures if now_outcome else {}),
                }
                for moved_parameter in parameters:
                    if moved_parameter.ruleset == name and moved_parameter.near is not None:
                        low, high = moved_parameter.span()
                        values = [measured.get(m) for m in moved_parameter.measures]
                        if any(isinstance(v, int | float) and low <= v <= high for v in values):
                            moved_parameter.near += 1
                for rule_id in {*was, *now}:
                    change = changes[name, rule_id]
                    flagged_before, flagged_after = was.get(rule_id) is True, now.get(rule_id) is True
                    if flagged_after and not flagged_before:
                        change.newly_flagged.append(case.case_id)
                    elif flagged_before and not flagged_after:
                        change.no_longer_flagged.append(case.case_id)
                    elif flagged_before and flagged_after:
                        change.unchanged_flagged.append(case.case_id)
        failures = {name: lines for name, prepared in after.items() if (lines := gate(prepared))}
    ordered = sorted(changes.values(), key=lambda c: (not c.changed, not c.edits))
    return Impact(str(base), str(head), len(cases), as_of, ordered, parameters, failures)


def _parameter_changes(
    ruleset: str, base: CompiledRuleset | None, head: CompiledRuleset | None
) -> list[ParameterChange]:
    """The parameters that differ, each with the rules and measures compared against it."""
    old = base.parameters if base else {}
    new = head.parameters if head else {}
    found = []
    for name in [*new, *(n for n in old if n not in new)]:
        if name in old and name in new and old[name] == new[name]:
            continue
        change = ParameterChange(ruleset, name, old.get(name), new.get(name))
        for rules in (head.rules if head else (), base.rules if base else ()):
            for rule in rules:
                measures = _compared_with(rule, name)
                if (measures or any(p == name for p, _ in rule.thresholds)) and rule.id not in change.rules:
                    change.rules.append(rule.id)
                change.measures.extend(m for m in measures if m not in change.measures)
        if change.numeric and change.measures:
            change.near = 0
        found.append(change)
    return found


def _compared_with(rule: CompiledRule, parameter: str) -> list[str]:
    """The measures a rule's condition compares against `parameter`."""
    found: list[str] = []
    for node in walk(rule.condition):
        if isinstance(node, Compare):
            sides = (node.left, node.right)
            if any(isinstance(side, Const) and side.parameter == parameter for side in sides):
                found.extend(side.name for side in sides if isinstance(side, MeasureRef))
    return found


def _edits(base: CompiledRule, head: CompiledRule, moved: list[ParameterChange]) -> list[str]:
    edits = []
    if base.condition_text.split() != head.condition_text.split():
        edits.append("condition")
    if base.severity != head.severity:
        edits.append(f"severity {base.severity.name.lower()} -> {head.severity.name.lower()}")
    if base.status != head.status:
        edits.append(f"status {base.status} -> {head.status}")
    used = {name for name, _ in head.thresholds} | {name for name, _ in base.thresholds}
    edits.extend(change.describe() for change in moved if change.name in used)
    return edits


def _number(value: ParameterValue | None) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _show(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)

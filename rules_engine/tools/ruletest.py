"""Run a ruleset's rule tests through the serving loader, compiler and evaluator; report failures and coverage."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules_engine.case.facts import Case
from rules_engine.config import MatcherName
from rules_engine.engine.evaluator import Outcome, PreparedRuleset
from rules_engine.errors import CaseError, LoadError, RuleFileError, RuleFileErrors, SchemaError, SourcePosition
from rules_engine.policy.compiled import CompiledRule, MeasureValue
from rules_engine.policy.compiler import compile_ruleset, rulesets_in
from rules_engine.policy.conditions import suggest
from rules_engine.policy.loader import MAX_FILE_BYTES, RULE_FILE_SUFFIXES, parse_rule_file
from rules_engine.policy.source import SourceMap
from rules_engine.policy.validator import validate_model
from rules_engine.service import requests
from rules_engine.tools.testschema import RuleTestFile, RuleTestSpec

TESTS_DIRECTORY = "tests"
_WORDS = {True: "raised", False: "not raised", None: "undetermined"}


@dataclass(frozen=True)
class RuleTest:
    """One loaded test, its case converted to facts."""

    file: str
    index: int
    spec: RuleTestSpec
    case: Case | None  # None when the case did not convert (see `problem`)
    source_map: SourceMap
    problem: str = ""  # why `case` is None
    problem_path: str = ""  # under tests[index]: `.case` or `.case_file`

    @property
    def name(self) -> str:
        return self.spec.name

    def at(self, path: str = "") -> SourcePosition:
        return self.source_map.at(f"tests[{self.index}]{path}")


@dataclass(frozen=True)
class RuleTestResult:
    """What one test found: an empty `failures` means it passed."""

    file: str
    name: str
    ruleset: str
    failures: tuple[str, ...]  # `file:line:column: test 'name': ...`, one line each

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class RuleCoverage:
    """Whether any test saw a rule raised, and any test saw it not raised."""

    ruleset: str
    rule_id: str
    status: str
    raised: int = 0
    not_raised: int = 0
    tests: list[str] = field(default_factory=list)  # names of tests whose expectations name it

    @property
    def covered(self) -> bool:
        return self.raised > 0 and self.not_raised > 0


@dataclass
class RuleTestRun:
    """Every result, file error and rule's coverage of one run."""

    results: list[RuleTestResult] = field(default_factory=list)
    errors: list[RuleFileError] = field(default_factory=list)
    coverage: list[RuleCoverage] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed) + len(self.errors)

    @property
    def coverage_percent(self) -> float:
        if not self.coverage:
            return 100.0
        return 100.0 * sum(1 for c in self.coverage if c.covered) / len(self.coverage)

    def failure_lines(self) -> list[str]:
        return [str(e) for e in self.errors] + [line for r in self.results for line in r.failures]

    def extend(self, other: RuleTestRun) -> None:
        self.results.extend(other.results)
        self.errors.extend(other.errors)
        self.coverage.extend(other.coverage)


def rule_test_paths(directory: Path) -> list[Path]:
    """The test files of a ruleset: *.yaml and *.yml at any depth under its tests/ directory, sorted."""
    tests = directory / TESTS_DIRECTORY
    if not tests.is_dir():
        return []
    return sorted(p for p in tests.rglob("*") if p.suffix in RULE_FILE_SUFFIXES and p.is_file())


def load_rule_tests(directory: Path) -> tuple[list[RuleTest], list[RuleFileError]]:
    """Load, validate and convert the cases of every test file of a ruleset; collect every problem."""
    tests: list[RuleTest] = []
    errors: list[RuleFileError] = []
    for path in rule_test_paths(directory):
        shown = f"{directory.name}/{path.relative_to(directory).as_posix()}"
        try:
            data = path.read_bytes()
            loaded = parse_rule_file(data[: MAX_FILE_BYTES + 1], shown, allow_aliases=True)
        except OSError as exc:
            errors.append(LoadError(f"cannot read the file: {exc.strerror}", SourcePosition(shown, 1, 1)))
            continue
        except RuleFileErrors as exc:
            errors.extend(exc.errors)
            continue
        except RuleFileError as exc:
            errors.append(exc)
            continue
        document: Any = {} if loaded.document is None else loaded.document
        found: list[RuleFileError] = []
        spec = validate_model(RuleTestFile, document, "", loaded.source_map, found)
        errors.extend(found)
        if spec is None:
            continue
        for index, test in enumerate(spec.tests):
            case, problem = _case(test, path.parent)
            where = ".case_file" if test.case_file is not None else ".case"
            tests.append(RuleTest(shown, index, test, case, loaded.source_map, problem, where))
    return tests, errors


def _case(spec: RuleTestSpec, folder: Path) -> tuple[Case | None, str]:
    """Convert a test's case as the server converts a request's, or say why it cannot be."""
    document: Any = spec.case
    if spec.case_file is not None:
        try:
            document = json.loads((folder / spec.case_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return None, f"cannot read case_file {spec.case_file!r}: {exc}"
    if not isinstance(document, dict):
        return None, "the case must be a mapping of fields"
    try:
        message = requests.case_from_json(json_ready(document))
        return requests.case_model_from_proto(message, spec.as_of), ""
    except CaseError as exc:
        return None, f"invalid case: {exc}"


def json_ready(value: Any) -> Any:
    """YAML gives unquoted dates as date objects; proto3 JSON wants their text."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def run_rule_tests(prepared: PreparedRuleset, directory: Path) -> RuleTestRun:
    """Run a ruleset's own tests against its prepared form; coverage comes from every evaluation's outcomes."""
    ruleset = prepared.ruleset
    run = RuleTestRun()
    run.coverage = [RuleCoverage(ruleset.name, r.id, r.status) for r in ruleset.rules]
    by_id = {c.rule_id: c for c in run.coverage}
    tests, errors = load_rule_tests(directory)
    run.errors.extend(errors)
    for test in tests:
        failures: list[str] = []
        if test.case is None:
            failures.append(f"{test.at(test.problem_path)}: test {test.name!r}: {test.problem}")
        else:
            outcome = prepared.evaluate(test.case, test.spec.as_of)
            for rule_id, truth in outcome.outcomes.items():
                seen = by_id[rule_id]
                if truth is True:
                    seen.raised += 1
                elif truth is False:
                    seen.not_raised += 1
            expect = test.spec.expect
            for rule_id in dict.fromkeys([*expect.raised, *expect.not_raised, *expect.undetermined]):
                # The tests that check a rule by name are the ones a reader wants listed.
                if rule_id in by_id and test.name not in by_id[rule_id].tests:
                    by_id[rule_id].tests.append(test.name)
            failures.extend(_check(test, outcome, {r.id: r for r in ruleset.rules}))
        run.results.append(RuleTestResult(test.file, test.name, ruleset.name, tuple(failures)))
    return run


def _check(test: RuleTest, outcome: Outcome, rules: dict[str, CompiledRule]) -> Iterable[str]:
    expect = test.spec.expect
    lists: tuple[tuple[str, list[str]], ...] = (
        ("raised", expect.raised),
        ("not_raised", expect.not_raised),
        ("undetermined", expect.undetermined),
    )
    for key, rule_ids in lists:
        for i, rule_id in enumerate(rule_ids):
            position = test.at(f".expect.{key}[{i}]")
            prefix = f"{position}: test {test.name!r}:"
            if rule_id not in rules:
                yield f"{prefix} unknown rule {rule_id!r}" + suggest(rule_id, list(rules))
                continue
            got = outcome.outcomes.get(rule_id)
            ok = got is True if key == "raised" else got is None if key == "undetermined" else got is not True
            if not ok:
                wanted = key.replace("_", " ")
                measured = _measured(rules[rule_id], outcome)
                yield f"{prefix} rule {rule_id} expected {wanted}, got {_WORDS[got]} ({measured})"


def _measured(rule: CompiledRule, outcome: Outcome) -> str:
    values = [f"{name}={_show(outcome.measures.get(name))}" for name in rule.measures]
    values += [f"flagged({d})={_WORDS[outcome.outcomes.get(d)]}" for d in rule.depends_on]
    text = "measured: " + (", ".join(values) or "nothing")
    if rule.thresholds:
        text += "; thresholds: " + ", ".join(f"{name}={_show(value)}" for name, value in rule.thresholds)
    return text


def _show(value: MeasureValue | str) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def gate(prepared: PreparedRuleset) -> list[str]:
    """Registry gate: the failures of a candidate version's own tests; empty lets it serve."""
    if not prepared.ruleset.directory:
        return []
    run = run_rule_tests(prepared, Path(prepared.ruleset.directory))
    lines = run.failure_lines()
    if lines:
        lines.append(f"{run.passed} passed, {run.failed} failed: the ruleset's own tests fail")
    return lines


def run_directory(root: Path, matcher: MatcherName = "durable") -> RuleTestRun:
    """Compile and test every ruleset under `root` (or `root` as one ruleset)."""
    run = RuleTestRun()
    if not root.is_dir():
        run.errors.append(LoadError(f"{root} is not a directory", SourcePosition(str(root), 1, 1)))
        return run
    directories = rulesets_in(root)
    if not directories:
        run.errors.append(SchemaError("no rulesets found", SourcePosition(str(root), 1, 1)))
    for directory in directories:
        try:
            compiled = compile_ruleset(directory)
        except RuleFileErrors as exc:
            run.errors.extend(exc.errors)
            continue
        prepared = PreparedRuleset(compiled, matcher=matcher)
        try:
            run.extend(run_rule_tests(prepared, directory))
        finally:
            prepared.close()
    return run

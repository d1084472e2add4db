"""Compile: a ruleset directory -> CompiledRuleset, or every problem found, sorted.

The pipeline is load (loader.py), validate (validator.py), then the checks that span
entries and files here: merging sections, duplicate names, limits, conditions, flagged()
references, dependency cycles, title and explanation templates, and the order rules run in.
Titles are rendered here from the parameters, so a flag, the docs and a diff all show the
threshold in force; literal numbers in a title or explanation that equal a parameter the
rule uses become warnings (literals.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from rules_engine.errors import CompileError, LoadError, RuleFileError, RuleFileErrors, RuleFileWarning, SourcePosition
from rules_engine.policy.compiled import (
    CompiledMeasure,
    CompiledRule,
    CompiledRuleset,
    Const,
    FlaggedRef,
    MeasureRef,
    Severity,
    Window,
    walk,
)
from rules_engine.policy.conditions import ParameterValue, RuleConditionCompiler, parse_condition, protected, suggest
from rules_engine.policy.literals import parameter_literals
from rules_engine.policy.loader import RULE_FILE_SUFFIXES, FailedFile, load_ruleset, rule_file_paths
from rules_engine.policy.measure_compiler import MeasureCompiler, link_derived
from rules_engine.policy.schema import MeasureSpec, RulesetHeader, RuleSpec, parse_window
from rules_engine.policy.source import SourceMap
from rules_engine.policy.templates import render, template_parts
from rules_engine.policy.validator import Located, RuleFile, validate_file

MAX_RULES = 500
MAX_MEASURES = 500
# Format specs an explanation may use: `{x:.0f}`, `{x:,}`, `{x:.1%}`. Nothing that could
# fail on an int or a float, since a measure may be either.
_FORMAT_SPEC = re.compile(r",?(\.\d)?[f%]?")

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

SpecT = TypeVar("SpecT", MeasureSpec, RuleSpec)
_Report = Callable[[str, SourcePosition], None]


def compile_ruleset(directory: Path) -> CompiledRuleset:
    """Load, validate and compile one ruleset directory; raise RuleFileErrors listing every problem."""
    ruleset, errors = _compile(directory)
    if ruleset is None or errors:
        raise RuleFileErrors(errors)
    return ruleset


def load_rulesets(root: Path) -> dict[str, CompiledRuleset]:
    """Compile every ruleset under `root` (each subdirectory holding rule files), by name."""
    rulesets: dict[str, CompiledRuleset] = {}
    errors: list[RuleFileError] = []
    for directory in ruleset_directories(root):
        ruleset, found = _compile(directory)
        errors.extend(found)
        if ruleset is None:
            continue
        if ruleset.name in rulesets:
            message = f"ruleset name {ruleset.name!r} is also used by {rulesets[ruleset.name].directory}"
            errors.append(CompileError(message, ruleset.rules[0].position if ruleset.rules else _at(directory)))
            continue
        rulesets[ruleset.name] = ruleset
    if errors:
        raise RuleFileErrors(errors)
    return rulesets


def check_rulesets(root: Path) -> list[RuleFileError]:
    """Every problem in the rulesets under `root`, or in `root` itself if it is one ruleset; sorted."""
    if not root.is_dir():
        return [LoadError(f"{root} is not a directory", _at(root))]
    if any(p.is_file() and p.suffix in (".yaml", ".yml") for p in root.iterdir()):
        directories = [root]
    else:
        directories = ruleset_directories(root)
        if not directories:
            return [LoadError("no rule files (*.yaml) found", _at(root))]
    errors: list[RuleFileError] = []
    for directory in directories:
        errors.extend(_compile(directory)[1])
    return RuleFileErrors(errors).errors


def ruleset_directories(root: Path) -> list[Path]:
    """The subdirectories of `root` that hold rule files, sorted."""
    if not root.is_dir():
        return []
    return [
        child
        for child in sorted(root.iterdir())
        if child.is_dir() and not child.name.startswith(".") and rule_file_paths(child)
    ]


def rulesets_in(root: Path) -> list[Path]:
    """The rulesets a directory argument names: `root` itself when rule files lie directly in it
    (one ruleset, e.g. rulesets/starter), else its subdirectories that hold rule files (e.g.
    rulesets); empty when it is neither or does not exist.

    Every command resolves its directory this way: serve, eval, replay, check, test, docs, diff.
    """
    if not root.is_dir():
        return []
    if any(p.is_file() and p.suffix in RULE_FILE_SUFFIXES for p in root.iterdir()):
        return [root]
    return ruleset_directories(root)


@dataclass(frozen=True)
class RulesetCheck:
    """One ruleset directory compiled for `check`: the ruleset when it has no errors, the
    errors sorted, the warnings, and the files that failed to load (see checking.py)."""

    ruleset: CompiledRuleset | None
    errors: list[RuleFileError]
    warnings: list[RuleFileWarning]
    failed: tuple[FailedFile, ...] = ()


def compile_checked(directory: Path) -> RulesetCheck:
    """Load, validate and compile one ruleset directory, keeping warnings and load failures."""
    loaded = load_ruleset(directory)
    errors: list[RuleFileError] = list(loaded.errors)
    if not loaded.files and not errors:
        return RulesetCheck(None, [LoadError("no rule files (*.yaml) found", _at(directory))], [])
    files = []
    for file in loaded.files:
        rule_file, found = validate_file(file)
        files.append(rule_file)
        errors.extend(found)
    compiler = _RulesetCompiler(directory, files)
    ruleset = compiler.compile(loaded.version)
    errors.extend(compiler.errors)
    warnings = sorted(compiler.warnings, key=lambda w: w.position)
    return RulesetCheck(None if errors else ruleset, RuleFileErrors(errors).errors, warnings, loaded.failed)


def _compile(directory: Path) -> tuple[CompiledRuleset | None, list[RuleFileError]]:
    checked = compile_checked(directory)
    return checked.ruleset, checked.errors


def _at(path: Path) -> SourcePosition:
    return SourcePosition(path.name or str(path), 1, 1)


@dataclass(frozen=True)
class _Entry:
    """A measure or rule with the file it came from."""

    file: RuleFile
    path: str

    @property
    def source_map(self) -> SourceMap:
        return self.file.source_map

    @property
    def position(self) -> SourcePosition:
        return self.source_map.at(self.path)

    def at(self, field: str) -> SourcePosition:
        return self.source_map.at(f"{self.path}.{field}")

    def where(self) -> str:
        position = self.position
        return f"{position.file} line {position.line}"


class _RulesetCompiler:
    """Merges the validated files of one ruleset and compiles them; errors collect in `errors`."""

    def __init__(self, directory: Path, files: list[RuleFile]) -> None:
        self.directory = directory
        self.files = files
        self.errors: list[RuleFileError] = []
        self.warnings: list[RuleFileWarning] = []
        self.header: RulesetHeader | None = None
        self.parameters: dict[str, ParameterValue] = {}
        self.measure_specs: dict[str, tuple[_Entry, MeasureSpec]] = {}
        self.rule_specs: dict[str, tuple[_Entry, RuleSpec]] = {}
        self.broken = frozenset(name for f in files for name in f.broken_names)

    def compile(self, version: str) -> CompiledRuleset | None:
        self._merge()
        measures = self._compile_measures()
        rules = self._compile_rules()
        ordered = self._order(rules)
        if self.errors or ordered is None:
            return None
        header = self.header or RulesetHeader()
        return CompiledRuleset(
            name=header.name or self.directory.name,
            version=version,
            rules=ordered,
            measures=tuple(measures),
            parameters=dict(self.parameters),
            description=header.description,
            directory=str(self.directory),
        )

    def _error(self, message: str, position: SourcePosition) -> None:
        self.errors.append(CompileError(message, position))

    # --- merging ---------------------------------------------------------------------------

    def _merge(self) -> None:
        header_at: SourcePosition | None = None
        parameter_at: dict[str, SourcePosition] = {}
        for file in self.files:
            if file.header is not None:
                position = file.source_map.key_at(file.header_path)
                if header_at is not None:
                    self._error(
                        f"the ruleset header is already given in {header_at.file} line {header_at.line}",
                        position,
                    )
                else:
                    self.header, header_at = file.header, position
            for name, value in file.parameters.items():
                position = file.source_map.key_at(f"parameters.{name}")
                if (reason := protected(name)) is not None:
                    self._error(f"a parameter may not be named {name!r}: {reason}", position)
                elif name in parameter_at:
                    first = parameter_at[name]
                    self._error(f"parameter {name!r} is already defined in {first.file} line {first.line}", position)
                else:
                    self.parameters[name], parameter_at[name] = value, position
            self._merge_entries(file, file.measures, self.measure_specs, "measure", MAX_MEASURES)
            self._merge_entries(file, file.rules, self.rule_specs, "rule", MAX_RULES)

    def _merge_entries(
        self,
        file: RuleFile,
        entries: Sequence[Located[SpecT]],
        target: dict[str, tuple[_Entry, SpecT]],
        noun: str,
        limit: int,
    ) -> None:
        for located in entries:
            spec = located.spec
            entry = _Entry(file, located.path)
            name = spec.name if isinstance(spec, MeasureSpec) else spec.id
            label = "name" if isinstance(spec, MeasureSpec) else "id"
            if isinstance(spec, MeasureSpec) and (reason := protected(name)) is not None:
                self._error(f"a measure may not be named {name!r}: {reason}", entry.at(label))
                continue
            if name in target:
                first = target[name][0]
                self._error(f"{noun} {label} {name!r} is already used in {first.where()}", entry.at(label))
                continue
            if len(target) == limit:
                self._error(f"a ruleset may hold at most {limit} {noun}s", entry.position)
                continue
            target[name] = (entry, spec)

    # --- measures --------------------------------------------------------------------------

    def _compile_measures(self) -> list[CompiledMeasure]:
        compiled = []
        for name, (entry, spec) in self.measure_specs.items():
            if name in self.parameters:
                self._error(f"{name!r} names both a measure and a parameter; rename one", entry.at("name"))
                continue
            compiler = MeasureCompiler(Located(entry.path, spec), entry.source_map, self.parameters)
            measure = compiler.compile()
            self.errors.extend(compiler.errors)
            if measure is not None:
                compiled.append(measure)
        specs = {name: (entry.path, entry.source_map, spec) for name, (entry, spec) in self.measure_specs.items()}
        linked, errors = link_derived(compiled, specs, self.broken)
        self.errors.extend(errors)
        return linked

    # --- rules -----------------------------------------------------------------------------

    def _compile_rules(self) -> list[CompiledRule]:
        compiled = []
        measure_names = [*self.measure_specs, *self.broken]
        for entry, spec in self.rule_specs.values():
            rule = self._compile_rule(entry, spec, measure_names)
            if rule is not None:
                compiled.append(rule)
        return compiled

    def _compile_rule(self, entry: _Entry, spec: RuleSpec, measure_names: list[str]) -> CompiledRule | None:
        path = f"{entry.path}.condition"
        try:
            parsed = parse_condition(spec.condition, lambda offset: entry.source_map.at_offset(path, offset))
        except CompileError as exc:
            self.errors.append(exc)
            return None
        condition = RuleConditionCompiler(parsed, measure_names, self.parameters).compile()
        self.errors.extend(parsed.errors)
        title_ok = self._check_template(entry, "title", spec.title)
        template_ok = self._check_template(entry, "explanation", spec.explanation)
        if condition is None or not template_ok or not title_ok:
            return None
        nodes = list(walk(condition))
        depends_on = _unique(n.rule_id for n in nodes if isinstance(n, FlaggedRef))
        for ref in (n for n in nodes if isinstance(n, FlaggedRef)):
            if ref.rule_id not in self.rule_specs and ref.rule_id not in self.broken:
                known = list(self.rule_specs)
                self._error(
                    f"flagged() names an unknown rule {ref.rule_id!r}" + suggest(ref.rule_id, known),
                    ref.position,
                )
        # Parameters are never lists, so a named constant's value is a scalar.
        thresholds = {n.parameter: self.parameters[n.parameter] for n in nodes if isinstance(n, Const) and n.parameter}
        measures = _unique(n.name for n in nodes if isinstance(n, MeasureRef))
        self._warn_literals(entry, spec, list(thresholds), measures)
        return CompiledRule(
            id=spec.id,
            title=render(spec.title, self.parameters),
            severity=Severity[spec.severity.upper()],
            escalation=spec.escalation,
            explanation=spec.explanation,
            condition_text=spec.condition,
            condition=condition,
            source_kind=spec.source.kind,
            source_reference=spec.source.reference,
            status=spec.status,
            position=entry.position,
            measures=measures,
            depends_on=depends_on,
            thresholds=tuple(thresholds.items()),
            description=spec.description,
            tags=tuple(spec.tags),
        )

    def _parameters_of(self, measures: Sequence[str], explanation: str) -> tuple[list[str], list[Window]]:
        """The parameters behind `measures` and the measures an explanation names (windows,
        deadlines, periods, counts and filters, through sums and ratios), and the durations
        those measures write out instead."""
        named = [name for _, name, _, _ in template_parts(explanation) if name]
        pending = [*measures, *named]
        seen: set[str] = set()
        found: dict[str, None] = dict.fromkeys(name for name in named if name in self.parameters)
        written: list[Window] = []
        while pending:
            name = pending.pop()
            if name in seen or name not in self.measure_specs:
                continue
            seen.add(name)
            spec = self.measure_specs[name][1]
            for value in (spec.window, spec.deadline, spec.period, spec.last, spec.at_least):
                if isinstance(value, str) and value in self.parameters:
                    found.setdefault(value)
                elif isinstance(value, str) and (window := parse_window(value)) is not None:
                    written.append(window)
            for text in (spec.where, spec.matching, spec.followup_where, spec.since_latest_where):
                for word in _WORD.findall(text or ""):
                    if word in self.parameters:
                        found.setdefault(word)
            pending.extend([*(spec.measures or ()), *(n for n in (spec.numerator, spec.denominator) if n)])
        return list(found), written

    def _warn_literals(self, entry: _Entry, spec: RuleSpec, thresholds: Sequence[str], measures: Sequence[str]) -> None:
        """Warn at each number in the title or explanation that a parameter the rule uses holds."""
        behind, written = self._parameters_of(measures, spec.explanation)
        parameters = {name: self.parameters[name] for name in [*thresholds, *behind]}
        for field, template in (("title", spec.title), ("explanation", spec.explanation)):
            for literal in parameter_literals(template, parameters, written):
                message = (
                    f"{field} says {literal.text} where parameter {literal.parameter} ({literal.value}) is meant; "
                    f"write {{{literal.parameter}}}"
                )
                position = entry.source_map.at_offset(f"{entry.path}.{field}", literal.offset)
                self.warnings.append(RuleFileWarning(message, position))

    def _check_template(self, entry: _Entry, field: str, template: str) -> bool:
        """Only `{name}` placeholders with simple number formats: measures or parameters in an
        explanation, parameters alone in a title (a title is shown without measured values)."""
        path = f"{entry.path}.{field}"
        source_map = entry.source_map
        known = [*self.parameters] if field == "title" else [*self.measure_specs, *self.parameters, *self.broken]
        before = len(self.errors)
        try:
            parts = template_parts(template)
        except ValueError:
            message = f"the {field} has an unmatched '{{' or '}}'; write {{{{ or }}}} for a brace itself"
            self._error(message, source_map.at(path))
            return False
        offset = 0
        for literal, name, spec, conversion in parts:
            # Formatter.parse unescapes `{{` and `}}`: count them back to stay on the raw text.
            offset += len(literal) + literal.count("{") + literal.count("}")
            if name is None:
                continue
            position = source_map.at_offset(path, offset)
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            offset += len(shown)
            if not name.isidentifier():
                self._error(f"{field} placeholders must be plain names, not {shown}", position)
            elif (reason := protected(name.split(".")[0])) is not None:
                self._error(reason, position)
            elif field == "title" and (name in self.measure_specs or name in self.broken):
                message = (
                    f"a title names parameters only, not the measure {name!r}; measured values go in the explanation"
                )
                self._error(message, position)
            elif name not in known:
                noun = "parameter" if field == "title" else "measure or parameter"
                self._error(f"unknown {noun} {name!r} in the {field}" + suggest(name, known), position)
            elif conversion:
                self._error(f"conversions such as !{conversion} are not allowed in {shown}", position)
            elif spec and not _FORMAT_SPEC.fullmatch(spec):
                self._error(f"format {spec!r} in {shown} is not allowed; use e.g. {{{name}:.0f}}", position)
        return len(self.errors) == before

    # --- dependencies ----------------------------------------------------------------------

    def _order(self, rules: list[CompiledRule]) -> tuple[CompiledRule, ...] | None:
        """Rules by level, then file order: each after the rules it depends on; None on a cycle."""
        by_id = {rule.id: rule for rule in rules}
        finished = _depth_first(by_id, self._error)
        if finished is None:
            return None
        levels: dict[str, int] = {}
        for rule_id in finished:  # dependencies finish before their dependents
            deps = [levels[d] for d in by_id[rule_id].depends_on if d in levels]
            levels[rule_id] = 1 + max(deps) if deps else 0
        index = {rule.id: i for i, rule in enumerate(rules)}
        ordered = sorted(rules, key=lambda rule: (levels[rule.id], index[rule.id]))
        return tuple(_with_level(rule, levels[rule.id]) for rule in ordered)


def _depth_first(rules: Mapping[str, CompiledRule], report: _Report) -> list[str] | None:
    """Rule ids in depth-first finishing order; report each dependency cycle at its flagged()."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    finished: list[str] = []
    cycles = False
    for root in rules:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        stack = [iter(_flagged_refs(rules[root]))]
        while stack:
            ref = next(stack[-1], None)
            if ref is None:
                state[path[-1]] = 2
                finished.append(path.pop())
                stack.pop()
                continue
            if ref.rule_id not in rules:
                continue  # unknown or broken: reported elsewhere
            seen = state.get(ref.rule_id)
            if seen == 1:
                cycle = [*path[path.index(ref.rule_id) :], ref.rule_id]
                report("rules depend on each other in a cycle: " + " -> ".join(cycle), ref.position)
                cycles = True
            elif seen is None:
                state[ref.rule_id] = 1
                path.append(ref.rule_id)
                stack.append(iter(_flagged_refs(rules[ref.rule_id])))
    return None if cycles else finished


def _flagged_refs(rule: CompiledRule) -> list[FlaggedRef]:
    return [node for node in walk(rule.condition) if isinstance(node, FlaggedRef)]


def _unique(names: Iterator[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _with_level(rule: CompiledRule, level: int) -> CompiledRule:
    return replace(rule, level=level)

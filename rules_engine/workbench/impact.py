"""Impact of a change: an edited ruleset must pass `check` and its own tests, then the caseload is
evaluated on both versions (tools/diff.compare) and counted per rule and per theme, with each
changed case's explanation for the drill-down.

Counts per rule: `newly_flagged` (flagged by the edited version only), `no_longer_flagged` (by
the served version only), `unchanged` (every other case: the rule's answer did not change) of
which `still_flagged` were flagged by both. Per theme the same four, counted per case: a case is
newly flagged under a theme when some rule of the theme flags it after the edit and none did
before (and so on), so a case moved from one rule to another of its theme is unchanged.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules_engine.case.facts import Case
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.engine.results import Outcome
from rules_engine.errors import CaseError, FieldViolation, RuleFileError, RuleFileErrors, RuleFileWarning
from rules_engine.policy.checking import check
from rules_engine.policy.compiled import CompiledRule, CompiledRuleset
from rules_engine.policy.compiler import compile_ruleset, rulesets_in
from rules_engine.tools.diff import Impact, RuleChange, case_from_line, compare
from rules_engine.tools.ruletest import run_directory
from rules_engine.workbench.asgi import ApiError
from rules_engine.workbench.catalogue import rule_themes

MAX_CASELOAD_LINES = 20_000
# Changed (case, rule) pairs the drill-down lists; the counts always cover every case.
MAX_CHANGES_LISTED = 2_000
# `file:line:column: message`, as SourcePosition prints a position before a rule test's failure.
_POSITIONED = re.compile(r"^(?P<file>[^\n:]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$", re.DOTALL)


# -- the caseload --------------------------------------------------------------------------------


def read_caseload(text: object, as_of: dt.date) -> list[Case]:
    """JSON lines of proto3 JSON cases, each converted as the API converts a request's case;
    CaseError naming the line (`caseload:3: case.concerns[0].date`) and its bad fields."""
    if not isinstance(text, str) or not text.strip():
        raise CaseError([FieldViolation("caseload", "required: JSON lines, one proto3 JSON case a line")])
    lines = text.splitlines()
    if sum(1 for line in lines if line.strip()) > MAX_CASELOAD_LINES:
        raise CaseError([FieldViolation("caseload", f"more than {MAX_CASELOAD_LINES:,} cases; send a sample")])
    cases: list[Case] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"caseload:{number}"
        try:
            case = case_from_line(line, as_of, f"{where}: case")
        except ValueError as exc:
            raise CaseError([FieldViolation(where, f"not JSON ({exc})")]) from None
        if case.case_id in first_line:
            # The drill-down names cases by id: two cases with one id could not be told apart.
            raise CaseError([FieldViolation(f"{where}: case.case_id", f"also on line {first_line[case.case_id]}")])
        first_line[case.case_id] = number
        cases.append(case)
    return cases


# -- check and the ruleset's own tests -----------------------------------------------------------


def problem(file: str, line: int | None, column: int | None, message: str, prefix: str = "") -> dict[str, Any]:
    return {"file": file.removeprefix(prefix), "line": line, "column": column, "message": message}


def positioned(found: RuleFileError | RuleFileWarning, prefix: str) -> dict[str, Any]:
    where = found.position
    return problem(where.file, where.line, where.column, f"{found.code}: {found.message}", prefix)


def from_line(text: str, prefix: str) -> dict[str, Any]:
    """A rule test's failure line (`file:line:column: test 'x': ...`) as a problem."""
    match = _POSITIONED.match(text)
    if match is None:
        return problem("", None, None, text)
    return problem(match["file"], int(match["line"]), int(match["column"]), match["message"], prefix)


def check_and_test(head: Path, prefix: str) -> list[dict[str, Any]]:
    """`rules-engine check` then `rules-engine test` on the edited rulesets, as a reload's gate
    would; ApiError 422 listing every problem (file, line, column) when either fails. Returns
    check's warnings. `prefix` is taken off file names (`starter/`), so they read as uploaded."""
    report = check(head)
    if report.failed:
        problems = [positioned(e, prefix) for e in report.errors]
        problems += [problem(f.file, None, None, str(f), prefix) for f in report.follow_ons]
        raise ApiError(422, "the edited ruleset does not pass check", problems=problems)
    run = run_directory(head, matcher="reference")
    if run.failed:
        problems = [positioned(e, prefix) for e in run.errors]
        problems += [from_line(line, prefix) for result in run.results for line in result.failures]
        message = f"the edited ruleset fails its own tests ({run.passed} passed, {run.failed} failed)"
        raise ApiError(422, message, problems=problems)
    return [positioned(w, prefix) for w in report.warnings]


# -- the comparison, counted ---------------------------------------------------------------------


@dataclass
class _Side:
    """One version of the rulesets, prepared again for the drill-down's explanations."""

    prepared: dict[str, PreparedRuleset]

    @classmethod
    def of(cls, root: Path, stack: ExitStack) -> _Side:
        prepared = {}
        for directory in rulesets_in(root):
            ruleset = PreparedRuleset(compile_ruleset(directory), matcher="reference")
            stack.callback(ruleset.close)
            prepared[ruleset.ruleset.name] = ruleset
        return cls(prepared)

    def rule(self, ruleset: str, rule_id: str) -> CompiledRule | None:
        found = self.prepared.get(ruleset)
        return next((r for r in found.ruleset.rules if r.id == rule_id), None) if found else None

    def themes(self) -> dict[tuple[str, str], list[str]]:
        return {
            (name, rule_id): themes
            for name, prepared in self.prepared.items()
            for rule_id, themes in rule_themes(prepared.ruleset).items()
        }


def _flagged(change: RuleChange) -> tuple[set[str], set[str]]:
    """The case ids the rule flags before and after the edit."""
    kept = set(change.unchanged_flagged)
    return kept | set(change.no_longer_flagged), kept | set(change.newly_flagged)


def _counts(before: set[str], after: set[str], total: int) -> dict[str, int]:
    newly, gone = len(after - before), len(before - after)
    return {
        "newly_flagged": newly,
        "no_longer_flagged": gone,
        "unchanged": total - newly - gone,
        "still_flagged": len(before & after),
    }


def rules_json(impact: Impact, themes: dict[tuple[str, str], list[str]], head: _Side) -> list[dict[str, Any]]:
    rows = []
    for change in impact.changes:
        before, after = _flagged(change)
        rule = head.rule(change.ruleset, change.rule_id)
        rows.append(
            {
                "ruleset": change.ruleset,
                "rule_id": change.rule_id,
                "title": change.title,
                "themes": themes.get((change.ruleset, change.rule_id), []),
                "presence": change.presence or "both",
                "shadow": rule is not None and rule.status == "shadow",
                "edits": change.edits,
                **_counts(before, after, impact.cases),
            }
        )
    return rows


def themes_json(impact: Impact, themes: dict[tuple[str, str], list[str]]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str], tuple[set[str], set[str], list[str]]] = {}
    for change in impact.changes:
        before, after = _flagged(change)
        for theme in themes.get((change.ruleset, change.rule_id), []):
            was, now, rules = grouped.setdefault((change.ruleset, theme), (set(), set(), []))
            was.update(before)
            now.update(after)
            rules.append(change.rule_id)
    return [
        {"ruleset": ruleset, "theme": theme, "rules": rules, **_counts(was, now, impact.cases)}
        for (ruleset, theme), (was, now, rules) in sorted(grouped.items())
    ]


def _side_json(rule: CompiledRule | None, outcome: Outcome | None) -> dict[str, Any]:
    if rule is None or outcome is None:
        return {"flagged": False, "exists": False}
    flag = next((f for f in (*outcome.flags, *outcome.shadow_flags) if f.rule_id == rule.id), None)
    return {
        "exists": True,
        "flagged": flag is not None,
        "explanation": flag.explanation if flag else "",
        "measured": {name: outcome.measures.get(name) for name in rule.measures},
        "thresholds": {name: value for name, value in rule.thresholds},
    }


def changes_json(
    impact: Impact, cases: Sequence[Case], as_of: dt.date, base: _Side, head: _Side
) -> tuple[list[dict[str, Any]], int]:
    """The drill-down: each changed (case, rule) with the rule's explanation where it flags the case,
    and its measured values and thresholds on both versions; at most MAX_CHANGES_LISTED of them."""
    by_id = {case.case_id: case for case in cases}
    pairs = [
        (case_id, change, kind)
        for change in impact.changes
        for kind, ids in (("newly_flagged", change.newly_flagged), ("no_longer_flagged", change.no_longer_flagged))
        for case_id in ids
    ]
    outcomes: dict[tuple[str, str, str], Outcome | None] = {}

    def outcome(side: _Side, label: str, ruleset: str, case_id: str) -> Outcome | None:
        key = (label, ruleset, case_id)
        if key not in outcomes:
            prepared = side.prepared.get(ruleset)
            outcomes[key] = prepared.evaluate(by_id[case_id], as_of) if prepared else None
        return outcomes[key]

    listed = []
    for case_id, change, kind in pairs[:MAX_CHANGES_LISTED]:
        before = _side_json(base.rule(change.ruleset, change.rule_id), outcome(base, "base", change.ruleset, case_id))
        after = _side_json(head.rule(change.ruleset, change.rule_id), outcome(head, "head", change.ruleset, case_id))
        listed.append(
            {
                "case_id": case_id,
                "ruleset": change.ruleset,
                "rule_id": change.rule_id,
                "title": change.title,
                "change": kind,
                # What the rule said where it flags the case: after the edit, or before it.
                "explanation": (after if kind == "newly_flagged" else before).get("explanation", ""),
                "before": before,
                "after": after,
            }
        )
    return listed, len(pairs)


def parameters_json(impact: Impact) -> list[dict[str, Any]]:
    return [
        {
            "ruleset": p.ruleset,
            "name": p.name,
            "old": p.old,
            "new": p.new,
            "rules": p.rules,
            "near": p.near,
            "describe": p.describe(),
        }
        for p in impact.parameters
    ]


def preview(
    base: Path, head: Path, cases: list[Case], as_of: dt.date, warnings: Iterable[dict[str, Any]] = ()
) -> dict[str, Any]:
    """Compare the two versions over `cases` and count; RuleFileErrors when either does not compile."""
    impact = compare(base, head, cases, as_of)
    with ExitStack() as stack:
        before, after = _Side.of(base, stack), _Side.of(head, stack)
        themes = {**before.themes(), **after.themes()}
        changes, total = changes_json(impact, cases, as_of, before, after)
        return {
            "rulesets": sorted({*before.prepared, *after.prepared}),
            "base_versions": {name: p.ruleset.version for name, p in before.prepared.items()},
            "head_versions": {name: p.ruleset.version for name, p in after.prepared.items()},
            "as_of": as_of.isoformat(),
            "caseload": impact.cases,
            "parameters": parameters_json(impact),
            "rules": rules_json(impact, themes, after),
            "themes": themes_json(impact, themes),
            "cases": changes,
            "cases_total": total,
            "warnings": [
                *warnings,
                *(problem("", None, None, text) for text in impact.warnings()),
            ],
        }


def rule_file_problems(exc: RuleFileErrors, prefix: str = "") -> ApiError:
    """A version that does not compile (it passed check, so rarely) as the 422 the page shows."""
    return ApiError(422, "the rulesets do not compile", problems=[positioned(e, prefix) for e in exc.errors])


def served_directory(ruleset: CompiledRuleset) -> Path:
    """The directory the served version was compiled from; 400 if it has none."""
    if not ruleset.directory or not Path(ruleset.directory).is_dir():
        raise ApiError(400, f"ruleset {ruleset.name!r} has no directory on this server to edit")
    return Path(ruleset.directory)

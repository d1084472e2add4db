"""The catalogue: every served ruleset, each rule in plain words with its thresholds, source,
severity, escalation, shadow status, themes, covering tests and the rules it builds on.

The words are tools/docs.py's (what `rules-engine docs` writes), the themes are the catalogue's
codes (tools/catalogue_eval.themes_of: H1, W1, C1 ...) and the covering tests come from running
the ruleset's own tests (tools/ruletest.py), once per ruleset version.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.engine.results import RulesetStatus
from rules_engine.policy.compiled import CompiledRule, CompiledRuleset
from rules_engine.tools.catalogue_eval import themes_of
from rules_engine.tools.docs import measure_words, plain_words
from rules_engine.tools.ruletest import RuleCoverage, run_rule_tests


def rule_themes(ruleset: CompiledRuleset) -> dict[str, list[str]]:
    """Rule id -> its catalogue themes (H1, W1 ...); a rule carrying none is under its rule file's
    name (`rules` for rules.yaml), so every rule has a theme to count it under."""
    themes: dict[str, list[str]] = {rule.id: [] for rule in ruleset.rules}
    for theme, rule_ids in sorted(themes_of(ruleset).items()):
        for rule_id in rule_ids:
            themes[rule_id].append(theme)
    for rule in ruleset.rules:
        if not themes[rule.id]:
            themes[rule.id].append(Path(rule.position.file).stem)
    return themes


def rule_json(
    rule: CompiledRule,
    ruleset: CompiledRuleset,
    themes: list[str],
    coverage: RuleCoverage | None,
    built_on_by: list[str],
) -> dict[str, Any]:
    words = {m.name: m.description or measure_words(m) for m in ruleset.measures}
    return {
        "id": rule.id,
        "title": rule.title,
        "summary": plain_words(rule.condition, ruleset),
        "condition": rule.condition_text,
        "description": rule.description,
        "themes": themes,
        "tags": list(rule.tags),
        "severity": rule.severity.name.lower(),
        "escalation": rule.escalation,
        "status": rule.status,
        "shadow": rule.status == "shadow",
        # A rule's source is where its thresholds come from (policy/schema.py SourceSpec).
        "source": {"kind": rule.source_kind, "reference": rule.source_reference},
        "thresholds": [
            {"parameter": name, "value": value, "source": rule.source_kind, "reference": rule.source_reference}
            for name, value in rule.thresholds
        ],
        "measures": [{"name": name, "words": words.get(name, name)} for name in rule.measures],
        "builds_on": list(rule.depends_on),
        "built_on_by": built_on_by,
        "tests": list(coverage.tests) if coverage else [],
        # Some test saw it raised and some test saw it not raised.
        "covered": coverage.covered if coverage else False,
        "file": rule.position.file,
        "line": rule.position.line,
    }


def ruleset_json(prepared: PreparedRuleset, status: RulesetStatus | None) -> dict[str, Any]:
    """One ruleset's catalogue entry; runs its own tests for their coverage (a fraction of a second)."""
    ruleset = prepared.ruleset
    coverage: dict[str, RuleCoverage] = {}
    if ruleset.directory:
        run = run_rule_tests(prepared, Path(ruleset.directory))
        coverage = {c.rule_id: c for c in run.coverage}
    themes = rule_themes(ruleset)
    built_on_by: dict[str, list[str]] = {rule.id: [] for rule in ruleset.rules}
    for rule in ruleset.rules:
        for below in rule.depends_on:
            built_on_by.setdefault(below, []).append(rule.id)
    return {
        "name": ruleset.name,
        "version": ruleset.version,
        "description": ruleset.description,
        "loaded_at": status.loaded_at.isoformat() if status and status.loaded_at else None,
        "parameters": dict(ruleset.parameters),
        "themes": sorted({t for listed in themes.values() for t in listed}),
        "rules": [
            rule_json(rule, ruleset, themes[rule.id], coverage.get(rule.id), built_on_by[rule.id])
            for rule in ruleset.rules
        ],
    }


class CatalogueCache:
    """Catalogue entries by (name, version): a reload gives a new version, and only then are the
    ruleset's tests run again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(self, prepared: PreparedRuleset, status: RulesetStatus | None) -> dict[str, Any]:
        key = (prepared.ruleset.name, prepared.ruleset.version)
        with self._lock:
            found = self._entries.get(key)
        if found is None:
            found = ruleset_json(prepared, status)
            with self._lock:
                # Versions no longer served are dropped, so the cache holds one entry per ruleset.
                self._entries = {k: v for k, v in self._entries.items() if k[0] != key[0]}
                self._entries[key] = found
        return found

"""rules_engine: safeguarding rule sets evaluated over a child's case facts, with explained flags.

The public Python API is the names in `__all__`: compile rule files (`compile_ruleset`), hold
rulesets and reload them (`Registry`), evaluate a `Case` (`Engine`) into an `Evaluation`, and
the errors each step raises. Everything else lives in the subpackages (ARCHITECTURE.md).

The names load on first use (PEP 562), so `import rules_engine` costs next to nothing: durable-rules,
grpc and pydantic are imported only when a name that needs them is touched.
"""

from __future__ import annotations

# Not `typing.TYPE_CHECKING`: importing typing would double this module's import time. Type
# checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:  # what type checkers and editors see; keep in step with _EXPORTS (a test checks)
    from typing import Any

    from rules_engine.case.facts import FACT_TYPES, Case, Child, Fact
    from rules_engine.engine.engine import Engine
    from rules_engine.engine.registry import Registry, ReloadResult
    from rules_engine.engine.results import Evaluation, EvidenceItem, ExplainedFlag, RulesetStatus, UndeterminedRule
    from rules_engine.errors import (
        AcknowledgementError,
        CaseChangedError,
        CaseError,
        CompileError,
        EvaluationError,
        FieldViolation,
        FlagNotFoundError,
        LoadError,
        RuleFileError,
        RuleFileErrors,
        RulesEngineError,
        RulesetNotFoundError,
        RulesetRequiredError,
        SchemaError,
        SourcePosition,
        StoreUnavailableError,
    )
    from rules_engine.policy.compiled import CompiledRuleset, Severity
    from rules_engine.policy.compiler import check_rulesets, compile_ruleset, load_rulesets

# Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    # the case
    "Case": "rules_engine.case.facts",
    "Child": "rules_engine.case.facts",
    "Fact": "rules_engine.case.facts",
    "FACT_TYPES": "rules_engine.case.facts",
    # rule files to a compiled ruleset
    "compile_ruleset": "rules_engine.policy.compiler",
    "load_rulesets": "rules_engine.policy.compiler",
    "check_rulesets": "rules_engine.policy.compiler",
    "CompiledRuleset": "rules_engine.policy.compiled",
    "Severity": "rules_engine.policy.compiled",
    # evaluation and its results
    "Engine": "rules_engine.engine.engine",
    "Registry": "rules_engine.engine.registry",
    "ReloadResult": "rules_engine.engine.registry",
    "Evaluation": "rules_engine.engine.results",
    "ExplainedFlag": "rules_engine.engine.results",
    "EvidenceItem": "rules_engine.engine.results",
    "UndeterminedRule": "rules_engine.engine.results",
    "RulesetStatus": "rules_engine.engine.results",
    # errors
    "RulesEngineError": "rules_engine.errors",
    "SourcePosition": "rules_engine.errors",
    "RuleFileError": "rules_engine.errors",
    "RuleFileErrors": "rules_engine.errors",
    "LoadError": "rules_engine.errors",
    "SchemaError": "rules_engine.errors",
    "CompileError": "rules_engine.errors",
    "FieldViolation": "rules_engine.errors",
    "CaseError": "rules_engine.errors",
    "EvaluationError": "rules_engine.errors",
    "RulesetNotFoundError": "rules_engine.errors",
    "RulesetRequiredError": "rules_engine.errors",
    "StoreUnavailableError": "rules_engine.errors",
    "FlagNotFoundError": "rules_engine.errors",
    "AcknowledgementError": "rules_engine.errors",
    "CaseChangedError": "rules_engine.errors",
}

__all__ = [
    "FACT_TYPES",
    "AcknowledgementError",
    "Case",
    "CaseChangedError",
    "CaseError",
    "Child",
    "CompileError",
    "CompiledRuleset",
    "Engine",
    "Evaluation",
    "EvaluationError",
    "EvidenceItem",
    "ExplainedFlag",
    "Fact",
    "FieldViolation",
    "FlagNotFoundError",
    "LoadError",
    "Registry",
    "ReloadResult",
    "RuleFileError",
    "RuleFileErrors",
    "RulesEngineError",
    "RulesetNotFoundError",
    "RulesetRequiredError",
    "RulesetStatus",
    "SchemaError",
    "Severity",
    "SourcePosition",
    "StoreUnavailableError",
    "UndeterminedRule",
    "check_rulesets",
    "compile_ruleset",
    "load_rulesets",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and keep the name here (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # here, so the package's namespace holds only its public names

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""Every exception rules-engine raises, and SourcePosition.

RulesEngineError
  RuleFileError        a bad rule or rule-test file; carries a SourcePosition
    LoadError          unreadable file or malformed YAML
    SchemaError        a value of the wrong shape or type
    CompileError       a condition, measure or reference that does not compile
  RuleFileErrors       several RuleFileErrors, sorted by file, line and column
  (RuleFileWarning     not raised: something that compiles but misleads, reported by `check`)
  CaseError            a malformed request (its case, or another field); carries the field paths
    RulesetRequiredError no ruleset named while several are loaded and none is the default
  EvaluationError      a rule failed on a valid case
  RulesetNotFoundError an unknown ruleset name in a request
  StoreUnavailableError the case store cannot be reached
  FlagNotFoundError    an acknowledgement for a flag not currently raised for the case
  AcknowledgementError an acknowledgement with a malformed id or code, or a past snooze date
  CaseChangedError     the stored case changed between evaluating it and recording the result
  StartupError         the server cannot start (a taken port, a missing file, bad settings)
  DiffInputError       a revision or case file the impact diff cannot read
ClientsFileError       (also a ValueError) a clients file that cannot be read or has a malformed line
TransportConfigError   (also a ValueError) settings giving half a TLS setup, or no TLS unasked

Imports nothing of rules_engine: every layer raises these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, order=True)
class SourcePosition:
    """Where something stands in a rule file; line and column are 1-based."""

    file: str
    line: int
    column: int
    path: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class RulesEngineError(Exception):
    """Base of every error rules-engine raises on purpose."""


class RuleFileError(RulesEngineError):
    """A problem in a rule file, reported as `file:line:column: code: message`."""

    code = "rule_file_error"

    def __init__(self, message: str, position: SourcePosition) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return f"{self.position}: {self.code}: {self.message}"


class LoadError(RuleFileError):
    code = "load_error"


class SchemaError(RuleFileError):
    code = "schema_error"


class CompileError(RuleFileError):
    code = "compile_error"


class RuleFileWarning:
    """Something in a rule file that compiles but will mislead, as `file:line:column: warning: message`."""

    code = "warning"

    def __init__(self, message: str, position: SourcePosition) -> None:
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return f"{self.position}: {self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"RuleFileWarning({self.message!r}, {self.position!r})"


class RuleFileErrors(RulesEngineError):
    """Every problem found in one run, sorted by file, line and column."""

    def __init__(self, errors: Iterable[RuleFileError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.position.file, e.position.line, e.position.column))
        super().__init__("\n".join(str(e) for e in self.errors))

    def __len__(self) -> int:
        return len(self.errors)


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request: its path (e.g. `case.concerns[2].date`) and why."""

    field: str
    description: str


class CaseError(RulesEngineError):
    """A malformed case; lists every offending field path."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


class EvaluationError(RulesEngineError):
    """A rule failed on a valid case."""

    def __init__(self, message: str, rule_id: str = "") -> None:
        super().__init__(message)
        self.rule_id = rule_id


class RulesetNotFoundError(RulesEngineError):
    """A request named a ruleset that is not loaded."""


class RulesetRequiredError(CaseError):
    """A request named no ruleset while several are loaded and none is the default."""

    def __init__(self, loaded: Iterable[str]) -> None:
        names = ", ".join(loaded)
        super().__init__([FieldViolation("ruleset", f"required when more than one ruleset is loaded ({names})")])


class StoreUnavailableError(RulesEngineError):
    """The case store cannot be reached; the call may be retried."""


class FlagNotFoundError(RulesEngineError):
    """An acknowledgement named a flag that is not currently raised for the case."""


class AcknowledgementError(RulesEngineError):
    """An acknowledgement with a malformed practitioner id or reason code, or a snooze date not in the future."""


class CaseAtRevision(Protocol):
    """A stored case as CaseChangedError carries it (the store's StoredCase): its revision, and more."""

    @property
    def revision(self) -> int: ...


class CaseChangedError(RulesEngineError):
    """Another evaluation changed the stored case first; `current` is the case as it now stands
    (a store.base.StoredCase: typed structurally, so this module need not import the store)."""

    def __init__(self, current: CaseAtRevision) -> None:
        super().__init__("the stored case changed while it was being evaluated")
        self.current = current


class StartupError(RulesEngineError):
    """The server cannot start (no valid ruleset, the port is taken, bad settings); says what to do."""


class DiffInputError(RulesEngineError):
    """A revision that cannot be read, or a line of the case file that is not a case."""


class ClientsFileError(RulesEngineError, ValueError):
    """The clients file cannot be read or has a malformed line (reported by line number, never content)."""


class TransportConfigError(RulesEngineError, ValueError):
    """The settings ask for no TLS without saying plaintext is meant, or give half a TLS setup."""


class NeedsModelError(ValueError):
    """A stored fact value whose JSON text pydantic might spell differently (a float with an
    exponent): the fast writer hands that fact to pydantic. Control flow inside case.records."""

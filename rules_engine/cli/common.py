"""What more than one command needs: the engine over a rulesets directory, and a case read from a file.

Imported by cli/app.py and cli/replay.py; heavy imports (grpc, durable-rules) wait inside the
functions, so `--help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rules_engine.case.facts import Case
    from rules_engine.config import MatcherName
    from rules_engine.engine.engine import Engine
    from rules_engine.engine.registry import Gate, Registry
    from rules_engine.service.requests import CaseMessage


def rulesets_problem(rulesets: Path) -> str | None:
    """Why `rulesets` names no ruleset (missing, not a directory, no rule files), or None when it does."""
    from rules_engine.policy.compiler import rulesets_in

    if not rulesets.exists():
        return f"rulesets directory {rulesets} does not exist"
    if not rulesets.is_dir():
        return f"{rulesets} is not a directory"
    if not rulesets_in(rulesets):
        return f"no rule files under {rulesets} (name a rulesets directory, or one ruleset's directory)"
    return None


def load_engine(rulesets: Path, matcher: MatcherName = "durable", gate: Gate | None = None) -> tuple[Engine, Registry]:
    """An engine over the rulesets `rulesets` names (compiler.rulesets_in: a rulesets directory or one
    ruleset's), with its registry (close it); exit 2 when the directory names none, 1 when none is valid."""
    from rules_engine.engine.engine import Engine
    from rules_engine.engine.registry import Registry
    from rules_engine.metrics import record_reload
    from rules_engine.policy.compiler import compile_ruleset

    if (problem := rulesets_problem(rulesets)) is not None:
        typer.echo(f"--rulesets: {problem}", err=True)
        raise typer.Exit(2)
    registry = Registry(rulesets, compile_ruleset, matcher=matcher, gate=gate, on_reload=record_reload)
    results = registry.reload()
    refused = [r for r in results if r.outcome == "refused"]
    for result in refused:
        typer.echo(result.error, err=True)
    if not registry.names():
        typer.echo(f"no valid ruleset under {rulesets}", err=True)
        raise typer.Exit(1)
    return Engine(registry), registry


@dataclass(frozen=True)
class CaseFile:
    """A case file read: the Case message and its domain form, and the `as_of` and `ruleset` an
    EvaluateRequest file names (empty for a bare Case)."""

    message: CaseMessage
    case: Case
    as_of: str = ""
    ruleset: str = ""


def read_case_file(case_file: Path) -> CaseFile:
    """A case file as proto3 JSON of `Case`, or of an EvaluateRequest (`case`, `asOf`, `ruleset`, …);
    exit 2 naming the file and each mistake by its field path when it does not fit."""
    from rules_engine.errors import CaseError
    from rules_engine.service import requests

    try:
        document = json.loads(case_file.read_text(encoding="utf-8"))
    except OSError as exc:
        typer.echo(f"{case_file}: cannot read: {exc.strerror}", err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        typer.echo(f"{case_file}: not JSON: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        # A Case has no field `case`: a document with one is an EvaluateRequest.
        if isinstance(document, dict) and "case" in document:
            request = requests.request_from_json(document)
            message, as_of, ruleset = request.case, request.as_of, request.ruleset
        else:
            message, as_of, ruleset = requests.case_from_json(document), "", ""
        return CaseFile(message, requests.case_model_from_proto(message, dt.date.today()), as_of, ruleset)
    except CaseError as exc:
        for violation in exc.violations:
            typer.echo(f"{case_file}: {violation.field}: {violation.description}", err=True)
        raise typer.Exit(2) from exc

"""What more than one command needs: the engine over a rulesets directory, and a case read from a file.

Imported by cli.py and replay_cli.py; heavy imports (grpc, durable-rules) wait inside the
functions, so `--help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rules_engine._generated.rules_engine.v1 import case_pb2
    from rules_engine.engine import Engine
    from rules_engine.facts import Case
    from rules_engine.registry import Gate, Registry


def load_engine(rulesets: Path, use_engine: bool = True, gate: Gate | None = None) -> tuple[Engine, Registry]:
    """An engine over the rulesets in a directory, with its registry (close it); exit 1 when none is valid."""
    from rules_engine.compiler import compile_ruleset
    from rules_engine.engine import Engine
    from rules_engine.metrics import record_reload
    from rules_engine.registry import Registry

    registry = Registry(rulesets, compile_ruleset, use_engine=use_engine, gate=gate, on_reload=record_reload)
    results = registry.reload()
    refused = [r for r in results if r.outcome == "refused"]
    for result in refused:
        typer.echo(result.error, err=True)
    if not registry.names():
        typer.echo(f"no valid ruleset under {rulesets}", err=True)
        raise typer.Exit(1)
    return Engine(registry), registry


def read_case_file(case_file: Path) -> tuple[case_pb2.Case, Case]:
    """A case file as proto3 JSON of `Case`, or of an EvaluateRequest (its `case`); exit 2 when unreadable."""
    from rules_engine import wire
    from rules_engine.errors import CaseError

    try:
        document = json.loads(case_file.read_text(encoding="utf-8"))
        if isinstance(document, dict) and isinstance(document.get("case"), dict):
            document = document["case"]
        message = wire.case_from_json(document)
        return message, wire.case_from_proto(message, dt.date.today())
    except (OSError, ValueError, CaseError) as exc:
        typer.echo(f"{case_file}: {exc}", err=True)
        raise typer.Exit(2) from exc

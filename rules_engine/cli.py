"""Command line: serve, check and eval; exit 0 on success, 1 when a check fails, 2 on bad usage."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rules_engine.config import BUNDLED_RULESETS, DEFAULT_METRICS_PORT, DEFAULT_PORT, Settings

if TYPE_CHECKING:
    from rules_engine.engine import Engine
    from rules_engine.registry import Registry

app = typer.Typer(
    name="rules-engine",
    help="Evaluate safeguarding rule sets over case facts and return explained flags.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RulesetsOption = Annotated[
    Path,
    typer.Option("--rulesets", envvar="RULES_ENGINE_RULESETS", help="Directory of rulesets.", show_default=True),
]


# Heavy imports (grpc, durable-rules) wait until a command needs them, so --help stays fast.
def _engine(rulesets: Path, use_engine: bool = True) -> tuple[Engine, Registry]:
    from rules_engine.compiler import compile_ruleset
    from rules_engine.engine import Engine
    from rules_engine.registry import Registry

    registry = Registry(rulesets, compile_ruleset, use_engine=use_engine)
    results = registry.reload()
    refused = [r for r in results if r.outcome == "refused"]
    for result in refused:
        typer.echo(result.error, err=True)
    if not registry.names():
        typer.echo(f"no valid ruleset under {rulesets}", err=True)
        raise typer.Exit(1)
    return Engine(registry), registry


@app.command()
def serve(
    rulesets: RulesetsOption = BUNDLED_RULESETS,
    host: Annotated[str, typer.Option(envvar="RULES_ENGINE_HOST", help="Address to listen on.")] = "[::]",
    port: Annotated[int, typer.Option(envvar="RULES_ENGINE_PORT", help="gRPC port.")] = DEFAULT_PORT,
    metrics_port: Annotated[
        int, typer.Option(envvar="RULES_ENGINE_METRICS_PORT", help="Prometheus port (0: off).")
    ] = DEFAULT_METRICS_PORT,
    max_workers: Annotated[int, typer.Option(envvar="RULES_ENGINE_MAX_WORKERS", help="gRPC threads.")] = 8,
    grace: Annotated[
        float,
        typer.Option(envvar="RULES_ENGINE_GRACE_SECONDS", help="Seconds in-flight calls get at shutdown."),
    ] = 10.0,
) -> None:
    """Run the gRPC service on the rulesets in a directory."""
    from rules_engine.metrics import serve_metrics
    from rules_engine.server import serve_forever

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings(
        rulesets=rulesets,
        host=host,
        port=port,
        metrics_port=metrics_port,
        max_workers=max_workers,
        grace_seconds=grace,
    )
    engine, _registry = _engine(settings.rulesets)
    serve_metrics(settings.metrics_port)
    serve_forever(engine, settings)


@app.command()
def check(directory: Annotated[Path, typer.Argument(help="A rulesets directory or one ruleset.")]) -> None:
    """Validate rule files; print `file:line:column: code: message` for each problem."""
    from rules_engine.compiler import check_rulesets

    errors = check_rulesets(directory)
    for error in errors:
        typer.echo(str(error))
    if errors:
        typer.echo(f"{len(errors)} problem(s) found", err=True)
        raise typer.Exit(1)
    typer.echo("ok")


@app.command("eval")
def eval_case(
    case_file: Annotated[Path, typer.Argument(help="Case as proto3 JSON (what grpcurl sends).")],
    rulesets: RulesetsOption = BUNDLED_RULESETS,
    as_of: Annotated[str, typer.Option("--as-of", help="Date or RFC 3339 time; default now.")] = "",
    ruleset: Annotated[str, typer.Option("--ruleset", help="Ruleset name, if several are loaded.")] = "",
) -> None:
    """Evaluate one case and print the flags as JSON (the same JSON as the gRPC response)."""
    from rules_engine import wire
    from rules_engine.errors import CaseError, RulesEngineError

    try:
        document = json.loads(case_file.read_text(encoding="utf-8"))
        message = wire.case_from_json(document)
        case = wire.case_from_proto(message, dt.date.today())
        moment = wire.parse_as_of(as_of)
    except (OSError, ValueError) as exc:
        typer.echo(f"{case_file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    except CaseError as exc:
        typer.echo(f"{case_file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    engine, registry = _engine(rulesets)
    try:
        evaluation = engine.evaluate(case, moment, ruleset or None)
    except RulesEngineError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    finally:
        registry.close()
    json.dump(wire.evaluation_to_json(evaluation), sys.stdout, indent=2)
    sys.stdout.write("\n")


def main() -> None:
    app()

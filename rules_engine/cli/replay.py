"""`rules-engine replay`, registered on the app by cli/app.py; the work is in tools/replay.py and replay_plot.py."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer

from rules_engine.cli.common import load_engine, read_case_file
from rules_engine.config import BUNDLED_RULESETS

PLOT_SUFFIXES = (".svg", ".png", ".html")


def _day(text: str, option: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError as exc:
        typer.echo(f"{option}: {exc}", err=True)
        raise typer.Exit(2) from exc


# Heavy imports (durable-rules, altair) wait until the command runs, so --help stays fast.
def replay(
    case_file: Annotated[
        Path, typer.Argument(help="Proto3 JSON of a Case, or of an EvaluateRequest (its asOf ends the span).")
    ],
    from_: Annotated[str, typer.Option("--from", help="First date (YYYY-MM-DD); default the earliest fact.")] = "",
    to: Annotated[
        str, typer.Option("--to", help="Last date (YYYY-MM-DD); default the latest date in the case, at most today.")
    ] = "",
    step: Annotated[str, typer.Option("--step", help="month, week (Sundays) or day.")] = "month",
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw the timeline to FILE.svg, .png or .html.")] = None,
    ruleset: Annotated[
        str, typer.Option("--ruleset", help="Ruleset name; default the file's ruleset, else the only one loaded.")
    ] = "",
    rulesets: Annotated[
        Path,
        typer.Option(
            "--rulesets", envvar="RULES_ENGINE_RULESETS", help="A rulesets directory, or one ruleset's directory."
        ),
    ] = BUNDLED_RULESETS,
) -> None:
    """Evaluate a case as it stood at each step of its history; print when each rule first fired,
    when it stopped and how many steps it was live; optionally draw the timeline."""
    from rules_engine.errors import RulesEngineError
    from rules_engine.tools.replay import STEPS, default_span, print_table, replay_steps
    from rules_engine.tools.replay import replay as run_replay

    if step not in STEPS:
        typer.echo(f"--step: one of {', '.join(STEPS)}, not {step!r}", err=True)
        raise typer.Exit(2)
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        typer.echo(f"--plot {plot}: name a .svg, .png or .html file", err=True)
        raise typer.Exit(2)
    first, last = _day(from_, "--from"), _day(to, "--to")
    read = read_case_file(case_file)
    case = read.case
    if last is None and read.as_of:
        last = _day(read.as_of[:10], f"{case_file}: as_of")
    span = default_span(case)
    if first is None or last is None:
        if span is None:
            typer.echo(f"{case_file}: the case has no facts; give --from and --to", err=True)
            raise typer.Exit(2)
        first, last = first or span[0], last or span[1]
    try:
        days = replay_steps(first, last, step)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    started = time.perf_counter()
    _, registry = load_engine(rulesets)
    try:
        with registry.lease(ruleset or read.ruleset or None) as prepared:
            result = run_replay(prepared, case, days)
    except RulesEngineError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    finally:
        registry.close()
    print_table(result, step)
    seconds = time.perf_counter() - started
    typer.echo(f"{len(result.steps)} evaluations in {seconds:.1f} s, compiling the rulesets included")
    if plot is not None:
        from rules_engine.tools.replay_plot import save_timeline

        save_timeline(case, result, plot)
        typer.echo(f"timeline written to {plot}")


def register(app: typer.Typer) -> None:
    app.command()(replay)

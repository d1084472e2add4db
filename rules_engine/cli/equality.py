"""Command line for equality monitoring and transparency: fairness and transparency (registered by cli/app.py)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rules_engine.engine.equality import EqualityReport
    from rules_engine.tools.fairness_report import Context

REPORT_SUFFIXES = (".md", ".html", ".json")


# Heavy imports (durable-rules, altair) wait until a command runs, so --help stays fast.
def fairness(
    cases: Annotated[
        Path | None,
        typer.Option(
            "--cases",
            help="Cases as JSON lines (proto3 JSON of Case, as diff takes), with the child's equality fields.",
        ),
    ] = None,
    from_service: Annotated[
        str,
        typer.Option(
            "--from-service",
            help="Read the stored aggregates from a running service's HTTP door instead (e.g. http://localhost:8080); "
            "an operator token in RULES_ENGINE_TOKEN.",
        ),
    ] = "",
    rulesets: Annotated[Path, typer.Option("--rulesets", help="Rulesets directory (with --cases).")] = Path("rulesets"),
    ruleset: Annotated[str, typer.Option("--ruleset", help="Only this ruleset; default every one.")] = "",
    as_of: Annotated[str, typer.Option("--as-of", help="Evaluation date (YYYY-MM-DD); default today.")] = "",
    threshold: Annotated[
        int, typer.Option("--threshold", help="Withhold cells under this (at least 10, never lower).")
    ] = 10,
    report: Annotated[
        list[Path] | None,
        typer.Option("--report", help="Also write FILE.md, FILE.html (with charts) or FILE.json; repeatable."),
    ] = None,
    rule: Annotated[list[str] | None, typer.Option("--rule", help="Print this rule's tables too; repeatable.")] = None,
    all_rules: Annotated[bool, typer.Option("--all-rules", help="Print every rule's tables.")] = False,
) -> None:
    """Flag (and dismissal) rates by ethnicity, sex, disability and deprivation decile against the whole
    caseload: ratios, Wilson 95% intervals and plain readings; small cells withheld. Exit 2 on bad usage."""
    from rich.console import Console

    from rules_engine.engine.equality import check_threshold
    from rules_engine.tools.fairness_report import Context, print_report, to_html, to_json, to_markdown

    reports = report or []
    for path in reports:
        if path.suffix not in REPORT_SUFFIXES:
            typer.echo(f"--report {path}: name a .md, .html or .json file", err=True)
            raise typer.Exit(2)
    if (cases is None) == (not from_service):
        typer.echo("name either --cases FILE or --from-service URL", err=True)
        raise typer.Exit(2)
    try:
        check_threshold(threshold)
    except ValueError as exc:
        typer.echo(f"--threshold: {exc}", err=True)
        raise typer.Exit(2) from exc
    command = "rules-engine fairness " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    if from_service:
        from rules_engine.tools.fairness_service import ServiceError, fetch_report

        try:
            built, context = fetch_report(from_service, threshold, ruleset or None)
        except ServiceError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        context = Context(context.source, command, context.recorded, context.titles)
    else:
        assert cases is not None
        built, context = _from_caseload(cases, rulesets, ruleset, as_of, threshold, command)
    print_report(built, Console(), context, rule or (), all_rules)
    for path in reports:
        writer = {".md": to_markdown, ".html": to_html, ".json": to_json}[path.suffix]
        path.write_text(writer(built, context), encoding="utf-8")
        typer.echo(str(path), err=True)


def _from_caseload(
    cases: Path, rulesets: Path, ruleset: str, as_of: str, threshold: int, command: str
) -> tuple[EqualityReport, Context]:
    import datetime as dt

    from rich.console import Console
    from rich.progress import track

    from rules_engine.errors import DiffInputError, RuleFileErrors
    from rules_engine.tools.diff import read_cases
    from rules_engine.tools.fairness import count_caseload, recorded
    from rules_engine.tools.fairness_report import Context

    try:
        day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
        corpus = read_cases(cases, day)
        errors = Console(stderr=True)
        # The bar goes to stderr and only to a terminal, so piped output stays clean.
        show = sys.stderr.isatty() and len(corpus) > 1
        tally = count_caseload(
            rulesets,
            corpus,
            day,
            ruleset or None,
            progress=lambda items: track(items, description="evaluating", console=errors, disable=not show),
        )
    except (ValueError, OSError, DiffInputError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except RuleFileErrors as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    source = f"{len(corpus):,} cases in {cases.name}, evaluated as of {day.isoformat()}"
    return tally.report(threshold), Context(source, command, recorded(corpus), tally.titles)


def transparency(
    ruleset: Annotated[str, typer.Option("--ruleset", help="The ruleset's name.")],
    rulesets: Annotated[Path, typer.Option("--rulesets", help="Rulesets directory.")] = Path("rulesets"),
    details: Annotated[
        Path | None,
        typer.Option("--details", help="YAML: ATRS attribute name -> the authority's text (owner, contact, ...)."),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write the Markdown here; default stdout.")] = None,
    json_output: Annotated[Path | None, typer.Option("--json", help="Also write the record as JSON here.")] = None,
    generated_on: Annotated[
        str, typer.Option("--generated-on", help="The record's date (YYYY-MM-DD); default today.")
    ] = "",
) -> None:
    """Write the ruleset's algorithmic transparency record (UK ATRS structure: tier 1 summary, tier 2
    detail) from its rule files, parameters and sources; names the fields left for the authority."""
    import datetime as dt

    from rules_engine.errors import RuleFileErrors
    from rules_engine.policy.compiler import compile_ruleset, rulesets_in
    from rules_engine.tools.transparency import build, gaps, read_details, to_json, to_markdown

    try:
        found = {}
        for directory in rulesets_in(rulesets):
            compiled = compile_ruleset(directory)
            found[compiled.name] = compiled
        if ruleset not in found:
            typer.echo(
                f"--ruleset: no ruleset named {ruleset!r} under {rulesets} ({', '.join(found) or 'none'})", err=True
            )
            raise typer.Exit(2)
        day = dt.date.fromisoformat(generated_on) if generated_on else dt.date.today()
        record = build(found[ruleset], read_details(details) if details else None, day)
    except RuleFileErrors as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except (OSError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    text = to_markdown(record)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(str(output), err=True)
    if json_output is not None:
        json_output.write_text(to_json(record), encoding="utf-8")
        typer.echo(str(json_output), err=True)
    if left := gaps(record):
        typer.echo(f"{len(left)} field(s) for the authority to complete: {', '.join(left)}", err=True)


def register(app: typer.Typer) -> None:
    """Add the equality commands to `app`."""
    app.command("fairness")(fairness)
    app.command("transparency")(transparency)

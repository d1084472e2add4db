"""Command line for policy teams: test, schema, diff, docs, evaluate-catalogue (registered on the app by cli/app.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


# Heavy imports (durable-rules) wait until a command runs, so --help stays fast.
def test(
    directory: Annotated[Path, typer.Argument(help="A rulesets directory or one ruleset.")],
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    min_coverage: Annotated[
        float, typer.Option("--min-coverage", help="Fail when rule coverage is below this percentage.")
    ] = 0.0,
) -> None:
    """Run the rulesets' tests (tests/*.yaml); print failures, rule coverage and `N passed, N failed`."""
    from rules_engine.tools.ruletest import run_directory
    from rules_engine.tools.ruletest_report import coverage_lines, write_junit

    run = run_directory(directory)
    for line in run.failure_lines():
        typer.echo(line)
    for line in coverage_lines(run):
        typer.echo(line)
    if junit is not None:
        write_junit(run, junit)
    typer.echo(f"{run.passed} passed, {run.failed} failed")
    below = run.coverage_percent < min_coverage
    if below:
        typer.echo(f"rule coverage {run.coverage_percent:.1f}% is below the minimum {min_coverage:g}%", err=True)
    if run.failed or below:
        raise typer.Exit(1)


def diff(
    base: Annotated[str, typer.Option("--base", help="Rulesets directory, or git `REV:path`, before the change.")],
    head: Annotated[str, typer.Option("--head", help="Rulesets directory, or git `REV:path`, after the change.")],
    cases: Annotated[Path, typer.Option("--cases", help="Cases as JSON lines (proto3 JSON of Case).")],
    as_of: Annotated[str, typer.Option("--as-of", help="Evaluation date (YYYY-MM-DD); default today.")] = "",
    report: Annotated[Path | None, typer.Option("--report", help="Also write FILE.md or FILE.html.")] = None,
    threshold: Annotated[
        int, typer.Option("--threshold", help="The equality breakdown withholds cells under this (at least 10).")
    ] = 10,
) -> None:
    """Preview a change: what changed, then per rule the cases newly flagged, no longer flagged and still
    flagged; warns when no case lies near a changed threshold or the head fails its own tests. Then the
    equality breakdown: which groups (ethnicity, sex, disability, deprivation decile) the change flags
    more or less often, small cells withheld."""
    import datetime as dt
    import sys

    from rich.console import Console
    from rich.progress import track

    from rules_engine.engine.equality import check_threshold
    from rules_engine.errors import DiffInputError, RuleFileErrors
    from rules_engine.tools.diff import compare, materialise, read_cases
    from rules_engine.tools.diff_report import print_table, to_html, to_markdown
    from rules_engine.tools.fairness import equality_change
    from rules_engine.tools.fairness_report import print_change

    if report is not None and report.suffix not in (".md", ".html"):
        typer.echo(f"--report {report}: name a .md or .html file", err=True)
        raise typer.Exit(2)
    try:
        check_threshold(threshold)
    except ValueError as exc:
        typer.echo(f"--threshold: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
        corpus = read_cases(cases, day)
        with materialise(base) as base_dir, materialise(head) as head_dir:
            errors = Console(stderr=True)
            # The bar goes to stderr and only to a terminal, so piped output stays clean.
            show = sys.stderr.isatty() and len(corpus) > 1
            impact = compare(
                base_dir,
                head_dir,
                corpus,
                day,
                progress=lambda items: track(items, description="evaluating", console=errors, disable=not show),
            )
    except (ValueError, OSError, DiffInputError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except RuleFileErrors as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    impact.base, impact.head = base, head
    equality = equality_change(impact, corpus, threshold)
    print_table(impact, Console())
    print_change(equality, Console())
    if report is not None:
        written = to_html(impact, equality) if report.suffix == ".html" else to_markdown(impact, equality)
        report.write_text(written, encoding="utf-8")


def schema(
    output: Annotated[
        Path, typer.Option("--output", help="Directory to write to (created if missing); default ./schemas.")
    ] = Path("schemas"),
) -> None:
    """Write the JSON Schema of rule files and rule-test files (for YAML-aware editors); prints each
    file written. The copies the bundled rule files reference ship in the package (rules_engine/schemas)."""
    from rules_engine.tools.jsonschemas import write_schemas

    for path in write_schemas(output):
        typer.echo(f"wrote {path}")


def docs(
    directory: Annotated[Path, typer.Argument(help="A rulesets directory or one ruleset.")],
    output: Annotated[Path, typer.Option("--output", help="Directory for <ruleset>.md and .html.")] = Path("docs"),
) -> None:
    """Render each ruleset as a readable catalogue: rules in plain words, thresholds and covering tests."""
    from rules_engine.engine.evaluator import PreparedRuleset
    from rules_engine.errors import RuleFileErrors
    from rules_engine.policy.compiler import compile_ruleset, rulesets_in
    from rules_engine.tools.docs import write_docs
    from rules_engine.tools.ruletest import run_rule_tests

    for ruleset_dir in rulesets_in(directory):
        try:
            compiled = compile_ruleset(ruleset_dir)
        except RuleFileErrors as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        prepared = PreparedRuleset(compiled, matcher="reference")
        try:
            run = run_rule_tests(prepared, ruleset_dir)
        finally:
            prepared.close()
        for path in write_docs(compiled, run, output):
            typer.echo(str(path))


def evaluate_catalogue(
    ruleset: Annotated[Path, typer.Option("--ruleset", help="The ruleset directory to evaluate.")] = Path(
        "rulesets/safeguarding"
    ),
    slow_burn: Annotated[int, typer.Option("--slow-burn", min=0, help="Slow-burn life courses to generate.")] = 200,
    controls: Annotated[int, typer.Option("--controls", min=0, help="Control life courses to generate.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the life courses.")] = 1,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes replaying the courses.")] = 2,
    output: Annotated[Path | None, typer.Option("--output", help="Write the Markdown report here.")] = None,
    notes: Annotated[
        Path | None, typer.Option("--notes", help="A Markdown file appended to the report (reviewers' notes).")
    ] = None,
) -> None:
    """Replay generated slow-burn and control life courses month by month and report how the catalogue does."""
    import shlex
    import sys

    from rules_engine.tools.catalogue_eval import iter_lines, run
    from rules_engine.tools.catalogue_report import render

    _, summary = run(ruleset, slow_burn, controls, seed, workers)
    for line in iter_lines(summary):
        typer.echo(line)
    if output is not None:
        command = "rules-engine evaluate-catalogue " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        text = notes.read_text(encoding="utf-8") if notes is not None else ""
        output.write_text(render(summary, command.strip(), text), encoding="utf-8")
        typer.echo(str(output))


def register(app: typer.Typer) -> None:
    """Add the policy-team commands to `app`."""
    app.command("test")(test)
    app.command("diff")(diff)
    app.command("schema")(schema)
    app.command("docs")(docs)
    app.command("evaluate-catalogue")(evaluate_catalogue)

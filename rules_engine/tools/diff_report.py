"""Render an Impact: a terminal table (rich), Markdown or HTML, each with what changed and the warnings."""

from __future__ import annotations

import html

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rules_engine.tools.diff import EXAMPLES, Impact, RuleChange
from rules_engine.tools.fairness import EqualityChange
from rules_engine.tools.fairness_report import change_html, change_markdown

_COLUMNS = ("Ruleset", "Rule", "Title", "Newly flagged", "No longer flagged", "Unchanged flagged", "Examples")


def _examples(change: RuleChange) -> str:
    parts = []
    for label, ids in (("+", change.newly_flagged), ("-", change.no_longer_flagged)):
        if ids:
            shown = ", ".join(ids[:EXAMPLES]) + (", …" if len(ids) > EXAMPLES else "")
            parts.append(f"{label} {shown}")
    return "; ".join(parts)


def _rule(change: RuleChange) -> str:
    notes = [change.presence] if change.presence else []
    notes.extend(change.edits)
    return f"{change.rule_id} ({'; '.join(notes)})" if notes else change.rule_id


def _summary(impact: Impact) -> str:
    changed = sum(1 for c in impact.changes if c.changed)
    return (
        f"{impact.cases} cases evaluated as of {impact.as_of.isoformat()}: "
        f"{changed} of {len(impact.changes)} rules change what they flag"
    )


def what_changed(impact: Impact) -> list[str]:
    """One line per difference between base and head: parameters, then rules."""
    lines = []
    for parameter in impact.parameters:
        used = f", compared in {', '.join(parameter.rules)}" if parameter.rules else ", used by no condition"
        near = f"; {parameter.near} sampled case(s) near it" if parameter.near is not None else ""
        lines.append(f"{parameter.ruleset}: {parameter.describe()}{used}{near}")
    for change in impact.changes:
        if change.presence:
            lines.append(f"{change.ruleset}: rule {change.rule_id} {change.presence}")
        edits = [e for e in change.edits if not e.startswith("parameter ")]
        if edits:
            lines.append(f"{change.ruleset}: rule {change.rule_id}: {', '.join(edits)} changed")
    return lines or ["no parameter or rule differs (titles, explanations and tests may)"]


def _row(change: RuleChange) -> tuple[str, ...]:
    return (
        change.ruleset,
        _rule(change),
        change.title,
        str(len(change.newly_flagged)),
        str(len(change.no_longer_flagged)),
        str(len(change.unchanged_flagged)),
        _examples(change),
    )


def print_table(impact: Impact, console: Console) -> None:
    """What changed, then one row per rule: id, title, notes and examples in one column that
    folds (an id is never cut short, however narrow the terminal), and the three counts."""
    console.print(f"Impact of {escape(impact.head)} over {escape(impact.base)}", style="bold", soft_wrap=True)
    for line in what_changed(impact):
        console.print(escape(line), soft_wrap=True)
    several = len({change.ruleset for change in impact.changes}) > 1
    table = Table()
    if several:
        table.add_column("Ruleset", overflow="fold")
    table.add_column("Rule", overflow="fold", ratio=1)
    for label in ("+", "-", "="):
        table.add_column(label, justify="right", no_wrap=True)
    for change in impact.changes:
        lines = [f"[bold]{escape(change.rule_id)}[/bold]" if change.changed else escape(change.rule_id)]
        lines.append(f"[dim]{escape(change.title)}[/dim]")
        notes = ([change.presence] if change.presence else []) + change.edits
        if notes:
            lines.append(f"[italic]{escape('; '.join(notes))}[/italic]")
        if examples := _examples(change):
            lines.append(escape(examples))
        counts = (str(len(ids)) for ids in (change.newly_flagged, change.no_longer_flagged, change.unchanged_flagged))
        table.add_row(*([escape(change.ruleset)] if several else []), "\n".join(lines), *counts)
    console.print(table)
    console.print("+ newly flagged, - no longer flagged, = flagged by both", style="dim", soft_wrap=True)
    console.print(_summary(impact), soft_wrap=True)
    for warning in impact.warnings():
        console.print(f"warning: {escape(warning)}", style="yellow", soft_wrap=True)


def to_markdown(impact: Impact, equality: EqualityChange | None = None) -> str:
    lines = [
        "# Impact preview",
        "",
        f"Base `{impact.base}`, head `{impact.head}`. {_summary(impact)}.",
        "",
        *(f"- {line}" for line in what_changed(impact)),
        "",
        *(f"> **Warning:** {warning}\n" for warning in impact.warnings()),
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "|".join("---:" if "flagged" in name else "---" for name in _COLUMNS) + "|",
    ]
    for change in impact.changes:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in _row(change)) + " |")
    if equality is not None:
        lines += ["", change_markdown(equality)]
    return "\n".join(lines) + "\n"


def to_html(impact: Impact, equality: EqualityChange | None = None) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in _COLUMNS)
    rows = "\n".join(
        f'<tr class="{"changed" if change.changed else ""}">'
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in _row(change))
        + "</tr>"
        for change in impact.changes
    )
    changed = "".join(f"<li>{html.escape(line)}</li>" for line in what_changed(impact))
    warnings = "".join(f'<p class="warning">Warning: {html.escape(w)}</p>\n' for w in impact.warnings())
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Impact preview</title>\n'
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px}tr.changed{font-weight:bold}.warning{color:#8a4b00;font-weight:bold}</style></head><body>\n"
        f"<h1>Impact preview</h1>\n<p>Base <code>{html.escape(impact.base)}</code>, head "
        f"<code>{html.escape(impact.head)}</code>. {html.escape(_summary(impact))}.</p>\n"
        f"<ul>{changed}</ul>\n{warnings}"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>\n"
        f"{change_html(equality) if equality is not None else ''}</body></html>\n"
    )

"""Render an Impact: a terminal table (rich), Markdown or HTML."""

from __future__ import annotations

import html

from rich.console import Console
from rich.table import Table

from rules_engine.diff import EXAMPLES, Impact, RuleChange

_COLUMNS = ("Ruleset", "Rule", "Newly flagged", "No longer flagged", "Unchanged flagged", "Examples")


def _examples(change: RuleChange) -> str:
    parts = []
    for label, ids in (("+", change.newly_flagged), ("-", change.no_longer_flagged)):
        if ids:
            shown = ", ".join(ids[:EXAMPLES]) + (", …" if len(ids) > EXAMPLES else "")
            parts.append(f"{label} {shown}")
    return "; ".join(parts)


def _rule(change: RuleChange) -> str:
    return f"{change.rule_id} ({change.presence})" if change.presence else change.rule_id


def _summary(impact: Impact) -> str:
    changed = sum(1 for c in impact.changes if c.changed)
    return (
        f"{impact.cases} cases evaluated as of {impact.as_of.isoformat()}: "
        f"{changed} of {len(impact.changes)} rules change what they flag"
    )


def _row(change: RuleChange) -> tuple[str, ...]:
    return (
        change.ruleset,
        _rule(change),
        str(len(change.newly_flagged)),
        str(len(change.no_longer_flagged)),
        str(len(change.unchanged_flagged)),
        _examples(change),
    )


def print_table(impact: Impact, console: Console) -> None:
    table = Table(title=f"Impact of {impact.head} over {impact.base}")
    for name in _COLUMNS:
        table.add_column(name, justify="right" if "flagged" in name else "left")
    for change in impact.changes:
        table.add_row(*_row(change), style="bold" if change.changed else None)
    console.print(table)
    console.print(_summary(impact))


def to_markdown(impact: Impact) -> str:
    lines = [
        "# Impact preview",
        "",
        f"Base `{impact.base}`, head `{impact.head}`. {_summary(impact)}.",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "|".join("---:" if "flagged" in name else "---" for name in _COLUMNS) + "|",
    ]
    for change in impact.changes:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in _row(change)) + " |")
    return "\n".join(lines) + "\n"


def to_html(impact: Impact) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in _COLUMNS)
    rows = "\n".join(
        f'<tr class="{"changed" if change.changed else ""}">'
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in _row(change))
        + "</tr>"
        for change in impact.changes
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Impact preview</title>\n'
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px}tr.changed{font-weight:bold}</style></head><body>\n"
        f"<h1>Impact preview</h1>\n<p>Base <code>{html.escape(impact.base)}</code>, head "
        f"<code>{html.escape(impact.head)}</code>. {html.escape(_summary(impact))}.</p>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>\n</body></html>\n"
    )

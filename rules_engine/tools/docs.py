"""Rule catalogue: a ruleset as Markdown and HTML, conditions in plain words, with the tests covering each rule."""

from __future__ import annotations

import html
from pathlib import Path

from rules_engine.policy.compiled import (
    BoolOp,
    Compare,
    CompiledMeasure,
    CompiledRuleset,
    Expr,
    FlaggedRef,
    MeasureKind,
    MeasureRef,
    Not,
)
from rules_engine.tools.ruletest import RuleTestRun

_OPS = {
    ">=": "is at least",
    ">": "is more than",
    "<=": "is at most",
    "<": "is less than",
    "==": "is",
    "!=": "is not",
    "in": "is one of",
    "not in": "is none of",
}


def measure_words(measure: CompiledMeasure) -> str:
    """What a measure counts, in plain words, for a measure its author did not describe."""
    facts = measure.fact_type.replace("_", " ")
    if measure.where_text:
        facts += f" where {measure.where_text}"
    within = f" in the last {measure.window}" if measure.window is not None else ""
    names = " + ".join(m.name for m in measure.inputs)
    kind = measure.kind
    if kind is MeasureKind.COUNT and measure.overlaps:
        return f"{facts} open at any time{within}"
    if kind is MeasureKind.COUNT and measure.since_type:
        since = measure.since_type.replace("_", " ")
        dated = "" if measure.since_date_field == "date" else f" by {measure.since_date_field.replace('_', ' ')}"
        return f"{facts}{within} after the latest of the {since}{dated}"
    if kind is MeasureKind.DISTINCT:
        held = " open at any time" if measure.overlaps else ""
        return f"different {measure.field.replace('_', ' ')} values of {facts}{held}{within}"
    if kind is MeasureKind.LATEST and measure.group_by:
        return (
            f"the most, for any one {measure.group_by.replace('_', ' ')}, of its last {measure.last} {facts} "
            f"where {measure.matching_text}"
        )
    words = {
        MeasureKind.COUNT: f"{facts}{within}",
        MeasureKind.RATE: f"{facts} per year{within or ' since the first'}",
        MeasureKind.TREND: f"{facts} in the last {measure.window} less those in the {measure.window} before",
        MeasureKind.PERIODS: f"periods of {measure.period} in the last {measure.window} with at least "
        f"{measure.at_least} {facts}",
        MeasureKind.LONGEST_GAP: f"the longest time in days between {facts}{within}, up to now",
        MeasureKind.LONGEST_OPEN: f"days the longest-open of {facts} has been open",
        MeasureKind.SUM: names,
        MeasureKind.RATIO: f"{names.replace(' + ', ' as a percentage of ')}",
    }
    return words.get(kind, measure.name)


def plain_words(expr: Expr, ruleset: CompiledRuleset) -> str:
    """`concerns_12m >= 5` -> "Concerns recorded in the last 12 months is at least 5"."""
    descriptions = {m.name: m.description or measure_words(m) for m in ruleset.measures}
    titles = {r.id: r.title for r in ruleset.rules}

    def words(node: Expr, nested: bool = False) -> str:
        if isinstance(node, Compare):
            return f"{words(node.left)} {_OPS[node.op]} {words(node.right)}"
        if isinstance(node, BoolOp):
            text = f" {node.op} ".join(words(o, nested=True) for o in node.operands)
            return f"({text})" if nested else text
        if isinstance(node, Not):
            return f"not ({words(node.operand)})"
        if isinstance(node, FlaggedRef):
            return f"rule “{titles.get(node.rule_id, node.rule_id)}” is raised"
        if isinstance(node, MeasureRef):
            return descriptions.get(node.name, node.name)
        value = node.value
        shown = ", ".join(map(str, value)) if isinstance(value, tuple) else str(value).lower()
        shown = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else shown
        return f"{shown} ({node.parameter})" if node.parameter else shown

    text = words(expr)
    return text[:1].upper() + text[1:]


def _fields(ruleset: CompiledRuleset, run: RuleTestRun | None) -> list[tuple[str, list[tuple[str, str]]]]:
    covered = {c.rule_id: c.tests for c in run.coverage if c.ruleset == ruleset.name} if run else {}
    entries = []
    for rule in ruleset.rules:
        thresholds = ", ".join(f"{name} = {value}" for name, value in rule.thresholds) or "none"
        tests = covered.get(rule.id, [])
        entries.append(
            (
                f"{rule.title} (`{rule.id}`)",
                [
                    ("Condition", plain_words(rule.condition, ruleset)),
                    ("As written", f"`{rule.condition_text}`"),
                    ("Thresholds", thresholds),
                    ("Severity", rule.severity.name.lower()),
                    ("Escalation", rule.escalation),
                    ("Source", f"{rule.source_kind}: {rule.source_reference}"),
                    ("Status", rule.status),
                    ("Tests", "; ".join(tests) if tests else "no test names this rule"),
                ],
            )
        )
    return entries


def to_markdown(ruleset: CompiledRuleset, run: RuleTestRun | None = None) -> str:
    lines = [f"# Ruleset {ruleset.name}", "", ruleset.description, "", f"Version `{ruleset.version}`.", ""]
    for heading, fields in _fields(ruleset, run):
        lines += [f"## {heading}", ""]
        lines += [f"- **{name}:** {value}" for name, value in fields]
        lines.append("")
    return "\n".join(lines)


def to_html(ruleset: CompiledRuleset, run: RuleTestRun | None = None) -> str:
    def esc(text: str) -> str:
        return html.escape(text.replace("`", ""))

    parts = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Ruleset {esc(ruleset.name)}</title>'
        "</head><body>",
        f"<h1>Ruleset {esc(ruleset.name)}</h1><p>{esc(ruleset.description)}</p>",
        f"<p>Version <code>{esc(ruleset.version)}</code>.</p>",
    ]
    for heading, fields in _fields(ruleset, run):
        parts.append(f"<h2>{esc(heading)}</h2><dl>")
        parts += [f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in fields]
        parts.append("</dl>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_docs(ruleset: CompiledRuleset, run: RuleTestRun | None, output: Path) -> list[Path]:
    """Write `<name>.md` and `<name>.html` into `output`."""
    output.mkdir(parents=True, exist_ok=True)
    markdown, page = output / f"{ruleset.name}.md", output / f"{ruleset.name}.html"
    markdown.write_text(to_markdown(ruleset, run), encoding="utf-8")
    page.write_text(to_html(ruleset, run), encoding="utf-8")
    return [markdown, page]

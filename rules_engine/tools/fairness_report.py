"""Render an EqualityReport (and a rule change's EqualityChange): a terminal table (rich), Markdown,
HTML with its charts inline (Vega-Lite through altair, drawn to SVG by vl-convert: no script, no
network) and JSON. Every writer shows the same suppressed numbers: none computes a figure of its own."""

from __future__ import annotations

import html
import json
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rules_engine.case.equality import NOT_RECORDED, label
from rules_engine.engine.equality import (
    ANY_FLAG,
    WHOLE,
    Breakdown,
    EqualityReport,
    GroupRow,
    Rate,
    RuleReport,
    VersionReport,
)
from rules_engine.tools.fairness import EqualityChange, Finding, GroupChange, chance_note, findings

WITHHELD = "withheld"
WITHHELD_NOTE = (
    "Withheld: fewer than {threshold} cases, or a number from which a withheld one could be worked out by subtraction."
)
LEGEND = WITHHELD_NOTE + (
    " Rates carry Wilson 95% intervals; the ratio is the group's rate over the whole caseload's, its interval"
    " the group's interval over the whole's rate; * marks an interval that excludes 1."
)
HOW_TO_READ = (
    "A ratio above 1 means the group is flagged (or its flags dismissed) more often than the whole caseload, "
    "below 1 less often. An interval that excludes 1 is a difference chance alone would rarely give; one that "
    "includes 1 may be chance. A difference is not by itself unfair: it may follow a real difference in need. "
    "It is a question for the people who own the rules, who can read each rule's thresholds and sources in "
    "the ruleset's transparency record. The rules never read these characteristics (the compiler refuses a "
    "rule that does); they are recorded for this monitoring only."
)
SHORT_NAMES = {"deprivation_decile": "decile"}
CHARACTERISTIC_NAMES = {
    "ethnicity": "Ethnicity",
    "sex": "Sex",
    "disability": "Disability",
    "deprivation_decile": "Deprivation decile of the home area",
}
FINDING_COLUMNS = ("Rule", "Characteristic", "Group", "Rate (95% CI)", "Ratio to whole", "Reading")


@dataclass(frozen=True)
class Context:
    """What the report is about, for its heading: where the counts came from and how they were made."""

    source: str  # "10,000 cases in cases.jsonl, evaluated as of 2025-12-31", "the service at host:port"
    command: str = ""
    recorded: int | None = None  # cases recording at least one characteristic, when known
    titles: dict[tuple[str, str], str] = field(default_factory=dict)  # (ruleset, rule_id) -> title


def characteristic_name(characteristic: str) -> str:
    return CHARACTERISTIC_NAMES.get(characteristic, characteristic)


def group_name(characteristic: str, group: str) -> str:
    if group == WHOLE:
        return "Whole caseload"
    if group == NOT_RECORDED:
        return "Not recorded"
    words = label(characteristic, group)
    return words if words == group or characteristic == "deprivation_decile" else f"{words} ({group})"


def rule_name(rule_id: str) -> str:
    return "All flags together" if rule_id == ANY_FLAG else rule_id


def count(value: int | None) -> str:
    return WITHHELD if value is None else f"{value:,}"


def rate_text(rate: Rate) -> str:
    if rate.rate is None:
        return WITHHELD
    if rate.interval is None:
        return f"{rate.rate:.1%}"
    return f"{rate.rate:.1%} ({rate.interval[0]:.1%} to {rate.interval[1]:.1%})"


def ratio_text(rate: Rate) -> str:
    if rate.ratio is None or rate.ratio_interval is None:
        return "1" if rate.ratio == 1 else WITHHELD
    low, high = rate.ratio_interval
    return f"{rate.ratio:.2f} ({low:.2f} to {high:.2f}){' *' if rate.disparate else ''}"


def columns(lifecycle: bool, readings: bool = True) -> tuple[str, ...]:
    flag = (
        "Group",
        "Evaluated",
        "Flagged",
        "Flag rate (95% CI)",
        "Ratio to whole",
        *(("Reading",) if readings else ()),
    )
    if not lifecycle:
        return flag
    return (
        *flag,
        "Dismissed",
        "Dismissal rate (95% CI)",
        "Dismissal ratio",
        *(("Dismissal reading",) if readings else ()),
    )


def cells(breakdown: Breakdown, row: GroupRow, lifecycle: bool, readings: bool = True) -> tuple[str, ...]:
    cells = (
        group_name(breakdown.characteristic, row.group),
        count(row.evaluated),
        count(row.flagged),
        rate_text(row.flag),
        ratio_text(row.flag),
        *((row.flag.reading,) if readings else ()),
    )
    if not lifecycle:
        return cells
    dismissal = (count(row.dismissed), rate_text(row.dismissal), ratio_text(row.dismissal))
    return (*cells, *dismissal, *((row.dismissal.reading,) if readings else ()))


def rule_title(context: Context, ruleset: str, rule_id: str) -> str:
    title = context.titles.get((ruleset, rule_id))
    return f"{rule_name(rule_id)}: {title}" if title else rule_name(rule_id)


def any_flag_rule(built: EqualityReport, ruleset: str, version: str) -> RuleReport | None:
    for v in built.versions:
        if (v.ruleset, v.version) == (ruleset, version):
            return next((r for r in v.rules if r.rule_id == ANY_FLAG), None)
    return None


def version_findings(found: list[Finding], version: VersionReport) -> list[Finding]:
    """The findings of one ruleset version's rules (not of all flags together)."""
    return [f for f in found if (f.ruleset, f.version) == (version.ruleset, version.version) and f.rule_id != ANY_FLAG]


def summary(built: EqualityReport, context: Context) -> list[str]:
    lines = [f"Counts from {context.source}; cells under {built.threshold} withheld."]
    if context.recorded is not None:
        lines.append(f"{context.recorded:,} cases record at least one characteristic.")
    if not built.lifecycle:
        lines.append("No flag was acknowledged, snoozed or resolved: dismissal rates are left out.")
    return lines


# --- terminal -----------------------------------------------------------------------------------


def _rich_table(breakdown: Breakdown, lifecycle: bool, title: str) -> Table:
    # Without the readings (the findings table has them): a row a line, wide enough for a terminal.
    table = Table(title=title, title_justify="left")
    for name in columns(lifecycle, readings=False):
        table.add_column(name, overflow="fold", justify="left" if name == "Group" else "right")
    for row in (breakdown.whole, *breakdown.groups):
        style = "bold" if row.group == WHOLE else ("yellow" if row.flag.disparate or row.dismissal.disparate else None)
        table.add_row(*(escape(c) for c in cells(breakdown, row, lifecycle, readings=False)), style=style)
    return table


def print_report(
    built: EqualityReport, console: Console, context: Context, rules: Collection[str] = (), every_rule: bool = False
) -> None:
    """All flags together by each characteristic, the groups any rule treats differently beyond chance,
    and each rule in `rules` (or every rule) in full."""
    for line in summary(built, context):
        console.print(escape(line), soft_wrap=True)
    for version in built.versions:
        console.print(f"\n{escape(version.ruleset)} {escape(version.version)}", style="bold", soft_wrap=True)
        for rule in version.rules:
            if rule.rule_id != ANY_FLAG and not every_rule and rule.rule_id not in rules:
                continue
            for breakdown in rule.breakdowns:
                name = characteristic_name(breakdown.characteristic)
                title = f"{rule_title(context, version.ruleset, rule.rule_id)}, by {name.lower()}"
                console.print(_rich_table(breakdown, built.lifecycle, escape(title)))
    found, shown = findings(built)
    rule_found = [f for f in found if f.rule_id != ANY_FLAG]
    if rule_found:
        table = Table(title="Rules whose flags fall differently on a group (interval excludes 1)", title_justify="left")
        table.add_column("Rule", overflow="fold")
        table.add_column("Group", overflow="fold")
        table.add_column("Ratio to whole", justify="right")
        table.add_column("Reading", overflow="fold", ratio=1)
        for finding in rule_found:
            what = "" if finding.measure == "flag" else " (dismissal)"
            short = SHORT_NAMES.get(finding.characteristic, finding.characteristic)
            table.add_row(
                escape(finding.rule_id + what),
                escape(f"{short}: {group_name(finding.characteristic, finding.row.group)}"),
                escape(ratio_text(finding.rate)),
                escape(finding.rate.reading),
            )
        console.print(table)
    console.print(LEGEND.format(threshold=built.threshold), style="dim", soft_wrap=True)
    console.print(chance_note(len(found), shown), soft_wrap=True)


def finding_cells(finding: Finding, context: Context) -> tuple[str, ...]:
    rate = finding.rate
    what = "" if finding.measure == "flag" else " (dismissal)"
    return (
        rule_title(context, finding.ruleset, finding.rule_id) + what,
        characteristic_name(finding.characteristic),
        group_name(finding.characteristic, finding.row.group),
        rate_text(rate),
        ratio_text(rate),
        rate.reading,
    )


# --- Markdown -----------------------------------------------------------------------------------


def _md_row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    align = ["---" if "Reading" in h or h in ("Group", "Rule", "Characteristic") else "---:" for h in header]
    return [_md_row(header), "|" + "|".join(align) + "|", *(_md_row(r) for r in rows), ""]


def _md_lines(built: EqualityReport, context: Context, heading: str) -> Iterator[str]:
    yield f"# {heading}"
    yield ""
    yield from (f"{line}  " for line in summary(built, context))
    if context.command:
        yield ""
        yield f"Made with `{context.command}`."
    yield ""
    yield HOW_TO_READ
    yield ""
    yield LEGEND.format(threshold=built.threshold)
    yield ""
    found, shown = findings(built)
    for version in built.versions:
        prefix = f"{version.ruleset} {version.version}: " if len(built.versions) > 1 else ""
        any_flag = any_flag_rule(built, version.ruleset, version.version)
        yield f"## {prefix}All flags together"
        yield ""
        for breakdown in any_flag.breakdowns if any_flag else ():
            yield f"### By {characteristic_name(breakdown.characteristic).lower()}"
            yield ""
            rows = [cells(breakdown, row, built.lifecycle) for row in (breakdown.whole, *breakdown.groups)]
            yield from _md_table(columns(built.lifecycle), rows)
        mine = version_findings(found, version)
        yield f"## {prefix}Rules whose flags fall differently on a group"
        yield ""
        if mine:
            yield from _md_table(FINDING_COLUMNS, [finding_cells(f, context) for f in mine])
        else:
            yield "No rule's interval excludes 1 for any group shown."
            yield ""
        yield f"## {prefix}Each rule"
        yield ""
        for rule in version.rules:
            if rule.rule_id == ANY_FLAG:
                continue
            yield f"### {rule_title(context, version.ruleset, rule.rule_id)}"
            yield ""
            rows, withheld = [], 0
            for number, breakdown in enumerate(rule.breakdowns):
                name = characteristic_name(breakdown.characteristic)
                # The whole caseload is the same under every characteristic: shown once.
                for row in (breakdown.whole, *breakdown.groups) if number == 0 else breakdown.groups:
                    if row.flag.rate is None:
                        withheld += 1
                        continue
                    rows.append(("" if row.group == WHOLE else name, *cells(breakdown, row, False)))
            if rows:
                yield from _md_table(("Characteristic", *columns(False)), rows)
            yield f"{withheld} group(s) withheld." if withheld else "No group withheld."
            yield ""
    yield "## Chance"
    yield ""
    yield chance_note(len(found), shown)


def to_markdown(built: EqualityReport, context: Context, heading: str = "Equality monitoring") -> str:
    return "\n".join(_md_lines(built, context, heading)) + "\n"


# --- charts -------------------------------------------------------------------------------------


def chart_rows(breakdown: Breakdown, measure: str = "flag") -> list[dict[str, Any]]:
    """One row per group whose ratio is shown: the ratio, its interval and whether it excludes 1."""
    rows = []
    for row in breakdown.groups:
        rate: Rate = getattr(row, measure)
        if rate.ratio is None or rate.ratio_interval is None:
            continue
        rows.append(
            {
                "group": group_name(breakdown.characteristic, row.group),
                "ratio": round(rate.ratio, 4),
                "low": round(max(rate.ratio_interval[0], 0.01), 4),
                "high": round(rate.ratio_interval[1], 4),
                "excludes 1": "yes" if rate.disparate else "no",
                "reading": rate.reading,
            }
        )
    return rows


def ratio_chart(breakdown: Breakdown, measure: str = "flag") -> dict[str, Any] | None:
    """A Vega-Lite spec: each group's ratio to the whole with its interval, a line at 1 (log scale)."""
    import altair as alt

    rows = chart_rows(breakdown, measure)
    if not rows:
        return None
    name = characteristic_name(breakdown.characteristic)
    order = [r["group"] for r in rows]
    data = alt.InlineData(values=rows)
    x = alt.X("ratio:Q", scale=alt.Scale(type="log"), title=f"{measure} rate / whole caseload's (log scale)")
    y = alt.Y("group:N", sort=order, title=None)
    colour = alt.Color(
        "excludes 1:N", scale=alt.Scale(domain=["no", "yes"], range=["#6b6b6b", "#c2410c"]), title="excludes 1"
    )
    bars = (
        alt.Chart(data)
        .mark_rule(strokeWidth=2)
        .encode(x=alt.X("low:Q", scale=alt.Scale(type="log")), x2="high:Q", y=y, color=colour)
    )
    points = (
        alt.Chart(data)
        .mark_point(filled=True, size=60)
        .encode(x=x, y=y, color=colour, tooltip=["group:N", "reading:N"])
    )
    one = alt.Chart(alt.InlineData(values=[{"one": 1}])).mark_rule(strokeDash=[4, 3], color="#111").encode(x="one:Q")
    chart = (bars + points + one).properties(
        width=520, height=18 * len(rows) + 10, title=f"{name}: {measure} rate ratio"
    )
    spec: dict[str, Any] = chart.to_dict()
    return spec


def chart_label(breakdown: Breakdown, measure: str = "flag") -> str:
    """What ratio_chart draws, in words (its text alternative is the table beside it)."""
    name = characteristic_name(breakdown.characteristic)
    return f"{name}: each shown group's {measure} rate ratio to the whole caseload, with its interval"


def svg(spec: dict[str, Any]) -> str:
    import vl_convert

    drawn: str = vl_convert.vegalite_to_svg(spec)
    return drawn


# --- HTML ---------------------------------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#111}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 7px;"
    "vertical-align:top}td.n{text-align:right;white-space:nowrap}tr.whole{font-weight:bold}"
    "tr.disparate{background:#fff4e5}.legend,.note{color:#444;font-size:.92em}figure{margin:.5em 0 1.5em}"
    "details{margin:.3em 0}summary{cursor:pointer}"
)


def _html_table(header: tuple[str, ...], rows: list[tuple[tuple[str, ...], str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for cells, css in rows:
        tds = "".join(
            f"<td{'' if 'reading' in h.lower() or h in ('Group', 'Rule', 'Characteristic') else ' class=n'}>"
            f"{html.escape(c)}</td>"
            for h, c in zip(header, cells, strict=True)
        )
        body.append(f'<tr class="{css}">{tds}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>\n"


def row_class(row: GroupRow) -> str:
    if row.group == WHOLE:
        return "whole"
    return "disparate" if row.flag.disparate or row.dismissal.disparate else ""


def to_html(built: EqualityReport, context: Context, heading: str = "Equality monitoring", charts: bool = True) -> str:
    parts = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>\n'
        f"<style>{_STYLE}</style></head><body>\n<h1>{html.escape(heading)}</h1>\n",
        "".join(f"<p>{html.escape(line)}</p>\n" for line in summary(built, context)),
        f"<p>Made with <code>{html.escape(context.command)}</code>.</p>\n" if context.command else "",
        f'<p class="note">{html.escape(HOW_TO_READ)}</p>\n',
        f'<p class="legend">{html.escape(LEGEND.format(threshold=built.threshold))}</p>\n',
    ]
    found, shown = findings(built)
    for version in built.versions:
        prefix = f"{version.ruleset} {version.version}: " if len(built.versions) > 1 else ""
        parts.append(f"<h2>{html.escape(prefix)}All flags together</h2>\n")
        any_flag = any_flag_rule(built, version.ruleset, version.version)
        for breakdown in any_flag.breakdowns if any_flag else ():
            name = characteristic_name(breakdown.characteristic)
            parts.append(f"<h3>By {html.escape(name.lower())}</h3>\n")
            rows = [(cells(breakdown, r, built.lifecycle), row_class(r)) for r in (breakdown.whole, *breakdown.groups)]
            parts.append(_html_table(columns(built.lifecycle), rows))
            for measure in ("flag", "dismissal") if built.lifecycle else ("flag",):
                spec = ratio_chart(breakdown, measure) if charts else None
                if spec is not None:
                    alt_text = html.escape(chart_label(breakdown, measure))
                    parts.append(f'<figure role="img" aria-label="{alt_text}">{svg(spec)}</figure>\n')
        mine = version_findings(found, version)
        parts.append(f"<h2>{html.escape(prefix)}Rules whose flags fall differently on a group</h2>\n")
        if mine:
            parts.append(_html_table(FINDING_COLUMNS, [(finding_cells(f, context), "disparate") for f in mine]))
        else:
            parts.append("<p>No rule's interval excludes 1 for any group shown.</p>\n")
        parts.append(f"<h2>{html.escape(prefix)}Each rule</h2>\n")
        for rule in version.rules:
            if rule.rule_id == ANY_FLAG:
                continue
            parts.append(
                f"<details><summary>{html.escape(rule_title(context, version.ruleset, rule.rule_id))}</summary>\n"
            )
            for breakdown in rule.breakdowns:
                rows = [(cells(breakdown, r, False), row_class(r)) for r in (breakdown.whole, *breakdown.groups)]
                name = characteristic_name(breakdown.characteristic)
                parts.append(f"<h4>By {html.escape(name.lower())}</h4>\n" + _html_table(columns(False), rows))
            parts.append("</details>\n")
    parts.append(
        f'<h2>Chance</h2>\n<p class="note">{html.escape(chance_note(len(found), shown))}</p>\n</body></html>\n'
    )
    return "".join(parts)


def json_document(built: EqualityReport, context: Context) -> dict[str, Any]:
    """The report as JSON (withheld numbers null) with where it came from: `--report FILE.json`'s
    document, and the workbench's."""
    found, shown = findings(built)
    return {
        "source": context.source,
        "command": context.command,
        "recorded": context.recorded,
        "report": built.to_dict(),
        "intervals_shown": shown,
        "intervals_excluding_1": len(found),
    }


def to_json(built: EqualityReport, context: Context) -> str:
    return json.dumps(json_document(built, context), indent=1) + "\n"


# --- a rule change (diff) -----------------------------------------------------------------------

_CHANGE_COLUMNS = ("Group", "Evaluated", "Flagged before", "Flagged after", "Rate before", "Rate after", "Reading")


def _change_cells(characteristic: str, change: GroupChange) -> tuple[str, ...]:
    return (
        group_name(characteristic, change.group),
        count(change.base.evaluated),
        count(change.base.flagged),
        count(change.head.flagged),
        rate_text(change.base.flag),
        rate_text(change.head.flag),
        change.reading,
    )


def _change_header(change: EqualityChange) -> str:
    return (
        f"Which groups the change flags more or less often: {change.recorded:,} of {change.cases:,} cases record "
        f"a characteristic; cells under {change.threshold} withheld, before and after each on its own."
    )


def print_change(change: EqualityChange, console: Console) -> None:
    console.print("\nEquality breakdown", style="bold")
    console.print(escape(_change_header(change)), soft_wrap=True)
    if not change.recorded:
        console.print("No case records a characteristic: every case is 'not recorded'.", soft_wrap=True)
        return
    for rule in change.rules:
        for breakdown in rule.breakdowns:
            name = characteristic_name(breakdown.characteristic)
            table = Table(
                title=escape(f"{rule.ruleset}: {rule_name(rule.rule_id)}, by {name.lower()}"), title_justify="left"
            )
            table.add_column("Group", overflow="fold")
            for column in ("Evaluated", "Flagged", "Flag rate", "Ratio to whole"):
                table.add_column(column, justify="right")
            for group in (breakdown.whole, *breakdown.groups):
                table.add_row(*(escape(c) for c in _change_short(breakdown.characteristic, group)))
            console.print(table)
    console.print("before -> after; * the interval now excludes 1; readings in the --report file", style="dim")


def _arrow(before: str, after: str) -> str:
    return WITHHELD if WITHHELD in (before, after) else f"{before} -> {after}"


def _change_short(characteristic: str, change: GroupChange) -> tuple[str, ...]:
    b, h = change.base, change.head
    ratios = (WITHHELD if r.ratio is None else f"{r.ratio:.2f}" for r in (b.flag, h.flag))
    ratio = "" if change.group == WHOLE else _arrow(*ratios)
    return (
        group_name(characteristic, change.group),
        count(b.evaluated),
        _arrow(count(b.flagged), count(h.flagged)),
        _arrow(*(WITHHELD if r.rate is None else f"{r.rate:.1%}" for r in (b.flag, h.flag))),
        ratio + (" *" if h.flag.disparate and not b.flag.disparate else ""),
    )


def change_markdown(change: EqualityChange) -> str:
    lines = ["## Equality breakdown", "", _change_header(change), ""]
    if not change.recorded:
        return "\n".join([*lines, "No case records a characteristic.", ""])
    for rule in change.rules:
        for breakdown in rule.breakdowns:
            name = characteristic_name(breakdown.characteristic)
            lines += [f"### {rule.ruleset}: {rule_name(rule.rule_id)}, by {name.lower()}", ""]
            rows = [_change_cells(breakdown.characteristic, g) for g in (breakdown.whole, *breakdown.groups)]
            lines += _md_table(_CHANGE_COLUMNS, rows)
    return "\n".join(lines)


def change_html(change: EqualityChange) -> str:
    parts = [f"<h2>Equality breakdown</h2>\n<p>{html.escape(_change_header(change))}</p>\n"]
    if not change.recorded:
        return parts[0] + "<p>No case records a characteristic.</p>\n"
    for rule in change.rules:
        for breakdown in rule.breakdowns:
            name = characteristic_name(breakdown.characteristic)
            parts.append(f"<h3>{html.escape(f'{rule.ruleset}: {rule_name(rule.rule_id)}, by {name.lower()}')}</h3>\n")
            rows = [(_change_cells(breakdown.characteristic, g), "") for g in (breakdown.whole, *breakdown.groups)]
            parts.append(_html_table(_CHANGE_COLUMNS, rows))
    return "".join(parts)


def change_json(change: EqualityChange) -> dict[str, Any]:
    return asdict(change)

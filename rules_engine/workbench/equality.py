"""The equality report on the workbench's page: engine/equality's report of the store's counters (what
GetEqualityReport gives and `rules-engine fairness --from-service` prints), as `fairness --report
FILE.json` writes it, and the page's tables and charts laid out by tools/fairness_report's writers.

The page computes nothing: every figure and word is the report's or the writers' (a withheld number
is null in the report and "withheld" in the tables, never a figure), and the charts are the HTML
report's, drawn for all flags together.
"""

from __future__ import annotations

from typing import Any

from rules_engine.engine.equality import ANY_FLAG, MIN_CELL, Breakdown, EqualityReport, VersionReport, check_threshold
from rules_engine.errors import CaseError, FieldViolation
from rules_engine.tools import fairness_report as writers
from rules_engine.tools.fairness import Finding, chance_note, findings

SOURCE = "this service's stored aggregates (every recorded evaluation, counted as cases per ruleset version)"


def read_threshold(text: str | None) -> int:
    """The query's `threshold` (default MIN_CELL); CaseError on `threshold` for anything else than a
    whole number of at least MIN_CELL: a lower one is refused, never raised to MIN_CELL."""
    if text is None or not text.strip():
        return MIN_CELL
    try:
        return check_threshold(int(text))
    except ValueError:
        said = f"a whole number, at least {MIN_CELL}: cells under it are withheld"
        raise CaseError([FieldViolation("threshold", said)]) from None


def document(built: EqualityReport, context: writers.Context, ruleset: str | None) -> dict[str, Any]:
    """The report as JSON (`report`: null where withheld) and, in `versions`, the page's layout."""
    found, shown = findings(built)
    return {
        **writers.json_document(built, context),
        "ruleset": ruleset,
        "threshold": built.threshold,
        "lifecycle": built.lifecycle,
        "words": {
            "summary": writers.summary(built, context),
            "how_to_read": writers.HOW_TO_READ,
            "legend": writers.LEGEND.format(threshold=built.threshold),
            "withheld": writers.WITHHELD,
            "withheld_note": writers.WITHHELD_NOTE.format(threshold=built.threshold),
            "chance": chance_note(len(found), shown),
        },
        "versions": [_version(built, version, context, found) for version in built.versions],
    }


def _version(
    built: EqualityReport, version: VersionReport, context: writers.Context, found: list[Finding]
) -> dict[str, Any]:
    """As the HTML report lays out a version: all flags together by each characteristic (with the
    charts), the rules' findings, then each rule's tables (without the dismissal columns)."""
    any_flag = writers.any_flag_rule(built, version.ruleset, version.version)
    return {
        "ruleset": version.ruleset,
        "version": version.version,
        "all_flags": [_breakdown(b, built.lifecycle, charts=True) for b in (any_flag.breakdowns if any_flag else ())],
        "findings": {
            "columns": writers.FINDING_COLUMNS,
            "rows": [writers.finding_cells(f, context) for f in writers.version_findings(found, version)],
        },
        "rules": [
            {
                "rule_id": rule.rule_id,
                "title": writers.rule_title(context, version.ruleset, rule.rule_id),
                "breakdowns": [_breakdown(b, False, charts=False) for b in rule.breakdowns],
            }
            for rule in version.rules
            if rule.rule_id != ANY_FLAG
        ],
    }


def _breakdown(breakdown: Breakdown, lifecycle: bool, charts: bool) -> dict[str, Any]:
    rows = (breakdown.whole, *breakdown.groups)
    laid: dict[str, Any] = {
        "characteristic": breakdown.characteristic,
        "name": writers.characteristic_name(breakdown.characteristic),
        "columns": writers.columns(lifecycle),
        "rows": [
            {"group": row.group, "class": writers.row_class(row), "cells": writers.cells(breakdown, row, lifecycle)}
            for row in rows
        ],
    }
    if charts:
        laid["charts"] = [_chart(breakdown, measure) for measure in (("flag", "dismissal") if lifecycle else ("flag",))]
    return laid


def _chart(breakdown: Breakdown, measure: str) -> dict[str, Any]:
    """ratio_chart's spec (None when no group's ratio can be shown) and the groups it leaves out."""
    drawn = {row["group"] for row in writers.chart_rows(breakdown, measure)}
    return {
        "measure": measure,
        "label": writers.chart_label(breakdown, measure),
        "spec": writers.ratio_chart(breakdown, measure),
        "not_drawn": [
            name
            for row in breakdown.groups
            if (name := writers.group_name(breakdown.characteristic, row.group)) not in drawn
        ],
    }

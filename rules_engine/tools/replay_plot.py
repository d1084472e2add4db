"""The replay's timeline as a Vega-Lite chart: facts by agency, worker allocations, conferences and
the flags as they rise and fall, on one time axis.

`timeline_chart` builds the chart (an altair object; `.to_dict()` is the Vega-Lite spec) so the
browser workbench can draw the same chart; `save_timeline` writes it as SVG or PNG through
vl-convert (no browser needed) or as a self-contained HTML page through altair.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import altair as alt
from pydantic import BaseModel

from rules_engine.case.facts import FACT_TYPES, Case
from rules_engine.policy.compiled import Severity
from rules_engine.tools.replay import Replay

WIDTH = 960
ROW = 14  # pixels per row of a band chart
SEVERITY_COLOURS = {
    Severity.INFO.name: "#9ecae1",
    Severity.LOW.name: "#4292c6",
    Severity.MEDIUM.name: "#fdae6b",
    Severity.HIGH.name: "#e6550d",
    Severity.CRITICAL.name: "#a50f15",
}
ATTENDANCE_COLOURS = {"attended": "#31a354", "absent, report sent": "#fdae6b", "absent, no report": "#de2d26"}


def _iso(day: dt.date) -> str:
    return day.isoformat()


def _label(name: str) -> str:
    return name.replace("_", " ")


def fact_rows(case: Case, last: dt.date) -> list[dict[str, Any]]:
    """One row per fact: its row on the chart (its agency, or its fact type where it has none),
    its date and, for facts with an end (assessments, plans, referrals), the end or `last` while
    open. Allocations are left out: they have their own band chart."""
    rows: list[dict[str, Any]] = []
    for name, model in FACT_TYPES.items():
        if name == "allocations":
            continue
        kind = _label(name)
        end_field = model.end_fields[0] if model.end_fields else None
        fact: BaseModel
        for fact in getattr(case, name):
            start: dt.date = getattr(fact, "date")  # noqa: B009
            if start > last:
                continue
            agency = getattr(fact, "agency", None)
            end = getattr(fact, end_field, None) if end_field else None
            rows.append(
                {
                    "row": str(agency) if agency else kind,
                    "type": kind,
                    "id": fact.id,  # type: ignore[attr-defined]
                    "start": _iso(start),
                    "end": _iso(min(end or last, last)) if end_field else None,
                    "open": end_field is not None and (end is None or end > last),
                }
            )
    return rows


def allocation_rows(case: Case, last: dt.date) -> list[dict[str, Any]]:
    return [
        {
            "worker": a.worker_id,
            "start": _iso(a.date),
            "end": _iso(min(a.end_date or last, last)),
            "reason": a.change_reason or "",
        }
        for a in case.allocations
        if a.date <= last
    ]


def conference_rows(case: Case, last: dt.date) -> list[dict[str, Any]]:
    """One row per invited agency per conference, with its attendance (absent agencies marked)."""
    rows = []
    for conference in case.conferences:
        if conference.date > last:
            continue
        for part in conference.agencies:
            if not part.invited:
                continue
            received = part.report_received_on is not None and part.report_received_on <= last
            attendance = "attended" if part.attended else ("absent, report sent" if received else "absent, no report")
            rows.append(
                {
                    "agency": part.agency,
                    "date": _iso(conference.date),
                    "kind": conference.kind,
                    "attendance": attendance,
                    "id": conference.id,
                }
            )
    return rows


def chart_end(result: Replay) -> dt.date:
    """Where the time axis ends: one step after the last, so a rule first firing at the last
    step still gets a bar as wide as a step."""
    days = [s.day for s in result.steps]
    if not days:
        return dt.date.today()
    # The usual gap between steps (the last one may be short: the replay's last date).
    gaps = collections.Counter(b - a for a, b in itertools.pairwise(days))
    return days[-1] + (gaps.most_common(1)[0][0] if gaps else dt.timedelta(days=1))


def flag_rows(result: Replay) -> list[dict[str, Any]]:
    """One bar per episode, from the step it fired to the step it stopped (still live: to the
    chart's end, one step past the last)."""
    rows = []
    open_end = chart_end(result)
    for rule in result.rules:
        for episode in rule.episodes:
            rows.append(
                {
                    "rule": rule.rule_id,
                    "title": rule.title,
                    "severity": rule.severity.name,
                    "start": _iso(episode.start),
                    "end": _iso(episode.end or open_end),
                    "stopped": _iso(episode.end) if episode.end else "still live",
                    "steps": episode.steps,
                    "shadow": rule.shadow,
                }
            )
    return rows


def _x(domain: list[str], title: str | None = None, field: str = "start") -> alt.X:
    # Years on a long case; quarters (as month and year) when the span is under four years.
    long = dt.date.fromisoformat(domain[1]) - dt.date.fromisoformat(domain[0]) > dt.timedelta(days=4 * 365)
    ticks: Any = "year" if long else {"interval": "month", "step": 3}
    return alt.X(
        f"{field}:T",
        scale=alt.Scale(domain=domain),
        axis=alt.Axis(format="%Y" if long else "%b %Y", tickCount=ticks, title=title, grid=True),
    )


def _y(field: str, order: list[str], title: str) -> alt.Y:
    # labelLimit 0: rule ids are never cut short (the chart must name every rule).
    return alt.Y(f"{field}:N", sort=order, title=title, axis=alt.Axis(labelLimit=0, labelFontSize=10))


def timeline_chart(case: Case, result: Replay) -> alt.VConcatChart:
    """The case's timeline over the replay's span, panels sharing the time axis: facts by agency,
    worker allocations (one row per worker), conferences (invited agencies, absences marked) and
    the flags (one row per rule, a bar per episode, coloured by severity)."""
    first = result.first or dt.date.today()
    last = result.last or first
    domain = [_iso(first), _iso(chart_end(result))]
    panels: list[Any] = []

    facts = fact_rows(case, last)
    if facts:
        fact_order = sorted({r["row"] for r in facts}, key=lambda r: (r.islower(), r))
        base = alt.Chart(alt.InlineData(values=facts))
        spans = base.transform_filter("datum.end != null").mark_rule(opacity=0.35, strokeWidth=3)
        points = base.mark_tick(thickness=1.5, size=ROW - 3)
        tooltip = ["type:N", "id:N", "start:T", "end:T"]
        colour = alt.Color("type:N", title="fact", legend=alt.Legend(symbolLimit=0, symbolOpacity=1))
        panels.append(
            alt.layer(
                spans.encode(x=_x(domain), x2="end:T", y=_y("row", fact_order, "facts"), color=colour),
                points.encode(x=_x(domain), y=_y("row", fact_order, "facts"), color=colour, tooltip=tooltip),
            ).properties(width=WIDTH, height=ROW * len(fact_order), title="Facts by agency (or fact type)")
        )

    allocations = allocation_rows(case, last)
    if allocations:
        workers = list(dict.fromkeys(r["worker"] for r in sorted(allocations, key=lambda r: r["start"])))
        panels.append(
            alt.Chart(alt.InlineData(values=allocations))
            .mark_bar(height=ROW - 4, color="#756bb1")
            .encode(
                x=_x(domain),
                x2="end:T",
                y=_y("worker", workers, "worker"),
                tooltip=["worker:N", "start:T", "end:T", "reason:N"],
            )
            .properties(width=WIDTH, height=ROW * len(workers), title="Worker allocations")
        )

    conferences = conference_rows(case, last)
    if conferences:
        agencies = sorted({r["agency"] for r in conferences})
        panels.append(
            alt.Chart(alt.InlineData(values=conferences))
            .mark_point(filled=True, size=60)
            .encode(
                x=_x(domain, field="date"),
                y=_y("agency", agencies, "agency"),
                color=alt.Color(
                    "attendance:N",
                    scale=alt.Scale(domain=list(ATTENDANCE_COLOURS), range=list(ATTENDANCE_COLOURS.values())),
                    title="conference",
                ),
                shape=alt.Shape("attendance:N", legend=None),
                tooltip=["id:N", "kind:N", "date:T", "agency:N", "attendance:N"],
            )
            .properties(width=WIDTH, height=ROW * len(agencies), title="Conferences: invited agencies")
        )

    flags = flag_rows(result)
    rules = [r.rule_id for r in result.rules]
    flag_chart = (
        alt.Chart(alt.InlineData(values=flags or [{"rule": "(no rule fired)", "start": domain[0], "end": domain[0]}]))
        .mark_bar(height=ROW - 4)
        .encode(
            x=_x(domain, "date"),
            x2="end:T",
            y=_y("rule", rules, "rule"),
            color=alt.Color(
                "severity:N",
                scale=alt.Scale(domain=list(SEVERITY_COLOURS), range=list(SEVERITY_COLOURS.values())),
                title="flag severity",
            ),
            tooltip=["rule:N", "title:N", "severity:N", "start:T", "stopped:N", "steps:Q", "shadow:N"],
        )
        .properties(
            width=WIDTH,
            height=ROW * max(1, len(rules)),
            title=f"Flags ({result.ruleset} {result.ruleset_version}): first fired to stopped",
        )
    )
    panels.append(flag_chart)

    chart: alt.VConcatChart = (
        alt.vconcat(*panels, spacing=18)
        .resolve_scale(x="shared", color="independent")
        .properties(title=f"Case {result.case_id}: replay {first} to {last}, {len(result.steps)} steps")
        .configure_axis(labelFontSize=10, titleFontSize=11)
        .configure_view(strokeWidth=0.5)
    )
    return chart


def timeline_spec(case: Case, result: Replay) -> dict[str, Any]:
    """The Vega-Lite spec of the timeline, for the browser workbench."""
    spec: dict[str, Any] = timeline_chart(case, result).to_dict()
    return spec


def save_timeline(case: Case, result: Replay, path: Path) -> None:
    """Write the timeline to `path`: .svg or .png rendered by vl-convert, .html by altair with
    its scripts inlined (opens without a network)."""
    suffix = path.suffix.lower()
    chart = timeline_chart(case, result)
    if suffix == ".html":
        chart.save(str(path), format="html", inline=True)
        return
    import vl_convert

    spec = chart.to_dict()
    if suffix == ".svg":
        path.write_text(vl_convert.vegalite_to_svg(spec), encoding="utf-8")
    elif suffix == ".png":
        path.write_bytes(vl_convert.vegalite_to_png(spec, scale=2))
    else:
        raise ValueError(f"{path}: the timeline is written as .svg, .png or .html")

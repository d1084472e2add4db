"""The catalogue evaluation as Markdown (SAFEGUARDING.md): figures, tables and the flags to answer for."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator

from rules_engine.tools.catalogue_eval import (
    LAG_LIMIT_DAYS,
    PATTERN_RULE,
    CourseResult,
    Summary,
    lag_months,
    percentile,
)


def _pct(part: int | float, whole: int) -> str:
    return "n/a" if not whole else f"{100 * part / whole:.1f}%"


def render(summary: Summary, command: str, notes: str = "") -> str:
    return "\n".join(_lines(summary, command, notes)) + "\n"


def _lines(summary: Summary, command: str, notes: str) -> Iterator[str]:
    slow, controls = summary.slow_burn, summary.controls
    visible, in_time, lags = summary.visible, summary.raised_in_time, summary.lags
    yield "# The safeguarding catalogue against slow-burn and control life courses"
    yield ""
    yield "Generated; do not edit by hand. Produced by:"
    yield ""
    yield f"```bash\n{command}\n```"
    yield ""
    yield (
        f"Ruleset `{summary.ruleset}` version `{summary.version}`, life courses of seed {summary.seed}. "
        "Each generated life course is replayed at "
        "every month end from its first fact to its end, as it stood on that day (`rules-engine replay`). "
        "Slow-burn courses carry the date their pattern became visible, defined by the generator from the "
        "facts alone (`rules_engine/tools/lifecourse.py`); controls are ordinary, well-managed work. Flags only "
        "(shadow rules are left out). Evaluated with the reference evaluator, the matcher's tested twin."
    )
    yield ""
    yield "## Headline"
    yield ""
    yield "| | figure |"
    yield "| --- | ---: |"
    yield f"| slow-burn courses | {len(slow)} |"
    yield f"| with the pattern visible | {len(visible)} |"
    share = _pct(len(in_time), len(visible))
    yield f"| {PATTERN_RULE} (C1) raised within 12 months of visibility | {len(in_time)} ({share}) |"
    never = sum(1 for c in visible if c.first(PATTERN_RULE) is None)
    early = sum(1 for lag in lags if lag < 0)
    yield f"| C1 never raised | {never} |"
    yield f"| C1 raised before the pattern was visible | {early} |"
    median = statistics.median(lags) if lags else None
    yield f"| lag from visibility to C1, median (months) | {lag_months(median)} |"
    yield f"| lag, 90th percentile (months) | {lag_months(percentile(lags, 0.9))} |"
    clean = len(controls) - len(summary.controls_with_serious)
    yield f"| control courses | {len(controls)} |"
    yield f"| controls with no high or critical flag | {clean} ({_pct(clean, len(controls))}) |"
    yield f"| alert burden on controls (live flags per case per month) | {summary.burden(controls):.2f} |"
    yield f"| alert burden on slow-burn courses (for contrast) | {summary.burden(slow):.2f} |"
    yield ""
    yield "Lag counts days from the month end on which the pattern became visible to the month end on which"
    yield f'C1 was first raised; "within 12 months" is at most {LAG_LIMIT_DAYS} days. A negative lag means C1 was'
    yield "raised before the generator's definition of visibility was met."
    yield ""
    yield from _late(visible)
    yield from _themes(summary)
    yield from _controls_by_shape(summary)
    yield from _rule_shares(summary)
    yield from _serious(summary)
    if notes:
        yield notes.rstrip()
        yield ""


def _late(visible: list[CourseResult]) -> Iterator[str]:
    late = [c for c in visible if (lag := c.lag_days) is None or lag > LAG_LIMIT_DAYS]
    yield "## Slow-burn courses where C1 was late or never raised"
    yield ""
    if not late:
        yield "None."
        yield ""
        return
    yield "| case | visible on | C1 first raised | lag (months) | rules raised by then |"
    yield "| --- | --- | --- | ---: | --- |"
    for course in late:
        first = course.first(PATTERN_RULE)
        horizon = first or course.end
        raised = sorted({f.rule_id for f in course.fired if f.first <= horizon})
        yield (
            f"| {course.case_id} | {course.visible_on} | {first or 'never'} | {lag_months(course.lag_days)} | "
            f"{', '.join(raised) or '-'} |"
        )
    yield ""


def _themes(summary: Summary) -> Iterator[str]:
    yield "## Each theme"
    yield ""
    yield "Share of courses on which any rule of the theme fired at some month end; lag from visibility to the"
    yield "theme's first flag (slow burn, median, months)."
    yield ""
    yield "| theme | slow burn | median lag | controls |"
    yield "| --- | ---: | ---: | ---: |"
    for t in summary.themes:
        lag = lag_months(t.median_lag_days)
        yield f"| {t.theme} | {100 * t.slow_burn_share:.1f}% | {lag} | {100 * t.control_share:.1f}% |"
    yield ""


def _controls_by_shape(summary: Summary) -> Iterator[str]:
    by_shape: dict[str, list[CourseResult]] = defaultdict(list)
    for course in summary.controls:
        by_shape[course.shape].append(course)
    yield "## Controls by kind"
    yield ""
    yield "| kind | courses | with a high or critical flag | live flags per case per month |"
    yield "| --- | ---: | ---: | ---: |"
    for shape, courses in sorted(by_shape.items()):
        serious = sum(1 for c in courses if c.serious)
        yield f"| {shape} | {len(courses)} | {serious} | {summary.burden(courses):.2f} |"
    yield ""


def _rule_shares(summary: Summary) -> Iterator[str]:
    controls = summary.controls
    shares = summary.rule_shares(controls)
    slow = summary.rule_shares(summary.slow_burn)
    yield "## How often each rule fires"
    yield ""
    over = [r for r, n in shares.items() if n > len(controls) / 2]
    yield (
        "No rule fires on more than half of the control courses."
        if not over
        else f"Rules firing on more than half of the controls: {', '.join(sorted(over))}."
    )
    yield ""
    yield "| rule | controls | slow burn |"
    yield "| --- | ---: | ---: |"
    for rule_id in sorted(set(shares) | set(slow), key=lambda r: (-shares[r], -slow[r], r)):
        yield f"| {rule_id} | {_pct(shares[rule_id], len(controls))} | {_pct(slow[rule_id], len(summary.slow_burn))} |"
    yield ""


def _serious(summary: Summary) -> Iterator[str]:
    yield "## High or critical flags on controls"
    yield ""
    found = summary.controls_with_serious
    if not found:
        yield "None."
        yield ""
        return
    counts: Counter[str] = Counter(f.rule_id for c in found for f in c.serious)
    yield "By rule: " + ", ".join(f"{rule} ({n})" for rule, n in counts.most_common()) + "."
    yield ""
    yield "| case | kind | rule | severity | first raised | months live | why (the flag's explanation) |"
    yield "| --- | --- | --- | --- | --- | ---: | --- |"
    for course in found:
        for f in course.serious:
            why = f.explanation.replace("|", "\\|")
            cells = (course.case_id, course.shape, f.rule_id, f.severity.name.lower(), f.first, f.steps_live, why)
            yield "| " + " | ".join(map(str, cells)) + " |"
    yield ""

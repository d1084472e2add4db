"""Evaluate a ruleset against families of generated life courses, month by month.

A rule tested only on the timeline it was written beside proves little. Here each slow-burn
life course carries the date its pattern became visible in the facts alone (the generator's
definition, never the rules'), and each control is ordinary, well-managed work. Replaying
every course month by month answers what a policy team needs before trusting the catalogue:
how often and how soon the long-running pattern (C1) is raised, which themes fire, which
high or critical flags land on well-managed cases, and how many flags a control case carries
each month (the alert burden).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.policy.compiled import CompiledRuleset, Severity
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.service import requests
from rules_engine.tools.lifecourse import LifeCourse, families
from rules_engine.tools.replay import as_it_stood, replay, replay_steps

PATTERN_RULE = "long-running-pattern"
# A flag this severe on a well-managed case is a false alarm someone must answer for.
SERIOUS = Severity.HIGH
LAG_LIMIT_DAYS = 366  # "within 12 months" of the pattern becoming visible


@dataclass(frozen=True)
class Fired:
    """One rule that fired during a course's replay."""

    rule_id: str
    severity: Severity
    first: dt.date
    steps_live: int
    explanation: str = ""


@dataclass(frozen=True)
class CourseResult:
    """What one life course's monthly replay showed."""

    case_id: str
    family: str
    shape: str
    start: dt.date
    end: dt.date
    visible_on: dt.date | None
    steps: int
    fired: tuple[Fired, ...]
    # Live flags summed over the steps (flags, not shadow flags: what a practitioner sees).
    live_flag_steps: int

    def first(self, rule_id: str) -> dt.date | None:
        return next((f.first for f in self.fired if f.rule_id == rule_id), None)

    @property
    def lag_days(self) -> int | None:
        """Days from visibility to the pattern's first flag (negative: raised before it was visible)."""
        first = self.first(PATTERN_RULE)
        if first is None or self.visible_on is None:
            return None
        return (first - self.visible_on).days

    @property
    def serious(self) -> tuple[Fired, ...]:
        return tuple(f for f in self.fired if f.severity >= SERIOUS)


# --- one course --------------------------------------------------------------------------------

# Each worker process prepares the ruleset once; the courses it is handed reuse it.
_WORKER: dict[str, PreparedRuleset] = {}


def _init_worker(ruleset_dir: str) -> None:
    _WORKER["prepared"] = PreparedRuleset(compile_ruleset(Path(ruleset_dir)), matcher="reference")


def evaluate_course(prepared: PreparedRuleset, course: LifeCourse) -> CourseResult:
    """Replay one life course at each month end from its first fact to its end date."""
    case = requests.case_model_from_proto(requests.case_from_json(course.case), today=course.end)
    result = replay(prepared, case, replay_steps(course.start, course.end, "month"))
    shadow = {r.id for r in prepared.ruleset.rules if r.status == "shadow"}
    fired = []
    for history in result.rules:
        if history.rule_id in shadow:
            continue
        explanation = ""
        if history.severity >= SERIOUS:
            # Why it fired, as the flag said it on the first day: the reason a reviewer reads.
            outcome = prepared.evaluate(as_it_stood(case, history.first_fired), history.first_fired)
            explanation = next((f.explanation for f in outcome.flags if f.rule_id == history.rule_id), "")
        fired.append(Fired(history.rule_id, history.severity, history.first_fired, history.steps_live, explanation))
    live = sum(sum(1 for rule_id in step.live if rule_id not in shadow) for step in result.steps)
    return CourseResult(
        case_id=case.case_id,
        family=course.family,
        shape=course.shape,
        start=course.start,
        end=course.end,
        visible_on=course.visible_on,
        steps=len(result.steps),
        fired=tuple(fired),
        live_flag_steps=live,
    )


def _evaluate_in_worker(course: LifeCourse) -> CourseResult:
    return evaluate_course(_WORKER["prepared"], course)


def evaluate_courses(ruleset_dir: Path, courses: Sequence[LifeCourse], workers: int = 1) -> list[CourseResult]:
    """Every course's result, in order; `workers` processes share the courses."""
    if workers <= 1:
        _init_worker(str(ruleset_dir))
        return [_evaluate_in_worker(c) for c in courses]
    context = multiprocessing.get_context("spawn")  # no fork of a threaded process
    with context.Pool(workers, initializer=_init_worker, initargs=(str(ruleset_dir),)) as pool:
        return pool.map(_evaluate_in_worker, courses, chunksize=4)


# --- the summary -------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


@dataclass(frozen=True)
class ThemeFigure:
    theme: str
    slow_burn_share: float  # slow-burn courses where a rule of the theme fired at some step
    median_lag_days: float | None  # from visibility to the theme's first flag, where both exist
    control_share: float


@dataclass
class Summary:
    ruleset: str
    version: str
    slow_burn: list[CourseResult]
    controls: list[CourseResult]
    themes: list[ThemeFigure] = field(default_factory=list)
    seed: int = 0  # the life courses' seed, so the report can be reproduced

    # slow burn
    @property
    def visible(self) -> list[CourseResult]:
        return [c for c in self.slow_burn if c.visible_on is not None]

    @property
    def raised_in_time(self) -> list[CourseResult]:
        return [c for c in self.visible if (lag := c.lag_days) is not None and lag <= LAG_LIMIT_DAYS]

    @property
    def lags(self) -> list[int]:
        return [lag for c in self.visible if (lag := c.lag_days) is not None]

    # controls
    @property
    def controls_with_serious(self) -> list[CourseResult]:
        return [c for c in self.controls if c.serious]

    def rule_shares(self, courses: Iterable[CourseResult]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for course in courses:
            counts.update({f.rule_id for f in course.fired})
        return counts

    def burden(self, courses: Sequence[CourseResult]) -> float:
        """Live flags per case per month: flag-months over case-months."""
        steps = sum(c.steps for c in courses)
        return sum(c.live_flag_steps for c in courses) / steps if steps else 0.0


def themes_of(ruleset: CompiledRuleset) -> dict[str, set[str]]:
    """Catalogue theme (a tag such as H1, W1, C1) -> the rules carrying it."""
    themes: dict[str, set[str]] = {}
    for rule in ruleset.rules:
        for tag in rule.tags:
            if len(tag) <= 3 and tag[:1].isalpha() and tag[1:].isdigit():
                themes.setdefault(tag, set()).add(rule.id)
    return themes


def summarise(ruleset: CompiledRuleset, slow_burn: list[CourseResult], controls: list[CourseResult]) -> Summary:
    summary = Summary(ruleset.name, ruleset.version, slow_burn, controls)
    for theme, rule_ids in sorted(themes_of(ruleset).items(), key=lambda item: (item[0][0], int(item[0][1:]))):
        lags = []
        fired_on = 0
        for course in slow_burn:
            firsts = [f.first for f in course.fired if f.rule_id in rule_ids]
            if firsts:
                fired_on += 1
                if course.visible_on is not None:
                    lags.append((min(firsts) - course.visible_on).days)
        on_controls = sum(1 for c in controls if any(f.rule_id in rule_ids for f in c.fired))
        summary.themes.append(
            ThemeFigure(
                theme,
                fired_on / len(slow_burn) if slow_burn else 0.0,
                statistics.median(lags) if lags else None,
                on_controls / len(controls) if controls else 0.0,
            )
        )
    return summary


def run(ruleset_dir: Path, slow_burn: int, controls: int, seed: int, workers: int) -> tuple[CompiledRuleset, Summary]:
    """Generate the families, replay every course and summarise."""
    compiled = compile_ruleset(ruleset_dir)
    slow = list(families("slow-burn", slow_burn, seed))
    ordinary = list(families("control", controls, seed))
    results = evaluate_courses(ruleset_dir, slow + ordinary, workers)
    summary = summarise(compiled, results[: len(slow)], results[len(slow) :])
    summary.seed = seed
    return compiled, summary


def lag_months(days: float | None) -> str:
    return "n/a" if days is None else f"{days / 30.44:.1f}"


def iter_lines(summary: Summary) -> Iterator[str]:
    """A short plain-text digest for the terminal."""
    visible = summary.visible
    in_time = summary.raised_in_time
    lags = summary.lags
    yield f"slow burn: {len(summary.slow_burn)} courses, {len(visible)} with the pattern visible"
    if visible:
        yield (
            f"  {PATTERN_RULE} within 12 months of visibility: {len(in_time)}/{len(visible)} "
            f"({100 * len(in_time) / len(visible):.1f}%); "
            f"median lag {lag_months(statistics.median(lags) if lags else None)} months, "
            f"90th percentile {lag_months(percentile(lags, 0.9))} months"
        )
    serious = summary.controls_with_serious
    clean = len(summary.controls) - len(serious)
    if summary.controls:
        yield (
            f"controls: {clean}/{len(summary.controls)} ({100 * clean / len(summary.controls):.1f}%) with no high or "
            f"critical flag; {summary.burden(summary.controls):.2f} live flags per case-month"
        )
    shares = summary.rule_shares(summary.controls)
    for rule_id, count in shares.most_common(5):
        yield f"  {rule_id}: fired on {count}/{len(summary.controls)} controls"

"""Replay a case through its history: evaluate it as it stood at each step and record when each
rule first fired, when it stopped, and how long it was live.

A flag raised today says nothing about when the pattern became visible. Policy teams asking "when
would this have been raised?" need the case as it was known on each past date: facts recorded
later did not exist, and an assessment completed later was still open. `as_it_stood` builds that
case; `replay` evaluates it at each step of `replay_steps`.
"""

from __future__ import annotations

import datetime as dt
import functools
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from rules_engine.case.facts import FACT_TYPES, Case
from rules_engine.engine import calendar
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.policy.compiled import Severity

Step = Literal["month", "week", "day"]
STEPS: tuple[Step, ...] = ("month", "week", "day")


# --- the case as it stood ---------------------------------------------------------------------


def _optional_date(annotation: Any) -> bool | None:
    """True for `date | None`, False for a required `date`, None for anything else."""
    if annotation is dt.date:
        return False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = typing.get_args(annotation)
        if dt.date in args:
            return type(None) in args
    return None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a `tuple[Model, ...]` field (conference agencies), else None."""
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return args[0]
    return None


@functools.cache
def _shape(model: type[BaseModel]) -> tuple[tuple[str, ...], tuple[tuple[str, type[BaseModel]], ...]]:
    """A model's clearable dates (every optional date field but `date`: end, completion, decision,
    report dates) and its nested model lists. Read from the annotations, so fact types added
    later are replayed without a change here. A required date other than `date` cannot be
    cleared and is kept as recorded."""
    dates = tuple(
        name for name, info in model.model_fields.items() if name != "date" and _optional_date(info.annotation) is True
    )
    nested = tuple(
        (name, sub) for name, info in model.model_fields.items() if (sub := _nested_model(info.annotation)) is not None
    )
    return dates, nested


def _as_of(item: BaseModel, day: dt.date) -> BaseModel:
    """One fact (or nested record) as known on `day`: later dates cleared; itself when unchanged."""
    dates, nested = _shape(type(item))
    changes: dict[str, Any] = {}
    for name in dates:
        value = getattr(item, name)
        if value is not None and value > day:
            changes[name] = None
    for name, _ in nested:
        parts: tuple[BaseModel, ...] = getattr(item, name)
        known = tuple(_as_of(part, day) for part in parts)
        if any(new is not old for new, old in zip(known, parts, strict=True)):
            changes[name] = known
    return item.model_copy(update=changes) if changes else item


def as_it_stood(case: Case, day: dt.date) -> Case:
    """The case as it stood on `day`: only facts dated on or before it, and every other date after
    it (end, completion, decision, report received) cleared: an assessment completed later was
    still open, a plan ended later was still running, a report received later had not arrived."""
    updates: dict[str, tuple[BaseModel, ...]] = {}
    for name in FACT_TYPES:
        facts: tuple[BaseModel, ...] = getattr(case, name)
        known = tuple(_as_of(fact, day) for fact in facts if getattr(fact, "date") <= day)  # noqa: B009
        if len(known) != len(facts) or any(new is not old for new, old in zip(known, facts, strict=False)):
            updates[name] = known
    return case.model_copy(update=updates) if updates else case


def fact_dates(case: Case) -> list[dt.date]:
    """Every date in the case's facts (fact dates, end dates and nested dates), unsorted."""
    found: list[dt.date] = []

    def walk(item: BaseModel) -> None:
        dates, nested = _shape(type(item))
        for name in ("date", *dates):
            value = getattr(item, name, None)
            if isinstance(value, dt.date):
                found.append(value)
        for name, _ in nested:
            for part in getattr(item, name):
                walk(part)

    for name in FACT_TYPES:
        for fact in getattr(case, name):
            walk(fact)
    return found


def default_span(case: Case, today: dt.date | None = None) -> tuple[dt.date, dt.date] | None:
    """The replay's default span: from the earliest fact date to the latest date the case records
    (an end or completion date included, so a last assessment's completion is replayed), but never
    past `today` (a planned conference is not history). None when the case has no facts."""
    starts = [getattr(fact, "date") for name in FACT_TYPES for fact in getattr(case, name)]  # noqa: B009
    if not starts:
        return None
    today = today or dt.date.today()
    first = min(starts)
    last = max(d for d in fact_dates(case) if d <= today) if first <= today else first
    return first, max(first, last)


# --- steps ----------------------------------------------------------------------------------


def replay_steps(first: dt.date, last: dt.date, step: Step = "month") -> list[dt.date]:
    """The dates to evaluate at: each month end (or week end, Sunday; or day) from `first` to
    `last`, and `last` itself when it is not one, so a replay always reaches its last date."""
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}, not {step!r}")
    if last < first:
        raise ValueError(f"the replay ends ({last}) before it starts ({first})")
    days: list[dt.date] = []
    if step == "day":
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    elif step == "week":
        day = first + dt.timedelta(days=6 - first.weekday())
        while day <= last:
            days.append(day)
            day += dt.timedelta(days=7)
    else:
        days = calendar.month_ends(first, last)
    if not days or days[-1] != last:
        days.append(last)
    return days


# --- replay ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """A run of steps a rule was live: from the step it fired to the first step it no longer did
    (`end` None: still live at the last step)."""

    start: dt.date
    end: dt.date | None
    steps: int


@dataclass(frozen=True)
class RuleHistory:
    """One rule that fired at least once during the replay."""

    rule_id: str
    title: str
    severity: Severity
    shadow: bool
    episodes: tuple[Episode, ...]

    @property
    def first_fired(self) -> dt.date:
        return self.episodes[0].start

    @property
    def stopped(self) -> dt.date | None:
        """When it last stopped; None when it was still live at the last step."""
        return self.episodes[-1].end

    @property
    def steps_live(self) -> int:
        return sum(e.steps for e in self.episodes)


@dataclass(frozen=True)
class StepResult:
    """One evaluation of the replay: the rules live (flags and shadow flags) and the undetermined."""

    day: dt.date
    live: tuple[str, ...]
    undetermined: tuple[str, ...]


@dataclass(frozen=True)
class Replay:
    case_id: str
    ruleset: str
    ruleset_version: str
    steps: tuple[StepResult, ...]
    # Every rule that ever fired, in the order they first fired (most severe first on a day).
    rules: tuple[RuleHistory, ...]

    @property
    def first(self) -> dt.date | None:
        return self.steps[0].day if self.steps else None

    @property
    def last(self) -> dt.date | None:
        return self.steps[-1].day if self.steps else None

    def rule(self, rule_id: str) -> RuleHistory | None:
        return next((r for r in self.rules if r.rule_id == rule_id), None)

    def first_fired(self) -> dict[str, dt.date]:
        return {r.rule_id: r.first_fired for r in self.rules}


def replay(prepared: PreparedRuleset, case: Case, steps: Iterable[dt.date]) -> Replay:
    """Evaluate the case as it stood at each step (in order) and gather each rule's episodes."""
    ordered: Sequence[dt.date] = sorted(set(steps))
    about: dict[str, tuple[str, Severity, bool]] = {}
    episodes: dict[str, list[Episode]] = {}
    open_since: dict[str, tuple[dt.date, int]] = {}  # rule id -> (episode start, steps so far)
    results: list[StepResult] = []
    for day in ordered:
        outcome = prepared.evaluate(as_it_stood(case, day), day)
        live: list[str] = []
        for flag in outcome.flags + outcome.shadow_flags:
            live.append(flag.rule_id)
            about.setdefault(flag.rule_id, (flag.title, flag.severity, flag.shadow))
            start, count = open_since.get(flag.rule_id, (day, 0))
            open_since[flag.rule_id] = (start, count + 1)
        for rule_id in [r for r in open_since if r not in live]:
            start, count = open_since.pop(rule_id)
            episodes.setdefault(rule_id, []).append(Episode(start, day, count))
        results.append(StepResult(day, tuple(live), tuple(u.rule_id for u in outcome.undetermined)))
    for rule_id, (start, count) in open_since.items():
        episodes.setdefault(rule_id, []).append(Episode(start, None, count))
    histories = [RuleHistory(rule_id, *about[rule_id], episodes=tuple(runs)) for rule_id, runs in episodes.items()]
    histories.sort(key=lambda h: (h.first_fired, -int(h.severity), h.rule_id))
    compiled = prepared.ruleset
    return Replay(case.case_id, compiled.name, compiled.version, tuple(results), tuple(histories))


# --- printing -------------------------------------------------------------------------------


def table_rows(result: Replay) -> list[tuple[str, str, str, str, str, str]]:
    """The first-fire table: rule id, severity, first fired, stopped, episodes, steps live."""
    rows = []
    for rule in result.rules:
        stopped = str(rule.stopped) if rule.stopped else "live"
        rule_id = f"{rule.rule_id} (shadow)" if rule.shadow else rule.rule_id
        rows.append(
            (
                rule_id,
                rule.severity.name,
                str(rule.first_fired),
                stopped,
                str(len(rule.episodes)),
                f"{rule.steps_live}/{len(result.steps)}",
            )
        )
    return rows


def print_table(result: Replay, step: Step, width: int | None = None) -> None:
    """Print the first-fire table with rich (plain text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=width, soft_wrap=False)
    if not console.is_terminal and width is None:
        console = Console(width=160)
    title = (
        f"case {result.case_id}, ruleset {result.ruleset} {result.ruleset_version}: "
        f"{len(result.steps)} {step} steps, {result.first} to {result.last}"
    )
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("rule", "left"),
        ("severity", "left"),
        ("first fired", "left"),
        ("stopped", "left"),
        ("episodes", "right"),
        ("steps live", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)
    if not result.rules:
        console.print("no rule fired at any step")
    else:
        live = result.steps[-1].live if result.steps else ()
        console.print(f"{len(result.rules)} rule(s) fired; {len(live)} live at {result.last}")

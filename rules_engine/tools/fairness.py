"""Equality monitoring over a caseload: count each ruleset's flags by the child's characteristics and
build the suppressed report (engine/equality.py), and the same breakdown for a rule change (diff).

A caseload file has no lifecycle, so its report counts cases evaluated and flagged only; the service's
stored aggregates (GetEqualityReport) add acknowledged, snoozed and resolved. Counting unit: cases, as
the store counts them (each case once per ruleset version; "flagged" under a rule when it raised that
rule's flag, under ANY_FLAG when it raised any). Shadow rules are left out: they raise no flag.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rules_engine.case.equality import CHARACTERISTICS, NOT_RECORDED, Groups, groups
from rules_engine.case.facts import Case
from rules_engine.engine.equality import (
    ANY_FLAG,
    MIN_CELL,
    Breakdown,
    Cell,
    EqualityReport,
    GroupRow,
    Rate,
    check_threshold,
    report,
)
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.errors import DiffInputError
from rules_engine.policy.compiler import compile_ruleset, rulesets_in
from rules_engine.tools.diff import Impact

CHANCE = 0.05  # the share of 95% intervals that exclude 1 when there is no difference at all


@dataclass
class Tally:
    """Counters per Cell, as the store keeps them, and each ruleset version's (active) rules."""

    counts: dict[Cell, int] = field(default_factory=dict)
    rules: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    titles: dict[tuple[str, str], str] = field(default_factory=dict)  # (ruleset, rule_id) -> title

    def add(self, ruleset: str, version: str, of: Groups, flagged: Iterable[str], any_flag: bool | None = None) -> None:
        """One case evaluated: counted once under each characteristic, in its group. `any_flag`
        when `flagged` names only some of the case's flags (default: whether it names any)."""
        flagged = list(dict.fromkeys(flagged))
        if any_flag is None:
            any_flag = bool(flagged)
        for characteristic, group in zip(CHARACTERISTICS, of, strict=True):
            for rule_id, outcome in [
                (ANY_FLAG, "evaluated"),
                *([(ANY_FLAG, "flagged")] if any_flag else []),
                *((rule_id, "flagged") for rule_id in flagged),
            ]:
                cell = Cell(ruleset, version, rule_id, characteristic, group, outcome)
                self.counts[cell] = self.counts.get(cell, 0) + 1

    def report(self, threshold: int = MIN_CELL, withhold: Iterable[Cell] = ()) -> EqualityReport:
        return report(self.counts, threshold, rules=self.rules, withhold=withhold)


def recorded(cases: Sequence[Case]) -> int:
    """How many cases record at least one characteristic."""
    return sum(1 for case in cases if any(g != NOT_RECORDED for g in groups(case.child)))


def count_caseload(
    root: Path,
    cases: Iterable[Case],
    as_of: dt.date,
    only: str | None = None,
    progress: Callable[[Iterable[Case]], Iterable[Case]] = lambda items: items,
) -> Tally:
    """Evaluate every case on each ruleset under `root` (or the one named `only`) and count the flags.
    Raises RuleFileErrors when a ruleset does not compile, DiffInputError when `only` is not there."""
    tally = Tally()
    with ExitStack() as stack:
        prepared: list[PreparedRuleset] = []
        for directory in rulesets_in(root):
            compiled = compile_ruleset(directory)
            if only is not None and compiled.name != only:
                continue
            # The reference evaluator: equal to the Matcher (tests/engine/test_matching.py), no registration.
            ruleset = PreparedRuleset(compiled, matcher="reference")
            stack.callback(ruleset.close)
            prepared.append(ruleset)
            tally.rules[compiled.name, compiled.version] = [r.id for r in compiled.rules if r.status == "active"]
            tally.titles.update(((compiled.name, r.id), r.title) for r in compiled.rules)
        if not prepared:
            raise DiffInputError(f"no ruleset named {only!r} under {root}" if only else f"no ruleset under {root}")
        for case in progress(cases):
            of = groups(case.child)
            for ruleset in prepared:
                outcome = ruleset.evaluate(case, as_of)
                tally.add(ruleset.ruleset.name, ruleset.ruleset.version, of, (f.rule_id for f in outcome.flags))
    return tally


# --- what stands out --------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A group whose rate's interval against the whole excludes 1."""

    ruleset: str
    version: str
    rule_id: str
    characteristic: str
    row: GroupRow
    measure: str  # "flag" or "dismissal"

    @property
    def rate(self) -> Rate:
        rate: Rate = getattr(self.row, self.measure)
        return rate


def findings(built: EqualityReport) -> tuple[list[Finding], int]:
    """The groups rated differently from the whole beyond chance, and how many intervals were shown:
    with no difference anywhere about CHANCE of them would exclude 1 all the same."""
    found: list[Finding] = []
    shown = 0
    for version in built.versions:
        for rule in version.rules:
            for breakdown in rule.breakdowns:
                for row in breakdown.groups:
                    for measure in ("flag", "dismissal"):
                        rate: Rate = getattr(row, measure)
                        whole: Rate = getattr(breakdown.whole, measure)
                        # A group that is the whole caseload (every case "not recorded") compares nothing.
                        if rate.ratio_interval is None or rate.denominator == whole.denominator:
                            continue
                        shown += 1
                        if rate.disparate:
                            found.append(
                                Finding(
                                    version.ruleset,
                                    version.version,
                                    rule.rule_id,
                                    breakdown.characteristic,
                                    row,
                                    measure,
                                )
                            )
    return found, shown


def chance_note(found: int, shown: int) -> str:
    expected = shown * CHANCE
    return (
        f"{found} of {shown} intervals shown exclude 1. With no difference anywhere about {expected:.0f} "
        f"({CHANCE:.0%}) would exclude 1 by chance alone, so a single finding is a question to look into, "
        "not a conclusion; a finding that persists across periods, or a large ratio, is stronger."
    )


# --- a rule change ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupChange:
    group: str
    base: GroupRow
    head: GroupRow
    reading: str


@dataclass(frozen=True)
class BreakdownChange:
    characteristic: str
    whole: GroupChange
    groups: tuple[GroupChange, ...]


@dataclass(frozen=True)
class RuleEqualityChange:
    ruleset: str
    rule_id: str  # ANY_FLAG for all flags together
    breakdowns: tuple[BreakdownChange, ...]


@dataclass(frozen=True)
class EqualityChange:
    """Which groups a change flags more or less often: base and head, each suppressed on its own."""

    threshold: int
    cases: int
    recorded: int  # cases recording at least one characteristic
    rules: tuple[RuleEqualityChange, ...]


def _change_reading(base: Rate, head: Rate) -> str:
    if base.rate is None or head.rate is None:
        return "withheld: a small number, or one a small number could be worked out from"
    if head.rate == base.rate:
        said = f"flagged as often after the change ({head.rate:.1%})"
    else:
        said = f"flagged {'more' if head.rate > base.rate else 'less'} often: {base.rate:.1%} -> {head.rate:.1%}"
    if base.ratio_interval is not None and head.ratio is not None and base.ratio is not None:
        said += f"; against the whole caseload {base.ratio:.2f} -> {head.ratio:.2f} times"
        if head.disparate and not base.disparate:
            said += " (the interval now excludes 1)"
        elif base.disparate and not head.disparate:
            said += " (the interval no longer excludes 1)"
    return said


def equality_change(impact: Impact, cases: Sequence[Case], threshold: int = MIN_CELL) -> EqualityChange:
    """The breakdown by characteristic of the rules a change touches, and of all flags together,
    before and after; from compare()'s results (which cases each rule flags on each side)."""
    check_threshold(threshold)
    of = {case.case_id: groups(case.child) for case in cases}
    sides = {"base": Tally(), "head": Tally()}
    changed = [c for c in impact.changes if c.changed]
    touched = {(c.ruleset, c.rule_id) for c in changed}
    names = sorted({c.ruleset for c in impact.changes})
    for name in names:
        for side, tally in sides.items():
            flagged_by: dict[str, list[str]] = {}
            for change in impact.changes:
                if change.ruleset != name:
                    continue
                ids = change.unchanged_flagged + (change.no_longer_flagged if side == "base" else change.newly_flagged)
                for case_id in ids:
                    flagged_by.setdefault(case_id, []).append(change.rule_id)
            tally.rules[name, side] = [c.rule_id for c in changed if c.ruleset == name]
            for case in cases:
                flags = flagged_by.get(case.case_id, [])
                tally.add(name, side, of[case.case_id], [r for r in flags if (name, r) in touched], bool(flags))
    base, head = _before_and_after(sides["base"], sides["head"], threshold)
    rules: list[RuleEqualityChange] = []
    for name in names:
        if not any(c.ruleset == name for c in changed):
            continue
        for rule_id in [ANY_FLAG, *(c.rule_id for c in changed if c.ruleset == name)]:
            before, after = base.rule(rule_id, name), head.rule(rule_id, name)
            breakdowns = []
            for b, h in zip(before.breakdowns, after.breakdowns, strict=True):
                breakdowns.append(_breakdown_change(b, h))
            rules.append(RuleEqualityChange(name, rule_id, tuple(breakdowns)))
    return EqualityChange(threshold, len(cases), recorded(cases), tuple(rules))


def _before_and_after(base: Tally, head: Tally, threshold: int) -> tuple[EqualityReport, EqualityReport]:
    """Both sides suppressed, and then a group's flagged cells withheld after the change where before
    minus after would be a small number other than 0 (for a change that only adds or only removes
    flags, the cases in the group it flips); secondary suppression follows, until none is left."""
    before = base.report(threshold)
    extra: set[Cell] = set()
    while True:
        after = head.report(threshold, extra)
        small = set()
        for version in before.versions:
            for rule in version.rules:
                for b in rule.breakdowns:
                    for row in b.groups:
                        cell = Cell(version.ruleset, "head", rule.rule_id, b.characteristic, row.group, "flagged")
                        then = row.flagged
                        now = _flagged(after, version.ruleset, rule.rule_id, b.characteristic, row.group)
                        if then is not None and now is not None and 0 < abs(then - now) < threshold:
                            small.add(cell)
        if not small - extra:
            return before, after
        extra |= small


def _flagged(built: EqualityReport, ruleset: str, rule_id: str, characteristic: str, group: str) -> int | None:
    for breakdown in built.rule(rule_id, ruleset).breakdowns:
        if breakdown.characteristic == characteristic:
            for row in breakdown.groups:
                if row.group == group:
                    return row.flagged
    return None


def _breakdown_change(base: Breakdown, head: Breakdown) -> BreakdownChange:
    def one(b: GroupRow, h: GroupRow) -> GroupChange:
        return GroupChange(b.group, b, h, _change_reading(b.flag, h.flag))

    return BreakdownChange(
        base.characteristic,
        one(base.whole, head.whole),
        tuple(one(b, h) for b, h in zip(base.groups, head.groups, strict=True)),
    )

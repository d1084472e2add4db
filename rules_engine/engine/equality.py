"""Equality monitoring: counters' cells, small-cell suppression, Wilson intervals, ratios and the report.

Pure (stdlib, and case/equality.py's names): the store counts cells, the GetEqualityReport RPC and
`rules-engine fairness` both build their report with `report()`, so they show the same numbers.

Suppression (statistical disclosure control). Primary: every cell under the threshold (10, or a
higher setting; a lower one is refused), zero included, is withheld. Secondary (complementary): a
withheld cell must not be recoverable by subtraction from what is shown. The relations protected:

1. Groups sum to the whole: within (ruleset, version, rule, characteristic, outcome) the groups'
   cells add up to the whole caseload's cell (group WHOLE). When the whole is shown, at least two
   groups are withheld and the withheld groups together hold at least `threshold` (otherwise their
   sum, which the whole minus the shown groups gives away, is a small number); when the whole is
   withheld, at least one group is too. The smallest shown cell is withheld next.
2. One whole, many characteristics: each characteristic partitions the same caseload, so the
   whole's cell is the same number under every characteristic, and withheld under all if under one.
3. Dismissed = acknowledged + snoozed (DISMISSED is derived, shown beside its parts): as in 1,
   never exactly one of the three withheld.
4. Subsets: flagged <= evaluated (a rule's flags and any flag, against the cases evaluated),
   dismissed, acknowledged, snoozed and resolved <= flagged, acknowledged and snoozed <= dismissed,
   and every pair along these chains (resolved <= evaluated...). The difference (the cases
   evaluated and not flagged; the flags not dismissed...) is a count too: when both are shown and it
   is under the threshold, the smaller cell is withheld, so "all but 3 of group X were flagged" is
   never shown, and neither is a withheld cell pinned between two close shown ones (dismissed 12 <=
   flagged <= evaluated 12). (A negative difference means the two count different things; it is
   not protected.)

5. Ranges: bounding a withheld cell by all of the above at once (and counts never negative)
   leaves it at least `threshold` possible values; where it would not, the nearest shown cell
   in a relation with it is withheld too.

Not protected: "any flag" against a rule (a union, not a sum, so only bounds follow), and two
reports taken at different times (the counters only grow; a difference between successive reports
can be small). Rates, ratios and intervals are withheld whenever a count they come from is.

Rates and intervals. A flag rate is flagged / evaluated, a dismissal rate dismissed / flagged. The
interval is Wilson's 95% score interval for the group's rate; the ratio is the group's rate over the
whole caseload's, and its interval is the group's Wilson interval over the whole's rate (the whole's
own uncertainty, much smaller for any group that is a small part of it, is left out; for a group that
is most of the caseload the group and the whole move together and the interval is conservative).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rules_engine.case.equality import CHARACTERISTICS, LABELS, NOT_RECORDED

# What the store counts. "evaluated" is counted under ANY_FLAG only: every rule is evaluated for
# every case, so a rule's denominator is the cases evaluated.
OUTCOMES = ("evaluated", "flagged", "acknowledged", "snoozed", "resolved")
DISMISSED = "dismissed"  # derived: acknowledged + snoozed, a practitioner took the flag off the list
ANY_FLAG = "*"  # the rule_id of all flags together
WHOLE = "*"  # the group of the whole caseload (derived: the sum of the groups)
MIN_CELL = 10
Z95 = 1.959963984540054

_ORDER = (*OUTCOMES, DISMISSED)


@dataclass(frozen=True, order=True)
class Cell:
    """One counter: how many of a ruleset version's cases in `group` of `characteristic` reached `outcome`."""

    ruleset: str
    version: str
    rule_id: str
    characteristic: str
    group: str
    outcome: str


Counts = Mapping[Cell, int]


def check_threshold(threshold: int) -> int:
    """The threshold, if it is allowed: never under MIN_CELL."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < MIN_CELL:
        raise ValueError(f"the suppression threshold must be a whole number of at least {MIN_CELL}, not {threshold!r}")
    return threshold


# --- suppression --------------------------------------------------------------------------------

_Block = tuple[str, str, str, str]  # ruleset, version, rule_id, characteristic


def complete(counts: Counts) -> dict[Cell, int]:
    """Every cell a report shows, missing ones as 0: each rule and any flag, each characteristic's
    groups seen anywhere in its ruleset version, the whole (WHOLE) and the derived DISMISSED."""
    groups: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    rules: dict[tuple[str, str], set[str]] = defaultdict(lambda: {ANY_FLAG})
    for cell in counts:
        if cell.group == WHOLE or cell.outcome not in OUTCOMES:
            raise ValueError(f"a counted cell has group {WHOLE!r} or outcome {cell.outcome!r}: {cell}")
        groups[cell.ruleset, cell.version, cell.characteristic].add(cell.group)
        rules[cell.ruleset, cell.version].add(cell.rule_id)
    full: dict[Cell, int] = {}
    for (ruleset, version, characteristic), names in groups.items():
        for rule_id in rules[ruleset, version]:
            outcomes = _ORDER if rule_id == ANY_FLAG else _ORDER[1:]
            for outcome in outcomes:
                whole = 0
                for group in names:
                    if outcome == DISMISSED:
                        value = sum(
                            counts.get(Cell(ruleset, version, rule_id, characteristic, group, part), 0)
                            for part in ("acknowledged", "snoozed")
                        )
                    else:
                        value = counts.get(Cell(ruleset, version, rule_id, characteristic, group, outcome), 0)
                    full[Cell(ruleset, version, rule_id, characteristic, group, outcome)] = value
                    whole += value
                full[Cell(ruleset, version, rule_id, characteristic, WHOLE, outcome)] = whole
    return full


def _relations(
    full: Mapping[Cell, int],
) -> tuple[list[tuple[Cell, list[Cell]]], list[tuple[Cell, Cell]], list[list[Cell]]]:
    """(total, parts) sums, (child, parent) subsets and same-number sets among the completed cells."""
    blocks: dict[_Block, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for cell in full:
        if cell.group != WHOLE:
            blocks[cell.ruleset, cell.version, cell.rule_id, cell.characteristic][cell.outcome].append(cell.group)
    sums: list[tuple[Cell, list[Cell]]] = []
    subsets: list[tuple[Cell, Cell]] = []
    wholes: dict[tuple[str, str, str, str], list[Cell]] = defaultdict(list)
    for (ruleset, version, rule_id, characteristic), outcomes in blocks.items():

        def at(group: str, outcome: str, rule: str = rule_id) -> Cell:
            return Cell(ruleset, version, rule, characteristic, group, outcome)  # noqa: B023 (used at once)

        for outcome, names in outcomes.items():
            sums.append((at(WHOLE, outcome), [at(g, outcome) for g in sorted(names)]))
            wholes[ruleset, version, rule_id, outcome].append(at(WHOLE, outcome))
        for group in [WHOLE, *sorted(outcomes["flagged"])]:
            sums.append((at(group, DISMISSED), [at(group, "acknowledged"), at(group, "snoozed")]))
            # Every pair along the chains, not only neighbours: a withheld cell between two shown ones
            # (dismissed <= flagged <= evaluated) is pinned when they are close.
            evaluated = at(group, "evaluated", ANY_FLAG)
            subsets.append((at(group, "flagged"), evaluated))
            for outcome in (DISMISSED, "acknowledged", "snoozed", "resolved"):
                subsets += [(at(group, outcome), at(group, "flagged")), (at(group, outcome), evaluated)]
            for outcome in ("acknowledged", "snoozed"):
                subsets.append((at(group, outcome), at(group, DISMISSED)))
    return sums, subsets, [same for same in wholes.values() if len(same) > 1]


def suppress(counts: Counts, threshold: int = MIN_CELL, withhold: Iterable[Cell] = ()) -> dict[Cell, int | None]:
    """Every cell of `complete(counts)`, None where withheld (see the module's docstring). `withhold`
    names cells to withhold as if small, for a relation this table does not know (e.g. diff's before
    and after); secondary suppression then protects them too."""
    check_threshold(threshold)
    full = complete(counts)
    hidden = {cell for cell, value in full.items() if value < threshold}
    hidden.update(cell for cell in withhold if cell in full)
    sums, subsets, same = _relations(full)

    # The relations that hold in these counts, for the ranges below (a subset whose counts say
    # otherwise counts something else, as in the docstring).
    pairs = [(child, parent) for child, parent in subsets if full[child] <= full[parent]]
    pairs += [(a, b) for cells in same for a in cells for b in cells if a != b and full[a] == full[b]]
    # No count passes its version's cases evaluated: the ranges start there, and a range cannot be
    # wider than that, so a version with fewer cases than the threshold asks no more than all of them.
    cases: dict[tuple[str, str], int] = defaultdict(int)
    for c, v in full.items():
        if c.rule_id == ANY_FLAG and c.group == WHOLE and c.outcome == "evaluated":
            cases[c.ruleset, c.version] = max(cases[c.ruleset, c.version], v)
    neighbours: dict[Cell, set[Cell]] = defaultdict(set)
    for total, parts in [*sums, *((parent, [child]) for child, parent in pairs)]:
        members = {total, *parts}
        for member in members:
            neighbours[member] |= members - {member}
    while True:
        _secondary(full, hidden, threshold, sums, subsets, same)
        narrow = sorted(
            c
            for c, (low, high) in _ranges(full, hidden, sums, pairs, cases).items()
            if high - low + 1 < min(threshold, cases[c.ruleset, c.version] + 1)
        )
        more = {nxt for cell in narrow if (nxt := _nearest_shown(cell, full, hidden, neighbours)) is not None}
        if not more:  # none narrow, or nothing shown left to widen them
            return {cell: (None if cell in hidden else value) for cell, value in full.items()}
        hidden |= more


def _secondary(
    full: Mapping[Cell, int],
    hidden: set[Cell],
    threshold: int,
    sums: list[tuple[Cell, list[Cell]]],
    subsets: list[tuple[Cell, Cell]],
    same: list[list[Cell]],
) -> None:
    """Withhold more until every relation holds safe (rules 1 to 4 of the module's docstring)."""

    def smallest(cells: Iterable[Cell]) -> Cell | None:
        shown = [cell for cell in cells if cell not in hidden]
        return min(shown, key=lambda cell: (full[cell], cell)) if shown else None

    changed = True
    while changed:
        changed = False
        for child, parent in subsets:
            if child not in hidden and parent not in hidden and 0 <= full[parent] - full[child] < threshold:
                hidden.add(child)
                changed = True
        for cells in same:
            if any(cell in hidden for cell in cells) and not all(cell in hidden for cell in cells):
                hidden.update(cells)
                changed = True
        for total, parts in sums:
            while True:
                withheld = [part for part in parts if part in hidden]
                if total in hidden:
                    safe = bool(withheld) or not parts
                else:
                    safe = not withheld or (len(withheld) >= 2 and sum(full[p] for p in withheld) >= threshold)
                if safe:
                    break
                nxt = smallest(parts)
                hidden.add(nxt if nxt is not None else total)
                changed = True


_UNBOUNDED = 10**15


def _ranges(
    full: Mapping[Cell, int],
    hidden: set[Cell],
    sums: list[tuple[Cell, list[Cell]]],
    pairs: list[tuple[Cell, Cell]],
    cases: Mapping[tuple[str, str], int],
) -> dict[Cell, tuple[int, int]]:
    """Each withheld cell's range as the shown cells bound it: counts are not negative, a part is no
    more than its whole, sums add up; bounds are propagated until none tightens. A range of fewer
    than `threshold` values gives too much away even where no subtraction pins the cell."""
    # Starting at the version's cases (not at infinity) keeps propagation round a cycle short.
    # (When that whole is itself withheld this knows more than a reader would: it errs towards
    # withholding more.)
    low = {c: (0 if c in hidden else v) for c, v in full.items()}
    high = {c: (cases.get((c.ruleset, c.version), _UNBOUNDED) if c in hidden else v) for c, v in full.items()}
    involved: dict[Cell, list[int]] = defaultdict(list)
    relations: list[tuple[Cell, list[Cell]]] = [*sums, *((parent, [child]) for child, parent in pairs)]
    exact = [True] * len(sums) + [False] * len(pairs)  # a sum is an equality; a pair only bounds
    for number, (total, parts) in enumerate(relations):
        for cell in (total, *parts):
            involved[cell].append(number)
    queue = list(range(len(relations)))
    queued = set(queue)
    moved: list[Cell] = []

    def tighten(cell: Cell, lo: int, hi: int) -> None:
        # Counts that break a relation (possible only from a faulty store) could tighten for ever.
        if (lo > low[cell] or hi < high[cell]) and max(low[cell], lo) <= min(high[cell], hi):
            low[cell], high[cell] = max(low[cell], lo), min(high[cell], hi)
            moved.append(cell)

    while queue:
        number = queue.pop()
        queued.discard(number)
        total, parts = relations[number]
        moved.clear()
        parts_low, parts_high = sum(low[p] for p in parts), sum(high[p] for p in parts)
        if exact[number]:
            tighten(total, parts_low, parts_high)
            for part in parts:
                tighten(part, low[total] - (parts_high - high[part]), high[total] - (parts_low - low[part]))
        else:
            (child,) = parts
            tighten(total, low[child], high[total])
            tighten(child, low[child], high[total])
        for cell in moved:
            for other in involved[cell]:
                if other not in queued:
                    queued.add(other)
                    queue.append(other)
    return {c: (low[c], high[c]) for c in hidden}


def _nearest_shown(
    cell: Cell, full: Mapping[Cell, int], hidden: set[Cell], neighbours: Mapping[Cell, set[Cell]]
) -> Cell | None:
    """The smallest shown cell in a relation with `cell`, or failing that with the cells related to
    it, and so on outwards: withholding it widens `cell`'s range."""
    seen, ring = {cell}, {cell}
    while ring:
        ring = {n for c in ring for n in neighbours.get(c, ())} - seen
        shown = [c for c in ring if c not in hidden]
        if shown:
            return min(shown, key=lambda c: (full[c], c))
        seen |= ring
    return None


# --- statistics ---------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for the proportion k/n (Wilson 1927; Agresti & Coull 1998)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n and n > 0, not k={k}, n={n}")
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_ratio(k: int, n: int, whole_k: int, whole_n: int, z: float = Z95) -> tuple[float, tuple[float, float]] | None:
    """The group's rate over the whole's, and the group's Wilson interval over the whole's rate;
    None when the whole's rate is 0 (no ratio)."""
    if whole_n <= 0 or whole_k <= 0 or n <= 0:
        return None
    whole = whole_k / whole_n
    low, high = wilson(k, n, z)
    return (k / n) / whole, (low / whole, high / whole)


def _times(ratio: float) -> str:
    return f"{ratio:.2f}".rstrip("0").rstrip(".") if ratio < 10 else f"{ratio:.0f}"


def reading(verb: str, ratio: float, interval: tuple[float, float], against: str = "the whole caseload") -> str:
    """A ratio in plain words: 'flagged 1.4 times as often as the whole caseload; the interval excludes 1'."""
    low, high = interval
    if round(ratio, 2) == 1:
        said = f"{verb} as often as {against}"
    elif ratio > 1:
        said = f"{verb} {_times(ratio)} times as often as {against}"
    elif ratio > 0:
        said = f"{verb} {_times(ratio)} times as often as {against} ({_times(1 / ratio)} times less often)"
    else:
        said = f"never {verb}, against {against}'s rate"
    if low > 1 or high < 1:
        return f"{said}; the interval excludes 1"
    return f"{said}; the interval includes 1, so the difference may be chance"


# --- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """numerator / denominator for one group, against the whole; None where withheld or undefined."""

    numerator: int | None
    denominator: int | None
    rate: float | None
    interval: tuple[float, float] | None
    ratio: float | None  # to the whole caseload's rate
    ratio_interval: tuple[float, float] | None
    reading: str

    @property
    def disparate(self) -> bool:
        """The ratio's interval excludes 1."""
        return self.ratio_interval is not None and (self.ratio_interval[0] > 1 or self.ratio_interval[1] < 1)


@dataclass(frozen=True)
class GroupRow:
    group: str  # WHOLE for the whole caseload
    evaluated: int | None
    flagged: int | None
    acknowledged: int | None
    snoozed: int | None
    resolved: int | None
    dismissed: int | None  # acknowledged + snoozed
    flag: Rate  # flagged / evaluated
    dismissal: Rate  # dismissed / flagged


@dataclass(frozen=True)
class Breakdown:
    """One rule (or any flag) by one characteristic: the whole, then each group."""

    characteristic: str
    whole: GroupRow
    groups: tuple[GroupRow, ...]


@dataclass(frozen=True)
class RuleReport:
    rule_id: str  # ANY_FLAG for all flags together
    breakdowns: tuple[Breakdown, ...]


@dataclass(frozen=True)
class VersionReport:
    ruleset: str
    version: str
    rules: tuple[RuleReport, ...]  # any flag first, then the rules by id


@dataclass(frozen=True)
class EqualityReport:
    threshold: int
    versions: tuple[VersionReport, ...]
    # Whether any flag was acknowledged, snoozed or resolved: a caseload file has no lifecycle, so
    # its report leaves the dismissal columns out.
    lifecycle: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rule(self, rule_id: str, ruleset: str | None = None) -> RuleReport:
        for version in self.versions:
            if ruleset in (None, version.ruleset):
                for rule in version.rules:
                    if rule.rule_id == rule_id:
                        return rule
        raise KeyError(rule_id)


SUPPRESSED = "withheld: a small number, or one a small number could be worked out from"


def _rate(verb: str, k: int | None, n: int | None, whole_k: int | None, whole_n: int | None, z: float) -> Rate:
    if k is None or n is None:
        return Rate(k, n, None, None, None, None, SUPPRESSED)
    if n == 0:
        return Rate(k, n, None, None, None, None, "no cases")
    interval = wilson(k, n, z)
    if whole_k is None or whole_n is None:
        return Rate(k, n, k / n, interval, None, None, "the whole caseload's rate is withheld")
    ratio = rate_ratio(k, n, whole_k, whole_n, z)
    if ratio is None:
        return Rate(k, n, k / n, interval, None, None, f"never {verb} in the whole caseload")
    return Rate(k, n, k / n, interval, ratio[0], ratio[1], reading(verb, ratio[0], ratio[1]))


def _whole_rate(verb: str, k: int | None, n: int | None, z: float) -> Rate:
    if k is None or n is None:
        return Rate(k, n, None, None, None, None, SUPPRESSED)
    if n == 0:
        return Rate(k, n, None, None, None, None, "no cases")
    low, high = wilson(k, n, z)
    said = f"the whole caseload: {k / n:.1%} {verb} (95% interval {low:.1%} to {high:.1%})"
    return Rate(k, n, k / n, (low, high), 1.0, None, said)


def group_order(group: str, characteristic: str = "") -> tuple[int, float, str]:
    """A characteristic's groups in its code list's order (the census order for ethnicity), deciles by
    number, other codes by name, "not recorded" last."""
    if group == NOT_RECORDED:
        return (3, 0.0, group)
    known = list(LABELS.get(characteristic, ()))
    if group in known:
        return (0, float(known.index(group)), group)
    try:
        return (1, float(group), group)
    except ValueError:
        return (2, 0.0, group)


def report(
    counts: Counts,
    threshold: int = MIN_CELL,
    *,
    rules: Mapping[tuple[str, str], Sequence[str]] | None = None,
    z: float = Z95,
    withhold: Iterable[Cell] = (),
) -> EqualityReport:
    """The suppressed report of these counts. `rules` names each (ruleset, version)'s rules, so a
    rule that never flagged still has its (empty) rows; otherwise the rules are those counted.
    `withhold`: as for suppress()."""
    if rules:
        counts = dict(counts)
        for cell in list(counts):
            for rule_id in rules.get((cell.ruleset, cell.version), ()):
                if cell.rule_id == ANY_FLAG and cell.outcome == "evaluated":
                    # A zero flagged cell makes the rule and its groups known to complete().
                    counts.setdefault(
                        Cell(cell.ruleset, cell.version, rule_id, cell.characteristic, cell.group, "flagged"), 0
                    )
    shown = suppress(counts, threshold, withhold)
    index: dict[tuple[str, str], dict[str, dict[str, set[str]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(set))
    )
    for cell in shown:
        if cell.group != WHOLE:
            index[cell.ruleset, cell.version][cell.rule_id][cell.characteristic].add(cell.group)

    def row(
        ruleset: str, version: str, rule_id: str, characteristic: str, group: str, whole: GroupRow | None
    ) -> GroupRow:
        def get(outcome: str, rule: str = rule_id) -> int | None:
            return shown[Cell(ruleset, version, rule, characteristic, group, outcome)]

        evaluated = get("evaluated", ANY_FLAG)
        flagged, dismissed = get("flagged"), get(DISMISSED)
        if whole is None:
            flag, dismissal = (
                _whole_rate("flagged", flagged, evaluated, z),
                _whole_rate("dismissed", dismissed, flagged, z),
            )
        else:
            flag = _rate("flagged", flagged, evaluated, whole.flagged, whole.evaluated, z)
            dismissal = _rate("dismissed", dismissed, flagged, whole.dismissed, whole.flagged, z)
        return GroupRow(
            group, evaluated, flagged, get("acknowledged"), get("snoozed"), get("resolved"), dismissed, flag, dismissal
        )

    versions = []
    for (ruleset, version), by_rule in sorted(index.items()):
        rule_reports = []
        for rule_id in sorted(by_rule, key=lambda r: (r != ANY_FLAG, r)):
            breakdowns = []
            for characteristic in sorted(by_rule[rule_id], key=_characteristic_order):
                whole = row(ruleset, version, rule_id, characteristic, WHOLE, None)
                groups = tuple(
                    row(ruleset, version, rule_id, characteristic, group, whole)
                    for group in sorted(by_rule[rule_id][characteristic], key=lambda g: group_order(g, characteristic))
                )
                breakdowns.append(Breakdown(characteristic, whole, groups))
            rule_reports.append(RuleReport(rule_id, tuple(breakdowns)))
        versions.append(VersionReport(ruleset, version, tuple(rule_reports)))
    lifecycle = any(value for c, value in counts.items() if c.outcome in ("acknowledged", "snoozed", "resolved"))
    return EqualityReport(threshold, tuple(versions), lifecycle)


def _characteristic_order(name: str) -> tuple[int, str]:
    return (CHARACTERISTICS.index(name) if name in CHARACTERISTICS else len(CHARACTERISTICS), name)

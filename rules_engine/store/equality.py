"""Equality monitoring counters as pure functions: the memory store runs them, the Redis Lua mirrors them.

The unit is the case, not the evaluation: each (rule, outcome) is counted once per case and ruleset
version, so a case evaluated every day counts once, and every rate is a share of distinct cases.
To know what it has counted, a case keeps a Marker per ruleset beside its flag lifecycle (erased
with it by delete_case): the version counted under, the case's groups, the (rule, outcome) pairs
counted. The counters themselves hold no case id: only (ruleset, version, rule, characteristic,
group, outcome) -> count.

What is counted, under each characteristic's group (case.equality.groups):
- `evaluated`, under ANY_FLAG only (every rule is evaluated for every case);
- `flagged`, under each rule the case's evaluation raised, and under ANY_FLAG for any;
- `acknowledged` or `snoozed`: the case's first dismissal of a flag counted as flagged (one or the
  other, never both, so dismissed = acknowledged + snoozed never exceeds flagged), and under
  ANY_FLAG at the case's first dismissal of any flag;
- `resolved`: a flag counted as flagged under the same version stopped holding; under ANY_FLAG
  at the first.
So each outcome's cell is at most the flagged cell, and flagged at most evaluated, for every group.

A ruleset's new version starts the case afresh (its rates are the new rules'). A characteristic
recorded later than the case was counted moves every one of its counts from its old group to the
new one; a call without the characteristic (NOT_RECORDED) keeps the group already recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from rules_engine.case.equality import CHARACTERISTICS, NOT_RECORDED, Groups

ANY_FLAG = "*"  # the rule id of all flags together (engine/equality.py's ANY_FLAG)
EVALUATED, FLAGGED, ACKNOWLEDGED, SNOOZED, RESOLVED = "evaluated", "flagged", "acknowledged", "snoozed", "resolved"
OUTCOMES = (EVALUATED, FLAGGED, ACKNOWLEDGED, SNOOZED, RESOLVED)

# A counter's key: ruleset, version, rule id, characteristic, group, outcome.
CellKey = tuple[str, str, str, str, str, str]
# A counted pair, "<rule id>/<outcome>" (neither holds a "/"): text, so a case's marker holds no
# object the garbage collector must follow, however many cases the memory store keeps.
Pair = str
# The memory store's counters: per (ruleset, version, groups) -> pair -> cases, the four
# characteristics' groups at once: one addition per counted pair instead of four, read out per
# characteristic by `marginals` (never handed out whole).
JointCounts = dict[tuple[str, str, Groups], Counter[Pair]]


def pair(rule_id: str, outcome: str) -> Pair:
    return f"{rule_id}/{outcome}"


_EVALUATED = pair(ANY_FLAG, EVALUATED)
_ANY_FLAGGED = pair(ANY_FLAG, FLAGGED)
_ANY_RESOLVED = pair(ANY_FLAG, RESOLVED)
_FLAGGED = f"/{FLAGGED}"
_RESOLVED = f"/{RESOLVED}"

# What has been counted for one case under one ruleset: (version, groups, counted pairs as the keys of
# a dict). A plain tuple of text and a dict of text, which the collector stops tracking (a named
# tuple or a frozenset it tracks for good): the memory store holds one per case and ruleset.
Marker = tuple[str, Groups, dict[Pair, None]]


class Counted(NamedTuple):
    """An event's effect: the marker after it; the pairs it adds one to, under the marker's version
    and groups; and, when the case moved group, the pairs it takes one from under `previous`."""

    marker: Marker | None
    added: list[Pair]
    new: list[str]  # the ANY_FLAG outcomes newly counted
    removed: list[Pair] = []
    previous: Groups | None = None


def merged_groups(held: Groups, given: Groups) -> Groups:
    """The case's groups: each one given, except NOT_RECORDED, which keeps the one held."""
    e, s, d, p = (g if g != NOT_RECORDED else h for h, g in zip(held, given, strict=True))
    return (e, s, d, p)


def unchanged(marker: Marker | None, version: str, groups: Groups, flagged: Sequence[str], resolved: int) -> bool:
    """True when an evaluation would count nothing new: the usual re-evaluation, checked cheaply."""
    if marker is None or marker[0] != version or marker[1] != groups or resolved:
        return False
    counted = marker[2]
    return all(rule_id + _FLAGGED in counted for rule_id in flagged)


def evaluated(
    marker: Marker | None, version: str, groups: Groups, flagged: Sequence[str], resolved: Sequence[str]
) -> Counted:
    """An evaluation under `version` of a case in `groups`: it raised `flagged` (each rule once)
    and stopped `resolved`."""
    if marker is None or marker[0] != version:
        # A case new to this version, the costly event: built straight, nothing to look up.
        now = groups if marker is None else merged_groups(marker[1], groups)
        if not flagged:
            return Counted((version, now, {_EVALUATED: None}), [_EVALUATED], [EVALUATED])
        fresh = [_EVALUATED, _ANY_FLAGGED, *[rule_id + _FLAGGED for rule_id in flagged]]
        return Counted((version, now, dict.fromkeys(fresh)), fresh, [EVALUATED, FLAGGED])
    held, counted = marker[1], marker[2]
    now = merged_groups(held, groups)
    pairs = []
    if flagged:
        pairs.append(_ANY_FLAGGED)
        pairs += [rule_id + _FLAGGED for rule_id in flagged]
    # Resolved only for a flag counted as flagged under this version (so resolved <= flagged).
    ended = [rule_id for rule_id in resolved if rule_id + _FLAGGED in counted]
    if ended:
        pairs.append(_ANY_RESOLVED)
        pairs += [rule_id + _RESOLVED for rule_id in ended]
    fresh = [p for p in dict.fromkeys(pairs) if p not in counted]
    new = [p.rsplit("/", 1)[1] for p in fresh if p.startswith(f"{ANY_FLAG}/")]
    if now == held:
        if not fresh:
            return Counted(marker, [], [])
        return Counted((version, now, {**counted, **dict.fromkeys(fresh)}), fresh, new)
    # The case moved group: every count it had moves from the old groups to the new ones.
    moved = sorted(counted)
    return Counted((version, now, {**counted, **dict.fromkeys(fresh)}), [*moved, *fresh], new, moved, held)


def dismissed(marker: Marker | None, rule_id: str, outcome: str) -> Counted:
    """A practitioner acknowledged (or snoozed) the case's flag of `rule_id`: counted at its first dismissal."""
    if outcome not in (ACKNOWLEDGED, SNOOZED):
        raise ValueError(f"not a dismissal: {outcome!r}")
    if marker is None or rule_id + _FLAGGED not in marker[2]:
        return Counted(marker, [], [])
    version, groups, counted = marker
    fresh = [
        pair(rule, outcome)
        for rule in (rule_id, ANY_FLAG)
        if pair(rule, ACKNOWLEDGED) not in counted and pair(rule, SNOOZED) not in counted
    ]
    new = [outcome] if pair(ANY_FLAG, outcome) in fresh else []
    return Counted((version, groups, {**counted, **dict.fromkeys(fresh)}), fresh, new)


def apply(counts: JointCounts, ruleset: str, counted: Counted) -> None:
    """Add an event's changes to the joint counters (a counter back at 0 is dropped)."""
    marker = counted.marker
    if marker is None or not counted.added:
        return
    key = (ruleset, marker[0], marker[1])
    bucket = counts.get(key)
    if bucket is None:
        bucket = counts[key] = Counter()
    bucket.update(counted.added)  # counted in C
    if counted.previous is not None:
        old_key = (ruleset, marker[0], counted.previous)
        old = counts[old_key]
        old.subtract(counted.removed)
        for p in counted.removed:
            if not old[p]:
                del old[p]
        if not old:
            del counts[old_key]


def marginals(counts: JointCounts) -> dict[CellKey, int]:
    """Joint counters as the counters by characteristic: each case under each of its four groups."""
    cells: dict[CellKey, int] = {}
    for (ruleset, version, groups), bucket in counts.items():
        for counted, n in bucket.items():
            rule_id, outcome = counted.rsplit("/", 1)
            for characteristic, group in zip(CHARACTERISTICS, groups, strict=True):
                key = (ruleset, version, rule_id, characteristic, group, outcome)
                cells[key] = cells.get(key, 0) + n
    return cells


# Counter fields in Redis: the key's parts joined by FIELD_SEPARATOR. No part holds one: ruleset
# names never do (lifecycle.check_ruleset), rule ids are lowercase letters, digits and hyphens,
# versions hex digits, groups codes, numbers or "not recorded".
FIELD_SEPARATOR = "/"


def cell_field(key: CellKey) -> str:
    return FIELD_SEPARATOR.join(key)


def cell_key(field: str) -> CellKey | None:
    """A counter field as its key; None for one that is not six parts."""
    parts = field.split(FIELD_SEPARATOR)
    if len(parts) != 6:
        return None
    ruleset, version, rule_id, characteristic, group, outcome = parts
    return (ruleset, version, rule_id, characteristic, group, outcome)

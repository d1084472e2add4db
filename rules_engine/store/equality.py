"""Equality monitoring counters as pure functions: the memory store runs them, the Redis Lua mirrors them.

The unit is the case, not the evaluation: each (rule, outcome) is counted once per case and ruleset
version, so a case evaluated every day counts once, and every rate is a share of distinct cases.
To know what it has counted, a case keeps a marker per ruleset beside its flag lifecycle (erased
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
# A counted pair is "<rule id>/<outcome>" (neither holds a "/" or a "|"), and what a case has counted
# is its signature, the pairs between bars: "|*/evaluated|*/flagged|r1/flagged|". Text only, so a
# case's marker holds nothing the garbage collector must follow, however many cases the memory
# store keeps, and one membership test is one substring search.
Signature = str
# The memory store's counters: per (ruleset, version, groups), how many cases have each signature.
# A case's event moves it from one signature to the next (one subtraction, one addition, whatever
# it counts), and `marginals` reads them out per characteristic: never handed out whole.
JointCounts = dict[tuple[str, str, Groups], Counter[Signature]]

_EVALUATED = f"{ANY_FLAG}/{EVALUATED}"
_ANY_FLAGGED = f"{ANY_FLAG}/{FLAGGED}"
_ANY_RESOLVED = f"{ANY_FLAG}/{RESOLVED}"
_FLAGGED = f"/{FLAGGED}"

# What has been counted for one case under one ruleset: the version, the groups, the signature, and
# the rules its last counted evaluation raised (so the usual re-evaluation is one comparison). A
# plain tuple of text, which the collector stops tracking: the memory store holds one per case.
Marker = tuple[str, Groups, Signature, tuple[str, ...]]


class Counted(NamedTuple):
    """An event's effect: the marker after it, the (groups, signature) the case leaves (None: it
    was not counted under this version) and the one it joins (None: nothing changes), and the
    ANY_FLAG outcomes newly counted."""

    marker: Marker | None
    before: tuple[Groups, Signature] | None
    after: tuple[Groups, Signature] | None
    new: list[str]


def merged_groups(held: Groups, given: Groups) -> Groups:
    """The case's groups: each one given, except NOT_RECORDED, which keeps the one held."""
    e, s, d, p = (g if g != NOT_RECORDED else h for h, g in zip(held, given, strict=True))
    return (e, s, d, p)


def has(signature: Signature, rule_id: str, outcome: str) -> bool:
    return f"|{rule_id}/{outcome}|" in signature


def unchanged(marker: Marker | None, version: str, groups: Groups, flagged: tuple[str, ...], resolved: int) -> bool:
    """True when an evaluation counts nothing new: the same version, groups and flags as the last
    one counted, none resolved. The usual re-evaluation, checked with a few comparisons."""
    return marker is not None and not resolved and marker[3] == flagged and marker[0] == version and marker[1] == groups


def evaluated(
    marker: Marker | None, version: str, groups: Groups, flagged: tuple[str, ...], resolved: Sequence[str]
) -> Counted:
    """An evaluation under `version` of a case in `groups`: it raised `flagged` (each rule once)
    and stopped `resolved`."""
    if marker is None or marker[0] != version:
        # A case new to this version, the costly event: one signature, built in one join.
        now = groups if marker is None else merged_groups(marker[1], groups)
        if flagged:
            signature = f"|{_EVALUATED}|{_ANY_FLAGGED}|{'/flagged|'.join(flagged)}/flagged|"
            new = [EVALUATED, FLAGGED]
        else:
            signature, new = f"|{_EVALUATED}|", [EVALUATED]
        return Counted((version, now, signature, flagged), None, (now, signature), new)
    held, signature = marker[1], marker[2]
    now = merged_groups(held, groups)
    pairs = []
    if flagged:
        pairs.append(_ANY_FLAGGED)
        pairs += [rule_id + _FLAGGED for rule_id in flagged]
    # Resolved only for a flag counted as flagged under this version (so resolved <= flagged).
    ended = [rule_id for rule_id in resolved if has(signature, rule_id, FLAGGED)]
    if ended:
        pairs.append(_ANY_RESOLVED)
        pairs += [f"{rule_id}/{RESOLVED}" for rule_id in ended]
    fresh = [p for p in dict.fromkeys(pairs) if f"|{p}|" not in signature]
    new = [p.rsplit("/", 1)[1] for p in fresh if p.startswith(f"{ANY_FLAG}/")]
    after = signature + "|".join(fresh) + "|" if fresh else signature
    changed = fresh or now != held
    return Counted(
        (version, now, after, flagged), (held, signature) if changed else None, (now, after) if changed else None, new
    )


def dismissed(marker: Marker | None, rule_id: str, outcome: str) -> Counted:
    """A practitioner acknowledged (or snoozed) the case's flag of `rule_id`: counted at its first dismissal."""
    if outcome not in (ACKNOWLEDGED, SNOOZED):
        raise ValueError(f"not a dismissal: {outcome!r}")
    if marker is None or not has(marker[2], rule_id, FLAGGED):
        return Counted(marker, None, None, [])
    version, groups, signature, flagged = marker
    fresh = [
        f"{rule}/{outcome}"
        for rule in (rule_id, ANY_FLAG)
        if not has(signature, rule, ACKNOWLEDGED) and not has(signature, rule, SNOOZED)
    ]
    if not fresh:
        return Counted(marker, None, None, [])
    after = signature + "|".join(fresh) + "|"
    new = [outcome] if f"{ANY_FLAG}/{outcome}" in fresh else []
    return Counted((version, groups, after, flagged), (groups, signature), (groups, after), new)


def apply(counts: JointCounts, ruleset: str, counted: Counted) -> None:
    """Move the case between signatures in the joint counters (a count back at 0 is dropped)."""
    marker = counted.marker
    if marker is None or counted.after is None:
        return
    version = marker[0]
    if counted.before is not None:
        key = (ruleset, version, counted.before[0])
        bucket = counts[key]
        left = bucket[counted.before[1]] - 1
        if left:
            bucket[counted.before[1]] = left
        else:
            del bucket[counted.before[1]]
            if not bucket:
                del counts[key]
    key = (ruleset, version, counted.after[0])
    joined = counts.get(key)
    if joined is None:
        joined = counts[key] = Counter()
    joined[counted.after[1]] += 1


def marginals(counts: JointCounts) -> dict[CellKey, int]:
    """Joint counters as the counters by characteristic: each case under each of its four groups."""
    cells: dict[CellKey, int] = {}
    for (ruleset, version, groups), bucket in counts.items():
        for signature, n in bucket.items():
            for counted in signature.strip("|").split("|"):
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

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

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from rules_engine.case.equality import CHARACTERISTICS, NOT_RECORDED, UNRECORDED, Groups

ANY_FLAG = "*"  # the rule id of all flags together (engine/equality.py's ANY_FLAG)
EVALUATED, FLAGGED, ACKNOWLEDGED, SNOOZED, RESOLVED = "evaluated", "flagged", "acknowledged", "snoozed", "resolved"
OUTCOMES = (EVALUATED, FLAGGED, ACKNOWLEDGED, SNOOZED, RESOLVED)

# A counter's key: ruleset, version, rule id, characteristic, group, outcome.
CellKey = tuple[str, str, str, str, str, str]
# (rule id, characteristic, group, outcome, +1 or -1): one change to one counter of the marker's version.
Change = tuple[str, str, str, str, int]


class Marker(NamedTuple):
    """What has been counted for one case under one ruleset."""

    version: str
    groups: Groups
    counted: frozenset[tuple[str, str]]  # (rule id, outcome)


class Counted(NamedTuple):
    """The marker after an event, the counter changes it makes, and the ANY_FLAG outcomes newly counted."""

    marker: Marker | None
    changes: list[Change]
    new: list[str]


def merged_groups(held: Groups, given: Groups) -> Groups:
    """The case's groups: each one given, except NOT_RECORDED, which keeps the one held."""
    e, s, d, p = (g if g != NOT_RECORDED else h for h, g in zip(held, given, strict=True))
    return (e, s, d, p)


def _add(groups: Groups, pairs: Iterable[tuple[str, str]], delta: int, changes: list[Change]) -> None:
    for rule_id, outcome in pairs:
        for characteristic, group in zip(CHARACTERISTICS, groups, strict=True):
            changes.append((rule_id, characteristic, group, outcome, delta))


def evaluated(
    marker: Marker | None, version: str, groups: Groups, flagged: Sequence[str], resolved: Sequence[str]
) -> Counted:
    """An evaluation under `version` of a case in `groups`: it raised `flagged` and stopped `resolved`."""
    held = marker.groups if marker is not None else UNRECORDED
    now = merged_groups(held, groups)
    changes: list[Change] = []
    if marker is None or marker.version != version:
        counted: set[tuple[str, str]] = set()
    else:
        counted = set(marker.counted)
        if now != held:
            # Each count moves from the old group to the new one, characteristic by characteristic.
            for characteristic, before, after in zip(CHARACTERISTICS, held, now, strict=True):
                if before != after:
                    for rule_id, outcome in sorted(counted):
                        changes.append((rule_id, characteristic, before, outcome, -1))
                        changes.append((rule_id, characteristic, after, outcome, 1))
    pairs = [(ANY_FLAG, EVALUATED)]
    if flagged:
        pairs.append((ANY_FLAG, FLAGGED))
        pairs += [(rule_id, FLAGGED) for rule_id in flagged]
    # Resolved only for a flag counted as flagged under this version (so resolved <= flagged).
    ended = [rule_id for rule_id in resolved if (rule_id, FLAGGED) in counted]
    if ended:
        pairs.append((ANY_FLAG, RESOLVED))
        pairs += [(rule_id, RESOLVED) for rule_id in ended]
    fresh = [pair for pair in dict.fromkeys(pairs) if pair not in counted]
    _add(now, fresh, 1, changes)
    counted.update(fresh)
    new = [outcome for rule_id, outcome in fresh if rule_id == ANY_FLAG]
    return Counted(Marker(version, now, frozenset(counted)), changes, new)


def dismissed(marker: Marker | None, rule_id: str, outcome: str) -> Counted:
    """A practitioner acknowledged (or snoozed) the case's flag of `rule_id`: counted at its first dismissal."""
    if outcome not in (ACKNOWLEDGED, SNOOZED):
        raise ValueError(f"not a dismissal: {outcome!r}")
    if marker is None or (rule_id, FLAGGED) not in marker.counted:
        return Counted(marker, [], [])
    counted = set(marker.counted)
    fresh = []
    for rule in (rule_id, ANY_FLAG):
        if (rule, ACKNOWLEDGED) not in counted and (rule, SNOOZED) not in counted:
            fresh.append((rule, outcome))
    changes: list[Change] = []
    _add(marker.groups, fresh, 1, changes)
    counted.update(fresh)
    new = [o for rule, o in fresh if rule == ANY_FLAG]
    return Counted(marker._replace(counted=frozenset(counted)), changes, new)


def apply(counts: dict[CellKey, int], ruleset: str, version: str, changes: Iterable[Change]) -> None:
    """Add the changes to the counters (a counter back at 0 is dropped)."""
    for rule_id, characteristic, group, outcome, delta in changes:
        key = (ruleset, version, rule_id, characteristic, group, outcome)
        value = counts.get(key, 0) + delta
        if value:
            counts[key] = value
        else:
            counts.pop(key, None)


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

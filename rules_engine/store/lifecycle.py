"""The flag lifecycle as pure functions: the memory store runs them, the Redis Lua script mirrors them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from rules_engine.case.facts import ID_RE
from rules_engine.errors import AcknowledgementError
from rules_engine.store.base import (
    Acknowledgement,
    DecisionFlag,
    FlagRecord,
    FlagState,
    FlagStates,
    Sighting,
)

# Pseudonymous ids as in facts.Id; a space or a long string is a name or free text, so refuse it.
_ID = ID_RE
_CODE = re.compile(r"[A-Z0-9_]{1,64}")  # with fullmatch: `$` would allow a final newline


def check_ruleset(ruleset: str) -> None:
    if not ruleset or "/" in ruleset:
        # The Redis flags hash keys records by "<ruleset>/<rule_id>".
        raise ValueError(f"ruleset name {ruleset!r} must be non-empty and contain no '/'")


def unique_sightings(raised: Sequence[Sighting]) -> list[Sighting]:
    """One sighting per rule, keeping the first position and the highest severity."""
    if len({s.rule_id for s in raised}) == len(raised):  # as an evaluation raises them: each rule once
        return list(raised)
    best: dict[str, Sighting] = {}
    for sighting in raised:
        held = best.get(sighting.rule_id)
        if held is None or sighting.severity > held.severity:
            best[sighting.rule_id] = sighting
    return list(best.values())


def seen(prev: FlagRecord | None, sighting: Sighting, ruleset: str, now: dt.datetime, cap: int) -> FlagRecord:
    """The record after an evaluation raised this flag again (or for the first time)."""
    if prev is None or prev.state is FlagState.RESOLVED:
        raised = (*(prev.raised if prev else ()), now)[-cap:]
        return FlagRecord(ruleset, sighting.rule_id, FlagState.NEW, sighting.severity, now, now, raised)
    ack = prev.acknowledgement
    if ack is None:
        state = FlagState.ONGOING
    elif sighting.severity > ack.severity or (ack.snooze_until is not None and now.date() >= ack.snooze_until):
        # The situation worsened or the snooze ran out: back in front of the practitioner.
        state, ack = FlagState.NEW, None
    else:
        state = FlagState.ACKNOWLEDGED if ack.snooze_until is None else FlagState.SNOOZED
    # Built directly rather than by _replace: this runs for every flag of every call.
    severity = sighting.severity
    return FlagRecord(prev.ruleset, prev.rule_id, state, severity, prev.first_raised, now, prev.raised, None, ack)


def resolved(prev: FlagRecord, now: dt.datetime) -> FlagRecord:
    """The record of a flag that stopped holding; its acknowledgement ends with the episode."""
    return prev._replace(state=FlagState.RESOLVED, resolved_at=now, acknowledgement=None)


def check_acknowledgement(practitioner_id: str, reason_code: str, snooze_until: dt.date | None, today: dt.date) -> None:
    if not _ID.fullmatch(practitioner_id):
        raise AcknowledgementError("practitioner_id must be a pseudonymous id (letters, digits, ._:/@-)")
    if not _CODE.fullmatch(reason_code):
        raise AcknowledgementError("reason_code must be a code (A-Z, 0-9, _), not free text")
    if snooze_until is not None and snooze_until <= today:
        raise AcknowledgementError(f"snooze_until {snooze_until} must be after today ({today})")


def acknowledged(
    prev: FlagRecord, practitioner_id: str, reason_code: str, snooze_until: dt.date | None, now: dt.datetime
) -> FlagRecord:
    ack = Acknowledgement(practitioner_id, reason_code, now, prev.severity, snooze_until)
    state = FlagState.ACKNOWLEDGED if snooze_until is None else FlagState.SNOOZED
    return prev._replace(state=state, acknowledgement=ack)


def decision_flags(states: FlagStates) -> tuple[DecisionFlag, ...]:
    return tuple(DecisionFlag(r.rule_id, r.state, r.severity) for r in (*states.raised, *states.resolved))

"""Monthly replay of one case: evaluate at each month end and record when each flag is first raised."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from rules_engine import wire
from rules_engine.evaluator import Outcome, PreparedRuleset
from rules_engine.facts import Case
from rules_engine.synth import CaseJson


def month_ends(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    year, month = first.year, first.month
    while True:
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        end = following - dt.timedelta(days=1)
        if end > last:
            return
        yield end
        year, month = following.year, following.month


def build(document: CaseJson, today: dt.date) -> Case:
    return wire.case_from_proto(wire.case_from_json(document), today=today)


def replay(prepared: PreparedRuleset, case: Case, first: dt.date, last: dt.date) -> Iterator[tuple[dt.date, Outcome]]:
    for as_of in month_ends(first, last):
        yield as_of, prepared.evaluate(case, as_of)

"""Time requests.case_model_from_proto (a request's case validated into facts.Case, every bad field
named: what the fast path falls back to) in microseconds per call.

    python benchmarks/case_conversion.py [--facts 200] [--case examples/case.json]

Without --case it builds a synthetic case of about --facts facts over eight fact types,
conferences with two agencies each. MessageToDict is timed beside it for comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import timeit
from pathlib import Path

from google.protobuf import json_format

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.case import facts
from rules_engine.service import requests


def synthetic_case(size: int) -> case_pb2.Case:
    case = case_pb2.Case(case_id="case-1", child=case_pb2.Child(birth_date="2015-04-01"))
    for i in range(size // 8):
        day = f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}"
        case.concerns.add(id=f"c{i}", date=day, agency="POLICE", category="NEGLECT", household_member_ids=["h1"])
        case.referrals.add(id=f"r{i}", date=day, source="1A", decided_on=day, primary_need="N1")
        case.assessments.add(id=f"a{i}", date=day, completed_on=day, factors=["1B", "3B"], child_seen=True)
        case.visits.add(id=f"v{i}", date=day, child_seen=True, seen_alone=True)
        conference = case.conferences.add(id=f"k{i}", date=day, kind=case_pb2.CONFERENCE_KIND_REVIEW)
        conference.agencies.add(agency="POLICE", attended=True)
        conference.agencies.add(agency="GP", report_due_on=day)
        case.plans.add(id=f"p{i}", date=day, kind=case_pb2.PLAN_KIND_CHILD_PROTECTION, category="NEG")
        case.missed_appointments.add(id=f"m{i}", date=day, agency="GP")
        case.household_members.add(id=f"h{i}", date=day, relationship="MOTHER")
    return case


def best_microseconds(call: object, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=7)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=int, default=200)
    parser.add_argument("--case", type=Path, help="proto3 JSON of a Case instead of the synthetic one")
    parser.add_argument("-n", "--number", type=int, default=500)
    options = parser.parse_args()

    if options.case:
        document = json.loads(options.case.read_text())
        document = document.get("case", document)
        document.pop("as_of", None)
        case = requests.case_from_json(document)
    else:
        case = synthetic_case(options.facts)
    today = dt.date(2025, 7, 1)
    count = sum(len(getattr(case, name)) for name in facts.FACT_TYPES)
    ours = best_microseconds(lambda: requests.case_model_from_proto(case, today), options.number)
    to_dict = best_microseconds(
        lambda: json_format.MessageToDict(case, preserving_proto_field_name=True), options.number
    )
    print(f"{count} facts: case_from_proto {ours:.0f} us/call (MessageToDict alone: {to_dict:.0f} us/call)")


if __name__ == "__main__":
    main()

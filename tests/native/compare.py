"""Field-by-field comparison of two evaluation Outcomes, strict on types, and failure reports that
say which case, which day and which field.

`first_difference` walks dataclasses, named tuples, tuples, lists and dicts; values must have
the same type (1, 1.0 and True differ; so do a date and a datetime) and floats the same bits
(-0.0 is not 0.0, NaN equals NaN). Dict key order is not compared (no response depends on
the order of `measures` or `outcomes`); list and tuple order is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.engine.native import EncodedEvidence
from tests.native.cases import fact_count

# Cases of failures go here (one JSON file each), so the lead can replay them.
FAILURES = Path(os.environ.get("RULES_ENGINE_DIFF_FAILURES", Path(tempfile.gettempdir()) / "rules-engine-differential"))
SHOWN_JSON_CHARS = 6_000


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + f"... ({len(text)} characters)"


def first_difference(expected: Any, got: Any, path: str = "outcome") -> str | None:
    """The first place `got` differs from `expected`, as `path: expected ... got ...`; None when equal."""
    if isinstance(got, EncodedEvidence):  # the core's evidence: the items read back from its bytes
        got = got.items()
    if type(expected) is not type(got):
        return f"{path}: expected {type(expected).__name__} {_short(expected)}, got {type(got).__name__} {_short(got)}"
    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        for field in dataclasses.fields(expected):
            if not field.compare:
                continue
            found = first_difference(getattr(expected, field.name), getattr(got, field.name), f"{path}.{field.name}")
            if found:
                return found
        return None
    if isinstance(expected, tuple) and hasattr(expected, "_fields"):  # a named tuple
        for name in expected._fields:
            found = first_difference(getattr(expected, name), getattr(got, name), f"{path}.{name}")
            if found:
                return found
        return None
    if isinstance(expected, tuple | list):
        for i, (a, b) in enumerate(zip(expected, got, strict=False)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        if len(expected) != len(got):
            longer, shorter = (expected, got) if len(expected) > len(got) else (got, expected)
            extra = _short(longer[len(shorter)])
            which = "missing" if longer is expected else "extra"
            return f"{path}: expected {len(expected)} items, got {len(got)}; first {which}: {extra}"
        return None
    if isinstance(expected, dict):
        missing, extra = expected.keys() - got.keys(), got.keys() - expected.keys()
        if missing or extra:
            return f"{path}: keys missing {sorted(map(str, missing))}, extra {sorted(map(str, extra))}"
        for key in expected:
            found = first_difference(expected[key], got[key], f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(expected, float):
        return None if expected.hex() == got.hex() else f"{path}: expected {expected!r}, got {got!r}"
    if expected != got:
        return f"{path}: expected {_short(expected)}, got {_short(got)}"
    return None


def case_json(message: case_pb2.Case) -> str:
    return json_format.MessageToJson(message, indent=None, preserving_proto_field_name=False)


def save_case(message: case_pb2.Case, as_of: dt.date, today: dt.date) -> Path:
    """Write the case (proto3 JSON) with its as_of and today; the path, for the failure message."""
    text = case_json(message)
    FAILURES.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()[:16]
    path = FAILURES / f"case-{digest}-{as_of.isoformat()}.json"
    path.write_text(
        f'{{"asOf": "{as_of.isoformat()}", "today": "{today.isoformat()}", "case": {text}}}\n', encoding="utf-8"
    )
    return path


def report(
    what: str, label: str, ruleset: str, message: case_pb2.Case, as_of: dt.date, today: dt.date, detail: str
) -> str:
    """A failure message: what went wrong, where the case came from, the case itself, how to replay it."""
    path = save_case(message, as_of, today)
    text = case_json(message)
    shown = text if len(text) <= SHOWN_JSON_CHARS else text[:SHOWN_JSON_CHARS] + f" ... ({len(text)} characters)"
    return (
        f"{what}\n"
        f"  {detail}\n"
        f"  ruleset {ruleset}, as_of {as_of.isoformat()}, today {today.isoformat()}; case from {label}, "
        f"{fact_count(message)} facts\n"
        f"  case (proto3 JSON): {shown}\n"
        f"  whole case saved to {path}; replay it with\n"
        f"    .venv/bin/python -m tests.native.replay {path} {ruleset}"
    )

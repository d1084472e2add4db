"""The differential check: one case message, evaluated by the Python path and by another path
(the compiled core, or the Python path with the other matcher), must give the same Outcome.

The Python path is the reference: `requests.case_from_proto(message, today)` then
`PreparedRuleset.evaluate(case, as_of)`. The other path gets the message's deterministic
bytes and returns an Outcome, or None when it declines the input. A case the Python path
refuses (CaseError) must be declined; a case it accepts should not be (the decline rate is
counted, and bounded by the tests).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.case.dates import latest_date
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.engine.native import EncodedEvidence
from rules_engine.errors import CaseError
from rules_engine.service import requests
from rules_engine.service.responses import encode_flag
from tests.native.cases import Sample
from tests.native.compare import first_difference, report

# (ruleset name, message, its deterministic bytes, as_of, today) -> Outcome, or None (declined).
OtherPath = Callable[[str, case_pb2.Case, bytes, dt.date, dt.date], Any]


class _Failures(logging.Handler):
    """Keeps what evaluate_encoded logs when the core raises (it answers None then, as a decline)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_failures = _Failures()
logging.getLogger(PreparedRuleset.__module__).addHandler(_failures)


def compiled_path(prepared: Mapping[str, PreparedRuleset]) -> OtherPath:
    """The compiled core: `PreparedRuleset.evaluate_encoded(bytes, as_of, latest_date(today))`.

    evaluate_encoded turns an exception of the core into None (and a log line); here it is
    raised again, so a core that raises is never counted as declining."""

    def evaluate(name: str, message: case_pb2.Case, data: bytes, as_of: dt.date, today: dt.date) -> Any:
        _failures.records.clear()
        outcome = prepared[name].evaluate_encoded(data, as_of, latest_date(today))
        if _failures.records:
            record = _failures.records[0]
            trace = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
            raise RuntimeError(f"the compiled core raised (evaluate_encoded logged {record.getMessage()!r}):\n{trace}")
        return outcome

    return evaluate


def python_path(prepared: Mapping[str, PreparedRuleset]) -> OtherPath:
    """The Python path again (with other PreparedRulesets, e.g. the other matcher), from the bytes;
    a case it refuses reads as declined."""

    def evaluate(name: str, message: case_pb2.Case, data: bytes, as_of: dt.date, today: dt.date) -> Any:
        try:
            case = requests.case_from_proto(case_pb2.Case.FromString(data), today)
        except (CaseError, DecodeError):
            return None
        return prepared[name].evaluate(case, as_of)

    return evaluate


@dataclass
class Tally:
    """What one family contributed."""

    family: str
    other: str  # what the Python path was compared with
    digests: set[bytes] = field(default_factory=set)  # of the distinct valid case messages
    pairs: int = 0  # (valid message, as_of) pairs evaluated on every ruleset
    evaluations: int = 0  # (valid message, as_of, ruleset) triples
    compared: int = 0  # ... of which the other path answered, identically
    declined: int = 0  # ... of which it declined
    invalid: int = 0  # messages the Python path refused
    invalid_declined: int = 0  # (invalid message, as_of, ruleset) triples the other path declined, as it must
    notes: dict[str, int] = field(default_factory=dict)
    # (ruleset, rule id) of every rule seen raising a flag (or shadow flag), and seen undetermined.
    raised: set[tuple[str, str]] = field(default_factory=set)
    undetermined: set[tuple[str, str]] = field(default_factory=set)

    @property
    def messages(self) -> int:
        return len(self.digests)

    @property
    def decline_rate(self) -> float:
        return self.declined / self.evaluations if self.evaluations else 0.0

    def line(self) -> str:
        text = (
            f"{self.family} [{self.other}]: {self.messages} cases, {self.pairs} (case, as_of) pairs, "
            f"{self.evaluations} evaluations: {self.compared} identical, {self.declined} declined "
            f"({100 * self.decline_rate:.2f}%)"
        )
        if self.invalid:
            text += f"; {self.invalid} invalid cases, {self.invalid_declined} invalid evaluations declined"
        return text


# Every family's counts, in the order the tests ran: conftest prints them at the end of the run.
TALLIES: list[Tally] = []


def wire_difference(got: Any) -> str | None:
    """Where the bytes the compiled core wrote for a flag (its response payload but the
    lifecycle, in EncodedEvidence.wire) differ, byte for byte, from the response's own encoding of
    the flag's fields, items and pairs (first_difference holds those to the Python engine's); None
    on the Python path, which writes no bytes."""
    for flag in (*got.flags, *got.shadow_flags):
        if isinstance(flag.evidence, EncodedEvidence):
            expected = encode_flag(flag)
            if flag.evidence.wire != expected:
                return f"{flag.rule_id}'s bytes: {flag.evidence.wire!r} != {expected!r}"
    return None


def new_tally(family: str, other: str) -> Tally:
    tally = Tally(family, other)
    TALLIES.append(tally)
    return tally


class Differential:
    """Compares the Python path on `expected`'s rulesets with `other`, counting into `tally`."""

    def __init__(self, expected: Mapping[str, PreparedRuleset], other: OtherPath, tally: Tally) -> None:
        self.expected = expected
        self.other = other
        self.tally = tally

    def _other(self, name: str, label: str, message: case_pb2.Case, data: bytes, as_of: dt.date, today: dt.date) -> Any:
        try:
            return self.other(name, message, data, as_of, today)
        except Exception as exc:  # the other path must decline, never raise
            raise AssertionError(
                report(f"{self.tally.other} raised {exc!r}", label, name, message, as_of, today, "it must return None")
            ) from exc

    def valid(self, sample: Sample) -> None:
        """Every as_of, every ruleset: the same Outcome, field by field, or a decline (counted)."""
        message, today = sample.message, sample.today
        try:
            case = requests.case_from_proto(message, today)
        except CaseError as exc:
            raise AssertionError(
                report("the generator made an invalid case", sample.label, "-", message, today, today, str(exc))
            ) from exc
        self._compare(sample, case)

    def _compare(self, sample: Sample, case: Any) -> None:
        message, today = sample.message, sample.today
        data = message.SerializeToString(deterministic=True)
        tally = self.tally
        tally.digests.add(hashlib.sha256(data).digest())
        for as_of in sample.as_ofs:
            tally.pairs += 1
            for name, prepared in self.expected.items():
                expected = prepared.evaluate(case, as_of)
                tally.raised.update((name, f.rule_id) for f in (*expected.flags, *expected.shadow_flags))
                tally.undetermined.update((name, u.rule_id) for u in expected.undetermined)
                got = self._other(name, sample.label, message, data, as_of, today)
                tally.evaluations += 1
                if got is None:
                    tally.declined += 1
                    continue
                difference = first_difference(expected, got) or wire_difference(got)
                if difference is not None:
                    raise AssertionError(
                        report(
                            f"{tally.other} and the Python path differ",
                            sample.label,
                            name,
                            message,
                            as_of,
                            today,
                            f"first difference: {difference}\n"
                            f"  Python flags {[f.rule_id for f in expected.flags]}, "
                            f"{tally.other} flags {[f.rule_id for f in getattr(got, 'flags', ())]}",
                        )
                    )
                tally.compared += 1

    def any_case(self, sample: Sample, why: str = "") -> bool:
        """A case that may be invalid: refused by the Python path -> the other path must decline it
        on every ruleset and as_of; accepted -> compared as a valid case. True when it was refused."""
        message, today = sample.message, sample.today
        try:
            case = requests.case_from_proto(message, today)
        except CaseError as exc:
            refusal = exc
        else:
            self._compare(sample, case)
            return False
        self.tally.invalid += 1
        data = message.SerializeToString(deterministic=True)
        for as_of in sample.as_ofs:
            for name in self.expected:
                got = self._other(name, sample.label, message, data, as_of, today)
                if got is not None:
                    raise AssertionError(
                        report(
                            f"{self.tally.other} answered a case the Python path refuses",
                            f"{sample.label} ({why})" if why else sample.label,
                            name,
                            message,
                            as_of,
                            today,
                            f"Python: {refusal}; {self.tally.other} returned {type(got).__name__}, not None",
                        )
                    )
                self.tally.invalid_declined += 1
        return True

    def undecodable(self, label: str, data: bytes, today: dt.date, as_of: dt.date) -> None:
        """Bytes that are not a Case message: the other path must decline them on every ruleset."""
        for name in self.expected:
            try:
                got = self.other(name, case_pb2.Case(), data, as_of, today)
            except Exception as exc:
                raise AssertionError(
                    f"{self.tally.other} raised {exc!r} on undecodable bytes {data!r} ({label})"
                ) from exc
            if got is not None:
                raise AssertionError(
                    f"{self.tally.other} answered undecodable bytes {data!r} ({label}), ruleset {name}"
                )
            self.tally.invalid_declined += 1

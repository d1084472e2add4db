"""The differential test (issue 18, item 2): the compiled core against the Python engine, the reference.

For each generated case and as_of, `PreparedRuleset.evaluate_encoded(bytes, as_of, latest)`
must give the Outcome `evaluate(requests.case_from_proto(message, today), as_of)` gives,
field by field and type by type (compare.first_difference): measures, rule outcomes, flags
and shadow flags with their explanations, measured values, thresholds, evidence and
contributing rules, and the undetermined rules. A case the Python path refuses (CaseError)
must be declined (None), never answered and never raised on. Valid cases may be declined
(the caller then takes the Python path) but at most 1% of evaluations.

Cases, on both bundled rulesets (safeguarding, starter): at least 10,000 distinct valid cases
and as many (case, as_of) pairs (test_totals). Hypothesis-generated cases (every fact type and
field, empty fields, ties, facts after as_of, long histories), each also as it stood on each
as_of, with its dates moved, its fact lists reversed, thinned and twinned; the slow-burn and
control life-course families at dates along each course (as it stood, and whole); the sized
cases of 0 to 2,000 facts and the named synthetic cases; the rulesets' own rule-test cases;
invalid cases of every kind the Python path checks; MAX_FACTS facts and one more; unknown
fields and damaged bytes (declines allowed there). The same machinery compares the Python
path with itself across the two matchers (durable-rules and the reference evaluator), which
needs no core.

Run alone (counts printed with -s; failures say the case, the as_of and the first
differing field, and save the case as JSON to replay with tests/native/replay.py):

    .venv/bin/pytest -s tests/native/test_differential.py

Without the core (RULES_ENGINE_NATIVE=0) the compiled-core tests skip; with the core missing
otherwise, they fail.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.tools import synth
from tests.native import cases
from tests.native.cases import TODAY, Sample
from tests.native.differential import TALLIES, Differential, Tally, compiled_path, new_tally, python_path

# How many of each: test_totals checks the sum (at least 10,000 distinct cases and (case, as_of) pairs).
HYPOTHESIS_EXAMPLES = 1_600
INVALID_EXAMPLES = 600
SLOW_BURN, CONTROLS, DAYS_PER_COURSE = 200, 200, 12
SEED = 18
MIN_CASES = 10_000
MAX_DECLINE_RATE = 0.01

SIZED_END = synth.LONG_TIMELINE_END  # the sized cases' as_of and today
COMPILED = "compiled core"
SELF = "Python path, reference matcher"


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,  # the same cases every run
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )


def _done(tally: Tally, started: float, rulesets: dict[str, PreparedRuleset] | None = None) -> None:
    print(f"\n{tally.line()} in {time.perf_counter() - started:.1f} s")
    if rulesets:
        every = {(name, rule.id) for name, prepared in rulesets.items() for rule in prepared.ruleset.rules}
        print(
            f"rules raising a flag: {len(tally.raised)} of {len(every)}; undetermined at least once: "
            f"{len(tally.undetermined)}; never raised: {sorted(every - tally.raised)}"
        )
    if tally.other == COMPILED:
        assert tally.decline_rate <= MAX_DECLINE_RATE, (
            f"the compiled core declined {tally.declined} of {tally.evaluations} valid evaluations "
            f"({100 * tally.decline_rate:.2f}%; at most {100 * MAX_DECLINE_RATE:.0f}%)"
        )


def drawn_case(drawn: tuple[case_pb2.Case, tuple[dt.date, ...]]) -> tuple[case_pb2.Case, dt.date, tuple[dt.date, ...]]:
    message, as_ofs = drawn
    return message, TODAY, as_ofs


def _life_courses() -> Iterator[Sample]:
    yield from cases.life_course_samples("slow-burn", SLOW_BURN, SEED, DAYS_PER_COURSE)
    yield from cases.life_course_samples("control", CONTROLS, SEED, DAYS_PER_COURSE)


def _rule_tests() -> Iterator[Sample]:
    for name in ("safeguarding", "starter"):
        yield from cases.rule_test_samples(name)


# --- the compiled core against the Python path ------------------------------------------------


def test_the_compiled_core_is_loaded_for_every_ruleset(
    core: object, durable: dict[str, PreparedRuleset], reference: dict[str, PreparedRuleset]
) -> None:
    missing = {
        f"{name} ({matcher})": getattr(prepared, "native_missing", "")
        for matcher, rulesets in (("durable", durable), ("reference", reference))
        for name, prepared in rulesets.items()
        if getattr(prepared, "native", None) is None
    }
    assert not missing, f"no compiled core for {missing}"


def test_generated_cases(core: object, durable: dict[str, PreparedRuleset]) -> None:
    started, tally = time.perf_counter(), new_tally("hypothesis", COMPILED)
    check = Differential(durable, compiled_path(durable), tally)

    @_settings(HYPOTHESIS_EXAMPLES)
    @given(cases.valid_cases())
    def run(drawn: tuple[case_pb2.Case, tuple[dt.date, ...]]) -> None:
        for sample in cases.variants("hypothesis (valid_cases)", *drawn_case(drawn)):
            check.valid(sample)

    run()
    _done(tally, started, durable)


def test_life_courses(core: object, durable: dict[str, PreparedRuleset]) -> None:
    started, tally = time.perf_counter(), new_tally("slow-burn and control life courses", COMPILED)
    check = Differential(durable, compiled_path(durable), tally)
    for sample in _life_courses():
        check.valid(sample)
    _done(tally, started, durable)


def test_sized_and_named_synthetic_cases(core: object, durable: dict[str, PreparedRuleset]) -> None:
    started, tally = time.perf_counter(), new_tally("sized (0-2,000 facts) and named synthetic cases", COMPILED)
    check = Differential(durable, compiled_path(durable), tally)
    for sample in cases.sized_samples():
        check.valid(sample)
    _done(tally, started, durable)


def test_rule_test_cases(core: object, reference: dict[str, PreparedRuleset]) -> None:
    """The rulesets' own rule tests sit at thresholds; here with the reference matcher."""
    started, tally = time.perf_counter(), new_tally("rule-test cases (reference matcher)", COMPILED)
    check = Differential(reference, compiled_path(reference), tally)
    for sample in _rule_tests():
        check.valid(sample)
    _done(tally, started, reference)


def _invalid_run(check: Differential, examples: int, every_kind: bool = True) -> None:
    tally = check.tally

    @_settings(examples)
    @given(cases.valid_cases(), st.integers(0, 2**32 - 1))
    def run(drawn: tuple[case_pb2.Case, tuple[dt.date, ...]], seed: int) -> None:
        message, as_ofs = drawn
        # One or two mutations, chosen by the seed: hypothesis' own choices lean to the first of a list.
        rng = random.Random(seed)
        mutations = rng.sample(sorted(cases.INVALID_MUTATIONS), rng.choice([1, 1, 2]))
        done = [what for name in mutations if (what := cases.INVALID_MUTATIONS[name](message, rng))]
        if not done:
            return
        refused = check.any_case(
            Sample("hypothesis (valid_cases, broken)", message, TODAY, as_ofs[:2]), "; ".join(done)
        )
        if refused and len(mutations) == 1:
            tally.notes[mutations[0]] = tally.notes.get(mutations[0], 0) + 1

    run()
    if every_kind:  # every kind of mutation made cases the Python path refuses (the generator works)
        never = sorted(set(cases.INVALID_MUTATIONS) - set(tally.notes))
        assert not never, f"no case broken only by {never} was refused"


def test_invalid_cases_are_declined(core: object, durable: dict[str, PreparedRuleset]) -> None:
    started, tally = time.perf_counter(), new_tally("invalid cases", COMPILED)
    _invalid_run(Differential(durable, compiled_path(durable), tally), INVALID_EXAMPLES)
    print(f"\nrefused by the Python path, by the one mutation that broke them: {dict(sorted(tally.notes.items()))}")
    _done(tally, started)


def test_max_facts_is_compared_and_one_more_declined(core: object, reference: dict[str, PreparedRuleset]) -> None:
    started, tally = time.perf_counter(), new_tally("MAX_FACTS and MAX_FACTS + 1 facts", COMPILED)
    check = Differential(reference, compiled_path(reference), tally)
    check.valid(Sample("cases.too_many_facts(0)", cases.too_many_facts(0), TODAY, (TODAY,)))
    assert check.any_case(Sample("cases.too_many_facts(1)", cases.too_many_facts(1), TODAY, (TODAY,)))
    _done(tally, started)


def test_unknown_fields_are_answered_alike_or_declined(core: object, durable: dict[str, PreparedRuleset]) -> None:
    """A client's newer fields survive parsing and deterministic serialisation: the core skips
    them as the Python path does, or declines (not counted against it)."""
    started, tally = time.perf_counter(), new_tally("unknown fields (declines allowed)", COMPILED)
    check = Differential(durable, compiled_path(durable), tally)
    for sample in cases.with_unknown_fields(cases.sized_samples()):
        check.valid(sample)
    print(f"\n{tally.line()} in {time.perf_counter() - started:.1f} s")


def test_undecodable_bytes_are_declined(core: object, durable: dict[str, PreparedRuleset]) -> None:
    """Bytes Python cannot parse as a Case (cut short, flipped, bad UTF-8) are declined, never raised on;
    bytes it can parse are answered as the Python path answers the parsed message, or declined."""
    started, tally = time.perf_counter(), new_tally("damaged bytes (declines allowed)", COMPILED)
    check = Differential(durable, compiled_path(durable), tally)
    for label, data in cases.damaged_encodings(cases.sized_samples(), random.Random(SEED)):
        try:
            message = case_pb2.Case.FromString(data)
        except Exception:
            check.undecodable(label, data, SIZED_END, SIZED_END)
            continue
        if message.SerializeToString(deterministic=True) != data:
            continue  # parsed, but not as the service would hand it over (not the entry point's contract)
        check.any_case(Sample(label, message, SIZED_END, (SIZED_END,)))
    print(f"\n{tally.line()} in {time.perf_counter() - started:.1f} s")


# --- the Python path against itself: durable-rules against the reference evaluator -----------


def test_matchers_agree_on_generated_cases(
    durable: dict[str, PreparedRuleset], reference: dict[str, PreparedRuleset]
) -> None:
    started, tally = time.perf_counter(), new_tally("hypothesis", SELF)
    check = Differential(durable, python_path(reference), tally)

    @_settings(120)
    @given(cases.valid_cases())
    def run(drawn: tuple[case_pb2.Case, tuple[dt.date, ...]]) -> None:
        for sample in cases.variants("hypothesis (valid_cases)", *drawn_case(drawn)):
            check.valid(sample)

    run()
    _done(tally, started)
    assert tally.declined == 0


def test_matchers_agree_on_life_courses_sized_and_invalid_cases(
    durable: dict[str, PreparedRuleset], reference: dict[str, PreparedRuleset]
) -> None:
    started, tally = time.perf_counter(), new_tally("life courses, sized, rule-test and invalid cases", SELF)
    check = Differential(durable, python_path(reference), tally)
    for sample in [
        *cases.life_course_samples("slow-burn", 8, SEED + 1, 6),
        *cases.life_course_samples("control", 8, SEED + 1, 6),
        *cases.sized_samples(),
        *_rule_tests(),
    ]:
        check.valid(sample)
    _invalid_run(check, 60, every_kind=False)
    _done(tally, started)
    assert tally.declined == 0


# --- the totals --------------------------------------------------------------------------------

_COMPILED_FAMILIES = {
    "hypothesis",
    "slow-burn and control life courses",
    "sized (0-2,000 facts) and named synthetic cases",
    "rule-test cases (reference matcher)",
}


def test_totals() -> None:
    """At least 10,000 distinct cases and 10,000 (case, as_of) pairs compared, at most 1% of the
    evaluations declined, when every family of valid cases ran."""
    compiled = [t for t in TALLIES if t.other == COMPILED and t.family in _COMPILED_FAMILIES]
    if {t.family for t in compiled} != _COMPILED_FAMILIES:
        pytest.skip("not every family of valid cases ran against the compiled core in this run")
    distinct = len(set().union(*(t.digests for t in compiled)))
    pairs = sum(t.pairs for t in compiled)
    evaluations = sum(t.evaluations for t in compiled)
    declined = sum(t.declined for t in compiled)
    print(
        f"\ncompiled core: {distinct} distinct cases, {pairs} (case, as_of) pairs, {evaluations} evaluations, "
        f"{declined} declined"
    )
    assert distinct >= MIN_CASES
    assert pairs >= MIN_CASES
    assert declined <= MAX_DECLINE_RATE * evaluations

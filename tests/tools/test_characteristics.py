"""Synthetic children's equality characteristics: drawn from the cited national proportions, valid codes,
reproducible from the seed, and without changing a single fact the seed generated before."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter

from rules_engine.case.equality import DECILES, DISABILITIES, ETHNICITIES, SEXES
from rules_engine.service.requests import case_from_json, case_from_proto
from rules_engine.tools import characteristics, lifecourse, synth

AS_OF = dt.date(2025, 6, 30)
N = 10_000


def test_every_case_carries_valid_codes_which_validation_accepts() -> None:
    for _, case in synth.generate(200, 3, AS_OF):
        child = case["child"]
        assert child["ethnicity"] in ETHNICITIES and child["sex"] in SEXES
        assert child["disability"] in DISABILITIES and child["deprivationDecile"] in DECILES
        record = case_from_proto(case_from_json(case), AS_OF).child
        assert record.ethnicity == child["ethnicity"] and record.deprivation_decile == child["deprivationDecile"]


def test_shares_over_ten_thousand_cases_match_the_national_proportions() -> None:
    cases = [case for _, case in synth.generate(N, 1, AS_OF)]
    expected = {
        "ethnicity": characteristics.ethnicity_shares(),
        "sex": {k: v / sum(characteristics.SEXES.values()) for k, v in characteristics.SEXES.items()},
        "disability": {"YES": 49_170 / 389_260, "NO": 1 - 49_170 / 389_260},
        "deprivationDecile": {d: 0.1 for d in range(1, 11)},
    }
    for field, shares in expected.items():
        seen = Counter(case["child"][field] for case in cases)
        assert set(seen) <= set(shares)
        for code, share in shares.items():
            # Within 4.5 standard errors of the binomial share (no false alarm in any plausible run).
            tolerance = 4.5 * math.sqrt(share * (1 - share) / N)
            assert abs(seen[code] / N - share) <= tolerance, (field, code, seen[code] / N, share)


def test_the_published_counts_add_up_as_cited() -> None:
    assert sum(characteristics.BROAD_GROUPS.values()) == 389_260  # children in need at 31 March 2020
    assert sum(characteristics.SEXES.values()) == 389_250  # the release rounds each count to 10
    assert math.isclose(sum(characteristics.ethnicity_shares().values()), 1.0)
    assert not {"WIRT", "WROM"} & set(characteristics.ethnicity_shares())  # not in the 2006 return


def test_the_same_seed_gives_the_same_children_and_the_facts_are_unchanged() -> None:
    first = [case for _, case in synth.generate(50, 9, AS_OF)]
    assert first == [case for _, case in synth.generate(50, 9, AS_OF)]
    # The facts are what they were before the characteristics: the same as synthetic_case's alone.
    import random

    rng = random.Random(9)
    names = [k for k, _ in synth.KINDS]
    weights = [w for _, w in synth.KINDS]
    for i, case in enumerate(first):
        kind = rng.choices(names, weights)[0]
        plain = synth.synthetic_case(rng, kind, f"syn-9-{i:06d}", AS_OF)
        without = {**case, "child": {k: v for k, v in case["child"].items() if k == "birthDate"}}
        assert without == plain


def test_life_courses_carry_them_too() -> None:
    for family in ("slow-burn", "control"):
        for course in lifecourse.families(family, 5, 2):
            assert course.case["child"]["ethnicity"] in ETHNICITIES

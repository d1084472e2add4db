"""Seeded test caseloads whose children carry the equality fields, with one fact pattern (missed
appointments) more common in the most deprived deciles and every other fact drawn alike for all.

Only for tests of the equality report (tests/fixtures/equality/{biased,unbiased}); the bundled
synthetic caseloads are tools/synth.py's.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

from rules_engine.case.facts import Case
from rules_engine.tools.diff import case_from_line

AS_OF = dt.date(2025, 6, 30)
# Rough shares, enough for groups of every size (small ones are withheld in the report).
ETHNICITY = {
    **{"WBRI": 0.62, "WOTH": 0.07, "MWBC": 0.04, "APKN": 0.04, "AIND": 0.02, "BAFR": 0.05, "BCRB": 0.02},
    **{"AOTH": 0.03, "MOTH": 0.03, "OOTH": 0.03, "CHNE": 0.005, "WROM": 0.005, "NOBT": 0.02, "": 0.03},
}
SEX = {"1": 0.51, "2": 0.46, "0": 0.01, "9": 0.005, "": 0.015}
DISABILITY = {"YES": 0.12, "NO": 0.78, "NOT_KNOWN": 0.06, "": 0.04}
MOST_DEPRIVED = (1, 2, 3)  # deciles where missed appointments are more common
MISSED_RATE = {"most deprived": 1.2, "other": 0.6}  # appointments missed a year, Poisson means


def _pick(rng: random.Random, shares: dict[str, float]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def _poisson(rng: random.Random, mean: float) -> int:
    k, threshold, product = 0, pow(2.718281828459045, -mean), rng.random()
    while product > threshold:
        k += 1
        product *= rng.random()
    return k


def _day(rng: random.Random) -> str:
    return (AS_OF - dt.timedelta(days=rng.randint(0, 360))).isoformat()


def case_json(rng: random.Random, case_id: str) -> dict[str, Any]:
    child: dict[str, Any] = {"birthDate": (AS_OF - dt.timedelta(days=rng.randint(365, 17 * 365))).isoformat()}
    for name, shares in (("ethnicity", ETHNICITY), ("sex", SEX), ("disability", DISABILITY)):
        if code := _pick(rng, shares):
            child[name] = code
    decile = rng.randint(1, 10) if rng.random() > 0.05 else None
    if decile is not None:
        child["deprivationDecile"] = decile
    mean = MISSED_RATE["most deprived" if decile in MOST_DEPRIVED else "other"]
    missed = [{"id": f"m{i}", "date": _day(rng), "wasNotBrought": True} for i in range(_poisson(rng, mean))]
    concerns = [{"id": f"c{i}", "date": _day(rng), "agency": "POLICE"} for i in range(_poisson(rng, 1.5))]
    threats = [{"id": f"e{i}", "date": _day(rng), "kind": "THREAT_TO_STAFF"} for i in range(_poisson(rng, 0.3))]
    return {
        "caseId": case_id,
        "child": child,
        "concerns": concerns,
        "missedAppointments": missed,
        "engagementEvents": threats,
    }


def lines(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [json.dumps(case_json(rng, f"eq-{seed}-{i:05d}")) for i in range(count)]


def caseload(count: int, seed: int) -> list[Case]:
    return [case_from_line(line, AS_OF) for line in lines(count, seed)]

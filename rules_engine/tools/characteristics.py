"""The equality characteristics of synthetic children, drawn from published national proportions.

Every number behind the draw is here, with its source, so the synthetic caseloads (tools/synth.py,
the life courses) and the equality reports made over them can be traced to the statistics:

- Ethnicity and sex: Department for Education, "Characteristics of children in need", reporting year
  2020 (children in need at 31 March 2020, England), table A4 "Children in need by ethnicity, age and
  gender" (explore-education-statistics.service.gov.uk, data set 5254dbce-2013-4484-ba79-ed01075d44d4).
  Of 389,260 children: White 268,070; Mixed 32,940; Asian or Asian British 27,650; Black or Black
  British 32,260; other ethnic groups 12,870; the remaining 15,470 refused or not yet obtained. By
  gender: male 209,430; female 172,030; unknown or indeterminate 930; unborn 6,860.
- The codes within each broad group: the table gives broad groups only, so each is split as children
  looked after were at 31 March 2006 (SSDA903, the written answer in Hansard, HC Deb 2 May 2007,
  "Children in care"): White British 45,100, White Irish 450, any other White 1,600; White and Black
  Caribbean 1,900, White and Black African 420, White and Asian 730, any other mixed 2,000; Indian 300,
  Pakistani 610, Bangladeshi 270, any other Asian 870; Caribbean 1,600, African 2,400, any other Black
  920; Chinese 120, any other ethnic group 1,100. That return had no Traveller of Irish heritage or
  Gypsy/Roma code yet, so no synthetic child has WIRT or WROM. Those not recorded are drawn as NOBT
  (the table does not part refused from not yet obtained).
- Disability: the same release, table B2 "Children in need by recorded disability": 49,170 of the
  389,260 children in need at 31 March 2020 (12.6%) had a disability recorded; the rest are drawn as NO
  (the census does not record "not known").
- Deprivation decile: uniform over 1 to 10, which is how the English Indices of Deprivation 2019 are
  built (each decile holds a tenth of England's lower-layer super output areas). Children in need
  live far more often in the most deprived areas, so this is the index's shape, not the caseload's: a
  synthetic report finds no deprivation gradient it was not built with.

Each child's characteristics come from a random stream of its own, seeded by its case id, so adding
them changes none of the facts a seed generates, and a caseload is reproducible from its seed alone.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

# Children in need at 31 March 2020 by broad ethnic group (DfE table A4), the unknown as NOBT.
BROAD_GROUPS: dict[str, int] = {
    "White": 268_070,
    "Mixed": 32_940,
    "Asian": 27_650,
    "Black": 32_260,
    "Other": 12_870,
    "Not recorded": 15_470,
}
# Children looked after at 31 March 2006 by ethnic code within each broad group (SSDA903, Hansard).
WITHIN_GROUPS: dict[str, dict[str, int]] = {
    "White": {"WBRI": 45_100, "WIRI": 450, "WOTH": 1_600},
    "Mixed": {"MWBC": 1_900, "MWBA": 420, "MWAS": 730, "MOTH": 2_000},
    "Asian": {"AIND": 300, "APKN": 610, "ABAN": 270, "AOTH": 870},
    "Black": {"BCRB": 1_600, "BAFR": 2_400, "BOTH": 920},
    "Other": {"CHNE": 120, "OOTH": 1_100},
    "Not recorded": {"NOBT": 1},
}
# Children in need at 31 March 2020 by gender (DfE table A4), as the census's GenderCurrent codes:
# 1 male, 2 female, 9 indeterminate (the table's "unknown or indeterminate"), 0 not recorded or unborn.
SEXES: dict[str, int] = {"1": 209_430, "2": 172_030, "9": 930, "0": 6_860}
# Children in need at 31 March 2020 with a disability recorded (DfE table B2).
DISABLED, CHILDREN_IN_NEED = 49_170, 389_260
DECILES = range(1, 11)


def _shares(counts: Mapping[str, float]) -> tuple[list[str], list[float]]:
    total = sum(counts.values())
    return list(counts), [n / total for n in counts.values()]


def ethnicity_shares() -> dict[str, float]:
    """The share of each ethnicity code among synthetic children (broad share x share within)."""
    shares: dict[str, float] = {}
    broad_total = sum(BROAD_GROUPS.values())
    for group, count in BROAD_GROUPS.items():
        within = WITHIN_GROUPS[group]
        within_total = sum(within.values())
        for code, n in within.items():
            shares[code] = count / broad_total * n / within_total
    return shares


_ETHNICITY = _shares(ethnicity_shares())
_SEX = _shares(SEXES)


def draw(case_id: str) -> dict[str, Any]:
    """A child's characteristics in the proto3 JSON form of Child's fields, from its case id alone."""
    rng = random.Random(f"characteristics:{case_id}")
    return {
        "ethnicity": rng.choices(*_ETHNICITY)[0],
        "sex": rng.choices(*_SEX)[0],
        "disability": "YES" if rng.random() < DISABLED / CHILDREN_IN_NEED else "NO",
        "deprivationDecile": rng.choice(DECILES),
    }


def add_to(case: dict[str, Any]) -> dict[str, Any]:
    """The case (proto3 JSON) with its child's characteristics drawn and set; returned for chaining."""
    case.setdefault("child", {}).update(draw(case["caseId"]))
    return case

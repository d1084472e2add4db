"""The child's equality monitoring fields: their names, their groups, and their labels in reports.

Monitoring only (issue 20): the stores count cases in aggregate by these groups, and no rule may
read them (the policy compiler refuses any measure, filter or condition naming one). A case
without a field counts under NOT_RECORDED for that characteristic, so every case is counted once
under each characteristic and each characteristic's groups add up to the whole caseload.
engine/equality.py (the report) shares these names.
"""

from __future__ import annotations

import typing

from rules_engine.case.codes import DEPRIVATION_DECILES, Disability, Ethnicity, Sex
from rules_engine.case.facts import MEASURABLE_FACT_TYPES, ChildFacts

# The Child fields, in Child's order; each is also the characteristic's name in the counters.
CHARACTERISTICS = ("ethnicity", "sex", "disability", "deprivation_decile")
NOT_RECORDED = "not recorded"  # the group of a case whose child does not have the field

# Names no rule may read: the characteristics, and the child, which is not a fact type.
PROTECTED_NAMES = frozenset(CHARACTERISTICS)
CHILD = "child"

ETHNICITIES: frozenset[str] = frozenset(typing.get_args(Ethnicity))
SEXES: frozenset[str] = frozenset(typing.get_args(Sex))
DISABILITIES: frozenset[str] = frozenset(typing.get_args(Disability))
DECILES: frozenset[int] = frozenset(DEPRIVATION_DECILES)

Groups = tuple[str, str, str, str]  # one group per characteristic, in CHARACTERISTICS' order
UNRECORDED: Groups = (NOT_RECORDED, NOT_RECORDED, NOT_RECORDED, NOT_RECORDED)

# Plain words for reports, by characteristic and group (codes.py cites the code lists).
LABELS: dict[str, dict[str, str]] = {
    "ethnicity": {
        "WBRI": "White British",
        "WIRI": "White Irish",
        "WIRT": "Traveller of Irish heritage",
        "WOTH": "Any other White background",
        "WROM": "Gypsy/Roma",
        "MWBC": "White and Black Caribbean",
        "MWBA": "White and Black African",
        "MWAS": "White and Asian",
        "MOTH": "Any other mixed background",
        "AIND": "Indian",
        "APKN": "Pakistani",
        "ABAN": "Bangladeshi",
        "AOTH": "Any other Asian background",
        "BCRB": "Black Caribbean",
        "BAFR": "Black African",
        "BOTH": "Any other Black background",
        "CHNE": "Chinese",
        "OOTH": "Any other ethnic group",
        "REFU": "Refused",
        "NOBT": "Information not yet obtained",
    },
    "sex": {"0": "Not recorded or unborn", "1": "Male", "2": "Female", "9": "Indeterminate"},
    "disability": {"YES": "Disabled", "NO": "Not disabled", "NOT_KNOWN": "Not known"},
    "deprivation_decile": {
        **{str(d): f"Decile {d}" for d in DEPRIVATION_DECILES},
        "1": "Decile 1 (most deprived)",
        "10": "Decile 10 (least deprived)",
    },
}


def groups(child: ChildFacts) -> Groups:
    """The child's group under each characteristic: its code, or NOT_RECORDED."""
    decile = child.deprivation_decile
    return (
        child.ethnicity or NOT_RECORDED,
        child.sex or NOT_RECORDED,
        child.disability or NOT_RECORDED,
        NOT_RECORDED if decile is None else str(decile),
    )


def label(characteristic: str, group: str) -> str:
    """A group in plain words ('Female', 'Decile 1 (most deprived)'); the group itself when unknown."""
    return LABELS.get(characteristic, {}).get(group, group)


# No fact type may carry a field of the same name: a rule reads facts' fields, so one named like a
# characteristic would be a way round the compiler's refusal (and a confusing one).
for _name, _model in MEASURABLE_FACT_TYPES.items():
    if PROTECTED_NAMES & set(_model.model_fields) or _name == CHILD:
        raise RuntimeError(f"fact type {_name!r} has a field named like an equality characteristic")

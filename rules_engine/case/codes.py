"""Code lists for the coded fields of case facts (CIN census codes where they exist)."""

from __future__ import annotations

from typing import Literal

Agency = Literal[
    "CHILDRENS_SOCIAL_CARE",
    "POLICE",
    "HEALTH",
    "GP",
    "HEALTH_VISITOR",
    "MIDWIFERY",
    "SCHOOL_NURSE",
    "HOSPITAL",
    "MENTAL_HEALTH",
    "EDUCATION",
    "EARLY_YEARS",
    "HOUSING",
    "PROBATION",
    "YOUTH_JUSTICE",
    "ADULT_SOCIAL_CARE",
    "SUBSTANCE_MISUSE_SERVICE",
    "DOMESTIC_ABUSE_SERVICE",
    "EARLY_HELP",
    "VOLUNTARY_SECTOR",
    "LEGAL",
    "ANONYMOUS",
    "FAMILY_OR_PUBLIC",
    "OTHER",
]

ConcernCategory = Literal[
    "NEGLECT",
    "PHYSICAL_ABUSE",
    "EMOTIONAL_ABUSE",
    "SEXUAL_ABUSE",
    "DOMESTIC_ABUSE",
    "PARENTAL_MENTAL_HEALTH",
    "PARENTAL_SUBSTANCE_MISUSE",
    "MISSING_FROM_HOME",
    "EXPLOITATION",
    "SELF_HARM",
    "INJURY",
    "HOME_CONDITIONS",
    "SCHOOL_ABSENCE",
    "OTHER",
]

# CIN census referral sources (1A-10).
ReferralSource = Literal[
    "1A", "1B", "1C", "1D", "2A", "2B", "3A", "3B", "3C", "3D", "3E", "3F",
    "4", "5A", "5B", "5C", "5D", "6", "7", "8", "9", "10",
]  # fmt: skip

# CIN census primary need codes.
PrimaryNeed = Literal["N0", "N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8", "N9"]

# CIN census assessment factors: household factors 1-4 with A child, B parent or carer,
# C other household member; harm and other factors as in the census.
AssessmentFactor = Literal[
    "1A", "1B", "1C", "2A", "2B", "2C", "3A", "3B", "3C", "4A", "4B", "4C",
    "5A", "6A", "7A", "8B", "8C", "8D", "8E", "8F", "9A", "10A", "11A", "12A", "13A", "14A", "15A",
    "16A", "17A", "18B", "18C", "19B", "19C", "20", "21", "22A", "23A", "24A",
]  # fmt: skip

ConferenceKind = Literal["INITIAL", "REVIEW", "PRE_BIRTH", "TRANSFER_IN"]

PlanKind = Literal["EARLY_HELP", "CHILD_IN_NEED", "CHILD_PROTECTION", "LOOKED_AFTER"]

# CP plan categories.
PlanCategory = Literal["NEG", "PHY", "SAB", "EMO", "MUL"]

# Reasons for a change of worker (data-to-insight standard safeguarding dataset style).
WorkerChangeReason = Literal[
    "NEW_CASE",
    "PCCHAN",  # change requested by parent or carer
    "WORKER_LEFT",
    "TEAM_TRANSFER",
    "CASELOAD",
    "SICKNESS",
    "CONFLICT_OF_INTEREST",
    "OTHER",
]

EngagementKind = Literal[
    "THREAT_TO_STAFF",
    "REFUSED_ACCESS",
    "CANCELLED_VISIT",
    "COMPLAINT_ABOUT_WORKER",
    "DECLINED_SERVICE",
]

# CIN census closure reasons: RC1 adopted, RC2 died, RC3 child arrangements order, RC4 special
# guardianship order, RC5 moved to another local authority, RC6 to adult social care, RC7 services
# ceased (no longer in need), RC8 closed after assessment with no further action, RC9 to early help.
ClosureReason = Literal["RC1", "RC2", "RC3", "RC4", "RC5", "RC6", "RC7", "RC8", "RC9"]

RecordKind = Literal["CHRONOLOGY", "CASE_SUMMARY"]

Relationship = Literal[
    "MOTHER",
    "FATHER",
    "STEP_PARENT",
    "PARTNER_OF_PARENT",
    "SIBLING",
    "GRANDPARENT",
    "OTHER_RELATIVE",
    "LODGER",
    "OTHER_ADULT",
    "OTHER_CHILD",
]

# Who a concern is about: this child (the default), a sibling in the same sibling group, or
# the whole household. Concerns about a sibling are not the child's own.
ConcernSubject = Literal["CHILD", "SIBLING", "HOUSEHOLD"]

# A case transferred in from, or out to, another local authority.
TransferDirection = Literal["IN", "OUT"]

# --- equality monitoring only (issue 20): counted in aggregate, never read by a rule ---
# The DfE children in need census code lists, from the census's XML schema for 2024-25
# (CIN_schema_2024.xsd, as mirrored in github.com/SocialFinanceDigitalLabs/liia-tools,
# liiatools/cin_census_pipeline/spec/): ethnicitytype and gendertype.

# Ethnicity (the census's main ethnicity codes): WBRI White British, WIRI White Irish, WIRT Traveller
# of Irish heritage, WOTH any other White background, WROM Gypsy/Roma; MWBC White and Black
# Caribbean, MWBA White and Black African, MWAS White and Asian, MOTH any other mixed background;
# AIND Indian, APKN Pakistani, ABAN Bangladeshi, AOTH any other Asian background; BCRB Caribbean,
# BAFR African, BOTH any other Black background; CHNE Chinese; OOTH any other ethnic group;
# REFU refused; NOBT information not yet obtained.
Ethnicity = Literal[
    "WBRI", "WIRI", "WIRT", "WOTH", "WROM", "MWBC", "MWBA", "MWAS", "MOTH", "AIND",
    "APKN", "ABAN", "AOTH", "BCRB", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT",
]  # fmt: skip

# Sex (the census's GenderCurrent): 1 male, 2 female, 0 not recorded or unborn, 9 indeterminate.
Sex = Literal["0", "1", "2", "9"]

# Disability: yes, no, or not known. The census lists a child's disabilities by type (NONE, or
# MOB, HAND, PC, INC, COMM, LD, HEAR, VIS, BEH, CON, AUT, DDA); monitoring needs only whether
# the child has one: NONE is NO, any type is YES.
Disability = Literal["YES", "NO", "NOT_KNOWN"]

# The deprivation decile of the home area (English Indices of Deprivation, IMD decile of the
# lower-layer super output area: 1 the most deprived tenth of areas, 10 the least), 1 to 10.
DEPRIVATION_DECILES = range(1, 11)

"""The case's domain forms as types: pydantic models (validated) and named-tuple records (fast).

A request's case is validated into `Case` (every bad field named), or read straight into a
`CaseRecord` on the hot path; both read alike by attribute, and `CaseFacts` is either.
Fact records are named tuples generated from their models (`record_type`).
"""

from __future__ import annotations

import collections
import datetime as dt
import re
from typing import Annotated, Any, ClassVar, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rules_engine.case.codes import (
    Agency,
    AssessmentFactor,
    ClosureReason,
    ConcernCategory,
    ConcernSubject,
    ConferenceKind,
    Disability,
    EngagementKind,
    Ethnicity,
    PlanCategory,
    PlanKind,
    PrimaryNeed,
    RecordKind,
    ReferralSource,
    Relationship,
    Sex,
    TransferDirection,
    WorkerChangeReason,
)

# Pseudonymous ids: short, printable, no whitespace. Anything longer is not an id. Ids
# outside the case (case ids, practitioners, withdrawn facts) are checked with ID_RE.fullmatch:
# Python's `$` also matches before a final newline, so "abc\n" would pass `^...$` with .match
# (pydantic's regex engine, which checks ID_PATTERN, ends `$` at the end of the text).
ID_CHARACTERS = "A-Za-z0-9._:/@-"  # the inside of a regular expression's character class
ID_MAX_LENGTH = 128
ID_PATTERN = f"^[{ID_CHARACTERS}]+$"
ID_RE = re.compile(f"[{ID_CHARACTERS}]{{1,{ID_MAX_LENGTH}}}")
Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Fact(_Model):
    """A typed record about a case with its own id and date."""

    # Fields holding an end date; `end before start` is checked against `date`.
    end_fields: ClassVar[tuple[str, ...]] = ()

    id: Id
    date: dt.date


class Concern(Fact):
    agency: Agency
    category: ConcernCategory = "OTHER"
    significant_harm: bool = False
    household_member_ids: tuple[Id, ...] = ()
    # None: not recorded, which is not the same as not seen.
    child_seen: bool | None = None
    subject: ConcernSubject = "CHILD"
    # The sibling, when subject is SIBLING (not required: not every system records which one).
    subject_child_id: Id | None = None


class Referral(Fact):
    end_fields = ("decided_on",)
    source: ReferralSource | None = None
    decided_on: dt.date | None = None
    no_further_action: bool = False
    primary_need: PrimaryNeed | None = None
    # Not checked against the case's assessments: the assessment may arrive in a later call.
    assessment_id: Id | None = None


class Assessment(Fact):
    end_fields = ("completed_on",)
    completed_on: dt.date | None = None
    factors: tuple[AssessmentFactor, ...] = ()
    child_seen: bool = False


class StrategyDiscussion(Fact):
    agencies: tuple[Agency, ...] = ()
    section47_started: bool = False


class Section47Enquiry(Fact):
    end_fields = ("completed_on",)
    completed_on: dt.date | None = None
    conference_not_required: bool = False


class ConferenceAgency(_Model):
    agency: Agency
    invited: bool = True
    attended: bool = False
    report_due_on: dt.date | None = None
    report_received_on: dt.date | None = None


class Conference(Fact):
    kind: ConferenceKind
    agencies: tuple[ConferenceAgency, ...] = ()


class CoreGroup(Fact):
    agencies: tuple[Agency, ...] = ()


class Plan(Fact):
    end_fields = ("end_date",)
    kind: PlanKind
    end_date: dt.date | None = None
    category: PlanCategory | None = None


class Visit(Fact):
    child_seen: bool = False
    seen_alone: bool = False
    bedroom_seen: bool = False
    no_access: bool = False


class Allocation(Fact):
    end_fields = ("end_date",)
    worker_id: Id
    end_date: dt.date | None = None
    change_reason: WorkerChangeReason | None = None


class MissedAppointment(Fact):
    agency: Agency = "HEALTH"
    was_not_brought: bool = True


class SchoolAttendance(Fact):
    attendance_percent: float = Field(ge=0, le=100)
    missing_education: bool = False


class EngagementEvent(Fact):
    kind: EngagementKind


class Closure(Fact):
    reason: ClosureReason


class RecordUpdate(Fact):
    kind: RecordKind


class HouseholdMember(Fact):
    end_fields = ("end_date",)
    relationship: Relationship
    adult: bool = True
    checks_completed: bool = False
    engaged: bool = False
    end_date: dt.date | None = None


class RecordedFactor(Fact):
    """A parental or household factor (CIN census factor code) recorded outside an assessment."""

    end_fields = ("end_date",)
    factor: AssessmentFactor
    agency: Agency
    end_date: dt.date | None = None


class Appointment(Fact):
    """An appointment offered, attended or not: the denominator of a missed-appointment rate."""

    agency: Agency = "HEALTH"
    attended: bool = False
    was_not_brought: bool = False


class PlanReview(Fact):
    """A child-in-need or looked-after review (child protection reviews are conferences)."""

    plan_id: Id | None = None
    plan_kind: PlanKind


class Transfer(Fact):
    """The case moved in from, or out to, another local authority."""

    direction: TransferDirection
    history_received: bool = False


class ConferenceAgencyFact(Fact):
    """Derived: one agency's part in one conference (id `conference-id/AGENCY`, conference date)."""

    conference_id: Id
    conference_kind: ConferenceKind
    agency: Agency
    invited: bool
    attended: bool
    report_due_on: dt.date | None
    report_received_on: dt.date | None
    report_received: bool
    report_late: bool
    absent_without_report: bool


class Child(_Model):
    birth_date: dt.date | None = None
    # Equality monitoring only (case.equality): counted in aggregate by the stores, never read by
    # a rule (the policy compiler refuses any that names one). Codes in case.codes.
    ethnicity: Ethnicity | None = None
    sex: Sex | None = None
    disability: Disability | None = None
    deprivation_decile: Annotated[int, Field(ge=1, le=10)] | None = None


class Case(_Model):
    """One child's case: a pseudonymous id and its facts, by type."""

    case_id: Id
    child: Child = Child()
    concerns: tuple[Concern, ...] = ()
    referrals: tuple[Referral, ...] = ()
    assessments: tuple[Assessment, ...] = ()
    strategy_discussions: tuple[StrategyDiscussion, ...] = ()
    section47_enquiries: tuple[Section47Enquiry, ...] = ()
    conferences: tuple[Conference, ...] = ()
    core_groups: tuple[CoreGroup, ...] = ()
    plans: tuple[Plan, ...] = ()
    visits: tuple[Visit, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    missed_appointments: tuple[MissedAppointment, ...] = ()
    school_attendance: tuple[SchoolAttendance, ...] = ()
    engagement_events: tuple[EngagementEvent, ...] = ()
    closures: tuple[Closure, ...] = ()
    record_updates: tuple[RecordUpdate, ...] = ()
    household_members: tuple[HouseholdMember, ...] = ()
    recorded_factors: tuple[RecordedFactor, ...] = ()
    appointments: tuple[Appointment, ...] = ()
    plan_reviews: tuple[PlanReview, ...] = ()
    transfers: tuple[Transfer, ...] = ()


class FactRecord(Protocol):
    """A fact as its record: a named tuple with its model's fields and value types, generated
    from the model (`record_type`); typed here by what every fact has."""

    @property
    def id(self) -> str: ...

    @property
    def date(self) -> dt.date: ...

    def _asdict(self) -> dict[str, Any]: ...


class ChildRecord(NamedTuple):
    """A Child as a record."""

    birth_date: dt.date | None
    ethnicity: str | None = None
    sex: str | None = None
    disability: str | None = None
    deprivation_decile: int | None = None


class CaseRecord(NamedTuple):
    """A Case as a record: the hot path's form, read by attribute like the model, built far faster.

    The fields are Case's, in order (checked below): `records.of` builds it from a Case positionally.
    """

    case_id: str
    child: ChildRecord
    concerns: tuple[FactRecord, ...]
    referrals: tuple[FactRecord, ...]
    assessments: tuple[FactRecord, ...]
    strategy_discussions: tuple[FactRecord, ...]
    section47_enquiries: tuple[FactRecord, ...]
    conferences: tuple[FactRecord, ...]
    core_groups: tuple[FactRecord, ...]
    plans: tuple[FactRecord, ...]
    visits: tuple[FactRecord, ...]
    allocations: tuple[FactRecord, ...]
    missed_appointments: tuple[FactRecord, ...]
    school_attendance: tuple[FactRecord, ...]
    engagement_events: tuple[FactRecord, ...]
    closures: tuple[FactRecord, ...]
    record_updates: tuple[FactRecord, ...]
    household_members: tuple[FactRecord, ...]
    recorded_factors: tuple[FactRecord, ...]
    appointments: tuple[FactRecord, ...]
    plan_reviews: tuple[FactRecord, ...]
    transfers: tuple[FactRecord, ...]


if CaseRecord._fields != tuple(Case.model_fields) or ChildRecord._fields != tuple(Child.model_fields):
    raise RuntimeError("CaseRecord and ChildRecord must have the fields of Case and Child, in order")

# A case in either of its domain forms: what evaluation and the stores read, by attribute.
# (The proto form is read into one of these at the service edge.)
CaseFacts = Case | CaseRecord
ChildFacts = Child | ChildRecord


def record_type(model: type[BaseModel]) -> Any:
    """A named tuple with a model's fields in order: read like the model, built far faster."""
    return collections.namedtuple(f"{model.__name__}Record", list(model.model_fields))


# Derived facts are built per evaluation, as records rather than models.
ConferenceAgencyRecord = record_type(ConferenceAgencyFact)

# Fact types as sent by callers: Case field name -> model.
FACT_TYPES: dict[str, type[Fact]] = {
    "concerns": Concern,
    "referrals": Referral,
    "assessments": Assessment,
    "strategy_discussions": StrategyDiscussion,
    "section47_enquiries": Section47Enquiry,
    "conferences": Conference,
    "core_groups": CoreGroup,
    "plans": Plan,
    "visits": Visit,
    "allocations": Allocation,
    "missed_appointments": MissedAppointment,
    "school_attendance": SchoolAttendance,
    "engagement_events": EngagementEvent,
    "closures": Closure,
    "record_updates": RecordUpdate,
    "household_members": HouseholdMember,
    "recorded_factors": RecordedFactor,
    "appointments": Appointment,
    "plan_reviews": PlanReview,
    "transfers": Transfer,
}

# Fact types derived from nested records, available to measures like any other.
DERIVED_FACT_TYPES: dict[str, type[Fact]] = {"conference_agencies": ConferenceAgencyFact}

MEASURABLE_FACT_TYPES: dict[str, type[Fact]] = {**FACT_TYPES, **DERIVED_FACT_TYPES}


def conference_agency_facts(conference: Any) -> list[FactRecord]:
    """Flatten a conference (a model or its record) into one fact per agency, with attendance
    and report timing."""
    derived = []
    for part in conference.agencies:
        received = part.report_received_on is not None
        late = part.report_due_on is not None and (
            part.report_received_on is None or part.report_received_on > part.report_due_on
        )
        derived.append(
            ConferenceAgencyRecord(
                id=f"{conference.id}/{part.agency}",
                date=conference.date,
                conference_id=conference.id,
                conference_kind=conference.kind,
                agency=part.agency,
                invited=part.invited,
                attended=part.attended,
                report_due_on=part.report_due_on,
                report_received_on=part.report_received_on,
                report_received=received,
                report_late=late,
                absent_without_report=part.invited and not part.attended and not received,
            )
        )
    return derived


def facts_of(case: CaseFacts, fact_type: str) -> tuple[Fact | FactRecord, ...]:
    """The facts of one measurable type, derived types included."""
    if fact_type == "conference_agencies":
        return tuple(f for c in case.conferences for f in conference_agency_facts(c))
    result: tuple[Fact | FactRecord, ...] = getattr(case, fact_type)
    return result

"""Behaviour every CaseStore shares: run against the memory store and a real Redis alike."""

from __future__ import annotations

import datetime as dt

import pytest

from rules_engine.case import records
from rules_engine.case.facts import Child, Visit
from rules_engine.errors import AcknowledgementError, CaseChangedError, FlagNotFoundError
from rules_engine.policy.compiled import Severity
from rules_engine.store import CaseStore, DecisionFlag, FlagState, StoreSettings, case_digest
from tests.store.conftest import Clock
from tests.store.helpers import CASE, NOW, advance, big_case, case, concern, decision, flags

DAY = dt.timedelta(days=1)
HIGH, MEDIUM, CRITICAL = Severity.HIGH, Severity.MEDIUM, Severity.CRITICAL


# -- stored history -------------------------------------------------------------------------


def test_unknown_case_loads_as_none(store: CaseStore) -> None:
    assert store.load_case("nobody") is None
    assert store.chronology("nobody") == []
    assert store.retention_left("nobody") is None


def test_merge_is_idempotent_by_type_and_id(store: CaseStore) -> None:
    first = store.merge_facts(CASE, case(concern("a"), concern("b")), now=NOW)
    again = store.merge_facts(CASE, case(concern("a"), concern("b")), now=NOW)
    assert [c.id for c in again.concerns] == ["a", "b"]
    assert records.of(again) == records.of(first) == records.of(store.load_case(CASE))


def test_merge_keeps_history_and_adds_new_facts(store: CaseStore) -> None:
    store.merge_facts(CASE, case(concern("a", day=5)), now=NOW)
    merged = store.merge_facts(CASE, case(concern("b", day=2), visits=[Visit(id="a", date=NOW.date())]), now=NOW)
    # Ordered by date then id; the same id in another fact type is another fact.
    assert [c.id for c in merged.concerns] == ["b", "a"]
    assert [v.id for v in merged.visits] == ["a"]


def test_fact_sent_again_with_changes_replaces_the_old(store: CaseStore) -> None:
    store.merge_facts(CASE, case(concern("a", agency="POLICE")), now=NOW)
    merged = store.merge_facts(CASE, case(concern("a", agency="HEALTH", significant_harm=True)), now=NOW)
    assert len(merged.concerns) == 1
    assert merged.concerns[0].agency == "HEALTH" and merged.concerns[0].significant_harm


def test_withdrawn_facts_are_removed(store: CaseStore) -> None:
    store.merge_facts(CASE, case(concern("a"), concern("b")), now=NOW)
    merged = store.merge_facts(CASE, case(), withdrawn=[("concerns", "a"), ("concerns", "never-sent")], now=NOW)
    assert [c.id for c in merged.concerns] == ["b"]
    # Sent and withdrawn in one request: withdrawn wins.
    merged = store.merge_facts(CASE, case(concern("c")), withdrawn=[("concerns", "c")], now=NOW)
    assert [c.id for c in merged.concerns] == ["b"]


def test_child_replaced_only_when_incoming_has_data(store: CaseStore) -> None:
    born = Child(birth_date=dt.date(2016, 4, 1))
    store.merge_facts(CASE, case(child=born), now=NOW)
    assert records.of(store.merge_facts(CASE, case(concern("a")), now=NOW).child) == records.of(born)
    later = Child(birth_date=dt.date(2016, 4, 2))
    assert records.of(store.merge_facts(CASE, case(child=later), now=NOW).child) == records.of(later)


def test_a_200_fact_case_round_trips(store: CaseStore) -> None:
    big = big_case(200)
    merged = store.merge_facts(CASE, big, now=NOW)  # records from Redis, models from memory
    assert records.of(merged) == records.of(big)
    assert records.of(store.load_case(CASE)) == records.of(merged)


@pytest.mark.parametrize("settings", [StoreSettings(retention=dt.timedelta(seconds=1))])
def test_retention_is_refreshed_on_every_write(store: CaseStore, clock: Clock, settings: StoreSettings) -> None:
    store.merge_facts(CASE, case(concern("a")), now=NOW)
    left = store.retention_left(CASE)
    assert left is not None and dt.timedelta(seconds=0.8) < left <= dt.timedelta(seconds=1)
    advance(store, clock, 0.6)
    store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW)  # a write of flags refreshes the facts too
    left = store.retention_left(CASE)
    assert left is not None and left > dt.timedelta(seconds=0.7)
    advance(store, clock, 0.6)
    assert store.load_case(CASE) is not None  # 1.2 s after the first write, 0.6 s after the last
    advance(store, clock, 0.5)
    assert store.load_case(CASE) is None
    assert store.chronology(CASE) == []


# -- flag lifecycle -------------------------------------------------------------------------


def test_flag_lifecycle_new_ongoing_resolved_new(store: CaseStore) -> None:
    first = store.record_flags(CASE, "rs", flags(("R1", HIGH), ("R2", MEDIUM)), now=NOW)
    assert [(r.rule_id, r.state) for r in first.raised] == [("R1", FlagState.NEW), ("R2", FlagState.NEW)]
    assert first.new == ("R1", "R2") and first.resolved == ()

    second = store.record_flags(CASE, "rs", flags(("R1", HIGH), ("R2", MEDIUM)), now=NOW + DAY)
    assert [r.state for r in second.raised] == [FlagState.ONGOING, FlagState.ONGOING]
    assert second.raised[0].first_raised == NOW and second.raised[0].last_seen == NOW + DAY

    third = store.record_flags(CASE, "rs", flags(("R2", MEDIUM)), now=NOW + 2 * DAY)
    assert third.state_of("R2") is FlagState.ONGOING
    assert [(r.rule_id, r.state, r.resolved_at) for r in third.resolved] == [("R1", FlagState.RESOLVED, NOW + 2 * DAY)]
    # Resolved once is reported once.
    assert store.record_flags(CASE, "rs", flags(("R2", MEDIUM)), now=NOW + 3 * DAY).resolved == ()

    again = store.record_flags(CASE, "rs", flags(("R1", HIGH), ("R2", MEDIUM)), now=NOW + 4 * DAY)
    r1 = again.raised[0]
    assert r1.state is FlagState.NEW and r1.first_raised == NOW + 4 * DAY
    assert r1.raised == (NOW, NOW + 4 * DAY) and r1.resolved_at is None


def test_rulesets_keep_separate_flags(store: CaseStore) -> None:
    store.record_flags(CASE, "a", flags(("R1", HIGH)), now=NOW)
    other = store.record_flags(CASE, "b", flags(("R1", HIGH)), now=NOW)
    assert other.new == ("R1",) and other.resolved == ()
    # Evaluating ruleset a with nothing raised resolves only a's flag.
    assert [r.ruleset for r in store.record_flags(CASE, "a", [], now=NOW).resolved] == ["a"]


def test_the_same_rule_twice_in_one_call_counts_once_at_its_highest(store: CaseStore) -> None:
    states = store.record_flags(CASE, "rs", flags(("R1", MEDIUM), ("R1", HIGH)), now=NOW)
    assert [(r.rule_id, r.severity) for r in states.raised] == [("R1", HIGH)]


# -- acknowledge and snooze -----------------------------------------------------------------


def test_acknowledged_flag_is_not_new_until_its_severity_rises(store: CaseStore) -> None:
    store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW)
    record = store.acknowledge(CASE, "rs", "R1", practitioner_id="sw-042", reason_code="DISCUSSED", now=NOW)
    assert record.state is FlagState.ACKNOWLEDGED
    assert record.acknowledgement is not None and record.acknowledgement.practitioner_id == "sw-042"
    assert store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW + DAY).state_of("R1") is FlagState.ACKNOWLEDGED
    assert store.record_flags(CASE, "rs", flags(("R1", MEDIUM)), now=NOW + DAY).state_of("R1") is (
        FlagState.ACKNOWLEDGED
    )
    worse = store.record_flags(CASE, "rs", flags(("R1", CRITICAL)), now=NOW + 2 * DAY)
    assert worse.state_of("R1") is FlagState.NEW and worse.raised[0].acknowledgement is None
    assert store.record_flags(CASE, "rs", flags(("R1", CRITICAL)), now=NOW + 3 * DAY).state_of("R1") is (
        FlagState.ONGOING
    )


def test_snooze_hides_new_until_the_snooze_date(store: CaseStore) -> None:
    store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW)
    until = NOW.date() + 7 * DAY
    record = store.acknowledge(
        CASE,
        "rs",
        "R1",
        practitioner_id="sw-042",
        reason_code="AWAITING_CONFERENCE",
        snooze_until=until,
        now=NOW,
    )
    assert record.state is FlagState.SNOOZED
    assert record.acknowledgement is not None and record.acknowledgement.snooze_until == until
    for days in (1, 6):
        states = store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW + days * DAY)
        assert states.state_of("R1") is FlagState.SNOOZED and states.new == ()
    assert store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW + 7 * DAY).state_of("R1") is FlagState.NEW
    assert store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW + 8 * DAY).state_of("R1") is (FlagState.ONGOING)


def test_snooze_ends_when_severity_rises(store: CaseStore) -> None:
    store.record_flags(CASE, "rs", flags(("R1", MEDIUM)), now=NOW)
    store.acknowledge(
        CASE,
        "rs",
        "R1",
        practitioner_id="sw-1",
        reason_code="PLAN_IN_PLACE",
        snooze_until=NOW.date() + 30 * DAY,
        now=NOW,
    )
    assert store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW + DAY).state_of("R1") is FlagState.NEW


def test_resolution_ends_an_acknowledgement(store: CaseStore) -> None:
    store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW)
    store.acknowledge(
        CASE,
        "rs",
        "R1",
        practitioner_id="sw-1",
        reason_code="SEEN",
        snooze_until=NOW.date() + 9 * DAY,
        now=NOW,
    )
    store.record_flags(CASE, "rs", [], now=NOW + DAY)
    assert store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW + 2 * DAY).state_of("R1") is FlagState.NEW


def test_acknowledge_refuses_unknown_or_resolved_flags(store: CaseStore) -> None:
    with pytest.raises(FlagNotFoundError):
        store.acknowledge(CASE, "rs", "R9", practitioner_id="sw-1", reason_code="SEEN", now=NOW)
    store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW)
    store.record_flags(CASE, "rs", [], now=NOW)
    with pytest.raises(FlagNotFoundError):
        store.acknowledge(CASE, "rs", "R1", practitioner_id="sw-1", reason_code="SEEN", now=NOW)
    with pytest.raises(FlagNotFoundError):
        store.acknowledge(CASE, "other", "R1", practitioner_id="sw-1", reason_code="SEEN", now=NOW)


@pytest.mark.parametrize(
    ("practitioner_id", "reason_code", "snooze_days"),
    [
        ("Jane Smith", "SEEN", None),
        ("sw-1", "spoke to mum, fine", None),
        ("sw-1", "SEEN", 0),
        ("", "SEEN", None),
        ("sw-1\n", "SEEN", None),  # Python's `$` alone would let a final newline through
        ("sw-1", "SEEN\n", None),
    ],
)
def test_acknowledge_refuses_names_free_text_and_past_snoozes(
    store: CaseStore, practitioner_id: str, reason_code: str, snooze_days: int | None
) -> None:
    store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW)
    until = None if snooze_days is None else NOW.date() + snooze_days * DAY
    with pytest.raises(AcknowledgementError):
        store.acknowledge(
            CASE,
            "rs",
            "R1",
            practitioner_id=practitioner_id,
            reason_code=reason_code,
            snooze_until=until,
            now=NOW,
        )


# -- decision log ---------------------------------------------------------------------------


def test_record_evaluation_logs_the_decision_with_states(store: CaseStore) -> None:
    store.record_evaluation(CASE, "rs", flags(("R1", HIGH)), decision("d1"), now=NOW)
    states = store.record_evaluation(CASE, "rs", flags(("R2", MEDIUM)), decision("d2"), now=NOW + DAY)
    assert states.new == ("R2",)
    newest = store.decisions(CASE, limit=10)
    assert [d.decision_id for d in newest] == ["d2", "d1"]
    assert newest[0].flags == (
        DecisionFlag("R2", FlagState.NEW, MEDIUM),
        DecisionFlag("R1", FlagState.RESOLVED, HIGH),
    )
    assert newest[1].flags == (DecisionFlag("R1", FlagState.NEW, HIGH),)
    assert newest[1].ruleset == "safeguarding" and newest[1].ruleset_version == "abc123def456"
    assert newest[1].time == NOW and newest[1].input_digest == "0" * 64


def test_decisions_read_back_newest_first_by_case_and_overall(store: CaseStore) -> None:
    for i in range(5):
        store.append_decision(decision(f"a{i}", case_id="case-a"))
        store.append_decision(decision(f"b{i}", case_id="case-b"))
    assert [d.decision_id for d in store.decisions("case-a", limit=3)] == ["a4", "a3", "a2"]
    assert [d.decision_id for d in store.decisions(None, limit=3)] == ["b4", "a4", "b3"]
    assert store.decisions("case-c") == []


def test_empty_flag_list_round_trips(store: CaseStore) -> None:
    store.record_evaluation(CASE, "rs", [], decision("d1"), now=NOW)
    assert store.decisions(CASE)[0].flags == ()


@pytest.mark.parametrize("settings", [StoreSettings(decision_maxlen=100, case_decision_maxlen=100)])
def test_decision_log_is_bounded(store: CaseStore, settings: StoreSettings) -> None:
    for i in range(1_000):
        store.append_decision(decision(f"d{i}"))
    overall = store.decisions(None, limit=10_000)
    # Redis trims whole stream nodes (MAXLEN ~), so it keeps a little more than asked.
    assert 100 <= len(overall) <= 300
    assert overall[0].decision_id == "d999"
    assert 100 <= len(store.decisions(CASE, limit=10_000)) <= 300


@pytest.mark.parametrize("settings", [StoreSettings(decision_max_age=dt.timedelta(seconds=0.5))])
def test_decision_log_is_bounded_by_age(store: CaseStore, clock: Clock, settings: StoreSettings) -> None:
    store.append_decision(decision("old"))
    advance(store, clock, 0.6)
    store.append_decision(decision("new"))
    assert [d.decision_id for d in store.decisions(None)] == ["new"]


def test_case_digest_is_stable_and_hides_the_input() -> None:
    digest = case_digest(case(concern("a")))
    assert digest == case_digest(case(concern("a"))) != case_digest(case(concern("b")))
    assert len(digest) == 64 and "POLICE" not in digest


# -- chronology -----------------------------------------------------------------------------


def test_chronology_interleaves_facts_and_flags_oldest_first(store: CaseStore) -> None:
    store.merge_facts(
        CASE,
        case(
            concern("c2", day=20, agency="HEALTH"),
            concern("c1", day=3),
            visits=[Visit(id="v1", date=dt.date(2025, 1, 10))],
        ),
        now=NOW,
    )
    store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=dt.datetime(2025, 1, 10, 12, tzinfo=dt.UTC))
    store.record_flags(CASE, "rs", [], now=dt.datetime(2025, 1, 12, tzinfo=dt.UTC))
    store.record_flags(CASE, "rs", flags(("R1", CRITICAL)), now=dt.datetime(2025, 1, 25, tzinfo=dt.UTC))
    entries = [(e.date.day, e.kind, e.fact_type, e.fact_id, e.code) for e in store.chronology(CASE)]
    assert entries == [
        (3, "fact", "concerns", "c1", "POLICE"),
        (10, "fact", "visits", "v1", ""),
        (10, "flag_raised", "flag", "R1", "CRITICAL"),
        (20, "fact", "concerns", "c2", "HEALTH"),
        (25, "flag_raised", "flag", "R1", "CRITICAL"),
    ]


def test_record_refuses_a_stale_revision_and_returns_the_current_case(store: CaseStore) -> None:
    first = store.merge_case(CASE, case(concern("c1")), now=NOW)
    again = store.merge_case(CASE, case(concern("c1")), now=NOW)  # nothing changed
    newer = store.merge_case(CASE, case(concern("c2", 2)), now=NOW)

    assert again.revision == first.revision
    assert newer.revision == first.revision + 1
    with pytest.raises(CaseChangedError) as caught:
        store.record_evaluation(CASE, "rs", flags(("r1", Severity.LOW)), decision("d1"), NOW, revision=first.revision)
    assert caught.value.current.revision == newer.revision
    assert [c.id for c in caught.value.current.case.concerns] == ["c1", "c2"]
    assert store.decisions(CASE) == []  # nothing was written

    states = store.record_evaluation(
        CASE, "rs", flags(("r1", Severity.LOW)), decision("d2"), NOW, revision=newer.revision
    )
    assert states.new == ("r1",)


def test_facts_resent_as_records_are_not_a_change(store: CaseStore) -> None:
    big = big_case(50)
    first = store.merge_case(CASE, big, now=NOW)
    again = store.merge_case(CASE, records.of(big), now=NOW)  # what the servicer sends: records
    assert again.revision == first.revision
    assert records.of(again.case) == records.of(first.case) == records.of(big)
    changed = records.of(case(concern("new", 3)))
    assert store.merge_case(CASE, changed, now=NOW).revision == first.revision + 1


# -- forgetting a case ----------------------------------------------------------------------


def test_delete_case_forgets_facts_lifecycle_acknowledgements_and_index_but_not_the_log(store: CaseStore) -> None:
    store.merge_facts(CASE, case(concern("a"), concern("b"), child=Child(birth_date=dt.date(2016, 4, 1))), now=NOW)
    store.record_evaluation(CASE, "rs", flags(("R1", HIGH), ("R2", MEDIUM)), decision("d1"), NOW)
    store.acknowledge(CASE, "rs", "R1", practitioner_id="p-1", reason_code="SEEN", now=NOW)
    store.merge_facts("other", case(concern("x"), case_id="other"), now=NOW)
    store.record_evaluation("other", "rs", flags(("R1", HIGH)), decision("d2", "other"), NOW)

    deleted = store.delete_case(CASE)
    assert (deleted.facts, deleted.flags, deleted.decisions) == (3, 2, 1)  # two concerns and the child
    assert store.load_case(CASE) is None
    assert store.chronology(CASE) == []
    assert store.decisions(CASE) == []
    assert store.retention_left(CASE) is None
    # The shared log keeps ids and digests of both cases; the other case is untouched.
    assert [d.decision_id for d in store.decisions(None)] == ["d2", "d1"]
    assert [c.id for c in store.load_case("other").concerns] == ["x"]
    # Idempotent; and a case written again starts afresh (R1 is NEW, not acknowledged).
    assert tuple(store.delete_case(CASE)) == (0, 0, 0)
    assert store.record_flags(CASE, "rs", flags(("R1", HIGH)), now=NOW).new == ("R1",)


def test_an_evaluation_read_before_a_delete_and_a_recreate_cannot_commit(store: CaseStore) -> None:
    """Revisions never repeat for a case id across deletes: the recreated case, however many merges
    it takes to reach the old revision number, refuses a commit of the view read before the delete."""
    store.merge_facts(CASE, case(concern("a")), now=NOW)
    store.merge_facts(CASE, case(concern("b")), now=NOW)
    stale = store.read_merged(CASE, records.of(case(concern("c"))))
    assert stale.stored.revision == 2
    assert [c.id for c in stale.stored.case.concerns] == ["a", "b", "c"]

    store.delete_case(CASE)
    assert store.load_case(CASE) is None and store.retention_left(CASE) is None
    # Recreated by as many changing merges as the old case had.
    store.merge_facts(CASE, case(concern("x")), now=NOW)
    recreated = store.merge_case(CASE, records.of(case(concern("y"))), now=NOW)
    assert recreated.revision > stale.stored.revision  # not 2 again

    with pytest.raises(CaseChangedError):
        store.commit_evaluation(stale, "rs", flags(("R1", Severity.HIGH)), decision("stale"), NOW)
    assert [c.id for c in store.load_case(CASE).concerns] == ["x", "y"]  # no "a", "b" or "c" back
    assert store.decisions(CASE) == []
    with pytest.raises(CaseChangedError):  # the other guarded path too
        store.record_evaluation(CASE, "rs", flags(), decision("stale2"), NOW, revision=stale.stored.revision)
    assert "stale" not in {d.decision_id for d in store.decisions(None)}


def test_a_delete_right_after_a_read_refuses_the_commit_even_before_a_recreate(store: CaseStore) -> None:
    store.merge_facts(CASE, case(concern("a")), now=NOW)
    stale = store.read_merged(CASE, records.of(case(concern("a"))))
    store.delete_case(CASE)
    with pytest.raises(CaseChangedError):
        store.commit_evaluation(stale, "rs", flags(("R1", Severity.HIGH)), decision("stale"), NOW)
    assert store.load_case(CASE) is None and store.decisions(CASE) == []
    # A fresh read after the delete commits normally, and the case then exists again.
    fresh = store.read_merged(CASE, records.of(case(concern("a"))))
    store.commit_evaluation(fresh, "rs", flags(("R1", Severity.HIGH)), decision("fresh"), NOW)
    assert [c.id for c in store.load_case(CASE).concerns] == ["a"]
    assert [d.decision_id for d in store.decisions(CASE)] == ["fresh"]

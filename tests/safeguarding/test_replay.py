"""Replay: the case as it stood on a day, the steps, the first-fire history and `rules-engine replay`."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rules_engine.case.facts import (
    FACT_TYPES,
    Allocation,
    Assessment,
    Case,
    Concern,
    Conference,
    ConferenceAgency,
    Plan,
    Referral,
)
from rules_engine.engine.evaluator import PreparedRuleset
from rules_engine.service import requests
from rules_engine.tools.replay import Replay, as_it_stood, default_span, replay, replay_steps
from rules_engine.tools.replay import _shape as clearable
from rules_engine.tools.synth import LONG_TIMELINE_END, long_timeline_case

ROOT = Path(__file__).resolve().parents[2]
RULESETS = ROOT / "rulesets"
EXAMPLES = ROOT / "examples"
DAY = dt.date(2020, 6, 30)
LATER = dt.date(2020, 9, 1)
EARLIER = dt.date(2020, 1, 15)


def _case() -> Case:
    return Case(
        case_id="replay-1",
        concerns=(
            Concern(id="c1", date=EARLIER, agency="POLICE"),
            Concern(id="c2", date=DAY, agency="EDUCATION"),
            Concern(id="c3", date=LATER, agency="HEALTH"),
        ),
        assessments=(
            Assessment(id="a1", date=EARLIER, completed_on=dt.date(2020, 3, 1)),
            Assessment(id="a2", date=dt.date(2020, 5, 1), completed_on=LATER),
        ),
        referrals=(Referral(id="r1", date=EARLIER, decided_on=DAY + dt.timedelta(days=1)),),
        plans=(Plan(id="p1", date=EARLIER, kind="CHILD_PROTECTION", end_date=LATER),),
        allocations=(
            Allocation(id="w1", date=EARLIER, worker_id="sw1", end_date=DAY),
            Allocation(id="w2", date=DAY, worker_id="sw2"),
        ),
        conferences=(
            Conference(
                id="k1",
                date=dt.date(2020, 6, 1),
                kind="INITIAL",
                agencies=(
                    ConferenceAgency(agency="POLICE", attended=True, report_received_on=dt.date(2020, 5, 30)),
                    ConferenceAgency(agency="HEALTH", report_due_on=dt.date(2020, 5, 29), report_received_on=LATER),
                ),
            ),
        ),
    )


def test_as_it_stood_drops_later_facts_and_clears_later_dates() -> None:
    case = _case()
    then = as_it_stood(case, DAY)
    assert [c.id for c in then.concerns] == ["c1", "c2"]  # dated on the day: kept
    assert [a.completed_on for a in then.assessments] == [dt.date(2020, 3, 1), None]  # completed later: open
    assert then.referrals[0].decided_on is None  # decided the day after
    assert then.plans[0].end_date is None  # ended later: still running
    assert [a.end_date for a in then.allocations] == [DAY, None]  # ended on the day: kept
    police, health = then.conferences[0].agencies
    assert police.report_received_on == dt.date(2020, 5, 30)
    assert health.report_received_on is None and health.report_due_on == dt.date(2020, 5, 29)
    # Facts that did not change are the same objects; the original case is untouched.
    assert then.concerns[0] is case.concerns[0] and then.assessments[0] is case.assessments[0]
    assert case.assessments[1].completed_on == LATER


def test_as_it_stood_before_and_after_everything() -> None:
    case = _case()
    assert as_it_stood(case, LATER + dt.timedelta(days=1)) is case
    empty = as_it_stood(case, EARLIER - dt.timedelta(days=1))
    assert all(getattr(empty, name) == () for name in FACT_TYPES)


@pytest.mark.parametrize("name", sorted(FACT_TYPES))
def test_every_end_field_is_cleared(name: str) -> None:
    # Found from the annotations, so fact types added later are covered without a change.
    model = FACT_TYPES[name]
    dates, _ = clearable(model)
    assert "date" not in dates
    assert set(model.end_fields) <= set(dates)


def test_conference_agencies_are_walked() -> None:
    dates, nested = clearable(Conference)
    assert dates == () and nested == (("agencies", ConferenceAgency),)
    assert clearable(ConferenceAgency)[0] == ("report_due_on", "report_received_on")


def test_replay_steps() -> None:
    months = replay_steps(dt.date(2020, 1, 15), dt.date(2020, 4, 10), "month")
    assert months == [dt.date(2020, 1, 31), dt.date(2020, 2, 29), dt.date(2020, 3, 31), dt.date(2020, 4, 10)]
    assert replay_steps(dt.date(2020, 1, 1), dt.date(2020, 3, 31)) == [
        dt.date(2020, 1, 31),
        dt.date(2020, 2, 29),
        dt.date(2020, 3, 31),
    ]
    assert replay_steps(dt.date(2020, 12, 5), dt.date(2021, 1, 31))[0] == dt.date(2020, 12, 31)
    weeks = replay_steps(dt.date(2024, 1, 1), dt.date(2024, 1, 31), "week")  # 2024-01-01 is a Monday
    assert weeks == [dt.date(2024, 1, d) for d in (7, 14, 21, 28, 31)]
    assert all(d.weekday() == 6 for d in weeks[:-1])
    days = replay_steps(dt.date(2024, 2, 27), dt.date(2024, 3, 1), "day")
    assert days == [dt.date(2024, 2, 27), dt.date(2024, 2, 28), dt.date(2024, 2, 29), dt.date(2024, 3, 1)]
    assert replay_steps(DAY, DAY, "week") == [DAY]
    with pytest.raises(ValueError):
        replay_steps(LATER, DAY)
    with pytest.raises(ValueError):
        replay_steps(DAY, LATER, "year")  # type: ignore[arg-type]


def test_default_span() -> None:
    case = _case()
    assert default_span(case, today=dt.date(2025, 1, 1)) == (EARLIER, LATER)  # latest date: completions
    assert default_span(case, today=DAY) == (EARLIER, DAY)  # never past today
    assert default_span(Case(case_id="empty")) is None


def _long_case() -> Case:
    return requests.case_model_from_proto(requests.case_from_json(long_timeline_case()), LONG_TIMELINE_END)


@pytest.fixture(scope="module")
def long_replay(safeguarding: PreparedRuleset) -> Replay:
    case = _long_case()
    span = default_span(case)
    assert span is not None
    return replay(safeguarding, case, replay_steps(*span, "month"))


def test_replay_histories_agree_with_the_steps(long_replay: Replay) -> None:
    steps = long_replay.steps
    assert len(steps) > 200 and long_replay.rules
    index = {s.day: i for i, s in enumerate(steps)}
    for rule in long_replay.rules:
        live_at = [s.day for s in steps if rule.rule_id in s.live]
        assert rule.first_fired == live_at[0]
        assert rule.steps_live == len(live_at)
        for episode, following in zip(rule.episodes, [*rule.episodes[1:], None], strict=True):
            run = steps[index[episode.start] : index[episode.end] if episode.end else len(steps)]
            assert all(rule.rule_id in s.live for s in run) and len(run) == episode.steps
            if episode.end is not None:
                assert rule.rule_id not in steps[index[episode.end]].live
                assert following is None or following.start > episode.end
            else:
                assert following is None and rule.rule_id in steps[-1].live
    fired = {r for s in steps for r in s.live}
    assert fired == {r.rule_id for r in long_replay.rules}
    firsts = [r.first_fired for r in long_replay.rules]
    assert firsts == sorted(firsts)


def _run(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "rules_engine", "replay", *args, "--rulesets", str(RULESETS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return done, time.perf_counter() - started


def test_cli_on_the_long_timeline_prints_the_table_and_names_every_rule_in_the_plot(
    tmp_path: Path, long_replay: Replay
) -> None:
    case_file = tmp_path / "long.json"
    case_file.write_text(json.dumps(long_timeline_case()), encoding="utf-8")
    plot = tmp_path / "timeline.svg"
    done, seconds = _run(str(case_file), "--ruleset", "safeguarding", "--plot", str(plot))
    print(f"\nrules-engine replay on the 18-year case with --plot .svg: {seconds:.1f} s")
    assert done.returncode == 0, done.stderr
    fired = [r.rule_id for r in long_replay.rules]
    for rule in long_replay.rules:
        row = re.search(rf"{re.escape(rule.rule_id)}\b.*{rule.severity.name}.*{rule.first_fired}", done.stdout)
        assert row, rule.rule_id
    svg = plot.read_text(encoding="utf-8")
    assert svg.startswith("<svg")
    texts = set(re.findall(r"<text[^>]*>([^<]*)</text>", svg))
    assert not [r for r in fired if r not in texts], texts


def test_cli_writes_png_and_html_from_an_evaluate_request(tmp_path: Path) -> None:
    png, html = tmp_path / "timeline.png", tmp_path / "timeline.html"
    request = EXAMPLES / "evaluate-request.json"
    done, _ = _run(str(request), "--ruleset", "starter", "--step", "week", "--plot", str(png))
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "first fired" in done.stdout and "week steps" in done.stdout
    done, _ = _run(str(EXAMPLES / "case.json"), "--ruleset", "starter", "--to", "2025-06-30", "--plot", str(html))
    assert done.returncode == 0, done.stderr
    page = html.read_text(encoding="utf-8")
    assert "vega" in page and "worker-churn" in page


def test_cli_refuses_bad_options(tmp_path: Path) -> None:
    request = str(EXAMPLES / "case.json")
    for args in (
        ("--step", "year"),
        ("--plot", str(tmp_path / "x.pdf")),
        ("--from", "2025-13-01"),
        ("--from", "2025-06-01", "--to", "2025-01-01"),
    ):
        done, _ = _run(request, "--ruleset", "starter", *args)
        assert done.returncode == 2, (args, done.stdout)

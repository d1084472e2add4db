"""rules-engine fairness: counts over a caseload, the biased test ruleset found out, the unbiased one
not flagged beyond chance, the writers (terminal, Markdown, HTML with charts, JSON) and the service's JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rules_engine.case.equality import NOT_RECORDED
from rules_engine.cli.app import app
from rules_engine.engine.equality import ANY_FLAG, WHOLE, Cell, EqualityReport
from rules_engine.errors import RuleFileErrors
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.tools.diff import case_from_line, compare
from rules_engine.tools.fairness import CHANCE, count_caseload, equality_change, findings
from rules_engine.tools.fairness_report import Context, print_report, to_html, to_json, to_markdown
from rules_engine.tools.fairness_service import report_from_json
from tests.tools.equality_caseload import AS_OF, caseload, lines

FIXTURES = Path(__file__).parents[1] / "fixtures" / "equality"
BIASED, UNBIASED = FIXTURES / "biased", FIXTURES / "unbiased"
SEEDS = range(1, 11)
CASES = 2000


def test_the_test_rulesets_are_not_bundled() -> None:
    bundled = Path(__file__).parents[2] / "rulesets"
    names = {p.name for p in bundled.iterdir()}
    assert "biased" not in names and "unbiased" not in names
    assert not list(bundled.rglob("*biased*"))


def test_counts_over_a_small_caseload_are_exact() -> None:
    rows = [
        ({"ethnicity": "WBRI", "sex": "1", "deprivationDecile": 1}, 3),  # 3 missed: flagged
        ({"ethnicity": "WBRI", "sex": "2"}, 0),
        ({"sex": "2", "disability": "YES", "deprivationDecile": 1}, 2),  # flagged
    ]
    cases = []
    for number, (child, missed) in enumerate(rows):
        facts = [{"id": f"m{i}", "date": "2025-05-01", "wasNotBrought": True} for i in range(missed)]
        cases.append(
            case_from_line(json.dumps({"caseId": f"c{number}", "child": child, "missedAppointments": facts}), AS_OF)
        )
    tally = count_caseload(BIASED, cases, AS_OF)
    ((name, version),) = tally.rules
    assert name == "biased-test" and tally.rules[name, version] == ["missed-appointments"]

    def n(rule: str, characteristic: str, group: str, outcome: str) -> int:
        return tally.counts.get(Cell(name, version, rule, characteristic, group, outcome), 0)

    assert n(ANY_FLAG, "ethnicity", "WBRI", "evaluated") == 2
    assert n(ANY_FLAG, "ethnicity", NOT_RECORDED, "evaluated") == 1
    assert n(ANY_FLAG, "ethnicity", "WBRI", "flagged") == 1
    assert n("missed-appointments", "deprivation_decile", "1", "flagged") == 2
    assert n("missed-appointments", "deprivation_decile", NOT_RECORDED, "flagged") == 0
    assert n(ANY_FLAG, "disability", NOT_RECORDED, "evaluated") == 2
    assert n(ANY_FLAG, "sex", "2", "evaluated") == 2
    # Every characteristic splits the same three cases; no case id anywhere.
    for characteristic in ("ethnicity", "sex", "disability", "deprivation_decile"):
        total = sum(
            v for c, v in tally.counts.items() if c.characteristic == characteristic and c.outcome == "evaluated"
        )
        assert total == 3
    assert not any("c0" in str(c) for c in tally.counts)
    # Three cases: everything is withheld.
    built = tally.report()
    assert all(row.evaluated is None for b in built.rule(ANY_FLAG).breakdowns for row in (b.whole, *b.groups))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_biased_ruleset_is_found_out(seed: int) -> None:
    built = count_caseload(BIASED, caseload(CASES, seed), AS_OF).report()
    found, _ = findings(built)
    most_deprived = [
        f
        for f in found
        if f.rule_id == "missed-appointments" and f.characteristic == "deprivation_decile" and f.row.group == "1"
    ]
    assert len(most_deprived) == 1
    rate = most_deprived[0].rate
    assert rate.ratio is not None and rate.ratio > 1.4
    assert rate.ratio_interval is not None and rate.ratio_interval[0] > 1
    assert "times as often as the whole caseload; the interval excludes 1" in rate.reading


def _binomial_upper(n: int, p: float, quantile: float) -> int:
    """The smallest k with P(X <= k) >= quantile for X ~ Binomial(n, p)."""
    total = 0.0
    for k in range(n + 1):
        total += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if total >= quantile:
            return k
    return n


def test_the_unbiased_ruleset_is_not_flagged_beyond_chance() -> None:
    """Over ten seeded caseloads, pooled: the intervals that exclude 1 are no more than chance gives.

    "Beyond chance": with no real difference, each 95% interval excludes 1 with probability at most
    5% (somewhat less for large groups, whose interval is conservative); so the count of excluding
    intervals, out of all those shown, must not pass the 99th percentile of Binomial(shown, 0.05).
    The same rulesets' other characteristics, drawn apart from every fact, are held to the same."""
    excluding = shown = 0
    for seed in SEEDS:
        cases = caseload(CASES, seed)
        found, count = findings(count_caseload(UNBIASED, cases, AS_OF).report())
        excluding, shown = excluding + len(found), shown + count
        # The biased ruleset's rule over characteristics it has no proxy for.
        biased, _ = findings(count_caseload(BIASED, cases, AS_OF).report())
        assert not any(
            f.characteristic == "disability" and f.rule_id != ANY_FLAG and f.rate.ratio and f.rate.ratio > 2
            for f in biased
        )
    assert shown > 500
    assert excluding <= _binomial_upper(shown, CHANCE, 0.99), (excluding, shown)


def _sample() -> tuple[EqualityReport, Context]:
    tally = count_caseload(BIASED, caseload(CASES, 3), AS_OF)
    return tally.report(), Context("2,000 test cases", "rules-engine fairness --cases x", None, tally.titles)


def test_writers_show_the_same_numbers() -> None:
    built, context = _sample()
    decile1 = built.rule("missed-appointments").breakdowns[3].groups[0]
    assert decile1.group == "1" and decile1.flagged is not None
    markdown, page = to_markdown(built, context), to_html(built, context)
    for text in (markdown, page):
        assert f"{decile1.flagged:,}" in text
        assert decile1.flag.reading in text
        assert "Decile 1 (most deprived)" in text
        assert "withheld" in text
    document = json.loads(to_json(built, context))
    assert document["report"] == json.loads(json.dumps(built.to_dict()))
    console = Console(width=200, record=True)
    print_report(built, console, context)
    assert "missed-appointments" in console.export_text()


def test_html_draws_its_charts_inline_without_scripts_or_network() -> None:
    built, context = _sample()
    page = to_html(built, context)
    assert page.count("<svg") >= 4  # a chart per characteristic with a ratio shown
    assert "<script" not in page.lower()
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page


def _proto_json(value: Any) -> Any:
    """As proto3 JSON would carry the report: camelCase, absent where None, int64 as strings,
    intervals as messages."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            head, *rest = key.split("_")
            name = head + "".join(p.capitalize() for p in rest)
            if key in ("interval", "ratio_interval"):
                out[name] = {"low": item[0], "high": item[1]}
            else:
                out[name] = _proto_json(item)
        return out
    if isinstance(value, list | tuple):
        return [_proto_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def test_the_services_json_reads_back_as_the_same_report() -> None:
    built, _ = _sample()
    assert report_from_json(_proto_json(built.to_dict())) == built


def test_cli_writes_every_report_and_refuses_a_low_threshold(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(lines(600, 5)) + "\n", encoding="utf-8")
    runner = CliRunner()
    outputs = [tmp_path / f"report.{s}" for s in ("md", "html", "json")]
    args = ["fairness", "--cases", str(cases), "--rulesets", str(FIXTURES), "--as-of", AS_OF.isoformat()]
    result = runner.invoke(app, [*args, *(a for p in outputs for a in ("--report", str(p)))])
    assert result.exit_code == 0, result.output
    assert "All flags together, by ethnicity" in result.output
    assert all(p.exists() for p in outputs)
    assert "biased-test" in outputs[0].read_text(encoding="utf-8")
    assert runner.invoke(app, [*args, "--threshold", "9"]).exit_code == 2
    assert runner.invoke(app, [*args, "--report", str(tmp_path / "r.txt")]).exit_code == 2
    assert runner.invoke(app, ["fairness"]).exit_code == 2
    assert runner.invoke(app, [*args, "--ruleset", "nope"]).exit_code == 2
    higher = runner.invoke(app, [*args, "--threshold", "50", "--ruleset", "biased-test"])
    assert higher.exit_code == 0 and "cells under 50 withheld" in higher.output


def test_whole_row_is_shown_once_per_characteristic() -> None:
    built, _ = _sample()
    for breakdown in built.rule(ANY_FLAG).breakdowns:
        assert breakdown.whole.group == WHOLE
        assert breakdown.whole.evaluated == CASES


def _raised(tmp_path: Path) -> Path:
    head = tmp_path / "head" / "biased"
    head.mkdir(parents=True)
    text = (BIASED / "rules.yaml").read_text(encoding="utf-8").replace("missed_threshold: 2", "missed_threshold: 3")
    (head / "rules.yaml").write_text(text, encoding="utf-8")
    return head.parent


def test_a_rule_change_by_group(tmp_path: Path) -> None:
    cases = caseload(CASES, 4)
    impact = compare(BIASED, _raised(tmp_path), cases, AS_OF)
    change = equality_change(impact, cases)
    assert change.cases == CASES and change.recorded > 0.9 * CASES
    assert [r.rule_id for r in change.rules] == [ANY_FLAG, "missed-appointments"]
    deciles = change.rules[1].breakdowns[3]
    assert deciles.characteristic == "deprivation_decile"
    whole = deciles.whole
    assert whole.base.flagged == len(impact.changes[0].no_longer_flagged) + len(impact.changes[0].unchanged_flagged)
    assert whole.head.flagged == len(impact.changes[0].unchanged_flagged)
    most = deciles.groups[0]
    assert most.group == "1" and most.reading.startswith("flagged less often")
    # Before minus after is never a small number other than 0 for a group shown on both sides.
    for rule in change.rules:
        for breakdown in rule.breakdowns:
            for group in breakdown.groups:
                if group.base.flagged is not None and group.head.flagged is not None:
                    assert abs(group.base.flagged - group.head.flagged) in (0, *range(10, CASES))


def test_cli_diff_adds_the_equality_breakdown(tmp_path: Path) -> None:
    corpus = tmp_path / "cases.jsonl"
    corpus.write_text("\n".join(lines(800, 6)) + "\n", encoding="utf-8")
    report = tmp_path / "impact.md"
    args = ["diff", "--base", str(BIASED), "--head", str(_raised(tmp_path)), "--cases", str(corpus)]
    result = CliRunner().invoke(app, [*args, "--as-of", AS_OF.isoformat(), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "Equality breakdown" in result.output and "by deprivation decile" in result.output
    text = report.read_text(encoding="utf-8")
    assert "## Equality breakdown" in text and "Decile 1 (most deprived)" in text
    assert CliRunner().invoke(app, [*args, "--threshold", "5"]).exit_code == 2


def test_the_biased_ruleset_could_not_read_the_characteristic_instead(tmp_path: Path) -> None:
    """The fixture's bias comes through a proxy because a direct reading is refused by the compiler."""
    direct = tmp_path / "direct"
    direct.mkdir()
    text = (BIASED / "rules.yaml").read_text(encoding="utf-8")
    (direct / "rules.yaml").write_text(text.replace("missed_12m >= missed_threshold", "deprivation_decile <= 3"))
    with pytest.raises(RuleFileErrors) as refused:
        compile_ruleset(direct)
    assert "deprivation_decile" in str(refused.value) and "rules.yaml:" in str(refused.value)

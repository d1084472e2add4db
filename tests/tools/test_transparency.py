"""rules-engine transparency: the ATRS record follows the rule files, fills gaps from a details file,
and the committed example for safeguarding is the one the rules give today."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rules_engine.case.equality import CHARACTERISTICS
from rules_engine.cli.app import app
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.tools.transparency import ATTRIBUTES, build, gaps, parameter_notes, to_json, to_markdown

ROOT = Path(__file__).parents[2]
SAFEGUARDING = ROOT / "rulesets" / "safeguarding"
EXAMPLE = ROOT / "docs" / "transparency" / "safeguarding.md"
DAY = dt.date(2026, 1, 5)


@pytest.fixture(scope="module")
def record_text() -> str:
    return to_markdown(build(compile_ruleset(SAFEGUARDING), today=DAY))


def test_every_rule_and_parameter_is_in_the_record(record_text: str) -> None:
    ruleset = compile_ruleset(SAFEGUARDING)
    for rule in ruleset.rules:
        assert f"`{rule.id}`" in record_text
        assert rule.source_reference in record_text
    for name, value in ruleset.parameters.items():
        assert f"- `{name}` = {value}" in record_text
    assert "statutory: Working Together to Safeguard Children 2023" in record_text
    assert f"{len(ruleset.rules)} rules" in record_text


def test_the_record_says_what_is_not_read(record_text: str) -> None:
    assert "What the rules do NOT read" in record_text
    for characteristic in CHARACTERISTICS:
        assert characteristic.replace("_", " ") in record_text
    assert "the compiler refuses" in record_text


def test_it_has_both_tiers_and_every_attribute() -> None:
    record = build(compile_ruleset(SAFEGUARDING), today=DAY)
    assert [s.tier for s in record.sections][:2] == [1, 2]
    assert set(record.attributes()) == set(ATTRIBUTES)
    document = json.loads(to_json(record))
    assert document["attributes"]["model_version"] == compile_ruleset(SAFEGUARDING).version
    assert "owner and responsibility" in " ".join(s.title for s in record.sections).lower()


def test_details_fill_the_gaps_and_unknown_names_are_refused() -> None:
    ruleset = compile_ruleset(SAFEGUARDING)
    empty = build(ruleset, today=DAY)
    assert "contact_email" in gaps(empty) and "team" in gaps(empty)
    filled = build(ruleset, {"contact_email": "safeguarding-rules@example.gov.uk", "team": "Quality assurance"}, DAY)
    assert filled.attributes()["contact_email"] == "safeguarding-rules@example.gov.uk"
    assert "contact_email" not in gaps(filled) and "team" not in gaps(filled)
    with pytest.raises(ValueError, match="unknown ATRS attribute"):
        build(ruleset, {"contact": "x"}, DAY)


def test_parameter_comments_and_headings_are_read(tmp_path: Path) -> None:
    (tmp_path / "ruleset.yaml").write_text(
        "ruleset:\n  name: t\nparameters:\n  # --- timescales (statutory: a guide) ---\n"
        '  deadline: "15 working days"   # the statutory limit\n  # --- local ---\n  many: 5\n'
        "measures: []\n",
        encoding="utf-8",
    )
    notes = parameter_notes(tmp_path)
    assert notes["deadline"].section == "timescales (statutory: a guide)"
    assert notes["deadline"].comment == "the statutory limit"
    assert notes["deadline"].value == "15 working days"
    assert (notes["many"].section, notes["many"].comment) == ("local", "")


def test_cli_writes_markdown_and_json(tmp_path: Path) -> None:
    details = tmp_path / "details.yaml"
    details.write_text("organisation_or_department: Anytown Council\n", encoding="utf-8")
    out, data = tmp_path / "record.md", tmp_path / "record.json"
    args = ["transparency", "--ruleset", "safeguarding", "--rulesets", str(ROOT / "rulesets")]
    result = CliRunner().invoke(
        app,
        [*args, "--details", str(details), "--output", str(out), "--json", str(data), "--generated-on", "2026-01-05"],
    )
    assert result.exit_code == 0, result.output
    assert "Anytown Council" in out.read_text(encoding="utf-8")
    assert json.loads(data.read_text(encoding="utf-8"))["generated_on"] == "2026-01-05"
    assert "for the authority to complete" in result.output
    assert (
        CliRunner().invoke(app, ["transparency", "--ruleset", "nope", "--rulesets", str(ROOT / "rulesets")]).exit_code
        == 2
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("nonsense: 1\n", encoding="utf-8")
    assert CliRunner().invoke(app, [*args, "--details", str(bad)]).exit_code == 2


def test_the_committed_example_follows_the_rules() -> None:
    committed = EXAMPLE.read_text(encoding="utf-8")
    day = re.search(r"generated (\d{4}-\d{2}-\d{2})", committed)
    assert day is not None
    fresh = to_markdown(build(compile_ruleset(SAFEGUARDING), today=dt.date.fromisoformat(day.group(1))))
    assert committed == fresh, (
        "docs/transparency/safeguarding.md is stale: rules-engine transparency --ruleset safeguarding "
        "--output docs/transparency/safeguarding.md --json docs/transparency/safeguarding.json"
    )

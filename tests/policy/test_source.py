"""SourceMap: 1-based positions by path, ancestor fallback, and offsets inside scalars."""

from __future__ import annotations

import pytest

from rules_engine.errors import SourcePosition
from rules_engine.policy.loader import parse_rule_file
from rules_engine.policy.source import SourceMap, mark_position, parent_path


def source_map(text: str) -> SourceMap:
    return parse_rule_file(text.encode(), "f.yaml").source_map


def test_parent_path() -> None:
    assert parent_path("rules[3].condition") == "rules[3]"
    assert parent_path("rules[3]") == "rules"
    assert parent_path("rules") == ""


def test_positions_are_one_based() -> None:
    positions = source_map("a: 1\nrules:\n  - id: x\n")
    assert positions.at("a") == SourcePosition("f.yaml", 1, 4, "a")
    assert positions.at("rules[0].id") == SourcePosition("f.yaml", 3, 9, "rules[0].id")
    assert positions.key_at("rules[0].id") == SourcePosition("f.yaml", 3, 5, "rules[0].id")


def test_at_falls_back_to_the_nearest_ancestor() -> None:
    positions = source_map("rules:\n  - id: x\n")
    found = positions.at("rules[0].severity.deep")
    assert (found.line, found.column, found.path) == (2, 5, "rules[0].severity.deep")
    assert positions.at("nowhere").line == 1


def test_mark_position_adds_one() -> None:
    class Mark:
        line = 0
        column = 0

    assert mark_position("f", Mark()) == SourcePosition("f", 1, 1)
    assert mark_position("f", None) == SourcePosition("f", 1, 1)


@pytest.mark.parametrize(
    ("text", "offset", "line", "column"),
    [
        ("c: ab cd\n", 3, 1, 7),  # plain
        ('c: "ab cd"\n', 3, 1, 8),  # double-quoted: +1 for the quote
        ("c: 'it''s x'\n", 6, 1, 12),  # '' is one character in the value
        ('c: "\\"q\\" x"\n', 4, 1, 11),  # escaped quotes are two raw characters
        ("c: |\n  ab\n  cd ef\n", 6, 3, 6),  # literal block
        ("c: >\n  ab\n  cd\n", 3, 3, 3),  # folded block: the break became a space
        ("c: |  # note\n    ab\n", 1, 2, 6),  # header comment, deeper indent
        ("c: 'é€ x'\n", 3, 1, 8),  # characters, not bytes
        ("c: ab\n", 2, 1, 6),  # just past the end
    ],
)
def test_at_offset(text: str, offset: int, line: int, column: int) -> None:
    found = source_map(text).at_offset("c", offset)
    assert (found.line, found.column) == (line, column)


def test_at_offset_of_a_non_text_value_is_the_value() -> None:
    found = source_map("c: 5\n").at_offset("c", 3)
    assert (found.line, found.column) == (1, 4)

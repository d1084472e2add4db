"""Loader: which files are read, the version hash, and every way a file is refused."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from rules_engine.errors import LoadError, RuleFileError, RuleFileErrors
from rules_engine.policy.loader import MAX_FILE_BYTES, load_ruleset, parse_rule_file, rule_file_paths


def errors_of(text: str | bytes) -> list[RuleFileError]:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises((LoadError, RuleFileErrors)) as info:
        parse_rule_file(data, "f.yaml")
    exc = info.value
    if isinstance(exc, RuleFileErrors):
        return exc.errors
    assert isinstance(exc, LoadError)
    return [exc]


def only_error(text: str | bytes) -> tuple[int, int, str]:
    (error,) = errors_of(text)
    assert isinstance(error, LoadError)
    return error.position.line, error.position.column, error.message


def test_rule_files_exclude_tests_and_hidden(tmp_path: Path) -> None:
    for name in (
        "a.yaml",
        "b.yml",
        "notes.txt",
        "sub/c.yaml",
        "tests/t.yaml",
        "sub/tests/u.yaml",
        ".git/x.yaml",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    found = [p.relative_to(tmp_path).as_posix() for p in rule_file_paths(tmp_path)]
    assert found == ["a.yaml", "b.yml", "sub/c.yaml"]


def test_version_depends_on_paths_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("parameters: {x: 1}\n")
    first = load_ruleset(tmp_path).version
    assert len(first) == 12 and load_ruleset(tmp_path).version == first
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yaml").write_text("ignored: true\n")
    assert load_ruleset(tmp_path).version == first
    (tmp_path / "a.yaml").rename(tmp_path / "b.yaml")
    assert load_ruleset(tmp_path).version != first


def test_load_ruleset_keeps_going_after_a_bad_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: [\n")
    (tmp_path / "b.yaml").write_text("parameters: {x: 1}\n")
    loaded = load_ruleset(tmp_path)
    assert [f.file for f in loaded.files] == [f"{tmp_path.name}/b.yaml"]
    assert [e.position.file for e in loaded.errors] == [f"{tmp_path.name}/a.yaml"]


def test_plain_values_and_empty_files() -> None:
    loaded = parse_rule_file(b"a: 1\nb: [x, 2.5, true, null]\nc: 2024-01-02\n", "f.yaml")
    assert loaded.document == {"a": 1, "b": ["x", 2.5, True, None], "c": dt.date(2024, 1, 2)}
    assert parse_rule_file(b"", "f.yaml").document is None
    assert parse_rule_file(b"\xef\xbb\xbfa: 1\n", "f.yaml").document == {"a": 1}


def test_syntax_error_at_its_mark() -> None:
    line, _column, message = only_error("a: 1\nb: 'open\n")
    assert (line, message.startswith("invalid YAML")) == (3, True)
    assert only_error("a:\n  - x\n   y: 2\n")[:2] == (3, 5)


def test_non_utf8_at_the_bad_byte() -> None:
    assert only_error(b"a: 1\nb: caf\xe9\n") == (
        2,
        7,
        "the file is not UTF-8 text (byte 0xe9); save it as UTF-8",
    )


def test_file_too_large() -> None:
    assert "larger than 1 MiB" in only_error(b"#" * (MAX_FILE_BYTES + 1))[2]


def test_aliases_and_anchors_are_refused_before_expansion() -> None:
    # The billion-laughs document: expanding it would take gigabytes.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    started = time.monotonic()
    errors = errors_of("\n".join(lines) + "\n")
    assert time.monotonic() - started < 2
    assert {e.message.split(" ")[0] for e in errors} == {"anchors", "aliases"}
    assert (errors[0].position.line, errors[0].position.column) == (1, 5)


def test_deep_nesting_stops_at_the_limit() -> None:
    line, column, message = only_error("a: " + "[" * 100 + "]" * 100 + "\n")
    assert (line, column) == (1, 35)  # the root mapping is level 1, the 32nd bracket level 33
    assert "nested more than 32" in message
    block = "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(40)) + "  " * 40 + "v: 1\n"
    assert "nested more than 32" in only_error(block)[2]


def test_very_deep_nesting_is_an_error_not_a_crash() -> None:
    # libyaml refuses flow nesting past 1000 while scanning, before any event is seen.
    assert "invalid YAML" in only_error("a: " + "[" * 100_000 + "\n")[2]


def test_duplicate_keys_name_the_first() -> None:
    assert only_error("a: 1\nb: 2\na: 3\n") == (3, 1, "duplicate key 'a': it is already given on line 1")


def test_keys_must_be_text() -> None:
    assert only_error("1: x\n")[:2] == (1, 1)
    assert "must be text" in only_error("on: x\n")[2]
    assert "merge keys" in only_error("a: {<<: {b: 1}}\n")[2]
    assert "must be text" in only_error("? [a]\n: 1\n")[2]


def test_non_standard_tags_are_refused() -> None:
    assert only_error("a: !!python/object/apply:os.system [id]\n")[:2] == (1, 4)
    assert "!custom" in only_error("a: !custom x\n")[2]
    assert "!!binary" in only_error("a: !!binary aGk=\n")[2]


def test_one_document_per_file() -> None:
    assert "one YAML document" in only_error("a: 1\n---\nb: 2\n")[2]


def test_errors_of_one_file_are_all_reported() -> None:
    errors = errors_of("a: 1\na: 2\nb: !x y\n")
    assert [e.position.line for e in errors] == [2, 3]


def test_test_files_may_share_fixtures_through_aliases() -> None:
    text = b"fixture: &five [1, 2, 3, 4, 5]\nfirst: *five\nsecond: *five\n"
    loaded = parse_rule_file(text, "t.yaml", allow_aliases=True)
    assert loaded.document == {"fixture": [1, 2, 3, 4, 5], "first": [1, 2, 3, 4, 5], "second": [1, 2, 3, 4, 5]}


@pytest.mark.parametrize(
    "text",
    [
        # a billion laughs: ten aliases of ten aliases, seven levels deep
        "\n".join(
            [f"a0: &a0 [{', '.join(['x'] * 10)}]"]
            + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
        ),
        # an alias inside its own anchor
        "a: &a\n  - *a\n",
    ],
)
def test_alias_expansion_is_bounded_even_where_aliases_are_allowed(text: str) -> None:
    with pytest.raises(RuleFileErrors) as caught:
        parse_rule_file(text.encode(), "t.yaml", allow_aliases=True)
    assert "too many values" in str(caught.value)

"""YAML marks -> 1-based SourcePositions, keyed by path ("rules[3].condition").

One SourceMap covers one rule file. PyYAML marks are 0-based; this module adds 1, once, in
`_position`, and nothing else in the package adjusts lines or columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from rules_engine.errors import SourcePosition

# YAML 1.1 line breaks (PyYAML also breaks lines on NEL, LS and PS).
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")

# Double-quoted escapes that stand for more than one raw character after the backslash.
_HEX_ESCAPE_LENGTH = {"x": 2, "u": 4, "U": 8}
_WHITESPACE_ESCAPES = frozenset("tnr _LPN\t")


class Mark(Protocol):
    """A PyYAML mark, from the pure-Python or the libyaml parser: 0-based line and column."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


@dataclass(frozen=True)
class _Scalar:
    line: int  # 0-based, as in the mark
    column: int  # 0-based, in characters
    style: str  # "" plain, "'" or '"' quoted, "|" literal, ">" folded
    value: str


def one_based(file: str, line: int, column: int, path: str = "") -> SourcePosition:
    """The package's only 0-based -> 1-based conversion of a line and a column."""
    return SourcePosition(file, line + 1, column + 1, path)


def mark_position(file: str, mark: Mark | None, path: str = "") -> SourcePosition:
    """The position of a PyYAML mark (of an error or an event, which has no path of its own)."""
    if mark is None:
        return SourcePosition(file, 1, 1, path)
    return one_based(file, mark.line, mark.column, path)


def parent_path(path: str) -> str:
    """The path one level up: `rules[3].condition` -> `rules[3]` -> `rules` -> ``."""
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path[: path.rindex(".")] if "." in path else ""


class SourceMap:
    """Positions of the nodes of one YAML file, looked up by path."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self._lines = _LINE_BREAK.split(text)
        self._values: dict[str, SourcePosition] = {}
        self._keys: dict[str, SourcePosition] = {}
        self._scalars: dict[str, _Scalar] = {}

    def record(self, path: str, mark: Mark, key_mark: Mark | None = None) -> None:
        """Remember where the node at `path` starts and, for a mapping value, where its key is."""
        self._values[path] = self._position(mark.line, mark.column, path)
        if key_mark is not None:
            self._keys[path] = self._position(key_mark.line, key_mark.column, path)

    def record_scalar(self, path: str, mark: Mark, style: str | None, value: str) -> None:
        """Remember a text scalar, so that offsets inside its value can be located."""
        self._scalars[path] = _Scalar(mark.line, mark.column, style or "", value)

    def at(self, path: str) -> SourcePosition:
        """The position of the node at `path`, or of its nearest recorded ancestor."""
        probe = path
        while probe not in self._values and probe:
            probe = parent_path(probe)
        found = self._values.get(probe)
        if found is None:
            return SourcePosition(self.file, 1, 1, path)
        return SourcePosition(found.file, found.line, found.column, path)

    def key_at(self, path: str) -> SourcePosition:
        """The position of the key naming `path` (for unknown fields), else of its value."""
        found = self._keys.get(path)
        return found if found is not None else self.at(path)

    def at_offset(self, path: str, offset: int) -> SourcePosition:
        """The position of character `offset` of the text value at `path`.

        Errors always point at a token, so the mapping is built over non-whitespace
        characters: the n-th one in the value is the n-th one in the raw YAML. That holds
        for plain, quoted (escapes decoded), literal and folded scalars alike, whose
        differences are all whitespace: indentation, folding and line breaks.
        """
        scalar = self._scalars.get(path)
        if scalar is None:
            return self.at(path)
        value = scalar.value
        offset = max(0, offset)
        while offset < len(value) and value[offset].isspace():
            offset += 1
        past_end = offset >= len(value)
        wanted = sum(1 for ch in value[:offset] if not ch.isspace())
        if past_end:
            wanted -= 1  # point just after the last character
        if wanted < 0:
            return self.at(path)
        for index, (line, column) in enumerate(self._raw_characters(scalar)):
            if index == wanted:
                return self._position(line, column + (1 if past_end else 0), path)
        # The raw text did not line up with the value (an unusual escape): the scalar's start.
        return self.at(path)

    def _raw_characters(self, scalar: _Scalar) -> Iterator[tuple[int, int]]:
        """(line, column) of each non-whitespace character of the value, in the raw text."""
        line, column = scalar.line, scalar.column
        if scalar.style in ("|", ">"):
            # Content starts on the line after the `|` header (which may carry a comment).
            line, column = line + 1, 0
        elif scalar.style in ("'", '"'):
            column += 1  # the opening quote
        quote = scalar.style if scalar.style in ("'", '"') else ""
        while line < len(self._lines):
            text = self._lines[line]
            while column < len(text):
                ch = text[column]
                if quote and ch == quote and not (quote == "'" and text[column + 1 : column + 2] == "'"):
                    return
                if quote == '"' and ch == "\\":
                    width, produced = _escape(text, column)
                    if produced and not produced.isspace():
                        yield line, column
                    column += width
                    continue
                if not ch.isspace():
                    yield line, column
                column += 2 if quote == "'" and ch == "'" else 1
            line, column = line + 1, 0

    def _position(self, line: int, column: int, path: str) -> SourcePosition:
        return one_based(self.file, line, column, path)


def _escape(text: str, column: int) -> tuple[int, str]:
    """Raw width and decoded text of the double-quoted escape starting at `column`."""
    code = text[column + 1 : column + 2]
    if not code:
        return 1, ""  # backslash at the end of a line: a line continuation
    if code in _HEX_ESCAPE_LENGTH:
        digits = text[column + 2 : column + 2 + _HEX_ESCAPE_LENGTH[code]]
        try:
            return 2 + len(digits), chr(int(digits, 16))
        except ValueError:
            return 2, code
    return 2, " " if code in _WHITESPACE_ESCAPES else code

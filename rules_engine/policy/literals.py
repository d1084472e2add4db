"""Find numbers written into a rule's title or explanation that a parameter it uses holds.

A title that says "Five or more concerns" while the condition reads `concerns_12m_threshold`
goes stale the day a policy team sets the threshold to 3. `check` warns at each such literal
(a digit, a number word, or a duration such as "12 months") so it can be written as
`{concerns_12m_threshold}` instead.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

from rules_engine.policy.compiled import Window
from rules_engine.policy.schema import parse_window

ParameterValue = float | int | bool | str

_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "ninety": 90,
    "hundred": 100,
}
_NUMBER = r"\d+(?:\.\d+)?|" + "|".join(sorted(_WORDS, key=len, reverse=True))
_UNIT = r"working\s+days?|days?|weeks?|months?|years?"
# A number not inside a word or another number, optionally followed by a duration's unit.
_LITERAL = re.compile(
    rf"(?<![\w.])(?P<number>{_NUMBER})(?![\w]|\.\d)(?:\s+(?P<unit>{_UNIT})\b)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Literal:
    """A number written in a text, where it starts, and the parameter whose value it equals."""

    text: str
    offset: int  # in the raw template text
    parameter: str
    value: ParameterValue


def parameter_literals(
    template: str, parameters: Mapping[str, ParameterValue], written: Collection[Window] = ()
) -> Iterator[Literal]:
    """Literal numbers in the text parts of `template` equal to one of `parameters`' values.

    A duration ("12 months", "ten working days") matches a parameter holding that duration,
    unless it is also `written` as a window of a measure the rule uses: "workers in 12 months"
    may be describing `workers_12m` rather than a parameter. A bare number matches a numeric
    parameter, and so does the number of a duration when no duration parameter equals it
    ("more than 42 days" for `cin_visit_interval_days: 42`).
    """
    numbers = {name: value for name, value in parameters.items() if _is_number(value)}
    durations = {
        name: window
        for name, value in parameters.items()
        if isinstance(value, str) and (window := parse_window(value)) is not None
    }
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return  # an unmatched brace is reported as an error already
    offset = 0
    for literal, name, spec, conversion in parts:
        for match in _LITERAL.finditer(literal):
            found = _match(match, numbers, durations, written)
            if found is not None:
                text = match.group(0) if match.group("unit") and found in durations else match.group("number")
                raw = literal[: match.start()]
                start = offset + match.start() + raw.count("{") + raw.count("}")
                yield Literal(text, start, found, parameters[found])
        offset += len(literal) + literal.count("{") + literal.count("}")
        if name is not None:
            offset += len("{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")


def _match(
    match: re.Match[str],
    numbers: Mapping[str, ParameterValue],
    durations: Mapping[str, Window],
    written: Collection[Window],
) -> str | None:
    word = match.group("number").lower()
    number = _WORDS[word] if word in _WORDS else float(word)
    unit = match.group("unit")
    if unit:
        window = parse_window(f"{int(number)} {unit}") if number == int(number) and number > 0 else None
        if window is not None and window in written:
            return None
        for name, held in durations.items():
            if window is not None and held == window:
                return name
    for name, value in numbers.items():
        if float(value) == number:
            return name
    return None


def _is_number(value: ParameterValue) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

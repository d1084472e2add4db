"""Title and explanation templates: `{name}` placeholders filled from measures and parameters.

The compiler checks each template and renders titles from the parameters; the explainer
renders explanations from the measured values. Both read a template through the same parse.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping

from rules_engine.policy.compiled import MeasureValue

# A template split once into (literal text, placeholder or None, format spec) parts.
TemplateParts = tuple[tuple[str, str | None, str], ...]


def template_parts(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """Every part of a template as written, conversions included, for checking it; ValueError on an unmatched brace."""
    return list(string.Formatter().parse(template))


@functools.lru_cache(maxsize=4096)
def parse_template(template: str) -> TemplateParts:
    """The parts of a template the compiler has accepted, parsed once."""
    return tuple((literal, field, spec or "") for literal, field, spec, _ in string.Formatter().parse(template))


def format_value(value: MeasureValue | str) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        # Rates carry 2 decimals and ratios 1: show what was measured, without trailing zeros
        # (4.0 a year reads "4", 33.3% reads "33.3", 2.35 a year is not rounded to 2.4).
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return str(value)


def render(
    template: str,
    values: Mapping[str, MeasureValue | str],
    fallback: Mapping[str, MeasureValue | str] | None = None,
) -> str:
    """Fill `{name}` placeholders from `values`, then `fallback`; the compiler has already
    rejected anything but plain names."""
    parts = []
    for literal, field, spec in parse_template(template):
        parts.append(literal)
        if field is None:
            continue
        if field in values:
            raw = values[field]
        elif fallback is not None and field in fallback:
            raw = fallback[field]
        else:
            parts.append("{" + field + "}")
            continue
        if spec and isinstance(raw, int | float) and not isinstance(raw, bool):
            parts.append(format(raw, spec))
        else:
            parts.append(format_value(raw))
    return "".join(parts)

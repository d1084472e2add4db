"""Deadlines: a call whose caller has stopped waiting is not worth evaluating (both doors)."""

from __future__ import annotations

# A call with less time left than this is not started: it could not finish anyway.
MIN_SECONDS_LEFT = 0.0


def past_deadline(seconds_left: float | None) -> bool:
    """True when the caller's deadline has passed; `seconds_left` None: the call has none."""
    return seconds_left is not None and seconds_left <= MIN_SECONDS_LEFT

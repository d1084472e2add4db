"""Deadlines: a call whose caller has stopped waiting is not worth evaluating."""

from __future__ import annotations

import grpc

# A call with less time left than this is not started: it could not finish anyway.
MIN_SECONDS_LEFT = 0.0


def deadline_passed(context: grpc.ServicerContext) -> bool:
    remaining = context.time_remaining()
    return remaining is not None and remaining <= MIN_SECONDS_LEFT


def abort_if_past_deadline(context: grpc.ServicerContext) -> None:
    """DEADLINE_EXCEEDED when the caller has stopped waiting: work past it is wasted."""
    if deadline_passed(context):
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed before it was evaluated")

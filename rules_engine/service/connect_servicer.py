"""RulesEngineService over Connect (HTTP/JSON and binary): the servicer core behind the Connect runtime.

The same core as the gRPC door (service/core.py), so the same validation, field paths and
refusals (outcomes.refusal, sent as ConnectError with the BadRequest detail by
connect_codecs.connect_error). The app is ASGI (served by uvicorn, server/http.py): calls
that touch the case store run in a thread, so the event loop never waits on Redis; the rest
is CPU-bound and runs on the loop. The deadline is the caller's `Connect-Timeout-Ms`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

from connectrpc.interceptor import Interceptor
from connectrpc.request import RequestContext
from connectrpc.server import DEFAULT_READ_MAX_BYTES, ConnectASGIApplication

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1.rules_engine_connect import RulesEngineServiceASGIApplication
from rules_engine.service.connect_codecs import codecs, connect_error
from rules_engine.service.core import MAX_BATCH, ServicerCore, utc_now
from rules_engine.service.outcomes import refusal
from rules_engine.service.ports import CallContext, EvaluationService
from rules_engine.service.responses import EncodedEvaluateResponse

Req = TypeVar("Req")
Res = TypeVar("Res")
Ctx = RequestContext[Any, Any]
_DONE = object()


class _ConnectCall:
    """A Connect RequestContext as the core's CallContext."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: Ctx) -> None:
        self._ctx = ctx

    def seconds_left(self) -> float | None:
        left = self._ctx.timeout_ms
        return None if left is None else left / 1000


class ConnectServicer:
    """The generated `RulesEngineService` Protocol (async), implemented by the servicer core.

    `evaluate_inline`: a stateless Evaluate (and each case of a batch) runs on the event loop.
    It still records the decision in the case store, best-effort: with a store over the
    network (Redis) pass False so the loop does not wait on it.
    """

    def __init__(self, core: ServicerCore, *, evaluate_inline: bool = True) -> None:
        self._core = core
        self._evaluate_inline = evaluate_inline

    async def evaluate(self, request: pb.EvaluateRequest, ctx: Ctx) -> EncodedEvaluateResponse:
        inline = self._evaluate_inline and not request.use_stored_history
        return await _call(self._core.evaluate, request, ctx, "Evaluate", inline=inline)

    async def evaluate_batch(
        self, request: pb.EvaluateBatchRequest, ctx: Ctx
    ) -> AsyncIterator[pb.EvaluateBatchResponse]:
        answers = self._core.evaluate_batch(request, _ConnectCall(ctx))
        try:
            while True:
                if self._evaluate_inline:
                    answer = next(answers, _DONE)
                else:
                    answer = await asyncio.to_thread(next, answers, _DONE)
                if answer is _DONE:
                    return
                yield answer  # type: ignore[misc]  # not _DONE, so an EvaluateBatchResponse
        except Exception as exc:  # every failure leaves as an error, never as a crash
            raise connect_error(refusal(exc, "EvaluateBatch")) from None
        finally:
            answers.close()

    async def list_rulesets(self, request: pb.ListRulesetsRequest, ctx: Ctx) -> pb.ListRulesetsResponse:
        return await _call(self._core.list_rulesets, request, ctx, "ListRulesets", inline=True)

    async def record_facts(self, request: pb.RecordFactsRequest, ctx: Ctx) -> pb.RecordFactsResponse:
        return await _call(self._core.record_facts, request, ctx, "RecordFacts", inline=False)

    async def acknowledge_flag(self, request: pb.AcknowledgeFlagRequest, ctx: Ctx) -> pb.AcknowledgeFlagResponse:
        return await _call(self._core.acknowledge_flag, request, ctx, "AcknowledgeFlag", inline=False)

    async def get_chronology(self, request: pb.GetChronologyRequest, ctx: Ctx) -> pb.GetChronologyResponse:
        return await _call(self._core.get_chronology, request, ctx, "GetChronology", inline=False)

    async def list_decisions(self, request: pb.ListDecisionsRequest, ctx: Ctx) -> pb.ListDecisionsResponse:
        return await _call(self._core.list_decisions, request, ctx, "ListDecisions", inline=False)

    async def delete_case(self, request: pb.DeleteCaseRequest, ctx: Ctx) -> pb.DeleteCaseResponse:
        return await _call(self._core.delete_case, request, ctx, "DeleteCase", inline=False)

    async def get_equality_report(self, request: pb.GetEqualityReportRequest, ctx: Ctx) -> pb.GetEqualityReportResponse:
        return await _call(self._core.get_equality_report, request, ctx, "GetEqualityReport", inline=False)


async def _call(method: Callable[[Req, CallContext], Res], request: Req, ctx: Ctx, name: str, *, inline: bool) -> Res:
    call = _ConnectCall(ctx)
    try:
        if inline:
            return method(request, call)
        # The thread keeps the contextvars (the interceptors' identity, trace context).
        return await asyncio.to_thread(method, request, call)
    except Exception as exc:  # every failure leaves as an error, never as a crash
        raise connect_error(refusal(exc, name)) from None


def build_connect_app(
    service: EvaluationService,
    *,
    interceptors: Iterable[Interceptor] = (),
    max_batch: int = MAX_BATCH,
    clock: Callable[[], dt.datetime] = utc_now,
    evaluate_inline: bool = True,
    read_max_bytes: int | None = DEFAULT_READ_MAX_BYTES,
) -> ConnectASGIApplication[Any]:
    """The ASGI app answering `/rules_engine.v1.RulesEngineService/<Method>` over Connect (and
    gRPC-Web, which the runtime serves on the same app); 404 for any other path."""
    servicer = ConnectServicer(ServicerCore(service, max_batch, clock), evaluate_inline=evaluate_inline)
    app: ConnectASGIApplication[Any] = RulesEngineServiceASGIApplication(
        servicer, interceptors=interceptors, read_max_bytes=read_max_bytes, codecs=codecs()
    )
    return app

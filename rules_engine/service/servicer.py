"""gRPC methods of RulesEngineService: the servicer core (service/core.py) behind grpcio's calls.

Each method hands the request to the core with the call as a CallContext, and turns what the
core raises into the call's status (outcomes.refusal, then statuses.abort_with).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
from google.protobuf import message_factory

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.service.core import MAX_BATCH, ServicerCore, utc_now
from rules_engine.service.outcomes import refusal
from rules_engine.service.ports import CallContext, EvaluationService
from rules_engine.service.responses import EncodedEvaluateResponse
from rules_engine.service.statuses import abort_with

__all__ = ["MAX_BATCH", "SERVICE_NAME", "RulesEngineServicer", "add_service"]

Req = TypeVar("Req")
Res = TypeVar("Res")


class _GrpcCall:
    """A grpc.ServicerContext as the core's CallContext."""

    __slots__ = ("_context",)

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._context = context

    def seconds_left(self) -> float | None:
        left: float | None = self._context.time_remaining()
        return left


class RulesEngineServicer(pb_grpc.RulesEngineServiceServicer):
    """Thin servicer: every decision is the EvaluationService's; the core translates, this adapts."""

    def __init__(
        self,
        service: EvaluationService,
        max_batch: int = MAX_BATCH,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._core = ServicerCore(service, max_batch, clock)

    def Evaluate(  # type: ignore[override]  # bytes stand in for the message on the wire
        self, request: pb.EvaluateRequest, context: grpc.ServicerContext
    ) -> EncodedEvaluateResponse:
        # The answer goes out as bytes (service.responses); add_service serializes it.
        return _unary(self._core.evaluate, request, context, "Evaluate")

    def RecordFacts(self, request: pb.RecordFactsRequest, context: grpc.ServicerContext) -> pb.RecordFactsResponse:
        return _unary(self._core.record_facts, request, context, "RecordFacts")

    def AcknowledgeFlag(
        self, request: pb.AcknowledgeFlagRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeFlagResponse:
        return _unary(self._core.acknowledge_flag, request, context, "AcknowledgeFlag")

    def GetChronology(
        self, request: pb.GetChronologyRequest, context: grpc.ServicerContext
    ) -> pb.GetChronologyResponse:
        return _unary(self._core.get_chronology, request, context, "GetChronology")

    def ListDecisions(
        self, request: pb.ListDecisionsRequest, context: grpc.ServicerContext
    ) -> pb.ListDecisionsResponse:
        return _unary(self._core.list_decisions, request, context, "ListDecisions")

    def DeleteCase(self, request: pb.DeleteCaseRequest, context: grpc.ServicerContext) -> pb.DeleteCaseResponse:
        return _unary(self._core.delete_case, request, context, "DeleteCase")

    def GetEqualityReport(
        self, request: pb.GetEqualityReportRequest, context: grpc.ServicerContext
    ) -> pb.GetEqualityReportResponse:
        return _unary(self._core.get_equality_report, request, context, "GetEqualityReport")

    def ListRulesets(self, request: pb.ListRulesetsRequest, context: grpc.ServicerContext) -> pb.ListRulesetsResponse:
        return _unary(self._core.list_rulesets, request, context, "ListRulesets")

    def EvaluateBatch(
        self, request: pb.EvaluateBatchRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.EvaluateBatchResponse]:
        try:
            yield from self._core.evaluate_batch(request, _GrpcCall(context))
        except Exception as exc:  # every failure leaves as a status, never as a crash
            abort_with(context, refusal(exc, "EvaluateBatch"))


def _unary(method: Callable[[Req, CallContext], Res], request: Req, context: grpc.ServicerContext, name: str) -> Res:
    try:
        return method(request, _GrpcCall(context))
    except Exception as exc:  # every failure leaves as a status, never as a crash
        abort_with(context, refusal(exc, name))


SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["RulesEngineService"].full_name
# Responses serialize themselves: Evaluate answers with bytes already encoded
# (responses.EncodedEvaluateResponse), the other methods with messages.
_serialize = operator.methodcaller("SerializeToString")
_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_service(servicer: RulesEngineServicer, server: grpc.Server) -> None:
    """Register RulesEngineService as the generated add_..._to_server does, but with
    responses serialized by their own SerializeToString."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["RulesEngineService"].methods:
        request = message_factory.GetMessageClass(method.input_type)
        make = _HANDLER_KINDS[method.client_streaming, method.server_streaming]
        handlers[method.name] = make(
            getattr(servicer, method.name), request_deserializer=request.FromString, response_serializer=_serialize
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)

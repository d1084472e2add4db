"""gRPC methods of RulesEngineService: convert, delegate to an EvaluationService, map errors."""

from __future__ import annotations

import datetime as dt
import logging
import operator
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

import grpc
from google.protobuf import message_factory

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.case.facts import CaseFacts
from rules_engine.engine.results import Evaluation
from rules_engine.errors import (
    AcknowledgementError,
    CaseChangedError,
    CaseError,
    EvaluationError,
    FieldViolation,
    FlagNotFoundError,
    RulesetNotFoundError,
    RulesetRequiredError,
    StoreUnavailableError,
)
from rules_engine.service import requests, responses
from rules_engine.service.deadlines import abort_if_past_deadline
from rules_engine.service.ports import CaseStateService, EvaluationService
from rules_engine.service.responses import EncodedEvaluateResponse, encode_response
from rules_engine.service.statuses import abort_invalid, shorten

log = logging.getLogger(__name__)

MAX_BATCH = 1_000
DEFAULT_DECISIONS = 100
MAX_DECISIONS = 1_000
STORE_UNAVAILABLE = (
    "case store unavailable; stored history, acknowledgements, chronology and decisions need it. "
    "Retry later; Evaluate without use_stored_history still works"
)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RulesEngineServicer(pb_grpc.RulesEngineServiceServicer):
    """Thin servicer: every decision is the EvaluationService's; this only translates."""

    def __init__(
        self,
        service: EvaluationService,
        max_batch: int = MAX_BATCH,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self._service = service
        self._max_batch = max_batch
        # Only bounds dates in requests (a year ahead); evaluation time is the service's.
        self._clock = clock

    def Evaluate(  # type: ignore[override]  # bytes stand in for the message on the wire
        self, request: pb.EvaluateRequest, context: grpc.ServicerContext
    ) -> EncodedEvaluateResponse:
        # The answer goes out as bytes encoded from cached parts (service.responses): building
        # the message tree cost more than evaluating a case. add_service serializes it.
        state = self._state(context) if request.use_stored_history else None
        try:
            if state is None:
                if request.withdrawn:
                    raise CaseError([FieldViolation("withdrawn", "needs use_stored_history")])
                as_of, case = self._parse(request.as_of, request.case, "case")
                return encode_response(self._evaluate(case, as_of, request.ruleset, request.case))
            as_of, case, withdrawn = self._parse_with_withdrawn(request.as_of, request.case, request.withdrawn)
            evaluation = state.evaluate_history(case, withdrawn, as_of, request.ruleset or None)
            return encode_response(evaluation)
        except Exception as exc:  # every failure leaves as a status, never as a crash
            _abort(context, exc, "Evaluate")

    def RecordFacts(self, request: pb.RecordFactsRequest, context: grpc.ServicerContext) -> pb.RecordFactsResponse:
        state = self._state(context)  # aborts outside the try: an abort is an exception
        try:
            _, case, withdrawn = self._parse_with_withdrawn("", request.case, request.withdrawn)
            stored = state.record_facts(case, withdrawn)
            return pb.RecordFactsResponse(case_id=case.case_id, stored_fact_count=responses.stored_fact_count(stored))
        except Exception as exc:
            _abort(context, exc, "RecordFacts")

    def AcknowledgeFlag(
        self, request: pb.AcknowledgeFlagRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeFlagResponse:
        state = self._state(context)  # aborts outside the try: an abort is an exception
        try:
            case_id, rule_id, snooze_until = requests.acknowledgement_from_proto(request, self._clock().date())
            record = state.acknowledge(
                case_id,
                request.ruleset or None,
                rule_id,
                practitioner_id=request.practitioner_id,
                reason_code=request.reason_code,
                snooze_until=snooze_until,
            )
            return pb.AcknowledgeFlagResponse(flag=responses.flag_record_to_proto(case_id, record))
        except Exception as exc:
            _abort(context, exc, "AcknowledgeFlag")

    def GetChronology(
        self, request: pb.GetChronologyRequest, context: grpc.ServicerContext
    ) -> pb.GetChronologyResponse:
        state = self._state(context)  # aborts outside the try: an abort is an exception
        try:
            case_id = requests.case_id_from_text(request.case_id)
            return responses.chronology_to_proto(case_id, state.chronology(case_id))
        except Exception as exc:
            _abort(context, exc, "GetChronology")

    def ListDecisions(
        self, request: pb.ListDecisionsRequest, context: grpc.ServicerContext
    ) -> pb.ListDecisionsResponse:
        state = self._state(context)  # aborts outside the try: an abort is an exception
        try:
            case_id = requests.case_id_from_text(request.case_id) if request.case_id else None
            if request.limit < 0:
                raise CaseError([FieldViolation("limit", "must not be negative")])
            limit = min(request.limit or DEFAULT_DECISIONS, MAX_DECISIONS)
            decisions = state.decisions(case_id, limit)
            return pb.ListDecisionsResponse(decisions=[responses.decision_to_proto(d) for d in decisions])
        except Exception as exc:
            _abort(context, exc, "ListDecisions")

    def DeleteCase(self, request: pb.DeleteCaseRequest, context: grpc.ServicerContext) -> pb.DeleteCaseResponse:
        state = self._state(context)  # aborts outside the try: an abort is an exception
        try:
            case_id = requests.case_id_from_text(request.case_id)
            deleted = state.delete_case(case_id)
            return pb.DeleteCaseResponse(
                case_id=case_id,
                deleted_facts=deleted.facts,
                deleted_flags=deleted.flags,
                deleted_decisions=deleted.decisions,
            )
        except Exception as exc:
            _abort(context, exc, "DeleteCase")

    def EvaluateBatch(
        self, request: pb.EvaluateBatchRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.EvaluateBatchResponse]:
        if len(request.cases) > self._max_batch:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{len(request.cases)} cases in one batch; at most {self._max_batch}",
            )
        try:
            as_of = requests.parse_as_of(request.as_of)
        except CaseError as exc:
            _abort(context, exc, "EvaluateBatch")
        for index, message in enumerate(request.cases):
            # The caller stopped waiting: the cases left would be evaluated for no one.
            abort_if_past_deadline(context)
            try:
                _, case = self._parse("", message, f"cases[{index}]", as_of)
                evaluation = self._evaluate(case, as_of, request.ruleset, message)
            except RulesetRequiredError as exc:  # the request's own field: no case can be answered
                _abort(context, exc, "EvaluateBatch")
            except CaseError as exc:
                yield _batch_error(index, message, "INVALID_ARGUMENT", shorten(f"invalid case: {exc}"))
            except EvaluationError as exc:
                # One case failing a rule must not cost the others their answers.
                _log_failure("EvaluateBatch", exc)
                yield _batch_error(index, message, "INTERNAL", "evaluation failed")
            except Exception as exc:  # unknown ruleset, store down, bugs: the whole batch stops
                _abort(context, exc, "EvaluateBatch")
            else:
                yield pb.EvaluateBatchResponse(index=index, evaluation=responses.evaluation_to_proto(evaluation))

    def ListRulesets(self, request: pb.ListRulesetsRequest, context: grpc.ServicerContext) -> pb.ListRulesetsResponse:
        try:
            statuses = self._service.list_rulesets()
            return pb.ListRulesetsResponse(rulesets=[responses.ruleset_status_to_proto(s) for s in statuses])
        except Exception as exc:
            _abort(context, exc, "ListRulesets")

    def _parse(
        self, as_of_text: str, message: case_pb2.Case, path: str, as_of: dt.datetime | None = None
    ) -> tuple[dt.datetime | None, CaseFacts]:
        """Parse `as_of` and the case together, so the caller hears of every bad field at once.

        The case comes back as records (requests.case_from_proto): far cheaper than models,
        and with validation's errors, naming every bad field, when it is refused.
        """
        violations: list[FieldViolation] = []
        try:
            as_of = requests.parse_as_of(as_of_text) if as_of_text else as_of
        except CaseError as exc:
            violations.extend(exc.violations)
        # A replay may look back; a date up to a year past the later of now and as_of is plausible.
        today = self._clock().date()
        if as_of is not None:
            today = max(today, as_of.date())
        try:
            case = requests.case_from_proto(message, today, path)
        except CaseError as exc:
            violations.extend(exc.violations)
        if violations:
            raise CaseError(violations)
        return as_of, case

    def _parse_with_withdrawn(
        self, as_of_text: str, message: case_pb2.Case, refs: Sequence[pb.FactRef]
    ) -> tuple[dt.datetime | None, CaseFacts, list[tuple[str, str]]]:
        violations: list[FieldViolation] = []
        try:
            as_of, case = self._parse(as_of_text, message, "case")
        except CaseError as exc:
            violations.extend(exc.violations)
        try:
            withdrawn = requests.withdrawn_from_proto(refs)
        except CaseError as exc:
            violations.extend(exc.violations)
        if violations:
            raise CaseError(violations)
        return as_of, case, withdrawn

    def _state(self, context: grpc.ServicerContext) -> CaseStateService:
        if not isinstance(self._service, CaseStateService):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server keeps no case state")
        return self._service

    def _evaluate(self, case: CaseFacts, as_of: dt.datetime | None, ruleset: str, message: case_pb2.Case) -> Evaluation:
        return self._service.evaluate(case, as_of, ruleset or None, requests.case_message_digest(message))


_ACKNOWLEDGEMENT_FIELDS = ("practitioner_id", "reason_code", "snooze_until")


def _batch_error(index: int, message: case_pb2.Case, code: str, text: str) -> pb.EvaluateBatchResponse:
    # The case id goes back as sent, cut to an id's length: it may be the bad field.
    error = pb.BatchError(case_id=message.case_id[:128], code=code, message=text)
    return pb.EvaluateBatchResponse(index=index, error=error)


def _abort(context: grpc.ServicerContext, exc: Exception, method: str) -> NoReturn:
    """Turn an exception into the call's status; aborts, never returns."""
    if isinstance(exc, CaseError):
        abort_invalid(context, f"{method}Request", exc.violations)
    if isinstance(exc, RulesetNotFoundError):
        context.abort(grpc.StatusCode.NOT_FOUND, str(exc) or "ruleset not found")
    if isinstance(exc, AcknowledgementError):
        # The store's own check, behind requests.acknowledgement_from_proto's: its text starts with the field.
        field = next((f for f in _ACKNOWLEDGEMENT_FIELDS if str(exc).startswith(f)), "")
        abort_invalid(context, f"{method}Request", [FieldViolation(field, str(exc).removeprefix(field).strip())])
    if isinstance(exc, FlagNotFoundError):
        context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, CaseChangedError):
        context.abort(grpc.StatusCode.ABORTED, "the case kept changing while it was evaluated; retry")
    if isinstance(exc, StoreUnavailableError):
        # The store's own message names its address; the caller needs only what to do.
        log.warning("%s: %s", method, exc)
        context.abort(grpc.StatusCode.UNAVAILABLE, STORE_UNAVAILABLE)
    _log_failure(method, exc)
    context.abort(grpc.StatusCode.INTERNAL, "internal error")


def _log_failure(method: str, exc: Exception) -> None:
    # The exception's text may quote case content, so only its type, rule and stack are logged.
    rule = getattr(exc, "rule_id", "")
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error("%s failed: %s%s\n%s", method, type(exc).__name__, f" in rule {rule}" if rule else "", stack)


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

"""RulesEngineService's methods, protocol-neutral: convert, delegate to an EvaluationService, raise.

Each door (servicer.py for gRPC, connect_servicer.py for Connect) calls these with the request
message and a CallContext, and turns whatever they raise into its own refusal through
outcomes.refusal: the domain errors (CaseError, RulesetNotFoundError, ...) and RefusedError
for the refusals that are no domain error. Nothing here knows a protocol.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Generator, Sequence

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.case.dates import latest_date
from rules_engine.case.equality import UNRECORDED
from rules_engine.case.facts import CaseFacts
from rules_engine.engine.encoded import EncodedCase
from rules_engine.errors import CaseError, EvaluationError, FieldViolation, RulesetRequiredError
from rules_engine.service import equality_report, received, requests, responses
from rules_engine.service.deadlines import past_deadline
from rules_engine.service.outcomes import (
    DEADLINE_PASSED,
    NO_CASE_STATE,
    Code,
    Refusal,
    RefusedError,
    log_failure,
    shorten,
)
from rules_engine.service.ports import CallContext, CaseStateService, EvaluationService
from rules_engine.service.responses import EncodedEvaluateResponse, encode_response

MAX_BATCH = 1_000
DEFAULT_DECISIONS = 100
MAX_DECISIONS = 1_000


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ServicerCore:
    """Every decision is the EvaluationService's; this only translates."""

    def __init__(
        self,
        service: EvaluationService,
        max_batch: int = MAX_BATCH,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._service = service
        self._max_batch = max_batch
        # Only bounds dates in requests (a year ahead); evaluation time is the service's.
        self._clock = clock

    @property
    def keeps_case_state(self) -> bool:
        return isinstance(self._service, CaseStateService)

    def evaluate(self, request: pb.EvaluateRequest, call: CallContext) -> EncodedEvaluateResponse:
        # The answer is bytes encoded from cached parts (service.responses): building the
        # message tree cost more than evaluating a case.
        sent = received.take(request)  # taken in every call: what is held is let go
        if not request.use_stored_history:
            if request.withdrawn:
                raise CaseError([FieldViolation("withdrawn", "needs use_stored_history")])
            as_of, encoded = self._encode(request.as_of, request.case, "case", data=sent)
            return encode_response(self._service.evaluate(encoded, as_of, request.ruleset or None))
        state = self._state()  # refused before the case is read, as a store-less server can't help
        as_of, case, withdrawn = self._parse_with_withdrawn(request.as_of, request.case, request.withdrawn)
        return encode_response(state.evaluate_history(case, withdrawn, as_of, request.ruleset or None))

    def record_facts(self, request: pb.RecordFactsRequest, call: CallContext) -> pb.RecordFactsResponse:
        state = self._state()
        _, case, withdrawn = self._parse_with_withdrawn("", request.case, request.withdrawn)
        stored = state.record_facts(case, withdrawn)
        return pb.RecordFactsResponse(case_id=case.case_id, stored_fact_count=responses.stored_fact_count(stored))

    def acknowledge_flag(self, request: pb.AcknowledgeFlagRequest, call: CallContext) -> pb.AcknowledgeFlagResponse:
        state = self._state()
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

    def get_chronology(self, request: pb.GetChronologyRequest, call: CallContext) -> pb.GetChronologyResponse:
        state = self._state()
        case_id = requests.case_id_from_text(request.case_id)
        return responses.chronology_to_proto(case_id, state.chronology(case_id))

    def list_decisions(self, request: pb.ListDecisionsRequest, call: CallContext) -> pb.ListDecisionsResponse:
        state = self._state()
        case_id = requests.case_id_from_text(request.case_id) if request.case_id else None
        if request.limit < 0:
            raise CaseError([FieldViolation("limit", "must not be negative")])
        limit = min(request.limit or DEFAULT_DECISIONS, MAX_DECISIONS)
        decisions = state.decisions(case_id, limit)
        return pb.ListDecisionsResponse(decisions=[responses.decision_to_proto(d) for d in decisions])

    def delete_case(self, request: pb.DeleteCaseRequest, call: CallContext) -> pb.DeleteCaseResponse:
        state = self._state()
        case_id = requests.case_id_from_text(request.case_id)
        deleted = state.delete_case(case_id)
        return pb.DeleteCaseResponse(
            case_id=case_id,
            deleted_facts=deleted.facts,
            deleted_flags=deleted.flags,
            deleted_decisions=deleted.decisions,
        )

    def get_equality_report(
        self, request: pb.GetEqualityReportRequest, call: CallContext
    ) -> pb.GetEqualityReportResponse:
        state = self._state()
        threshold = equality_report.threshold_from_proto(request)
        return equality_report.report_to_proto(state.equality_report(request.ruleset or None, threshold))

    def list_rulesets(self, request: pb.ListRulesetsRequest, call: CallContext) -> pb.ListRulesetsResponse:
        statuses = self._service.list_rulesets()
        return pb.ListRulesetsResponse(rulesets=[responses.ruleset_status_to_proto(s) for s in statuses])

    def evaluate_batch(
        self, request: pb.EvaluateBatchRequest, call: CallContext
    ) -> Generator[pb.EvaluateBatchResponse, None, None]:
        """One response per case, in order. A bad case or a failing rule answers that case with
        an error; what no case can get past (unknown ruleset, store down, deadline) is raised."""
        if len(request.cases) > self._max_batch:
            text = f"{len(request.cases)} cases in one batch; at most {self._max_batch}"
            raise RefusedError(Refusal(Code.RESOURCE_EXHAUSTED, text))
        as_of = requests.parse_as_of(request.as_of)
        for index, message in enumerate(request.cases):
            # The caller stopped waiting: the cases left would be evaluated for no one.
            if past_deadline(call.seconds_left()):
                raise RefusedError(Refusal(Code.DEADLINE_EXCEEDED, DEADLINE_PASSED))
            try:
                _, encoded = self._encode("", message, f"cases[{index}]", as_of)
                evaluation = self._service.evaluate(encoded, as_of, request.ruleset or None)
            except RulesetRequiredError:  # the request's own field: no case can be answered
                raise
            except CaseError as exc:
                yield _batch_error(index, message, "INVALID_ARGUMENT", shorten(f"invalid case: {exc}"))
            except EvaluationError as exc:
                # One case failing a rule must not cost the others their answers.
                log_failure("EvaluateBatch", exc)
                yield _batch_error(index, message, "INTERNAL", "evaluation failed")
            else:
                yield pb.EvaluateBatchResponse(index=index, evaluation=responses.evaluation_to_proto(evaluation))

    def _encode(
        self,
        as_of_text: str,
        message: case_pb2.Case,
        path: str,
        as_of: dt.datetime | None = None,
        data: bytes | None = None,
    ) -> tuple[dt.datetime | None, EncodedCase]:
        """Parse `as_of`; the case as its bytes (`data`, as received, when the door kept them;
        else serialised once) for the digest and the compiled core.

        The case is converted and validated only when the engine needs it (EncodedCase.decode:
        requests.case_from_proto, with its CaseError naming every bad field). A bad `as_of`
        converts it here, so the caller hears of every bad field at once.
        """
        try:
            as_of = requests.parse_as_of(as_of_text) if as_of_text else as_of
        except CaseError:
            self._parse(as_of_text, message, path, as_of)  # raises with the case's violations too
            raise
        return as_of, encode_case(message, self._today(as_of), path, data)

    def _today(self, as_of: dt.datetime | None) -> dt.date:
        # A replay may look back; a date up to a year past the later of now and as_of is plausible.
        today = self._clock().date()
        return today if as_of is None else max(today, as_of.date())

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
        today = self._today(as_of)
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

    def _state(self) -> CaseStateService:
        if not isinstance(self._service, CaseStateService):
            raise RefusedError(Refusal(Code.UNIMPLEMENTED, NO_CASE_STATE))
        return self._service


def encode_case(message: case_pb2.Case, today: dt.date, path: str = "case", data: bytes | None = None) -> EncodedCase:
    """A request's case for the engine: its bytes, and its conversion for when the compiled core declines.

    `data` are the case's bytes as the client sent them (service/received.py), which protobuf
    parsed into `message`; without them the case is serialised once, deterministically (the
    digest is then requests.case_message_digest's). `today` bounds dates as in
    requests.case_from_proto; `path` prefixes field paths.
    """
    if data is None:
        data = message.SerializeToString(deterministic=True)
    decode = functools.partial(requests.case_from_proto, message, today, path)
    groups = requests.equality_groups(message.child)
    if groups is None:
        # An equality field holding what is not a code: the compiled core skips those fields, so
        # the case is refused here, with validation's CaseError naming the field, as the Python
        # path would refuse it.
        decode()
        groups = UNRECORDED
    return EncodedCase(data, requests.case_bytes_digest(data), message.case_id, latest_date(today), decode, groups)


def _batch_error(index: int, message: case_pb2.Case, code: str, text: str) -> pb.EvaluateBatchResponse:
    # The case id goes back as sent, cut to an id's length: it may be the bad field.
    error = pb.BatchError(case_id=message.case_id[:128], code=code, message=text)
    return pb.EvaluateBatchResponse(index=index, error=error)

"""GetEqualityReport's request and answer: the threshold asked for, and engine/equality's report as the proto.

The response mirrors EqualityReport field for field, so `rules-engine fairness --from-service`
reads its proto3 JSON back into the same report; a withheld or undefined value (None) is left unset.
"""

from __future__ import annotations

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine.engine.equality import MIN_CELL, Breakdown, EqualityReport, GroupRow, Rate
from rules_engine.errors import CaseError, FieldViolation


def threshold_from_proto(request: pb.GetEqualityReportRequest) -> int:
    """The suppression threshold asked for: 0 means MIN_CELL; under MIN_CELL is refused, never lowered."""
    if request.threshold == 0:
        return MIN_CELL
    if request.threshold < MIN_CELL:
        raise CaseError([FieldViolation("threshold", f"must be at least {MIN_CELL} (or 0 for {MIN_CELL})")])
    return request.threshold


def report_to_proto(report: EqualityReport) -> pb.GetEqualityReportResponse:
    return pb.GetEqualityReportResponse(
        threshold=report.threshold,
        lifecycle=report.lifecycle,
        versions=[
            pb.EqualityVersionReport(
                ruleset=version.ruleset,
                version=version.version,
                rules=[
                    pb.EqualityRuleReport(rule_id=rule.rule_id, breakdowns=[_breakdown(b) for b in rule.breakdowns])
                    for rule in version.rules
                ],
            )
            for version in report.versions
        ],
    )


def _breakdown(breakdown: Breakdown) -> pb.EqualityBreakdown:
    return pb.EqualityBreakdown(
        characteristic=breakdown.characteristic,
        whole=_row(breakdown.whole),
        groups=[_row(row) for row in breakdown.groups],
    )


def _row(row: GroupRow) -> pb.EqualityGroupRow:
    counts = {
        name: value
        for name in ("evaluated", "flagged", "acknowledged", "snoozed", "resolved", "dismissed")
        if (value := getattr(row, name)) is not None
    }
    return pb.EqualityGroupRow(group=row.group, flag=_rate(row.flag), dismissal=_rate(row.dismissal), **counts)


def _rate(rate: Rate) -> pb.EqualityRate:
    message = pb.EqualityRate(reading=rate.reading)
    if rate.numerator is not None:
        message.numerator = rate.numerator
    if rate.denominator is not None:
        message.denominator = rate.denominator
    if rate.rate is not None:
        message.rate = rate.rate
    if rate.ratio is not None:
        message.ratio = rate.ratio
    if rate.interval is not None:
        message.interval.low, message.interval.high = rate.interval
    if rate.ratio_interval is not None:
        message.ratio_interval.low, message.ratio_interval.high = rate.ratio_interval
    return message

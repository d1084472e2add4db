"""What end-to-end tests share: a small EvaluationService of our own and a running server's handles."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import grpc
from grpc_health.v1.health import HealthServicer

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.case.facts import CaseFacts
from rules_engine.engine.encoded import EncodedCase
from rules_engine.engine.results import Evaluation, EvidenceItem, ExplainedFlag, RulesetStatus
from rules_engine.errors import EvaluationError, RulesetNotFoundError, StoreUnavailableError
from rules_engine.policy.compiled import Severity

LOADED_AT = dt.datetime(2025, 1, 1, 9, 30, tzinfo=dt.UTC)


class ConcernCountService:
    """An EvaluationService of our own: one ruleset, "demo", flagging 3 or more concerns.

    Ruleset "store-down" raises StoreUnavailableError and "bug" a RuntimeError; a case id
    starting "rule-fails" raises EvaluationError, so every error mapping can be reached.
    """

    def evaluate(
        self,
        case: CaseFacts | EncodedCase,
        as_of: dt.datetime | None = None,
        ruleset: str | None = None,
        input_digest: str | None = None,
    ) -> Evaluation:
        if isinstance(case, EncodedCase):
            case = case.decode()  # a bad case is refused first, as the engine does
        name = ruleset or "demo"
        if name == "store-down":
            raise StoreUnavailableError("redis://10.0.0.1 refused")
        if name == "bug":
            raise RuntimeError(f"crashed on {case.case_id}")
        if name != "demo":
            raise RulesetNotFoundError(f"no ruleset named {name!r}")
        if case.case_id.startswith("rule-fails"):
            raise EvaluationError("division by zero", rule_id="many-concerns")
        as_of = as_of or dt.datetime.now(dt.UTC)
        flags = []
        if len(case.concerns) >= 3:
            flags.append(
                ExplainedFlag(
                    rule_id="many-concerns",
                    title="Many concerns",
                    severity=Severity.HIGH,
                    escalation="Team manager",
                    explanation=f"{len(case.concerns)} concerns",
                    condition="concerns >= 3",
                    measured_values=(("concerns", len(case.concerns)),),
                    thresholds=(("min_concerns", 3),),
                    source_kind="local",
                    source_reference="Demo policy",
                    evidence=tuple(EvidenceItem("concerns", c.id, c.date) for c in case.concerns),
                )
            )
        return Evaluation(
            case_id=case.case_id,
            ruleset="demo",
            ruleset_version="v-demo",
            decision_id=f"d-{case.case_id}",
            as_of=as_of,
            flags=tuple(flags),
        )

    def list_rulesets(self) -> list[RulesetStatus]:
        return [RulesetStatus("demo", "v-demo", LOADED_AT, rule_count=1, shadow_rule_count=0)]


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: HealthServicer
    channel: grpc.Channel
    stub: pb_grpc.RulesEngineServiceStub

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

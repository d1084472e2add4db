"""Prometheus metrics; the only module that imports prometheus_client."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

EVALUATIONS = Counter(
    "rules_engine_evaluations_total", "Case evaluations by ruleset and outcome", ["ruleset", "outcome"]
)
EVALUATION_SECONDS = Histogram(
    "rules_engine_evaluation_seconds",
    "Time to evaluate one case, measures to explained flags",
    ["ruleset"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
ENGINE_FALLBACKS = Counter(
    "rules_engine_engine_fallbacks_total",
    "Evaluations answered by the reference evaluator because the matching engine failed",
    ["ruleset"],
)


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Expose /metrics on its own HTTP port (0 turns it off)."""
    if port:
        start_http_server(port, addr=host)

"""Typed settings for the server; the CLI fills them from flags and RULES_ENGINE_* variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The rulesets bundled with the source tree (and copied beside the package in the image).
BUNDLED_RULESETS = Path(__file__).resolve().parent.parent / "rulesets"

DEFAULT_PORT = 50051
DEFAULT_METRICS_PORT = 9464


@dataclass(frozen=True)
class Settings:
    rulesets: Path = BUNDLED_RULESETS
    host: str = "[::]"
    port: int = DEFAULT_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    # Threads per process serving gRPC calls; the engine is serialised per process, so a
    # few threads only overlap I/O (reading the request, writing the response).
    max_workers: int = 8
    grace_seconds: float = 10.0
    # Evaluate with the durable-rules engine; off means the reference evaluator alone.
    use_engine: bool = True

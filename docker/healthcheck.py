"""Container health check through gRPC health (grpc.health.v1), as Kubernetes' native probe does.

Exit 0 when the service answers SERVING, 1 otherwise. Used by the Dockerfile's HEALTHCHECK;
Kubernetes uses its own `grpc:` probes instead. Arguments: [SERVICE] (default: the
RulesEngineService; "" for the whole server). The port comes from RULES_ENGINE_PORT.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE = "rules_engine.v1.RulesEngineService"


def main() -> int:
    service = sys.argv[1] if len(sys.argv) > 1 else SERVICE
    port = os.environ.get("RULES_ENGINE_PORT", "50051")
    target = os.environ.get("RULES_ENGINE_HEALTH_TARGET", f"localhost:{port}")
    try:
        with grpc.insecure_channel(target) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3.0
            )
    except grpc.RpcError as exc:
        print(f"unhealthy: {target} {service!r}: {exc.code().name}", file=sys.stderr)
        return 1
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        print(f"unhealthy: {target} {service!r}: {name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

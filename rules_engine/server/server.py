"""Process lifecycle: build the gRPC server with health and reflection, serve, shut down gracefully."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from concurrent import futures
from types import FrameType
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from rules_engine.config import Settings
from rules_engine.errors import ClientsFileError, StartupError
from rules_engine.server.interceptors import ObservingInterceptor
from rules_engine.server.limits import Limits, RequestGuard, limits_from
from rules_engine.server.preflight import GRPC_PORT_REMEDY, port_in_use
from rules_engine.server.security import (
    AuthInterceptor,
    ClientRegistry,
    clients_from,
    credentials_from,
)
from rules_engine.server.watcher import Watcher

if TYPE_CHECKING:
    from rules_engine.server.tracing import Tracing
from rules_engine.service.ports import EvaluationService
from rules_engine.service.servicer import MAX_BATCH, SERVICE_NAME, RulesEngineServicer, add_service

log = logging.getLogger(__name__)

# A 10,000-fact case is about 1 MiB; 16 MiB leaves room for batches while refusing
# anything big enough to threaten the process.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def build_server(
    service: EvaluationService,
    host: str = "[::]",
    port: int = 0,
    max_workers: int = 8,
    *,
    max_batch: int = MAX_BATCH,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    maximum_concurrent_rpcs: int | None = None,
    options: Sequence[tuple[str, Any]] = (),
    credentials: grpc.ServerCredentials | None = None,
    clients: ClientRegistry | None = None,
    limits: Limits | None = None,
    tracing: Tracing | None = None,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """A server (not started) with the service, health and reflection; returns it, the bound port, health.

    Port 0 binds a free port. `maximum_concurrent_rpcs` makes excess calls fail fast with
    RESOURCE_EXHAUSTED instead of queueing behind the thread pool. `credentials` (security.py)
    serve TLS, else the port is plaintext; `clients` turns authentication on; `limits`
    (limits.py) override max_batch and max_message_bytes; `tracing` (tracing.py) gives each
    call of the service a span.
    """
    limits = limits or Limits(max_batch=max_batch, max_message_bytes=max_message_bytes)
    # The first interceptor runs first: strangers are refused before anything is parsed or counted.
    interceptors: list[grpc.ServerInterceptor] = [AuthInterceptor(clients)] if clients else []
    if tracing is not None:
        interceptors.insert(0, tracing.grpc_interceptor())  # outermost: refused calls have spans too
    interceptors += [RequestGuard(limits), ObservingInterceptor()]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", limits.max_message_bytes),
            *options,
        ],
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
        interceptors=interceptors,  # the observer: metrics and one log line per evaluation
    )
    servicer = RulesEngineServicer(service, max_batch=limits.max_batch)
    add_service(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
        server,
    )
    # add_*_port raise RuntimeError when the address cannot be bound.
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    return server, bound, health_servicer


def serve_forever(
    service: EvaluationService,
    settings: Settings | None = None,
    watcher: Watcher | None = None,
    tracing: Tracing | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then report NOT_SERVING and let calls in flight finish.

    With a `watcher`, rulesets reload when their files change and on SIGHUP; with `tracing`,
    both doors give each call a span.
    """
    settings = settings or Settings()
    try:
        clients = clients_from(settings)
    except ClientsFileError as exc:
        raise StartupError(f"{exc} (--clients-file / RULES_ENGINE_CLIENTS_FILE)") from None
    limits = limits_from(settings)
    try:
        server, port, health_servicer = build_server(
            service,
            settings.host,
            settings.port,
            settings.max_workers,
            options=[("grpc.so_reuseport", 1 if settings.reuse_port else 0)],
            credentials=credentials_from(settings),
            clients=clients,
            limits=limits,
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
            tracing=tracing,
        )
    except RuntimeError as exc:
        # grpcio: "Failed to bind to address [::]:50051; set GRPC_VERBOSITY=debug ..."
        if "bind" not in str(exc):
            raise
        raise port_in_use(settings.port, "--port", "RULES_ENGINE_PORT", GRPC_PORT_REMEDY) from None
    http = None
    if settings.http_port:
        from rules_engine.server.http import http_door

        # Bound before gRPC starts: a taken HTTP port stops the start-up with nothing serving.
        http = http_door(service, settings, clients, limits, tracing)
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stopping.set()

    # Signal handlers can only be installed from the main thread (tests call build_server instead).
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    if watcher is not None:
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda _signum, _frame: watcher.trigger())
        watcher.start()
    server.start()
    log.info("serving %s on %s:%d", SERVICE_NAME, settings.host, port)
    try:
        if http is not None:
            http.start()  # a StartupError stops gRPC again (finally) and reaches `serve`
            log.info("serving %s over HTTP (Connect) on %s:%d", SERVICE_NAME, settings.host, http.port)
        stopping.wait()
    finally:
        # NOT_SERVING first (and /healthz 503), so load balancers stop routing here while calls
        # in flight finish on both doors.
        health_servicer.enter_graceful_shutdown()
        stopped = server.stop(settings.grace_seconds)
        if http is not None:
            http.stop(settings.grace_seconds + 1)
        stopped.wait()
        if watcher is not None:
            watcher.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")

"""The HTTP door: RulesEngineService over Connect (JSON and binary, and gRPC-Web) on its own port.

One ASGI app per worker process (http_app.py, behind the interceptors of
http_interceptors.py), served by uvicorn embedded in a thread of its own, on a socket the
worker binds itself (SO_REUSEPORT when workers share the port), with the gRPC door's TLS
files, reloaded when they change. With a client CA, a client certificate's common name
reaches the auth check through a uvicorn protocol that puts the peer certificate in the ASGI
scope (`PeerCertificateProtocol`; uvicorn releases do not, see docs/design/http-door.md), on
HTTP/1.1 and HTTP/2 alike.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto_zttp_impl import AutoZttpProtocol

from rules_engine.config import Settings
from rules_engine.errors import StartupError
from rules_engine.server.http_app import AsgiApp, HttpDoor, workbench_admission
from rules_engine.server.http_interceptors import connect_interceptors
from rules_engine.server.limits import Limits
from rules_engine.server.preflight import HTTP_PORT_REMEDY, port_in_use
from rules_engine.server.security import ClientRegistry
from rules_engine.server.tracing import Tracing
from rules_engine.service.ports import EvaluationService

log = logging.getLogger(__name__)


# -- mutual TLS: the peer certificate into the ASGI scope -------------------------------------


def peer_tls(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    """The ASGI TLS extension for a connection's verified client certificate (None without one):
    `client_cert_chain` (the leaf, PEM) and `client_common_name` (its subject CN, our own key)."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if ssl_object is None or not der:
        return None
    subject: Any = (ssl_object.getpeercert() or {}).get("subject", ())  # ((("commonName", name),), ...)
    names = [value for rdn in subject for key, value in rdn if key == "commonName"]
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
        "client_common_name": names[0] if names else None,
    }


class PeerCertificateProtocol(AutoZttpProtocol):
    """uvicorn's HTTP/1.1-or-HTTP/2 connection dispatcher (zttp), plus the ASGI TLS extension with
    the client certificate in every request's scope, on either HTTP version.

    uvicorn 0.55 puts no TLS information in the scope (upstream PR #3132 would). Over TLS the
    dispatcher picks the HTTP version by ALPN when the connection is made, before any request;
    the chosen protocol's app is then wrapped to add the connection's certificate. Leans on
    uvicorn's internals (`_switch`, the protocol's `app`), so uvicorn and zttp are pinned and
    tests/e2e/test_http_door.py checks it on both versions.
    """

    def _switch(self, http2: bool, initial_data: bytes = b"") -> None:
        super()._switch(http2, initial_data)
        tls = peer_tls(self.transport.get_extra_info("ssl_object"))
        if tls is None:
            return
        protocol: Any = self.transport.get_protocol()
        app = protocol.app

        async def with_peer(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = tls
            await app(scope, receive, send)

        protocol.app = with_peer


# -- running it: uvicorn in a thread of the worker --------------------------------------------


def bind_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening socket as gRPC binds its own: SO_REUSEADDR, dual stack for ::, and SO_REUSEPORT
    when the workers share the port. A taken port is a StartupError naming --http-port."""
    address = host.strip("[]") or "::"
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host} ({exc.strerror}); check --host / RULES_ENGINE_HOST") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(port, "--http-port", "RULES_ENGINE_HTTP_PORT", HTTP_PORT_REMEDY) from None
        raise StartupError(
            f"cannot listen on {host}:{port}: {exc.strerror} (--http-port / RULES_ENGINE_HTTP_PORT)"
        ) from None
    sock.setblocking(False)
    return sock


class ReloadingCertificates:
    """uvicorn's ssl_context_factory: TLS from the files as they are now, as the gRPC door's
    credentials (security.server_credentials) are. At a handshake, at most once a second, the
    files' mtimes and sizes are compared; when one changed, a fresh context (built by uvicorn's
    own factory from the same paths) serves that handshake and the later ones. Files that do not
    load keep the previous context."""

    def __init__(self, files: Iterable[Path]) -> None:
        self._files = tuple(files)
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._stamp: tuple[tuple[int, int], ...] = ()
        self._build: Callable[[], ssl.SSLContext] | None = None
        self._current: ssl.SSLContext | None = None

    def _file_stamp(self) -> tuple[tuple[int, int], ...]:
        return tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in self._files)

    def __call__(self, _config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        self._build, self._stamp = default, self._file_stamp()
        self._current = self._fresh()
        return self._current

    def _fresh(self) -> ssl.SSLContext:
        assert self._build is not None
        context = self._build()
        context.sni_callback = self._on_hello  # called for every handshake, with or without SNI
        return context

    def _on_hello(self, connection: ssl.SSLObject | ssl.SSLSocket, _name: str | None, used: ssl.SSLContext) -> None:
        now = time.monotonic()
        if now - self._checked >= 1.0:
            with self._lock:
                self._checked = now
                try:
                    stamp = self._file_stamp()
                    if stamp != self._stamp:
                        self._current, self._stamp = self._fresh(), stamp
                        log.info("TLS certificates reloaded (HTTP door)")
                except (OSError, ssl.SSLError) as exc:
                    log.warning("TLS files not reloaded (HTTP door): %s", type(exc).__name__)
        if self._current is not None and self._current is not used:
            connection.context = self._current


def uvicorn_config(app: AsgiApp, settings: Settings) -> uvicorn.Config:
    """uvicorn for one worker: our logging (none of its own), no lifespan, the gRPC door's TLS files."""
    tls: dict[str, Any] = {}
    if settings.tls_cert is not None and settings.tls_key is not None:
        tls = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
        files = [settings.tls_cert, settings.tls_key]
        if settings.tls_client_ca is not None:
            tls |= {"ssl_ca_certs": str(settings.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
            files.append(settings.tls_client_ca)
        tls["ssl_context_factory"] = ReloadingCertificates(files)
    return uvicorn.Config(
        app,
        # HTTP/1.1 and HTTP/2 (h2c with prior knowledge, h2 by ALPN) through zttp, chosen per
        # connection by the dispatcher that also hands client certificates to the app.
        http=PeerCertificateProtocol,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=max(1, round(settings.grace_seconds)),
        **tls,
    )


class HttpServer:
    """uvicorn serving `door` on an already bound socket, in its own thread and event loop."""

    def __init__(self, door: HttpDoor, sock: socket.socket, settings: Settings) -> None:
        self.door = door
        self.port: int = sock.getsockname()[1]
        self._socket = sock
        self._server = uvicorn.Server(uvicorn_config(door, settings))
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._failed: BaseException | None = None
        # uvicorn's own lines ("Started server process", "Waiting for connections to close") say
        # what server.py already logs; its warnings and errors still come through.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # SystemExit from uvicorn's startup included
            self._failed = exc
            log.error("the HTTP door stopped", exc_info=exc)

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; raise StartupError if uvicorn has not started within `timeout` seconds."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise StartupError(f"the HTTP door did not start on port {self.port}: {self._failed!r}")
            time.sleep(0.01)

    def stop(self, timeout: float) -> None:
        """Stop accepting, let calls in flight finish (uvicorn's graceful timeout), join the thread."""
        self.door.serving = False
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5)


def http_door(
    service: EvaluationService,
    settings: Settings,
    clients: ClientRegistry | None,
    limits: Limits,
    tracing: Tracing | None = None,
) -> HttpServer | None:
    """The HTTP door on settings.http_port, bound but not started (None when the port is 0).

    The port is bound here, in the worker, with SO_REUSEPORT when workers share it; a taken
    port is a StartupError naming --http-port.
    """
    if not settings.http_port:
        return None
    from rules_engine.service.connect_servicer import build_connect_app

    connect_app = build_connect_app(
        service,
        interceptors=connect_interceptors(clients, limits, tracing),
        max_batch=limits.max_batch,
        read_max_bytes=limits.max_message_bytes,
        # A stateless Evaluate still records its decision: in memory that is cheap enough for the
        # event loop; with Redis it is a network round trip, so the call goes to a thread.
        evaluate_inline=not settings.shares_state,
    )
    door = HttpDoor(
        connect_app, cors_origins=frozenset(settings.cors_origins), workbench=workbench_app(service, settings, clients)
    )
    return HttpServer(door, bind_socket(settings.host, settings.http_port, settings.reuse_port), settings)


def workbench_app(service: EvaluationService, settings: Settings, clients: ClientRegistry | None) -> AsgiApp | None:
    """The workbench over the service's engine (None when it is off, or the service is not an Engine:
    the workbench reads its registry and store); its API admitted by the clients file when set."""
    from rules_engine.engine.engine import Engine

    if not settings.workbench or not isinstance(service, Engine):
        return None
    from rules_engine.workbench import WorkbenchOptions, build_workbench

    options = WorkbenchOptions(max_body_bytes=settings.max_message_bytes, allow_paths=settings.workbench_paths)
    admit = workbench_admission(clients) if clients is not None else None
    log.info("the workbench is on at /workbench/ (operator role)" if admit else "the workbench is on at /workbench/")
    return build_workbench(service, options, admit)

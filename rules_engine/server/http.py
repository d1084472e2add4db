"""The HTTP door: RulesEngineService over Connect (JSON and binary, and gRPC-Web) on its own port.

One ASGI app per worker process, served by uvicorn embedded in a thread of its own:
- the Connect app (service/connect_servicer.py) for `/rules_engine.v1.RulesEngineService/…`,
  behind the interceptors that give it the gRPC door's rules: authentication with the same
  clients and roles (security.refusal), calls at once per process, the same request limits
  (limits.breach), the same metrics with `protocol="connect"` and the same log line
  (interceptors.call_recorder);
- `/healthz` (200 while serving, 503 once shutting down) for load balancers and probes;
- `/openapi.json`, the document proto/openapi.py builds into rules_engine/_generated;
- CORS for the origins allowed by `--cors-origin` (none by default), with the headers
  Connect and gRPC-Web need.

Refusals are Connect errors with the gRPC door's messages; field refusals carry the same
`google.rpc.BadRequest` details. With a client CA, a client certificate's common name
reaches the auth check through a uvicorn protocol that puts the peer certificate in the
ASGI scope (`TlsHttpToolsProtocol`; uvicorn releases do not, see docs/design/http-door.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.request import RequestContext
from google.protobuf.message import Message
from protobuf.wkt import Any as AnyDetail
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rules_engine.config import Settings
from rules_engine.errors import StartupError
from rules_engine.server.interceptors import call_recorder
from rules_engine.server.limits import Limits, breach
from rules_engine.server.preflight import HTTP_PORT_REMEDY, port_in_use
from rules_engine.server.security import ClientRegistry, bearer_token, refusal
from rules_engine.server.tracing import CONNECT, Tracing, annotate, annotate_batch, batch_item, finish, traced
from rules_engine.service.outcomes import DEADLINE_PASSED, Refusal, bad_request, log_failure
from rules_engine.service.ports import EvaluationService

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVICE_NAME = "rules_engine.v1.RulesEngineService"
SERVICE_PATH = f"/{SERVICE_NAME}/"
OPENAPI_FILE = Path(__file__).resolve().parent.parent / "_generated" / "openapi.json"
PROTOCOL = "connect"

# What a browser may send and read, beyond the CORS-safelisted headers: Connect's and
# gRPC-Web's own (as connectrpc's cors packages list them), bearer tokens and trace context.
CORS_ALLOW_HEADERS = (
    "Content-Type, Connect-Protocol-Version, Connect-Timeout-Ms, Connect-Content-Encoding, "
    "Connect-Accept-Encoding, Grpc-Timeout, X-Grpc-Web, X-User-Agent, Authorization, traceparent, tracestate"
)
CORS_EXPOSE_HEADERS = "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Content-Encoding, Connect-Content-Encoding"
CORS_MAX_AGE_SECONDS = 7200

# The client certificate's common name of the connection a call came on (set per request by
# the dispatcher, read by the auth interceptor in the same task).
_PEER_COMMON_NAME: contextvars.ContextVar[str | None] = contextvars.ContextVar("peer_common_name", default=None)

# Connect's code names for the gRPC ones the servers share (Connect spells CANCELED with one L).
_GRPC_NAMES = {Code.CANCELED: "CANCELLED"}


BAD_REQUEST = "google.rpc.BadRequest"


def grpc_code_name(code: Code) -> str:
    return _GRPC_NAMES.get(code, code.name)


def connect_error(refusal: Refusal) -> ConnectError:
    """A refusal as the Connect error the HTTP door answers with: the gRPC door's code and message,
    and the same google.rpc.BadRequest details when it names fields."""
    details = []
    if refusal.violations is not None:
        packed = bad_request(refusal.violations).SerializeToString()
        details.append(ErrorDetail(AnyDetail(type_url=f"type.googleapis.com/{BAD_REQUEST}", value=packed)))
    return ConnectError(Code[refusal.code.name], refusal.message, details)


# -- interceptors: the gRPC door's rules, for Connect calls -----------------------------------


class Authenticating:
    """Admits a call only from a known client whose role allows the method (security.refusal).

    A metadata interceptor first in the list: the runtime runs it before reading the body.
    """

    def __init__(self, clients: ClientRegistry) -> None:
        self._clients = clients

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        authorization = ctx.request_headers.get("authorization")
        token = bearer_token(authorization) if authorization is not None else None
        refused = refusal(self._clients, ctx.method.name, token, _PEER_COMMON_NAME.get() if token is None else None)
        if refused is not None:
            raise connect_error(refused)

    async def on_end(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None) -> None:
        return None


class Admitting:
    """At most `limit` calls at once in this process's HTTP door; past it RESOURCE_EXHAUSTED at
    once, as grpcio's maximum_concurrent_rpcs answers on the other door (each door has its own)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_flight = 0  # only the event loop's thread touches it

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        if self._in_flight >= self._limit:
            raise ConnectError(Code.RESOURCE_EXHAUSTED, f"more than {self._limit} calls at once; retry")
        self._in_flight += 1

    async def on_end(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None) -> None:
        self._in_flight -= 1


def _past_deadline(ctx: RequestContext[Any, Any]) -> bool:
    remaining = ctx.timeout_ms
    return remaining is not None and remaining <= 0


class Limiting:
    """The request limits of limits.py (sizes, facts, string lengths, batch size) and the deadline."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    def _check(self, request: Message, ctx: RequestContext[Any, Any]) -> None:
        if _past_deadline(ctx):
            raise ConnectError(Code.DEADLINE_EXCEEDED, DEADLINE_PASSED)
        refused = breach(request, self._limits)
        if refused is not None:
            raise connect_error(refused)

    async def intercept_unary(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]], request: Any, ctx: Any
    ) -> Any:
        self._check(request, ctx)
        return await call_next(request, ctx)

    async def intercept_server_stream(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]], request: Any, ctx: Any
    ) -> AsyncIterator[Any]:
        self._check(request, ctx)
        async for response in call_next(request, ctx):
            yield response


def _code_of(error: BaseException, ctx: RequestContext[Any, Any]) -> str:
    if isinstance(error, ConnectError):
        return grpc_code_name(error.code)
    if isinstance(error, asyncio.CancelledError):
        # The runtime cancels the call when Connect-Timeout-Ms runs out, or the client left.
        return "DEADLINE_EXCEEDED" if _past_deadline(ctx) else "CANCELLED"
    return "UNKNOWN"


class Observing:
    """Counts, times and logs every call as the gRPC door's ObservingInterceptor does, labelled connect."""

    def __init__(self) -> None:
        self._recorders: dict[str, tuple[Any, Any]] = {}

    def _recorder(self, ctx: RequestContext[Any, Any]) -> tuple[Any, Any]:
        name = ctx.method.name
        found = self._recorders.get(name)
        if found is None:
            found = self._recorders[name] = call_recorder(f"/{ctx.method.service_name}/{name}", PROTOCOL)
        return found

    async def intercept_unary(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]], request: Any, ctx: Any
    ) -> Any:
        done, _ = self._recorder(ctx)
        started = time.perf_counter()
        try:
            response = await call_next(request, ctx)
        except BaseException as exc:
            _log_unexpected(exc, ctx)
            done(request, None, _code_of(exc, ctx), started)
            raise
        done(request, response, "OK", started)
        return response

    async def intercept_server_stream(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]], request: Any, ctx: Any
    ) -> AsyncIterator[Any]:
        done, summarise = self._recorder(ctx)
        started = time.perf_counter()
        sent: list[Any] = []
        code = "UNKNOWN"
        try:
            async for response in call_next(request, ctx):
                sent.append(None if summarise is None else summarise(response))
                yield response
            code = "OK"
        except GeneratorExit:
            code = "CANCELLED"  # the client went away mid-stream
            raise
        except BaseException as exc:
            _log_unexpected(exc, ctx)
            code = _code_of(exc, ctx)
            raise
        finally:
            done(request, sent, code, started)


def _log_unexpected(exc: BaseException, ctx: RequestContext[Any, Any]) -> None:
    # The servicer turns its failures into Connect errors; anything else is logged as outcomes.py
    # logs failures (type and stack, never the text, which may quote case content).
    if isinstance(exc, Exception) and not isinstance(exc, ConnectError):
        log_failure(ctx.method.name, exc)


# The span of the call in this request's task (set by Spanning.on_start, read by Annotating).
_CALL_SPAN: contextvars.ContextVar[Any] = contextvars.ContextVar("call_span", default=None)


class Spanning:
    """The call's server span (tracing.py), first of all: calls refused by authentication have one too.

    A metadata interceptor, so the runtime still runs the leading ones before reading the body.
    """

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    async def on_start(self, ctx: RequestContext[Any, Any]) -> Any:
        path = f"{ctx.method.service_name}/{ctx.method.name}"
        if not traced(path):
            return None
        span = self._tracing.start(path, CONNECT, ctx.request_headers)
        _CALL_SPAN.set(span)
        return span

    async def on_end(self, span: Any, ctx: RequestContext[Any, Any], error: Exception | None) -> None:
        if span is None:
            return
        code = "OK" if error is None else _code_of(error, ctx)
        if code == "CANCELLED" and _past_deadline(ctx):
            code = "DEADLINE_EXCEEDED"  # the runtime cancels the call when Connect-Timeout-Ms runs out
        finish(span, CONNECT, code, error)


class Annotating:
    """Puts the ruleset and version the call answered on its span (nothing else of the answer)."""

    async def intercept_unary(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]], request: Any, ctx: Any
    ) -> Any:
        response = await call_next(request, ctx)
        span = _CALL_SPAN.get()
        if span is not None:
            annotate(span, response)
        return response

    async def intercept_server_stream(
        self, call_next: Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]], request: Any, ctx: Any
    ) -> AsyncIterator[Any]:
        answered: list[tuple[str, str]] = []
        try:
            async for response in call_next(request, ctx):
                item = batch_item(response)
                if item is not None:
                    answered.append(item)
                yield response
        finally:
            span = _CALL_SPAN.get()
            if span is not None:
                annotate_batch(span, answered)


def connect_interceptors(clients: ClientRegistry | None, limits: Limits, tracing: Tracing | None = None) -> list[Any]:
    """The interceptors in the gRPC door's order: the span (when tracing), strangers refused, then
    overload, limits, observing."""
    interceptors: list[Any] = [Spanning(tracing)] if tracing is not None else []
    interceptors += [Authenticating(clients)] if clients is not None else []
    interceptors += [Admitting(limits.max_concurrent_rpcs), Limiting(limits), Observing()]
    return [*interceptors, Annotating()] if tracing is not None else interceptors


# -- the dispatcher: health, the OpenAPI document, CORS, then the Connect app ------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _answer(
    send: Send, status: int, body: bytes, content_type: bytes, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _problem(message: str) -> bytes:
    return json.dumps({"message": message}).encode() + b"\n"


@dataclass
class HttpDoor:
    """The ASGI app: /healthz, /openapi.json, CORS, and the Connect app for the service's paths."""

    connect_app: AsgiApp
    cors_origins: frozenset[str] = frozenset()
    openapi_file: Path = OPENAPI_FILE
    serving: bool = True

    def __post_init__(self) -> None:
        self._openapi: bytes | None = None

    def openapi(self) -> bytes | None:
        if self._openapi is None:
            try:
                self._openapi = self.openapi_file.read_bytes()
            except OSError:
                return None  # not built yet: looked for again on the next request
        return self._openapi

    def _allowed(self, origin: str | None) -> bool:
        return origin is not None and (origin in self.cors_origins or "*" in self.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: uvicorn closes the connection
        path, method = scope["path"], scope["method"]
        origin = _header(scope, b"origin") if self.cors_origins else None
        if origin is not None and method == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await self._preflight(send, origin)
            return
        if path.startswith(SERVICE_PATH):
            _PEER_COMMON_NAME.set(_common_name(scope))
            if self._allowed(origin):
                send = _with_cors(send, origin or "")
            await self.connect_app(scope, receive, send)
            return
        cors = _cors_headers(origin or "") if self._allowed(origin) else []
        if path == "/healthz" and method in ("GET", "HEAD"):
            if self.serving:
                await _answer(send, 200, b"serving\n", b"text/plain; charset=utf-8", cors)
            else:
                await _answer(send, 503, b"shutting down\n", b"text/plain; charset=utf-8", cors)
        elif path == "/openapi.json" and method in ("GET", "HEAD"):
            document = self.openapi()
            if document is None:
                message = "the OpenAPI document has not been generated (python proto/generate.py writes it)"
                await _answer(send, 404, _problem(message), b"application/json", cors)
            else:
                await _answer(send, 200, document, b"application/json", cors)
        else:
            message = f"no such path: {path}; the service is at {SERVICE_PATH}<Method>, also /healthz and /openapi.json"
            await _answer(send, 404, _problem(message), b"application/json", cors)

    async def _preflight(self, send: Send, origin: str) -> None:
        if not self._allowed(origin):
            # No CORS headers: the browser refuses the call; say why to whoever reads it.
            await _answer(send, 403, _problem(f"origin {origin} is not allowed (--cors-origin)"), b"application/json")
            return
        headers = [
            *_cors_headers(origin),
            (b"access-control-allow-methods", b"GET, POST"),
            (b"access-control-allow-headers", CORS_ALLOW_HEADERS.encode()),
            (b"access-control-max-age", str(CORS_MAX_AGE_SECONDS).encode()),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", CORS_EXPOSE_HEADERS.encode()),
        (b"vary", b"Origin"),
    ]


def _with_cors(send: Send, origin: str) -> Send:
    async def sending(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *_cors_headers(origin)]}
        await send(message)

    return sending


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _common_name(scope: Scope) -> str | None:
    tls = scope.get("extensions", {}).get("tls")
    return None if tls is None else tls.get("client_common_name")


# -- mutual TLS: the peer certificate into the ASGI scope -------------------------------------


class TlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the ASGI TLS extension with the client certificate.

    uvicorn 0.55 puts no TLS information in the scope (upstream PR #3132 would); this reads the
    verified peer certificate from the connection and adds `client_cert_chain` (the leaf, PEM)
    and `client_common_name` (its subject CN, our own key). Leans on uvicorn's internals, so
    uvicorn is pinned and tests/e2e/test_http_door.py checks it.
    """

    def on_message_begin(self) -> None:
        super().on_message_begin()
        peer = self.transport.get_extra_info("ssl_object")
        if peer is None:
            return
        der = peer.getpeercert(binary_form=True)
        subject = (peer.getpeercert() or {}).get("subject", ())
        names = [value for rdn in subject for key, value in rdn if key == "commonName"]
        extensions = self.scope.setdefault("extensions", {})
        extensions["tls"] = {
            "server_cert": None,
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
            "client_common_name": names[0] if names else None,
        }


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
        http=TlsHttpToolsProtocol if settings.tls_client_ca is not None else "httptools",
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
    )
    door = HttpDoor(connect_app, cors_origins=frozenset(settings.cors_origins))
    return HttpServer(door, bind_socket(settings.host, settings.http_port, settings.reuse_port), settings)

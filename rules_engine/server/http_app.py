"""The HTTP door's ASGI app: `/healthz`, `/openapi.json` and CORS in front of the Connect app.

- `/healthz`: 200 while serving, 503 once shutting down, for load balancers and probes;
- `/openapi.json`: the document proto/openapi.py builds into rules_engine/_generated;
- CORS for the origins `--cors-origin` allows (none by default), with the headers Connect and
  gRPC-Web need;
- everything under `/rules_engine.v1.RulesEngineService/` goes to the Connect app, with the
  client certificate's common name (when mutual TLS gave one) handed to the auth interceptor;
- everything under `/workbench` goes to the workbench (rules_engine/workbench) when it is on,
  its API admitted by `workbench_admission` (the operator role) when a clients file is set.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules_engine.server.http_interceptors import PEER_COMMON_NAME
from rules_engine.server.security import ClientRegistry, bearer_token, refusal
from rules_engine.service.outcomes import Refusal

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVICE_NAME = "rules_engine.v1.RulesEngineService"
SERVICE_PATH = f"/{SERVICE_NAME}/"
WORKBENCH_PATH = "/workbench"
# The name the workbench's API is admitted under: not a caller's method (security.CALLER_METHODS),
# so it needs the operator role, and refusals are logged under it.
WORKBENCH_METHOD = "Workbench"
OPENAPI_FILE = Path(__file__).resolve().parent.parent / "_generated" / "openapi.json"


# What a browser may send and read, beyond the CORS-safelisted headers: Connect's and
# gRPC-Web's own (as connectrpc's cors packages list them), bearer tokens and trace context.
CORS_ALLOW_HEADERS = (
    "Content-Type, Connect-Protocol-Version, Connect-Timeout-Ms, Connect-Content-Encoding, "
    "Connect-Accept-Encoding, Grpc-Timeout, X-Grpc-Web, X-User-Agent, Authorization, traceparent, tracestate"
)
CORS_EXPOSE_HEADERS = "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Content-Encoding, Connect-Content-Encoding"
CORS_MAX_AGE_SECONDS = 7200

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
    # The workbench's app for /workbench and below; None: off (404 there).
    workbench: AsgiApp | None = None

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
            PEER_COMMON_NAME.set(_common_name(scope))
            if self._allowed(origin):
                send = _with_cors(send, origin or "")
            await self.connect_app(scope, receive, send)
            return
        if self.workbench is not None and (path == WORKBENCH_PATH or path.startswith(WORKBENCH_PATH + "/")):
            # Same-origin pages: no CORS headers, so another origin's script cannot read the API.
            await self.workbench(scope, receive, send)
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
            also = "/healthz, /openapi.json" + (" and /workbench/" if self.workbench is not None else "")
            message = f"no such path: {path}; the service is at {SERVICE_PATH}<Method>, also {also}"
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


def workbench_admission(clients: ClientRegistry) -> Callable[[Scope], Refusal | None]:
    """The workbench API's admission check: the operator role, by bearer token or (without one)
    the client certificate's common name, refused and logged as the Connect door refuses."""

    def admit(scope: Scope) -> Refusal | None:
        authorization = _header(scope, b"authorization")
        token = bearer_token(authorization) if authorization else None
        return refusal(clients, WORKBENCH_METHOD, token, _common_name(scope) if token is None else None)

    return admit

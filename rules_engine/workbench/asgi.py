"""The workbench's HTTP plumbing: ASGI types, bounded JSON bodies, answers and the API's error shapes.

The workbench is a raw ASGI app, as the HTTP door's dispatcher is (server/http_app.py): it has
a dozen routes and no need for a framework. Every error the API gives is an `ApiError`, sent as

    {"error": "...", "violations": [{"field", "description"}]}          a bad request field
    {"error": "...", "problems": [{"file", "line", "column", "message"}]}   a bad rule file

so the pages show one shape whatever went wrong.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from rules_engine.errors import FieldViolation

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# Everything under /workbench/ loads from this server alone: no CDN, no inline or eval'd script
# (vega runs with its CSP-safe expression interpreter). Inline styles are allowed because vega's
# tooltip injects a <style> element; styles cannot fetch anything from elsewhere under this policy.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
SECURITY_HEADERS: Headers = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
JSON = b"application/json"


class ApiError(Exception):
    """A refusal of a workbench call: its HTTP status and the JSON body the page shows."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        violations: Sequence[FieldViolation] | None = None,
        problems: Sequence[dict[str, Any]] | None = None,
        headers: Headers | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.violations = violations
        self.problems = problems
        self.headers = headers or []

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.violations is not None:
            body["violations"] = [{"field": v.field, "description": v.description} for v in self.violations]
        if self.problems is not None:
            body["problems"] = list(self.problems)
        return body


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first, latin-1 as HTTP defines), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request's body; 413 as soon as it passes `limit` bytes (nothing more is kept)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body is larger than {limit:,} bytes")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def read_json(scope: Scope, receive: Receive, limit: int) -> dict[str, Any]:
    """The body as a JSON object. Only `application/json` is read: a cross-site form cannot send
    that without a CORS preflight, which this server does not grant for the workbench."""
    kind = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
    data = await read_body(receive, limit)
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "the body must be a JSON object")
    return document


async def answer(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: Iterable[tuple[bytes, bytes]] = (),
    head: bool = False,
) -> None:
    """One whole response; `head`: the headers alone (a HEAD request)."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


def to_json(document: Any) -> bytes:
    # allow_nan=False: a NaN would be invalid JSON in the browser; no measure gives one.
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode() + b"\n"


async def answer_json(send: Send, status: int, document: Any, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    # Answers may hold case facts: never kept by a browser cache or a proxy.
    headers = [*SECURITY_HEADERS, (b"cache-control", b"no-store"), *extra]
    await answer(send, status, to_json(document), JSON, headers)


async def answer_error(send: Send, error: ApiError) -> None:
    await answer_json(send, error.status, error.body(), error.headers)

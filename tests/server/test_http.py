"""server/http_app.py and http.py in process: the dispatcher (health, OpenAPI, CORS, unknown paths), the
`--cors-origin` parser and the start-up checks of the HTTP port. The door through a real
`serve` is tests/e2e/test_http_door.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from rules_engine.config import Settings, parse_cors_origins
from rules_engine.errors import StartupError
from rules_engine.server.http import bind_socket
from rules_engine.server.http_app import HttpDoor
from rules_engine.server.preflight import check_settings

ORIGIN = "https://workbench.example.org"


async def _connect_stand_in(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


def _call(door: HttpDoor, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=door)
        async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(run())


def test_healthz_is_503_once_shutting_down(tmp_path: Path) -> None:
    door = HttpDoor(_connect_stand_in, openapi_file=tmp_path / "none.json")
    assert _call(door, "GET", "/healthz").status_code == 200
    door.serving = False
    assert _call(door, "GET", "/healthz").status_code == 503


def test_openapi_is_404_with_a_reason_until_generated_then_served(tmp_path: Path) -> None:
    door = HttpDoor(_connect_stand_in, openapi_file=tmp_path / "openapi.json")
    missing = _call(door, "GET", "/openapi.json")
    assert missing.status_code == 404 and "generate" in missing.json()["message"]
    (tmp_path / "openapi.json").write_text('{"openapi": "3.1.0"}')
    assert _call(door, "GET", "/openapi.json").json() == {"openapi": "3.1.0"}


def test_cors_is_off_unless_origins_are_allowed(tmp_path: Path) -> None:
    preflight = {"origin": ORIGIN, "access-control-request-method": "POST"}
    off = HttpDoor(_connect_stand_in, openapi_file=tmp_path / "x")
    answer = _call(off, "OPTIONS", "/rules_engine.v1.RulesEngineService/Evaluate", preflight)
    assert "access-control-allow-origin" not in answer.headers  # passed to the Connect app
    on = HttpDoor(_connect_stand_in, cors_origins=frozenset({ORIGIN}), openapi_file=tmp_path / "x")
    answer = _call(on, "OPTIONS", "/rules_engine.v1.RulesEngineService/Evaluate", preflight)
    assert answer.status_code == 204 and answer.headers["access-control-allow-origin"] == ORIGIN
    assert answer.headers["vary"] == "Origin"
    any_origin = HttpDoor(_connect_stand_in, cors_origins=frozenset({"*"}), openapi_file=tmp_path / "x")
    assert _call(any_origin, "GET", "/healthz", {"origin": "https://a.example"}).headers[
        "access-control-allow-origin"
    ] == ("https://a.example")


def test_cors_origins_parse_from_repeats_and_comma_lists() -> None:
    assert parse_cors_origins([f"{ORIGIN}/, https://cms.example.org:8443", ORIGIN]) == (
        ORIGIN,
        "https://cms.example.org:8443",
    )
    assert parse_cors_origins(["*"]) == ("*",)
    for wrong in ("workbench.example.org", "https://example.org/path", "https://"):
        with pytest.raises(ValueError, match="not an origin"):
            parse_cors_origins([wrong])


def test_a_taken_http_port_names_the_flag() -> None:
    taken = bind_socket("127.0.0.1", 0, reuse_port=False)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match="--http-port / RULES_ENGINE_HTTP_PORT"):
            bind_socket("127.0.0.1", port, reuse_port=False)
        settings = Settings(plaintext=True, host="127.0.0.1", port=0, http_port=port, metrics_port=0)
        with pytest.raises(StartupError, match="--http-port"):
            check_settings(settings)
    finally:
        taken.close()


def test_the_http_port_must_differ_from_the_grpc_port() -> None:
    settings = Settings(plaintext=True, host="127.0.0.1", port=50999, http_port=50999, metrics_port=0)
    with pytest.raises(StartupError, match="--http-port and --port are both 50999"):
        check_settings(settings)

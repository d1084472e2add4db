"""The workbench as the HTTP door mounts it (server/http_app.py): /workbench dispatched to it, its
API behind the operator role when a clients file is set (401 without known credentials, 403 for
a caller, 200 for an operator, by token or certificate; the equality report too), the pages without
a token, and off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rules_engine.config import Settings
from rules_engine.engine.engine import Engine
from rules_engine.server.http import workbench_app
from rules_engine.server.http_app import HttpDoor, workbench_admission
from rules_engine.server.security import ClientRegistry
from tests.workbench.conftest import Client, make_workbench

CALLER, OPERATOR = "caller-token-0123456789", "operator-token-0123456789"
CLIENTS = f"{CALLER} caller case-system\n{OPERATOR} operator policy-team\ncn:policy-cert operator policy-cert\n"


async def _connect_stand_in(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
def clients(tmp_path: Path) -> ClientRegistry:
    (tmp_path / "clients").write_text(CLIENTS)
    return ClientRegistry(tmp_path / "clients")


@pytest.fixture
def pages(tmp_path: Path) -> Path:
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>workbench</title>")
    return static


def door(engine: Engine, clients: ClientRegistry | None, pages: Path) -> Client:
    admit = workbench_admission(clients) if clients is not None else None
    workbench = make_workbench(engine, admit, static_dir=pages)
    return Client(HttpDoor(_connect_stand_in, workbench=workbench))


def test_with_a_clients_file_the_api_needs_an_operator(engine: Engine, clients: ClientRegistry, pages: Path) -> None:
    client = door(engine, clients, pages)
    missing = client.get("/workbench/api/rulesets")
    assert missing.status_code == 401
    assert missing.json() == {"error": "a known client token or certificate is required"}
    assert missing.headers["www-authenticate"].startswith("Bearer")
    unknown = client.get("/workbench/api/rulesets", headers={"authorization": "Bearer not-a-known-token-at-all"})
    assert unknown.status_code == 401
    caller = client.get("/workbench/api/rulesets", headers={"authorization": f"Bearer {CALLER}"})
    assert caller.status_code == 403 and caller.json() == {"error": "Workbench needs the operator role"}
    operator = client.get("/workbench/api/rulesets", headers={"authorization": f"Bearer {OPERATOR}"})
    assert operator.status_code == 200 and operator.json()["rulesets"]
    # Every API path is behind the check, an unknown one too: nothing tells a stranger what exists.
    assert client.post("/workbench/api/evaluate", json={}).status_code == 401
    assert client.get("/workbench/api/no-such-thing").status_code == 401


def test_the_equality_report_needs_an_operator(engine: Engine, clients: ClientRegistry, pages: Path) -> None:
    # Aggregates only, but still the operators': a case system's caller token is refused.
    client = door(engine, clients, pages)
    path = "/workbench/api/equality?ruleset=mini"
    assert client.get(path).status_code == 401
    caller = client.get(path, headers={"authorization": f"Bearer {CALLER}"})
    assert caller.status_code == 403 and caller.json() == {"error": "Workbench needs the operator role"}
    operator = client.get(path, headers={"authorization": f"Bearer {OPERATOR}"})
    assert operator.status_code == 200 and operator.json()["ruleset"] == "mini"


def test_a_client_certificate_names_an_operator(engine: Engine, clients: ClientRegistry, pages: Path) -> None:
    admit = workbench_admission(clients)
    with_cert = {"type": "http", "headers": [], "extensions": {"tls": {"client_common_name": "policy-cert"}}}
    assert admit(with_cert) is None
    other = {"type": "http", "headers": [], "extensions": {"tls": {"client_common_name": "someone-else"}}}
    refused = admit(other)
    assert refused is not None and refused.code.name == "UNAUTHENTICATED"


def test_the_pages_load_without_a_token(engine: Engine, clients: ClientRegistry, pages: Path) -> None:
    client = door(engine, clients, pages)
    redirect = client.get("/workbench")
    assert redirect.status_code == 308 and redirect.headers["location"] == "/workbench/"
    page = client.get("/workbench/")
    assert page.status_code == 200 and page.text.startswith("<!doctype html>")
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_without_a_clients_file_the_api_is_open(engine: Engine, pages: Path) -> None:
    assert door(engine, None, pages).get("/workbench/api/samples").status_code == 200


def test_the_workbench_is_on_by_default_and_can_be_turned_off(engine: Engine) -> None:
    assert workbench_app(engine, Settings(), None) is not None
    assert workbench_app(engine, Settings(workbench=False), None) is None
    off = Client(HttpDoor(_connect_stand_in))
    answer = off.get("/workbench/")
    assert answer.status_code == 404 and answer.json()["message"].endswith("also /healthz, /openapi.json")

"""The HTTP door through a real `rules-engine serve` on free ports: Connect JSON and binary,
GET, refusals with their details, authentication, deadlines, health, CORS, TLS with client
certificates, and the port turned off. Each answer is compared with the gRPC door's."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from tests.certs import Authority
from tests.redis_server import RedisServer, free_port
from tests.serve_process import ROOT, serve, stop, worker_pids

SERVICE = "/rules_engine.v1.RulesEngineService"
EXAMPLE = json.loads((ROOT / "examples" / "evaluate-request.json").read_text())
CALLER, OPERATOR = "caller-token-0123456789", "operator-token-0123456789"
CLIENTS = f"{CALLER} caller case-system\n{OPERATOR} operator duty-team\ncn:case-system-cert caller case-system-cert\n"
ALLOWED_ORIGIN = "https://workbench.example.org"


@dataclass
class Door:
    http: httpx.Client
    grpc_stub: pb_grpc.RulesEngineServiceStub
    metrics_port: int
    process: subprocess.Popen[str]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    directory = tmp_path_factory.mktemp("http-door")
    (directory / "clients").write_text(CLIENTS)
    port, http_port, metrics_port = free_port(), free_port(), free_port()
    args = (
        "--http-port", str(http_port), "--metrics-port", str(metrics_port),
        "--clients-file", str(directory / "clients"), "--cors-origin", f"{ALLOWED_ORIGIN},https://cms.example.org",
    )  # fmt: skip
    with (
        serve(port, *args) as process,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as client,
    ):
        yield Door(client, pb_grpc.RulesEngineServiceStub(channel), metrics_port, process)


def _post_json(door: Door, method: str, body: Any, token: str | None = CALLER, **headers: str) -> httpx.Response:
    return door.http.post(f"{SERVICE}/{method}", json=body, headers={**(bearer(token) if token else {}), **headers})


def _comparable(response: dict[str, Any]) -> dict[str, Any]:
    # A decision id is new for every call, and a flag's lifecycle state moves on; the rest is the evaluation.
    flags = [{key: value for key, value in flag.items() if key != "state"} for flag in response["flags"]]
    return {**{key: value for key, value in response.items() if key != "decisionId"}, "flags": flags}


def _details(error: dict[str, Any]) -> list[tuple[str, str]]:
    (detail,) = error["details"]
    assert detail["type"] == "google.rpc.BadRequest"
    value = detail["value"] + "=" * (-len(detail["value"]) % 4)
    bad_request = error_details_pb2.BadRequest.FromString(base64.b64decode(value))
    return [(v.field, v.description) for v in bad_request.field_violations]


def test_healthz_answers_while_serving(door: Door) -> None:
    response = door.http.get("/healthz")
    assert response.status_code == 200 and response.text == "serving\n"


def test_the_example_over_connect_json_has_the_grpc_doors_flags(door: Door) -> None:
    # What `curl -H 'Content-Type: application/json' -d @examples/evaluate-request.json …/Evaluate` sends.
    http = door.http.post(
        f"{SERVICE}/Evaluate",
        content=json.dumps(EXAMPLE).encode(),
        headers={"content-type": "application/json", **bearer(CALLER)},
    )
    assert http.status_code == 200, http.text
    assert http.headers["content-type"] == "application/json"
    request = json_format.ParseDict(EXAMPLE, pb.EvaluateRequest())
    over_grpc = door.grpc_stub.Evaluate(request, timeout=10, metadata=tuple(bearer(CALLER).items()))
    answered, expected = http.json(), json_format.MessageToDict(over_grpc)
    assert [f["ruleId"] for f in answered["flags"]] == [f.rule_id for f in over_grpc.flags] != []
    # One engine and one store behind both doors: raised over HTTP, the flags are ongoing over gRPC.
    assert {f["state"] for f in answered["flags"]} == {"FLAG_STATE_NEW"}
    assert {f["state"] for f in expected["flags"]} == {"FLAG_STATE_ONGOING"}
    assert _comparable(answered) == _comparable(expected)


def test_binary_connect_gives_the_same_message(door: Door) -> None:
    request = json_format.ParseDict(EXAMPLE, pb.EvaluateRequest())
    http = door.http.post(
        f"{SERVICE}/Evaluate",
        content=request.SerializeToString(),
        headers={"content-type": "application/proto", **bearer(CALLER)},
    )
    assert http.status_code == 200 and http.headers["content-type"] == "application/proto"
    answered = pb.EvaluateResponse.FromString(http.content)
    over_grpc = door.grpc_stub.Evaluate(request, timeout=10, metadata=tuple(bearer(CALLER).items()))
    assert [f.rule_id for f in answered.flags] == [f.rule_id for f in over_grpc.flags] != []
    assert answered.ruleset_version == over_grpc.ruleset_version


def test_a_grpc_client_is_answered_on_the_http_port_too(door: Door) -> None:
    """The HTTP door's server speaks the gRPC protocol as well (HTTP/2 with trailers): a grpcio
    client pointed at the HTTP port gets the gRPC door's answers, refusals and error details."""
    request = json_format.ParseDict(EXAMPLE, pb.EvaluateRequest())
    metadata = tuple(bearer(CALLER).items())
    with grpc.insecure_channel(str(door.http.base_url).removeprefix("http://").rstrip("/")) as channel:
        stub = pb_grpc.RulesEngineServiceStub(channel)
        on_http_port = stub.Evaluate(request, timeout=10, metadata=metadata)
        over_grpc = door.grpc_stub.Evaluate(request, timeout=10, metadata=metadata)
        assert [f.rule_id for f in on_http_port.flags] == [f.rule_id for f in over_grpc.flags] != []
        assert on_http_port.ruleset_version == over_grpc.ruleset_version
        with pytest.raises(grpc.RpcError) as unauthenticated:
            stub.Evaluate(request, timeout=10)
        assert unauthenticated.value.code() is grpc.StatusCode.UNAUTHENTICATED
        bad = pb.EvaluateRequest()
        bad.CopyFrom(request)
        bad.case.concerns[0].date = "2020-13-45"
        with pytest.raises(grpc.RpcError) as invalid:
            stub.Evaluate(bad, timeout=10, metadata=metadata)
        assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        status = rpc_status.from_call(invalid.value)
        assert status is not None
        (detail,) = status.details
        violations = error_details_pb2.BadRequest()
        assert detail.Unpack(violations)
        assert [v.field for v in violations.field_violations] == ["case.concerns[0].date"]


def test_list_rulesets_answers_get(door: Door) -> None:
    http = door.http.get(
        f"{SERVICE}/ListRulesets", params={"encoding": "json", "message": "{}"}, headers=bearer(CALLER)
    )
    assert http.status_code == 200, http.text
    over_grpc = door.grpc_stub.ListRulesets(pb.ListRulesetsRequest(), metadata=tuple(bearer(CALLER).items()))
    assert http.json() == json_format.MessageToDict(over_grpc)
    # Evaluate has side effects (the decision log): not over GET.
    assert door.http.get(f"{SERVICE}/Evaluate", params={"encoding": "json", "message": "{}"}).status_code == 405


def test_an_invalid_case_is_invalid_argument_with_the_same_field_paths(door: Door) -> None:
    bad = json.loads(json.dumps(EXAMPLE))
    bad["case"]["concerns"][1]["date"] = "not a date"
    http = _post_json(door, "Evaluate", bad)
    assert http.status_code == 400
    error = http.json()
    assert error["code"] == "invalid_argument"
    request = json_format.ParseDict(bad, pb.EvaluateRequest())
    with pytest.raises(grpc.RpcError) as caught:
        door.grpc_stub.Evaluate(request, timeout=10, metadata=tuple(bearer(CALLER).items()))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error["message"] == caught.value.details()
    assert _details(error)[0][0] == "case.concerns[1].date"


def test_limits_refuse_as_on_the_grpc_door(door: Door) -> None:
    long_id = json.loads(json.dumps(EXAMPLE))
    long_id["case"]["caseId"] = "x" * 300
    http = _post_json(door, "Evaluate", long_id)
    assert http.status_code == 400
    assert _details(http.json()) == [("case.case_id", "longer than 256 characters")]


def test_authentication_and_roles(door: Door) -> None:
    unauthenticated = _post_json(door, "Evaluate", EXAMPLE, token=None)
    assert unauthenticated.status_code == 401 and unauthenticated.json()["code"] == "unauthenticated"
    wrong = _post_json(door, "Evaluate", EXAMPLE, token="not-a-known-token-at-all")
    assert wrong.json()["code"] == "unauthenticated"
    # ListDecisions needs the operator role.
    denied = _post_json(door, "ListDecisions", {"limit": 1})
    assert denied.status_code == 403 and denied.json() == {
        "code": "permission_denied",
        "message": "ListDecisions needs the operator role",
    }
    allowed = _post_json(door, "ListDecisions", {"limit": 1}, token=OPERATOR)
    assert allowed.status_code == 200, allowed.text
    # Health and the OpenAPI document stay open, as gRPC health does.
    assert door.http.get("/healthz").status_code == 200


def test_a_deadline_that_has_passed_is_deadline_exceeded(door: Door) -> None:
    http = _post_json(door, "Evaluate", EXAMPLE, **{"connect-timeout-ms": "0"})
    assert http.status_code == 504, http.text
    assert http.json()["code"] == "deadline_exceeded"


def test_an_unknown_ruleset_is_not_found_on_both_doors(door: Door) -> None:
    body = {**EXAMPLE, "ruleset": "no-such-ruleset"}
    http = _post_json(door, "Evaluate", body)
    assert http.status_code == 404 and http.json()["code"] == "not_found", http.text
    with pytest.raises(grpc.RpcError) as refused:
        door.grpc_stub.Evaluate(
            json_format.ParseDict(body, pb.EvaluateRequest()), timeout=10, metadata=tuple(bearer(CALLER).items())
        )
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert http.json()["message"] == refused.value.details()


def test_cors_allows_the_listed_origins_only(door: Door) -> None:
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    allowed = door.http.options(f"{SERVICE}/Evaluate", headers={"origin": ALLOWED_ORIGIN, **preflight})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "Connect-Protocol-Version" in allowed.headers["access-control-allow-headers"]
    assert "Authorization" in allowed.headers["access-control-allow-headers"]
    refused = door.http.options(f"{SERVICE}/Evaluate", headers={"origin": "https://evil.example", **preflight})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers

    call = _post_json(door, "Evaluate", EXAMPLE, origin=ALLOWED_ORIGIN)
    assert call.status_code == 200 and call.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "Grpc-Status" in call.headers["access-control-expose-headers"]
    stranger = _post_json(door, "Evaluate", EXAMPLE, origin="https://evil.example")
    assert "access-control-allow-origin" not in stranger.headers


def test_openapi_document_is_served(door: Door) -> None:
    response = door.http.get("/openapi.json")
    if not (ROOT / "rules_engine" / "_generated" / "openapi.json").exists():
        assert response.status_code == 404 and "generate" in response.json()["message"]
        return
    assert response.status_code == 200 and response.json()["openapi"].startswith("3.1")


def test_unknown_paths_say_where_the_service_is(door: Door) -> None:
    response = door.http.get("/nowhere")
    assert response.status_code == 404 and SERVICE in response.json()["message"]


def test_calls_are_counted_with_the_protocol_label(door: Door) -> None:
    _post_json(door, "Evaluate", EXAMPLE)
    text = httpx.get(f"http://127.0.0.1:{door.metrics_port}/metrics", timeout=5).text
    lines = [line for line in text.splitlines() if line.startswith("rules_engine_grpc_requests_total{")]
    connect_ok = [line for line in lines if 'protocol="connect"' in line and 'method="Evaluate"' in line]
    assert any('code="OK"' in line for line in connect_ok)
    assert any('code="INVALID_ARGUMENT"' in line for line in connect_ok)
    assert any('protocol="grpc"' in line and 'method="Evaluate"' in line for line in lines)


def test_http_port_zero_turns_the_door_off() -> None:
    port, http_port = free_port(), free_port()
    # The flag wins over the variable, and 0 means no HTTP door at all.
    off = {"RULES_ENGINE_HTTP_PORT": str(http_port)}
    with serve(port, "--http-port", "0", "--metrics-port", "0", env=off), pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=2)


def test_two_workers_share_the_http_port(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path, persistent=False)
    redis.start()
    try:
        port, http_port = free_port(), free_port()
        args = ("--workers", "2", "--http-port", str(http_port), "--metrics-port", "0", "--redis-url", redis.url)
        with serve(port, *args) as parent:
            assert len(worker_pids(parent.pid)) == 2
            deadline = time.monotonic() + 30
            while True:  # the second worker may still be starting
                try:
                    if httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline
                time.sleep(0.2)
            codes = []
            for _ in range(20):  # a fresh connection each: the kernel spreads them over the workers
                with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as client:
                    codes.append(client.post(f"{SERVICE}/Evaluate", json=EXAMPLE).status_code)
            assert codes == [200] * 20
    finally:
        redis.stop()


# -- TLS: the gRPC door's certificate files, and client certificates as identities -------------


def _serve_tls(directory: Path, port: int, http_port: int) -> subprocess.Popen[str]:
    ca = Authority("test CA")
    cert, key = ca.issue_server().write(directory, "server")
    (directory / "client-ca.crt").write_bytes(ca.pem)
    ca.issue_client("case-system-cert").write(directory, "client")
    Authority("another CA").issue_client("case-system-cert").write(directory, "stranger")
    (directory / "ca.crt").write_bytes(ca.pem)
    (directory / "clients").write_text(CLIENTS)
    command = [
        sys.executable, "-m", "rules_engine", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--http-port", str(http_port), "--metrics-port", "0", "--tls-cert", str(cert), "--tls-key", str(key),
        "--tls-client-ca", str(directory / "client-ca.crt"), "--clients-file", str(directory / "clients"),
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _tls_context(directory: Path, client: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    if client is not None:
        context.load_cert_chain(directory / f"{client}.crt", directory / f"{client}.key")
    return context


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    process = _serve_tls(tmp_path, port, http_port)
    base = f"https://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "serve exited early"
            try:
                if httpx.get(f"{base}/healthz", verify=_tls_context(tmp_path, "client"), timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, verify=_tls_context(tmp_path, "client"), timeout=10) as client:
            # The certificate's common name is a caller: no token needed.
            assert client.post(f"{SERVICE}/Evaluate", json=EXAMPLE).status_code == 200
            denied = client.post(f"{SERVICE}/ListDecisions", json={})
            assert denied.json()["code"] == "permission_denied"
            # A token, when sent, is what counts.
            assert client.post(f"{SERVICE}/ListDecisions", json={}, headers=bearer(OPERATOR)).status_code == 200
        # The same identity over HTTP/2 (h2 by ALPN): the certificate reaches the app on either version.
        with httpx.Client(base_url=base, http2=True, verify=_tls_context(tmp_path, "client"), timeout=10) as h2:
            answered = h2.post(f"{SERVICE}/Evaluate", json=EXAMPLE)
            assert answered.http_version == "HTTP/2" and answered.status_code == 200
            assert h2.post(f"{SERVICE}/ListDecisions", json={}).json()["code"] == "permission_denied"
        for client_name in (None, "stranger"):  # no certificate, or one from another CA: no handshake
            with pytest.raises(httpx.TransportError):
                httpx.get(f"{base}/healthz", verify=_tls_context(tmp_path, client_name), timeout=5)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=5)  # plaintext to the TLS port

        # Renewed certificate files are served from the next handshake on, as on the gRPC port.
        renewed = Authority("renewed CA")
        renewed.issue_server().write(tmp_path, "server")
        (tmp_path / "ca.crt").write_bytes(renewed.pem)
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"{base}/healthz", verify=_tls_context(tmp_path, "client"), timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the renewed certificate was not served"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        stop(process)


# -- HTTP/2: h2c with prior knowledge, h2 over TLS by ALPN ----------------------------------


def _evaluate_over(client: httpx.Client, binary: bool) -> tuple[str, list[str]]:
    request = json_format.ParseDict(EXAMPLE, pb.EvaluateRequest())
    if binary:
        response = client.post(
            f"{SERVICE}/Evaluate", content=request.SerializeToString(), headers={"content-type": "application/proto"}
        )
        assert response.status_code == 200, response.text
        return response.http_version, [f.rule_id for f in pb.EvaluateResponse.FromString(response.content).flags]
    response = client.post(f"{SERVICE}/Evaluate", json=EXAMPLE)
    assert response.status_code == 200, response.text
    return response.http_version, [f["ruleId"] for f in response.json()["flags"]]


def test_http2_cleartext_serves_json_binary_and_many_streams_on_one_connection(door: Door) -> None:
    base = str(door.http.base_url)
    with httpx.Client(base_url=base, http1=False, http2=True, headers=bearer(CALLER), timeout=10) as h2c:
        json_answer, binary_answer = _evaluate_over(h2c, binary=False), _evaluate_over(h2c, binary=True)
        assert json_answer[0] == binary_answer[0] == "HTTP/2"
        assert json_answer[1] == binary_answer[1] != []
        listed = h2c.get(f"{SERVICE}/ListRulesets", params={"encoding": "json", "message": "{}"})
        assert listed.http_version == "HTTP/2" and listed.status_code == 200
        refused = h2c.post(f"{SERVICE}/Evaluate", json={"case": {"caseId": "c-1", "concerns": [{"id": "x"}]}})
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_argument"
    # Sixteen streams at once on one connection, every answer whole (the flood guard stays quiet).
    with (
        httpx.Client(base_url=base, http1=False, http2=True, headers=bearer(CALLER), timeout=30) as shared,
        concurrent.futures.ThreadPoolExecutor(16) as pool,
    ):
        answers = list(pool.map(lambda _: _evaluate_over(shared, binary=True), range(64)))
    assert {version for version, _ in answers} == {"HTTP/2"}
    assert all(flags == binary_answer[1] for _, flags in answers)


def test_http2_over_tls_by_alpn(tmp_path: Path) -> None:
    ca = Authority("test CA")
    cert, key = ca.issue_server().write(tmp_path, "server")
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    port, http_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "rules_engine", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--http-port", str(http_port), "--metrics-port", "0", "--tls-cert", str(cert), "--tls-key", str(key),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    base = f"https://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "serve exited early"
            try:
                if httpx.get(f"{base}/healthz", verify=_tls_context(tmp_path, None), timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, http2=True, verify=_tls_context(tmp_path, None), timeout=10) as h2:
            version, flags = _evaluate_over(h2, binary=False)
            assert version == "HTTP/2" and flags != []
        with httpx.Client(base_url=base, verify=_tls_context(tmp_path, None), timeout=10) as h1:
            assert _evaluate_over(h1, binary=True) == ("HTTP/1.1", flags)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        stop(process)

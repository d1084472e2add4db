"""Strangers are kept out: TLS and mutual TLS on the port, tokens and certificate names with roles.

A real server (build_server) with certificates made for the test; every refusal is checked
by its status code, as a caller would see it.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.cli.app import app
from rules_engine.errors import ClientsFileError
from rules_engine.logs import configure_logging
from rules_engine.server.security import ClientRegistry, TlsFiles, parse_clients, server_credentials
from rules_engine.server.server import build_server
from tests.certs import Authority, Issued
from tests.e2e.harness import ConcernCountService

CALLER_TOKEN = "caller-token-0123456789abcdef"
OPERATOR_TOKEN = "operator-token-0123456789abcdef"
CLIENTS = f"""
# token role client
{CALLER_TOKEN} caller case-system
{OPERATOR_TOKEN} operator duty-desk
cn:case-system-cert caller case-system
cn:ops-cert operator duty-desk
"""


@dataclass
class Secured:
    port: int
    ca: Authority
    client: Issued  # signed by the server's client CA, CN case-system-cert
    directory: Path
    clients_file: Path

    def channel(self, client: Issued | None = None, root: bytes | None = None) -> grpc.Channel:
        issued = client or self.client
        credentials = grpc.ssl_channel_credentials(root or self.ca.pem, issued.key, issued.cert)
        return grpc.secure_channel(f"localhost:{self.port}", credentials)


def _case() -> case_pb2.Case:
    case = case_pb2.Case(case_id="case-1")
    case.concerns.add(id="c1", date="2025-01-10", agency="POLICE")
    return case


def _code(call: object) -> grpc.StatusCode:
    try:
        call() if callable(call) else None
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    ca = Authority("test CA")
    server_cert, server_key = ca.issue_server().write(tmp_path, "server")
    (tmp_path / "client-ca.crt").write_bytes(ca.pem)
    clients_file = tmp_path / "clients"
    clients_file.write_text(CLIENTS)
    credentials = server_credentials(TlsFiles(server_cert, server_key, tmp_path / "client-ca.crt"))
    server, port, _ = build_server(
        ConcernCountService(), "127.0.0.1", 0, 2, credentials=credentials, clients=ClientRegistry(clients_file)
    )
    server.start()
    yield Secured(port, ca, ca.issue_client("case-system-cert"), tmp_path, clients_file)
    server.stop(None).wait()


def _evaluate(channel: grpc.Channel, token: str | None = None) -> grpc.StatusCode:
    stub = pb_grpc.RulesEngineServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    return _code(lambda: stub.Evaluate(pb.EvaluateRequest(case=_case()), timeout=5, metadata=metadata))


def test_caller_token_evaluates_and_no_or_wrong_token_is_unauthenticated(secured: Secured) -> None:
    anonymous = secured.ca.issue_client("nobody-known")  # a valid certificate whose name is not listed
    with secured.channel(anonymous) as channel:
        assert _evaluate(channel, CALLER_TOKEN) == grpc.StatusCode.OK
        assert _evaluate(channel) == grpc.StatusCode.UNAUTHENTICATED
        assert _evaluate(channel, "not-a-known-token-at-all") == grpc.StatusCode.UNAUTHENTICATED
        stub = pb_grpc.RulesEngineServiceStub(channel)
        basic = (("authorization", "Basic dXNlcjpwYXNz"),)
        code = _code(lambda: stub.Evaluate(pb.EvaluateRequest(case=_case()), timeout=5, metadata=basic))
        assert code == grpc.StatusCode.UNAUTHENTICATED


def test_caller_may_not_use_operator_methods_and_operator_may(secured: Secured) -> None:
    caller = (("authorization", f"Bearer {CALLER_TOKEN}"),)
    operator = (("authorization", f"Bearer {OPERATOR_TOKEN}"),)
    with secured.channel(secured.ca.issue_client("nobody-known")) as channel:
        stub = pb_grpc.RulesEngineServiceStub(channel)
        operator_calls = {
            "AcknowledgeFlag": lambda m: stub.AcknowledgeFlag(
                pb.AcknowledgeFlagRequest(case_id="c"), timeout=5, metadata=m
            ),
            "GetChronology": lambda m: stub.GetChronology(pb.GetChronologyRequest(case_id="c"), timeout=5, metadata=m),
            "ListDecisions": lambda m: stub.ListDecisions(pb.ListDecisionsRequest(), timeout=5, metadata=m),
            "DeleteCase": lambda m: stub.DeleteCase(pb.DeleteCaseRequest(case_id="c"), timeout=5, metadata=m),
            "GetEqualityReport": lambda m: stub.GetEqualityReport(pb.GetEqualityReportRequest(), timeout=5, metadata=m),
        }
        for name, call in operator_calls.items():
            assert _code(lambda c=call: c(caller)) == grpc.StatusCode.PERMISSION_DENIED, name
            # Past authentication: this test service keeps no case state, so UNIMPLEMENTED.
            assert _code(lambda c=call: c(operator)) == grpc.StatusCode.UNIMPLEMENTED, name
        assert (
            _code(lambda: stub.ListRulesets(pb.ListRulesetsRequest(), timeout=5, metadata=caller)) == grpc.StatusCode.OK
        )
        batch = pb.EvaluateBatchRequest(cases=[_case()])
        assert _code(lambda: list(stub.EvaluateBatch(batch, timeout=5, metadata=caller))) == grpc.StatusCode.OK
        assert _code(lambda: list(stub.EvaluateBatch(batch, timeout=5))) == grpc.StatusCode.UNAUTHENTICATED


def test_client_certificate_name_is_an_identity(secured: Secured) -> None:
    with secured.channel() as channel:  # CN case-system-cert: a caller
        assert _evaluate(channel) == grpc.StatusCode.OK
        stub = pb_grpc.RulesEngineServiceStub(channel)
        code = _code(lambda: stub.ListDecisions(pb.ListDecisionsRequest(), timeout=5))
        assert code == grpc.StatusCode.PERMISSION_DENIED


def test_client_certificate_from_another_ca_is_refused_at_the_handshake(secured: Secured) -> None:
    stranger = Authority("another CA").issue_client("case-system-cert")  # the right name, the wrong signer
    with secured.channel(stranger) as channel:
        assert _evaluate(channel, CALLER_TOKEN) == grpc.StatusCode.UNAVAILABLE


def test_no_client_certificate_is_refused_under_mutual_tls(secured: Secured) -> None:
    credentials = grpc.ssl_channel_credentials(secured.ca.pem)
    with grpc.secure_channel(f"localhost:{secured.port}", credentials) as channel:
        assert _evaluate(channel, CALLER_TOKEN) == grpc.StatusCode.UNAVAILABLE


def test_plaintext_to_the_tls_port_fails(secured: Secured) -> None:
    with grpc.insecure_channel(f"localhost:{secured.port}") as channel:
        assert _evaluate(channel, CALLER_TOKEN) == grpc.StatusCode.UNAVAILABLE


def test_health_stays_open_without_credentials(secured: Secured) -> None:
    with secured.channel(secured.ca.issue_client("nobody-known")) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_clients_file_changes_are_picked_up(secured: Secured) -> None:
    new_token = "rotated-token-0123456789abcdef"
    secured.clients_file.write_text(CLIENTS.replace(CALLER_TOKEN, new_token) + "\n")
    deadline = time.monotonic() + 10
    with secured.channel(secured.ca.issue_client("nobody-known")) as channel:
        while _evaluate(channel, new_token) != grpc.StatusCode.OK:
            assert time.monotonic() < deadline, "the rotated token was not picked up"
            time.sleep(0.2)
        assert _evaluate(channel, CALLER_TOKEN) == grpc.StatusCode.UNAUTHENTICATED
        secured.clients_file.write_text("this line is malformed\n")  # a bad edit keeps the last good list
        time.sleep(1.5)
        assert _evaluate(channel, new_token) == grpc.StatusCode.OK


def test_server_certificate_files_are_reloaded(secured: Secured) -> None:
    renewed = Authority("renewed CA")
    renewed.issue_server().write(secured.directory, "server")
    deadline = time.monotonic() + 10
    while True:  # a new channel each time: the new certificate is used from the next handshake
        with secured.channel(secured.ca.issue_client("nobody-known"), root=renewed.pem) as channel:
            if _evaluate(channel, CALLER_TOKEN) == grpc.StatusCode.OK:
                break
        assert time.monotonic() < deadline, "the renewed certificate was not served"
        time.sleep(0.2)


@pytest.mark.usefixtures("root_logging")
def test_tokens_are_never_logged(secured: Secured) -> None:
    stream = io.StringIO()
    configure_logging(logging.INFO, stream)
    with secured.channel(secured.ca.issue_client("nobody-known")) as channel:
        for token in (CALLER_TOKEN, "wrong-token-0123456789abcdef", None):
            _evaluate(channel, token)
        stub = pb_grpc.RulesEngineServiceStub(channel)
        _code(
            lambda: stub.ListDecisions(
                pb.ListDecisionsRequest(), timeout=5, metadata=(("authorization", f"Bearer {CALLER_TOKEN}"),)
            )
        )
    text = stream.getvalue()
    assert "call refused" in text and "PERMISSION_DENIED" in text
    assert "token-0123456789abcdef" not in text


def test_clients_file_errors_name_the_line_not_the_token() -> None:
    with pytest.raises(ClientsFileError) as caught:
        parse_clients("secret-token-that-must-not-leak admin someone\n")
    assert "line 1" in str(caught.value) and "secret-token" not in str(caught.value)
    with pytest.raises(ClientsFileError):
        parse_clients("short caller someone\n")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`serve` installs its JSON handler on the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_serve_refuses_to_start_without_tls_unless_plaintext_is_asked_for(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--rulesets", str(tmp_path)], env={"RULES_ENGINE_PLAINTEXT": ""})
    assert result.exit_code == 2
    assert "refusing to start" in result.output and "--plaintext" in result.output
    result = CliRunner().invoke(app, ["serve", "--tls-cert", str(tmp_path / "c.crt")])
    assert result.exit_code == 2 and "go together" in result.output

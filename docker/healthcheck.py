"""Container health check through gRPC health (grpc.health.v1), as Kubernetes' native probe does.

Exit 0 when the service answers SERVING, 1 otherwise (2 for bad arguments). Used by the
Dockerfile's HEALTHCHECK, and by the Helm chart's exec probes when the server serves TLS
(the kubelet's native `grpc:` probes cannot do TLS). Needs nothing beyond grpcio and
grpcio-health-checking, which the image has.

    healthcheck.py [SERVICE] [--timeout S] [--tls] [--tls-ca FILE] [--tls-server-name NAME]
                   [--tls-cert FILE --tls-key FILE]

SERVICE defaults to the RulesEngineService; "" checks the whole server. The port comes from
RULES_ENGINE_PORT, the target from RULES_ENGINE_HEALTH_TARGET (default localhost:<port>).

TLS is used with --tls or any --tls-* option, and also when RULES_ENGINE_TLS_CERT is set (the
server's own setting, so the image's HEALTHCHECK follows the server into TLS):

- --tls-ca: the certificates to trust; default RULES_ENGINE_TLS_CERT, the server's own
  certificate. gRPC accepts a certificate that is not a CA as a trust anchor, so trusting the
  server's own (mounted) certificate pins it: this is the check to use against localhost,
  where no CA is at hand. grpcio has no switch to turn verification off.
- --tls-server-name: the name checked against the server certificate (the probe connects to
  localhost, which a certificate seldom names); default the first DNS name, IP address or
  common name of the first certificate in RULES_ENGINE_TLS_CERT, else of --tls-ca.
- --tls-cert/--tls-key: a client certificate, for a server that requires one (mutual TLS);
  default, when RULES_ENGINE_TLS_CLIENT_CA is set, the server's own certificate and key.
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
import sys
import tempfile
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE = "rules_engine.v1.RulesEngineService"
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class UsageError(Exception):
    """Arguments or files that make no check possible (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="gRPC health check (grpc.health.v1), plaintext or TLS.")
    parser.add_argument("service", nargs="?", default=SERVICE, help="health service name; '' for the whole server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds for the health call (default 3)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--tls-ca", type=Path, help="PEM certificates to trust (a CA, or the server's own)")
    parser.add_argument("--tls-server-name", help="name to check the server certificate against")
    parser.add_argument("--tls-cert", type=Path, help="client certificate (PEM), for mutual TLS")
    parser.add_argument("--tls-key", type=Path, help="client private key (PEM), for mutual TLS")
    return parser


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "")
    return Path(value) if value else None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from None


def certificate_name(pem: bytes) -> str | None:
    """The first DNS name (a wildcard made concrete), IP address or common name of the first certificate."""
    match = _PEM_CERT.search(pem)
    if match is None:
        return None
    # The standard library decodes a certificate only from a file, through a function its own
    # tests use; it has been there since Python 3.2. Without it, pass --tls-server-name.
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".pem") as handle:
        handle.write(match.group(0))
        handle.flush()
        try:
            decoded = decode(handle.name)
        except (ssl.SSLError, ValueError, OSError):
            return None
    for kind, value in decoded.get("subjectAltName", ()):
        if kind == "DNS":
            return str(value).replace("*", "healthcheck", 1) if value.startswith("*.") else str(value)
        if kind == "IP Address":
            return str(value).strip()
    for rdn in decoded.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def channel_credentials(args: argparse.Namespace) -> tuple[grpc.ChannelCredentials, str | None] | None:
    """TLS credentials and the name to check, or None for plaintext."""
    server_cert = _env_path("RULES_ENGINE_TLS_CERT")
    wanted = args.tls or any(
        value is not None for value in (args.tls_ca, args.tls_server_name, args.tls_cert, args.tls_key)
    )
    if not wanted and server_cert is None:
        return None
    ca = args.tls_ca or server_cert
    if ca is None:
        raise UsageError("TLS needs --tls-ca (or RULES_ENGINE_TLS_CERT, the server's certificate, to pin)")
    roots = _read(ca, "CA file")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    cert_path, key_path = args.tls_cert, args.tls_key
    if cert_path is None and _env_path("RULES_ENGINE_TLS_CLIENT_CA") is not None:
        # Mutual TLS: without a client certificate of its own, the probe presents the server's.
        cert_path, key_path = server_cert, _env_path("RULES_ENGINE_TLS_KEY")
    chain = _read(cert_path, "client certificate") if cert_path else None
    key = _read(key_path, "client key") if key_path else None
    name = args.tls_server_name
    if name is None:
        name = certificate_name(_read(server_cert, "server certificate")) if server_cert else None
        name = name or certificate_name(roots)
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=key, certificate_chain=chain), name


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    port = os.environ.get("RULES_ENGINE_PORT", "50051")
    target = os.environ.get("RULES_ENGINE_HEALTH_TARGET", f"localhost:{port}")
    service: str = args.service
    try:
        tls = channel_credentials(args)
    except UsageError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 2
    if tls is None:
        channel = grpc.insecure_channel(target)
    else:
        credentials, name = tls
        options = [("grpc.ssl_target_name_override", name)] if name else []
        channel = grpc.secure_channel(target, credentials, options=options)
    try:
        with channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        print(f"unhealthy: {target} {service!r}: {exc.code().name} {exc.details() or ''}".rstrip(), file=sys.stderr)
        return 1
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        print(f"unhealthy: {target} {service!r}: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start-up checks for `serve`: each setting that would stop the server, named with its flag, variable and remedy.

`serve` runs these before any worker starts, so a taken port, a missing certificate or an
empty rulesets directory is one line and exit 2 instead of a traceback from gRPC or a worker
crash loop. Imports no gRPC: the supervisor parent runs them, and gRPC does not survive fork.
Workers still catch the same failures (a port taken between the check and the bind) and
raise StartupError with the same wording.
"""

from __future__ import annotations

import errno
import socket
import ssl
from pathlib import Path

from rules_engine.config import Settings
from rules_engine.errors import StartupError

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://", "memory://")


def port_in_use(port: int, flag: str, variable: str, remedy: str) -> StartupError:
    return StartupError(f"port {port} is already in use ({flag} / {variable}); {remedy}")


GRPC_PORT_REMEDY = "stop the other server (Ctrl-C or SIGTERM) or choose another port"
HTTP_PORT_REMEDY = "stop the other server, choose another port, or 0 to turn the HTTP door off"
METRICS_PORT_REMEDY = "stop the other server, choose another port, or 0 to turn metrics off"


def check_port(host: str, port: int, flag: str, variable: str, remedy: str) -> None:
    """Raise StartupError when `host:port` cannot be listened on (taken, or a host that is not ours)."""
    address = host.strip("[]") or "::"
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host} ({exc.strerror}); check --host / RULES_ENGINE_HOST") from None
    family, kind, proto, _, sockaddr = infos[0]
    probe = socket.socket(family, kind, proto)
    try:
        # As gRPC binds: SO_REUSEADDR (connections in TIME_WAIT do not count) and, for ::,
        # IPv4 too, so a server on 0.0.0.0 is found as well.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        probe.bind(sockaddr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(port, flag, variable, remedy) from None
        if exc.errno == errno.EACCES:
            raise StartupError(
                f"port {port} needs privileges this process lacks ({flag} / {variable}); choose a port above 1023"
            ) from None
        raise StartupError(
            f"cannot listen on {host}:{port}: {exc.strerror} ({flag} / {variable}, --host / RULES_ENGINE_HOST)"
        ) from None
    finally:
        probe.close()


def check_rulesets(rulesets: Path) -> None:
    from rules_engine.policy.compiler import rulesets_in

    where = "(--rulesets / RULES_ENGINE_RULESETS)"
    if not rulesets.exists():
        raise StartupError(f"rulesets directory {rulesets} does not exist {where}; name the directory of rulesets")
    if not rulesets.is_dir():
        raise StartupError(f"{rulesets} is not a directory {where}; name the directory of rulesets")
    if not rulesets_in(rulesets):
        raise StartupError(
            f"no rule files under {rulesets} {where}; name a rulesets directory or one ruleset's directory"
        )


def check_tls(settings: Settings) -> None:
    """Certificate files that exist, parse, and match their key (the stdlib ssl module checks them)."""
    files = [
        (settings.tls_cert, "--tls-cert / RULES_ENGINE_TLS_CERT"),
        (settings.tls_key, "--tls-key / RULES_ENGINE_TLS_KEY"),
        (settings.tls_client_ca, "--tls-client-ca / RULES_ENGINE_TLS_CLIENT_CA"),
    ]
    for path, where in files:
        if path is None:
            continue
        try:
            path.read_bytes()
        except OSError as exc:
            raise StartupError(f"cannot read {path} ({where}): {exc.strerror}") from None
    if settings.tls_cert is None or settings.tls_key is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except ssl.SSLError as exc:
        raise StartupError(
            f"{settings.tls_cert} and {settings.tls_key} are not a PEM certificate and its private key "
            f"(--tls-cert / RULES_ENGINE_TLS_CERT, --tls-key / RULES_ENGINE_TLS_KEY): {exc.reason or exc.strerror}"
        ) from None
    if settings.tls_client_ca is not None:
        try:
            context.load_verify_locations(cafile=settings.tls_client_ca)
        except ssl.SSLError as exc:
            raise StartupError(
                f"{settings.tls_client_ca} is not a PEM CA certificate "
                f"(--tls-client-ca / RULES_ENGINE_TLS_CLIENT_CA): {exc.reason or exc.strerror}"
            ) from None


def check_redis_url(url: str | None) -> None:
    """A URL the store can open; whether Redis answers is not checked (calls fail fast until it does)."""
    if url is None or url.startswith(REDIS_SCHEMES):
        return
    scheme = url.split("://", 1)[0] + "://" if "://" in url else "no scheme"
    raise StartupError(
        f"--redis-url / RULES_ENGINE_REDIS_URL: {scheme} is not a Redis URL; use redis://host:port/db, "
        "rediss:// for TLS, redis+cluster://host:port[,host:port] for a cluster, or leave it unset for in-memory state"
    )


def check_clients_file(path: Path | None) -> None:
    """A readable clients file (workers parse it: security.py imports gRPC, which this module must not)."""
    if path is None:
        return
    try:
        path.read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read {path} (--clients-file / RULES_ENGINE_CLIENTS_FILE): {exc.strerror}") from None


def check_settings(settings: Settings) -> None:
    """Every start-up check, cheapest first; raise StartupError on the first that fails."""
    check_redis_url(settings.store_url)
    check_rulesets(settings.rulesets)
    check_tls(settings)
    check_clients_file(settings.clients_file)
    check_port(settings.host, settings.port, "--port", "RULES_ENGINE_PORT", GRPC_PORT_REMEDY)
    if settings.http_port:
        if settings.http_port == settings.port:
            raise StartupError(
                f"--http-port and --port are both {settings.port} (RULES_ENGINE_HTTP_PORT, RULES_ENGINE_PORT); "
                "give the HTTP door its own port, or 0 to turn it off"
            )
        check_port(settings.host, settings.http_port, "--http-port", "RULES_ENGINE_HTTP_PORT", HTTP_PORT_REMEDY)
    if settings.metrics_port:
        check_port("0.0.0.0", settings.metrics_port, "--metrics-port", "RULES_ENGINE_METRICS_PORT", METRICS_PORT_REMEDY)

"""Transport security and client authentication: TLS credentials reloaded from files, tokens and roles.

Clients are listed in a file (often a mounted Kubernetes Secret), one a line:

    <token> <role> <client-name>        a bearer token, sent as `authorization: Bearer <token>`
    cn:<common-name> <role> <client>    a client certificate's subject CN (with mutual TLS)

Roles: `caller` may evaluate and record facts; `operator` may also acknowledge flags and read
chronologies and the decision log. Tokens are kept only as SHA-256 digests and compared in
constant time; neither a token nor its digest is ever logged. Health and reflection stay open
so that probes and tooling work without credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from rules_engine.config import Settings
from rules_engine.errors import ClientsFileError, TransportConfigError
from rules_engine.server.interceptors import WrappingInterceptor
from rules_engine.service.outcomes import Code, Refusal
from rules_engine.service.statuses import abort_with

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/rules_engine.v1.RulesEngineService/"
CALLER, OPERATOR = "caller", "operator"
ROLES = (CALLER, OPERATOR)
# Methods a caller may use; every other method of the service needs an operator, so a method
# added later is closed until it is listed here.
CALLER_METHODS = frozenset({"Evaluate", "EvaluateBatch", "ListRulesets", "RecordFacts"})
CN_PREFIX = "cn:"
# The client file is looked at again at most this often (a stat per call would be wasted).
RELOAD_CHECK_SECONDS = 1.0

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]


@dataclass(frozen=True)
class Client:
    name: str
    role: str

    def may_call(self, method: str) -> bool:
        return self.role == OPERATOR or method in CALLER_METHODS


@dataclass(frozen=True)
class _Clients:
    tokens: tuple[tuple[bytes, Client], ...]  # (sha256 of the token, client)
    names: dict[str, Client]  # certificate CN -> client


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_clients(text: str, source: str = "clients file") -> _Clients:
    """Parse the clients file's text; raise ClientsFileError naming the bad line (not its content)."""
    tokens: list[tuple[bytes, Client]] = []
    names: dict[str, Client] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 3 or fields[1] not in ROLES:
            # The line may hold a token: say where, never what.
            raise ClientsFileError(f"{source}: line {number} is not '<token> <caller|operator> <client-name>'")
        secret, role, name = fields
        client = Client(name, role)
        if secret.startswith(CN_PREFIX):
            names[secret[len(CN_PREFIX) :]] = client
        else:
            if len(secret) < 16:
                raise ClientsFileError(f"{source}: line {number}: a token needs at least 16 characters")
            tokens.append((_digest(secret), client))
    return _Clients(tuple(tokens), names)


class ClientRegistry:
    """The clients file, reloaded when its modification time or size changes.

    A file that becomes unreadable or malformed keeps the last good list (and says so in the
    log), as a ruleset reload does: a bad edit to a Secret must not lock every caller out.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")
        self._clients = self._read()  # the first read must succeed: raise at start

    def _file_stamp(self) -> tuple[int, int]:
        stat = self.path.stat()
        return stat.st_mtime_ns, stat.st_size

    def _read(self) -> _Clients:
        try:
            stamp = self._file_stamp()
            clients = parse_clients(self.path.read_text(encoding="utf-8"), str(self.path))
        except OSError as exc:
            raise ClientsFileError(f"cannot read {self.path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ClientsFileError(f"{self.path} is not UTF-8 text") from None
        self._stamp = stamp
        log.info("clients loaded", extra={"count": len(clients.tokens) + len(clients.names)})
        return clients

    def _current(self) -> _Clients:
        now = self._clock()
        if now - self._checked < RELOAD_CHECK_SECONDS:
            return self._clients
        with self._lock:
            if now - self._checked >= RELOAD_CHECK_SECONDS:
                self._checked = now
                try:
                    if self._file_stamp() != self._stamp:
                        self._clients = self._read()
                except (OSError, ClientsFileError) as exc:
                    log.warning("clients file not reloaded; keeping the last good one: %s", type(exc).__name__)
        return self._clients

    def by_token(self, token: str) -> Client | None:
        digest = _digest(token)
        found: Client | None = None
        # Every entry is compared, so the time taken does not tell how many entries were tried.
        for known, client in self._current().tokens:
            if hmac.compare_digest(known, digest):
                found = client
        return found

    def by_common_name(self, name: str) -> Client | None:
        return self._current().names.get(name)


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None for another scheme."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _bearer(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            return bearer_token(value)
    return None


UNAUTHENTICATED_MESSAGE = "a known client token or certificate is required"


def refusal(clients: ClientRegistry, method: str, token: str | None, common_name: str | None) -> Refusal | None:
    """Why a call to `method` with these credentials is refused, or None when it may go on.

    A token is tried first; a certificate's name only when no token was sent. Both doors
    (AuthInterceptor here, the HTTP door in http.py) admit with this and log alike.
    """
    client = clients.by_token(token) if token else None
    if client is None and token is None:
        client = clients.by_common_name(common_name) if common_name else None
    if client is None:
        log.info("call refused", extra={"method": method, "code": "UNAUTHENTICATED"})
        return Refusal(Code.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
    if not client.may_call(method):
        log.info("call refused", extra={"method": method, "code": "PERMISSION_DENIED", "client": client.name})
        return Refusal(Code.PERMISSION_DENIED, f"{method} needs the operator role")
    return None


def _common_name(context: grpc.ServicerContext) -> str | None:
    names = context.auth_context().get("x509_common_name")
    if not names:
        return None
    first = names[0]
    return first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)


class AuthInterceptor(WrappingInterceptor):
    """Admits a call to RulesEngineService only from a known client whose role allows the method.

    No credentials or an unknown token: UNAUTHENTICATED. A known client without the role:
    PERMISSION_DENIED. Other services (health, reflection) pass through untouched.
    """

    def __init__(self, clients: ClientRegistry) -> None:
        super().__init__()
        self._clients = clients

    def wrap(self, path: str, handler: Handler) -> Handler:
        if not path.startswith(SERVICE_PREFIX):
            return handler
        # Credentials are read per call from the context: one wrapper serves every call.
        method = path[len(SERVICE_PREFIX) :]
        return guarded(handler, lambda request, context: self._admit(method, request, context))

    def _admit(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        token = _bearer(context.invocation_metadata())
        # The certificate is looked at only without a token (auth_context is not free).
        refused = refusal(self._clients, method, token, _common_name(context) if token is None else None)
        if refused is not None:
            abort_with(context, refused)
        return request


def guarded(
    handler: Handler,
    admit: Callable[[Any, grpc.ServicerContext], Any],
    deserializer: Callable[[bytes], Any] | None = None,
) -> Handler:
    """The handler with `admit(request, context)` run first: admit aborts the call to refuse it,
    else returns the request the handler gets.

    A deserializer given replaces the handler's (limits.py parses leniently to refuse bad bytes
    itself, and hands admit the request with its size); admit then returns the request alone.
    """
    serializers = {
        "request_deserializer": deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
            return unary(admit(request, context), context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **serializers)
    if handler.unary_stream is not None:
        streaming = handler.unary_stream

        def unary_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            yield from streaming(admit(request, context), context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, **serializers)
    # The service has no client-streaming methods; refuse rather than pass one through unchecked.
    raise TypeError("client-streaming methods cannot be guarded")


# -- TLS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: mutual TLS, every client must present a certificate it signed


def _stamp(files: TlsFiles) -> tuple[tuple[int, int], ...]:
    paths = [files.cert, files.key, *([files.client_ca] if files.client_ca else [])]
    return tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths)


def _configuration(files: TlsFiles) -> grpc.ServerCertificateConfiguration:
    pair = (files.key.read_bytes(), files.cert.read_bytes())
    roots = files.client_ca.read_bytes() if files.client_ca else None
    return grpc.ssl_server_certificate_configuration([pair], root_certificates=roots)


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """TLS (mutual when a client CA is given) whose certificate files are read again when they change.

    gRPC asks the fetcher at each new handshake; it answers None (keep the current
    configuration) unless a file's mtime or size changed. A half-written or mismatched pair is
    caught by gRPC, which then keeps the previous configuration.
    """
    lock = threading.Lock()
    state = {"stamp": _stamp(files)}
    initial = _configuration(files)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        with lock:
            try:
                stamp = _stamp(files)
                if stamp == state["stamp"]:
                    return None
                configuration = _configuration(files)
            except OSError as exc:
                log.warning("TLS files not reloaded: %s", type(exc).__name__)
                return None
            state["stamp"] = stamp
            log.info("TLS certificates reloaded")
            return configuration

    # types-grpcio says the fetcher may not return None; gRPC documents None as "no change".
    return grpc.dynamic_ssl_server_credentials(
        initial,
        fetch,  # type: ignore[arg-type]
        require_client_authentication=files.client_ca is not None,
    )


# -- from settings -----------------------------------------------------------------------------


def check_transport(settings: Settings) -> None:
    """Refuse settings that would expose the port by accident; raise TransportConfigError saying what to set."""
    if settings.tls_client_ca and not settings.tls_cert:
        raise TransportConfigError("--tls-client-ca needs --tls-cert and --tls-key")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise TransportConfigError("--tls-cert and --tls-key go together")
    if settings.tls_cert and settings.plaintext:
        raise TransportConfigError("--plaintext and --tls-cert contradict each other; choose one")
    if not settings.tls_cert and not settings.plaintext:
        raise TransportConfigError(
            "no TLS certificate configured: pass --tls-cert and --tls-key (RULES_ENGINE_TLS_CERT, "
            "RULES_ENGINE_TLS_KEY), or --plaintext (RULES_ENGINE_PLAINTEXT=true) when TLS ends in front "
            "of this server (a mesh sidecar) or for local development"
        )


def credentials_from(settings: Settings) -> grpc.ServerCredentials | None:
    """The port's TLS credentials, or None for plaintext (which check_transport allowed)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return server_credentials(TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca))


def clients_from(settings: Settings) -> ClientRegistry | None:
    return None if settings.clients_file is None else ClientRegistry(settings.clients_file)


def warn_if_open(settings: Settings) -> None:
    """Log, once at start, that authentication is off when no clients file is configured."""
    if settings.clients_file is None:
        log.warning("no clients file configured: every caller may use every method (authentication off)")

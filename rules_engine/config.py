"""Typed settings for the server; the CLI fills them from flags and RULES_ENGINE_* variables."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# The rulesets bundled with the source tree (and copied beside the package in the image).
BUNDLED_RULESETS = Path(__file__).resolve().parent.parent / "rulesets"

DEFAULT_PORT = 50051
# Facts per case the API accepts at most, all types together: the case schema's own bound.
# The max_facts setting may lower it, not raise it.
MAX_FACTS = 10_000
DEFAULT_METRICS_PORT = 9464
# The HTTP door (Connect, gRPC-Web, /healthz, /openapi.json); 0 turns it off.
DEFAULT_HTTP_PORT = 8080
DEFAULT_THREADS = 4
# What decides which rules hold: "durable", the durable-rules Matcher (engine/matching.py), or
# "reference", the pure-Python evaluator alone (which also answers whenever the Matcher fails).
MatcherName = Literal["durable", "reference"]
MATCHERS: tuple[MatcherName, ...] = ("durable", "reference")


@dataclass(frozen=True)
class Settings:
    rulesets: Path = BUNDLED_RULESETS
    host: str = "[::]"
    port: int = DEFAULT_PORT
    # The HTTP door's port (server/http.py), served by every worker beside gRPC; 0: off.
    http_port: int = DEFAULT_HTTP_PORT
    # Browser origins allowed to call the HTTP door (CORS); empty: none, "*": any.
    cors_origins: tuple[str, ...] = ()
    # The workbench for policy teams under /workbench/ on the HTTP port (rules_engine/workbench).
    workbench: bool = True
    # Whether its impact preview may read this server's directories and git revisions as
    # `rules-engine diff --base/--head` does; off: only files uploaded from the browser.
    workbench_paths: bool = False
    metrics_port: int = DEFAULT_METRICS_PORT
    # Threads per process serving gRPC calls. Evaluation holds the GIL, so more threads mostly
    # hand it to each other: an A/B of 1, 2, 4 and 8 (BENCHMARKS.md, issue 18; h2load, two
    # processes, 20- and 200-fact cases) gave 4 the most calls/s (10-17% more than 8) with a p99
    # at half load no worse; 1 queues every call behind the one running (p99 2.5-7x worse).
    max_workers: int = DEFAULT_THREADS
    grace_seconds: float = 10.0
    # Which rules hold is decided by this matcher (see MatcherName).
    matcher: MatcherName = "durable"
    # Share the port with other worker processes (SO_REUSEPORT). Off for a lone process, so
    # a second server started by mistake on the same port fails instead of splitting traffic.
    reuse_port: bool = False
    # The case store: None (or memory://) keeps cases in this process; redis:// or rediss://
    # (with user and password in the URL) shares them between replicas.
    store_url: str | None = None
    # Sentinel addresses (host, port); when set, `store_url` gives only credentials and database.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_service: str = "mymaster"
    # Seconds to connect and per Redis call; a call that needs the store fails past this.
    redis_timeout_seconds: float = 0.5
    # A case's history is kept this long after its last write.
    retention_days: int = 7 * 365 + 2
    # The decision log's bound: None means the store's default (1,000,000 in Redis, 100,000 in memory).
    decision_log_max_entries: int | None = None
    # Decisions older than this are trimmed (None: kept until the length bound).
    decision_log_max_age_days: int | None = None
    # Decisions each case's index keeps, newest first (both stores).
    case_decisions_max_entries: int = 1_000
    # Cases the in-memory store keeps at most; past it the least recently written is forgotten.
    max_cases: int = 100_000
    # Evaluations each process keeps to answer a repeated request (same case bytes, ruleset
    # version and as_of day) without evaluating again (engine/evaluation_cache.py); 0: off. An
    # entry of the 200-fact safeguarding case holds about 30 KB (tracemalloc; 11 KB at 20 facts,
    # 36 KB at 2,000, evidence being capped), so the default bound is about 30-37 MB per process.
    evaluation_cache_size: int = 1_024
    # Transport: TLS from these files (mutual TLS with a client CA), reloaded when they change.
    # Without a certificate the port is plaintext, which `serve` allows only when asked.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    plaintext: bool = False
    # Clients' tokens and certificate names with their roles (security.py); None: no authentication.
    clients_file: Path | None = None
    # Request limits (limits.py); each breach is INVALID_ARGUMENT or RESOURCE_EXHAUSTED.
    max_message_bytes: int = 16 * 1024 * 1024
    max_batch: int = 1_000
    max_facts: int = MAX_FACTS
    max_string_chars: int = 256
    max_concurrent_rpcs: int = 64
    # The ruleset a request naming none is evaluated against; None: the only one loaded, and
    # with several loaded such a request is refused (INVALID_ARGUMENT on `ruleset`).
    default_ruleset: str | None = None

    @property
    def shares_state(self) -> bool:
        """True when case state lives in Redis, shared by every process (engine.open_case_store)."""
        return self.store_url is not None and not self.store_url.startswith("memory:")


def split_state_refusal(settings: Settings, workers: int) -> str | None:
    """Why `workers` processes must not start with these settings, or None when they may.

    Each process would keep its own in-memory store: a flag would come back NEW once per
    process and each decision log would hold a fraction of the decisions.
    """
    if workers <= 1 or settings.shares_state:
        return None
    return (
        f"--workers {workers} with the in-memory case store would keep separate case state in each process; "
        "set --redis-url (RULES_ENGINE_REDIS_URL, with --redis-sentinels for Sentinel) or use --workers 1"
    )


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` -> ((host, port), ...); raises ValueError on a malformed address."""
    addresses = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"sentinel address {part!r} is not host:port")
        addresses.append((host, int(port)))
    return tuple(addresses)


def parse_cors_origins(values: Iterable[str]) -> tuple[str, ...]:
    """`--cors-origin` values (each may be a comma-separated list) as origins, without blanks,
    duplicates or a trailing slash; ValueError for one that is not `scheme://host[:port]` or `*`."""
    origins: list[str] = []
    for value in values:
        for part in filter(None, (p.strip() for p in value.split(","))):
            origin = part.rstrip("/")
            scheme, separator, host = origin.partition("://")
            if origin != "*" and (not separator or not scheme or not host or "/" in host):
                raise ValueError(f"{part!r} is not an origin (scheme://host[:port], or * for any)")
            origins.append(origin)
    return tuple(dict.fromkeys(origins))

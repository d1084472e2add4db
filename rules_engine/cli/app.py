"""Command line: serve, check and eval; exit 0 on success, 1 when a check fails, 2 on bad usage."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from rules_engine.cli.common import load_engine, read_case_file
from rules_engine.config import (
    BUNDLED_RULESETS,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_PORT,
    DEFAULT_THREADS,
    MAX_FACTS,
    MatcherName,
    Settings,
    split_state_refusal,
)

app = typer.Typer(
    name="rules-engine",
    help="Evaluate safeguarding rule sets over case facts and return explained flags.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: rich's option table cuts long RULES_ENGINE_* names in an 80-column terminal.
    rich_markup_mode=None,
)

# synth's default --as-of: a fixed date, so `--seed S` alone gives the same cases on any day.
SYNTH_AS_OF = dt.date(2025, 12, 31)


RulesetsOption = Annotated[
    Path,
    typer.Option(
        "--rulesets",
        envvar="RULES_ENGINE_RULESETS",
        help="A rulesets directory, or one ruleset's directory.",
        show_default=True,
    ),
]


RedisUrlOption = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        envvar="RULES_ENGINE_REDIS_URL",
        help="Case store, redis:// or rediss:// (user and password in the URL); default in-memory.",
    ),
]


def _sentinels(text: str) -> tuple[tuple[str, int], ...]:
    from rules_engine.config import parse_sentinels

    try:
        return parse_sentinels(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--redis-sentinels") from exc


def _cors_origins(values: list[str]) -> tuple[str, ...]:
    from rules_engine.config import parse_cors_origins

    try:
        return parse_cors_origins(values)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--cors-origin") from exc


# Heavy imports (grpc, durable-rules) wait until a command needs them, so --help stays fast.
@app.command()
def serve(
    rulesets: RulesetsOption = BUNDLED_RULESETS,
    host: Annotated[str, typer.Option(envvar="RULES_ENGINE_HOST", help="Address to listen on.")] = "[::]",
    port: Annotated[int, typer.Option(envvar="RULES_ENGINE_PORT", help="gRPC port.")] = DEFAULT_PORT,
    http_port: Annotated[
        int,
        typer.Option("--http-port", envvar="RULES_ENGINE_HTTP_PORT", min=0, help="HTTP port: Connect, JSON (0: off)."),
    ] = DEFAULT_HTTP_PORT,
    cors_origin: Annotated[
        list[str],
        typer.Option(
            "--cors-origin",
            envvar="RULES_ENGINE_CORS_ORIGINS",
            help="Browser origin allowed on the HTTP port (repeat, or comma list); default none.",
        ),
    ] = [],  # noqa: B006 - typer reads the default; it is never mutated
    workbench: Annotated[
        bool,
        typer.Option(
            "--workbench/--no-workbench",
            envvar="RULES_ENGINE_WORKBENCH",
            help="The policy teams' workbench at /workbench/ on the HTTP port.",
        ),
    ] = True,
    workbench_paths: Annotated[
        bool,
        typer.Option(
            "--workbench-paths",
            envvar="RULES_ENGINE_WORKBENCH_PATHS",
            help="Let the workbench's impact preview read this server's directories and git revisions.",
        ),
    ] = False,
    metrics_port: Annotated[
        int, typer.Option(envvar="RULES_ENGINE_METRICS_PORT", help="Prometheus port (0: off).")
    ] = DEFAULT_METRICS_PORT,
    max_workers: Annotated[
        int, typer.Option(envvar="RULES_ENGINE_MAX_WORKERS", min=1, help="gRPC threads per process.")
    ] = DEFAULT_THREADS,
    grace: Annotated[
        float,
        typer.Option(envvar="RULES_ENGINE_GRACE_SECONDS", help="Seconds in-flight calls get at shutdown."),
    ] = 10.0,
    redis_url: RedisUrlOption = None,
    redis_sentinels: Annotated[
        str,
        typer.Option(
            "--redis-sentinels", envvar="RULES_ENGINE_REDIS_SENTINELS", help="Sentinels as host:port,host:port."
        ),
    ] = "",
    redis_service: Annotated[
        str, typer.Option("--redis-service", envvar="RULES_ENGINE_REDIS_SERVICE", help="Sentinel service name.")
    ] = "mymaster",
    redis_timeout: Annotated[
        float, typer.Option("--redis-timeout", envvar="RULES_ENGINE_REDIS_TIMEOUT", help="Seconds per Redis call.")
    ] = 0.5,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            envvar="RULES_ENGINE_WORKERS",
            min=0,
            help="Server processes sharing the port; 0: one per core with --redis-url, else 1.",
        ),
    ] = 0,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", envvar="RULES_ENGINE_TLS_CERT", help="Server certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", envvar="RULES_ENGINE_TLS_KEY", help="Server private key (PEM).")
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option("--tls-client-ca", envvar="RULES_ENGINE_TLS_CLIENT_CA", help="CA for client certificates (mTLS)."),
    ] = None,
    plaintext: Annotated[
        bool,
        typer.Option("--plaintext", envvar="RULES_ENGINE_PLAINTEXT", help="Serve without TLS (it must be asked for)."),
    ] = False,
    clients_file: Annotated[
        Path | None,
        typer.Option(
            "--clients-file", envvar="RULES_ENGINE_CLIENTS_FILE", help="Client tokens and roles; unset: no auth."
        ),
    ] = None,
    max_concurrent_rpcs: Annotated[
        int, typer.Option(envvar="RULES_ENGINE_MAX_CONCURRENT_RPCS", min=1, help="Calls at once per process.")
    ] = 64,
    max_message_bytes: Annotated[
        int, typer.Option(envvar="RULES_ENGINE_MAX_MESSAGE_BYTES", min=1024, help="Largest request or response.")
    ] = 16 * 1024 * 1024,
    max_batch: Annotated[int, typer.Option(envvar="RULES_ENGINE_MAX_BATCH", min=1, help="Cases per batch.")] = 1_000,
    max_facts: Annotated[
        int,
        typer.Option(
            envvar="RULES_ENGINE_MAX_FACTS", min=1, max=MAX_FACTS, help=f"Facts per case (at most {MAX_FACTS:,})."
        ),
    ] = MAX_FACTS,
    max_string_chars: Annotated[
        int, typer.Option(envvar="RULES_ENGINE_MAX_STRING_CHARS", min=16, help="Longest text field of a request.")
    ] = 256,
    default_ruleset: Annotated[
        str | None,
        typer.Option(
            "--default-ruleset",
            envvar="RULES_ENGINE_DEFAULT_RULESET",
            help="Ruleset for requests that name none (unset: refused while several are loaded).",
        ),
    ] = None,
    retention_days: Annotated[
        int,
        typer.Option(
            envvar="RULES_ENGINE_RETENTION_DAYS", min=1, help="Days a case's stored state is kept after its last write."
        ),
    ] = Settings.retention_days,
    decision_log_max_entries: Annotated[
        int | None,
        typer.Option(
            envvar="RULES_ENGINE_DECISION_LOG_MAX_ENTRIES",
            min=1,
            help="Decisions the log keeps (unset: 1,000,000 in Redis, 100,000 in memory).",
        ),
    ] = None,
    decision_log_max_age_days: Annotated[
        int | None,
        typer.Option(
            envvar="RULES_ENGINE_DECISION_LOG_MAX_AGE_DAYS",
            min=1,
            help="Days the log keeps a decision (unset: no limit).",
        ),
    ] = None,
    case_decisions_max_entries: Annotated[
        int,
        typer.Option(
            envvar="RULES_ENGINE_CASE_DECISIONS_MAX_ENTRIES",
            min=1,
            help="Decisions each case's index keeps, newest first.",
        ),
    ] = Settings.case_decisions_max_entries,
    max_cases: Annotated[
        int,
        typer.Option(
            envvar="RULES_ENGINE_MAX_CASES",
            min=1,
            help="Cases the in-memory store keeps (the least recently written is forgotten first).",
        ),
    ] = Settings.max_cases,
    evaluation_cache_size: Annotated[
        int,
        typer.Option(
            "--evaluation-cache-size",
            envvar="RULES_ENGINE_EVALUATION_CACHE_SIZE",
            min=0,
            help="Evaluations each process keeps to answer a repeated request (0: off).",
        ),
    ] = Settings.evaluation_cache_size,
    matcher: Annotated[
        MatcherName,
        typer.Option(
            envvar="RULES_ENGINE_MATCHER",
            help="What decides which rules hold: durable-rules, or the reference evaluator alone.",
        ),
    ] = Settings.matcher,
) -> None:
    """Run the service on the rulesets in a directory: gRPC, and HTTP (Connect, JSON)."""
    from rules_engine.logs import configure_logging
    from rules_engine.server.supervisor import serve as serve_processes

    configure_logging(logging.INFO, background=True)
    settings = Settings(
        rulesets=rulesets,
        host=host,
        port=port,
        http_port=http_port,
        cors_origins=_cors_origins(cors_origin),
        workbench=workbench,
        workbench_paths=workbench_paths,
        metrics_port=metrics_port,
        max_workers=max_workers,
        grace_seconds=grace,
        store_url=redis_url,
        redis_sentinels=_sentinels(redis_sentinels),
        redis_sentinel_service=redis_service,
        redis_timeout_seconds=redis_timeout,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        plaintext=plaintext,
        clients_file=clients_file,
        max_concurrent_rpcs=max_concurrent_rpcs,
        max_message_bytes=max_message_bytes,
        max_batch=max_batch,
        max_facts=max_facts,
        max_string_chars=max_string_chars,
        retention_days=retention_days,
        decision_log_max_entries=decision_log_max_entries,
        decision_log_max_age_days=decision_log_max_age_days,
        case_decisions_max_entries=case_decisions_max_entries,
        max_cases=max_cases,
        evaluation_cache_size=evaluation_cache_size,
        default_ruleset=default_ruleset or None,
        matcher=matcher,
    )
    from rules_engine.errors import TransportConfigError
    from rules_engine.server.security import check_transport, warn_if_open

    try:
        check_transport(settings)
    except TransportConfigError as exc:
        typer.echo(f"refusing to start: {exc}", err=True)
        raise typer.Exit(2) from exc
    if workers == 0:
        # The in-memory store lives in one process: sharing case state takes Redis.
        workers = (os.cpu_count() or 1) if settings.shares_state else 1
    if (refusal := split_state_refusal(settings, workers)) is not None:
        typer.echo(f"refusing to start: {refusal}", err=True)
        raise typer.Exit(2)
    from rules_engine.errors import StartupError
    from rules_engine.server.preflight import check_settings

    try:
        check_settings(settings)
        warn_if_open(settings)
        code = serve_processes(settings, workers)
    except StartupError as exc:
        typer.echo(f"rules-engine serve: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command()
def check(directory: Annotated[Path, typer.Argument(help="A rulesets directory or one ruleset.")]) -> None:
    """Validate rule files; print `file:line:column: code: message` for each problem, root causes
    first, then warnings (which do not fail the check)."""
    from rules_engine.policy.checking import check as check_directory

    report = check_directory(directory)
    for line in report.lines():
        typer.echo(line)
    if report.failed:
        further = sum(f.count for f in report.follow_ons)
        more = f" and {further} that follow from them" if further else ""
        typer.echo(f"{len(report.errors)} problem(s) found{more}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok, {len(report.warnings)} warning(s)" if report.warnings else "ok")


@app.command("eval")
def eval_case(
    case_file: Annotated[
        Path,
        typer.Argument(
            help="Proto3 JSON of a Case, or of an EvaluateRequest (what grpcurl sends: case, asOf, ruleset)."
        ),
    ],
    rulesets: RulesetsOption = BUNDLED_RULESETS,
    as_of: Annotated[
        str, typer.Option("--as-of", help="Date or RFC 3339 time; default the file's asOf, else now.")
    ] = "",
    ruleset: Annotated[
        str, typer.Option("--ruleset", help="Ruleset name; default the file's ruleset, else the only one loaded.")
    ] = "",
) -> None:
    """Evaluate one case and print the flags as JSON (the same JSON as the gRPC response)."""
    from rules_engine.errors import CaseError, RulesEngineError, RulesetRequiredError
    from rules_engine.service import requests, responses

    try:
        moment = requests.parse_as_of(as_of)  # the option's mistakes are the option's, before the file is read
    except CaseError as exc:
        typer.echo(f"--as-of: {exc.violations[0].description}", err=True)
        raise typer.Exit(2) from exc
    read = read_case_file(case_file)
    if not as_of:
        try:
            moment = requests.parse_as_of(read.as_of)
        except CaseError as exc:
            typer.echo(f"{case_file}: {exc}", err=True)
            raise typer.Exit(2) from exc
    engine, registry = load_engine(rulesets)
    try:
        evaluation = engine.evaluate(
            read.case, moment, ruleset or read.ruleset or None, requests.case_message_digest(read.message)
        )
    except RulesetRequiredError as exc:
        typer.echo(f"--ruleset: {exc.violations[0].description}", err=True)
        raise typer.Exit(2) from exc
    except RulesEngineError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    finally:
        registry.close()
    json.dump(responses.evaluation_to_json(evaluation), sys.stdout, indent=2)
    sys.stdout.write("\n")


@app.command()
def decisions(
    case: Annotated[str | None, typer.Option("--case", help="Only this case's decisions.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 100,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            envvar="RULES_ENGINE_REDIS_URL",
            help="Required: the Redis the server writes its decision log to (redis://, rediss://). "
            "A server with in-memory state keeps its log inside its own process; read it with ListDecisions.",
        ),
    ] = None,
) -> None:
    """Print the decision log, newest first, one JSON object a line (as ListDecisions returns them).

    Reads the log from Redis, so it needs --redis-url."""
    from rules_engine.errors import StoreUnavailableError
    from rules_engine.service.responses import decision_to_proto, message_to_json
    from rules_engine.store import open_store

    if not redis_url or redis_url.startswith("memory:"):
        # The in-memory log lives inside the serving process; a new process would print nothing.
        typer.echo(
            "decisions: --redis-url (RULES_ENGINE_REDIS_URL) is required: the decision log is read from the Redis "
            "the server writes to; a server with in-memory state keeps its log inside its own process "
            "(read it with the ListDecisions RPC)",
            err=True,
        )
        raise typer.Exit(2)
    store = open_store(redis_url)
    try:
        for record in store.decisions(case, limit):
            typer.echo(json.dumps(message_to_json(decision_to_proto(record)), separators=(",", ":")))
    except StoreUnavailableError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        store.close()


# test, schema, diff and docs live in cli/policy.py.
from rules_engine.cli import policy as policy_cli  # noqa: E402

policy_cli.register(app)
# replay lives in cli/replay.py.
from rules_engine.cli import replay as replay_cli  # noqa: E402

replay_cli.register(app)
# fairness and transparency live in cli/equality.py.
from rules_engine.cli import equality as equality_cli  # noqa: E402

equality_cli.register(app)


@app.command()
def synth(
    cases: Annotated[int, typer.Option("--cases", min=1, help="Number of cases to generate.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same cases.")] = 1,
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help=f"Date the cases run up to (YYYY-MM-DD); default {SYNTH_AS_OF}, fixed so a seed alone "
            "reproduces a caseload.",
        ),
    ] = SYNTH_AS_OF.isoformat(),
    output: Annotated[Path | None, typer.Option("--output", help="File to write; default stdout.")] = None,
    family: Annotated[
        str | None,
        typer.Option(
            "--family",
            help="slow-burn or control: whole life courses, one JSON line each "
            '{"case", "family", "shape", "visible_on", "start", "end", "params"} (--as-of is ignored).',
        ),
    ] = None,
) -> None:
    """Write seeded synthetic cases as JSON lines in the proto3 JSON form of Case."""
    from rules_engine.tools import lifecourse
    from rules_engine.tools.synth import write_jsonl

    if family is not None and family not in lifecourse.FAMILIES:
        typer.echo(f"--family: one of {', '.join(lifecourse.FAMILIES)}", err=True)
        raise typer.Exit(2)
    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError as exc:
        typer.echo(f"--as-of: {exc}", err=True)
        raise typer.Exit(2) from exc
    with output.open("w", encoding="utf-8") if output else contextlib.nullcontext(sys.stdout) as out:
        if family is None:
            write_jsonl(out, cases, seed, day)
        else:
            lifecourse.write_jsonl(out, family, cases, seed)


def main() -> None:
    app()

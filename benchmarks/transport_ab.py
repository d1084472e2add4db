"""The transport alone: the same Evaluate handler served by grpcio's sync server and by grpc.aio.

    python benchmarks/transport_ab.py                 # 20 and 200 facts, 3 interleaved rounds of 10 s
    python benchmarks/transport_ab.py --rounds 5 --seconds 15
    python benchmarks/transport_ab.py --serve         # one process each: built, serve, serve without the HTTP door

A spike for issue 18's next step, not the service: where does a call's CPU go between the rules
and the wire? Both servers run the servicer's Evaluate (RulesEngineServicer, the engine with the
compiled core, the in-memory store, the evaluation cache off: every call evaluates) without the
interceptors `serve` installs, two processes each on one port (SO_REUSEPORT), as `serve --workers
2`, each logging as serve does (to /dev/null). "sync": grpc.server with a pool of 4 handler threads
(serve's default). "aio": grpc.aio.server, the same handler called on the event loop's one thread
(`async def` around the sync call: the evaluation never waits on anything with the memory store).
"built": server.build_server as serve calls it (its interceptors: limits, the observer with
metrics and the log line; health, reflection), without the rest of serve (the HTTP door, the
metrics port, the ruleset watcher). h2load -c 16 -m 4 takes each server in
turn, the order alternating by round; the server's CPU is read from /proc around each run. The
figures are medians of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

METHOD = "/rules_engine.v1.RulesEngineService/Evaluate"
MODES = ("sync", "aio", "built")
# `rules-engine serve` itself, one process (--workers 1), with and without the HTTP door.
SERVE_MODES = ("serve", "serve-no-http")


def _engine() -> Any:
    import logging

    from rules_engine.cli.common import load_engine
    from rules_engine.logs import configure_logging

    # As serve logs (one JSON line per evaluation, written by the background writer), to /dev/null.
    configure_logging(logging.INFO, stream=open(os.devnull, "w"), background=True)  # noqa: SIM115  # lives as long as the process
    engine, _ = load_engine(ROOT / "rulesets")
    engine.evaluation_cache = None
    return engine


def _servicer() -> Any:
    from rules_engine.service.servicer import RulesEngineServicer

    return RulesEngineServicer(_engine())


def _handlers(behaviour: Any) -> Any:
    import grpc

    from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb

    return grpc.method_handlers_generic_handler(
        "rules_engine.v1.RulesEngineService",
        {
            "Evaluate": grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=pb.EvaluateRequest.FromString,
                response_serializer=lambda response: response.SerializeToString(),
            )
        },
    )


OPTIONS = [("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", 16 * 1024 * 1024)]


def serve_sync(port: int) -> None:
    import grpc

    servicer = _servicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=OPTIONS)
    server.add_generic_rpc_handlers((_handlers(servicer.Evaluate),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM})


def serve_built(port: int) -> None:
    from rules_engine.server.server import build_server

    server, _, _ = build_server(_engine(), "127.0.0.1", port, 4, options=[("grpc.so_reuseport", 1)])
    server.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM})


def serve_aio(port: int) -> None:
    import grpc

    servicer = _servicer()

    async def evaluate(request: Any, context: Any) -> Any:
        return servicer.Evaluate(request, context)

    async def main() -> None:
        server = grpc.aio.server(options=OPTIONS)
        server.add_generic_rpc_handlers((_handlers(evaluate),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(1)

    asyncio.run(main())


def start_serve(mode: str, port: int) -> list[subprocess.Popen[str]]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    command = [sys.executable, "-m", "rules_engine", "serve", "--plaintext", "--port", str(port), "--workers", "1"]
    command += ["--metrics-port", "0", "--evaluation-cache-size", "0", "--rulesets", str(ROOT / "rulesets")]
    command += ["--default-ruleset", "safeguarding"]
    if mode == "serve-no-http":
        command += ["--http-port", "0"]
    else:
        from peer_cerbos import free_port

        command += ["--http-port", str(free_port())]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return [process]
        except grpc.RpcError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"{mode} did not start")


def start(mode: str, port: int, processes: int = 2) -> list[subprocess.Popen[str]]:
    if mode in SERVE_MODES:
        return start_serve(mode, port)
    servers = []
    for _ in range(processes):
        process = subprocess.Popen(
            [sys.executable, __file__, "--run", mode, str(port)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit(f"{mode} server did not start")
        servers.append(process)
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--facts", default="20,200")
    parser.add_argument(
        "--serve", dest="with_serve", action="store_true", help="one process each: built, serve, serve-no-http"
    )
    parser.add_argument("--run", nargs=2, metavar=("MODE", "PORT"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.run:
        mode, port = options.run
        {"sync": serve_sync, "aio": serve_aio, "built": serve_built}[mode](int(port))
        return

    import grpc
    from grpc_load import evaluate_request, grpc_frame, run_h2load
    from peer_cerbos import free_port

    from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb

    print(f"load average {os.getloadavg()}", flush=True)
    modes = ("built", *SERVE_MODES) if options.with_serve else MODES
    processes = 1 if options.with_serve else 2
    ports = {mode: free_port() for mode in modes}
    servers = {mode: start(mode, ports[mode], processes) for mode in modes}
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as directory:
            for facts in [int(f) for f in options.facts.split(",")]:
                request = evaluate_request(facts, False)
                body = Path(directory, f"body{facts}.bin")
                body.write_bytes(grpc_frame(request.SerializeToString()))
                for mode in modes:  # a real call first: flags raised on every server
                    with grpc.insecure_channel(f"127.0.0.1:{ports[mode]}") as channel:
                        answer = channel.unary_unary(METHOD, response_deserializer=pb.EvaluateResponse.FromString)(
                            request.SerializeToString(), timeout=30
                        )
                        assert answer.flags, f"{mode}: no flags raised"
                for number in range(options.rounds):
                    order = modes[number % len(modes) :] + modes[: number % len(modes)]
                    for mode in order:
                        pids = [p.pid for p in servers[mode]]
                        args = ["-c", "16", "-m", "4", "-D", f"{options.seconds:g}", "-d", str(body)]
                        args += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
                        run = run_h2load(args, f"http://127.0.0.1:{ports[mode]}{METHOD}", pids)
                        calls = sum(n for status, n in run.statuses.items() if status == "200")
                        cpu = sum(run.server_cpu.values())
                        rate, per_call = calls / options.seconds, cpu / max(calls, 1) * 1e6
                        results.setdefault((mode, facts), []).append((rate, per_call))
                        print(f"  {mode:13s} {facts:4d} facts  {rate:8,.0f}/s  {per_call:6.0f} µs CPU/call", flush=True)
                        time.sleep(1)
    finally:
        for started in servers.values():
            for process in started:
                process.send_signal(signal.SIGTERM)
            for process in started:
                process.wait(timeout=10)
    print("\n| server | facts | calls/s | server CPU µs/call |\n|---|---:|---:|---:|")
    for (mode, facts), runs in sorted(results.items(), key=lambda item: (item[0][1], modes.index(item[0][0]))):
        rate = statistics.median(r for r, _ in runs)
        per_call = statistics.median(c for _, c in runs)
        print(f"| {mode} | {facts} | {rate:,.0f} | {per_call:,.0f} |")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()

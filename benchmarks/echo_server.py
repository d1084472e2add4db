"""The ceiling: a trivial grpcio service at the same method path, taking the same request payload.

    python benchmarks/echo_server.py --port 50099 [--threads 8]

Registers /rules_engine.v1.RulesEngineService/Evaluate with a generic handler that parses the
EvaluateRequest (so request parsing is paid, as in the real service) and answers an empty
EvaluateResponse. It binds with `grpc.so_reuseport` set, so several processes started on one
port share it as `rules-engine serve --workers N` does. Prints "ready <pid>" once serving and
stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from concurrent import futures
from types import FrameType

import grpc

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb

SERVICE = "rules_engine.v1.RulesEngineService"


def evaluate(request: pb.EvaluateRequest, _context: grpc.ServicerContext) -> pb.EvaluateResponse:
    return pb.EvaluateResponse()


def build(port: int, threads: int) -> grpc.Server:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="echo"),
        options=[("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", 16 * 1024 * 1024)],
    )
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Evaluate": grpc.unary_unary_rpc_method_handler(
                evaluate,
                request_deserializer=pb.EvaluateRequest.FromString,
                response_serializer=pb.EvaluateResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot bind 127.0.0.1:{port}")
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8, help="gRPC threads, as `serve --max-workers`")
    options = parser.parse_args()
    server = build(options.port, options.threads)
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    print(f"ready {os.getpid()}", flush=True)
    stopping.wait()
    server.stop(1).wait()
    sys.exit(0)


if __name__ == "__main__":
    main()

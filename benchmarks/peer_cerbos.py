"""The peer row of issue 18: the Cerbos PDP (Go) answering CheckResources under the same h2load load.

    python benchmarks/peer_cerbos.py [--seconds 10] [--rounds 3] [--clients 16] [--streams 4]

The Cerbos binary comes from npm (`@cerbos/cerbos-linux-x64`, which ships it); install it outside
the repository, or into the gitignored benchmarks/.peer/:

    npm install --prefix benchmarks/.peer @cerbos/cerbos-linux-x64@0.55.0

or point --cerbos (or CERBOS_BIN) at a `cerbos` binary. The workload (benchmarks/peer/cerbos/):
one resource policy of 25 rules, each a CEL condition over the attributes of a case summary, and
one CheckResources request for a resource with 30 attributes asking for all 25 actions, so every
condition is evaluated on every call (15 of them hold). `cerbos server` runs as one process (Go
schedules its goroutines on every core: GOMAXPROCS is the number of CPUs), on free ports, disk
store, audit and telemetry off.

The gRPC request is framed by hand as for Evaluate (benchmarks/grpc_load.py): the
CheckResourcesRequest is encoded from message types built here with the public API's field
numbers (cerbos/request/v1/request.proto, cerbos/engine/v1/engine.proto: no generated Cerbos
code is needed). Before the load, real gRPC calls must answer all 25 actions with exactly the
expected ones allowed. Figures: calls/s, server CPU per call (utime + stime of the Cerbos
process from /proc/PID/stat over exactly the run), median and p99 latency from h2load's log.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import grpc_load
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory, struct_pb2
from google.protobuf.message import Message
from grpc_load import BenchmarkError, LoadRun, Server

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT / "benchmarks" / "peer" / "cerbos"
POLICIES = PEER / "policies"
CASE = PEER / "case.json"
METHOD = "/cerbos.svc.v1.CerbosService/CheckResources"
NPM_PACKAGE = "@cerbos/cerbos-linux-x64"
NPM_VERSION = "0.55.0"
INSTALL_HINT = (
    f"npm install --prefix benchmarks/.peer {NPM_PACKAGE}@{NPM_VERSION} "
    "(or --cerbos / CERBOS_BIN pointing at a cerbos binary)"
)
EFFECT_ALLOW = 1


# --- the request and response messages, from the public API's field numbers ------------------


def _message_types() -> tuple[type[Message], type[Message]]:
    """CheckResourcesRequest and CheckResourcesResponse with only the fields the benchmark uses."""
    field_type = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(struct_pb2.DESCRIPTOR.serialized_pb))
    file = descriptor_pb2.FileDescriptorProto(
        name="benchmarks/cerbos_check.proto",
        package="cerbos_check",
        syntax="proto3",
        dependency=["google/protobuf/struct.proto"],
    )

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> descriptor_pb2.DescriptorProto:
        proto = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = proto.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
        return proto

    def map_entry(parent: descriptor_pb2.DescriptorProto, name: str, value: tuple[int, str]) -> None:
        entry = parent.nested_type.add(name=name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=field_type.TYPE_STRING, label=field_type.LABEL_OPTIONAL)
        field = entry.field.add(name="value", number=2, type=value[0], label=field_type.LABEL_OPTIONAL)
        if value[1]:
            field.type_name = value[1]

    optional, repeated = field_type.LABEL_OPTIONAL, field_type.LABEL_REPEATED
    value = (field_type.TYPE_MESSAGE, ".google.protobuf.Value")
    # cerbos.engine.v1.Principal: id 1, policy_version 2, roles 3, attr 4, scope 5.
    principal = message(
        "Principal",
        ("id", 1, field_type.TYPE_STRING, optional, ""),
        ("roles", 3, field_type.TYPE_STRING, repeated, ""),
        ("attr", 4, field_type.TYPE_MESSAGE, repeated, ".cerbos_check.Principal.AttrEntry"),
    )
    map_entry(principal, "AttrEntry", value)
    # cerbos.engine.v1.Resource: kind 1, policy_version 2, id 3, attr 4, scope 5.
    resource = message(
        "Resource",
        ("kind", 1, field_type.TYPE_STRING, optional, ""),
        ("id", 3, field_type.TYPE_STRING, optional, ""),
        ("attr", 4, field_type.TYPE_MESSAGE, repeated, ".cerbos_check.Resource.AttrEntry"),
    )
    map_entry(resource, "AttrEntry", value)
    # CheckResourcesRequest.ResourceEntry: actions 1, resource 2.
    message(
        "ResourceEntry",
        ("actions", 1, field_type.TYPE_STRING, repeated, ""),
        ("resource", 2, field_type.TYPE_MESSAGE, optional, ".cerbos_check.Resource"),
    )
    # CheckResourcesRequest: request_id 1, include_meta 2, principal 3, resources 4, aux_data 5.
    message(
        "CheckResourcesRequest",
        ("request_id", 1, field_type.TYPE_STRING, optional, ""),
        ("principal", 3, field_type.TYPE_MESSAGE, optional, ".cerbos_check.Principal"),
        ("resources", 4, field_type.TYPE_MESSAGE, repeated, ".cerbos_check.ResourceEntry"),
    )
    # CheckResourcesResponse.ResultEntry: resource 1 (id 1, kind 2), actions 2 (map to the Effect enum).
    string = field_type.TYPE_STRING
    message("ResultResource", ("id", 1, string, optional, ""), ("kind", 2, string, optional, ""))
    result = message(
        "ResultEntry",
        ("resource", 1, field_type.TYPE_MESSAGE, optional, ".cerbos_check.ResultResource"),
        ("actions", 2, field_type.TYPE_MESSAGE, repeated, ".cerbos_check.ResultEntry.ActionsEntry"),
    )
    # The Effect enum's numbers: on the wire a varint, as an int32.
    map_entry(result, "ActionsEntry", (field_type.TYPE_INT32, ""))
    # CheckResourcesResponse: request_id 1, results 2, cerbos_call_id 3.
    message(
        "CheckResourcesResponse",
        ("request_id", 1, field_type.TYPE_STRING, optional, ""),
        ("results", 2, field_type.TYPE_MESSAGE, repeated, ".cerbos_check.ResultEntry"),
    )
    pool.Add(file)
    request = message_factory.GetMessageClass(pool.FindMessageTypeByName("cerbos_check.CheckResourcesRequest"))
    response = message_factory.GetMessageClass(pool.FindMessageTypeByName("cerbos_check.CheckResourcesResponse"))
    return request, response


CheckResourcesRequest, CheckResourcesResponse = _message_types()


def workload() -> dict[str, Any]:
    """The case summary, its actions (every rule of the policy) and the actions expected to be allowed."""
    case: dict[str, Any] = json.loads(CASE.read_text())
    actions = _policy_actions()
    if len(actions) != 25 or len(case["resource"]["attr"]) != 30:
        raise BenchmarkError(f"the peer workload should be 25 rules over 30 attributes: {len(actions)}, attributes")
    case["actions"] = actions
    return case


def _policy_actions() -> list[str]:
    import yaml

    actions: list[str] = []
    for path in sorted(POLICIES.glob("*.yaml")):
        policy = yaml.safe_load(path.read_text())
        for rule in policy["resourcePolicy"]["rules"]:
            actions.extend(rule["actions"])
    return actions


def request_bytes(case: dict[str, Any]) -> bytes:
    request = CheckResourcesRequest()
    json_format.ParseDict(
        {
            "request_id": "bench",
            "principal": case["principal"],
            "resources": [{"actions": case["actions"], "resource": case["resource"]}],
        },
        request,
    )
    return request.SerializeToString()


# --- the server ----------------------------------------------------------------------------


def find_cerbos(explicit: str | None = None) -> Path | None:
    candidates = [explicit, os.environ.get("CERBOS_BIN")]
    for prefix in (ROOT / "benchmarks" / ".peer", Path("/tmp/cerbos")):
        candidates.append(str(prefix / "node_modules" / NPM_PACKAGE / "cerbos-linux-x64"))
    candidates.append(shutil.which("cerbos"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def cerbos_version(binary: Path) -> str:
    text = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False).stdout
    return text.splitlines()[0].strip() if text else "?"


@dataclasses.dataclass
class CerbosServer:
    server: Server
    http_port: int
    version: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_cerbos(binary: Path, directory: Path) -> CerbosServer:
    """`cerbos server` on free gRPC and HTTP ports, the benchmark's policies from disk."""
    compiled = subprocess.run([str(binary), "compile", str(POLICIES)], capture_output=True, text=True, check=False)
    if compiled.returncode != 0:
        raise BenchmarkError(f"cerbos compile {POLICIES} failed:\n{compiled.stdout}{compiled.stderr}")
    grpc_port, http_port, debug_port = free_port(), free_port(), free_port()
    config = directory / "cerbos.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "server": {"httpListenAddr": f"127.0.0.1:{http_port}", "grpcListenAddr": f"127.0.0.1:{grpc_port}"},
                "storage": {"driver": "disk", "disk": {"directory": str(POLICIES), "watchForChanges": False}},
                "audit": {"enabled": False},
                "telemetry": {"disabled": True},
            }
        )
    )
    log = directory / "cerbos.log"
    command = [
        str(binary),
        "server",
        f"--config={config}",
        "--log-level=warn",
        f"--debug-listen-addr=127.0.0.1:{debug_port}",
    ]
    environment = {**os.environ, "CERBOS_NO_TELEMETRY": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    server = Server("cerbos", grpc_port, [process], log)
    deadline = time.monotonic() + 60
    while True:
        if not server.alive():
            raise BenchmarkError(f"cerbos exited while starting:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", grpc_port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise BenchmarkError("cerbos did not open its gRPC port within 60 s") from None
            time.sleep(0.1)
    return CerbosServer(server, http_port, cerbos_version(binary))


def check_calls(port: int, case: dict[str, Any], body: bytes, calls: int = 3) -> int:
    """Real gRPC calls: every action answered, exactly the expected ones allowed. Returns the framed response size."""
    size = 0
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call: Any = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        for attempt in range(calls + 50):
            try:
                raw: bytes = call(body, timeout=30)
            except grpc.RpcError as error:
                # The port opens before the policies are loaded: retry for a few seconds.
                if attempt < 50 and error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                    time.sleep(0.1)
                    continue
                raise BenchmarkError(f"CheckResources failed: {error.code().name}: {error.details()}") from error
            response = CheckResourcesResponse.FromString(raw)
            effects = dict(response.results[0].actions) if response.results else {}  # type: ignore[attr-defined]
            allowed = sorted(action for action, effect in effects.items() if effect == EFFECT_ALLOW)
            if set(effects) != set(case["actions"]):
                raise BenchmarkError(f"cerbos answered {len(effects)} actions, not the {len(case['actions'])} asked")
            if allowed != sorted(case["expected_allowed"]):
                raise BenchmarkError(f"cerbos allowed {allowed}, expected {sorted(case['expected_allowed'])}")
            size = len(grpc_load.grpc_frame(raw))
            calls -= 1
            if calls == 0:
                break
    return size


# --- standalone ----------------------------------------------------------------------------


def load(
    cerbos: CerbosServer, body: Path, response_bytes: int, *, seconds: float, clients: int, streams: int
) -> LoadRun:
    return grpc_load.h2load(
        cerbos.server,
        body,
        seconds=seconds,
        warm_up=0,
        clients=clients,
        streams=streams,
        expected_response_bytes=response_bytes,
        path=METHOD,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cerbos", help="the cerbos binary (default: CERBOS_BIN, benchmarks/.peer, /tmp/cerbos, PATH)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warm-up", type=float, default=3.0, help="one unmeasured run first")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--streams", type=int, default=4)
    options = parser.parse_args()
    missing = grpc_load.h2load_missing()
    binary = find_cerbos(options.cerbos)
    if missing or binary is None:
        print(missing or f"cerbos not found: {INSTALL_HINT}", file=sys.stderr)
        return 1
    case = workload()
    message = request_bytes(case)
    with tempfile.TemporaryDirectory(prefix="cerbos-bench-") as scratch:
        directory = Path(scratch)
        cerbos = start_cerbos(binary, directory)
        try:
            size = check_calls(cerbos.server.port, case, message)
            body = directory / "check.bin"
            body.write_bytes(grpc_load.grpc_frame(message))
            print(
                f"{cerbos.version}: request {body.stat().st_size} B, response {size} B, load {os.getloadavg()[0]:.2f}"
            )
            shape = {"clients": options.clients, "streams": options.streams}
            load(cerbos, body, size, seconds=options.warm_up, **shape)
            runs = []
            for round_ in range(options.rounds):
                run = load(cerbos, body, size, seconds=options.seconds, **shape)
                runs.append(run)
                print(
                    f"  round {round_ + 1}: {run.per_second:8.0f} calls/s  "
                    f"{run.server_cpu_us_per_call:5.0f} µs CPU/call  p50 {run.median_ms:.2f} ms  "
                    f"p99 {run.p99_ms:.2f} ms  {'ok' if run.responses_ok else 'NOT OK'}"
                )
        finally:
            cerbos.server.stop()
    print(
        f"cerbos (median of {len(runs)}): {statistics.median(r.per_second for r in runs):,.0f} calls/s, "
        f"{statistics.median(r.server_cpu_us_per_call for r in runs):,.0f} µs server CPU/call, "
        f"p50 {statistics.median(r.median_ms for r in runs):.2f} ms, "
        f"p99 {statistics.median(r.p99_ms for r in runs):.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

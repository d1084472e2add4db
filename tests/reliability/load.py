"""A steady client load for fault tests: threads issuing calls with deadlines, counting outcomes by status code."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from tests.redis_server import free_port
from tests.serve_process import wait_serving

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2025-06-30"
# Each channel its own connection: with SO_REUSEPORT the kernel spreads connections, not calls.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def case(case_id: str, *fact_ids: str) -> case_pb2.Case:
    message = case_pb2.Case(case_id=case_id)
    for fact_id in fact_ids or ("c0",):
        message.concerns.add(id=fact_id, date="2025-05-01", agency="POLICE", category="NEGLECT")
    return message


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def serve(tmp_path: Path, *args: str, rulesets: Path | None = None) -> Iterator[Served]:
    """`rules-engine serve --plaintext` on a free port over a copy of the starter ruleset (or `rulesets`)."""
    if rulesets is None:
        rulesets = tmp_path / "rulesets"
        shutil.copytree(ROOT / "rulesets" / "starter", rulesets / "starter")
    port = free_port()
    command = [sys.executable, "-m", "rules_engine", "serve", "--plaintext", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--metrics-port", "0", "--rulesets", str(rulesets), *args]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out, text=True)
    try:
        wait_serving(f"127.0.0.1:{port}", process)
        yield Served(process, port, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# One call: (stub, sequence number, thread number) -> the key of what it acknowledged, or None.
Call = Callable[[pb_grpc.RulesEngineServiceStub, int, int], str | None]


@dataclass
class Load:
    """`threads` clients, each on its own connection, calling `call` back to back until stopped.

    With `retry`, a call that fails UNAVAILABLE is sent again (as a client library would) and
    every attempt is counted; `acknowledged` holds what successful writes answered.
    """

    address: str
    call: Call
    threads: int = 4
    retry: Sequence[grpc.StatusCode] = ()
    codes: Counter[str] = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)
    slowest: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started: float = 0.0
    seconds: float = 0.0

    def __enter__(self) -> Load:
        self._started = time.monotonic()
        for number in range(self.threads):
            worker = threading.Thread(target=self._run, args=(number,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)
        self.seconds = time.monotonic() - self._started

    def _run(self, number: int) -> None:
        with grpc.insecure_channel(self.address, options=OWN_CONNECTION) as channel:
            stub = pb_grpc.RulesEngineServiceStub(channel)
            for sequence in itertools.count():
                if self._stop.is_set():
                    return
                while True:
                    started = time.monotonic()
                    try:
                        key = self.call(stub, sequence, number)
                        code = "OK"
                    except grpc.RpcError as error:
                        key, code = None, error.code().name
                    took = time.monotonic() - started
                    with self._lock:
                        self.codes[code] += 1
                        self.slowest = max(self.slowest, took)
                        if key is not None:
                            self.acknowledged.append(key)
                    if code != "OK":
                        time.sleep(0.02)  # a client backs off; a tight loop would only count refusals
                    if code == "OK" or grpc.StatusCode[code] not in self.retry or self._stop.is_set():
                        break

    def count(self, code: str = "OK") -> int:
        with self._lock:
            return self.codes[code]

    def wait_for(self, code: str, at_least: int, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while self.count(code) < at_least:
            assert time.monotonic() < deadline, f"fewer than {at_least} {code} in {seconds} s: {self.codes}"
            time.sleep(0.02)

    @property
    def calls(self) -> int:
        return sum(self.codes.values())

    def failed(self) -> dict[str, int]:
        return {code: n for code, n in sorted(self.codes.items()) if code != "OK"}

    def summary(self, what: str, lost: int) -> str:
        rate = self.calls / self.seconds if self.seconds else 0.0
        line = (
            f"{what}: {self.calls} calls in {self.seconds:.1f} s ({rate:.0f}/s, {self.threads} clients), "
            f"failed {self.failed() or 0}, acknowledged {len(self.acknowledged)}, lost {lost}"
        )
        print("\n" + line)
        return line


def stored_facts(address: str, case_ids: set[str]) -> set[str]:
    """`case_id/fact_id` of every fact the store holds for these cases, read back through GetChronology."""
    found: set[str] = set()
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.RulesEngineServiceStub(channel)
        for case_id in case_ids:
            chronology = stub.GetChronology(pb.GetChronologyRequest(case_id=case_id), timeout=10)
            found.update(
                f"{case_id}/{e.fact_id}" for e in chronology.entries if e.kind == pb.CHRONOLOGY_ENTRY_KIND_FACT
            )
    return found


def stateful_write(stub: pb_grpc.RulesEngineServiceStub, sequence: int, number: int, deadline: float = 2.0) -> str:
    """A stored-history Evaluate adding one new fact to the thread's case; acknowledges `case/fact`."""
    case_id, fact_id = f"load-{number}", f"f{sequence}"
    request = pb.EvaluateRequest(case=case(case_id, fact_id), as_of=AS_OF, use_stored_history=True)
    stub.Evaluate(request, timeout=deadline)
    return f"{case_id}/{fact_id}"


def stateless(stub: pb_grpc.RulesEngineServiceStub, sequence: int, _number: int) -> None:
    request = pb.EvaluateRequest(case=case(f"s-{sequence}", *(f"c{i}" for i in range(6))), as_of=AS_OF)
    response = stub.Evaluate(request, timeout=5)
    assert response.flags, "the starter ruleset flags six concerns"

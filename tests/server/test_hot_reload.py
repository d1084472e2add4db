"""Hot reload under load: a real server keeps answering while rule files change under it."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from rules_engine.config import BUNDLED_RULESETS
from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry, ReloadResult
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.server.server import build_server
from rules_engine.server.watcher import Watcher
from rules_engine.service import requests
from rules_engine.tools import ruletest

EXAMPLE_CASE = Path(__file__).resolve().parents[2] / "examples" / "case.json"


@dataclass
class Client:
    """Calls Evaluate back to back until stopped; keeps every version seen and every error."""

    stub: pb_grpc.RulesEngineServiceStub
    request: pb.EvaluateRequest
    versions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.versions.append(self.stub.Evaluate(self.request, timeout=10).ruleset_version)
            except grpc.RpcError as exc:
                self.errors.append(f"{exc.code()}: {exc.details()}")


@dataclass
class Served:
    root: Path
    stub: pb_grpc.RulesEngineServiceStub
    results: list[ReloadResult]

    def info(self) -> pb.RulesetInfo:
        (info,) = self.stub.ListRulesets(pb.ListRulesetsRequest()).rulesets
        return info

    def wait_for(self, check: Callable[[pb.RulesetInfo], bool], what: str) -> pb.RulesetInfo:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = self.info()
            if check(info):
                return info
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last: {self.info()}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "rulesets"
    shutil.copytree(BUNDLED_RULESETS / "starter", root / "starter")
    results: list[ReloadResult] = []
    registry = Registry(root, compile_ruleset, gate=ruletest.gate, on_reload=results.append)
    registry.reload()
    server, port, _health = build_server(Engine(registry), "127.0.0.1", 0, max_workers=4)
    server.start()
    watcher = Watcher(root, registry.reload, interval=0.2)
    watcher.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(root, pb_grpc.RulesEngineServiceStub(channel), results)
    finally:
        watcher.stop()
        channel.close()
        server.stop(None).wait()
        registry.close()


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    # Write beside and rename, as editors and ConfigMap updates do: readers never see half a file.
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text.replace(old, new), encoding="utf-8")
    temporary.replace(path)


def test_changes_are_swapped_in_or_refused_without_losing_a_request(served: Served) -> None:
    case = requests.case_from_json(json.loads(EXAMPLE_CASE.read_text(encoding="utf-8")))
    client = Client(served.stub, pb.EvaluateRequest(case=case, as_of="2025-06-30"))
    thread = threading.Thread(target=client.run)
    first = served.info().version
    thread.start()
    try:
        rules = served.root / "starter" / "rules.yaml"
        # 1. A valid change (wording only): compiled, tested, swapped in.
        _replace(rules, "or more concerns recorded in 12 months", "or more concerns in 12 months")
        second = served.wait_for(lambda i: i.version != first, "the valid change").version
        count_before_bad = len(client.versions)

        # 2. An invalid change: refused at its file and line; the last good version keeps serving.
        _replace(rules, "condition: workers_12m >= worker_churn_threshold", "condition: workers_12m >=")
        info = served.wait_for(lambda i: "rules.yaml:" in i.last_error, "the invalid change to be refused")
        assert info.version == second
        assert "starter/rules.yaml:21:30:" in info.last_error

        # 3. A valid rule file whose own tests fail: refused, naming the failing test's file and line.
        _replace(rules, "condition: workers_12m >=\n", "condition: workers_12m >= worker_churn_threshold\n")
        _replace(served.root / "starter" / "ruleset.yaml", "concerns_threshold: 5 ", "concerns_threshold: 6 ")
        info = served.wait_for(lambda i: "tests/" in i.last_error, "the change failing its tests to be refused")
        assert info.version == second
        assert "starter/tests/concerns.yaml:" in info.last_error
        assert "rule cumulative-concerns expected raised, got not raised" in info.last_error
        # Keep calling for a moment after the last refusal.
        time.sleep(0.5)
    finally:
        client.stop.set()
        thread.join()

    assert client.errors == []
    assert set(client.versions) <= {first, second}
    assert client.versions[-1] == second
    assert len(client.versions) > count_before_bad > 0
    assert served.info().version == second
    refused = [r for r in served.results if r.outcome == "refused"]
    assert len(refused) == 2
    assert [r.outcome for r in served.results if r.outcome != "unchanged"] == ["loaded", "loaded", *["refused"] * 2]


def test_sighup_style_trigger_reloads_without_a_change(tmp_path: Path) -> None:
    root = tmp_path / "rulesets"
    shutil.copytree(BUNDLED_RULESETS / "starter", root / "starter")
    calls: list[int] = []
    done = threading.Event()

    def reload() -> None:
        calls.append(1)
        done.set()

    watcher = Watcher(root, reload, interval=30)
    watcher.start()
    try:
        watcher.trigger()
        assert done.wait(10)
    finally:
        watcher.stop()
    assert calls == [1]


def test_configmap_symlink_swap_is_seen(tmp_path: Path) -> None:
    """A ConfigMap update renames a new `..data` link into place; the resolved tree changes."""
    mount = tmp_path / "mount"
    mount.mkdir()
    first = mount / "..2025_01"
    shutil.copytree(BUNDLED_RULESETS / "starter", first / "starter")
    (mount / "..data").symlink_to(first.name)
    (mount / "starter").symlink_to("..data/starter")
    changed = threading.Event()
    watcher = Watcher(mount, changed.set, interval=0.1)
    watcher.start()
    try:
        second = mount / "..2025_02"
        shutil.copytree(first, second, symlinks=True)
        _replace(second / "starter" / "rules.yaml", "Team manager", "Team manager (duty)")
        (mount / "..data_tmp").symlink_to(second.name)
        (mount / "..data_tmp").replace(mount / "..data")
        assert changed.wait(10)
    finally:
        watcher.stop()

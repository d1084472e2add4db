"""The workbench over a real Engine: the `mini` ruleset (tests/workbench/rulesets) and a copy of
the bundled `starter`, with a fixed clock; requests go through the real ASGI app by httpx."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rules_engine.engine.engine import Engine
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset
from rules_engine.tools.ruletest import gate
from rules_engine.workbench import Workbench, WorkbenchOptions, build_workbench
from rules_engine.workbench.app import Admit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NOW = dt.datetime(2025, 7, 1, 9, 0, tzinfo=dt.UTC)
AS_OF = "2025-06-30"


def copy_rulesets(target: Path) -> Path:
    """mini and starter side by side, as a --rulesets directory."""
    shutil.copytree(HERE / "rulesets" / "mini", target / "mini")
    shutil.copytree(ROOT / "rulesets" / "starter", target / "starter")
    return target


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    root = copy_rulesets(tmp_path_factory.mktemp("rulesets"))
    registry = Registry(root, compile_ruleset, gate=gate, default="starter")
    assert {r.outcome for r in registry.reload()} == {"loaded"}
    engine = Engine(registry, clock=lambda: NOW)
    yield engine
    registry.close()


def make_workbench(
    engine: Engine, admit: Admit | None = None, static_dir: Path | None = None, **options: Any
) -> Workbench:
    kwargs: dict[str, Any] = {} if static_dir is None else {"static_dir": static_dir}
    return build_workbench(engine, WorkbenchOptions(**options), admit, clock=lambda: NOW, **kwargs)


@pytest.fixture(scope="module")
def workbench(engine: Engine) -> Workbench:
    return make_workbench(engine)


@dataclass
class Client:
    """Calls an ASGI app in process, one event loop per call (as test_http.py does)."""

    app: Any

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def run() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://workbench") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(run())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


@pytest.fixture(scope="module")
def client(workbench: Workbench) -> Client:
    return Client(workbench)


def concerns_case(case_id: str, count: int) -> dict[str, Any]:
    """A proto3 JSON case with `count` concerns in the 12 months before AS_OF."""
    concerns = [
        {"id": f"c{i}", "date": (dt.date(2025, 1, 2) + dt.timedelta(days=i)).isoformat(), "agency": "POLICE"}
        for i in range(count)
    ]
    return {"caseId": case_id, **({"concerns": concerns} if concerns else {})}

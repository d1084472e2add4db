"""`serve` refuses settings that would split case state or leave requests without a ruleset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rules_engine", "serve", "--plaintext", "--host", "127.0.0.1"]
    command += ["--port", str(free_port()), "--metrics-port", "0", *args]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RULES_ENGINE_")}
    return subprocess.run(
        command, check=False, cwd=ROOT, env={**environment, **(env or {})}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--workers", "2"), {}),
        (("--workers", "4", "--redis-url", "memory://"), {}),
        ((), {"RULES_ENGINE_WORKERS": "3"}),
    ],
)
def test_several_workers_without_redis_refuse_to_start(args: tuple[str, ...], env: dict[str, str]) -> None:
    result = _serve(*args, env=env)
    assert result.returncode == 2, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("refusing to start")]
    assert "with the in-memory case store would keep separate case state in each process" in line
    assert "--redis-url" in line and "--workers 1" in line


def test_a_default_ruleset_that_is_not_loaded_stops_the_start() -> None:
    result = _serve("--default-ruleset", "nope")
    assert result.returncode == 2
    assert "the default ruleset 'nope' is not loaded (loaded: safeguarding, starter)" in result.stderr

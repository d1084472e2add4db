"""A newcomer's first hour, scripted from README.md itself, so the README cannot drift from the code.

The "Try it" block runs line by line against a fresh server started as `make run` starts it
(the Makefile's recipe, on free ports); the commands table's examples that run offline run
with their placeholders filled in. grpcurl runs when installed; otherwise a stand-in that
uses the server's reflection as grpcurl does takes the same arguments (tests/e2e/grpcurl_stand_in.py).
curl calls the HTTP (Connect) door of the same server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import free_port
from tests.serve_process import stop, wait_serving

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
STAND_IN = Path(__file__).with_name("grpcurl_stand_in.py")
# The table's placeholders, filled in; `CASE.json` is the request file, which names its ruleset.
PLACEHOLDERS = {
    "CASE.json": "examples/evaluate-request.json",
    "CASES.jsonl": "cases.jsonl",
    "DIR": "rulesets",
    "OLD": "rulesets/starter",
    "NEW": "rulesets/starter",
    "N": "20",
    "S": "1",
}
OFFLINE = ("check", "test", "eval", "replay", "synth", "docs", "schema", "diff")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def try_it_commands() -> list[str]:
    """The fenced bash block of "Try it": one command a line (continuations joined), comments dropped."""
    [block] = re.findall(r"```bash\n(.*?)```", _section("Try it"), re.DOTALL)
    joined = block.replace("\\\n", " ")
    lines = [re.sub(r"\s{2,}#.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def table_examples() -> dict[str, str]:
    """`rules-engine CMD …` from the commands table, first example per offline command, placeholders filled."""
    examples: dict[str, str] = {}
    for row in _section("Commands").splitlines():
        match = re.match(r"\| `rules-engine (\w+)([^`]*)` \|", row)
        if match is None or match.group(1) not in OFFLINE:
            continue
        name, rest = match.groups()
        rest = re.sub(r"\[[^\]]*\]", "", rest).replace("\\|", "|")  # optional parts left out
        rest = re.sub(r"(\w[\w-]*)\|[\w|-]+", r"\1", rest)  # alternatives: the first
        words = [PLACEHOLDERS.get(word, word) for word in rest.split()]
        examples.setdefault(name, " ".join(["rules-engine", name, *words]))
    return examples


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory like a fresh clone's: examples, rulesets and .venv/bin/rules-engine."""
    home = tmp_path_factory.mktemp("clone")
    for name in ("examples", "rulesets"):
        (home / name).symlink_to(ROOT / name)
    script = home / ".venv" / "bin" / "rules-engine"
    script.parent.mkdir(parents=True)
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rules_engine "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return home


def _run(command: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RULES_ENGINE_")}
    environment["PATH"] = f"{home / '.venv' / 'bin'}:{environment['PATH']}"
    return subprocess.run(
        ["bash", "-c", command],
        check=False,
        cwd=home,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        input=stdin,
    )


def _flags(text: str) -> list[str]:
    return sorted(flag["ruleId"] for flag in json.loads(text).get("flags", []))


def test_the_readme_has_what_this_test_reads() -> None:
    commands = try_it_commands()
    assert commands[0] == "make run &"
    assert commands[1].startswith("curl "), "curl comes first"
    assert sum(c.startswith("curl ") for c in commands) == 2
    assert sum(c.startswith("grpcurl ") for c in commands) == 2
    assert set(table_examples()) == set(OFFLINE)


def test_try_it_against_a_fresh_server(newcomer: Path) -> None:
    commands = try_it_commands()
    recipe = re.search(r"^run: .*\n\t(.+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert recipe is not None
    port, metrics_port, http_port = free_port(), free_port(), free_port()
    serve = recipe.group(1).replace("$(BIN)/", ".venv/bin/")
    serve += f" --host 127.0.0.1 --port {port} --metrics-port {metrics_port} --http-port {http_port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RULES_ENGINE_")}
    process = subprocess.Popen(
        ["bash", "-c", f"exec {serve}"], cwd=newcomer, env=environment, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_serving(f"127.0.0.1:{port}", process)
        answers: list[list[str]] = []
        for command in commands[1:]:
            if command.startswith("curl "):
                call = command.replace("localhost:8080", f"127.0.0.1:{http_port}")
                call = call.replace("curl ", "curl -sS --fail ", 1)
                result = _run(call, newcomer)
                assert result.returncode == 0, (call, result.stderr)
                if "/Evaluate" in call:
                    answers.append(_flags(result.stdout))
                else:
                    assert {r["name"] for r in json.loads(result.stdout)["rulesets"]} >= {"starter", "safeguarding"}
            elif command.startswith("grpcurl "):
                call = command.replace("localhost:50051", f"127.0.0.1:{port}")
                if shutil.which("grpcurl") is None:
                    call = f'"{sys.executable}" "{STAND_IN}"' + call.removeprefix("grpcurl")
                result = _run(call, newcomer)
                assert result.returncode == 0, (call, result.stderr)
                answers.append(_flags(result.stdout))
            else:
                result = _run(command, newcomer)
                assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
                if " eval " in command:
                    # "same flags, offline": as the first call, which names the same ruleset and date.
                    assert _flags(result.stdout) == answers[0] != []
        # curl's Evaluate and grpcurl's of the same request file: one service, two doors.
        assert len(answers) == 3 and all(answers) and answers[0] == answers[1]
    finally:
        stop(process)
        _, stderr = process.communicate()
    waited_for = re.search(r'wait for "([^"]+)"', _section("Try it"))
    assert waited_for is not None and waited_for.group(1) in stderr


def test_the_commands_table_runs_offline(newcomer: Path) -> None:
    examples = table_examples()
    synth = _run(examples["synth"] + " > cases.jsonl", newcomer)  # diff's CASES.jsonl
    assert synth.returncode == 0, synth.stderr
    for name in OFFLINE:
        result = _run(examples[name], newcomer)
        assert result.returncode == 0, (examples[name], result.stdout[-2000:], result.stderr[-2000:])
    assert (newcomer / "schemas").is_dir() and (newcomer / "docs").is_dir()


def test_the_readme_says_how_to_stop_the_service() -> None:
    text = " ".join(_section("Try it").split())
    assert "Ctrl-C" in text and "SIGTERM" in text

"""The CLI takes what the README says: both file forms, both directory forms, JSON mistakes by field path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rules_engine.cli.app import app
from rules_engine.engine.registry import Registry
from rules_engine.policy.compiler import compile_ruleset, rulesets_in

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
STARTER = ROOT / "rulesets" / "starter"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _flags(stdout: str) -> list[str]:
    return [flag["ruleId"] for flag in json.loads(stdout).get("flags", [])]


def test_one_resolution_of_a_directory_for_every_command() -> None:
    assert rulesets_in(ROOT / "rulesets") == [ROOT / "rulesets" / "safeguarding", STARTER]
    assert rulesets_in(STARTER) == [STARTER]
    assert rulesets_in(ROOT / "nope") == []
    registry = Registry(STARTER, compile_ruleset, matcher="reference")
    try:
        assert [r.outcome for r in registry.reload()] == ["loaded"]
        assert registry.names() == ["starter"]
    finally:
        registry.close()


def test_eval_takes_the_request_file_with_its_as_of_and_ruleset() -> None:
    code, request_out, err = _run("eval", str(EXAMPLES / "evaluate-request.json"))
    assert code == 0, err
    code, case_out, err = _run("eval", str(EXAMPLES / "case.json"), "--as-of", "2025-06-30", "--ruleset", "starter")
    assert code == 0, err
    assert _flags(request_out) == _flags(case_out) != []
    assert json.loads(request_out)["ruleset"] == "starter"
    assert json.loads(request_out)["asOf"].startswith("2025-06-30")


def test_options_override_the_request_file() -> None:
    code, out, err = _run("eval", str(EXAMPLES / "evaluate-request.json"), "--as-of", "2025-01-01")
    assert code == 0, err
    assert json.loads(out)["asOf"].startswith("2025-01-01")
    code, out, err = _run("eval", str(EXAMPLES / "evaluate-request.json"), "--ruleset", "safeguarding")
    assert code == 0, err
    assert json.loads(out)["ruleset"] == "safeguarding"


def test_eval_and_replay_take_one_rulesets_directory() -> None:
    code, out, err = _run("eval", str(EXAMPLES / "case.json"), "--as-of", "2025-06-30", "--rulesets", str(STARTER))
    assert code == 0, err
    assert json.loads(out)["ruleset"] == "starter"
    code, out, err = _run("replay", str(EXAMPLES / "evaluate-request.json"), "--rulesets", str(STARTER))
    assert code == 0, err
    assert "evaluations in" in out


def test_an_unknown_field_is_named_by_its_path_with_a_suggestion(tmp_path: Path) -> None:
    document = json.loads((EXAMPLES / "evaluate-request.json").read_text(encoding="utf-8"))
    document["case"]["concerns"][1]["agnecy"] = document["case"]["concerns"][1].pop("agency")
    for name, body in (("request.json", document), ("case.json", document["case"])):
        path = tmp_path / name
        path.write_text(json.dumps(body), encoding="utf-8")
        code, _, err = _run("eval", str(path), "--as-of", "2025-06-30", "--ruleset", "starter")
        assert code == 2
        assert err.splitlines() == [
            f"{path}: case.concerns[1].agnecy: unknown field; did you mean 'agency'? (value 'EDUCATION')"
        ]


def test_unknown_codes_get_the_nearest_or_the_valid_ones(tmp_path: Path) -> None:
    document = json.loads((EXAMPLES / "evaluate-request.json").read_text(encoding="utf-8"))
    document["case"]["concerns"][0]["agency"] = "POLIC"
    document["case"]["plans"][0]["kind"] = "PLAN_KIND_CHILD_IN_NEEED"
    path = tmp_path / "request.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    code, _, err = _run("eval", str(path))
    assert code == 2
    assert f"{path}: case.plans[0].kind: unknown code 'PLAN_KIND_CHILD_IN_NEEED'; did you mean " in err
    del document["case"]["plans"]
    path.write_text(json.dumps(document), encoding="utf-8")
    code, _, err = _run("eval", str(path))
    assert code == 2
    assert err.strip() == f"{path}: case.concerns[0].agency: unknown code 'POLIC'; did you mean 'POLICE'?"
    document["case"]["concerns"][0]["subject"] = "COUSIN"
    document["case"]["concerns"][0]["agency"] = "POLICE"
    path.write_text(json.dumps(document), encoding="utf-8")
    code, _, err = _run("eval", str(path))
    assert "case.concerns[0].subject: unknown code 'COUSIN'; one of CHILD, SIBLING, HOUSEHOLD" in err


def test_a_bad_as_of_is_blamed_on_the_option_not_the_file() -> None:
    code, _, err = _run("eval", str(EXAMPLES / "evaluate-request.json"), "--as-of", "2025-13-01")
    assert code == 2
    assert err.strip() == "--as-of: not a date (YYYY-MM-DD) or RFC 3339 timestamp"


def test_several_rulesets_and_none_named_blames_the_option() -> None:
    code, _, err = _run("eval", str(EXAMPLES / "case.json"), "--as-of", "2025-06-30")
    assert code == 2
    assert err.strip() == "--ruleset: required when more than one ruleset is loaded (safeguarding, starter)"


def test_decisions_says_it_needs_a_redis_url() -> None:
    result = CliRunner().invoke(app, ["decisions"], env={"RULES_ENGINE_REDIS_URL": ""})
    assert result.exit_code == 2
    assert result.stderr.startswith("decisions: --redis-url (RULES_ENGINE_REDIS_URL) is required")
    help_text = CliRunner().invoke(app, ["decisions", "--help"]).stdout
    assert "in-memory" not in help_text.split("Required")[0] and "Required" in help_text


def test_synth_is_reproducible_from_the_seed_alone() -> None:
    default = CliRunner().invoke(app, ["synth", "--cases", "3", "--seed", "4"]).stdout
    fixed = CliRunner().invoke(app, ["synth", "--cases", "3", "--seed", "4", "--as-of", "2025-12-31"]).stdout
    assert default == fixed != ""
    assert "default 2025-12-31" in " ".join(CliRunner().invoke(app, ["synth", "--help"]).stdout.split())


def test_schema_writes_into_the_working_directory_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _run("schema")
    assert code == 0, err
    written = sorted((tmp_path / "schemas").iterdir())
    assert len(written) == 2
    assert sorted(out.splitlines()) == [f"wrote {path.relative_to(tmp_path)}" for path in written]


def test_serve_help_shows_every_variable_whole_in_80_columns() -> None:
    environment = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    command = [sys.executable, "-m", "rules_engine", "serve", "--help"]
    text = subprocess.run(command, check=True, capture_output=True, text=True, env=environment, cwd=ROOT).stdout
    source = (ROOT / "rules_engine" / "cli" / "app.py").read_text(encoding="utf-8")
    serve_source = source[source.index("def serve(") : source.index("def check(")]
    names = set(re.findall(r"RULES_ENGINE_[A-Z_]+", serve_source))
    assert len(names) >= 20
    words = {word.strip("[];,:") for word in text.split()}
    assert names <= words, names - words
    assert max(len(line) for line in text.splitlines()) <= 80

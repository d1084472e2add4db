"""Rule files are untrusted input: whatever a file holds, loading gives located errors, never a crash,
a hang or code execution. Only RuleFileError and RuleFileErrors may leave compile_ruleset/check_rulesets.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_engine.errors import RuleFileError, RuleFileErrors
from rules_engine.policy.compiler import check_rulesets, compile_ruleset

ROOT = Path(__file__).resolve().parents[2]
STARTER = {p.name: p.read_bytes() for p in (ROOT / "rulesets" / "starter").glob("*.yaml")}
SECONDS_PER_FILE = 5.0
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class _Hung(Exception):
    pass


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Hung


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fuzz") / "fuzzed"
    directory.mkdir()
    return directory


def _compile(directory: Path, files: dict[str, bytes]) -> list[RuleFileError]:
    """Write `files` as the ruleset and compile it under a timer; return the errors (none: it compiled)."""
    for old in directory.iterdir():
        old.unlink()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_FILE)
    started = time.monotonic()
    try:
        try:
            compile_ruleset(directory)
            errors: list[RuleFileError] = []
        except RuleFileErrors as exc:
            errors = list(exc.errors)
        except RuleFileError as exc:
            errors = [exc]
        checked = check_rulesets(directory)
    except _Hung:
        pytest.fail(f"loading took more than {SECONDS_PER_FILE} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < SECONDS_PER_FILE
    assert [str(e) for e in checked] == [str(e) for e in errors] or errors == []  # one loader, one answer
    for error in errors:
        position = error.position
        assert position.line >= 1 and position.column >= 1, error
        assert position.file.startswith("fuzzed"), error
    return errors


def _mutate(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(5)
        at = rng.randrange(len(buffer) or 1)
        if kind == 0 and buffer:  # bit flip
            buffer[at] ^= 1 << rng.randrange(8)
        elif kind == 1:  # truncate
            del buffer[at:]
        elif kind == 2:  # splice a slice of itself elsewhere
            start = rng.randrange(len(buffer) or 1)
            buffer[at:at] = buffer[start : start + rng.randint(1, 64)]
        elif kind == 3:  # insert a YAML-significant character
            buffer[at:at] = rng.choice([b":", b"-", b"[", b"{", b"&a", b"*a", b"!!python/object", b"\t", b"'", b'"'])
        elif buffer:  # delete a run
            del buffer[at : at + rng.randint(1, 32)]
    return bytes(buffer)


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(ruleset: Path, data: bytes) -> None:
    _compile(ruleset, {"rules.yaml": data})


_YAMLISH = st.text(alphabet=st.sampled_from([*"abc01 :-[]{},'\"&*!|>#\n\t?%@`\\", "é", "\u2028", "\x00"]), max_size=600)


@FUZZ
@given(text=_YAMLISH)
def test_yaml_like_text(ruleset: Path, text: str) -> None:
    _compile(ruleset, {"ruleset.yaml": STARTER["ruleset.yaml"], "rules.yaml": text.encode("utf-8", "surrogatepass")})


@FUZZ
@given(seed=st.integers(min_value=0, max_value=2**32), name=st.sampled_from(sorted(STARTER)))
def test_mutated_bundled_rule_files(ruleset: Path, seed: int, name: str) -> None:
    files = dict(STARTER)
    files[name] = _mutate(files[name], random.Random(seed))
    _compile(ruleset, files)


_RULE = """
rules:
  - id: probe
    title: Probe
    condition: {condition}
    severity: low
    escalation: Nobody
    explanation: {explanation}
    source: {{kind: local, reference: "fuzz"}}
"""

HOSTILE_CONDITIONS = [
    "__import__('os').system('touch {marker}')",
    "().__class__.__bases__[0].__subclasses__()",
    "flagged.__globals__",
    "flagged('x').__class__",
    "(lambda: open('{marker}', 'w'))()",
    "f'{{open(\"{marker}\", \"w\")}}' == 'x'",
    "(x := 1) > 0",
    "eval('1')",
    "exec('import os')",
    "concerns_12m.__class__ == 1",
    "globals()",
    "[c for c in ().__class__.__mro__]",
    "concerns_12m if 1 else 2",
    "concerns_12m[0] > 1",
    "concerns_12m + 1 > 2",
    "{{1: 2}}",
    "*concerns_12m",
    "await concerns_12m",
    "concerns_12m >= 5 and open('{marker}')",
    "'a' * 10**10 == 'b'",
    "9" * 5000 + " > concerns_12m",
    "(" * 1000 + "concerns_12m > 1" + ")" * 1000,
    "not " * 5000 + "concerns_12m > 1",
    "concerns_12m > 1 and " * 2000 + "true",
    "\u0441oncerns_12m > 1",  # a Cyrillic look-alike letter
    "concerns_12m \x00 > 1",
    "breakpoint()",
]

HOSTILE_TEMPLATES = [
    "{concerns_12m.__class__}",
    "{concerns_12m.__class__.__init__.__globals__}",
    "{concerns_12m[0]}",
    "{concerns_12m!r}",
    "{concerns_12m:{concerns_12m}}",
    "{concerns_12m:>1000000000}",
    "{0}",
    "{}",
    "{",
    "}",
    "{__import__}",
    "{concerns_12m:%Y}",
]


@pytest.mark.parametrize("condition", HOSTILE_CONDITIONS)
def test_conditions_that_reach_for_code_are_located_errors(ruleset: Path, tmp_path: Path, condition: str) -> None:
    marker = tmp_path / "executed"
    text = _RULE.format(condition="|-\n      " + condition.format(marker=marker), explanation='"x"')
    errors = _compile(ruleset, {"ruleset.yaml": STARTER["ruleset.yaml"], "rules.yaml": text.encode()})
    assert not marker.exists()
    assert errors, "a hostile condition compiled"
    assert all(e.position.file == "fuzzed/rules.yaml" for e in errors)


@pytest.mark.parametrize("template", HOSTILE_TEMPLATES)
def test_explanation_templates_that_reach_for_attributes_are_errors(ruleset: Path, template: str) -> None:
    text = _RULE.format(condition="concerns_12m > 1", explanation=repr(template).replace("'", '"'))
    errors = _compile(ruleset, {"ruleset.yaml": STARTER["ruleset.yaml"], "rules.yaml": text.encode()})
    assert errors, f"template {template!r} compiled"


def _billion_laughs() -> bytes:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return ("\n".join(lines) + "\nrules: *a9\n").encode()


def _big_files() -> Iterator[tuple[str, bytes]]:
    yield "huge", b"rules:\n" + b"  - id: x\n" * 200_000
    yield "huge line", b"rules: " + b"x" * (2 * 1024 * 1024)
    yield "deep lists", b"rules: " + b"[" * 10_000 + b"]" * 10_000
    yield "deep maps", b"rules: " + b"{a: " * 5_000 + b"1" + b"}" * 5_000
    yield "deep block", "".join(f"{'  ' * i}k{i}:\n" for i in range(200)).encode()
    yield "alias bomb", _billion_laughs()
    yield "recursive alias", b"a: &a [*a]\nrules: *a\n"
    yield "merge key", b"base: &b {id: x}\nrules:\n  - <<: *b\n"
    yield "python tag", b"rules: !!python/object/apply:os.system ['touch /tmp/never']\n"
    yield "custom tag", b"rules: !include /etc/passwd\n"
    yield "wrong types", b"rules: {id: 1, condition: [1, 2], severity: 3.5}\n"
    yield "rules a string", b"rules: 'all of them'\n"
    yield "null key", b"rules:\n  - ~: x\n"
    yield "list key", b"rules:\n  - [a]: x\n"
    yield "two documents", b"rules: []\n---\nrules: []\n"
    yield "duplicate keys", b"rules: []\nrules: []\n"
    yield "utf-16", "rules: []\n".encode("utf-16")
    yield "latin-1", "rules: [{id: caf\xe9}]\n".encode("latin-1")
    yield "nul", b"rules: [\x00]\n"
    yield "bom", "\ufeffrules: []\n".encode()
    yield "emoji ids", "rules:\n  - id: 🙂\n    title: ✓\n".encode()
    yield "rtl override", "rules:\n  - id: a\u202eb\n".encode()
    yield "huge number", b"rules:\n  - id: x\n    severity: " + b"9" * 100_000 + b"\n"
    yield "empty", b""
    yield "only comment", b"# nothing\n"


@pytest.mark.parametrize(("name", "data"), list(_big_files()), ids=[n for n, _ in _big_files()])
def test_hostile_files(ruleset: Path, name: str, data: bytes) -> None:
    _compile(ruleset, {"ruleset.yaml": STARTER["ruleset.yaml"], "rules.yaml": data})
    assert not Path("/tmp/never").exists()

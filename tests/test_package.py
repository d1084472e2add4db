"""The package's shape: its public names (`__all__`), a cheap `import rules_engine`, and every
module importable alone in a fresh interpreter (no import that works only after another)."""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rules_engine

INIT = Path(rules_engine.__file__)
# Heavy or process-level dependencies `import rules_engine` must not pull in.
HEAVY = ("grpc", "durable", "durable_rules_engine", "pydantic", "google.protobuf", "redis", "typer", "yaml")


def _typed_imports() -> dict[str, str]:
    """The names the `if TYPE_CHECKING:` block imports, each with its module (what mypy sees)."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    return {
        alias.asname or alias.name: node.module or ""
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module != "typing"
        for alias in node.names
    }


def test_all_is_the_export_table_and_what_type_checkers_see() -> None:
    exports: dict[str, str] = rules_engine._EXPORTS
    assert len(rules_engine.__all__) == len(set(rules_engine.__all__))
    assert set(rules_engine.__all__) == set(exports)
    assert _typed_imports() == exports


def test_every_public_name_resolves_to_the_object_its_module_defines() -> None:
    for name in rules_engine.__all__:
        home = importlib.import_module(rules_engine._EXPORTS[name])
        assert getattr(rules_engine, name) is getattr(home, name), name
    assert set(dir(rules_engine)) >= set(rules_engine.__all__)


def test_a_name_outside_all_is_not_served() -> None:
    for name in ("PreparedRuleset", "wire", "Matcher", "open_store"):
        try:
            getattr(rules_engine, name)
        except AttributeError:
            continue
        raise AssertionError(f"rules_engine.{name} resolves but is not in __all__")


def test_import_is_cheap_and_the_namespace_holds_only_the_public_names() -> None:
    # A fresh interpreter: this one has long since imported everything.
    script = f"""
import sys
before = set(sys.modules)
import rules_engine
new = sorted(set(sys.modules) - before)
heavy = [m for m in sys.modules if m.startswith({HEAVY!r})]
public = sorted(n for n in vars(rules_engine) if not n.startswith("_"))
namespace = {{}}
exec("from rules_engine import *", namespace)
star = sorted(n for n in namespace if not n.startswith("__"))
print(new, heavy, public, star, sep="\\n")
"""
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    new, heavy, public, star = (ast.literal_eval(line) for line in output.splitlines())
    assert new == ["rules_engine"]
    assert heavy == []
    # __future__'s `annotations` and the TYPE_CHECKING flag, nothing else, before any name is used.
    assert public == ["TYPE_CHECKING", "annotations"]
    assert star == sorted(rules_engine.__all__)


def _modules() -> list[str]:
    """Every module of the package; __main__ runs the CLI, so it is left out."""
    return sorted(
        module.name
        for module in pkgutil.walk_packages(rules_engine.__path__, "rules_engine.")
        if module.name.rsplit(".", 1)[-1] != "__main__"
    )


def _import_alone(module: str) -> tuple[str, str | None]:
    result = subprocess.run([sys.executable, "-c", f"import {module}"], check=False, capture_output=True, text=True)
    return module, (result.stderr.strip().splitlines() or ["?"])[-1] if result.returncode else None


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    modules = _modules()
    assert "rules_engine.engine.matching" in modules and "rules_engine.cli.app" in modules
    # One interpreter per module (a shared one would hide an import that needs another first),
    # several at once: about 85 modules in ~12 s on two cores.
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
        failures = {module: error for module, error in pool.map(_import_alone, modules) if error}
    assert failures == {}

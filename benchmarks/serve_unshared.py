"""`rules-engine serve` for benchmarks: several processes, each with its own in-memory case store.

    python benchmarks/serve_unshared.py --workers 2 --plaintext --port 50099 ...   # every `serve` option

`serve --workers N` (N > 1) refuses the in-memory store, because each process would keep its own
case state: a flag would come back NEW once per process and each decision log would hold part of
the decisions. That matters to a deployment, not to a throughput benchmark of stateless calls
(every call evaluates the same case and records its decision in the process that served it), and
it is how the figures of the benchmarks were taken before the refusal existed. This runs the
real command line, supervisor and workers with that one check skipped; every other option and
environment variable (RULES_ENGINE_NATIVE, the cache size, ...) goes through unchanged.
"""

from __future__ import annotations

import importlib
import sys


def _no_refusal(_settings: object, _workers: int) -> None:
    return None


def main() -> None:
    # Checked twice: by the command line, and again by the supervisor before it starts workers.
    for name in ("rules_engine.cli.app", "rules_engine.server.supervisor"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # an older checkout (benchmarks run with --code) may lack one
            continue
        if hasattr(module, "split_state_refusal"):
            setattr(module, "split_state_refusal", _no_refusal)  # noqa: B010
    cli = importlib.import_module("rules_engine.cli.app")
    cli.app(["serve", *sys.argv[1:]], prog_name="rules-engine")


if __name__ == "__main__":
    main()

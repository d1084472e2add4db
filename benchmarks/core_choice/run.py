"""Rust or Cython for the compiled evaluation core: the same slice of the work built both ways.

The slice: from the serialized bytes of a `rules_engine.v1.Case`, walk the protobuf wire format,
read every fact's id (checked against the id pattern) and date ("YYYY-MM-DD" to a day ordinal,
checked), and compute four representative measures: concerns in the 365 days before as_of,
distinct agencies of those concerns, days since the latest visit, and the longest gap in days
between consecutive concerns (plus the number of facts read, as a check that every fact was).

Rust: rust/src/lib.rs, a std-only cdylib (no PyO3: crates.io is not reachable), called through
ctypes. Cython: slice.pyx. Both are checked against a pure-Python computation over
`case_pb2.Case.FromString` (upb), then timed per call (median of repeated timeit runs).

Run: `python benchmarks/core_choice/run.py [--rebuild] [--runs N] [--debian-rust ROOT]`.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import importlib
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from rules_engine._generated.rules_engine.v1 import case_pb2
from rules_engine.case.facts import ID_RE
from rules_engine.tools.synth import LONG_TIMELINE_END, control_case, long_timeline_case, sized_case

HERE = Path(__file__).resolve().parent
RUST = HERE / "rust"
RUST_LIB = RUST / "target" / "release" / "libcore_choice_slice.so"
SIZES = (20, 200)
WINDOW_DAYS = 365

Measures = tuple[int, int, int, int, int]
FACT_LISTS = tuple(
    field.name for field in case_pb2.Case.DESCRIPTOR.fields if field.message_type is not None and field.is_repeated
)


# -- the reference: Python over upb ------------------------------------------------------------


def _ordinal(text: str) -> int:
    if len(text) != 10:
        raise ValueError(f"not a YYYY-MM-DD date: {text!r}")
    return dt.date.fromisoformat(text).toordinal()


def reference(data: bytes, as_of: int) -> Measures | None:
    """The slice in Python: every fact's id and date read through upb; None when declined."""
    try:
        case = case_pb2.Case.FromString(data)
        concerns: list[tuple[int, str]] = []
        visits: list[int] = []
        facts = 0
        for name in FACT_LISTS:
            for fact in getattr(case, name):
                if not ID_RE.fullmatch(fact.id):
                    raise ValueError(f"bad id {fact.id!r}")
                day = _ordinal(fact.date)
                facts += 1
                if name == "concerns":
                    concerns.append((day, fact.agency))
                elif name == "visits":
                    visits.append(day)
    except (ValueError, DecodeError):
        return None
    window = [agency for day, agency in concerns if as_of - WINDOW_DAYS < day <= as_of]
    days = sorted(day for day, _ in concerns)
    return (
        len(window),
        len({agency for agency in window if agency}),
        as_of - max(visits) if visits else -1,
        max((b - a for a, b in itertools.pairwise(days)), default=0),
        facts,
    )


# -- building ----------------------------------------------------------------------------------


def _cargo() -> str | None:
    return shutil.which("cargo") or next(
        (str(p) for p in [Path.home() / ".cargo" / "bin" / "cargo"] if p.exists()), None
    )


def _version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "not found"
    return out.splitlines()[0].strip() if out else "?"


def _timed(command: list[str], **kwargs: Any) -> dict[str, float]:
    """Run a build; its wall seconds and the CPU seconds (user + system) of the processes it ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, **kwargs)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall": round(wall, 2), "cpu": round(cpu, 2)}


def build_rust(rebuild: bool, env: dict[str, str] | None = None, target: Path | None = None) -> dict[str, float] | None:
    """cargo build --release --offline; seconds taken, or None when nothing was built."""
    cargo = (env or {}).get("CARGO") or _cargo()
    if cargo is None:
        raise SystemExit("cargo not found (apt-get install cargo rustc, or rustup)")
    target_dir = target or RUST / "target"
    if rebuild:
        shutil.rmtree(target_dir, ignore_errors=True)
        (RUST / "Cargo.lock").unlink(missing_ok=True)
    elif target is None and RUST_LIB.exists() and RUST_LIB.stat().st_mtime > (RUST / "src" / "lib.rs").stat().st_mtime:
        return None
    command = [cargo, "build", "--release", "--offline", "--quiet", "--target-dir", str(target_dir)]
    return _timed(command, cwd=RUST, env={**os.environ, **(env or {})})


def _cython_lib() -> Path | None:
    return next(iter(sorted(HERE.glob("slice.cpython-*.so"))), None)


def build_cython(rebuild: bool) -> dict[str, float] | None:
    """cythonize + gcc in place (build_cython.py); seconds taken, or None when nothing was built."""
    lib = _cython_lib()
    if rebuild:
        for path in [*HERE.glob("slice.cpython-*.so"), HERE / "slice.c"]:
            path.unlink(missing_ok=True)
        shutil.rmtree(HERE / "build", ignore_errors=True)
    elif lib is not None and lib.stat().st_mtime > (HERE / "slice.pyx").stat().st_mtime:
        return None
    return _timed([sys.executable, str(HERE / "build_cython.py")], capture_output=True)


def rust_functions() -> dict[str, Any]:
    """The Rust slice through ctypes: CDLL (releases the GIL per call) and PyDLL (keeps it)."""
    functions: dict[str, Any] = {}
    for name, loader in (("CDLL", ctypes.CDLL), ("PyDLL", ctypes.PyDLL)):
        fn = loader(str(RUST_LIB)).slice_measures
        fn.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int32, ctypes.POINTER(ctypes.c_int64))
        fn.restype = ctypes.c_int32

        def call(data: bytes, as_of: int, fn: Any = fn) -> Measures | None:
            out = (ctypes.c_int64 * 5)()
            if fn(data, len(data), as_of, out):
                return None
            return tuple(out)

        functions[name] = call
        functions[f"{name} raw"] = fn
    try:  # cffi's ABI mode: the cheaper door from PyPI (here only because cryptography needs it)
        import cffi  # type: ignore[import-untyped]
    except ImportError:
        return functions
    ffi = cffi.FFI()
    ffi.cdef("int32_t slice_measures(const uint8_t *data, size_t len, int32_t as_of, int64_t *out);")
    lib = ffi.dlopen(str(RUST_LIB))

    def cffi_call(data: bytes, as_of: int) -> Measures | None:
        out = ffi.new("int64_t[5]")
        if lib.slice_measures(data, len(data), as_of, out):
            return None
        return tuple(out)

    functions["cffi"] = cffi_call
    return functions


# -- checking and timing -----------------------------------------------------------------------


def encoded(case_json: dict[str, Any]) -> bytes:
    """The Case message bytes, as `case_pb2.Case.SerializeToString(deterministic=True)` gives them
    (proto3 JSON read with protobuf's own parser, not requests.case_from_json: no validation needed)."""
    message = json_format.ParseDict(case_json, case_pb2.Case())
    return message.SerializeToString(deterministic=True)


def check(implementations: dict[str, Callable[[bytes, int], Measures | None]]) -> int:
    """Every implementation agrees with the reference on a spread of cases and on declined input."""
    as_of = LONG_TIMELINE_END.toordinal()
    cases = [encoded(sized_case(n, seed)) for n in (1, 5, 20, 60, 200, 700, 2000) for seed in (1, 2, 3)]
    cases += [encoded(long_timeline_case()), encoded(control_case()), b""]
    whole = encoded(sized_case(200))
    base = case_pb2.Case.FromString(whole)
    assert base.concerns and base.visits
    mutations: tuple[Callable[[case_pb2.Case], object], ...] = (
        lambda c: c.concerns[0].__setattr__("date", "2023-02-30"),
        lambda c: c.visits[0].__setattr__("date", "2023-2-03"),
        lambda c: c.concerns[-1].__setattr__("id", "has space"),
        lambda c: c.concerns[0].__setattr__("id", ""),
        lambda c: c.closures.add(id="x1", date=""),
    )
    for mutate in mutations:
        bad = case_pb2.Case()
        bad.CopyFrom(base)
        mutate(bad)
        cases.append(bad.SerializeToString())
    cases += [whole[:-3], whole + b"\x0a\x05ab"]  # truncated wire data
    checked = 0
    for data in cases:
        for shift in (0, -400, -3000):
            expected = reference(data, as_of + shift)
            for name, fn in implementations.items():
                got = fn(data, as_of + shift)
                if got != expected:
                    raise SystemExit(f"{name} disagrees with the reference: {got} != {expected}")
            checked += 1
    return checked


STATISTIC: dict[str, Callable[[list[float]], float]] = {"median": statistics.median, "min": min}
STAT = ["median"]  # --statistic


def per_call_us(fn: Callable[[], object], budget: float = 0.02, repeat: int = 31) -> float:
    """Per-call µs of this thread's CPU time over `repeat` timeit runs of ~`budget` seconds each:
    their median (or minimum)."""
    timer = timeit.Timer(fn, timer=time.thread_time)  # CPU time: the shared machine's other load does not count
    number, _ = timer.autorange()
    number = max(1, int(number * budget / 0.2))
    return STATISTIC[STAT[0]](timer.repeat(repeat=repeat, number=number)) / number * 1e6


def loc(path: Path, comment: str) -> int:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return sum(1 for line in lines if line and not line.startswith(comment))


def time_slices(cython: Any, rust: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per-call µs for each size and door; the work alone (looped in native code); empty calls."""
    as_of = LONG_TIMELINE_END.toordinal()
    rows: list[dict[str, Any]] = []
    for facts in SIZES:
        data = encoded(sized_case(facts))
        out = (ctypes.c_int64 * 5)()
        raw = rust["CDLL raw"]
        candidates: dict[str, Callable[[], object]] = {
            "python/upb reference": partial(reference, data, as_of),
            "cython": partial(cython.measures, data, as_of),
            "rust ctypes CDLL -> tuple": partial(rust["CDLL"], data, as_of),
            "rust ctypes PyDLL -> tuple": partial(rust["PyDLL"], data, as_of),
            "rust ctypes CDLL, call only": partial(raw, data, len(data), as_of, out),
        }
        if "cffi" in rust:
            candidates["rust cffi (ABI mode) -> tuple"] = partial(rust["cffi"], data, as_of)
        row: dict[str, Any] = {"facts": facts, "bytes": len(data), "values": list(cython.measures(data, as_of))}
        row.update({name: round(per_call_us(fn), 2) for name, fn in candidates.items()})
        rows.append(row)
    # The work alone: each slice looped inside its own compiled code, no door crossed per iteration.
    repeat = ctypes.CDLL(str(RUST_LIB)).slice_repeat
    repeat.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int32, ctypes.c_uint64)
    repeat.restype = ctypes.c_int64
    for row in rows:
        data = encoded(sized_case(row["facts"]))
        iterations = 2_000
        if repeat(data, len(data), as_of, iterations) != cython.repeat(data, as_of, iterations):
            raise SystemExit("the in-loop sums differ")
        for name, fn in (
            ("rust, in-native loop", partial(repeat, data, len(data), as_of, iterations)),
            ("cython, in-native loop", partial(cython.repeat, data, as_of, iterations)),
        ):
            row[name] = round(per_call_us(fn, budget=0.05, repeat=11) / iterations, 2)
    # Fixed cost of a call that does nothing (empty input): the price of the door itself.
    empty = {
        "cython": per_call_us(lambda: cython.measures(b"", as_of)),
        "rust ctypes CDLL -> tuple": per_call_us(lambda: rust["CDLL"](b"", as_of)),
        "rust ctypes CDLL, call only": per_call_us(lambda: rust["CDLL raw"](b"", 0, as_of, (ctypes.c_int64 * 5)())),
    }
    if "cffi" in rust:
        empty["rust cffi -> tuple"] = per_call_us(lambda: rust["cffi"](b"", as_of))
    return rows, empty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="clean builds, timed")
    parser.add_argument("--runs", type=int, default=3, help="timing passes; each figure is the median over them")
    parser.add_argument("--statistic", choices=sorted(STATISTIC), default="median", help="of the timeit runs")
    parser.add_argument("--debian-rust", type=Path, help="root of Debian's rustc/cargo (dpkg -x), to build with too")
    options = parser.parse_args()
    STAT[0] = options.statistic
    report_statistic = options.statistic

    report: dict[str, Any] = {"machine": f"{platform.machine()} {platform.python_implementation()} {sys.version}"}
    report["statistic"] = report_statistic
    report["toolchain"] = {
        "cargo": _cargo() or "not found",
        "rustc": _version([str(Path(_cargo() or "cargo").with_name("rustc")), "--version"]),
        "gcc": _version(["gcc", "--version"]),
        "cython": importlib.import_module("Cython").__version__,
    }
    report["build_seconds"] = {"rust": build_rust(options.rebuild), "cython": build_cython(options.rebuild)}
    if options.debian_rust:
        root = options.debian_rust.resolve()
        env = {
            "CARGO": str(root / "usr/bin/cargo"),
            "RUSTC": str(root / "usr/bin/rustc"),
            "LD_LIBRARY_PATH": str(root / "usr/lib/x86_64-linux-gnu"),
        }
        os.environ["LD_LIBRARY_PATH"] = env["LD_LIBRARY_PATH"]  # for the version check below
        report["toolchain"]["debian_rustc"] = _version([env["RUSTC"], "--version"])
        (RUST / "Cargo.lock").unlink(missing_ok=True)  # a newer cargo's lock file may be a later format
        report["build_seconds"]["rust (Debian 1.63)"] = build_rust(True, env, Path("/tmp/core_choice_rust163"))
    report["lines"] = {
        "rust src/lib.rs": loc(RUST / "src" / "lib.rs", "//"),
        "rust Cargo.toml": loc(RUST / "Cargo.toml", "#"),
        "cython slice.pyx": loc(HERE / "slice.pyx", "#"),
        "cython build_cython.py": loc(HERE / "build_cython.py", "#"),
    }

    sys.path.insert(0, str(HERE))
    cython = importlib.import_module("slice")
    rust = rust_functions()
    report["checked_inputs"] = check(
        {"cython": cython.measures, **{f"rust {k}": v for k, v in rust.items() if not k.endswith(" raw")}}
    )

    if not options.runs:
        print(json.dumps(report))
        return
    # The machine is shared: whole passes, interleaved, and the median of each figure over them.
    passes = [time_slices(cython, rust) for _ in range(options.runs)]
    rows = [
        {
            k: (round(statistics.median(p[0][i][k] for p in passes), 2) if isinstance(v, float) else v)
            for k, v in row.items()
        }
        for i, row in enumerate(passes[0][0])
    ]
    empty = {k: statistics.median(p[1][k] for p in passes) for k in passes[0][1]}
    report["empty_call_us"] = {k: round(v, 2) for k, v in empty.items()}
    report["rows"] = rows

    print(f"toolchain: {report['toolchain']}")
    print(f"build seconds: {report['build_seconds']}  (None: already built; --rebuild times clean builds)")
    print(f"non-blank, non-comment lines: {report['lines']}")
    print(f"checked {report['checked_inputs']} inputs: Rust and Cython agree with the Python/upb reference")
    names = [k for k in rows[0] if k not in ("facts", "bytes", "values")]
    print(f"\n{'per call, µs (' + options.statistic + ')':<30}" + "".join(f"{r['facts']:>8} facts" for r in rows))
    for name in names:
        print(f"{name:<30}" + "".join(f"{r[name]:>14.2f}" for r in rows))
    print(f"{'(empty input) ':<30}" + ", ".join(f"{k} {v}" for k, v in report["empty_call_us"].items()))
    print(json.dumps(report))


if __name__ == "__main__":
    main()

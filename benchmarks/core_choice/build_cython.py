"""Build slice.pyx in place (python benchmarks/core_choice/build_cython.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup  # type: ignore[import-untyped]

HERE = Path(__file__).resolve().parent


def build() -> None:
    extension = Extension("slice", [str(HERE / "slice.pyx")], extra_compile_args=["-O2"])
    setup(
        name="core_choice_slice",
        ext_modules=cythonize(  # type: ignore[no-untyped-call]
            [extension], quiet=True, language_level=3
        ),
        script_args=["build_ext", "--build-lib", str(HERE), "--build-temp", str(HERE / "build")],
    )


if __name__ == "__main__":
    sys.argv[1:] = []
    build()

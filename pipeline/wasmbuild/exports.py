"""Compile C sources of extra python.wasm exports against the relink kit's CPython headers.

The link step runs this first and hands the object to pipeline.wasmbuild.link as one more
link input (``--ldflag=FILE.o``): recipes/snapshot/exports.c holds the snapshot's init and
per-call exports (``_start`` is unchanged). A module of its own, not an option of link.py:
every package's self-test links a python.wasm through link.py, so every edit there reruns
those self-tests.

    python -m pipeline.wasmbuild.exports --cpython build/build_cpython --cc "clang-N ..." \
        -o work/exports.o recipes/snapshot/exports.c
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
from pathlib import Path

from ..errors import PipelineError, report_error
from .contracts import RelinkKit

C_FLAGS = ("-O2", "-Wall", "-Werror")


def compile_exports(cpython: Path, cc: str, source: Path, output: Path) -> None:
    if not source.is_file():
        raise PipelineError(f"{source}: no such file")
    spec = RelinkKit.read(cpython / "relink" / "link.json")
    includes = [f"-I{cpython / inc}" for inc in spec.includes]
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [*shlex.split(cc), *C_FLAGS, *includes, "-c", str(source), "-o", str(output)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise PipelineError(f"compile {source.name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.exports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpython", type=Path, required=True, help="build_cpython's output dir")
    parser.add_argument("--cc", required=True, help="the wasm C compiler command")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.o")
    parser.add_argument("source", type=Path, metavar="FILE.c")
    args = parser.parse_args(argv)
    try:
        compile_exports(args.cpython, args.cc, args.source, args.output)
    except PipelineError as exc:
        return report_error(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Runtime figures (prints them; not a test). Needs the chain built (`doit invoke`).

- cold start of `invoke hello`, machine code vs JIT (whole process, median)
- `doit runtime_root` after editing one pure package's recipe (six), then the revert
- the no-op of `doit codegen`
- python.wasm size: stdlib-only (build_cpython) and with the default package set (link)

    python bench/runtime.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.wasmbuild.llvm import Toolchain

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
SIX = REPO / "recipes/packages/six.yaml"


def timed(argv: list[str], repeat: int = 1) -> tuple[float, subprocess.CompletedProcess[str]]:
    times, proc = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    assert proc is not None
    return statistics.median(times), proc


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    hello = BUILD / "runtime_root/root/functions/python/hello.py"
    if not hello.exists():
        sys.exit("build the chain first: doit invoke")
    invoke = [sys.executable, "-m", "pipeline.invoke", "run", "--file", str(hello)]
    aot, _ = timed(invoke, args.repeat)
    jit, _ = timed([*invoke, "--jit"], args.repeat)
    print(f"invoke hello, whole process (median of {args.repeat}):")
    print(f"  machine code {aot:6.2f} s   JIT {jit:6.2f} s   speed-up {jit / aot:5.1f}x  (target >= 20x)")

    noop, proc = timed([sys.executable, "-m", "doit", "codegen"], args.repeat)
    print(f"no-op `doit codegen` (median of {args.repeat}): {noop:.2f} s  (target <= 0.5 s)  [{last_line(proc)}]")

    original = SIX.read_text()
    try:
        # A fresh edit each run, so it builds rather than restores an earlier one.
        SIX.write_text(original.replace("  summary:", f"  summary: (benchmark edit {time.time_ns()})", 1))
        edit, proc = timed([sys.executable, "-m", "doit", "runtime_root"])
        print(f"`doit runtime_root` after editing six's recipe: {edit:.1f} s  (target <= 10 s)  [{last_line(proc)}]")
    finally:
        SIX.write_text(original)
    revert, proc = timed([sys.executable, "-m", "doit", "runtime_root"])
    print(f"`doit runtime_root` after reverting it: {revert:.1f} s  [{last_line(proc)}]")

    # The same link as recipes/link.yaml, with no packages: the stdlib-only interpreter.
    toolchain = Toolchain.read(BUILD / "toolchain/toolchain.json").model_dump()
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "python.wasm"
        subprocess.run([sys.executable, "-m", "pipeline.wasmbuild.link", "--cpython", str(BUILD / "build_cpython"),
                        "--cc", toolchain["cc"], "--nm", toolchain["nm"], "--work", str(Path(tmp) / "w"),
                        "--ldflag=-Wl,--strip-debug", "-o", str(bare)], cwd=REPO, check=True, capture_output=True)
        stdlib_only = bare.stat().st_size
    with_packages = (BUILD / "link/python.wasm").stat().st_size
    unstripped = (BUILD / "build_cpython/python.wasm").stat().st_size
    print(f"python.wasm: stdlib-only {stdlib_only / 1e6:.2f} MB, with the default package set "
          f"{with_packages / 1e6:.2f} MB (+{(with_packages - stdlib_only) / 1e3:.0f} kB); "
          f"build_cpython's own, with DWARF: {unstripped / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

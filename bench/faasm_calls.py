"""Chained-call cost and fan-out throughput of the Python function API on the built runtime.

    python bench/faasm_calls.py [--calls 200] [--fanout 200] [--concurrency 2]

Needs build/runtime_root/root (with pyfaasm) and build/codegen (`doit codegen`). Prints:
- instantiate only: a fresh Store + Linker + instance of the precompiled python.wasm;
- chained call: chain_this(1) + await_call of an empty entry function, one at a time,
  as the host times it (instantiate, CPython start-up, run the file, the entry, exit);
- fan-out: fanout.py with N calls on --concurrency workers, calls per second (wall).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.runtime import faasm_host, invoke, wasm

REPO = Path(__file__).resolve().parent.parent
EMPTY = """\
from pyfaasm.code import await_call, chain_this, faasm_func, faasm_main, get_input


@faasm_func(1)
def empty():
    pass


@faasm_main
def main():
    for _ in range(int(get_input())):
        assert await_call(chain_this(1)) == 0
"""


def invocation(func_dir: Path, concurrency: int, checkout: Path = REPO) -> invoke.Invocation:
    project = invoke.Project(checkout)
    root = project.runtime_root
    return invoke.Invocation(root, root / "bin" / "python.wasm", func_dir, project.codegen,
                             max_concurrency=concurrency)


def run(inv: invoke.Invocation, module: wasmtime.Module, engine: wasm.WasmEngine,
        data: bytes) -> tuple[faasm_host.Call, list[faasm_host.Call], float]:
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        host = faasm_host.FaasmHost(engine, module, invoke.guest_for(inv), invoke.limits_for(inv), Path(scratch),
                                    log=lambda _line: None)
        started = time.perf_counter()
        with host:
            main = host.run_main(data)
        wall = time.perf_counter() - started
    if main.code != 0:
        raise SystemExit(f"bench function failed ({main.code}): {main.message}\n{main.stderr.decode()}")
    return main, host.calls()[1:], wall


def instantiate_only(engine: wasm.WasmEngine, module: wasmtime.Module, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        store = wasmtime.Store(engine)
        store.set_wasi(wasmtime.WasiConfig())
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        for imp in module.imports:
            if imp.module == wasm.FAASM_NAMESPACE and isinstance(imp.type, wasmtime.FuncType) and imp.name:
                linker.define_func(imp.module, imp.name, imp.type, lambda *_a: 0)
        linker.instantiate(store, module)
        times.append(time.perf_counter() - started)
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--fanout", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--project", type=Path, default=REPO, metavar="DIR",
                        help="the checkout whose build/ is measured (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-func-") as func_dir:
        (Path(func_dir) / invoke.FUNCTION_FILE).write_text(EMPTY)
        inv = invocation(Path(func_dir), args.concurrency, args.project)
        engine = wasm.make_engine()
        module = invoke.load_python(inv, engine)
        print(f"host: {os.cpu_count()} cores, wasmtime {wasm.wasmtime_version()}, precompiled python.wasm")
        inst = instantiate_only(engine, module, args.calls)
        print(f"instantiate only (Store + Linker + instance), median of {args.calls}: {ms(statistics.median(inst))}")
        _, calls, _ = run(inv, module, engine, str(args.calls).encode())
        seconds = [c.seconds for c in calls]
        print(f"chained call of an empty function, median of {len(calls)}: {ms(statistics.median(seconds))}"
              f" (min {ms(min(seconds))}, max {ms(max(seconds))})")
    fanout_dir = REPO / "func" / "python"
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as func_dir:
        (Path(func_dir) / invoke.FUNCTION_FILE).write_bytes((fanout_dir / "fanout.py").read_bytes())
        for concurrency in sorted({1, args.concurrency}):
            inv = invocation(Path(func_dir), concurrency, args.project)
            main, calls, wall = run(inv, module, engine, str(args.fanout).encode())
            expected = str(sum(range(args.fanout))).encode()
            assert main.output == expected, (main.output, expected)
            print(f"fan-out N={args.fanout}, max concurrency {concurrency}: {wall:.2f} s wall, "
                  f"{len(calls) / wall:.1f} calls/s (output {main.output.decode()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

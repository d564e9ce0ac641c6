"""pipeline.wasmobj: two extension modules defining one global with different signatures
(numpy's mtrand and _generator do) both work once each has its own namespace."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.runtime import wasm
from pipeline.wasmbuild.wasmobj import localize_globals

TOOLS = {tool: shutil.which(f"{tool}-19") for tool in ("clang", "wasm-ld", "llvm-ar", "llvm-nm")}
pytestmark = pytest.mark.skipif(None in TOOLS.values(), reason="LLVM 19 for wasm32 not installed")

# Each module: its init function in one file, a helper in another (as numpy's distributions.c),
# so the call crosses objects and the linker, not the compiler, decides which helper it reaches.
MODULES = {
    "a": ("int PyInit_a(void) { long long helper(long long); return (int)helper(41); }\n",
          "long long helper(long long x) { return x + 1; }\n"),
    "b": ("int PyInit_b(void) { int helper(int); return helper(40); }\n",
          "int helper(int x) { return x + 2; }\n"),
}
# Freestanding: exit status 0 only if both modules' helper() did its own job.
MAIN = r"""
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_exit")))
_Noreturn void proc_exit(int code);
int PyInit_a(void);
int PyInit_b(void);
void _start(void) { proc_exit(PyInit_a() == 42 && PyInit_b() == 42 ? 0 : 1); }
"""


def compile_object(tmp: Path, name: str, source: str) -> Path:
    src, obj = tmp / f"{name}.c", tmp / f"{name}.o"
    src.write_text(source)
    subprocess.run([TOOLS["clang"], "--target=wasm32-wasi", "-O1", "-c", str(src), "-o", str(obj)], check=True)
    return obj


def module_archive(tmp: Path, name: str, localize: bool) -> Path:
    """What crosscc does for one extension: wasm-ld -r, localize, a one-member archive."""
    init, helper = MODULES[name]
    objects = [str(compile_object(tmp, f"{name}_init", init)), str(compile_object(tmp, f"{name}_helper", helper))]
    merged = tmp / f"{name}.merged.o"
    subprocess.run([TOOLS["wasm-ld"], "-r", "-o", str(merged), *objects], check=True)
    if localize:
        assert localize_globals(merged, {f"PyInit_{name}"}) == ["helper"]
    archive = tmp / f"lib{name}.a"
    subprocess.run([TOOLS["llvm-ar"], "rcs", str(archive), str(merged)], check=True)
    return archive


def link_and_run(tmp: Path, localize: bool) -> int:
    archives = [module_archive(tmp, name, localize) for name in MODULES]
    main = compile_object(tmp, "main", MAIN)
    program = tmp / "program.wasm"
    subprocess.run([TOOLS["wasm-ld"], "--entry=_start", "-o", str(program), str(main), *map(str, archives)],
                   check=True, capture_output=True)
    engine = wasm.make_engine()
    try:
        return wasm.run_wasi(wasm.load_module(engine, program), engine, wasm.WasiRun(argv=["program"]))
    except wasm.WasmTrap:
        return -1


def test_each_module_keeps_its_own_definition(tmp_path: Path) -> None:
    assert link_and_run(tmp_path, localize=True) == 0
    symbols = subprocess.run([TOOLS["llvm-nm"], str(tmp_path / "b.merged.o")], capture_output=True, text=True,
                             check=True).stdout
    assert " T PyInit_b" in symbols and " t helper" in symbols


def test_without_namespaces_one_definition_wins_and_the_call_traps(tmp_path: Path) -> None:
    """The failure the localizing exists for: a signature-mismatch stub that traps."""
    assert link_and_run(tmp_path, localize=False) == -1


def test_refuses_a_file_that_is_not_a_relocatable_object(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.o"
    bogus.write_bytes(b"not wasm at all")
    with pytest.raises(PipelineError, match="not a wasm object"):
        localize_globals(bogus, set())

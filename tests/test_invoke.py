"""pipeline.invoke with a freestanding wasm standing in for python.wasm.

The stand-in prints what a real interpreter would get (argv, environment, preopened
directory names), the function file read through the "/func" preopen, and its stdin;
a function starting with "raise" makes it print a traceback and exit 1, like python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, build_freestanding_wasm

from pipeline.runtime import invoke, wasm
from pipeline.wasmbuild import codegen

FAKE_PYTHON = r"""
typedef unsigned long size_t;
typedef unsigned long long u64;
typedef struct { const char *buf; size_t len; } ciovec;
typedef struct { char *buf; size_t len; } iovec;
typedef struct { unsigned char tag; unsigned int len; } prestat;
#define WASI(name) \
  __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))
WASI(fd_write) int fd_write(int fd, const ciovec *iovs, size_t n, size_t *done);
WASI(fd_read) int fd_read(int fd, const iovec *iovs, size_t n, size_t *done);
WASI(args_sizes_get) int args_sizes_get(size_t *count, size_t *size);
WASI(args_get) int args_get(char **ptrs, char *buf);
WASI(environ_sizes_get) int environ_sizes_get(size_t *count, size_t *size);
WASI(environ_get) int environ_get(char **ptrs, char *buf);
WASI(fd_prestat_get) int fd_prestat_get(int fd, prestat *out);
WASI(fd_prestat_dir_name) int fd_prestat_dir_name(int fd, char *path, size_t len);
WASI(path_open) int path_open(int fd, int dirflags, const char *path, size_t path_len,
    int oflags, u64 rights, u64 inherit, int fdflags, int *out);
WASI(proc_exit) _Noreturn void proc_exit(int code);

static char buf[4096], name[256], text[4096];
static char *ptrs[64];

static size_t len(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static void put(int fd, const char *s, size_t n) {
  ciovec v = { s, n }; size_t done; fd_write(fd, &v, 1, &done);
}
static void say(const char *s) { put(1, s, len(s)); }
static size_t slurp(int fd) {
  size_t total = 0, n;
  for (;;) {
    iovec v = { text + total, sizeof text - 1 - total };
    if (fd_read(fd, &v, 1, &n) != 0 || n == 0) break;
    total += n;
  }
  text[total] = 0;
  return total;
}
static void list(const char *label, size_t count) {
  for (size_t i = 0; i < count; i++) { say(label); say(ptrs[i]); say("\n"); }
}

void _start(void) {
  size_t count, size;
  args_sizes_get(&count, &size); args_get(ptrs, buf); list("argv: ", count);
  environ_sizes_get(&count, &size); environ_get(ptrs, buf); list("env: ", count);
  int func = -1;
  for (int fd = 3; fd < 32; fd++) {
    prestat ps;
    if (fd_prestat_get(fd, &ps) != 0) break;
    fd_prestat_dir_name(fd, name, ps.len);
    name[ps.len] = 0;
    say("preopen: "); say(name); say("\n");
    if (len(name) == 5 && name[1] == 'f' && name[2] == 'u' && name[3] == 'n' && name[4] == 'c') func = fd;
  }
  int fd;
  if (func < 0 || path_open(func, 0, "function.py", 11, 0, 2, 0, 0, &fd) != 0) proc_exit(70);
  size_t n = slurp(fd);
  say("function: "); put(1, text, n);
  n = slurp(0);
  say("stdin: "); put(1, text, n); say("\n");
  proc_exit(0);
}
"""
# Tries to create and write probe.txt in every preopened directory; prints "<guest dir>: ok" or
# "<guest dir>: refused <wasi errno>".
PROBE_WRITES = r"""
typedef unsigned long size_t;
typedef unsigned long long u64;
typedef struct { const char *buf; size_t len; } ciovec;
typedef struct { unsigned char tag; unsigned int len; } prestat;
#define WASI(name) \
  __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))
WASI(fd_write) int fd_write(int fd, const ciovec *iovs, size_t n, size_t *done);
WASI(fd_prestat_get) int fd_prestat_get(int fd, prestat *out);
WASI(fd_prestat_dir_name) int fd_prestat_dir_name(int fd, char *path, size_t len);
WASI(path_open) int path_open(int fd, int dirflags, const char *path, size_t path_len,
    int oflags, u64 rights, u64 inherit, int fdflags, int *out);
WASI(proc_exit) _Noreturn void proc_exit(int code);

static char name[256];
static void put(int fd, const char *s, size_t n) { ciovec v = { s, n }; size_t done; fd_write(fd, &v, 1, &done); }
static size_t len(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static void say(const char *s) { put(1, s, len(s)); }

void _start(void) {
  for (int fd = 3; fd < 32; fd++) {
    prestat ps;
    if (fd_prestat_get(fd, &ps) != 0) break;
    fd_prestat_dir_name(fd, name, ps.len);
    name[ps.len] = 0;
    int file, err = path_open(fd, 0, "probe.txt", 9, 1 /* O_CREAT */, 1ull << 6 /* fd_write */, 0, 0, &file);
    if (err == 0) put(file, "x", 1);
    say(name); say(err == 0 ? ": ok\n" : ": refused ");
    if (err) { char d[3] = { '0' + err / 10, '0' + err % 10, '\n' }; put(1, d, 3); }
  }
  proc_exit(0);
}
"""
RAISING = FAKE_PYTHON.replace(
    "  proc_exit(0);\n}",
    '  put(2, "Traceback (most recent call last):\\n", 35);\n  proc_exit(1);\n}',
)


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("wasm")
    return {
        "ok": build_freestanding_wasm(FAKE_PYTHON, d / "ok.wasm"),
        "raise": build_freestanding_wasm(RAISING, d / "raise.wasm"),
        "probe": build_freestanding_wasm(PROBE_WRITES, d / "probe.wasm"),
    }


@pytest.fixture
def proj(tmp_path: Path, fakes: dict[str, Path]) -> Path:
    """A project with a runtime root (fake python.wasm) and its codegen."""
    root = tmp_path / "build" / "runtime_root" / "root"
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "python3.13").mkdir(parents=True)
    shutil.copyfile(fakes["ok"], root / "bin" / "python.wasm")
    codegen.generate(root, tmp_path / "build" / "codegen", wasm.make_engine())
    (tmp_path / "hello.py").write_text("print('hello')\n")
    return tmp_path


def cli(proj: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.invoke", *args],
        cwd=proj, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_upload_layout(tmp_path: Path) -> None:
    source = tmp_path / "f.py"
    source.write_text("print(1)\n")
    dest = invoke.upload(tmp_path / "store", "alice", "hello", source)
    assert dest == tmp_path / "store" / "alice" / "hello" / "function.py"
    assert dest.read_text() == "print(1)\n"
    assert [p.name for p in dest.parent.iterdir()] == ["function.py"]
    for bad in ("..", ".hidden", "a/b", ""):
        with pytest.raises(invoke.InvokeError, match="use letters"):
            invoke.upload(tmp_path / "store", bad, "hello", source)


def test_upload_then_run_from_codegen(proj: Path) -> None:
    up = cli(proj, "upload", "python", "hello", "hello.py")
    assert up.returncode == 0, up.stderr
    assert (proj / "build/function-store/python/hello/function.py").is_file()
    ran = cli(proj, "run", "python", "hello", "--input", "data in")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[:2] == ["argv: python", "argv: /func/function.py"]
    assert {"env: PYTHONHOME=/", "env: TMPDIR=/tmp", "env: PYTHONDONTWRITEBYTECODE=1"} <= set(lines)
    assert [line for line in lines if line.startswith("preopen: ")] == [
        "preopen: /", "preopen: /func", "preopen: /tmp",
    ]
    assert "function: print('hello')" in lines
    assert "stdin: data in" in lines


def test_stale_codegen_exits_3_and_jit_runs(proj: Path, fakes: dict[str, Path]) -> None:
    cli(proj, "upload", "python", "hello", "hello.py")
    shutil.copyfile(fakes["raise"], proj / "build/runtime_root/root/bin/python.wasm")
    stale = cli(proj, "run", "python", "hello")
    assert stale.returncode == 3
    assert "no machine code for bin/python.wasm" in stale.stderr and "doit codegen" in stale.stderr
    jit = cli(proj, "run", "python", "hello", "--jit")
    assert jit.returncode == 1  # the stand-in "raises"
    assert "Traceback (most recent call last)" in jit.stderr


def test_run_file_and_python_wasm_override(proj: Path, fakes: dict[str, Path]) -> None:
    ran = cli(proj, "run", "--file", "hello.py", "--python-wasm", str(fakes["raise"]), "--jit")
    assert ran.returncode == 1 and "Traceback" in ran.stderr
    assert "function: print('hello')" in ran.stdout
    ok = cli(proj, "run", "--file", "hello.py")
    assert ok.returncode == 0 and "function: print('hello')" in ok.stdout


def test_missing_function_and_usage(proj: Path) -> None:
    missing = cli(proj, "run", "python", "nosuch")
    assert missing.returncode == 2 and "no such function" in missing.stderr
    both = cli(proj, "run", "python", "hello", "--file", "hello.py")
    assert both.returncode == 2 and "not both" in both.stderr
    helped = cli(proj, "--help")
    assert helped.returncode == 0 and "examples:" in helped.stdout and "run --file" in helped.stdout


def test_invoke_api_returns_exit_status(proj: Path, fakes: dict[str, Path]) -> None:
    func_dir = proj / "fn"
    func_dir.mkdir()
    (func_dir / "function.py").write_text("x\n")
    inv = invoke.Invocation(
        runtime_root=proj / "build/runtime_root/root",
        python_wasm=fakes["raise"],
        function_dir=func_dir,
        codegen_dir=None,
        timeout_s=30,
    )
    assert invoke.invoke(inv) == 1


def test_runtime_root_and_function_are_mounted_read_only(proj: Path, fakes: dict[str, Path]) -> None:
    """The root ("/") and the function ("/func") cannot be written by the guest; its /tmp can."""
    up = cli(proj, "upload", "python", "hello", "hello.py")
    assert up.returncode == 0, up.stderr
    ran = cli(proj, "run", "python", "hello", "--python-wasm", str(fakes["probe"]), "--jit")
    assert ran.returncode == 0, ran.stderr
    verdicts = dict(line.split(": ", 1) for line in ran.stdout.splitlines())
    assert set(verdicts) == {"/", "/func", "/tmp"}
    assert verdicts["/tmp"] == "ok"
    assert verdicts["/"].startswith("refused") and verdicts["/func"].startswith("refused"), verdicts
    assert not list(proj.rglob("probe.txt")), "nothing was written into the root or the function store"


def test_syntax_newer_than_the_host_is_left_to_the_runtime(tmp_path: Path) -> None:
    """A 3.11 host must not refuse 3.12+ syntax for a 3.13 runtime; an older runtime is judged here."""
    source = tmp_path / "typed.py"
    source.write_text("type Pair = tuple[int, int]\nprint('ok')\n")
    host = sys.version_info[:2]
    newer_guest = (host[0], host[1] + 2)
    if host >= (3, 12):
        pytest.skip("the host knows PEP 695 syntax")
    invoke.check_function_file(source, newer_guest)  # no error: the guest decides
    with pytest.raises(invoke.InvokeError, match="not valid Python"):
        invoke.check_function_file(source, host)
    root = tmp_path / "root"
    (root / "lib" / f"python{newer_guest[0]}.{newer_guest[1]}").mkdir(parents=True)
    assert invoke.guest_python(root) == newer_guest

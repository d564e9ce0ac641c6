"""The Python function API: pyfaasm's dispatch, the faasm host, and the real runtime.

- dispatch: pyfaasm.code / pyfaasm.run in the host Python with a fake ``pyfaasm._host``;
- host: pipeline.faasm_host driving a freestanding wasm guest that calls the "faasm"
  imports directly (chaining, outputs, failures, limits), no CPython build needed;
- e2e: the built runtime (build/runtime_root + build/codegen) runs func/python/*.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO, BuiltChain, build_freestanding_wasm

from pipeline.runtime import faasm_host, wasm

PYFAASM_SRC = REPO / "recipes" / "packages" / "pyfaasm" / "src" / "src"

# ---------------------------------------------------------------- dispatch (pure Python)


@pytest.fixture
def pyfaasm(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    """Fresh pyfaasm.code/pyfaasm.run with a fake _host recording what they ask."""
    for name in [m for m in sys.modules if m == "pyfaasm" or m.startswith("pyfaasm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(PYFAASM_SRC))
    chained: list[tuple[int, bytes]] = []
    host = types.ModuleType("pyfaasm._host")
    host.chain_call = lambda entry, data=b"": chained.append((entry, data)) or len(chained)
    host.await_call = lambda call_id: 0
    host.get_input = lambda: b"in"
    outputs: list[bytes] = []
    host.set_output = outputs.append
    host.get_call_output = lambda call_id: b"out%d" % call_id
    code_cache: dict[bytes, bytes] = {}
    host.get_code = code_cache.get
    host.set_code = lambda path, code: code_cache.setdefault(path, code) is code
    monkeypatch.setitem(sys.modules, "pyfaasm._host", host)
    import pyfaasm.code
    import pyfaasm.run

    yield types.SimpleNamespace(code=pyfaasm.code, run=pyfaasm.run, chained=chained, outputs=outputs,
                                code_cache=code_cache)
    for name in ("pyfaasm.code", "pyfaasm.run", "pyfaasm"):
        sys.modules.pop(name, None)


SEED = (REPO / "func" / "python" / "chain_seed.py").read_text()


def test_dispatch_runs_the_registered_entry(pyfaasm: types.SimpleNamespace, tmp_path: Path) -> None:
    source = tmp_path / "function.py"
    source.write_text(SEED)
    assert pyfaasm.run.run(str(source), 0) == 0
    assert pyfaasm.chained == [(1, b""), (2, b"")]  # main_func chained entries 1 and 2
    assert pyfaasm.run.run(str(source), 2) == 0
    assert pyfaasm.chained == [(1, b""), (2, b"")]  # entry 2 chains nothing


ASYNC_ENTRIES = """
import asyncio
from pyfaasm.code import faasm_func, faasm_main, set_output

@faasm_func(1)
async def later():
    await asyncio.sleep(0)
    return 7

@faasm_main
async def main():
    done = await asyncio.gather(*(asyncio.sleep(0.001, result=i) for i in range(3)))
    async with asyncio.timeout(1):
        await asyncio.sleep(0)
    set_output(repr(done).encode())
"""


def test_dispatch_runs_async_entries_in_their_own_loop(pyfaasm: types.SimpleNamespace, tmp_path: Path) -> None:
    source = tmp_path / "function.py"
    source.write_text(ASYNC_ENTRIES)
    assert pyfaasm.run.run(str(source), 0) == 0
    assert pyfaasm.outputs == [b"[0, 1, 2]"], "the coroutine ran to completion, not just created"
    assert pyfaasm.run.run(str(source), 1) == 7, "an async entry's int result is its exit code"


def test_dispatch_failures(pyfaasm: types.SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "function.py"
    source.write_text("from pyfaasm.code import faasm_func, set_output\n"
                      "@faasm_func(1)\ndef boom():\n    raise ValueError('nope')\n"
                      "@faasm_func(2)\ndef seven():\n    set_output('x')\n    return 7\n"
                      "print('top level ran')\n")
    assert pyfaasm.run.run(str(source), 1) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ValueError: nope" in err
    assert "runpy" not in err  # the traceback starts at the function file
    assert pyfaasm.run.run(str(source), 2) == 7 and pyfaasm.outputs == [b"x"]
    assert pyfaasm.run.run(str(source), 3) == 2
    assert "registers no function for entry 3" in capsys.readouterr().err
    assert pyfaasm.run.run(str(source), 0) == 0  # no @faasm_main: a plain script
    assert "top level ran" in capsys.readouterr().out
    with pytest.raises(ValueError, match="entry must be"):
        pyfaasm.code.faasm_func(-1)


RUN_AS_FILE = """
import sys
from pyfaasm.code import set_output

def annotated(x: int) -> None:
    pass

BIG = {big!r}
set_output(repr((__name__, __file__, sys.argv[0], sys.modules[__name__].__dict__ is globals(), __package__,
                 __spec__, annotated.__annotations__["x"] is int, len(BIG))).encode())
"""


def test_function_file_runs_as_python_runs_a_file(pyfaasm: types.SimpleNamespace, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """run_file: the module is __main__ (entry 0) or __faasm__ and sys.argv[0] the file while it runs; both
    restored after; no __future__ flag of the runner's (annotations evaluated); a file read in several chunks."""
    source = tmp_path / "function.py"
    big = "x" * (3 * pyfaasm.run.READ_SIZE + 1)
    source.write_text(RUN_AS_FILE.format(big=big))
    main_module = sys.modules["__main__"]
    monkeypatch.setattr(sys, "argv", ["runner", "arg"])
    assert pyfaasm.run.run(str(source), 0) == 0  # a plain script
    assert pyfaasm.outputs[0] == repr(("__main__", str(source), str(source), True, "", None, True, len(big))).encode()
    assert pyfaasm.run.run(str(source), 1) == 2  # no function registered for entry 1
    assert pyfaasm.outputs[1] == repr(("__faasm__", str(source), str(source), True, "", None, True, len(big))).encode()
    assert sys.modules["__main__"] is main_module and "__faasm__" not in sys.modules
    assert sys.argv == ["runner", "arg"]


def test_later_calls_run_the_code_the_first_call_cached(pyfaasm: types.SimpleNamespace, tmp_path: Path) -> None:
    source = tmp_path / "function.py"
    source.write_text("from pyfaasm.code import set_output\nset_output('compiled once')\n")
    assert pyfaasm.run.run(str(source), 0, code_cache=True) == 0
    assert list(pyfaasm.code_cache) == [os.fsencode(source)]
    source.write_text("raise SystemExit('read again')\n")  # not read again: the cached code runs
    assert pyfaasm.run.run(str(source), 1, code_cache=True) == 2  # ran; registers no entry 1
    assert pyfaasm.outputs == [b"compiled once", b"compiled once"]


def test_syntax_error_in_function_file_is_reported_as_python_reports_it(
    pyfaasm: types.SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "function.py"
    source.write_text("x = 1\ndef broken(:\n    pass\n")
    assert pyfaasm.run.run(str(source), 0) == 1
    err = capsys.readouterr().err
    assert f'File "{source}", line 2' in err and "SyntaxError" in err
    assert "Traceback" not in err and "run.py" not in err  # no frames of the runner


# ---------------------------------------------------------------- host (freestanding guest)

GUEST = r"""
typedef unsigned long size_t;
typedef struct { const char *buf; size_t len; } ciovec;
#define WASI(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))
#define FAASM(name) __attribute__((import_module("faasm"), import_name(#name)))
WASI(environ_sizes_get) int environ_sizes_get(size_t *count, size_t *size);
WASI(environ_get) int environ_get(char **ptrs, char *buf);
WASI(fd_write) int fd_write(int fd, const ciovec *iovs, size_t n, size_t *done);
WASI(proc_exit) _Noreturn void proc_exit(int code);
FAASM(chain_call) int chain_call(int entry, const char *input, int len);
FAASM(await_call) int await_call(int call_id);
FAASM(input_size) int input_size(void);
FAASM(read_input) int read_input(char *buf, int len);
FAASM(write_output) int write_output(const char *buf, int len);
FAASM(call_output_size) int call_output_size(int call_id);
FAASM(read_call_output) int read_call_output(int call_id, char *buf, int len);
FAASM(code_cache_size) int code_cache_size(const char *path, int path_len);
FAASM(read_code_cache) int read_code_cache(const char *path, int path_len, char *buf, int len);
FAASM(write_code_cache) int write_code_cache(const char *path, int path_len, const char *code, int len);

static char envbuf[4096], in[256], out[64], tmp[64];
static char *envp[64];
static int ids[256];

static int fmt(char *s, int v) {  /* decimal, returns length */
  char r[16]; int n = 0, m = 0;
  if (v < 0) { s[m++] = '-'; v = -v; }
  do { r[n++] = '0' + v % 10; v /= 10; } while (v);
  while (n) s[m++] = r[--n];
  return m;
}
static int parse(const char *s, int n) { int v = 0; for (int i = 0; i < n; i++) v = v * 10 + s[i] - '0'; return v; }
static void say(const char *s, size_t n) { ciovec v = { s, n }; size_t done; fd_write(2, &v, 1, &done); }
static int entry(void) {
  size_t count, size;
  environ_sizes_get(&count, &size); environ_get(envp, envbuf);
  for (size_t i = 0; i < count; i++) {
    const char *e = envp[i], *k = "FAASM_ENTRY=";
    int j = 0; while (k[j] && e[j] == k[j]) j++;
    if (!k[j]) return e[j] - '0';
  }
  return 0;
}
/* The code cache's rules (entries 5-9, before any other host call): words separated by ' '. */
static int put(char *s, int at, int v) { at += fmt(s + at, v); s[at] = ' '; return at + 1; }
static void code_cache(int e) {
  int at = 0;
  if (e == 5) {  /* main call: a lookup (none yet), then offer as its first other host call (taken), again
                    (refused); a chained call reads */
    at = put(out, at, code_cache_size("/f", 2));
    at = put(out, at, write_code_cache("/f", 2, "CODE", 4));
    at = put(out, at, write_code_cache("/f", 2, "EVIL", 4));
    int id = chain_call(6, 0, 0);
    await_call(id);
    at += read_call_output(id, out + at, call_output_size(id));
  } else if (e == 6) {  /* chained: the cached code for /f, none for /g; its own offer is refused */
    int size = code_cache_size("/f", 2);
    at = put(out, at, size);
    at = put(out, at, code_cache_size("/g", 2));
    at = put(out, at, write_code_cache("/f", 2, "EVIL", 4));
    at += read_code_cache("/f", 2, out + at, size);
  } else if (e == 7) {  /* main call that asked something else first: its offer is refused */
    input_size();
    at = put(out, at, write_code_cache("/f", 2, "LATE", 4));
    at = put(out, at, code_cache_size("/f", 2));
  } else if (e == 8) {  /* main call that offers nothing: a chained call's offer (its first host call) is refused */
    int id = chain_call(9, 0, 0);
    await_call(id);
    at += read_call_output(id, out + at, call_output_size(id));
    at = put(out, at, code_cache_size("/f", 2));
  } else if (e == 9) {
    at = put(out, at, write_code_cache("/f", 2, "EVIL", 4));
  }
  write_output(out, at);
  proc_exit(0);
}
void _start(void) {
  int e = entry();
  if (e >= 5) code_cache(e);
  int n = read_input(in, input_size());
  if (e == 1) { write_output(in, n); proc_exit(0); }      /* echo */
  if (e == 2) { say("entry 2 fails\n", 14); proc_exit(3); }
  if (e == 3) { for (;;) {} }                               /* spin */
  if (e == 4 || in[0] == 'd') {                             /* a chain N deep: each call awaits the next */
    int depth = e == 4 ? parse(in, n) : parse(in + 1, n - 1);
    int below = 0;
    if (depth > 0) {
      int id = chain_call(4, tmp, fmt(tmp, depth - 1));
      if (await_call(id) != 0) proc_exit(6);
      below = parse(tmp, read_call_output(id, tmp, call_output_size(id))) + 1;
    }
    write_output(out, fmt(out, below));
    proc_exit(0);
  }
  if (in[0] == 'M') {  /* grow memory 1 MiB at a time until refused, then fail as CPython does */
    int mib = 0;
    while (__builtin_wasm_memory_grow(0, 16) != -1) mib++;
    write_output(out, fmt(out, mib));
    say("MemoryError\n", 12);
    proc_exit(1);
  }
  /* main: input "f<N>" fan-out N echo calls and sum; "x" chain 2; "s" chain 3; "S" spin;
     "d<N>" a chain N deep; "M" grow memory until refused */
  if (in[0] == 'S') for (;;) {}
  if (in[0] == 'x' || in[0] == 's') {
    int id = chain_call(in[0] == 'x' ? 2 : 3, 0, 0);
    write_output(out, fmt(out, await_call(id)));
    proc_exit(0);
  }
  int count = parse(in + 1, n - 1), total = 0;
  for (int i = 0; i < count; i++) ids[i] = chain_call(1, tmp, fmt(tmp, i));
  for (int i = 0; i < count; i++) {
    if (await_call(ids[i]) != 0) proc_exit(4);
    int len = read_call_output(ids[i], tmp, call_output_size(ids[i]));
    total += parse(tmp, len);
  }
  if (call_output_size(999) != -1 || await_call(999) != -1) proc_exit(5);
  write_output(out, fmt(out, total));
  proc_exit(0);
}
"""


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> tuple[wasm.WasmEngine, object]:
    path = build_freestanding_wasm(GUEST, tmp_path_factory.mktemp("faasm") / "guest.wasm")
    engine = wasm.make_engine()
    return engine, wasm.load_module(engine, path)


def run_guest(guest: tuple, tmp_path: Path, data: bytes, **limits: object) -> tuple[faasm_host.Call, list, list]:
    engine, module = guest
    logged: list[str] = []
    spec = faasm_host.Guest(argv=("guest",), env={}, preopens=())
    with faasm_host.FaasmHost(engine, module, spec, faasm_host.Limits(**limits), tmp_path, logged.append) as host:
        main = host.run_main(data)
    return main, host.calls(), logged


def test_host_fan_out_sums_outputs(guest: tuple, tmp_path: Path) -> None:
    main, calls, logged = run_guest(guest, tmp_path, b"f20", max_concurrency=2)
    assert (main.code, main.output, main.failure) == (0, str(sum(range(20))).encode(), None)
    assert [c.call_id for c in calls] == list(range(21)) and all(c.code == 0 for c in calls)
    assert sum("finished: exit 0" in line for line in logged) == 20


def test_host_passes_untouched_call_directories_on_and_leaves_none(guest: tuple, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Path] = []
    real_make = faasm_host.CallDir.make

    def counting(scratch: Path) -> faasm_host.CallDir:
        made.append(real_make(scratch).path)
        return faasm_host.CallDir(made[-1], faasm_host.dir_times(made[-1] / faasm_host.CALL_TMP))

    monkeypatch.setattr(faasm_host.CallDir, "make", counting)
    main, calls, _ = run_guest(guest, tmp_path, b"f20", max_concurrency=2)
    assert main.code == 0 and len(calls) == 21
    assert len(made) <= 4  # the main call's, two workers', one call run by the awaiting main thread
    assert list(tmp_path.iterdir()) == []


def test_call_directory_is_passed_on_only_with_tmp_as_made(tmp_path: Path) -> None:
    untouched = faasm_host.CallDir.make(tmp_path)
    (untouched.path / faasm_host.CALL_STDOUT).write_text("output files do not count")
    assert untouched.tmp_untouched()
    left_a_file = faasm_host.CallDir.make(tmp_path)
    (left_a_file.path / faasm_host.CALL_TMP / "file").write_text("left behind")
    assert not left_a_file.tmp_untouched()
    same_tick = faasm_host.CallDir(left_a_file.path, faasm_host.dir_times(left_a_file.path / faasm_host.CALL_TMP))
    assert not same_tick.tmp_untouched()  # written within the clock tick that made it: times equal, not empty
    emptied = faasm_host.CallDir.make(tmp_path)
    (emptied.path / faasm_host.CALL_TMP / "file").write_text("then deleted")
    (emptied.path / faasm_host.CALL_TMP / "file").unlink()
    os.utime(emptied.path / faasm_host.CALL_TMP, ns=(1, 1))  # its times, as a later clock tick leaves them
    assert not emptied.tmp_untouched()


def test_call_directory_is_removed_with_whatever_the_call_left_in_tmp(tmp_path: Path) -> None:
    quiet, busy = tmp_path / "call-1-a", tmp_path / "call-2-b"
    for work in (quiet, busy):
        (work / faasm_host.CALL_TMP).mkdir(parents=True)
        (work / faasm_host.CALL_STDOUT).write_text("out")
    (busy / faasm_host.CALL_TMP / "nested" / "deeper").mkdir(parents=True)
    (busy / faasm_host.CALL_TMP / "nested" / "deeper" / "file").write_text("left behind")
    for work in (quiet, busy):
        faasm_host.remove_call_dir(work)
    assert list(tmp_path.iterdir()) == []


def run_entry(guest: tuple, tmp_path: Path, entry: int) -> faasm_host.Call:
    engine, module = guest
    spec = faasm_host.Guest(argv=("guest",), env={}, preopens=())
    with faasm_host.FaasmHost(engine, module, spec, faasm_host.Limits(), tmp_path, lambda _line: None) as host:
        return host.run_main(b"", entry=entry)


def test_host_code_cache_takes_only_the_main_calls_first_offer(guest: tuple, tmp_path: Path) -> None:
    """The main call's offer, made before any host call but code-cache lookups, is kept and served for
    that path only; a second offer, one after another host call, and a chained call's offer are refused
    (REFUSED = -4; none cached: -1)."""
    assert run_entry(guest, tmp_path, 5).output == b"-1 0 -4 4 -1 -4 CODE"
    assert run_entry(guest, tmp_path, 7).output == b"-4 -1 "
    assert run_entry(guest, tmp_path, 8).output == b"-4 -1 "


def test_host_failing_chained_call_does_not_kill_caller(guest: tuple, tmp_path: Path) -> None:
    main, calls, logged = run_guest(guest, tmp_path, b"x")
    assert (main.code, main.output) == (0, b"3")
    assert calls[1].stderr == b"entry 2 fails\n"
    assert any("[call 1 stderr] entry 2 fails" in line and "call 1 (entry 2) finished: exit 3" in line
               for line in logged)


def test_host_time_limit_per_call(guest: tuple, tmp_path: Path) -> None:
    main, calls, logged = run_guest(guest, tmp_path, b"s", timeout_s=0.5)
    # the spinning chained call is stopped; its caller (not charged for waiting) goes on
    assert (main.code, main.output, main.failure) == (0, b"124", None)
    assert calls[1].failure == "timeout"
    assert calls[1].message == "call 1 (entry 3) exceeded its time limit of 0.5 s"
    assert any("error: call 1 (entry 3) exceeded its time limit of 0.5 s" in line for line in logged)
    main, _, _ = run_guest(guest, tmp_path, b"S", timeout_s=0.5)
    assert (main.code, main.failure) == (124, "timeout")
    assert main.message == "call 0 (entry 0) exceeded its time limit of 0.5 s"


def test_host_memory_limit_below_initial_memory_is_clear(guest: tuple, tmp_path: Path) -> None:
    main, _, _ = run_guest(guest, tmp_path, b"f1", memory_bytes=64 * 1024)
    assert main.failure == "trap" and "memory limit 0.0625 MiB" in main.message


def test_host_memory_limit_refuses_growth_in_a_running_guest(guest: tuple, tmp_path: Path) -> None:
    """Store.set_limits: memory.grow past the limit returns -1 (CPython's malloc fails, MemoryError)
    instead of succeeding; the host reports it as that call's memory failure."""
    main, _, _ = run_guest(guest, tmp_path, b"M", memory_bytes=8 * wasm.MIB)
    assert (main.code, main.failure) == (1, "memory")
    assert main.message == "call 0 (entry 0) ran out of memory (MemoryError) under its limit of 8 MiB"
    small = int(main.output)
    assert 0 < small < 8  # it ran, grew, and was stopped below the limit
    main, _, _ = run_guest(guest, tmp_path, b"M", memory_bytes=32 * wasm.MIB)
    assert main.failure == "memory" and "limit of 32 MiB" in main.message
    assert int(main.output) == small + 24, "the limit, not the guest, decides where growth stops"


def test_host_deep_chain_does_not_deadlock_the_pool(guest: tuple, tmp_path: Path) -> None:
    """Each call awaits the next, 12 deep, with one worker: the awaiting thread runs the call itself."""
    result: list[tuple[faasm_host.Call, list, list]] = []
    runner = threading.Thread(target=lambda: result.append(
        run_guest(guest, tmp_path, b"d12", max_concurrency=1, timeout_s=30)), daemon=True)
    runner.start()
    runner.join(60)
    assert result, "deadlocked: a chain deeper than the pool never finished"
    main, calls, logged = result[0]
    assert (main.code, main.output, main.failure) == (0, b"12", None)
    assert [c.call_id for c in calls] == list(range(13)) and all(c.code == 0 for c in calls)
    assert sum("finished: exit 0" in line for line in logged) == 12


def test_plain_runner_traps_clearly_without_faasm_host(guest: tuple, tmp_path: Path) -> None:
    engine, module = guest
    with pytest.raises(wasm.WasmTrap, match=r"no faasm host: faasm\.\w+ needs `python -m pipeline.invoke`"):
        wasm.run_wasi(module, engine, wasm.WasiRun(argv=["guest"]))


# ---------------------------------------------------------------- e2e (the built runtime)

FUNCS = REPO / "func" / "python"


def invoke_file(chain: BuiltChain, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.invoke", "run", "--file", str(path), "--root", str(chain.runtime_root),
         "--codegen", str(chain.codegen), *args],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture
def runtime(built_chain: BuiltChain) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a function file (a name in func/python, or a path) in the session's built runtime."""
    assert list(built_chain.runtime_root.glob("lib/python3.*/site-packages/pyfaasm")), "pyfaasm is in the runtime"

    def run(name: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
        return invoke_file(built_chain, FUNCS / name if isinstance(name, str) else name, *args)

    return run


@pytest.mark.e2e
def test_seed_example_runs_both_chained_calls(runtime: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    ran = runtime("chain_seed.py")
    assert ran.returncode == 0, ran.stderr
    assert "call 1 (entry 1) finished: exit 0" in ran.stderr
    assert "call 2 (entry 2) finished: exit 0" in ran.stderr


@pytest.mark.e2e
def test_fan_out_50(runtime: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    out = tmp_path / "out"
    ran = runtime("fanout.py", "--input", "50", "--output", str(out))
    assert ran.returncode == 0, ran.stderr
    assert out.read_bytes() == b"1225"
    assert "fan-out: 50 calls, sum of outputs 1225" in ran.stdout
    assert ran.stderr.count("finished: exit 0") == 50


@pytest.mark.e2e
def test_raising_chained_call(runtime: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    ran = runtime("chain_raises.py")
    assert ran.returncode == 0, ran.stderr
    assert "chained call 1 returned exit code 1" in ran.stdout
    assert "[call 1 stderr] Traceback (most recent call last):" in ran.stderr
    assert "[call 1 stderr] ValueError: chained call failed on purpose" in ran.stderr
    assert "call 1 (entry 1) finished: exit 1" in ran.stderr


@pytest.mark.e2e
def test_time_limit(runtime: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    ran = runtime("slow.py", "--timeout", "2")
    assert ran.returncode == 0, ran.stderr
    assert "error: call 1 (entry 1) exceeded its time limit of 2.0 s" in ran.stderr
    assert "slow call 1 returned exit code 124" in ran.stdout
    main = runtime("slow.py", "--timeout", "2", "--input", "main")
    assert main.returncode == 124
    assert "error: call 0 (entry 0) exceeded its time limit of 2.0 s" in main.stderr


@pytest.mark.e2e
def test_plain_scripts_still_run(runtime: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    ran = runtime("hello.py")
    assert ran.returncode == 0, ran.stderr
    assert "Hello from Python on WebAssembly!" in ran.stdout


MEMORY_HOG = """\
import sys
try:
    hog = bytearray(256 * 1024 * 1024)
except MemoryError:
    print("caught MemoryError")
    print("still alive:", len(bytearray(1024 * 1024)))  # the interpreter goes on after the refusal
else:
    print("allocated", len(hog))
hog = bytearray(int(sys.stdin.read() or 0) * 1024 * 1024)  # uncaught when over the limit
print("second allocation ok")
"""


@pytest.mark.e2e
def test_memory_limit_gives_memory_error_in_python(
    runtime: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path,
) -> None:
    hog = tmp_path / "hog.py"
    hog.write_text(MEMORY_HOG)
    limited = runtime(hog, "--memory-limit", "64", "--input", "128")
    assert limited.stdout.splitlines()[:2] == ["caught MemoryError", "still alive: 1048576"], limited.stdout
    assert limited.returncode == 1
    assert "MemoryError" in limited.stderr and "Traceback" in limited.stderr
    assert "error: call 0 (entry 0) ran out of memory (MemoryError) under its limit of 64 MiB" in limited.stderr
    roomy = runtime(hog, "--memory-limit", "1024", "--input", "128")  # the same code under a higher limit
    assert roomy.returncode == 0, roomy.stderr
    assert roomy.stdout.splitlines() == ["allocated 268435456", "second allocation ok"]


READ_ONLY_PROBE = """\
import os
for path in ("/probe.txt", "/lib/probe.txt", "/func/probe.txt", "/tmp/probe.txt"):
    try:
        with open(path, "w") as handle:
            handle.write("x")
        print(path, "written")
    except OSError as exc:
        print(path, "refused", type(exc).__name__)
"""


@pytest.mark.e2e
def test_runtime_root_is_read_only_to_functions(
    runtime: Callable[..., subprocess.CompletedProcess[str]], built_chain: BuiltChain, tmp_path: Path,
) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(READ_ONLY_PROBE)
    ran = runtime(probe)
    assert ran.returncode == 0, ran.stderr
    verdicts = dict(line.split(" ", 1) for line in ran.stdout.splitlines())
    assert verdicts["/tmp/probe.txt"] == "written"
    for path in ("/probe.txt", "/lib/probe.txt", "/func/probe.txt"):
        assert verdicts[path].startswith("refused"), verdicts
    assert not list(built_chain.runtime_root.rglob("probe.txt"))


@pytest.mark.e2e
def test_deep_chain_of_python_calls_does_not_deadlock(
    runtime: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path,
) -> None:
    """Each Python call awaits the next, 6 deep, on one worker."""
    deep = tmp_path / "deep.py"
    deep.write_text(
        "from pyfaasm.code import await_call, chain_this, faasm_func, faasm_main, get_call_output, get_input, "
        "set_output\n"
        "def step():\n"
        "    depth = int(get_input() or b'0')\n"
        "    if depth == 0:\n"
        "        set_output(b'0')\n"
        "        return\n"
        "    call = chain_this(1, str(depth - 1).encode())\n"
        "    assert await_call(call) == 0\n"
        "    set_output(str(int(get_call_output(call)) + 1).encode())\n"
        "faasm_func(1)(step)\n"
        "faasm_main(step)\n"
    )
    ran = runtime(deep, "--input", "6", "--max-concurrency", "1", "--timeout", "300")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "6"
    assert ran.stderr.count("finished: exit 0") == 6


@pytest.mark.e2e
def test_async_function_runs_through_invoke(runtime: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """asyncio on WASI: the patched selector loop, tasks, queue, timeout, TaskGroup and an async chained call."""
    ran = runtime("async_pipeline.py")
    assert ran.returncode == 0, ran.stderr
    assert ("async: queue sum 4950, timeout fired, task group [0, 1, 2, 3, 4], chained square 144 (exit 0)"
            in ran.stdout), ran.stdout + ran.stderr

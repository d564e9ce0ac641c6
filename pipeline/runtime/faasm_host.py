"""The faasm host: python.wasm's "faasm" imports, chained calls and per-call limits.

One FaasmHost serves one invocation. The main call and every chained call run the same
function file (``python -m pyfaasm.run /func/function.py``, the entry in ``FAASM_ENTRY``)
in a fresh Store and instance of the one already-loaded (precompiled) Module, so each call
has its own memory, /tmp, stdout and stderr. That module is python.wasm (each call runs
``_start``) or its pre-initialized snapshot (each call runs ``pyfaasm-run-call``; the
instance's memory starts as a copy-on-write mapping of the snapshot's, see
pipeline.wasmbuild.snapshot).

- Chained calls queue for ``max_concurrency`` worker threads, made with the big host stack
  wasm needs (see pipeline.wasm). ``await_call`` on a call no worker has started yet runs
  it on the awaiting thread instead, so callers blocked in ``await_call`` never starve the
  pool: no deadlock, however deep the chain.
- Time limit: one ticker thread bumps the shared engine's epoch every TICK_S; each Store
  has its own deadline in ticks, so concurrent calls time out independently. Time spent
  blocked in ``await_call`` is not charged to the waiting call.
- Memory limit: ``Store.set_limits(memory_size=...)``; a guest over it gets MemoryError.
- Code cache: the main call's runner offers the function file's compiled code (marshal data)
  as its first host call, before any of the file's code runs; later calls load it instead
  of reading and compiling the file (pyfaasm.run.load_code). Nothing else is taken, and
  nothing any call's own code does decides what a later call runs.
- Host functions return error codes and never raise: wasmtime-py passes a callback's
  exception through one process-wide slot, which concurrent calls would race on.
"""

from __future__ import annotations

import ctypes
import math
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import wasmtime

from ..errors import ExitCode
from . import wasm

NAMESPACE = wasm.FAASM_NAMESPACE
ENTRY_ENV = "FAASM_ENTRY"
RUNNER_ARGV = ("-m", "pyfaasm.run")
TICK_S = 0.01
# A call's directory under the host's scratch: its /tmp and the files its stdout and stderr go to.
CALL_TMP, CALL_STDOUT, CALL_STDERR = "tmp", "stdout", "stderr"
# Error results of the host functions; pyfaasm/_host.c has the same numbers.
NO_SUCH_CALL = -1
NOT_FINISHED = -2
BAD_ARGUMENT = -3
REFUSED = -4
NO_CACHED_CODE = NO_SUCH_CALL  # the code cache has nothing for that path
# Host functions that only read the code cache: they do not count as a call's host calls.
CODE_CACHE_LOOKUPS = frozenset({"code_cache_size", "read_code_cache"})

Failure = Literal["timeout", "trap", "memory"]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Limits:
    """Per-call limits and the invocation's concurrency bound."""

    timeout_s: float | None = None
    memory_bytes: int | None = 512 * wasm.MIB
    max_concurrency: int = 2
    max_calls: int = 10_000  # chained calls per invocation


START_EXPORT = "_start"


@dataclass(frozen=True)
class Guest:
    """How to start a call: python.wasm's argv (the entry goes in the environment) and mounts.

    ``export`` is the function each call runs: ``_start`` (CPython from scratch), or a
    snapshot's per-call export (pyfaasm-run-call, which ends the call with proc_exit(code)).
    """

    argv: tuple[str, ...]
    env: dict[str, str]
    preopens: tuple[tuple[Path, str], ...]  # (host dir, guest path); each call adds its own /tmp
    read_only: frozenset[str] = frozenset()
    export: str = START_EXPORT


@dataclass
class Call:
    """One call; mutated only by the thread running it (and `state` under the host's lock)."""

    call_id: int
    entry: int
    input: bytes
    stdin: Path | None = None
    state: Literal["pending", "running", "done"] = "pending"
    code: int | None = None
    output: bytes = b""
    stdout: bytes = b""
    stderr: bytes = b""
    failure: Failure | None = None
    message: str = ""
    seconds: float = 0.0
    deadline: int = wasm.NO_DEADLINE  # in the host's epoch ticks
    host_calls: int = 0  # faasm host calls made, code-cache lookups not counted
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def label(self) -> str:
        return f"call {self.call_id} (entry {self.entry})"


_LOG_LOCK = threading.Lock()


def log_to_stderr(line: str) -> None:
    """One write per entry under a lock: print() from worker threads could interleave a
    line and another's newline (an empty line in the log)."""
    with _LOG_LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def store_address(store: wasmtime.Store | wasmtime.Caller) -> int:
    """The address of a Store's context, which a Caller from that Store shares (wasmtime-py
    has no public Caller -> Store link; Store.data would intern a value per call)."""
    return ctypes.addressof(store._context().contents)


def _memory(caller: wasmtime.Caller) -> wasmtime.Memory | None:
    memory = caller.get("memory")
    return memory if isinstance(memory, wasmtime.Memory) else None


def read_guest(caller: wasmtime.Caller, ptr: int, length: int) -> bytes | None:
    """``length`` bytes of guest memory at ``ptr``; None if out of bounds."""
    ptr &= 0xFFFFFFFF
    if length == 0:
        return b""
    memory = _memory(caller)
    if memory is None or length < 0 or ptr + length > memory.data_len(caller):
        return None
    return bytes(memory.read(caller, ptr, ptr + length))


def write_guest(caller: wasmtime.Caller, ptr: int, data: bytes) -> bool:
    ptr &= 0xFFFFFFFF
    if not data:
        return True
    memory = _memory(caller)
    if memory is None or ptr + len(data) > memory.data_len(caller):
        return False
    memory.write(caller, data, ptr)
    return True


def set_deadline(caller: wasmtime.Caller, ticks: int) -> None:
    """Store.set_epoch_deadline for the calling store (wasmtime-py has no public Caller API)."""
    wasmtime._ffi.wasmtime_context_set_epoch_deadline(caller._context(), ticks)


def read_output(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def dir_times(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_ctime_ns


@dataclass(frozen=True)
class CallDir:
    """A directory that one call at a time works in: its /tmp (CALL_TMP) and its output files.

    Making and removing directories is most of a short call's host-side cost on some file
    systems (ext4 mounted with ``discard``: about 0.5 ms each), so the host passes a call's
    directory on to the next call when its /tmp is as it was made: still empty, with the same
    mtime and ctime (creating, deleting or renaming an entry, or setting its times, changes
    both). The next call sees a /tmp no earlier call wrote to, like a fresh one.
    """

    path: Path
    tmp_made: tuple[int, int]  # /tmp's (mtime_ns, ctime_ns) when it was made

    @classmethod
    def make(cls, scratch: Path) -> CallDir:
        path = Path(tempfile.mkdtemp(dir=scratch, prefix="call-"))
        (path / CALL_TMP).mkdir()
        return cls(path, dir_times(path / CALL_TMP))

    def tmp_untouched(self) -> bool:
        tmp = self.path / CALL_TMP
        try:
            if dir_times(tmp) != self.tmp_made:
                return False
            with os.scandir(tmp) as entries:
                return next(entries, None) is None
        except OSError:
            return False


def remove_call_dir(work: Path) -> None:
    """A finished call's directory: its output files, then /tmp, walked only if the call left files there
    (a tree walk costs more than a short call's instance)."""
    for name in (CALL_STDOUT, CALL_STDERR):
        with suppress(FileNotFoundError):
            os.unlink(work / name)
    try:
        os.rmdir(work / CALL_TMP)
        os.rmdir(work)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)


def memory_message(call: Call, limit: int | None) -> str | None:
    if limit is None or call.code in (0, None) or b"MemoryError" not in call.stderr:
        return None
    return f"{call.label} ran out of memory (MemoryError) under its limit of {limit / wasm.MIB:g} MiB"


class FaasmHost:
    """Runs one invocation's calls. Use as a context manager around run_main."""

    def __init__(
        self, engine: wasm.WasmEngine, module: wasmtime.Module, guest: Guest, limits: Limits,
        scratch: Path, log: Log = log_to_stderr,
    ) -> None:
        self.engine, self.module, self.guest, self.limits = engine, module, guest, limits
        self.scratch, self.log = scratch, log
        self._lock = threading.Lock()
        self._calls: dict[int, Call] = {}
        self._queue: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._ticks = 0  # written by the ticker only
        self._shared_linker: wasmtime.Linker | None = None
        self._spare_dirs: list[CallDir] = []  # call directories whose /tmp no call wrote to
        self._code_cache: tuple[bytes, bytes] | None = None  # (function file's guest path, its code)
        # Store context address -> (its call, that call's host functions by name)
        self._calls_by_store: dict[int, tuple[Call, dict[str, Callable[..., int]]]] = {}

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> FaasmHost:
        for index in range(max(1, self.limits.max_concurrency)):
            self._workers.append(wasm.start_guest_thread(self._work, f"faasm-worker-{index}"))
        if self.limits.timeout_s is not None:
            self._workers.append(wasm.start_guest_thread(self._tick, "faasm-epoch"))
        return self

    def __exit__(self, *_exc: object) -> None:
        self.drain()
        self._stop.set()
        for _ in range(max(1, self.limits.max_concurrency)):
            self._queue.put(None)
        for thread in self._workers:
            thread.join()
        with self._lock:
            spare, self._spare_dirs = self._spare_dirs, []
        for call_dir in spare:
            remove_call_dir(call_dir.path)

    def drain(self) -> None:
        """Wait for every chained call, awaited or not (each has its own time limit)."""
        while True:
            with self._lock:
                pending = [c for c in self._calls.values() if c.state != "done"]
            if not pending:
                return
            pending[0].done.wait()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            self._ticks += 1
            self.engine.increment_epoch()

    def _work(self) -> None:
        while (call := self._queue.get()) is not None:
            if self._claim(call):
                self._run(call)

    # -- calls -----------------------------------------------------------------

    def run_main(self, input_bytes: bytes = b"", stdin: Path | None = None, entry: int = 0) -> Call:
        """Run the main call (id 0) to completion on a big-stack thread."""
        call = Call(0, entry, input_bytes, stdin, state="running")
        with self._lock:
            self._calls[0] = call
        wasm.start_guest_thread(lambda: self._run(call), "faasm-main").join()
        return call

    def calls(self) -> list[Call]:
        with self._lock:
            return sorted(self._calls.values(), key=lambda c: c.call_id)

    def chain(self, entry: int, input_bytes: bytes) -> int:
        """Queue a new call of entry ``entry``; its id, or REFUSED."""
        if entry < 0:
            return BAD_ARGUMENT
        with self._lock:
            call_id = len(self._calls)  # the main call is 0
            if call_id > self.limits.max_calls:
                return REFUSED
            call = Call(call_id, entry, input_bytes)
            self._calls[call_id] = call
        self.log(f"faasm: {call.label} queued")
        self._queue.put(call)
        return call_id

    def await_call(self, call_id: int) -> int:
        """Block until the call is done (running it here if no worker has); its exit code."""
        with self._lock:
            call = self._calls.get(call_id)
        if call is None or call_id == 0:
            return NO_SUCH_CALL
        if self._claim(call):
            self._run(call)
        call.done.wait()
        return call.code if call.code is not None else ExitCode.TRAP

    def finished(self, call_id: int) -> Call | None:
        with self._lock:
            call = self._calls.get(call_id)
        return call if call is not None and call.state == "done" else None

    def _claim(self, call: Call) -> bool:
        with self._lock:
            if call.state != "pending":
                return False
            call.state = "running"
            return True

    def _run(self, call: Call) -> None:
        started = time.monotonic()
        try:
            call_dir = self._take_call_dir()
            try:
                self._execute(call, call_dir.path)
            finally:
                self._give_back(call_dir)
        except Exception as exc:  # a host bug must not leave awaiters hanging
            call.code, call.failure, call.message = ExitCode.TRAP, "trap", f"{call.label}: host error: {exc!r}"
        finally:
            call.seconds = time.monotonic() - started
            with self._lock:
                call.state = "done"
            call.done.set()
        if call.call_id:
            self._report(call)

    def _take_call_dir(self) -> CallDir:
        with self._lock:
            if self._spare_dirs:
                return self._spare_dirs.pop()
        return CallDir.make(self.scratch)

    def _give_back(self, call_dir: CallDir) -> None:
        """Keep the directory for the next call if its /tmp is as made; else remove it."""
        if call_dir.tmp_untouched():
            with self._lock:
                self._spare_dirs.append(call_dir)
        else:
            remove_call_dir(call_dir.path)

    def _report(self, call: Call) -> None:
        lines = [f"[call {call.call_id} {stream}] {line}"
                 for stream, data in (("stdout", call.stdout), ("stderr", call.stderr))
                 for line in data.decode(errors="replace").splitlines()]
        status = f"error: {call.message}" if call.message else f"{call.label} finished: exit {call.code}"
        lines.append(f"faasm: {status} ({call.seconds:.2f} s)")
        self.log("\n".join(lines))

    # -- one instance ------------------------------------------------------------

    def _wasi_run(self, call: Call, work: Path) -> wasm.WasiRun:
        tmp = work / CALL_TMP  # made empty by CallDir
        return wasm.WasiRun(
            argv=list(self.guest.argv),
            env={**self.guest.env, ENTRY_ENV: str(call.entry)},
            preopens=[*self.guest.preopens, (tmp, "/tmp")],
            read_only=self.guest.read_only,
            stdin=call.stdin,
            stdout=work / CALL_STDOUT,
            stderr=work / CALL_STDERR,
            max_wasm_stack=self.engine.settings.max_wasm_stack,
        )

    def _execute(self, call: Call, work: Path) -> None:
        run = self._wasi_run(call, work)
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasm.wasi_config(run))
        if self.limits.memory_bytes is not None:
            store.set_limits(memory_size=self.limits.memory_bytes)
        ticks = self._limit_ticks()
        call.deadline = self._ticks + ticks
        store.set_epoch_deadline(ticks)
        call.code, call.failure, call.message = self._start(store, call)
        call.stdout, call.stderr = read_output(work / CALL_STDOUT), read_output(work / CALL_STDERR)
        if call.failure is None and (message := memory_message(call, self.limits.memory_bytes)):
            call.failure, call.message = "memory", message

    def _limit_ticks(self) -> int:
        if self.limits.timeout_s is None:
            return wasm.NO_DEADLINE
        return max(1, math.ceil(self.limits.timeout_s / TICK_S))

    def _start(self, store: wasmtime.Store, call: Call) -> tuple[int, Failure | None, str]:
        try:
            with self._bound(store, call):
                code = wasm.run_export(self._linker(call), store, self.module, self.guest.export,
                                       self.limits.timeout_s)
        except wasm.TimeLimitExceeded:
            return ExitCode.TIME_LIMIT, "timeout", f"{call.label} exceeded its time limit of {self.limits.timeout_s} s"
        except wasm.GuestError as exc:
            limit = self.limits.memory_bytes
            hint = f" (memory limit {limit / wasm.MIB:g} MiB)" if limit is not None else ""
            return ExitCode.TRAP, "trap", f"{call.label} failed{hint}: {exc}"
        except wasm.WasmTrap as exc:
            return ExitCode.TRAP, "trap", f"{call.label} trapped: {exc}"
        return code, None, ""

    # -- the host functions --------------------------------------------------------

    def _linker(self, call: Call) -> wasmtime.Linker:
        """One Linker for every call (building one costs about a millisecond): WASI reads each
        Store's own context, and the faasm functions find their call by the caller's Store."""
        with self._lock:
            if self._shared_linker is None:
                linker = wasmtime.Linker(self.engine)
                linker.define_wasi()
                i32 = wasmtime.ValType.i32()
                for name, _func, params in self._host_functions(call):
                    ty = wasmtime.FuncType([i32] * params, [i32])
                    linker.define_func(NAMESPACE, name, ty, self._dispatcher(name), access_caller=True)
                self._shared_linker = linker
            return self._shared_linker

    @contextmanager
    def _bound(self, store: wasmtime.Store, call: Call) -> Iterator[None]:
        """While the call runs, host functions called from its Store act for it."""
        key = store_address(store)
        functions = {name: func for name, func, _params in self._host_functions(call)}
        with self._lock:
            self._calls_by_store[key] = (call, functions)
        try:
            yield
        finally:
            with self._lock:
                del self._calls_by_store[key]

    def _dispatcher(self, name: str) -> Callable[..., int]:
        def host_function(caller: wasmtime.Caller, *args: int) -> int:
            bound = self._calls_by_store.get(store_address(caller))
            if bound is None:
                return BAD_ARGUMENT
            call, functions = bound
            try:
                return functions[name](caller, *args)
            except Exception as exc:  # never raise into wasmtime (see module doc)
                self.log(f"faasm: {call.label}: host function {name} failed: {exc!r}")
                return BAD_ARGUMENT
            finally:
                if name not in CODE_CACHE_LOOKUPS:
                    call.host_calls += 1

        return host_function

    def _host_functions(self, call: Call) -> list[tuple[str, Callable[..., int], int]]:
        def chain_call(caller: wasmtime.Caller, entry: int, ptr: int, length: int) -> int:
            data = read_guest(caller, ptr, length)
            return BAD_ARGUMENT if data is None else self.chain(entry, data)

        def await_call(caller: wasmtime.Caller, call_id: int) -> int:
            with self._waiting(caller, call):
                return self.await_call(call_id)

        def input_size(_caller: wasmtime.Caller) -> int:
            return len(call.input)

        def read_input(caller: wasmtime.Caller, ptr: int, length: int) -> int:
            data = call.input[:max(0, length)]
            return len(data) if write_guest(caller, ptr, data) else BAD_ARGUMENT

        def write_output(caller: wasmtime.Caller, ptr: int, length: int) -> int:
            data = read_guest(caller, ptr, length)
            if data is None:
                return BAD_ARGUMENT
            call.output = data
            return 0

        def call_output_size(_caller: wasmtime.Caller, call_id: int) -> int:
            done = self.finished(call_id)
            return self._missing(call_id) if done is None else len(done.output)

        def read_call_output(caller: wasmtime.Caller, call_id: int, ptr: int, length: int) -> int:
            done = self.finished(call_id)
            if done is None:
                return self._missing(call_id)
            data = done.output[:max(0, length)]
            return len(data) if write_guest(caller, ptr, data) else BAD_ARGUMENT

        def code_cache_size(caller: wasmtime.Caller, path_ptr: int, path_length: int) -> int:
            code = self._cached_code(read_guest(caller, path_ptr, path_length))
            return NO_CACHED_CODE if code is None else len(code)

        def read_code_cache(caller: wasmtime.Caller, path_ptr: int, path_length: int, ptr: int, length: int) -> int:
            code = self._cached_code(read_guest(caller, path_ptr, path_length))
            if code is None:
                return NO_CACHED_CODE
            data = code[:max(0, length)]
            return len(data) if write_guest(caller, ptr, data) else BAD_ARGUMENT

        def write_code_cache(caller: wasmtime.Caller, path_ptr: int, path_length: int, ptr: int, length: int) -> int:
            # Only the main call, before any other host call (this one counts: so once per invocation).
            if call.call_id != 0 or call.host_calls:
                return REFUSED
            path, code = read_guest(caller, path_ptr, path_length), read_guest(caller, ptr, length)
            if path is None or code is None:
                return BAD_ARGUMENT
            with self._lock:
                self._code_cache = (path, code)
            return 0

        return [("chain_call", chain_call, 3), ("await_call", await_call, 1), ("input_size", input_size, 0),
                ("read_input", read_input, 2), ("write_output", write_output, 2),
                ("call_output_size", call_output_size, 1), ("read_call_output", read_call_output, 3),
                ("code_cache_size", code_cache_size, 2), ("read_code_cache", read_code_cache, 4),
                ("write_code_cache", write_code_cache, 4)]

    def _cached_code(self, path: bytes | None) -> bytes | None:
        """The function file's compiled code the main call offered, if it is for ``path``."""
        with self._lock:
            cached = self._code_cache
        return cached[1] if cached is not None and path is not None and cached[0] == path else None

    def _missing(self, call_id: int) -> int:
        with self._lock:
            return NOT_FINISHED if call_id in self._calls else NO_SUCH_CALL

    @contextmanager
    def _waiting(self, caller: wasmtime.Caller, call: Call) -> Iterator[None]:
        """Do not charge time blocked in await_call to the waiting call's time limit."""
        if self.limits.timeout_s is None:
            yield
            return
        remaining = max(1, call.deadline - self._ticks)
        try:
            yield
        finally:
            call.deadline = self._ticks + remaining
            set_deadline(caller, remaining)

"""Shared helpers: throwaway copies of fixture projects, run through real doit."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import wasmtime
import yaml

import pipeline
from pipeline.wasmbuild.layer import wasm_settings
from pipeline.wasmbuild.llvm import Toolchain

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


class Project:
    """A copy of a fixture project with its own build dir and cache."""

    def __init__(self, root: Path, cache: Path) -> None:
        self.root = root
        self.cache = cache
        self.count_file = root / "count"

    def env(self, **extra: str) -> dict[str, str]:
        # a developer's own remote cache never sees the fixtures
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_REMOTE_")}
        env.update(PYTHONPATH=str(REPO), PIPELINE_CACHE_DIR=str(self.cache), COUNT_FILE=str(self.count_file),
                   PIPELINE_COMPILE_CACHE="0")  # the fixtures test the engine; test_compile_cache turns it on
        env.update(extra)
        return env

    def doit(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "doit", *args], cwd=self.root, env=self.env(**env),
            capture_output=True, text=True, check=False, timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"doit {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def cli(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", *args], cwd=self.root, env=self.env(**env),
            capture_output=True, text=True, check=False, timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"pipeline {args} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def runs(self) -> list[str]:
        """Which build steps ran since the last call (each step appends its name)."""
        if not self.count_file.exists():
            return []
        lines = self.count_file.read_text().split()
        self.count_file.write_text("")
        return lines

    def recipe(self, name: str) -> Path:
        return self.root / "recipes" / f"{name}.yaml"

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.recipe(name)
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new))


def url_recipe(name: str, url: str, sha256: str, script: str, output: str) -> str:
    """A recipe fetching one pinned `url:` source and running `script` (one line) in it."""
    return (f'package:\n  name: {name}\n  version: "1.0"\nsource:\n  url: {url}\n  sha256: {sha256}\n'
            f"build:\n  script: |\n    {script}\noutputs: [{output}]\n")


def make_project(tmp_path: Path, fixture: str = "basic") -> Project:
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / fixture, root)
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    with (root / "pipeline.yaml").open("a") as config:  # the checkout's LLVM: {{ tc.clang }} is the one installed
        config.write(f"versions:\n  llvm: {json.dumps(CHECKOUT_SETTINGS.versions['llvm'])}\n")
    return Project(root, tmp_path / "cache")


def processes_of(root: Path) -> list[str]:
    """Live processes whose environment names `root`: what a run in that checkout started
    (every step gets COUNT_FILE=<root>/count). One line each: pid and command."""
    needle = str(root).encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_text()
            command = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in environ and stat[stat.rindex(")") + 2] not in "ZX":  # a zombie has ended
            found.append(f"{name} {command[:100]}")
    return found


def survivors_after(root: Path, grace: float = 5.0) -> list[str]:
    """processes_of(root) once they had `grace` seconds to end."""
    deadline = time.monotonic() + grace
    while (left := processes_of(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def recorded_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """time.sleep, for this thread, made instant: the delays asked for, in order (no clock involved)."""
    asked: list[float] = []
    real_sleep, caller = time.sleep, threading.get_ident()

    def sleep(seconds: float) -> None:
        if threading.get_ident() != caller:
            real_sleep(seconds)  # the server's threads are not what is measured
            return
        asked.append(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return asked


@dataclass(frozen=True)
class SideBySide:
    """Two doit runs in one checkout, the second started while the first held a step."""

    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    said: str  # the second run's first stderr line, while the first still held its step


def second_run_while_first_holds(project: Project, step: str, release: Path, *args: str,
                                 deadline: float = 120.0, **first_env: str) -> SideBySide:
    """Start doit; once `step` has begun (it appends its name to the count file, then waits
    for `release`), start a second doit and read its first stderr line; then release the first.
    Events only: nothing here waits a guessed time."""
    command = [sys.executable, "-m", "doit", *args]
    first = subprocess.Popen(command, cwd=project.root, env=project.env(**first_env),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = None
    said = ""
    try:
        give_up = time.monotonic() + deadline
        while step not in (project.count_file.read_text() if project.count_file.exists() else ""):
            assert time.monotonic() < give_up and first.poll() is None, f"the first run never started {step}"
            time.sleep(0.02)  # polls for the step's start: the first run holds the lock from here on
        second = subprocess.Popen(command, cwd=project.root, env=project.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        said = first_stderr_line(second)
    finally:
        release.touch()
        first_out, first_err = first.communicate(timeout=deadline)
        second_out, second_err = second.communicate(timeout=deadline) if second else ("", "")
    return SideBySide(
        subprocess.CompletedProcess(command, first.returncode, first_out, first_err),
        subprocess.CompletedProcess(command, second.returncode if second else -1, second_out, second_err),
        said)


def first_stderr_line(proc: subprocess.Popen[str], deadline: float = 60.0) -> str:
    """The first line `proc` writes to stderr ('' if it ends first, or says nothing in `deadline` s)."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stream = proc.stderr
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=deadline)
    except queue.Empty:
        return ""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


# The checkout's own toolchain (pipeline.yaml's versions.llvm): tests run the compilers builds run.
# (from the pipeline package's checkout: this file is also copied out of the repo, test_markers.py)
CHECKOUT_SETTINGS = wasm_settings(Path(pipeline.__file__).resolve().parent.parent)
TOOLCHAIN = Toolchain.derive(CHECKOUT_SETTINGS.target, CHECKOUT_SETTINGS.llvm_major, "")
CLANG = shutil.which(TOOLCHAIN.clang)
NEEDS_CLANG = f"needs {TOOLCHAIN.clang} (pipeline.yaml's toolchain packages: python -m pipeline provision)"


# ---------------------------------------------------------------- the real chain (e2e)


def checkout_env() -> dict[str, str]:
    """The environment for doit in this checkout: no remote cache, the default artifact cache."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_REMOTE_")}


def checkout_copy(tmp_path: Path) -> Path:
    """A throwaway copy of this checkout (no build/, venv or git), for e2e tests that edit its files:
    with the same artifact cache it restores the session's chain, and a killed run leaves the real
    checkout as it was."""
    copy = tmp_path / "checkout"
    shutil.copytree(REPO, copy, symlinks=True, ignore=shutil.ignore_patterns(
        "build", ".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache"))
    return copy


def doit_in(root: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 3 * 3600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "doit", *args], cwd=root, env=env or checkout_env(),
                          capture_output=True, text=True, check=False, timeout=timeout)
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    return proc


@dataclass(frozen=True)
class BuiltChain:
    """This checkout after `doit codegen invoke`: the runtime root, its machine code, the outputs."""

    build: Path
    runtime_root: Path
    codegen: Path
    cache: Path
    log: str


def chain_users_without_e2e(items: list[pytest.Item]) -> list[str]:
    """Tests that would build the real chain (they request `built_chain`, directly or through other
    fixtures) but are not marked e2e: `pytest -m "not e2e"` would build the chain for them."""
    return [item.nodeid for item in items
            if "built_chain" in getattr(item, "fixturenames", ()) and item.get_closest_marker("e2e") is None]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # before -m deselects anything: an unmarked chain user would slip into the fast loop
    if unmarked := chain_users_without_e2e(items):
        raise pytest.UsageError("these tests request built_chain but are not marked e2e: " + ", ".join(unmarked))


@pytest.fixture(scope="session")
def built_chain() -> BuiltChain:
    """The one way an e2e test gets the real chain: built (or restored, or found up to date) once per
    session, in this checkout's build/, with the artifact cache outside the checkout so a repeat run
    restores instead of building. No e2e test depends on another test file having run first."""
    from pipeline.engine.config import load_config, project_paths
    from pipeline.wasmbuild.layer import WASM_LAYER

    cache = project_paths(REPO, load_config(REPO, WASM_LAYER)).cache
    assert not cache.resolve().is_relative_to(REPO.resolve()), f"artifact cache {cache} is inside the checkout"
    proc = doit_in(REPO, "codegen", "invoke")
    assert proc.returncode == 0, f"doit codegen invoke failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    build = REPO / "build"
    chain = BuiltChain(build, build / "runtime_root" / "root", build / "codegen", cache, proc.stdout)
    assert (chain.runtime_root / "bin" / "python.wasm").is_file() and chain.codegen.is_dir()
    return chain


# A freestanding WASI program that prints MESSAGE (a -D define) and exits 0.
PRINT_MESSAGE = r"""
typedef struct { const char *buf; unsigned long len; } ciovec;
__attribute__((import_module("wasi_snapshot_preview1"), import_name("fd_write")))
int fd_write(int fd, const ciovec *iovs, unsigned long n, unsigned long *written);
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_exit")))
_Noreturn void proc_exit(int code);
void _start(void) {
  static const char msg[] = MESSAGE;
  ciovec iov = { msg, sizeof msg - 1 };
  unsigned long n;
  fd_write(1, &iov, 1, &n);
  proc_exit(0);
}
"""


def build_freestanding_wasm(source: str, out: Path, *defines: str) -> Path:
    """Compile a freestanding wasm32-wasi C program (no libc; it must define _start).

    Same flags as tests/test_wasm.py: WASI imports are declared by the program itself.
    """
    if CLANG is None:
        pytest.skip(NEEDS_CLANG)
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(
        [CLANG, "--target=wasm32-wasi", "-nostdlib", "-ffreestanding", "-O2", "-Wl,--no-entry", "-Wl,--export=_start",
         *[f"-D{d}" for d in defines], str(src), "-o", str(out)],
        check=True,
    )
    return out


# A module using the exception-handling proposal (exnref: tag, throw, try_table): a throw two
# frames down is caught. wizer-initialize keeps its catch's value (9) in a global; _start exits
# with that global plus its own catch's value (5): 14 from a snapshot, 5 from the plain module.
EXCEPTIONS_WAT = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (tag $fail (param i32))
  (memory (export "memory") 1)
  (global $from_init (mut i32) (i32.const 0))
  (func $throw (param i32) (throw $fail (local.get 0)))
  (func $deep (param i32) (call $throw (local.get 0)))
  (func $catch (param i32) (result i32)
    (block $caught (result i32)
      (try_table (catch $fail $caught) (call $deep (local.get 0)))
      (i32.const 100)))
  (func (export "wizer-initialize") (global.set $from_init (call $catch (i32.const 9))))
  (func (export "_start") (call $exit (i32.add (global.get $from_init) (call $catch (i32.const 5))))))
"""


def build_exceptions_wasm(out: Path) -> Path:
    out.write_bytes(wasmtime.wat2wasm(EXCEPTIONS_WAT))
    return out


def runtime_packages() -> list[str]:
    """The runtime's package set: link.yaml's `packages:` dependencies."""
    depends = yaml.safe_load((REPO / "recipes/link.yaml").read_text())["depends"]
    return [task.removeprefix("packages:") for task in depends if task.startswith("packages:")]


def python_wasm_with(package: str, tmp_path: Path) -> Path:
    """python.wasm as recipes/link.yaml links it (the runtime's packages, the snapshot's exports),
    plus one test-only package's extensions as built-ins (built here)."""
    proc = doit_in(REPO, f"packages:{package}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    build = REPO / "build"
    toolchain = Toolchain.read(build / "toolchain/toolchain.json")
    wasm, exports, cc = tmp_path / "python.wasm", tmp_path / "exports.o", str(build / "toolchain/bin/wasm32-wasi-cc")
    # as recipes/link.yaml links it: with the snapshot's exports
    subprocess.run([sys.executable, "-m", "pipeline.wasmbuild.exports", "--cpython", str(build / "build_cpython"),
                    "--cc", cc, "-o", str(exports), str(REPO / "recipes/snapshot/exports.c")],
                   cwd=REPO, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "pipeline.wasmbuild.link", "--cpython", str(build / "build_cpython"),
                    *(arg for name in (*runtime_packages(), package)
                      for arg in ("--package", str(build / "packages" / name))),
                    "--cc", cc, "--nm", toolchain.nm,
                    f"--ldflag={exports}", "--work", str(tmp_path / "link"), "-o", str(wasm)],
                   cwd=REPO, check=True, capture_output=True)
    return wasm


ServerT = TypeVar("ServerT", bound=socketserver.BaseServer)


@contextlib.contextmanager
def serving_in_thread(server: ServerT) -> Iterator[ServerT]:
    """Run a test's own server (on 127.0.0.1) in a thread for the block, then shut it down."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""Upload Python functions and invoke them on python.wasm, like a serverless platform.

A function is one file stored at STORE/<user>/<func>/function.py. An invocation runs
RUNTIME_ROOT/bin/python.wasm from its precompiled machine code (see pipeline.codegen) with
the runtime root preopened as "/", the function's directory as "/func" and a fresh
scratch directory as "/tmp", and argv ``python /func/function.py`` (``python -m pyfaasm.run
/func/function.py`` when the runtime has the function API, see pipeline.faasm_host: then
entry functions run and chained calls start in fresh instances of the same module).

By default every call starts from the pre-initialized snapshot (pipeline.wasmbuild.snapshot;
the ``snapshot`` task's output) when there is one for this python.wasm: a fresh instance of
the snapshot's machine code whose ``pyfaasm-run-call`` export runs the call, CPython
already initialized. ``--no-snapshot`` starts CPython from ``_start`` every call instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import wasmtime

from ..arguments import OneLineArgumentParser
from ..digests import StatDigests
from ..errors import ExitCode, PipelineError, report_error
from ..files import write_atomic
from ..paths import Paths
from ..places import codegen_dir, function_store, runtime_root_tree
from . import faasm_host, wasm
from .digests import default_memo
from .guest import GUEST_ENV, SNAPSHOT_INFO, SNAPSHOT_TASK, read_snapshot_info
from .wasm import StaleCodegen

FUNCTION_FILE = "function.py"
GUEST_FUNC_DIR = "/func"
GUEST_ARGV = ("python", f"{GUEST_FUNC_DIR}/{FUNCTION_FILE}")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_MEMORY_MIB = 512
DEFAULT_CONCURRENCY = 2

EXAMPLES = """\
examples:
  python -m pipeline.invoke upload python hello func/python/hello.py
  python -m pipeline.invoke run python hello
  python -m pipeline.invoke run python hello --input 'some stdin' --timeout 10
  python -m pipeline.invoke run --file func/python/hello.py --jit
  python -m pipeline.invoke run --file func/python/fanout.py --input 50 --max-concurrency 2
  python -m pipeline.invoke run --file func/python/slow.py --timeout 2 --memory-limit 256
  python -m pipeline.invoke run --file func/python/hello.py --no-snapshot

defaults (relative to --project, the current directory unless given):
  store build/function-store, runtime root build/runtime_root/root, codegen build/codegen,
  snapshot build/snapshot (used when it was made from this python.wasm), interpreter
  RUNTIME_ROOT/bin/python.wasm

exit status: the function's own (0, or 1 for an uncaught exception, whose traceback
is on stderr); otherwise the project's exit codes (pipeline.errors): 2 bad usage or missing
files; 3 no machine code for this python.wasm and wasmtime (run `doit codegen`, or pass
--jit), or a snapshot made from another python.wasm (run `doit codegen`, or pass
--no-snapshot); 124 time limit; 125 wasm trap.
"""


class InvokeError(PipelineError):
    """Missing function, runtime root or interpreter; bad names."""


@dataclass(frozen=True)
class Project:
    """Default locations, from the one place paths are computed (pipeline.paths)."""

    root: Path

    @property
    def paths(self) -> Paths:
        return Paths.for_project(self.root)

    @property
    def store(self) -> Path:
        return function_store(self.paths)

    @property
    def runtime_root(self) -> Path:
        return runtime_root_tree(self.paths)

    @property
    def codegen(self) -> Path:
        return codegen_dir(self.paths)

    @property
    def snapshot(self) -> Path:
        return self.paths.output_dir(SNAPSHOT_TASK)


@dataclass(frozen=True)
class Invocation:
    """One run of one function. codegen_dir None means JIT-compile python.wasm."""

    runtime_root: Path
    python_wasm: Path
    function_dir: Path
    codegen_dir: Path | None
    input_text: str | None = None
    timeout_s: float | None = None
    memory_limit_mib: int | None = DEFAULT_MEMORY_MIB
    max_concurrency: int = DEFAULT_CONCURRENCY
    output: Path | None = None  # the main call's set_output bytes; None: stdout
    snapshot_dir: Path | None = None  # the snapshot task's output; None: start CPython every call
    snapshot_required: bool = False  # False: no snapshot there (or no pyfaasm) means `_start`


class StaleSnapshot(PipelineError):
    """The snapshot was made from another python.wasm (exit 3, like missing machine code)."""

    exit_code = ExitCode.STALE_CODEGEN


def check_name(kind: str, name: str) -> str:
    if not NAME.match(name):
        raise InvokeError(f"{kind} {name!r}: use letters, digits, '_', '.', '-' (not starting with '.' or '-')")
    return name


def function_dir(store: Path, user: str, func: str) -> Path:
    return store / check_name("user", user) / check_name("function", func)


def guest_python(runtime_root: Path) -> tuple[int, int] | None:
    """The runtime's CPython version, from its stdlib folder (lib/pythonX.Y)."""
    for folder in runtime_root.glob("lib/python3.*"):
        major, _, minor = folder.name.removeprefix("python").partition(".")
        if major.isdigit() and minor.isdigit():
            return int(major), int(minor)
    return None


def check_function_file(source: Path, guest: tuple[int, int] | None = None) -> None:
    """A function must exist and compile, or it is refused before anything is stored or run.

    Compiled by the host's Python. A host older than the runtime's CPython (`guest`) may not
    know its newer syntax (3.12's `type X = ...` on a 3.11 host): then only the guest can
    judge, and a syntax error there is its traceback and exit 1, as for any exception.
    """
    if not source.is_file():
        raise InvokeError(f"{source}: no such file")
    try:
        compile(source.read_bytes(), str(source), "exec", dont_inherit=True)
    except SyntaxError as exc:
        if guest is not None and sys.version_info[:2] < guest:
            return
        host = "{}.{}".format(*sys.version_info[:2])
        raise InvokeError(f"{source}: line {exc.lineno}: not valid Python {host}: {exc.msg}") from None
    except ValueError as exc:  # null bytes
        raise InvokeError(f"{source}: not a Python source file: {exc}") from None


def upload(store: Path, user: str, func: str, source: Path, guest: tuple[int, int] | None = None) -> Path:
    """Copy source into the store as the function's function.py (atomically)."""
    check_function_file(source, guest)
    dest_dir = function_dir(store, user, func)
    write_atomic(dest_dir / FUNCTION_FILE, source.read_bytes())
    return dest_dir / FUNCTION_FILE


def _label(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def machine_code(codegen_dir: Path, engine: wasmtime.Engine, wasm_path: Path, label: str,
                 digests: StatDigests) -> Path:
    """wasm.find_artifact, with the wasm's digest from the memo (StaleCodegen if codegen has not made it)."""
    fingerprint = wasm.compat_fingerprint(engine)  # once, for the key and the target directory
    digest = digests.digest(wasm_path.resolve())
    target_dir = codegen_dir / str(fingerprint["target"])  # wasm.target_dir's layout
    artifact = target_dir / f"{wasm.key_for(fingerprint, digest)}{wasm.ARTIFACT_SUFFIX}"
    if not artifact.is_file():
        raise StaleCodegen(
            f"no machine code for {label} (sha256 {digest[:16]}) with wasmtime {fingerprint['wasmtime']} / "
            f"{fingerprint['target']} in {codegen_dir}: run `doit codegen`"
        )
    return artifact


def load_module(inv: Invocation, engine: wasmtime.Engine, wasm_path: Path, label: str,
                digests: StatDigests | None = None) -> wasmtime.Module:
    """The module for wasm_path: from codegen's artifact (StaleCodegen if none), or JIT."""
    if inv.codegen_dir is None:
        return wasm.load_module(engine, wasm_path)
    artifact = machine_code(inv.codegen_dir, engine, wasm_path, label, digests or default_memo())
    try:
        return wasm.load_module(engine, wasm_path, artifact)
    except wasmtime.WasmtimeError as exc:
        raise StaleCodegen(f"{artifact}: cannot load ({exc}): run `doit codegen`") from None


def load_python(inv: Invocation, engine: wasmtime.Engine, digests: StatDigests | None = None) -> wasmtime.Module:
    """python.wasm's module (no snapshot)."""
    return load_module(inv, engine, inv.python_wasm, _label(inv.python_wasm, inv.runtime_root), digests)


def snapshot_for(inv: Invocation, digests: StatDigests | None = None) -> tuple[Path, str] | None:
    """The snapshot wasm to start calls from and its per-call export, or None for `_start`."""
    if inv.snapshot_dir is None or not has_pyfaasm(inv.runtime_root):
        if inv.snapshot_required:
            raise InvokeError(f"runtime root {inv.runtime_root}: no pyfaasm in it, so no snapshot can run calls")
        return None
    if not (inv.snapshot_dir / SNAPSHOT_INFO).is_file():
        if inv.snapshot_required:
            raise InvokeError(f"--snapshot {inv.snapshot_dir}: no {SNAPSHOT_INFO} (run `doit snapshot`)")
        return None
    ref = read_snapshot_info(inv.snapshot_dir)
    if ref.python_wasm_sha256 != (digests or default_memo()).digest(inv.python_wasm.resolve()):
        raise StaleSnapshot(f"the snapshot in {inv.snapshot_dir} was made from another python.wasm than "
                            f"{_label(inv.python_wasm, inv.runtime_root)}: run `doit codegen` (or pass --no-snapshot)")
    return ref.wasm, ref.run_export


def load_runtime(inv: Invocation, engine: wasmtime.Engine) -> tuple[wasmtime.Module, str]:
    """The module every call instantiates and the export each call runs.

    The wasm files' digests (python.wasm against snapshot.json, the loaded wasm for its machine
    code) come from the stat-keyed memo (pipeline.runtime.digests), hashed only when they changed.
    """
    digests = default_memo()
    try:
        snapshot = snapshot_for(inv, digests)
        if snapshot is None:
            return load_python(inv, engine, digests), faasm_host.START_EXPORT
        wasm_path, export = snapshot
        return load_module(inv, engine, wasm_path, f"snapshot {wasm_path.name}", digests), export
    finally:
        digests.flush()


def _check_inputs(inv: Invocation) -> None:
    if not inv.runtime_root.is_dir():
        raise InvokeError(f"runtime root {inv.runtime_root}: not a directory (build it first)")
    if not inv.python_wasm.is_file():
        raise InvokeError(f"interpreter {inv.python_wasm}: no such file")
    if not (inv.function_dir / FUNCTION_FILE).is_file():
        raise InvokeError(f"{inv.function_dir / FUNCTION_FILE}: no such function (upload it first)")


def has_pyfaasm(runtime_root: Path) -> bool:
    return any(runtime_root.glob("lib/python3.*/site-packages/pyfaasm/"))


def guest_argv(runtime_root: Path) -> tuple[str, ...]:
    """`python -m pyfaasm.run FILE` (entry functions, chaining) if the runtime has pyfaasm."""
    if has_pyfaasm(runtime_root):
        return ("python", *faasm_host.RUNNER_ARGV, GUEST_ARGV[1])
    return GUEST_ARGV


def guest_for(inv: Invocation, export: str = faasm_host.START_EXPORT) -> faasm_host.Guest:
    """What every call of this invocation runs: argv, environment, read-only mounts, export.

    The runtime root is always the first preopen ("/", fd 3): a snapshot was initialized
    against it there, and its per-call export checks that it still is.
    """
    return faasm_host.Guest(
        argv=guest_argv(inv.runtime_root),
        env=dict(GUEST_ENV),
        preopens=((inv.runtime_root, "/"), (inv.function_dir, GUEST_FUNC_DIR)),
        read_only=frozenset({"/", GUEST_FUNC_DIR}),
        export=export,
    )


def limits_for(inv: Invocation) -> faasm_host.Limits:
    return faasm_host.Limits(
        timeout_s=inv.timeout_s,
        memory_bytes=None if inv.memory_limit_mib is None else inv.memory_limit_mib * wasm.MIB,
        max_concurrency=inv.max_concurrency,
    )


def emit(stream: TextIO, data: bytes) -> None:
    stream.flush()
    if hasattr(stream, "buffer"):
        stream.buffer.write(data)
    else:
        stream.write(data.decode(errors="replace"))
    stream.flush()


def deliver(inv: Invocation, main: faasm_host.Call) -> None:
    """The main call's stdout, stderr and output; its limit or trap as an exception."""
    emit(sys.stdout, main.stdout)
    emit(sys.stderr, main.stderr)
    if inv.output is not None:
        inv.output.write_bytes(main.output)
    elif main.output:
        emit(sys.stdout, main.output if main.output.endswith(b"\n") else main.output + b"\n")
    if main.failure == "timeout":
        raise wasm.TimeLimitExceeded(main.message)
    if main.failure == "trap":
        raise wasm.WasmTrap(main.message)
    if main.failure == "memory":
        print(f"error: {main.message}", file=sys.stderr)


def invoke(inv: Invocation) -> int:
    """Run the function (its main call and any chained calls); returns the main call's exit
    status. Raises StaleCodegen, WasmTrap (TimeLimitExceeded)."""
    _check_inputs(inv)
    engine = wasm.make_engine()
    module, export = load_runtime(inv, engine)
    with tempfile.TemporaryDirectory(prefix="invoke-") as scratch:
        stdin = None
        if inv.input_text is not None:
            stdin = Path(scratch) / "stdin"  # outside every preopen
            stdin.write_text(inv.input_text)
        data = (inv.input_text or "").encode()
        with faasm_host.FaasmHost(engine, module, guest_for(inv, export), limits_for(inv), Path(scratch)) as host:
            main = host.run_main(data, stdin)
    deliver(inv, main)
    return main.code if main.code is not None else ExitCode.TRAP


def invoke_file(inv: Invocation, source: Path) -> int:
    """Run a file directly, from a throwaway function directory (no upload)."""
    check_function_file(source, guest_python(inv.runtime_root))
    with tempfile.TemporaryDirectory(prefix="invoke-func-") as func_dir:
        shutil.copyfile(source, Path(func_dir) / FUNCTION_FILE)
        return invoke(dataclasses.replace(inv, function_dir=Path(func_dir)))


def _parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="python -m pipeline.invoke", description=__doc__.split("\n")[0],
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upload", help="store a function file", epilog=EXAMPLES,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("user")
    up.add_argument("func")
    up.add_argument("file", type=Path, metavar="FILE.py")
    run = sub.add_parser("run", help="invoke a stored function (or --file)", epilog=EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("user", nargs="?")
    run.add_argument("func", nargs="?")
    run.add_argument("--file", type=Path, metavar="FILE.py", help="run this file directly instead of USER FUNC")
    run.add_argument("--root", type=Path, metavar="RUNTIME_ROOT", help="preopened as / (default build/runtime_root)")
    run.add_argument("--python-wasm", type=Path, metavar="FILE", help="default RUNTIME_ROOT/bin/python.wasm")
    run.add_argument("--codegen", type=Path, metavar="DIR", help="pipeline.codegen output (default build/codegen)")
    run.add_argument("--jit", action="store_true", help="compile python.wasm now instead of using --codegen")
    run.add_argument("--snapshot", type=Path, metavar="DIR",
                     help="start calls from the snapshot in DIR (default: build/snapshot, if from this python.wasm)")
    run.add_argument("--no-snapshot", action="store_true", help="start CPython from _start in every call")
    run.add_argument("--input", metavar="TEXT", help="the function's stdin (default: empty)")
    run.add_argument("--timeout", type=float, metavar="S",
                     help="time limit per call in seconds (time blocked in await_call not counted)")
    run.add_argument("--memory-limit", type=int, default=DEFAULT_MEMORY_MIB, metavar="MIB",
                     help=f"linear memory limit per call (default {DEFAULT_MEMORY_MIB})")
    run.add_argument("--max-concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                     help=f"chained calls running at once (default {DEFAULT_CONCURRENCY})")
    run.add_argument("--output", type=Path, metavar="FILE",
                     help="write the function's output (set_output) here (default: stdout, after its prints)")
    for p in (up, run):
        p.add_argument("--store", type=Path, metavar="DIR", help="function store (default build/function-store)")
        p.add_argument("--project", type=Path, default=Path.cwd(), metavar="DIR",
                       help="project root the defaults are relative to (default: cwd)")
    return parser


def _run_invocation(args: argparse.Namespace, project: Project) -> Invocation:
    if args.file is not None and (args.user or args.func):
        raise InvokeError("give either USER FUNC or --file, not both")
    if args.file is None and not (args.user and args.func):
        raise InvokeError("run needs USER FUNC (or --file FILE.py)")
    if args.max_concurrency < 1:
        raise InvokeError("--max-concurrency must be at least 1")
    if args.snapshot and args.no_snapshot:
        raise InvokeError("give either --snapshot or --no-snapshot, not both")
    if args.timeout is not None and not 0 < args.timeout < float("inf"):
        raise InvokeError(f"--timeout {args.timeout:g}: must be a number of seconds above 0")
    if args.memory_limit < 1:
        raise InvokeError(f"--memory-limit {args.memory_limit}: must be at least 1 MiB")
    root = args.root or project.runtime_root
    func_dir = Path() if args.file else function_dir(args.store or project.store, args.user, args.func)
    return Invocation(
        runtime_root=root,
        python_wasm=args.python_wasm or root / "bin" / "python.wasm",
        function_dir=func_dir,
        codegen_dir=None if args.jit else (args.codegen or project.codegen),
        input_text=args.input,
        timeout_s=args.timeout,
        memory_limit_mib=args.memory_limit,
        max_concurrency=args.max_concurrency,
        output=args.output,
        snapshot_dir=None if args.no_snapshot else (args.snapshot or project.snapshot),
        snapshot_required=args.snapshot is not None,
    )


def cmd_run(args: argparse.Namespace, project: Project) -> int:
    inv = _run_invocation(args, project)
    try:
        return invoke_file(inv, args.file) if args.file else invoke(inv)
    except StaleCodegen as exc:
        return report_error(StaleCodegen(f"{exc} (or pass --jit)"))
    except wasmtime.WasmtimeError as exc:
        return report_error(wasm.WasmTrap(f"cannot load {inv.python_wasm}: {exc}"))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    project = Project(args.project)
    try:
        if args.command == "upload":
            dest = upload(args.store or project.store, args.user, args.func, args.file,
                          guest_python(project.runtime_root))
            print(f"uploaded {args.user}/{args.func}: {dest}")
            return 0
        return cmd_run(args, project)
    except PipelineError as exc:  # WasmTrap and TimeLimitExceeded carry their own exit codes
        return report_error(exc)


if __name__ == "__main__":
    raise SystemExit(main())

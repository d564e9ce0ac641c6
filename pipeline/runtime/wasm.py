"""Compile, precompile (AOT) and run WASI command modules with wasmtime-py 50.

Engines made here always pin the target triple (host triple by default), which turns off
wasmtime's inference of host CPU features: artifacts use the target's baseline ISA, so
they should load on any host with that triple. Epoch interruption is always compiled
in, because an artifact only loads into an engine with the same setting (verified).
Cross-architecture targets are rejected up front: the wasmtime-py 50 wheel contains only
the host's Cranelift backend, and ``Engine(config)`` for another architecture aborts the
whole process ("Support for this target is disabled"). ``pulley32``/``pulley64`` work.
"""

from __future__ import annotations

import argparse
import functools
import platform
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import wasmtime

from ..errors import ExitCode, PipelineError, report_error
from ..files import canonical_json, sha256_file, sha256_text, write_atomic
from ..paths import default_cache_dir

MIB = 1 << 20
WASMTIME_DIST = "wasmtime"  # wasmtime-py's distribution name
MAX_WASM_STACK = 16 * MIB
ASYNC_STACK_SIZE = 32 * MIB
HOST_THREAD_STACK = 256 * MIB
NO_DEADLINE = 1 << 62
# python.wasm imports the function API's host calls from here (pyfaasm._host);
# pipeline.faasm_host defines them, other runners get stubs that trap if called.
FAASM_NAMESPACE = "faasm"


class WasmTrap(PipelineError):
    """The guest trapped (or failed to link/instantiate) instead of exiting."""

    exit_code = ExitCode.TRAP


class TimeLimitExceeded(WasmTrap):
    """The guest ran past ``WasiRun.timeout_s``."""

    exit_code = ExitCode.TIME_LIMIT


@dataclass(frozen=True)
class EngineSettings:
    """Everything make_engine sets; all of it goes into compat_fingerprint."""

    target: str
    max_wasm_stack: int = MAX_WASM_STACK
    async_stack_size: int = ASYNC_STACK_SIZE
    consume_fuel: bool = False
    epoch_interruption: bool = True
    cpu_features: str = "baseline"  # target pinned: no native CPU feature inference
    # wasm SIMD (simd128): numpy and OpenBLAS are built with -msimd128 (numpy-blas: openblas).
    # Relaxed SIMD is not emitted by our builds; off, no result can depend on the host CPU.
    simd: bool = True
    relaxed_simd: bool = False
    # The exception-handling proposal (exnref): C++ exceptions and setjmp/longjmp in the
    # guest. wasmtime turns it on by default since 47; set here so every key records it.
    exceptions: bool = True


class WasmEngine(wasmtime.Engine):
    """A wasmtime.Engine that remembers the settings it was built with."""

    def __init__(self, settings: EngineSettings) -> None:
        config = wasmtime.Config()
        # async_stack_size must be >= max_wasm_stack or wasmtime aborts the process;
        # wasmtime-py 50 has no public setter for it.
        wasmtime._bindings.wasmtime_config_async_stack_size_set(
            config.ptr(), settings.async_stack_size
        )
        config.max_wasm_stack = settings.max_wasm_stack
        config.epoch_interruption = settings.epoch_interruption
        config.consume_fuel = settings.consume_fuel
        config.wasm_simd = settings.simd
        config.wasm_relaxed_simd = settings.relaxed_simd
        config.wasm_exceptions = settings.exceptions
        config.target = settings.target
        super().__init__(config)
        self.settings = settings


@dataclass(frozen=True)
class WasiRun:
    """One execution of a WASI command. stdout/stderr None means inherit the host's."""

    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # (host directory, guest path) pairs
    preopens: list[tuple[str | Path, str]] = field(default_factory=list)
    # Guest paths mounted read-only (the runtime root, the function code).
    read_only: frozenset[str] = frozenset()
    stdin: Path | None = None
    stdout: Path | None = None
    stderr: Path | None = None
    max_wasm_stack: int = MAX_WASM_STACK  # must equal the engine's (see make_engine)
    fuel: int | None = None  # needs make_engine(fuel=True)
    timeout_s: float | None = None


def host_triple() -> str:
    """The host's target triple as wasmtime spells it, e.g. x86_64-unknown-linux-gnu."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64", "riscv64": "riscv64gc"}.get(
        machine, machine
    )
    system = platform.system()
    if system == "Linux":
        libc = "gnu" if platform.libc_ver()[0] == "glibc" else "musl"
        return f"{arch}-unknown-linux-{libc}"
    oses = {"Darwin": "apple-darwin", "Windows": "pc-windows-msvc"}
    if system not in oses:
        raise RuntimeError(f"unknown host system {system!r}")
    return f"{arch}-{oses[system]}"


def can_compile_for(target: str) -> bool:
    """Whether this wasmtime-py build has a code generator for ``target``."""
    arch = target.split("-")[0]
    return arch.startswith("pulley") or arch == host_triple().split("-")[0]


def make_engine(
    target: str | None = None,
    *,
    for_run: bool = True,
    fuel: bool = False,
    max_wasm_stack: int = MAX_WASM_STACK,
) -> WasmEngine:
    """Build an engine for ``target`` (host triple when None).

    for_run=True means the engine will execute code, so the target must be the host (or
    pulley). Compile and run engines must agree on ``fuel`` for artifacts to load.
    """
    host = host_triple()
    resolved = target or host
    arch = resolved.split("-")[0]
    if not arch.startswith("pulley"):
        if not can_compile_for(resolved):
            raise ValueError(
                f"target {resolved!r}: wasmtime-py {wasmtime_version()} has no "
                f"code generator for it (only {host.split('-')[0]} and pulley)"
            )
        if for_run and resolved != host:
            raise ValueError(f"target {resolved!r} cannot run on this host ({host})")
    return WasmEngine(
        EngineSettings(
            target=resolved,
            max_wasm_stack=max_wasm_stack,
            async_stack_size=max(ASYNC_STACK_SIZE, 2 * max_wasm_stack),
            consume_fuel=fuel,
        )
    )


@functools.cache
def wasmtime_version() -> str:
    """The installed wasmtime-py version (wasmtime has no __version__): from the name of its
    dist-info directory beside the package, as installers write it; importlib.metadata (about
    30 ms of an invocation's start-up: its import and a scan of sys.path) only without one."""
    found = list(Path(wasmtime.__file__).parent.parent.glob(f"{WASMTIME_DIST}-*.dist-info"))
    if len(found) == 1:
        return found[0].name.removeprefix(f"{WASMTIME_DIST}-").removesuffix(".dist-info")
    import importlib.metadata

    return importlib.metadata.version(WASMTIME_DIST)


def compat_fingerprint(source: wasmtime.Engine | EngineSettings) -> dict[str, object]:
    """What must match for a precompiled artifact to load; use it in cache keys."""
    settings = source.settings if isinstance(source, WasmEngine) else source
    if not isinstance(settings, EngineSettings):
        raise TypeError("settings of an engine not built by make_engine are unknown")
    return {"wasmtime": wasmtime_version(), **asdict(settings)}


def compile_module(engine: wasmtime.Engine, wasm_path: Path) -> bytes:
    """Compile ``wasm_path`` ahead of time; returns the serialized machine code."""
    return bytes(wasmtime.Module.from_file(engine, wasm_path).serialize())


def key_for(fingerprint: dict[str, object], wasm_sha256: str) -> str:
    return sha256_text(canonical_json({"wasm_sha256": wasm_sha256, **fingerprint}))


def artifact_key(engine: wasmtime.Engine, wasm_path: Path) -> str:
    """The key of machine code for ``wasm_path`` from this engine: content + compatibility."""
    return key_for(compat_fingerprint(engine), sha256_file(wasm_path))


def load_module(
    engine: wasmtime.Engine, wasm_path: Path, precompiled: Path | None = None, cache_dir: Path | None = None
) -> wasmtime.Module:
    """Load ``precompiled`` if given; else compile, reusing machine code kept in ``cache_dir``.

    The cache file is named by artifact_key, so it can never be stale: a changed
    wasm or engine setting simply names another file.
    """
    if precompiled is not None:
        return wasmtime.Module.deserialize_file(engine, str(precompiled))
    if cache_dir is None:
        return wasmtime.Module.from_file(engine, wasm_path)
    cached = cache_dir / f"{artifact_key(engine, wasm_path)}.cwasm"
    if cached.exists():
        try:
            return wasmtime.Module.deserialize_file(engine, str(cached))
        except wasmtime.WasmtimeError:
            cached.unlink(missing_ok=True)
    module = wasmtime.Module.from_file(engine, wasm_path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(cached, bytes(module.serialize()))
    return module


ARTIFACT_SUFFIX = ".cwasm"


class StaleCodegen(PipelineError):
    """No machine code matches this wasm file and engine."""

    exit_code = ExitCode.STALE_CODEGEN


def target_dir(codegen_dir: Path, engine: wasmtime.Engine) -> Path:
    return codegen_dir / str(compat_fingerprint(engine)["target"])


def find_artifact(
    codegen_dir: Path, engine: wasmtime.Engine, wasm_path: Path, label: str | None = None
) -> Path:
    """The .cwasm for wasm_path and engine; StaleCodegen if codegen has not made it.

    ``label`` names the wasm in the error (default: wasm_path as given).
    """
    fingerprint = compat_fingerprint(engine)
    digest = sha256_file(wasm_path)
    artifact = target_dir(codegen_dir, engine) / f"{key_for(fingerprint, digest)}{ARTIFACT_SUFFIX}"
    if not artifact.is_file():
        raise StaleCodegen(
            f"no machine code for {label or wasm_path} (sha256 {digest[:16]}) with "
            f"wasmtime {fingerprint['wasmtime']} / {fingerprint['target']} in {codegen_dir}: "
            "run `doit codegen`"
        )
    return artifact


def default_module_cache(cache_dir: Path | None = None) -> Path:
    """Machine code for `run` lives beside the artifact cache (outside the checkout).

    Callers that know the project's configured cache pass it; the default is the one
    `pipeline.paths` computes for everyone.
    """
    return (cache_dir or default_cache_dir()) / "wasm-modules"


def wasi_config(run: WasiRun) -> wasmtime.WasiConfig:
    wasi = wasmtime.WasiConfig()
    wasi.argv = run.argv
    wasi.env = list(run.env.items())
    for host, guest in run.preopens:
        wasi.preopen_dir(str(host), guest, fs_mutable=guest not in run.read_only)
    if run.stdin is not None:
        wasi.stdin_file = run.stdin
    for path, to_file, inherit in (
        (run.stdout, "stdout_file", wasi.inherit_stdout),
        (run.stderr, "stderr_file", wasi.inherit_stderr),
    ):
        if path is None:
            inherit()
        else:
            setattr(wasi, to_file, str(path))
    return wasi


def _no_host(name: str) -> Callable[..., None]:
    def trap(*_args: object) -> None:
        raise WasmTrap(f"no faasm host: {FAASM_NAMESPACE}.{name} needs `python -m pipeline.invoke`")

    return trap


def define_missing_host(linker: wasmtime.Linker, module: wasmtime.Module) -> None:
    """Stubs for the module's "faasm" imports: importing pyfaasm works, calling it traps."""
    for imp in module.imports:
        if imp.module == FAASM_NAMESPACE and isinstance(imp.type, wasmtime.FuncType) and imp.name:
            linker.define_func(imp.module, imp.name, imp.type, _no_host(imp.name))


@dataclass(frozen=True)
class GuestExit:
    """How a guest ended: its exit code, and the fuel it used (None when fuel was not metered)."""

    code: int
    fuel_used: int | None = None


def _execute(module: wasmtime.Module, engine: wasmtime.Engine, run: WasiRun) -> GuestExit:
    store = wasmtime.Store(engine)
    store.set_wasi(wasi_config(run))
    if run.fuel is not None:
        store.set_fuel(run.fuel)
    store.set_epoch_deadline(1 if run.timeout_s is not None else NO_DEADLINE)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    define_missing_host(linker, module)
    code = run_export(linker, store, module, "_start", run.timeout_s, run.fuel)
    return GuestExit(code, None if run.fuel is None else run.fuel - store.get_fuel())


class GuestError(WasmTrap):
    """The module could not be linked or instantiated, or a host limit refused it (not a trap)."""


def run_export(
    linker: wasmtime.Linker, store: wasmtime.Store, module: wasmtime.Module, export: str,
    timeout_s: float | None = None, fuel: int | None = None,
) -> int:
    """Instantiate `module` and call `export`: the one way every runner starts a guest.

    The exit code: proc_exit's, or the int the export returns, else 0. A trap raises
    TimeLimitExceeded (the epoch deadline, when a time limit is set), WasmTrap (fuel
    exhausted, any other trap) or GuestError (linking, instantiation, resource limits).
    """
    try:
        instance = linker.instantiate(store, module)
        start = instance.exports(store).get(export)
        if not isinstance(start, wasmtime.Func):
            raise GuestError(f"module does not export a {export} function")
        returned = start(store)
    except wasmtime.ExitTrap as exc:
        return exc.code
    except wasmtime.Trap as exc:
        if exc.trap_code == wasmtime.TrapCode.INTERRUPT and timeout_s is not None:
            raise TimeLimitExceeded(f"time limit exceeded: guest ran longer than {timeout_s} s") from None
        if exc.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
            raise WasmTrap(f"fuel exhausted: guest used more than {fuel} units") from None
        raise WasmTrap(f"wasm trap: {exc}") from None
    except wasmtime.WasmtimeError as exc:
        raise GuestError(f"wasm error: {exc}") from None
    return returned if isinstance(returned, int) else 0


def start_guest_thread(target: Callable[[], None], name: str, stack: int = HOST_THREAD_STACK) -> threading.Thread:
    """A daemon thread with the host stack a wasm guest needs (deep recursion; FIELD-NOTES: stack)."""
    previous = threading.stack_size(stack)
    try:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
    finally:
        threading.stack_size(previous)
    return thread


def run_wasi(module: wasmtime.Module, engine: wasmtime.Engine, run: WasiRun) -> int:
    """Run ``_start`` on a thread with a 256 MiB host stack; return the exit code.

    Raises TimeLimitExceeded on timeout and WasmTrap on any other trap. A timeout
    bumps the engine's epoch, so concurrent timed runs should not share one engine.
    """
    return run_wasi_metered(module, engine, run).code


def run_wasi_metered(module: wasmtime.Module, engine: wasmtime.Engine, run: WasiRun) -> GuestExit:
    """run_wasi, also telling the fuel the guest used (with ``run.fuel`` set): a count of
    executed wasm operators, the same on every run of the same module and inputs."""
    settings = getattr(engine, "settings", None)
    if isinstance(settings, EngineSettings):
        if settings.max_wasm_stack != run.max_wasm_stack:
            raise ValueError(
                f"engine has max_wasm_stack={settings.max_wasm_stack}, run wants "
                f"{run.max_wasm_stack}: use make_engine(max_wasm_stack=...)"
            )
        if run.fuel is not None and not settings.consume_fuel:
            raise ValueError("WasiRun.fuel needs an engine from make_engine(fuel=True)")
    outcome: list[GuestExit | BaseException] = []

    def target() -> None:
        try:
            outcome.append(_execute(module, engine, run))
        except BaseException as exc:
            outcome.append(exc)

    worker = start_guest_thread(target, "wasi-guest", max(HOST_THREAD_STACK, 4 * run.max_wasm_stack))
    timer = None
    if run.timeout_s is not None:
        timer = threading.Timer(run.timeout_s, engine.increment_epoch)
        timer.start()
    try:
        worker.join()
    finally:
        if timer is not None:
            timer.cancel()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.runtime.wasm", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a WASI command module")
    run.add_argument(
        "--dir",
        action="append",
        default=[],
        metavar="HOST::GUEST",
        help="preopen a host directory (guest path defaults to HOST)",
    )
    run.add_argument("--env", action="append", default=[], metavar="K=V")
    run.add_argument(
        "--precompiled", type=Path, metavar="FILE", help="artifact from 'compile'"
    )
    run.add_argument(
        "--no-cache", action="store_true",
        help="compile every time (default: reuse machine code cached by content + engine settings)",
    )
    run.add_argument(
        "--timeout", type=float, metavar="S", help="wall-clock limit in seconds"
    )
    run.add_argument("--fuel", type=int, metavar="N", help="instruction fuel limit")
    run.add_argument("wasm", type=Path, metavar="FILE.wasm")
    run.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="ARGS", help="guest arguments"
    )
    comp = sub.add_parser("compile", help="precompile a module to machine code")
    comp.add_argument(
        "--target", metavar="TRIPLE", help="target triple (default: host)"
    )
    comp.add_argument("wasm", type=Path, metavar="FILE.wasm")
    comp.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.cwasm")
    return parser


def preopen_spec(spec: str) -> tuple[str, str]:
    """`--dir HOST::GUEST` -> (HOST, GUEST); `--dir HOST` mounts HOST at the same path."""
    host, _, guest = spec.partition("::")
    return host, guest or host


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``run`` returns the guest exit code (124 timeout, 125 trap)."""
    args = _parser().parse_args(argv)
    if args.command == "compile":
        try:
            code = compile_module(make_engine(args.target, for_run=False), args.wasm)
        except (ValueError, wasmtime.WasmtimeError) as exc:
            return report_error(exc, ExitCode.BAD_INPUT)
        write_atomic(args.output, code)
        return ExitCode.OK
    if not args.wasm.is_file():
        return report_error(FileNotFoundError(f"{args.wasm}: no such wasm file"), ExitCode.BAD_INPUT)
    preopens = [preopen_spec(spec) for spec in args.dir]  # HOST::GUEST, or HOST (mounted as itself)
    for spec, (host, _) in zip(args.dir, preopens, strict=True):
        if not Path(host).is_dir():
            return report_error(NotADirectoryError(f"--dir {spec}: {host} is not a directory"), ExitCode.BAD_INPUT)
    run = WasiRun(
        argv=[args.wasm.name, *args.args],
        env=dict(item.partition("=")[::2] for item in args.env),
        preopens=list(preopens),
        fuel=args.fuel,
        timeout_s=args.timeout,
    )
    engine = make_engine(fuel=args.fuel is not None)
    try:
        cache = None if args.no_cache else default_module_cache()
        module = load_module(engine, args.wasm, args.precompiled, cache)
    except wasmtime.WasmtimeError as exc:
        return report_error(WasmTrap(f"cannot load {args.precompiled or args.wasm}: {exc}"))
    try:
        return run_wasi(module, engine, run)
    except WasmTrap as exc:
        return report_error(exc)


if __name__ == "__main__":
    raise SystemExit(main())

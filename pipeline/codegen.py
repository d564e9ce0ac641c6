"""Ahead-of-time machine code for every .wasm of a runtime root, keyed so it is never stale.

An artifact's key is the sha256 of canonical JSON over the wasm file's sha256 and the
engine's compatibility fingerprint (wasmtime version, target, stack sizes, fuel, epoch
interruption, CPU features). A loader computes the same key from the wasm it is about to
run and its own engine: a changed wasm, wasmtime upgrade or engine setting simply finds
no artifact (StaleCodegen) instead of loading the wrong machine code.

Layout: CODEGEN_DIR/<target>/<key>.cwasm and CODEGEN_DIR/<target>/index.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from . import wasm
from .errors import PipelineError
from .hashing import sha256_file

INDEX = "index.json"
SUFFIX = ".cwasm"


class StaleCodegen(PipelineError):
    """No machine code matches this wasm file and engine."""


@dataclass
class CodegenResult:
    """What one codegen run did, per wasm path relative to the root."""

    compiled: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    index: dict[str, dict[str, object]] = field(default_factory=dict)


def artifact_key(engine: wasmtime.Engine, wasm_path: Path) -> str:
    """The key of the machine code for wasm_path compiled by (or for) this engine."""
    return wasm.artifact_key(engine, wasm_path)


def target_dir(codegen_dir: Path, engine: wasmtime.Engine) -> Path:
    return codegen_dir / str(wasm.compat_fingerprint(engine)["target"])


def find_artifact(
    codegen_dir: Path, engine: wasmtime.Engine, wasm_path: Path, label: str | None = None
) -> Path:
    """The .cwasm for wasm_path and engine; StaleCodegen if codegen has not made it.

    ``label`` names the wasm in the error (default: wasm_path as given).
    """
    fingerprint = wasm.compat_fingerprint(engine)
    digest = sha256_file(wasm_path)
    artifact = target_dir(codegen_dir, engine) / f"{wasm.key_for(fingerprint, digest)}{SUFFIX}"
    if not artifact.is_file():
        raise StaleCodegen(
            f"no machine code for {label or wasm_path} (sha256 {digest[:16]}) with "
            f"wasmtime {fingerprint['wasmtime']} / {fingerprint['target']} in {codegen_dir}: "
            "run `doit codegen`"
        )
    return artifact


def wasm_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every *.wasm file under root, sorted."""
    found = [p for p in root.rglob("*.wasm") if p.is_file()]
    return sorted((p.relative_to(root).as_posix(), p) for p in found)


def _write_atomic(dest: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _compile_one(engine: wasmtime.Engine, rel: str, path: Path, dest: Path) -> None:
    try:
        code = wasm.compile_module(engine, path)
    except wasmtime.WasmtimeError as exc:
        raise PipelineError(f"{rel}: cannot compile: {exc}") from None
    _write_atomic(dest, code)


def find_reusable(name: str, places: list[Path]) -> Path | None:
    """Machine code with this content key made earlier (the key makes reuse safe)."""
    return next((place / name for place in places if (place / name).is_file()), None)


def generate(root: Path, codegen_dir: Path, engine: wasmtime.Engine, reuse: list[Path] | None = None) -> CodegenResult:
    """Compile every .wasm under root that has no artifact yet; rewrite the index.

    `reuse`: directories of earlier artifacts (a previous codegen output's target
    dir, the runner's module cache) to copy from instead of compiling.
    """
    files = wasm_files(root)
    if not files:
        raise PipelineError(f"--root {root}: no .wasm files under it")
    fingerprint = wasm.compat_fingerprint(engine)
    out = target_dir(codegen_dir, engine)
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
            shutil.copyfile(earlier, artifact)
            result.reused.append(rel)
        else:
            _compile_one(engine, rel, path, artifact)
            result.compiled.append(rel)
        result.index[rel] = {
            "key": key, "wasm_sha256": digest, "artifact": artifact.name, "fingerprint": fingerprint,
        }
    _write_atomic(out / INDEX, (json.dumps(result.index, indent=1, sort_keys=True) + "\n").encode())
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.codegen",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Compiling for another architecture needs a wasmtime build with that Cranelift\n"
            "backend; the wasmtime-py wheel has only the host's, so such --target values are\n"
            "refused. pulley64 (wasmtime's portable interpreter) works as a portable target.\n\n"
            "example:\n  \"$PYTHON\" -m pipeline.codegen --root build/runtime_root --out build/codegen"
        ),
    )
    parser.add_argument("--root", type=Path, required=True, metavar="DIR", help="runtime root to scan for *.wasm")
    parser.add_argument("--out", type=Path, required=True, metavar="CODEGEN_DIR")
    parser.add_argument("--target", metavar="TRIPLE", help="target triple (default: host); e.g. pulley64")
    parser.add_argument("--reuse", type=Path, action="append", default=[], metavar="CODEGEN_DIR",
                        help="an earlier codegen output whose matching artifacts are copied, not recompiled")
    return parser


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
        engine = make_codegen_engine(args.target)
        places = [target_dir(d, engine) for d in args.reuse] + [wasm.default_module_cache()]
        result = generate(args.root, args.out, engine, places)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"codegen: {len(result.compiled)} compiled, {len(result.reused)} up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

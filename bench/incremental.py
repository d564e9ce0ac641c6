"""What a change costs to rebuild, beside a cold build of the same commit (prints figures; not a test).

    python bench/incremental.py                 # cold with the compile cache, then each change
    python bench/incremental.py --cold-off      # also a cold build with the compile cache off
    python bench/incremental.py --only files.py # one change
    python bench/incremental.py --cold-off --off-first --no-changes
                                                # the cold pair alone, the uncached build first

Works in a copy of this checkout (no build/) with an empty artifact cache and an empty compile
cache (sources copied in: downloads are not measured). Each change is one code line added to a
file, then the target task is built; the file is put back and the copy restored from the
artifact cache before the next change. After each rebuild every output file of the target's
closure is compared with the cold build's: a compile cache hit must give the same bytes. Not
compared: what recipes declare `unreproducible:` (the snapshot's heap bytes); codegen's index.json
lists the snapshot's digest, so it differs with it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from remote import seed_sources  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Change:
    name: str
    file: str  # relative to the checkout
    line: bytes  # a code line (appended), or a patch's text before its first `---` (prepended)
    target: str
    goal: str


CHANGES = (
    Change("files.py", "pipeline/files.py", b"\nBENCH_EDIT = 1\n", "codegen", "<= 25 % of cold"),
    Change("runtime/wasm.py", "pipeline/runtime/wasm.py", b"\nBENCH_EDIT = 1\n", "codegen", "<= 120 s"),
    Change("CPython patch", "third-party/cpython/wasi-libc-2022-pthread-t.patch",
           b"Bench: touched.\n", "build_cpython", "<= 60 s"),
    Change("numpy patch", "third-party/numpy/wasm-radix-sort.patch", b"Bench: touched.\n", "codegen", "<= 60 s"),
)


def doit(root: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "doit", *args], cwd=root, env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"doit {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def summary(stdout: str) -> str:
    return next(line for line in reversed(stdout.splitlines()) if line.startswith("summary:"))


def unreproducible(root: Path) -> tuple[str, ...]:
    """The outputs top-level recipes declare `unreproducible:` (build/<task>/<item>): not compared."""
    declared = []
    for recipe in sorted((root / "recipes").glob("*.yaml")):
        data = yaml.safe_load(recipe.read_text()) or {}
        declared += [f"{recipe.stem}/{item}" for item in data.get("unreproducible") or []]
    return tuple(declared)


def outputs(root: Path) -> dict[str, str]:
    """sha256 of every file under build/ that a task put there (not state, logs or work, nor what
    its recipe declares unreproducible)."""
    build = root / "build"
    skipped = unreproducible(root)
    found = {}
    for path in sorted(build.rglob("*")):
        rel = path.relative_to(build).as_posix()
        if path.is_file() and not path.is_symlink() and not rel.startswith((".", "logs/", *skipped)):
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def copy_checkout(tmp: Path) -> Path:
    copy = tmp / "checkout"
    shutil.copytree(REPO, copy, symlinks=True, ignore=shutil.ignore_patterns(
        "build", ".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache"))
    return copy


def cold(tmp: Path, name: str, compile_cache: bool) -> tuple[Path, dict[str, str], float]:
    root = copy_checkout(tmp / name)
    cache = tmp / name / "cache"
    cache.mkdir()
    seed_sources(cache)
    env = dict(os.environ, PIPELINE_CACHE_DIR=str(cache), PIPELINE_COMPILE_CACHE="1" if compile_cache else "0")
    for key in [k for k in env if k.startswith("PIPELINE_REMOTE")]:
        del env[key]
    seconds, out = doit(root, env, "codegen")
    print(f"cold `doit codegen`, compile cache {'on' if compile_cache else 'off'}: {seconds:.0f} s  [{summary(out)}]",
          flush=True)
    return root, env, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-off", action="store_true", help="also a cold build with the compile cache off")
    parser.add_argument("--off-first", action="store_true",
                        help="with --cold-off: build without the compile cache first (the first build also warms "
                             "the page cache, so run both orders)")
    parser.add_argument("--no-changes", action="store_true", help="the cold builds only")
    parser.add_argument("--only", choices=[change.name for change in CHANGES], action="append")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as name:
        tmp = Path(name)
        if args.cold_off and args.off_first:
            _, _, off_seconds = cold(tmp, "off", compile_cache=False)
        root, env, cold_seconds = cold(tmp, "on", compile_cache=True)
        cold_outputs = outputs(root)
        if args.cold_off and not args.off_first:
            _, _, off_seconds = cold(tmp, "off", compile_cache=False)
        if args.cold_off:
            order = "off, then on" if args.off_first else "on, then off"
            rows.append(("cold `doit codegen`, compile cache on vs off", f"{cold_seconds / off_seconds:.2f}x "
                         f"({cold_seconds:.0f} vs {off_seconds:.0f} s; built {order})", "<= 1.05x", ""))
        for change in CHANGES:
            if args.no_changes or (args.only and change.name not in args.only):
                continue
            file = root / change.file
            original = file.read_bytes()
            try:
                edited = change.line + original if file.suffix == ".patch" else original + change.line
                file.write_bytes(edited)
                seconds, out = doit(root, env, change.target)
                changed = [rel for rel, digest in outputs(root).items() if cold_outputs.get(rel) not in (None, digest)]
            finally:
                file.write_bytes(original)
            doit(root, env, "codegen")  # back to the cold build's state (restored from the cache)
            share = f"{seconds:.0f} s ({100 * seconds / cold_seconds:.0f} % of cold)"
            counts = summary(out).partition("; ")[2]
            rows.append((f"{change.name} -> doit {change.target}", share, change.goal,
                         f"{counts}; outputs differing from cold: {len(changed)} {changed[:3]}"))
            print(f"{rows[-1][0]}: {share}  [{summary(out)}]", flush=True)
    print(f"\ncold `doit codegen` (compile cache on): {cold_seconds:.0f} s")
    print("| change | rebuild | target | compile cache; identity |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

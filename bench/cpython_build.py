"""`doit build_cpython` figures (prints them; not a test).

    python bench/cpython_build.py incremental   # no-op, touch a CPython patch, revert
    python bench/cpython_build.py cold          # cold build vs the same steps by hand (~15 min)
    python bench/cpython_build.py cold --hand-first   # the same, by hand first (order bias)

cold: copies this checkout (no build/) to a temp dir with an empty artifact cache
(sources pre-seeded, so downloads don't count), times `doit build_cpython`, then
runs each task's own build step by hand (the same rendered bash, no engine: no
keys, manifests, cache copies or self-tests) in the same run, and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PATCH = REPO / "third-party/cpython/wasi-libc-2022-pthread-t.patch"


def doit(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "doit", *args], cwd=root, env=env or dict(os.environ),
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"doit {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def summary(stdout: str) -> str:
    return stdout.strip().splitlines()[-1]


def incremental(repeat: int) -> None:
    doit(REPO, "build_cpython")
    noops = [doit(REPO, "build_cpython")[0] for _ in range(repeat)]
    print(f"no-op `doit build_cpython`: median {statistics.median(noops):.2f} s of {repeat}  (target <= 1 s)")
    original = PATCH.read_bytes()
    try:
        # Text before the first `---` is ignored by patch(1): the bytes change, the effect doesn't.
        PATCH.write_bytes(b"Benchmark: touched.\n" + original)
        seconds, out = doit(REPO, "build_cpython")
        ran = [line.split()[1] for line in out.splitlines() if line.strip().startswith("built")]
        print(f"after touching {PATCH.name}: {seconds:.1f} s, rebuilt: {', '.join(ran)}  [{summary(out)}]")
    finally:
        PATCH.write_bytes(original)
    seconds, out = doit(REPO, "build_cpython")
    print(f"after reverting it: {seconds:.1f} s  [{summary(out)}]")


def by_hand(root: Path, env: dict[str, str]) -> dict[str, float]:
    """Run each task's rendered build step with bash, no engine, into scratch dirs."""
    sys.path.insert(0, str(REPO))
    from pipeline.builders import build_script
    from pipeline.config import describe_toolchain
    from pipeline.engine import load_engine
    from pipeline.render import sysroot_path
    from pipeline.sources import apply_patches, fetch_source, unpack_source

    os.environ.update(env)
    engine = load_engine(root)
    tc = describe_toolchain(engine.config, sysroot_path(engine.paths, engine.config))
    times: dict[str, float] = {}
    for task in engine.graph.order:
        if task not in engine.graph.closure("build_cpython"):
            continue
        entry, recipe = engine.graph.nodes[task], engine.rendered[task]
        scratch = Path(tempfile.mkdtemp(prefix=f"byhand-{task}-"))
        src = None
        if recipe.source is not None:
            found = fetch_source(engine.paths, entry.rel, entry.folder, recipe.source)
            src = unpack_source(found, scratch, recipe.source.extract_dir)
            apply_patches(src, [entry.folder / p for p in recipe.source.patches], scratch / "patch.log")
        out, work = scratch / "out", scratch / "work"
        out.mkdir()
        work.mkdir()
        step_env = dict(os.environ, OUT=str(out), PREFIX=str(out), WORK=str(work), SRC=str(src or work),
                        JOBS=str(engine.config.job_count()), PYTHON=sys.executable, PROJECT_ROOT=str(root),
                        PYTHONPATH=str(REPO), **recipe.build.env)
        script = scratch / "build.sh"
        script.write_text(build_script(entry.builder, recipe, tc).replace("set -euxo", "set -euo"))
        start = time.perf_counter()
        subprocess.run(["bash", str(script)], cwd=src or work, env=step_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[task] = time.perf_counter() - start
        shutil.rmtree(scratch, ignore_errors=True)
    return times


def cold(hand_first: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        root = Path(tmp) / "checkout"
        shutil.copytree(REPO, root, ignore=shutil.ignore_patterns("build", ".venv", ".git", "__pycache__"))
        cache = Path(tmp) / "cache"
        main_cache = Path(os.environ.get("PIPELINE_CACHE_DIR") or Path.home() / ".cache/pywasm-pipeline")
        if (main_cache / "sources").is_dir():
            shutil.copytree(main_cache / "sources", cache / "sources")
        env = dict(os.environ, PIPELINE_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
        # The by-hand pass needs the toolchain's outputs (sysroot, ...) from somewhere: when it
        # goes first, it uses this checkout's build/ (same recipes, so the same inputs).
        hand = by_hand(REPO, env) if hand_first else {}
        seconds, out = doit(root, "build_cpython", env=env)
        states = {p.stem: json.loads(p.read_text()) for p in (root / "build/.state").glob("*.json")}
        tests = sum(s.get("test_seconds", 0.0) for s in states.values())
        print(f"cold `doit build_cpython`: {seconds:.0f} s wall ({tests:.0f} s of it in self-tests)  [{summary(out)}]")
        hand = hand or by_hand(root, env)
        total = sum(hand.values())
        for task, spent in hand.items():
            print(f"  by hand {task:<16} {spent:7.1f} s   engine {states[task]['seconds']:7.1f} s")
        print(f"same steps by hand: {total:.0f} s")
        print(f"ratio engine/by-hand: {seconds / total:.2f} (target <= 1.1); "
              f"without self-tests: {(seconds - tests) / total:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["incremental", "cold"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--hand-first", action="store_true",
                        help="cold: by-hand pass before the engine (order bias check; needs build/ here)")
    args = parser.parse_args()
    incremental(args.repeat) if args.mode == "incremental" else cold(args.hand_first)


if __name__ == "__main__":
    main()

"""`doit build_cpython` figures (prints them; not a test).

    python bench/cpython_build.py incremental   # no-op, touch a CPython patch, revert
    python bench/cpython_build.py cold          # cold build vs the same steps by hand (~15 min)
    python bench/cpython_build.py cold --order HEEH   # by hand, engine, engine, by hand (~35 min)

cold: copies this checkout (no build/) to a temp dir with an empty artifact cache
(sources pre-seeded, so downloads don't count) and times `doit build_cpython`
(default settings: independent tasks side by side); a by-hand pass runs each
task's own build step one after another (the same rendered bash, no engine: no
keys, manifests, cache copies or self-tests). Prints the ratio of the summed
passes; single steps vary +-20 % on a shared VM, so HEEH cancels a drifting machine.
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

from remote import seed_sources  # bench/ is on sys.path when run as a script

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
    from pipeline.engine.builders import build_script
    from pipeline.engine.project import load_engine
    from pipeline.engine.sources import apply_patches, fetch_source, unpack_source
    from pipeline.wasmbuild.layer import WASM_LAYER

    os.environ.update(env)
    engine = load_engine(root, WASM_LAYER)
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
                        PYTHONPATH=str(REPO), **engine.layer.step_env(), **recipe.build.env)
        script = scratch / "build.sh"
        script.write_text(build_script(entry.builder, recipe, engine.layer).replace("set -euxo", "set -euo"))
        start = time.perf_counter()
        subprocess.run(["bash", str(script)], cwd=src or work, env=step_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[task] = time.perf_counter() - start
        shutil.rmtree(scratch, ignore_errors=True)
    return times


def engine_pass(tmp: Path, label: str, env: dict[str, str]) -> tuple[float, float, dict[str, float]]:
    """Cold `doit build_cpython` in a fresh copy of this checkout: (wall, self-test s, per task s)."""
    root = tmp / f"checkout-{label}"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns("build", ".venv", ".git", "__pycache__"))
    cache = tmp / f"cache-{label}"
    seed_sources(cache)
    env = dict(env, PIPELINE_CACHE_DIR=str(cache))
    seconds, out = doit(root, "build_cpython", env=env)
    states = {p.stem: json.loads(p.read_text()) for p in (root / "build/.state").glob("*.json")}
    tests = sum(s.get("test_seconds", 0.0) for s in states.values())
    print(f"{label}: cold `doit build_cpython` {seconds:.0f} s wall ({tests:.0f} s self-tests)  [{summary(out)}]",
          flush=True)
    per_task = {task: state["seconds"] for task, state in states.items() if "seconds" in state}
    shutil.rmtree(root)
    shutil.rmtree(cache)
    return seconds, tests, per_task


def cold(order: str) -> None:
    """Passes in the given order (E: engine, H: by hand); HEEH cancels a machine that drifts."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    engine_walls: list[float] = []
    engine_tests: list[float] = []
    hand_sums: list[float] = []
    engine_tasks: dict[str, float] = {}
    hand_tasks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        for index, kind in enumerate(order, 1):
            if kind == "E":
                wall, tests, per_task = engine_pass(Path(tmp), f"engine-pass-{index}", env)
                engine_walls.append(wall)
                engine_tests.append(tests)
                engine_tasks = per_task
            else:
                # The steps need the toolchain's outputs (sysroot, ...): this checkout's build/
                # has them (same recipes, so the same inputs). Sources come from the usual cache.
                hand_tasks = by_hand(REPO, env)
                hand_sums.append(sum(hand_tasks.values()))
                print(f"by-hand pass {index}: {hand_sums[-1]:.0f} s", flush=True)
    for task, spent in hand_tasks.items():
        print(f"  by hand {task:<16} {spent:7.1f} s   engine {engine_tasks.get(task, 0.0):7.1f} s  (last passes)")
    engine, hand, tests = sum(engine_walls), sum(hand_sums), sum(engine_tests)
    print(f"engine: {' + '.join(f'{w:.0f}' for w in engine_walls)} s; by hand: "
          f"{' + '.join(f'{h:.0f}' for h in hand_sums)} s  (order {order})")
    print(f"ratio engine/by-hand: {engine / hand:.2f} (target <= 1.1); without self-tests: "
          f"{(engine - tests) / hand:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["incremental", "cold"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--order", default="EH", type=str.upper,
                        help="cold: passes in order, E = engine, H = by hand (default EH; HEEH cancels drift; "
                             "H needs this checkout's build/ for the toolchain outputs)")
    args = parser.parse_args()
    if set(args.order) - {"E", "H"} or not {"E", "H"} <= set(args.order):
        parser.error("--order: letters E and H, at least one of each")
    incremental(args.repeat) if args.mode == "incremental" else cold(args.order)


if __name__ == "__main__":
    main()

"""No-op speed of the engine (prints figures; not a test).

1. A synthetic graph of 200 tasks and 10,000 input files: median no-op wall time
   of `doit`, beside `make -q` on an equivalent Makefile, in the same run.
2. The real dodo on the project's own recipes, when they are built.

    python bench/engine_noop.py [--tasks 200] [--files-per-task 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(
    argv: list[str], cwd: Path, env: dict[str, str], repeat: int
) -> tuple[float, subprocess.CompletedProcess[str]]:
    times = []
    proc = None
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
    assert proc is not None
    return statistics.median(times), proc


def make_synthetic(root: Path, tasks: int, files_per_task: int) -> None:
    (root / "recipes").mkdir(parents=True)
    (root / "pipeline.yaml").write_text("toolchain-recipe: null\nsysroot-recipe: null\n")
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    rules = [".PHONY: all", "all: " + " ".join(f"out/t{i}" for i in range(tasks))]
    for i in range(tasks):
        inputs = root / "inputs" / f"t{i}"
        inputs.mkdir(parents=True)
        for j in range(files_per_task):
            (inputs / f"f{j}.txt").write_text(f"task {i} file {j}\n")
        deps = sorted({i - 1, i // 2} - {i}) if i else []
        dep_list = ", ".join(f"t{d}" for d in deps)
        (root / "recipes" / f"t{i}.yaml").write_text(
            f"package: {{name: t{i}, version: '1'}}\n"
            f"depends: [{dep_list}]\n"
            f"inputs: [../inputs/t{i}]\n"
            'build:\n  script: |\n    cat "$ROOT_INPUTS"/*.txt > "$OUT/all.txt"\n'
            f"  env: {{ROOT_INPUTS: '{inputs}'}}\n"
            "outputs: [all.txt]\n"
        )
        prereqs = " ".join([f"inputs/t{i}/f{j}.txt" for j in range(files_per_task)] + [f"out/t{d}" for d in deps])
        rules.append(f"out/t{i}: {prereqs}\n\tmkdir -p out && cat inputs/t{i}/*.txt > $@")
    (root / "Makefile").write_text("\n".join(rules) + "\n")


def synthetic(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        make_synthetic(root, args.tasks, args.files_per_task)
        env = dict(os.environ, PYTHONPATH=str(REPO), PIPELINE_CACHE_DIR=str(Path(tmp) / "cache"))
        start = time.perf_counter()
        cold = subprocess.run(
            [sys.executable, "-m", "doit", "-n", "1"], cwd=root, env=env, capture_output=True, text=True, check=False
        )
        cold_s = time.perf_counter() - start
        if cold.returncode != 0:
            sys.exit(f"synthetic cold build failed:\n{cold.stdout}\n{cold.stderr}")
        subprocess.run(["make", "-s"], cwd=root, check=True)
        noop_s, proc = timed([sys.executable, "-m", "doit"], root, env, args.repeat)
        assert f"{args.tasks} up to date" in proc.stdout, proc.stdout[-500:]
        make_s, make_proc = timed(["make", "-q"], root, env, args.repeat)
        assert make_proc.returncode == 0, "make -q says something is out of date"
        list_s, _ = timed([sys.executable, "-m", "doit", "list"], root, env, args.repeat)
        files = args.tasks * args.files_per_task
        print(f"synthetic graph: {args.tasks} tasks, {files} input files")
        print(f"  cold build (doit):       {cold_s:7.2f} s")
        print(f"  no-op doit (median/{args.repeat}):  {noop_s:7.3f} s   (target <= 0.5 s)")
        print(f"  doit list (median):      {list_s:7.3f} s")
        print(f"  no-op make -q (median):  {make_s:7.3f} s   (mtime-based, no content keys)")


def real_project(args: argparse.Namespace) -> None:
    state = REPO / "build" / ".state"
    if not state.is_dir():
        print("real project: skipped (nothing built yet; run `doit` first)")
        return
    env = dict(os.environ)
    noop_s, proc = timed([sys.executable, "-m", "doit", "codegen"], REPO, env, args.repeat)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-200:]
    list_s, _ = timed([sys.executable, "-m", "doit", "list"], REPO, env, args.repeat)
    bare_s, _ = timed([sys.executable, "-c", "pass"], REPO, env, args.repeat)
    doit_s, _ = timed([sys.executable, "-c", "import doit.doit_cmd"], REPO, env, args.repeat)
    print(f"this project (median/{args.repeat}):")
    print(f"  no-op `doit codegen`:    {noop_s:7.3f} s   (target <= 0.3 s)   [{summary}]")
    print(f"  `doit list`:             {list_s:7.3f} s")
    print(f"  python start / + import doit: {bare_s:.3f} s / {doit_s:.3f} s (the floor)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--files-per-task", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    synthetic(args)
    if not args.skip_real:
        real_project(args)


if __name__ == "__main__":
    main()

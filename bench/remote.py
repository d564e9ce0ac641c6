"""A second "machine" sharing only the remote cache (prints figures; not a test).

Seeds a file:// remote from this checkout's built outputs (`python -m pipeline push`),
then a fresh copy of the checkout with an EMPTY local cache runs `doit codegen`
against that remote. Prints its time as a fraction of the cold build (the build
times recorded when this checkout built each task) and the bytes transferred.

    python bench/remote.py [--remote file:///some/dir] [--cold]

--cold: the first machine is also a fresh copy with an empty local cache (sources
pre-seeded, so downloads don't count) that builds everything, pushing as it goes;
its wall time is the cold build, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TARGET = "codegen"


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return proc


def cold_seconds(root: Path, tasks: set[str]) -> tuple[float, list[str]]:
    """Build time of each task's current output, as recorded when it was built."""
    total, unknown = 0.0, []
    for state_file in (root / "build/.state").rglob("*.json"):
        state = json.loads(state_file.read_text())
        if state.get("task") not in tasks:
            continue
        if state.get("build_seconds") is not None:
            total += state["build_seconds"]
        else:
            unknown.append(state["task"])
    return total, unknown


def fresh_copy(dest: Path) -> Path:
    """This checkout without its build/ (another machine's clone)."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns("build", ".venv", "__pycache__"))
    return dest


def seed_sources(cache: Path) -> None:
    """Downloads of third-party sources are not what is measured: copy them in."""
    from pipeline.engine.config import load_config, project_paths
    from pipeline.wasmbuild.layer import WASM_LAYER

    main_cache = project_paths(REPO, load_config(REPO, WASM_LAYER)).cache  # where this checkout's engine looks
    if (main_cache / "sources").is_dir():
        shutil.copytree(main_cache / "sources", cache / "sources")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--remote", help="remote cache URL (default: a temp file:// dir)")
    parser.add_argument("--cold", action="store_true", help="measure the cold build too (builds everything)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        remote = args.remote or (Path(tmp) / "remote").as_uri()
        env = dict(os.environ, PIPELINE_REMOTE_CACHE=remote, PYTHONPATH=str(REPO))
        env.pop("PIPELINE_REMOTE_READONLY", None)
        tasks = set(json.loads(run([sys.executable, "-m", "pipeline", "check", "--json"], REPO, env).stdout)
                    ["closure"][TARGET])
        cold = None
        if args.cold:
            first = fresh_copy(Path(tmp) / "first-machine")
            env1 = dict(env, PIPELINE_CACHE_DIR=str(Path(tmp) / "first-cache"))
            seed_sources(Path(env1["PIPELINE_CACHE_DIR"]))
            start = time.perf_counter()
            proc = run([sys.executable, "-m", "doit", TARGET], first, env1)
            cold = time.perf_counter() - start
            print(f"first machine, cold `doit {TARGET}` pushing to {remote}: {cold:.0f} s  "
                  f"[{proc.stdout.strip().splitlines()[-1]}]")
        else:
            run([sys.executable, "-m", "doit", TARGET], REPO, env)
            pushed = run([sys.executable, "-m", "pipeline", "push", *sorted(tasks)], REPO, env).stdout.strip()
            print(f"seeded {remote} from this checkout: {pushed.splitlines()[-1]}")

        second = fresh_copy(Path(tmp) / "second-machine")
        env2 = dict(env, PIPELINE_CACHE_DIR=str(Path(tmp) / "empty-local-cache"))
        start = time.perf_counter()
        proc = run([sys.executable, "-m", "doit", TARGET], second, env2)
        seconds = time.perf_counter() - start
        fetched = sum(int(n) for log in (second / "build/logs").rglob("*.log")
                      for n in re.findall(r"remote fetch: (\d+) bytes", log.read_text()))
        print(f"second machine `doit {TARGET}`: {seconds:.1f} s  [{proc.stdout.strip().splitlines()[-1]}]")
        print(f"  downloaded {fetched / 1e6:.1f} MB")
        if cold is None:
            cold, missing = cold_seconds(REPO, tasks)
            if missing:
                print(f"  (no recorded build time for: {', '.join(sorted(missing))})")
        print(f"cold build of the same tasks: {cold:.0f} s -> fraction {seconds / cold:.1%} (target <= 10%)")


if __name__ == "__main__":
    main()

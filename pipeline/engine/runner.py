"""Running one task: restore from the cache or build, atomically.

Order matters (rattler-build's rule: a failed rerun cannot revive stale success):
1. drop the task's state record, so nothing below can be mistaken for done;
2. build (or restore) into a staging dir beside the final place;
3. swap it into place, run the recipe's self-test, and only then
4. write the state record and store the output in the cache.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError, TaskFailed
from ..files import write_json_atomic
from ..paths import CACHE_ENV
from .builders import build_script, test_script
from .config import describe_toolchain
from .context import BuildContext, source_digest
from .project import Engine
from .remote import Transfer
from .render import sysroot_path
from .sources import apply_patches, fetch_source, unpack_source
from .state import Manifest, clear_state, make_manifest

LOG_TAIL_LINES = 25
KEEP_WORK_ENV = "PIPELINE_KEEP_WORK"


class StepFailed(TaskFailed):
    def __init__(self, task: str, what: str, log: Path) -> None:
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:] if log.exists() else []
        tail = "\n".join("    " + line for line in lines)
        super().__init__(f"{task}: {what}\n  --- last {len(lines)} lines of {log} ---\n{tail}\n  --- full log: {log}")


PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: no dlsym between fork and exec


def die_with_parent() -> None:
    """Children die with us (SIGKILL included), so no orphan writes into build/.

    The signal follows the thread that started the child, which is the worker
    thread waiting on it for the whole step.
    """
    PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_bash(script: str, cwd: Path, env: dict[str, str], log: Path, label: str) -> int:
    script_file = log.with_name(f".{log.stem}.{label}.sh")
    script_file.write_text(script)
    with open(log, "a") as out:
        out.write(f"=== {label} ({time.strftime('%H:%M:%S')}) ===\n")
        out.flush()
        proc = subprocess.Popen(
            ["bash", str(script_file)], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )
        try:
            return proc.wait()
        except BaseException:
            proc.kill()
            raise
        finally:
            script_file.unlink(missing_ok=True)


def write_recipe_json(engine: Engine, task: str, work: Path) -> Path:
    """The rendered recipe and its resolved context (`BuildContext`), for builders written in Python."""
    paths, config = engine.paths, engine.config
    context = BuildContext(
        task=task,
        recipe=engine.rendered[task],
        deps={dep: str(paths.output_dir(dep)) for dep in engine.graph.deps[task]},
        package_deps=[str(paths.output_dir(dep)) for dep in engine.graph.deps[task]
                      if engine.graph.nodes[dep].is_package],
        cpython=str(paths.output_dir(config.cpython_recipe)),
        build_python=str(paths.output_dir(config.build_python_recipe)),
        toolchain=describe_toolchain(config, sysroot_path(paths, config)),
        source_sha256=source_digest(engine.keys.inputs(task)["source"]),
    )
    return context.write(work / "recipe.json")


def step_env(engine: Engine, task: str, out: Path, work: Path, src: Path | None) -> dict[str, str]:
    recipe = engine.rendered[task]
    paths = engine.paths
    env = dict(os.environ)
    pythonpath = [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]  # the checkout holding pipeline/
    env.update(
        {
            "OUT": str(out),
            "PREFIX": str(paths.output_dir(task)),
            "WORK": str(work),
            "SRC": str(src or work),
            "JOBS": str(engine.config.job_count()),
            "PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join(p for p in pythonpath if p),
            "RECIPE_DIR": str(engine.graph.nodes[task].folder),
            "PROJECT_ROOT": str(paths.root),
            "TARGET": engine.config.target,
            "SOURCE_DATE_EPOCH": env.get("SOURCE_DATE_EPOCH", "0"),
            "RECIPE_JSON": str(write_recipe_json(engine, task, work)),
            # the configured cache (pipeline.yaml's cache-dir) reaches every tool a step runs
            CACHE_ENV: str(paths.cache),
        }
    )
    env.update(recipe.build.env)
    return env


def check_outputs(task: str, declared: list[str], out: Path) -> None:
    missing = [item for item in declared if not (out / item).exists()]
    if missing:
        raise PipelineError(f"{task}: declared outputs missing after build: {', '.join(missing)}")


def build_into(engine: Engine, task: str, staging: Path, work: Path, log: Path) -> None:
    entry = engine.graph.nodes[task]
    recipe = engine.rendered[task]
    src: Path | None = None
    if recipe.source is not None:
        found = fetch_source(engine.paths, entry.rel, entry.folder, recipe.source)
        src = unpack_source(found, work, recipe.source.extract_dir)
        apply_patches(src, [entry.folder / p for p in recipe.source.patches], log)
    staging.mkdir(parents=True)
    tc = describe_toolchain(engine.config, sysroot_path(engine.paths, engine.config))
    script = build_script(entry.builder, recipe, tc)
    code = run_bash(script, src or work, step_env(engine, task, staging, work, src), log, "build")
    if code != 0:
        raise StepFailed(task, f"build step exited with {code}", log)
    check_outputs(task, recipe.outputs, staging)


def swap_in(staging: Path, final: Path, backup: Path) -> None:
    shutil.rmtree(backup, ignore_errors=True)
    if final.exists():
        os.replace(final, backup)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, final)


def self_test(engine: Engine, task: str, final: Path, work: Path, log: Path) -> None:
    script = test_script(engine.graph.nodes[task].builder, engine.rendered[task])
    if not script:
        return
    work.mkdir(parents=True, exist_ok=True)
    code = run_bash(script, work, step_env(engine, task, final, work, None), log, "test")
    if code != 0:
        raise StepFailed(task, f"self-test exited with {code}", log)


def record(
    engine: Engine, task: str, manifest: Manifest, outcome: str, seconds: float, test_seconds: float = 0.0
) -> None:
    key = engine.keys.key(task)
    built = seconds if outcome == "built" else engine.cache.build_seconds(key)
    state = {"task": task, "key": key, "inputs": engine.keys.inputs(task), "manifest": manifest,
             "outcome": outcome, "seconds": round(seconds, 3), "test_seconds": round(test_seconds, 3),
             "build_seconds": built}
    write_json_atomic(engine.paths.state_file(task), state)


def log_line(log: Path, text: str) -> None:
    with open(log, "a") as handle:
        handle.write(text + "\n")


def noted(what: str, result: Transfer, log: Path, notes: list[str]) -> bool:
    """Log a remote fetch/push; its warning, if any, joins the task's note."""
    if result.ok:
        log_line(log, f"remote {what}: {result.bytes} bytes")
    if result.warning:
        notes.append(result.warning)
        log_line(log, f"warning: {result.warning}")
    return result.ok


@dataclass(frozen=True)
class Places:
    """Where one attempt at one task works: all beside build/, same filesystem."""

    final: Path
    staging: Path
    backup: Path
    work: Path
    log: Path

    @classmethod
    def for_task(cls, engine: Engine, task: str) -> Places:
        paths = engine.paths
        final = paths.output_dir(task)
        staging_root = paths.staging_root() / final.relative_to(paths.build).parent
        return cls(final, staging_root / f"{final.name}.new", staging_root / f"{final.name}.old",
                   paths.work_dir(task), paths.log_file(task))

    def reset(self, key: str) -> None:
        for stale in (self.staging, self.backup, self.work):  # a killed run's leftovers; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        self.staging.parent.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text(f"key {key}\n")


def try_restore(engine: Engine, key: str, at: Places, notes: list[str]) -> tuple[str, Manifest] | None:
    """Local cache, then remote: (outcome, manifest) with the output in place, or None."""
    fetched = False
    if engine.remote is not None and not engine.cache.has(key):
        fetched = noted("fetch", engine.remote.fetch(key, engine.cache), at.log, notes)
    if not engine.cache.has(key):
        return None
    manifest, problem = engine.cache.restore(key, at.staging)
    if manifest is None:
        notes.append(f"cache entry {key[:12]} was corrupt ({problem}): evicted and rebuilt")
        log_line(at.log, f"warning: {notes[-1]}")
        return None
    swap_in(at.staging, at.final, at.backup)
    shutil.rmtree(at.backup, ignore_errors=True)
    return ("downloaded" if fetched else "restored"), manifest


def build_and_install(engine: Engine, task: str, at: Places) -> tuple[Manifest, float]:
    """Build into staging, swap in, self-test; on a failed test put the old output back."""
    build_into(engine, task, at.staging, at.work, at.log)
    manifest = make_manifest(at.staging)
    swap_in(at.staging, at.final, at.backup)
    test_started = time.monotonic()
    try:
        self_test(engine, task, at.final, at.work, at.log)
    except PipelineError:
        shutil.rmtree(at.final, ignore_errors=True)
        if at.backup.exists():
            os.replace(at.backup, at.final)
        raise
    shutil.rmtree(at.backup, ignore_errors=True)
    return manifest, time.monotonic() - test_started


def run_task(engine: Engine, task: str) -> dict[str, str]:
    """Bring one task's output up to date.

    Returns {"outcome": "up to date" | "restored" | "downloaded" | "built", "note": ...}.
    """
    started = time.monotonic()
    if engine.status(task).up_to_date:  # also takes the build lock
        return {"outcome": "up to date"}
    key = engine.keys.key(task)
    clear_state(engine.paths.state_file(task))
    at = Places.for_task(engine, task)
    at.reset(key)
    notes: list[str] = []
    restored = try_restore(engine, key, at, notes)
    if restored is not None:
        outcome, manifest = restored
        shutil.rmtree(at.work, ignore_errors=True)
        record(engine, task, manifest, outcome, time.monotonic() - started)
        return {"outcome": outcome, "note": "; ".join(notes)}
    manifest, test_seconds = build_and_install(engine, task, at)
    record(engine, task, manifest, "built", time.monotonic() - started, test_seconds)
    engine.cache.store(key, at.final, manifest, time.monotonic() - started)
    if engine.remote is not None:
        noted("push", engine.remote.push(key, engine.cache), at.log, notes)
    if os.environ.get(KEEP_WORK_ENV, "") in ("", "0"):
        shutil.rmtree(at.work, ignore_errors=True)
    return {"outcome": "built", "note": "; ".join(notes)}

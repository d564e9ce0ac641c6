"""Running one task: restore from the cache or build, atomically.

Order matters (rattler-build's rule: a failed rerun cannot revive stale success):
1. drop the task's state record, so nothing below can be mistaken for done;
2. build (or restore) into a staging dir beside the final place;
3. swap it into place, run its self-test (a restored output only if no pass of this very
   self-test is cached), cache the pass, and only then
4. store the output in the cache, write the state record, push to the remote.

When only the self-test's key changed (engine/keys.py, `test_inputs`), the output in place is
the one its key asks for: the self-test alone runs against it, and the record is rewritten
only when it passes. The old record stays meanwhile: it names the old self-test key, so it
never vouches for the new one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError, TaskFailed
from ..files import atomic_output, write_json_atomic
from ..paths import CACHE_ENV
from .builders import build_script, test_script
from .context import BuildContext, source_digest
from .faults import fault_point
from .outputs import path_leaks
from .project import Engine
from .remote import Transfer
from .reporter import describe_counts
from .sources import Served, add_extras, apply_patches, fetch_source, source_locations, unpack_source
from .state import SELF_TEST_CHANGED, UNREADABLE_RECORD, Manifest, clear_state, make_manifest, read_state

LOG_TAIL_LINES = 25
KEEP_WORK_ENV = "PIPELINE_KEEP_WORK"
DISK_NEARLY_FULL = 1 << 20  # bytes free below which a failed step is blamed on the disk


class StepFailed(TaskFailed):
    def __init__(self, task: str, what: str, log: Path) -> None:
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:] if log.exists() else []
        tail = "\n".join("    " + line for line in lines)
        super().__init__(f"{task}: {what}\n  --- last {len(lines)} lines of {log} ---\n{tail}\n  --- full log: {log}")


SUPERVISOR = Path(__file__).with_name("supervisor.py")


def run_bash(script: str, cwd: Path, env: dict[str, str], log: Path, label: str, record: Path) -> int:
    """Run one step under its supervisor (see supervisor.py): when this returns, or this
    process dies, nothing the step started is still running."""
    script_file = log.with_name(f".{log.stem}.{label}.sh")
    script_file.write_text(script)
    with open(log, "a") as out:
        out.write(f"=== {label} ({time.strftime('%H:%M:%S')}) ===\n")
        out.flush()
        # -I: the supervisor needs only the standard library, and starts fast without site
        command = [sys.executable, "-I", str(SUPERVISOR), str(os.getpid()), str(record), "--", "bash", str(script_file)]
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            return proc.wait()
        except BaseException:
            proc.terminate()  # SIGTERM: the supervisor ends the step, then exits
            proc.wait()
            raise
        finally:
            script_file.unlink(missing_ok=True)


def write_recipe_json(engine: Engine, task: str, work: Path) -> Path:
    """The rendered recipe and its resolved context (`BuildContext`), for builders written in Python."""
    paths = engine.paths
    context = engine.layer.build_context(BuildContext(
        task=task,
        recipe=engine.rendered[task],
        deps={dep: str(paths.output_dir(dep)) for dep in engine.graph.deps[task]},
        package_deps=[str(paths.output_dir(dep)) for dep in engine.graph.deps[task]
                      if engine.graph.nodes[dep].is_package],
        source_sha256=source_digest(engine.keys.inputs(task)["source"]),
    ))
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
            "SOURCE_DATE_EPOCH": env.get("SOURCE_DATE_EPOCH", "0"),
            "RECIPE_JSON": str(write_recipe_json(engine, task, work)),
            # the configured cache (pipeline.yaml's cache-dir) reaches every tool a step runs
            CACHE_ENV: str(paths.cache),
            **engine.layer.step_env(work),
        }
    )
    env.update(recipe.build.env)
    return env


def check_outputs(task: str, declared: list[str], out: Path) -> None:
    missing = [item for item in declared if not (out / item).exists()]
    if missing:
        raise PipelineError(f"{task}: declared outputs missing after build: {', '.join(missing)}")


def disk_full_hint(path: Path) -> str:
    """A step that failed on a full disk often cannot even log why: say it from here."""
    try:
        usage = os.statvfs(path)
    except OSError:
        return ""
    free = usage.f_bavail * usage.f_frsize
    return f" (no space left: {free} bytes free on the filesystem of {path})" if free < DISK_NEARLY_FULL else ""


def build_into(engine: Engine, task: str, at: Places, notes: list[str]) -> None:
    entry = engine.graph.nodes[task]
    recipe = engine.rendered[task]
    src: Path | None = None
    if recipe.source is not None:
        def served(by: Served) -> None:
            """The log (and so the progress line) says which location served the source;
            a recipe whose own url failed also gets a note in the summary."""
            log_line(at.log, by.describe())
            if by.is_fallback:
                notes.append(by.describe())

        config = engine.config
        locations = source_locations(engine.paths.root, config.source_mirrors, config.source_dir)
        found = fetch_source(engine.paths, entry.rel, entry.folder, recipe.source,
                             package=(recipe.name, recipe.version), locations=locations, report=served)
        src = unpack_source(found, at.work, recipe.source.extract_dir, recipe.source.members)
        apply_patches(src, [entry.folder / p for p in recipe.source.patches], at.log)
        add_extras(src, entry.folder, recipe.source.extras)
    at.staging.mkdir(parents=True)
    script = build_script(entry.builder, recipe, engine.layer)
    env = step_env(engine, task, at.staging, at.work, src)
    code = run_bash(script, src or at.work, env, at.log, "build", engine.paths.step_record(task))
    if code != 0:
        raise StepFailed(task, f"build step exited with {code}{disk_full_hint(at.staging)}", at.log)
    check_outputs(task, recipe.outputs, at.staging)
    check_relocatable(engine, task, at)


def check_relocatable(engine: Engine, task: str, at: Places) -> None:
    """Keys are path-independent, so outputs must be too: refuse one that holds the checkout's
    or the cache's absolute path (it would point into another tree once restored there)."""
    places = [engine.paths.root, engine.paths.cache]
    if sys.prefix != sys.base_prefix:  # the host Python's virtualenv (a system prefix like /usr is no machine path)
        places.append(Path(sys.prefix))
    # Every file, `unreproducible:` ones too: that field exempts a file from comparing two builds
    # (start-up randomness, timings), not from pointing into this checkout.
    leaks = path_leaks(at.staging, places)
    if leaks:
        shown = ", ".join(leaks[:3]) + (f" (+{len(leaks) - 3} more)" if len(leaks) > 3 else "")
        raise StepFailed(task, f"outputs hold this checkout's, the cache's or the host Python's path, so they "
                               f"are not relocatable: "
                               f"{shown}; map it away in the step (docs/design.md, 'Relocatable outputs')", at.log)


def discard(tree: Path, trash: Path) -> None:
    """Remove a tree so that a kill midway leaves it whole or gone, never half: rename, then delete."""
    if not tree.exists():
        return
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(tree, trash)
    shutil.rmtree(trash, ignore_errors=True)


def swap_in(at: Places) -> None:
    """staging -> final; the previous output waits in backup until the new one has passed its test."""
    discard(at.backup, at.trash)
    if at.final.exists():
        os.replace(at.final, at.backup)
    fault_point("swap-in")  # between the renames: no output in place, the old one in backup
    at.final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(at.staging, at.final)


def self_test(engine: Engine, task: str, at: Places) -> None:
    script = test_script(engine.graph.nodes[task].builder, engine.rendered[task], engine.layer)
    if not script:
        return
    at.work.mkdir(parents=True, exist_ok=True)
    env = step_env(engine, task, at.final, at.work, None)
    code = run_bash(script, at.work, env, at.log, "test", engine.paths.step_record(task))
    if code != 0:
        raise StepFailed(task, f"self-test exited with {code}", at.log)


def record(
    engine: Engine, task: str, manifest: Manifest, outcome: str, seconds: float, test_seconds: float = 0.0
) -> None:
    key = engine.keys.key(task)
    built = seconds if outcome == "built" else engine.cache.build_seconds(key)
    state = {"task": task, "key": key, "inputs": engine.keys.inputs(task), "manifest": manifest,
             "test_key": engine.keys.test_key(task), "test_inputs": engine.keys.test_inputs(task),
             "outcome": outcome, "seconds": round(seconds, 3), "test_seconds": round(test_seconds, 3),
             "build_seconds": built}
    with atomic_output(engine.paths.state_file(task), text=True) as handle:
        handle.write(json.dumps(state, sort_keys=True, indent=1))
        fault_point("record")  # written but not yet renamed into place: not a record yet


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
    backup: Path  # the previous output, from swap-in until the new one passed its self-test
    trash: Path  # a tree being deleted (renamed here first, so nothing is ever half deleted)
    work: Path
    log: Path

    @classmethod
    def for_task(cls, engine: Engine, task: str) -> Places:
        paths = engine.paths
        final = paths.output_dir(task)
        staging_root = paths.staging_root() / final.relative_to(paths.build).parent
        return cls(final, staging_root / f"{final.name}.new", staging_root / f"{final.name}.old",
                   staging_root / f"{final.name}.trash", paths.work_dir(task), paths.log_file(task))

    def reset(self, key: str) -> str:
        """Clear a killed run's leftovers (we hold the build lock; its processes are gone).

        A backup means the run died after swap-in and before its self-test passed: what is
        in place is untested, the backup is the last good output. Put it back, so that a
        failing rebuild still leaves the previous good output. Returns a note, or "".
        """
        shutil.rmtree(self.trash, ignore_errors=True)
        note = ""
        if self.backup.exists():
            discard(self.final, self.trash)
            os.replace(self.backup, self.final)
            note = "a killed run's untested output was replaced by the previous good one"
        for stale in (self.staging, self.work):
            shutil.rmtree(stale, ignore_errors=True)
        self.staging.parent.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text(f"key {key}\n" + (f"{note}\n" if note else ""))
        return note


def fetch_if_missing(engine: Engine, key: str, what: str, at: Places, notes: list[str]) -> bool:
    """Ask the remote for an entry the local cache lacks; True if it was downloaded."""
    if engine.remote is None or engine.cache.has(key):
        return False
    return noted(what, engine.remote.fetch(key, engine.cache), at.log, notes)


def try_restore(engine: Engine, key: str, at: Places, notes: list[str]) -> tuple[str, Manifest] | None:
    """Local cache, then remote: (outcome, manifest) with the output in staging, or None."""
    fetched = fetch_if_missing(engine, key, "fetch", at, notes)
    if not engine.cache.has(key):
        return None
    manifest, problem = engine.cache.restore(key, at.staging)
    if manifest is None:
        notes.append(f"cache entry {key[:12]} was corrupt ({problem}): evicted and rebuilt")
        log_line(at.log, f"warning: {notes[-1]}")
        return None
    return ("downloaded" if fetched else "restored"), manifest


def passed_before(engine: Engine, test_key: str, at: Places, notes: list[str]) -> bool:
    """Has an output of this key passed this very self-test (local cache, then remote)?"""
    fetch_if_missing(engine, test_key, "fetch self-test pass", at, notes)
    return engine.cache.mark_used(test_key)


def remember_pass(engine: Engine, task: str, test_key: str, at: Places, notes: list[str]) -> bool:
    """A passed self-test is cached like an output, keyed by its test key (which holds the build key).
    False if the cache could not take it (a full disk): the pass is then only in this run's record."""
    verdict = at.work / "self-test-pass"
    try:
        verdict.mkdir(exist_ok=True)
        write_json_atomic(verdict / "passed.json", {"task": task, "key": engine.keys.key(task),
                                                    "test_key": test_key})
        engine.cache.store(test_key, verdict, make_manifest(verdict))
    except OSError as exc:
        notes.append(f"self-test pass not stored in the cache: {describe_os_error(exc)}")
        log_line(at.log, f"warning: {notes[-1]}")
        return False
    return True


@dataclass(frozen=True)
class SelfTestRun:
    ran: bool  # the self-test ran in this run (and passed); False: none, or it passed before
    seconds: float = 0.0
    stored: bool = False  # its pass went into the cache (so it can go to the remote)


def run_self_test(engine: Engine, task: str, at: Places, notes: list[str], always: bool) -> SelfTestRun:
    """Test the output in place unless this output's key passed this self-test before (`always`:
    a fresh build is tested whatever is cached). Raises if it fails."""
    test_key = engine.keys.test_key(task)
    if test_key is None:
        return SelfTestRun(ran=False)
    if not always and passed_before(engine, test_key, at, notes):
        log_line(at.log, f"self-test {test_key[:12]} passed before for this output: not rerun")
        return SelfTestRun(ran=False)
    started = time.monotonic()
    self_test(engine, task, at)
    stored = remember_pass(engine, task, test_key, at, notes)
    return SelfTestRun(ran=True, seconds=time.monotonic() - started, stored=stored)


def install_tested(engine: Engine, task: str, at: Places, notes: list[str], always: bool) -> SelfTestRun:
    """Staging -> final, then its self-test; on a failed test put the previous output back."""
    swap_in(at)
    try:
        test = run_self_test(engine, task, at, notes, always)
    except PipelineError:
        discard(at.final, at.trash)
        if at.backup.exists():
            os.replace(at.backup, at.final)
        raise
    discard(at.backup, at.trash)
    return test


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError, shutil.copytree's list of per-file errors included."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        src, _dst, why = exc.args[0][0]  # `why` names the destination already
        return f"{why} (copying from {src})"
    return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)


def run_task(engine: Engine, task: str) -> dict[str, str]:
    """Bring one task's output up to date.

    Returns {"outcome": "up to date" | "restored" | "downloaded" | "tested" | "built", "note": ...};
    "tested": the output in place was the right one and only its self-test ran.
    A failure of the machine (a full disk, a permission) ends the task with one line;
    the previous output, if any, stays in place (rule 3 above).
    """
    started = time.monotonic()
    status = engine.status(task)  # also takes the build lock, and ends a killed run's steps
    if status.up_to_date:
        return {"outcome": "up to date"}
    notes = [f"{status.reason}: rerun"] if status.reason == UNREADABLE_RECORD else []
    try:
        return bring_up_to_date(engine, task, started, notes, retest_only=status.reason == SELF_TEST_CHANGED)
    except OSError as exc:
        raise TaskFailed(f"{task}: {describe_os_error(exc)}") from None
    finally:  # a failed attempt's staging only takes space (a full disk stays full otherwise)
        shutil.rmtree(Places.for_task(engine, task).staging, ignore_errors=True)


def bring_up_to_date(engine: Engine, task: str, started: float, notes: list[str],
                     retest_only: bool) -> dict[str, str]:
    """`retest_only`: the output in place is the one the key asks for (its record said so, and it
    matched its manifest); only the self-test changed, so only the self-test runs."""
    key = engine.keys.key(task)
    state_file = engine.paths.state_file(task)
    previous = read_state(state_file) if retest_only else None
    if previous is None:
        clear_state(state_file)
    at = Places.for_task(engine, task)
    if note := at.reset(key):
        notes.append(note)
        if previous is not None:  # a killed run's leftovers were put back: trust only the cache now
            clear_state(state_file)
            previous = None
    if previous is not None:
        test = run_self_test(engine, task, at, notes, always=False)
        outcome = "tested" if test.ran else "restored"  # not run: its pass came from the cache
        return finish(engine, task, at, Done(previous["manifest"], outcome, test), started, notes)
    restored = try_restore(engine, key, at, notes)
    if restored is not None:
        outcome, manifest = restored
        test = install_tested(engine, task, at, notes, always=False)
        return finish(engine, task, at, Done(manifest, outcome, test), started, notes)
    build_into(engine, task, at, notes)
    manifest = make_manifest(at.staging)
    test = install_tested(engine, task, at, notes, always=True)
    counts = engine.layer.step_counts(at.work)
    if counts:
        log_line(at.log, f"counts: {describe_counts(counts)}")
    # Stored before the record: a run killed mid-store has no record, so its rerun stores
    # again (and removes the killed store's temporary tree), where after the record it
    # would find the task up to date and the cache would miss the entry for good.
    try:
        engine.cache.store(key, at.final, manifest, time.monotonic() - started)
        stored = True
    except OSError as exc:  # the output is good; only the cache missed it
        notes.append(f"not stored in the cache: {describe_os_error(exc)}")
        log_line(at.log, f"warning: {notes[-1]}")
        stored = False
    done = Done(manifest, "built", test)
    return {**finish(engine, task, at, done, started, notes, push_output=stored), "counts": counts}


@dataclass(frozen=True)
class Done:
    """How a task came up to date: its output's manifest, the outcome shown, its self-test's run."""

    manifest: Manifest
    outcome: str
    test: SelfTestRun


def finish(engine: Engine, task: str, at: Places, done: Done, started: float, notes: list[str],
           push_output: bool = False) -> dict[str, str]:
    """Record the task as done, then push to the remote what this run made and cached: the output
    when it was built and stored here, the self-test's pass when the test ran and was stored here."""
    record(engine, task, done.manifest, done.outcome, time.monotonic() - started, done.test.seconds)
    test_key = engine.keys.test_key(task)
    made_here = [engine.keys.key(task)] if push_output else []
    if done.test.stored and test_key:
        made_here.append(test_key)
    if engine.remote is not None:  # a kill mid-push leaves the remote without it (see README)
        for key in made_here:
            noted("push", engine.remote.push(key, engine.cache), at.log, notes)
    if os.environ.get(KEEP_WORK_ENV, "") in ("", "0"):
        shutil.rmtree(at.work, ignore_errors=True)
    return {"outcome": done.outcome, "note": "; ".join(notes)}

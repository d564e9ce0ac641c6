"""The engine end to end on a fixture project whose steps run the host C compiler."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Project, second_run_while_first_holds, survivors_after


def test_first_run_builds_then_second_run_executes_nothing(project: Project) -> None:
    first = project.doit()
    assert sorted(project.runs()) == ["greeting", "hello", "standalone"]
    assert "summary: 3 built" in first.stdout
    assert (project.root / "build/greeting/greeting.txt").read_text() == "hello from a fixture\n"
    second = project.doit()
    assert project.runs() == []
    assert "3 up to date" in second.stdout


def test_edit_reruns_recipe_and_dependents_only_and_revert_restores(project: Project) -> None:
    project.doit()
    project.runs()
    project.edit("hello", "GREETING: hello", "GREETING: howdy")
    project.doit()
    assert sorted(project.runs()) == ["greeting", "hello"]
    assert (project.root / "build/greeting/greeting.txt").read_text() == "howdy from a fixture\n"

    project.edit("hello", "GREETING: howdy", "GREETING: hello")
    out = project.doit().stdout
    assert project.runs() == [], "a revert must restore from the cache, not build"
    assert "2 restored" in out
    assert (project.root / "build/greeting/greeting.txt").read_text() == "hello from a fixture\n"


def test_source_file_change_is_seen_without_mtime(project: Project) -> None:
    project.doit()
    project.runs()
    source = project.root / "src/hello.c"
    before = source.stat()
    time.sleep(0.01)  # a later write would get a later mtime, were it not restored
    # Same length, same inode (written in place), mtime restored: only the bytes differ.
    # ctime cannot be restored; a checker on (size, mtime) or (size, mtime, inode) sees nothing.
    text = source.read_text().replace("int main(void) {", "int main(void){").replace("fixture\\n", "fixture!\\n")
    source.write_text(text)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = source.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    project.doit()
    assert sorted(project.runs()) == ["greeting", "hello"]
    assert (project.root / "build/greeting/greeting.txt").read_text() == "hello from a fixture!\n"


def start_killable(project: Project, *args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "doit", *args], cwd=project.root, env=project.env(**env),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_sigkill_mid_step_ends_the_step_and_keeps_the_previous_output(project: Project) -> None:
    project.doit()
    project.runs()
    project.edit("hello", "GREETING: hello", "GREETING: howdy")
    proc = start_killable(project, "greeting", SLOW_STEP="60")
    wait_until(lambda: "greeting" in project.count_file.read_text(), "greeting's step never started")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not survivors_after(project.root), "the step's `sleep` (the runner's grandchild) ends with the runner"
    state = project.root / "build/.state/greeting.json"
    assert not state.exists(), "a killed task must not be recorded as done"
    greeting = project.root / "build/greeting/greeting.txt"
    assert greeting.read_text() == "hello from a fixture\n", "the previous good output stays in place"

    out = project.doit("greeting").stdout
    assert "built" in out
    assert greeting.read_text() == "howdy from a fixture\n"
    assert json.loads(state.read_text())["outcome"] == "built"
    assert not list((project.root / "build/.staging").iterdir()), "leftovers are cleaned"


def test_sigkill_during_self_test_never_leaves_the_untested_output_as_the_good_one(project: Project) -> None:
    """Killed after swap-in, mid self-test: the new output is in place, untested, the last good
    one in .staging/hello.old. A rerun whose self-test fails must leave that last good one."""
    project.edit("hello", '"$OUT/bin/hello" | grep', 'sleep "${SLOW_TEST:-0}"\n    "$OUT/bin/hello" | grep')
    project.doit()
    project.edit("hello", "GREETING: hello", "GREETING: howdy")
    proc = start_killable(project, "hello", SLOW_TEST="60")
    log = project.root / "build/logs/hello.log"
    def testing_howdy() -> bool:  # this run's log (the first run's has a test section too)
        text = log.read_text() if log.exists() else ""
        return "howdy" in text and "=== test" in text

    wait_until(testing_howdy, "hello's self-test never started")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not survivors_after(project.root), "the self-test's `sleep` ends with the runner"
    state = project.root / "build/.state/hello.json"
    assert not state.exists(), "an untested output is never recorded as done"

    def hello() -> str:
        return subprocess.run([project.root / "build/hello/bin/hello"], capture_output=True, text=True).stdout

    project.edit("hello", 'grep -q "from a fixture"', 'grep -q "never printed"')
    failed = project.doit("hello", check=False)
    assert failed.returncode != 0 and "self-test exited" in failed.stdout
    assert hello() == "hello from a fixture\n", "the last good output, not the killed run's untested one"
    assert not state.exists()

    project.edit("hello", 'grep -q "never printed"', 'grep -q "from a fixture"')
    project.doit("hello")
    assert hello() == "howdy from a fixture\n"
    assert json.loads(state.read_text())["outcome"] == "built"


def test_failed_rebuild_keeps_previous_good_output_and_is_not_up_to_date(project: Project) -> None:
    project.doit()
    project.edit("standalone", 'echo "{{ version }}"', "exit 3; echo")
    failed = project.doit("standalone", check=False)
    assert failed.returncode != 0
    assert "build step exited with 3" in failed.stdout
    assert "build/logs/standalone.log" in failed.stdout
    assert (project.root / "build/standalone/version.txt").read_text() == "1.0\n"
    again = project.doit("standalone", check=False)
    assert again.returncode != 0, "a failed task is never marked up to date"


def test_failing_self_test_keeps_previous_output(project: Project) -> None:
    project.doit()
    project.edit("hello", 'grep -q "from a fixture"', 'grep -q "never printed"')
    project.edit("hello", "GREETING: hello", "GREETING: broken")
    failed = project.doit("hello", check=False)
    assert failed.returncode != 0 and "self-test exited" in failed.stdout
    result = subprocess.run([project.root / "build/hello/bin/hello"], capture_output=True, text=True, check=True)
    assert result.stdout == "hello from a fixture\n"


def test_corrupt_cache_entry_is_detected_and_rebuilt(project: Project) -> None:
    project.doit()
    state = json.loads((project.root / "build/.state/standalone.json").read_text())
    entry = project.cache / "artifacts" / state["key"][:2] / state["key"] / "tree" / "version.txt"
    entry.write_text("9.9\n")  # same size, wrong content
    project.edit("standalone", 'echo standalone >>', 'true; echo standalone >>')
    project.doit()
    project.runs()
    project.edit("standalone", 'true; echo standalone >>', 'echo standalone >>')
    out = project.doit()
    assert "was corrupt" in out.stdout
    assert project.runs() == ["standalone"]
    assert (project.root / "build/standalone/version.txt").read_text() == "1.0\n"


def test_tampered_output_is_rebuilt_by_size_or_with_verify(project: Project) -> None:
    project.doit()
    project.runs()
    output = project.root / "build/standalone/version.txt"
    output.write_text("1.00\n")  # size changed: noticed by default
    project.doit()
    assert output.read_text() == "1.0\n", "a changed size is noticed: the output is put back"
    output.write_text("2.0\n")  # same size: noticed only with verify
    project.doit()
    assert output.read_text() == "2.0\n"
    project.doit(PIPELINE_VERIFY="1")
    assert output.read_text() == "1.0\n"


def test_concurrent_runs_wait_for_the_lock(project: Project) -> None:
    """The first run's step holds the lock until the second run says it waits: no timing involved."""
    release = project.root / "release"
    project.edit("greeting", 'sleep "${SLOW_STEP:-0}"', f'while [ ! -e "{release}" ]; do sleep 0.05; done')
    runs = second_run_while_first_holds(project, "greeting", release)
    assert runs.first.returncode == 0, runs.first.stdout + runs.first.stderr
    assert runs.second.returncode == 0, runs.second.stdout + runs.second.stderr
    assert "waiting for another run" in runs.said, runs.said + runs.second.stderr
    assert "3 up to date" in runs.second.stdout, "the second run found the first one's work done"
    assert sorted(project.runs()) == ["greeting", "hello", "standalone"], "each step ran exactly once"
    assert (project.root / "build/greeting/greeting.txt").read_text() == "hello from a fixture\n"


# Each step announces itself, then waits for the other one: only side by side do both pass.
RENDEZVOUS = """\
package:
  name: {me}
  version: "1.0"
build:
  script: |
    touch "$PROJECT_ROOT/{me}.started"
    for _ in $(seq 1 "${{RENDEZVOUS_TRIES:-600}}"); do
      [ -e "$PROJECT_ROOT/{other}.started" ] && break
      sleep 0.05
    done
    [ -e "$PROJECT_ROOT/{other}.started" ]
    echo ok > "$OUT/{me}.txt"
outputs: [{me}.txt]
"""


def test_independent_tasks_run_side_by_side(project: Project) -> None:
    for me, other in (("left", "right"), ("right", "left")):
        project.recipe(me).write_text(RENDEZVOUS.format(me=me, other=other))
    serial = project.doit("left", "right", check=False, PIPELINE_WORKERS="1", RENDEZVOUS_TRIES="10")
    assert serial.returncode != 0, "one at a time, the first step waits in vain"
    for started in project.root.glob("*.started"):
        started.unlink()
    side_by_side = project.doit("left", "right", PIPELINE_WORKERS="2")
    assert "summary: 2 built" in side_by_side.stdout
    assert (project.root / "build/left/left.txt").read_text() == "ok\n"


def test_explain_names_the_changed_input(project: Project) -> None:
    project.doit()
    project.edit("hello", "GREETING: hello", "GREETING: howdy")
    out = project.cli("explain", "greeting").stdout
    assert "hello: would build" in out
    assert "recipe.build.env.GREETING: 'hello' -> 'howdy'" in out
    assert "greeting: would build" in out and "deps.hello" in out
    # explaining greeting covers greeting and what it depends on, nothing else
    assert {line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")} == {"hello", "greeting"}
    everything = project.cli("explain").stdout.splitlines()
    assert "standalone: up to date" in everything, everything  # unchanged: not rebuilt, and said so
    assert any(line.startswith("hello: would build") for line in everything)


def test_check_validates_every_recipe_and_prints_the_build_order(project: Project) -> None:
    out = project.cli("check").stdout.strip()
    assert out.startswith("ok: 3 recipes, order: "), out
    order = out.split("order: ", 1)[1].split()
    assert sorted(order) == ["greeting", "hello", "standalone"]
    assert order.index("hello") < order.index("greeting"), "a dependency comes first"
    project.edit("greeting", "depends: [hello]", "depends: [hello, nosuch]")
    bad = project.cli("check", check=False)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == ("error: recipes/greeting.yaml: depends[1]: unknown dependency 'nosuch' "
                          "(no recipe defines it)\n")


def test_key_ignores_checkout_location(tmp_path: Path) -> None:
    from conftest import make_project

    one = make_project(tmp_path / "a")
    two = make_project(tmp_path / "b")
    two.cache = one.cache  # share one cache between two checkouts
    one.doit()
    out = two.doit().stdout
    assert "3 restored" in out


def test_prune_bounds_the_cache(project: Project) -> None:
    project.doit()
    # three outputs, and hello's self-test pass (keyed by its test key: engine/keys.py)
    assert len(list((project.cache / "artifacts").glob("*/*/manifest.json"))) == 4
    out = project.cli("prune", "--max-size", "0").stdout
    assert "removed 4 entries" in out
    assert not list((project.cache / "artifacts").glob("*/*/manifest.json"))


def test_prune_evicts_least_recently_used_first(project: Project) -> None:
    """Last use is a restore (or the store); prune drops the oldest until the bound holds."""
    project.doit()
    keys = {task: json.loads((project.root / f"build/.state/{task}.json").read_text())["key"] for task in
            ("hello", "greeting", "standalone")}
    entries = {task: project.cache / "artifacts" / key[:2] / key for task, key in keys.items()}
    now = time.time()
    for age, task in ((3000, "hello"), (2000, "greeting"), (1000, "standalone")):  # stored long ago
        os.utime(entries[task] / "manifest.json", (now - age, now - age))
    shutil.rmtree(project.root / "build/hello")
    assert "1 restored" in project.doit("hello").stdout  # hello, the oldest, is used again: now the newest

    def size(task: str) -> int:
        manifest = json.loads((entries[task] / "manifest.json").read_text())
        return sum(item[0] for item in manifest.values() if item[0] != "link")

    # hello's restore used its self-test's pass too (a tiny entry, kept with it)
    hello_test = json.loads((project.root / "build/.state/hello.json").read_text())["test_key"]
    entries["hello self-test"] = project.cache / "artifacts" / hello_test[:2] / hello_test
    project.cli("prune", "--max-size", str(size("hello") + size("hello self-test") + size("standalone")))
    assert {task for task, entry in entries.items() if entry.exists()} == {"hello", "hello self-test", "standalone"}
    project.cli("prune", "--max-size", str(size("hello") + size("hello self-test")))
    assert {task for task, entry in entries.items() if entry.exists()} == {"hello", "hello self-test"}


def test_schema_is_json_schema_with_kebab_names(project: Project) -> None:
    schema = json.loads(project.cli("schema").stdout)
    build = schema["$defs"]["Build"]["properties"]
    assert "configure-args" in build and "cross-script" in build
    assert schema["additionalProperties"] is False


def test_the_engine_alone_builds_a_project_without_a_layer(project: Project) -> None:
    """No wasm layer: the engine's keys only in pipeline.yaml, shell recipes, a dodo.py naming
    the empty layer. The wasm layer's settings and template variables are then unknown."""
    (project.root / "pipeline.yaml").write_text("# the engine alone\njobs: 1\n")
    dodo = "from pipeline.engine.tasks import doit_namespace\n\n"
    dodo += "globals().update(doit_namespace(__file__, 'pipeline.engine.layer:NO_LAYER'))\n"
    (project.root / "dodo.py").write_text(dodo)
    first = project.doit()
    assert sorted(project.runs()) == ["greeting", "hello", "standalone"] and "summary: 3 built" in first.stdout
    assert (project.root / "build/greeting/greeting.txt").read_text() == "hello from a fixture\n"
    assert "3 up to date" in project.doit().stdout

    (project.root / "pipeline.yaml").write_text("malloc: dlmalloc\n")
    proc = project.doit(check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: {project.root / 'pipeline.yaml'}: malloc: unknown key"]
    (project.root / "pipeline.yaml").write_text("jobs: 1\n")
    project.edit("standalone", '"{{ version }}"', '"{{ tc.cc }}"')
    proc = project.doit(check=False)
    assert proc.returncode == 2 and "build.script: undefined template variable: 'tc' is undefined" in proc.stderr

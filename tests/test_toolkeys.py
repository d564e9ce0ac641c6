"""Our own tool code is keyed automatically: the import closure of every `-m pipeline...` a task runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import REPO, Project, make_project

from pipeline.engine.hashing import StatCache
from pipeline.engine.toolkeys import import_closure, modules_run_by

# link's closure reaches pipeline/errors.py only through `from ..errors import ...`
TOOL_RECIPE = """\
package:
  name: tooluser
  version: "1"
build:
  script: |
    echo tooluser >> "$COUNT_FILE"
    "$PYTHON" -m pipeline.wasmbuild.link --help > "$OUT/help.txt"
outputs: [help.txt]
"""


def test_modules_named_in_a_script_are_found() -> None:
    script = '"$PYTHON" -m pipeline.wasmbuild.link --cpython x\npython3 -m pipeline provision\n-m pip install x\n'
    assert modules_run_by(script) == {"pipeline.wasmbuild.link", "pipeline"}


def test_closure_follows_imports_and_package_inits() -> None:
    closure = import_closure({"pipeline.wasmbuild.link"}, StatCache(None))
    assert "pipeline/wasmbuild/link.py" in closure
    assert "pipeline/errors.py" in closure, "reached through `from ..errors import`"
    assert "pipeline/__init__.py" in closure and "pipeline/wasmbuild/__init__.py" in closure
    assert "pipeline/runtime/faasm_host.py" not in closure
    whole_cli = import_closure({"pipeline"}, StatCache(None))
    assert "pipeline/__main__.py" in whole_cli, "`python -m pipeline` runs pipeline/__main__.py"


def project_with_own_code(tmp_path: Path) -> tuple[Project, Path]:
    """A fixture project whose `pipeline` package is a private copy the test may edit."""
    project = make_project(tmp_path)
    code = tmp_path / "code"
    shutil.copytree(REPO / "pipeline", code / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    (project.recipe("tooluser")).write_text(TOOL_RECIPE)
    return project, code


def test_editing_a_module_reached_only_by_import_reruns_the_task(tmp_path: Path) -> None:
    project, code = project_with_own_code(tmp_path)
    env = {"PYTHONPATH": str(code)}
    project.doit("tooluser", **env)
    assert project.runs() == ["tooluser"]
    project.doit("tooluser", **env)
    assert project.runs() == [], "nothing changed: nothing runs"

    unrelated = code / "pipeline/runtime/faasm_host.py"
    unrelated.write_text(unrelated.read_text() + "\nEDITED_OUTSIDE_THE_CLOSURE = True\n")
    project.doit("tooluser", **env)
    assert project.runs() == [], "a module the task never runs is not in its key"

    errors = code / "pipeline/errors.py"
    errors.write_text(errors.read_text() + "\nEDITED_INSIDE_THE_CLOSURE = True\n")
    out = project.doit("tooluser", **env).stdout
    assert project.runs() == ["tooluser"], out


def test_docstring_and_comment_edits_do_not_rebuild_but_code_edits_do(tmp_path: Path) -> None:
    project, code = project_with_own_code(tmp_path)
    env = {"PYTHONPATH": str(code)}
    project.doit("tooluser", **env)
    project.runs()
    package_init = code / "pipeline/wasmbuild/__init__.py"
    text = package_init.read_text()
    package_init.write_text(text.replace('"""The wasm build tools', '"""The wasm build tools (edited map)'))
    errors = code / "pipeline/errors.py"
    errors.write_text("# a new comment line shifts every line number\n" + errors.read_text())
    project.doit("tooluser", **env)
    assert project.runs() == [], "a docstring or comment is not what the tool does"
    errors.write_text(errors.read_text().replace("BAD_INPUT = 2", "BAD_INPUT = 22"))
    project.doit("tooluser", **env)
    assert project.runs() == ["tooluser"]


# Only the self-test runs our code: the build step runs none of it.
SELF_TESTED_RECIPE = """\
package:
  name: selftested
  version: "1"
build:
  script: |
    echo selftested >> "$COUNT_FILE"
    echo made > "$OUT/made.txt"
outputs: [made.txt]
test:
  commands: |
    echo selftested-test >> "$COUNT_FILE"
    "$PYTHON" -m pipeline.wasmbuild.link --help > /dev/null
"""
DOWNSTREAM_RECIPE = """\
package:
  name: downstream
  version: "1"
depends: [selftested]
build:
  script: |
    echo downstream >> "$COUNT_FILE"
    cp "{{ deps.selftested.out }}/made.txt" "$OUT/copied.txt"
outputs: [copied.txt]
"""


def project_with_a_self_test(tmp_path: Path) -> tuple[Project, Path, dict[str, str]]:
    project, code = project_with_own_code(tmp_path)
    project.recipe("selftested").write_text(SELF_TESTED_RECIPE)
    project.recipe("downstream").write_text(DOWNSTREAM_RECIPE)
    env = {"PYTHONPATH": str(code)}
    project.doit("downstream", **env)
    assert project.runs() == ["selftested", "selftested-test", "downstream"]
    return project, code / "pipeline/wasmbuild/link.py", env


def test_a_change_only_the_self_test_runs_reruns_the_self_test_alone(tmp_path: Path) -> None:
    project, link, env = project_with_a_self_test(tmp_path)
    link.write_text(link.read_text() + "\nEDITED_FOR_THE_SELF_TEST = True\n")
    why = project.cli("explain", "downstream", **env).stdout
    assert "selftested: would rerun its self-test alone (self-test changed)" in why, why
    assert "changed: tools.pipeline/wasmbuild/link.py" in why, why
    assert "downstream: up to date" in why, "its input, the build's output, is the same"
    out = project.doit("downstream", **env).stdout
    assert project.runs() == ["selftested-test"], out
    assert "1 tested" in out and "1 up to date" in out, out
    project.doit("downstream", **env)
    assert project.runs() == [], "the new self-test passed: recorded"


def self_test_passes(project: Project) -> list[str]:
    """The test keys of the cached self-test passes (engine/runner.py: remember_pass)."""
    return sorted(json.loads(path.read_text())["test_key"]
                  for path in (project.cache / "artifacts").glob("*/*/tree/passed.json"))


def test_a_broken_self_test_fails_the_task_and_never_leaves_a_passing_record(tmp_path: Path) -> None:
    project, link, env = project_with_a_self_test(tmp_path)
    passes = self_test_passes(project)
    record = project.root / "build/.state/selftested.json"
    build_key = json.loads(record.read_text())["key"]
    good = link.read_text()
    future = "from __future__ import annotations\n"
    link.write_text(good.replace(future, future + "raise SystemExit(3)\n"))
    for attempt in range(2):
        if attempt:  # the output's cache entry pruned meanwhile: the output in place is still the one
            shutil.rmtree(project.cache / "artifacts" / build_key[:2] / build_key)
        failed = project.doit("downstream", check=False, **env)
        assert failed.returncode != 0 and "self-test exited with 3" in failed.stdout, failed.stdout
        assert project.runs() == ["selftested-test"], "the self-test alone, never the build, and it fails again"
        assert self_test_passes(project) == passes, "a failing self-test leaves no pass"
        why = project.cli("explain", "selftested", **env).stdout
        assert "would rerun its self-test alone" in why, "the record does not vouch for the broken self-test"
    link.write_text(good)
    out = project.doit("downstream", **env).stdout
    assert project.runs() == [] and "2 up to date" in out, "the old self-test passed on this very output"


def test_a_package_build_does_not_run_the_guest_runner_or_the_linker() -> None:
    """Only the package's self-test (importtest) links and runs a python.wasm: an edit to either
    reruns the packages' self-tests, never their builds."""
    build = import_closure({"pipeline.wasmbuild.pypackage"}, StatCache(None))
    assert "pipeline/runtime/wasm.py" not in build and "pipeline/wasmbuild/link.py" not in build
    test = import_closure({"pipeline.wasmbuild.importtest"}, StatCache(None))
    assert "pipeline/runtime/wasm.py" in test and "pipeline/wasmbuild/link.py" in test


def test_push_sends_an_output_whose_self_test_alone_changed_but_no_pass_for_it(tmp_path: Path) -> None:
    project, link, env = project_with_a_self_test(tmp_path)
    link.write_text(link.read_text() + "\nEDITED_FOR_THE_SELF_TEST = True\n")
    remote = tmp_path / "remote"
    out = project.cli("push", "selftested", **env, PIPELINE_REMOTE_CACHE=f"file://{remote}").stdout
    assert "its current self-test has not passed here" in out and "pushed 1 tasks" in out, out
    key = json.loads((project.root / "build/.state/selftested.json").read_text())["key"]
    assert sorted(path.name for path in (remote / "ac").iterdir()) == [key], "the output, and no pass"

"""Our own tool code is keyed automatically: the import closure of every `-m pipeline...` a task runs."""

from __future__ import annotations

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

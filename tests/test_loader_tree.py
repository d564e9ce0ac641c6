"""Recipe trees: Pyodide's folder names, and a tree where some recipes fail to load.

Project mode (the default) fails on the first bad recipe with one line; tree mode
(`check --keep-going`, `$PIPELINE_KEEP_GOING=1` for doit) lists each recipe that fails to
load as skipped, with everything that depends on it, and goes on with the rest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Project


def package(project: Project, folder: str, name: str, *, run: tuple[str, ...] = (), body: str = "") -> Path:
    """A Pyodide-style recipes/packages/<folder>/meta.yaml with a shell build."""
    target = project.root / "recipes" / "packages" / folder / "meta.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    requirements = f"requirements:\n  run: [{', '.join(run)}]\n" if run else ""
    target.write_text(body or (
        f"package:\n  name: {name}\n  version: \"1.0\"\n{requirements}"
        "build:\n  builder: shell\n  script: |\n"
        f"    echo {name} > \"$OUT/built.txt\"\noutputs: [built.txt]\n"))
    return target


def order_of(proc_stdout: str) -> list[str]:
    last = proc_stdout.strip().splitlines()[-1]
    return last.split("order: ", 1)[1].split()


# --- a recipe folder may have any name Pyodide allows ------------------------------------------


def test_a_recipe_folder_named_like_a_yaml_file_is_a_pyodide_recipe(project: Project) -> None:
    package(project, "ruamel.yaml", "ruamel.yaml")
    (project.root / "recipes" / "notes.yaml").mkdir()  # a folder that is no recipe: not read as one
    (project.root / "recipes" / "notes.yaml" / "README").write_text("not a recipe\n")
    out = project.cli("check")
    assert "packages:ruamel.yaml" in order_of(out.stdout), out.stdout
    project.doit("packages:ruamel.yaml")
    assert (project.root / "build/packages/ruamel.yaml/built.txt").read_text() == "ruamel.yaml\n"


# --- one invalid recipe ---------------------------------------------------------------------------


BROKEN = "package:\n  name: broken\n  version: [not, a, version\n"  # invalid YAML


def broken_tree(project: Project) -> None:
    package(project, "broken", "broken", body=BROKEN)
    package(project, "needsbroken", "needsbroken", run=("broken",))
    package(project, "needsneedsbroken", "needsneedsbroken", run=("needsbroken",))
    package(project, "fine", "fine")


def test_project_mode_still_fails_fast_in_one_line(project: Project) -> None:
    broken_tree(project)
    proc = project.cli("check", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: recipes/packages/broken/meta.yaml: line "), proc.stderr
    doit = project.doit("packages:fine", check=False)
    assert doit.returncode == 2 and len(doit.stderr.splitlines()) == 1, doit.stderr
    assert not (project.root / "build/packages").exists()


def test_tree_mode_skips_an_unloadable_recipe_and_its_dependents(project: Project) -> None:
    broken_tree(project)
    proc = project.cli("check", "--keep-going", check=False)
    assert proc.returncode == 2
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 3, proc.stdout
    assert any(line.startswith("skipped: recipes/packages/broken/meta.yaml: line ") for line in skipped)
    assert ("skipped: recipes/packages/needsbroken/meta.yaml: requirements.run[0]: needs 'broken', "
            "whose recipe recipes/packages/broken/meta.yaml failed to load") in skipped
    assert ("skipped: recipes/packages/needsneedsbroken/meta.yaml: requirements.run[0]: "
            "needs packages:needsbroken, which is skipped") in skipped
    assert sorted(order_of(proc.stdout)) == ["greeting", "hello", "packages:fine", "standalone"]
    assert proc.stderr == "error: 3 of 7 recipes skipped (listed above)\n"
    # JSON names them too
    data = json.loads(project.cli("check", "--keep-going", "--json", check=False).stdout)
    assert sorted(data["skipped"]) == [f"recipes/packages/{n}/meta.yaml"
                                       for n in ("broken", "needsbroken", "needsneedsbroken")]

    # doit builds the rest, saying what it skipped; a fixed recipe comes back
    out = project.doit("packages:fine", PIPELINE_KEEP_GOING="1")
    assert (project.root / "build/packages/fine/built.txt").read_text() == "fine\n"
    assert out.stderr.count("skipped: ") == 3, out.stderr
    again = project.doit("packages:fine", PIPELINE_KEEP_GOING="1")
    assert again.stderr.count("skipped: ") == 3, "a partial graph is not memoized: every run says what it skips"
    package(project, "broken", "broken")
    out = project.doit("packages", PIPELINE_KEEP_GOING="1")
    assert "skipped" not in out.stderr
    assert (project.root / "build/packages/needsneedsbroken/built.txt").exists()


def test_tree_mode_skips_unknown_dependencies_cycles_and_template_errors(project: Project) -> None:
    package(project, "orphan", "orphan", run=("nosuch",))
    package(project, "ping", "ping", run=("pong",))
    package(project, "pong", "pong", run=("ping",))
    package(project, "templated", "templated", body=(
        "package:\n  name: templated\n  version: \"1.0\"\nbuild:\n  builder: shell\n"
        "  script: echo {{ no_such_variable }}\n"))
    package(project, "needstemplated", "needstemplated", run=("templated",))
    proc = project.cli("check", "--keep-going", check=False)
    reasons = {line.split(": ", 2)[1]: line for line in proc.stdout.splitlines() if line.startswith("skipped: ")}
    assert sorted(reasons) == [f"recipes/packages/{n}/meta.yaml"
                               for n in ("needstemplated", "orphan", "ping", "pong", "templated")], proc.stdout
    assert "unknown dependency 'nosuch'" in reasons["recipes/packages/orphan/meta.yaml"]
    assert "dependency cycle" in reasons["recipes/packages/ping/meta.yaml"]
    assert "no_such_variable" in reasons["recipes/packages/templated/meta.yaml"]
    assert "needs packages:templated, which is skipped" in reasons["recipes/packages/needstemplated/meta.yaml"]
    assert sorted(order_of(proc.stdout)) == ["greeting", "hello", "standalone"]


@pytest.mark.parametrize("value", ["yes", "true"])
def test_a_bad_keep_going_value_is_one_line(project: Project, value: str) -> None:
    proc = project.cli("check", check=False, PIPELINE_KEEP_GOING=value)
    assert proc.returncode == 2
    assert proc.stderr == f"error: $PIPELINE_KEEP_GOING: {value!r} must be 1 (skip recipes that fail to load) or 0\n"

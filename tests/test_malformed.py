"""Each kind of bad input: one line naming file and field, non-zero exit, build/ untouched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import Project, make_project

GOOD_SHA = "ab" * 32


def replace(name: str, old: str, new: str):
    def mutate(project: Project) -> None:
        project.edit(name, old, new)

    return mutate


def write(rel: str, text: str):
    def mutate(project: Project) -> None:
        path = project.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return mutate


URL_SOURCE = "source:\n  url: file:///nonexistent.tar.gz\n"
CASES = {
    "unknown key": (replace("standalone", "build:", "bogus: 1\nbuild:"), "recipes/standalone.yaml: bogus: unknown key"),
    "unknown nested key": (replace("standalone", "  script:", "  scrip: x\n  script:"), "build.scrip: unknown key"),
    "wrong type": (replace("greeting", "depends: [hello]", "depends: {a: 1}"), "recipes/greeting.yaml: depends"),
    "wrong type in env": (replace("hello", "GREETING: hello", "GREETING: [1, 2]"), "build.env.GREETING"),
    "missing sha256": (replace("standalone", "build:", URL_SOURCE + "build:"), "source.sha256: is required"),
    "malformed sha256": (
        replace("standalone", "build:", URL_SOURCE + "  sha256: abc123\nbuild:"),
        "source.sha256: 'abc123' is not a sha256",
    ),
    "cycle": (replace("hello", '  version: "1.0"\n', '  version: "1.0"\ndepends: [greeting]\n'), "cycle: "),
    "unknown dependency": (
        replace("greeting", "depends: [hello]", "depends: [hello, nosuch]"),
        "recipes/greeting.yaml: depends[1]: unknown dependency 'nosuch'",
    ),
    "undefined template variable": (
        replace("standalone", "{{ version }}", "{{ nosuch.thing }}"),
        "recipes/standalone.yaml: build.script: undefined template variable",
    ),
    "template syntax error": (replace("standalone", "{{ version }}", "{{ version"), "build.script: template error"),
    "patch outside recipe folder": (
        replace("hello", "  path: ../src\n", "  path: ../src\n  patches: [../../../../etc/hostname]\n"),
        "source.patches[0]: 'hostname' lies outside",
    ),
    "missing patch file": (
        replace("hello", "  path: ../src\n", "  path: ../src\n  patches: [nosuch.patch]\n"),
        "source.patches[0]: patch file 'nosuch.patch' does not exist",
    ),
    "duplicate name": (
        write("recipes/standalone2.yaml", "package: {name: standalone, version: '2'}\n"),
        "recipes/standalone2.yaml: package.name: duplicate name 'standalone'",
    ),
    "missing name": (
        write("recipes/noname.yaml", "package: {version: '2'}\n"),
        "recipes/noname.yaml: package.name: is required",
    ),
    "two source kinds": (
        replace("hello", "  path: ../src\n", f"  path: ../src\n  url: file:///x.tgz\n  sha256: {GOOD_SHA}\n"),
        "recipes/hello.yaml: source: needs exactly one of",
    ),
    "pypi without version": (
        replace("standalone", "build:", f"source:\n  pypi: six\n  sha256: {GOOD_SHA}\nbuild:"),
        "source.version: is required",
    ),
    "invalid yaml": (write("recipes/broken.yaml", "package: [unclosed\n"), "recipes/broken.yaml: line"),
    "not a mapping": (write("recipes/list.yaml", "- a\n- b\n"), "recipes/list.yaml: a recipe must be a mapping"),
    "bad name": (
        write("recipes/bad.yaml", "package: {name: 'a b', version: '1'}\n"),
        "package.name: 'a b' is not a valid name",
    ),
    "template in literal field": (
        replace("greeting", "depends: [hello]", "depends: ['{{ x }}']"),
        "depends[0]: '{{ x }}' is not a task name",
    ),
    "bad config value": (
        write("pipeline.yaml", "malloc: tcmalloc\n"),
        "pipeline.yaml: malloc: Input should be 'dlmalloc' or 'mimalloc'",
    ),
    "output path escapes": (replace("standalone", "outputs: [version.txt]", "outputs: [../x]"), "outputs[0]"),
}


def snapshot(top: Path) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for dirpath, _, files in os.walk(top):
        for name in files:
            path = Path(dirpath) / name
            st = path.lstat()
            found[str(path.relative_to(top))] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = make_project(tmp_path_factory.mktemp("built"))
    project.doit()
    return project


@pytest.mark.parametrize("kind", sorted(CASES))
def test_malformed_input_gives_one_line_error(kind: str, built: Project, tmp_path: Path) -> None:
    mutate, expected = CASES[kind]
    shutil.copytree(built.root, tmp_path / "project", symlinks=True)
    project = Project(tmp_path / "project", built.cache)
    mutate(project)
    before_build, before_cache = snapshot(project.root / "build"), snapshot(project.cache)
    proc = project.doit(check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0], lines[0]
    assert lines[0].startswith("error: ")
    assert snapshot(project.root / "build") == before_build
    assert snapshot(project.cache) == before_cache


def test_checkout_path_with_a_space_is_refused_up_front(built: Project, tmp_path: Path) -> None:
    project = Project(tmp_path / "my project", built.cache)
    shutil.copytree(built.root, project.root, symlinks=True)
    before = snapshot(project.root / "build")
    proc = project.doit(check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: checkout path {str(project.root)!r} contains whitespace, "
                     "which autotools builds cannot handle"], proc.stderr
    assert snapshot(project.root / "build") == before

"""Each kind of bad input: one line naming file and field, non-zero exit, build/ untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
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


def both(first: Callable[[Project], None], second: Callable[[Project], None]) -> Callable[[Project], None]:
    def mutate(project: Project) -> None:
        first(project)
        second(project)

    return mutate


SHELL_BUILD = "build: {builder: shell, script: 'true'}\n"
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
    "package names equal under PEP 503": (
        both(write("recipes/packages/Six.yaml", f"package: {{name: Six, version: '1'}}\n{SHELL_BUILD}"),
             write("recipes/packages/six.yaml", f"package: {{name: six, version: '1'}}\n{SHELL_BUILD}")),
        "recipes/packages/six.yaml: package.name: 'six' and 'Six' (in recipes/packages/Six.yaml) are one package "
        "name (PEP 503 normalisation)",
    ),
    "source path outside the checkout": (
        replace("hello", "  path: ../src\n", "  path: ../../../../../../../../etc\n"),
        "recipes/hello.yaml: source.path: '../../../../../../../../etc' lies outside ./: its key would depend on "
        "files of this machine outside any checkout; an external source is a pinned `url:` with its `sha256:`",
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


def write_bytes(rel: str, data: bytes):
    def mutate(project: Project) -> None:
        path = project.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return mutate


def config(text: str):
    """pipeline.yaml: the fixture's own settings (lines 1-3), then `text` from line 4 on."""
    return write("pipeline.yaml", "# fixture\ntoolchain-recipe: null\nsysroot-recipe: null\n" + text)


def remove(rel: str):
    def mutate(project: Project) -> None:
        shutil.rmtree(project.root / rel)

    return mutate


def nothing(project: Project) -> None:
    pass


def several(*mutations: Callable[[Project], None]):
    def mutate(project: Project) -> None:
        for mutation in mutations:
            mutation(project)

    return mutate


@dataclass(frozen=True)
class Case:
    """One kind of bad input: how to make it, the words its one error line holds, how it is met.

    `cli` None runs `doit` (the build); otherwise `python -m pipeline` with those arguments.
    """

    mutate: Callable[[Project], None]
    expected: str
    cli: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)


NOT_PYTHON = "def broken(:\n    return 1\n"
FAKE_RUNTIME = write("fake-root/bin/python.wasm", "")  # enough for invoke to look for the function
# Found by feeding each input a build tool reads something a person could plausibly write wrong.
MORE_CASES = {
    "duplicate key": Case(
        replace("hello", '  version: "1.0"\n', '  version: "1.0"\n  version: "1.1"\n'),
        "recipes/hello.yaml: line 4: duplicate key 'version' (first at line 3)",
    ),
    "duplicate section": Case(
        write("recipes/twice.yaml", "package: {name: twice, version: '1'}\nbuild: {script: 'true'}\n"
              "package: {name: again, version: '2'}\n"),
        "recipes/twice.yaml: line 3: duplicate key 'package' (first at line 1)",
    ),
    "duplicate key in config": Case(config("jobs: 2\njobs: 3\n"), "pipeline.yaml: line 5: duplicate key 'jobs'"),
    "version read as a number": Case(
        replace("standalone", 'version: "1.0"', "version: 1.10"),
        "recipes/standalone.yaml: package.version: YAML read this version as the number 1.1, which may not be "
        'what is written: quote it (version: "...")',
    ),
    "integer version": Case(replace("standalone", 'version: "1.0"', "version: 010"), "as the number 8,"),
    "source version read as a number": Case(
        replace("standalone", "build:", f"source:\n  pypi: six\n  version: 1.10\n  sha256: {GOOD_SHA}\nbuild:"),
        "recipes/standalone.yaml: source.version: YAML read this version as the number 1.1",
    ),
    # the wasm layer's keys (wasmbuild/settings.py) fail like the engine's own
    "wasm setting: bad allocator": Case(config("malloc: jemalloc\n"),
                                        "pipeline.yaml: malloc: Input should be 'dlmalloc' or 'mimalloc'"),
    "wasm setting: bad preload": Case(config('snapshot-preload: ["1x"]\n'),
                                      "pipeline.yaml: snapshot-preload: '1x' is not a module name"),
    "wasm setting: compile cache size": Case(config("compile-cache-size: lots\n"),
                                             "pipeline.yaml: compile-cache-size: 'lots' is not a size"),
    "pin names a version not pinned": Case(
        config("versions:\n  llvm: '1:22.1.8-1'\ntoolchain-packages: ['clang-{llvm.major}={llvm}', 'lld={lld}']\n"),
        "pipeline.yaml: toolchain-packages: 'lld={lld}': {lld} is not in versions (llvm)"),
    "toolchain without an llvm version": Case(
        write("pipeline.yaml", "toolchain-recipe: toolchain\nsysroot-recipe: null\n"),
        "pipeline.yaml: versions: needs llvm, the Debian version of the LLVM toolchain"),
    "config version read as a number": Case(
        config("versions:\n  python: 3.10\n"),
        'pipeline.yaml: versions: YAML read this version of python as the number 3.1, which may not be what is '
        'written: quote it (python: "...")',
    ),
    "float in env": Case(
        replace("hello", "GREETING: hello", "GREETING: 1.10"),
        "recipes/hello.yaml: build.env: YAML read this value of GREETING as the number 1.1",
    ),
    "recipe not UTF-8": Case(
        write_bytes("recipes/latin1.yaml", b"package:\n  name: latin1\n  version: caf\xe9\n"),
        "recipes/latin1.yaml: line 3: not UTF-8 text (byte 0xe9 at offset 38)",
    ),
    "recipe of binary garbage": Case(
        write_bytes("recipes/garbage.yaml", bytes(range(256)) * 4),
        "recipes/garbage.yaml: line 2: not UTF-8 text (byte 0x80 at offset 128)",
    ),
    "config not UTF-8": Case(
        write_bytes("pipeline.yaml", b"malloc: dl\xffmalloc\n"), "pipeline.yaml: line 1: not UTF-8",
    ),
    "negative jobs": Case(
        config("jobs: -3\n"), "pipeline.yaml: jobs: Input should be greater than or equal to 1 (got -3)",
    ),
    "zero workers": Case(config("workers: 0\n"), "pipeline.yaml: workers: Input should be greater than or equal to 1"),
    "absurd workers": Case(config("workers: 100000\n"), "workers: Input should be less than or equal to 1024"),
    "jobs not a number": Case(config("jobs: lots\n"), "pipeline.yaml: jobs: Input should be a valid integer"),
    "fractional jobs": Case(config("jobs: 1.5\n"), "pipeline.yaml: jobs: Input should be a valid integer"),
    "workers from the environment": Case(
        nothing, "error: $PIPELINE_WORKERS: '0' is not a count from 1 to 1024", env={"PIPELINE_WORKERS": "0"},
    ),
    "jobs from the environment": Case(nothing, "$PIPELINE_JOBS: 'two' is not a count", env={"PIPELINE_JOBS": "two"}),
    "remote cache scheme": Case(
        config("remote-cache: ftp://cache/pywasm\n"),
        "pipeline.yaml: remote-cache: 'ftp://cache/pywasm': the scheme must be one of http, https, file, s3",
    ),
    "s3 remote without a bucket": Case(
        config("remote-cache: s3:///pywasm\n"), "remote-cache: 's3:///pywasm': needs a bucket after s3://",
    ),
    "http remote without a host": Case(config("remote-cache: 'http:/cache'\n"), "needs a host after http://"),
    "relative file remote": Case(
        config("remote-cache: file://shared/cache\n"),
        "remote-cache: 'file://shared/cache': a file:// remote is file:///absolute/dir (no host, no relative path)",
    ),
    "remote cache from the environment": Case(
        nothing, "$PIPELINE_REMOTE_CACHE: 'shared-cache': the scheme must be",
        env={"PIPELINE_REMOTE_CACHE": "shared-cache"},
    ),
    "read-only flag that reads as its opposite": Case(
        nothing, "$PIPELINE_REMOTE_READONLY: 'false' must be 1 (fetch only) or 0",
        env={"PIPELINE_REMOTE_READONLY": "false"},
    ),
    "remote-readonly not a boolean": Case(
        config("remote-readonly: maybe\n"), "pipeline.yaml: remote-readonly: Input should be a valid boolean",
    ),
    "config not a mapping": Case(write("pipeline.yaml", "- jobs\n"), "pipeline.yaml: must be a mapping"),
    "empty recipe": Case(write("recipes/empty.yaml", ""), "recipes/empty.yaml: a recipe must be a mapping"),
    "missing input file": Case(
        replace("standalone", "build:", "inputs: [nosuch.txt]\nbuild:"),
        "recipes/standalone.yaml: inputs[0]: 'nosuch.txt' does not exist",
    ),
    "missing source folder": Case(
        replace("hello", "path: ../src", "path: ../nosrc"),
        "recipes/hello.yaml: source.path: '../nosrc' does not exist",
    ),
    "no recipes folder": Case(remove("recipes"), "error: recipes/: no such folder in "),
    "cache dir is a file": Case(
        write("cache-file", "not a directory\n"), "(cache-dir, or $PIPELINE_CACHE_DIR) is not a directory",
        env={"PIPELINE_CACHE_DIR": "cache-file"},
    ),
    # the command line
    "unknown command": Case(nothing, "argument COMMAND: invalid choice: 'bogus'", cli=("bogus",)),
    "root not a directory": Case(
        nothing, "argument --root: 'nosuch' is not a directory", cli=("--root", "nosuch", "check"),
    ),
    "prune size not a size": Case(
        nothing, "python -m pipeline prune: argument --max-size: 'lots' is not a size (e.g. 500M, 10G)",
        cli=("prune", "--max-size", "lots"),
    ),
    "prune size missing": Case(nothing, "the following arguments are required: --max-size", cli=("prune",)),
    "explain an unknown task": Case(nothing, "error: unknown task 'nosuch'; known: ", cli=("explain", "nosuch")),
    "graph of an unknown task": Case(nothing, "error: unknown task 'nosuch'; known: ", cli=("graph", "nosuch")),
    "schema into a missing folder": Case(
        nothing, "error: --output nosuch/schema.json: cannot write: No such file or directory",
        cli=("schema", "-o", "nosuch/schema.json"),
    ),
    "result before a build": Case(nothing, "build/invoke/hello.out: not built yet", cli=("result",)),
    # functions
    "upload a function that is not valid Python": Case(
        write("broken.py", NOT_PYTHON), "error: broken.py: line 1: not valid Python",
        cli=("invoke", "upload", "alice", "broken", "broken.py"),
    ),
    "run a file that is not valid Python": Case(
        write("broken.py", NOT_PYTHON), "error: broken.py: line 1: not valid Python",
        cli=("invoke", "run", "--file", "broken.py"),
    ),
    "upload a missing file": Case(
        nothing, "error: nosuch.py: no such file", cli=("invoke", "upload", "alice", "f", "nosuch.py"),
    ),
    "invoke a missing function": Case(
        FAKE_RUNTIME, "build/function-store/alice/nosuch/function.py: no such function (upload it first)",
        cli=("invoke", "run", "alice", "nosuch", "--root", "fake-root"),
    ),
    "invoke without a command": Case(
        nothing, "error: python -m pipeline.invoke: the following arguments are required: command", cli=("invoke",),
    ),
    "invoke timeout not a number": Case(
        nothing, "run: argument --timeout: invalid float value: 'soon'",
        cli=("invoke", "run", "alice", "f", "--timeout", "soon"),
    ),
    "invoke timeout below zero": Case(
        nothing, "error: --timeout -1: must be a number of seconds above 0",
        cli=("invoke", "run", "alice", "f", "--timeout", "-1"),
    ),
    "invoke without memory": Case(
        nothing, "error: --memory-limit 0: must be at least 1 MiB",
        cli=("invoke", "run", "alice", "f", "--memory-limit", "0"),
    ),
    "bad function name": Case(
        FAKE_RUNTIME, "error: function '../x': use letters",
        cli=("invoke", "run", "alice", "../x", "--root", "fake-root"),
    ),
}


def run_case(project: Project, case: Case) -> subprocess.CompletedProcess[str]:
    # a cache dir is given relative to the project copy, whose path the case cannot know
    env = {name: str(project.root / value) if name == "PIPELINE_CACHE_DIR" else value
           for name, value in case.env.items()}
    if case.cli is None:
        return project.doit(check=False, **env)
    return subprocess.run([sys.executable, "-m", "pipeline", *case.cli], cwd=project.root, env=project.env(**env),
                          capture_output=True, text=True, check=False, timeout=300)


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
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
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
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: checkout path {str(project.root)!r} contains whitespace, "
                     "which autotools builds cannot handle"], proc.stderr
    assert snapshot(project.root / "build") == before


@pytest.mark.parametrize("kind", sorted(MORE_CASES))
def test_more_malformed_input_gives_one_line_error(kind: str, built: Project, tmp_path: Path) -> None:
    case = MORE_CASES[kind]
    shutil.copytree(built.root, tmp_path / "project", symlinks=True)
    project = Project(tmp_path / "project", built.cache)
    case.mutate(project)
    before_build, before_cache = snapshot(project.root / "build"), snapshot(project.cache)
    proc = run_case(project, case)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert case.expected in lines[0], lines[0]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == "", proc.stdout
    assert snapshot(project.root / "build") == before_build
    assert snapshot(project.cache) == before_cache


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    """`<<` may appear more than once and be overridden: that is what merging is for."""
    from pipeline.engine.config import read_yaml

    file = tmp_path / "merge.yaml"
    file.write_text("a: &a {x: 1, y: 1}\nb: &b {y: 2}\nc:\n  <<: *a\n  <<: *b\n  x: 3\n")
    assert read_yaml(file)["c"] == {"x": 3, "y": 1}

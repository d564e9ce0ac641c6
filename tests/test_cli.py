"""`pywasm`: its own name, --help on every command, the graph picture, the main job's result."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
from conftest import REPO, Project

from pipeline.__main__ import make_parser


def console_entry() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["pywasm"]


def test_pywasm_is_a_console_command_with_its_own_name(capsys: pytest.CaptureFixture[str]) -> None:
    module, _, function = console_entry().partition(":")
    entry = getattr(importlib.import_module(module), function)
    sys_argv = sys.argv
    sys.argv = ["pywasm", "--help"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            entry()
    finally:
        sys.argv = sys_argv
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: pywasm ")


def subcommands() -> list[str]:
    action = next(a for a in make_parser()._actions if a.dest == "command")
    return sorted(action.choices)


def test_every_command_has_help() -> None:
    names = subcommands()
    for expected in ("check", "explain", "graph", "invoke", "mkpkg", "provision", "prune", "push", "result", "schema"):
        assert expected in names
    for name in names:
        proc = subprocess.run([sys.executable, "-m", "pipeline", name, "--help"], cwd=REPO, capture_output=True,
                              text=True, check=False, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, (name, proc.stderr)
        # `invoke` hands its arguments to pipeline.runtime.invoke, whose help names upload and run
        assert proc.stdout.startswith("usage: "), (name, proc.stdout)
        assert "{upload,run}" in proc.stdout if name == "invoke" else f" {name}" in proc.stdout.splitlines()[0]


def node_states(dot: str) -> dict[str, list[str]]:
    """task -> its label's lines, from the DOT text."""
    found = {}
    for task, label in re.findall(r'^\s+"([^"]+)" \[label="([^"]*)"', dot, re.MULTILINE):
        found[task] = label.split("\\n")
    return found


def test_graph_shows_each_task_state_and_why(project: Project) -> None:
    states = node_states(project.cli("graph", "-o", "-").stdout)
    assert {task: lines[2] for task, lines in states.items()} == {
        "hello": "would run", "greeting": "would run", "standalone": "would run"}
    assert states["hello"][3] == "never built"

    project.doit()
    project.edit("hello", "GREETING: hello", "GREETING: howdy")
    dot = project.cli("graph", "-o", "-").stdout
    states = node_states(dot)
    assert states["standalone"][2] == "up to date"
    assert states["hello"][2:] == ["would run", "key changed", "recipe.build.env.GREETING: 'hello' -> 'howdy'"]
    assert states["greeting"][2] == "would run"
    assert '"hello" -> "greeting";' in dot

    project.edit("hello", "GREETING: howdy", "GREETING: hello")
    project.doit()
    project.edit("hello", "GREETING: hello", "GREETING: howdy")
    project.doit()
    project.edit("hello", "GREETING: howdy", "GREETING: hello")  # both outputs are in the cache now
    states = node_states(project.cli("graph", "-o", "-").stdout)
    assert states["hello"][2] == "would restore"


def test_graph_writes_dot_and_svg_where_graphviz_is(project: Project) -> None:
    proc = project.cli("graph", "greeting")
    dot = project.root / "build/graph.dot"
    assert set(node_states(dot.read_text())) == {"hello", "greeting"}  # a target and what it needs
    if shutil.which("dot"):
        svg = project.root / "build/graph.svg"
        assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
        assert f"wrote {dot} and {svg}: 0 up to date, 0 would restore, 2 would run" in proc.stdout
    else:
        assert "Graphviz `dot` is not installed" in proc.stdout


def test_result_shows_hello_and_where_the_runtime_is(project: Project) -> None:
    hello = project.root / "build/invoke/hello.out"
    hello.parent.mkdir(parents=True)
    hello.write_text("Hello from Python on WebAssembly!\nPython version: 3.13.5 (wasi)\n")
    out = project.cli("result").stdout
    assert "Hello from Python on WebAssembly!\nPython version: 3.13.5 (wasi)\n" in out
    root = project.root / "build"
    assert re.search(rf"^runtime root: +{root}/runtime_root/root  \(missing\)$", out, re.MULTILINE), out
    assert re.search(rf"^its tarball: +{root}/runtime_root/runtime_root.tar.gz", out, re.MULTILINE), out
    assert re.search(rf"^machine code: +{root}/codegen", out, re.MULTILINE), out


def test_dev_build_ends_with_the_result() -> None:
    script = (REPO / "dev").read_text()
    build = script[script.index("  build)"):script.index("  test)")]
    assert build.index("doit\" codegen invoke") < build.index("pywasm\" result")
    assert "setup main" in build and "test" not in build.replace("  test)", "")


def locked(lock: str) -> dict[str, str]:
    """name -> version of every requirement line; each must be pinned and followed by its hashes."""
    lines = (REPO / "requirements" / f"{lock}.txt").read_text().splitlines()
    pins = {}
    for index, line in enumerate(lines):
        if line[:1].isalpha():
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+) \\", line)
            assert match, f"{lock}: not pinned with hashes: {line}"
            hashed = re.fullmatch(r"    --hash=sha256:[0-9a-f]{64}( \\)?", lines[index + 1])
            assert hashed, f"{lock}: {line} has no hash"
            pins[match[1].lower()] = match[2]
    return pins


def test_locks_pin_every_package_with_hashes() -> None:
    main, test = locked("main"), locked("test")
    assert "setuptools" in main  # the project installs without build isolation: its builder is locked too
    assert "moto" not in main and "pytest" not in main  # the main job installs no test tools
    assert all(test[name] == version for name, version in main.items())  # one set of versions
    for heavy in ("cfn-lint", "sympy", "networkx", "docker", "aws-xray-sdk"):  # moto[server]'s tree
        assert heavy not in test, heavy


def test_setup_installs_from_the_locks() -> None:
    script = (REPO / "dev").read_text()
    assert "--require-hashes -r \"$lock\"" in script
    assert "requirements/${1:-main}.txt" in script
    assert "setup test" in script[script.index("  test)"):]


def test_requirements_lock_matches_pyproject() -> None:
    """Every direct dependency in pyproject.toml is pinned in the lock that serves it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for lock, wanted in (("main", project["dependencies"]), ("test", project["optional-dependencies"]["test"])):
        pins = locked(lock)
        for requirement in wanted:
            name = re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower().replace("_", "-")
            assert name in pins, (lock, name)

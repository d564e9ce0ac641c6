"""End to end: the real chain in this checkout, from recipes to invoke.

Uses the project's own build/ and the default artifact cache outside the
checkout, so a repeat CI run on the same machine restores instead of building.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.engine.toolchain import Toolchain
from pipeline.wasmbuild.contracts import ExtensionList

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"

pytestmark = pytest.mark.e2e


def doit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_REMOTE")}
    proc = subprocess.run([sys.executable, "-m", "doit", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, check=False, timeout=3600)
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    return proc


@pytest.fixture(scope="module")
def chain() -> subprocess.CompletedProcess[str]:
    """The whole chain through codegen + invoke, and CPython's and numpy's own tests."""
    proc = doit("invoke", "test_cpython", "test_numpy")
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc


def test_invoke_hello_prints_message_and_version(chain: subprocess.CompletedProcess[str]) -> None:
    hello = (BUILD / "invoke/hello.out").read_text()
    assert "Hello from Python on WebAssembly!" in hello
    assert "Python version: 3.13.5" in hello


def test_default_packages_do_real_work_with_c_extensions(chain: subprocess.CompletedProcess[str]) -> None:
    demo = (BUILD / "invoke/packages_demo.out").read_text()
    for line in ("pyaes: AES-256-CTR round trip", "genshi", "markupsafe", "msgpack", "packages demo ok"):
        assert line in demo
    builtins = {item["module"] for item in json.loads((BUILD / "link/builtins.json").read_text())}
    assert {"markupsafe._speedups", "genshi._speedups", "msgpack._cmsgpack"} <= builtins


def test_cpython_regression_subset_reports_per_module(chain: subprocess.CompletedProcess[str]) -> None:
    summary = json.loads((BUILD / "test_cpython/summary.json").read_text())
    assert len(summary["modules"]) >= 25
    assert summary["unexpected"] == []
    assert summary["total"]["passed"] > 10000


def test_numpy_function_runs_with_machine_code_and_matches_native_numpy(
    chain: subprocess.CompletedProcess[str],
) -> None:
    """func/python/numpy_demo.py through invoke: linalg, FFT, and seeded random numbers that
    equal native numpy's (the same version, installed in this environment) bit for bit."""
    demo = (BUILD / "invoke/numpy_demo.out").read_text()
    assert "numpy 2.2.6 on wasi" in demo and "numpy demo ok" in demo
    assert "200x200 matmul + solve" in demo and "1024-point round trip" in demo
    native = subprocess.run([sys.executable, str(REPO / "func/python/numpy_demo.py")], capture_output=True,
                            text=True, check=True).stdout

    def random_lines(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("random")]

    assert len(random_lines(demo)) == 4
    assert random_lines(demo) == random_lines(native)
    builtins = {item["module"] for item in json.loads((BUILD / "link/builtins.json").read_text())}
    listed = yaml.safe_load((REPO / "recipes/packages/numpy/meta.yaml").read_text())["test"]["builtins"]
    assert len(listed) == 19 and set(listed) <= builtins  # every numpy extension module, built in


def test_numpy_test_suite_subset_reports_per_path(chain: subprocess.CompletedProcess[str]) -> None:
    summary = json.loads((BUILD / "test_numpy/summary.json").read_text())
    assert set(summary["modules"]) == {"numpy__core_tests_test_multiarray", "numpy__core_tests_test_umath",
                                       "numpy_linalg_tests", "numpy_fft_tests", "numpy_random_tests"}
    assert summary["unexpected"] == []
    assert summary["total"]["passed"] > 20000
    # The tests ran from numpy's unvendored tests; the runtime ships without them.
    assert (BUILD / "packages/numpy/tests-site/numpy/_core/tests/test_multiarray.py").is_file()
    assert not (BUILD / "runtime_root/root/lib/python3.13/site-packages/numpy/_core/tests").exists()


def test_second_run_executes_nothing(chain: subprocess.CompletedProcess[str]) -> None:
    proc = doit("invoke", "test_cpython", "test_numpy")
    assert proc.returncode == 0
    last = proc.stdout.strip().splitlines()[-1]
    assert "built" not in last and "restored" not in last and "up to date" in last, last


def test_invoke_fails_clearly_when_codegen_is_missing(chain: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    empty_codegen = tmp_path / "codegen"
    empty_codegen.mkdir()
    root = BUILD / "runtime_root/root"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.invoke", "run", "--file", str(root / "functions/python/hello.py"),
         "--root", str(root), "--codegen", str(empty_codegen)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 3
    assert "doit codegen" in proc.stderr


def test_exception_in_function_gives_traceback_and_nonzero_exit(chain: subprocess.CompletedProcess[str],
                                                                 tmp_path: Path) -> None:
    failing = tmp_path / "fails.py"
    failing.write_text("def handler():\n    raise ValueError('boom from wasm')\n\nhandler()\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.invoke", "run", "--file", str(failing)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: boom from wasm" in proc.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_runtime_root_tarball_is_reproducible_across_directories(chain: subprocess.CompletedProcess[str],
                                                                  tmp_path: Path) -> None:
    """Two clean assemblies of the same inputs in different directories: same bytes."""
    graph = json.loads(subprocess.run([sys.executable, "-m", "pipeline", "check", "--json"], cwd=REPO,
                                      capture_output=True, text=True, check=True).stdout)
    packages = [BUILD / t.replace(":", "/") for t in graph["closure"]["runtime_root"] if t.startswith("packages:")]
    digests = []
    for name in ("one", "two"):
        out = tmp_path / name / "deep" / "dir"
        out.mkdir(parents=True)
        argv = [sys.executable, "-m", "pipeline.wasmbuild.bundle", "assemble", "--out", str(out / "root"),
                "--python-wasm", str(BUILD / "link/python.wasm"),
                "--stdlib", str(BUILD / "build_cpython/runtime/lib/python3.13"),
                "--meta", f"python={BUILD / 'build_cpython/package.json'}",
                *[arg for p in packages for arg in ("--package", str(p))],
                "--functions", str(REPO / "func"),
                "--build-python", str(BUILD / "build_python/bin/python3.13"),
                "--manifest", str(out / "manifest.json"), "--tarball", str(out / "root.tar.gz")]
        env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
        subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True)
        digests.append(sha256(out / "root.tar.gz"))
    assert digests[0] == digests[1]
    assert digests[0] == sha256(BUILD / "runtime_root/runtime_root.tar.gz")


def test_switching_malloc_rebuilds_malloc_and_downstream_only(chain: subprocess.CompletedProcess[str]) -> None:
    config = REPO / "pipeline.yaml"
    original = config.read_text()
    try:
        config.write_text(original.replace("malloc: dlmalloc", "malloc: mimalloc", 1))
        proc = subprocess.run([sys.executable, "-m", "pipeline", "explain", "build_cpython"], cwd=REPO,
                              capture_output=True, text=True, check=True)
    finally:
        config.write_text(original)
    verdicts = {line.split(":")[0]: line for line in proc.stdout.splitlines() if not line.startswith(" ")}
    for upstream in ("toolchain", "libc", "build_python", "mimalloc_src"):
        assert verdicts[upstream].endswith("up to date"), verdicts[upstream]
    for downstream in ("malloc", "zlib", "bzip2", "xz", "sqlite3", "build_cpython"):
        assert "would build" in verdicts[downstream] or "would restore" in verdicts[downstream]
    assert "recipe.build.script" in proc.stdout  # malloc's own rendered steps changed


def test_cpp_extension_builds_links_and_runs(chain: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    """The C++ path: clang++ for wasm32, libc++/libc++abi, a built-in module that works."""
    proc = doit("packages:cxxdemo")
    assert proc.returncode == 0, proc.stdout[-3000:]
    extensions = ExtensionList.read(BUILD / "packages/cxxdemo/extensions.json").extensions
    assert [e.model_dump() for e in extensions] == [{"module": "cxxdemo._words", "init": "PyInit_cxxdemo___words",
                                                     "archive": "static/cxxdemo._words.a", "cxx": True,
                                                     "ldflags": []}]
    toolchain = Toolchain.read(BUILD / "toolchain/toolchain.json").model_dump()
    wasm = tmp_path / "python.wasm"
    subprocess.run([sys.executable, "-m", "pipeline.wasmbuild.link", "--cpython", str(BUILD / "build_cpython"),
                    "--package", str(BUILD / "packages/cxxdemo"), "--cc", toolchain["cc"], "--nm", toolchain["nm"],
                    "--libcxx-lib", toolchain["libcxx_lib"],
                    "--work", str(tmp_path / "link"), "-o", str(wasm)], cwd=REPO, check=True, capture_output=True)
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.wasm", "run", "--dir", f"{BUILD / 'build_cpython/runtime'}::/",
         "--dir", f"{BUILD / 'packages/cxxdemo/site-packages'}::/pkg", "--env", "PYTHONPATH=/pkg", str(wasm),
         "-c", "import sys, cxxdemo; print(cxxdemo.unique_sorted('pear fig apple fig'), "
               "'cxxdemo._words' in sys.builtin_module_names)"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    assert run.stdout.strip() == "['apple', 'fig', 'pear'] True"

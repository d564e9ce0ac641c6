"""End to end: the real chain in this checkout, from recipes to invoke.

The chain comes from conftest's session fixture `built_chain` (`doit codegen invoke` once, the
default artifact cache outside the checkout, so a repeat CI run restores instead of building).
CPython's and numpy's own test suites run here on top of it.
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
from conftest import REPO, BuiltChain, checkout_copy, checkout_env, doit_in, python_wasm_with

from pipeline.engine.outputs import path_leaks
from pipeline.engine.project import load_engine
from pipeline.paths import task_slug
from pipeline.wasmbuild.contracts import ExtensionList
from pipeline.wasmbuild.layer import WASM_LAYER
from pipeline.wasmbuild.regrtest import read_patterns

BUILD = REPO / "build"

pytestmark = pytest.mark.e2e


def doit(*args: str) -> subprocess.CompletedProcess[str]:
    return doit_in(REPO, *args)


@pytest.fixture(scope="module")
def suites(built_chain: BuiltChain) -> subprocess.CompletedProcess[str]:
    """CPython's and numpy's own tests, on the session's chain."""
    proc = doit("test_cpython", "test_numpy")
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc


def exact_ids(listing: Path) -> list[str]:
    """The entries of an expected-failures file that name one test (no wildcard)."""
    return [p for p in read_patterns(listing) if not any(c in p for c in "*?") and "[[]" not in p]


def test_invoke_hello_prints_message_and_version(built_chain: BuiltChain) -> None:
    hello = (BUILD / "invoke/hello.out").read_text()
    assert "Hello from Python on WebAssembly!" in hello
    assert "Python version: 3.13.5" in hello


def test_default_packages_do_real_work_with_c_extensions(built_chain: BuiltChain) -> None:
    demo = (BUILD / "invoke/packages_demo.out").read_text()
    for line in ("pyaes: AES-256-CTR round trip", "genshi", "markupsafe", "msgpack", "packages demo ok"):
        assert line in demo
    builtins = {item["module"] for item in json.loads((BUILD / "link/builtins.json").read_text())}
    assert {"markupsafe._speedups", "genshi._speedups", "msgpack._cmsgpack"} <= builtins


def test_cpython_regression_subset_reports_per_module(suites: subprocess.CompletedProcess[str]) -> None:
    summary = json.loads((BUILD / "test_cpython/summary.json").read_text())
    listed = read_patterns(REPO / "recipes/tests/cpython_tests.txt")
    assert len(listed) == 70  # the README's figure: 56 modules + 14 socket-free test_asyncio modules
    assert set(summary["modules"]) == set(listed), "one report per listed module, none missing"
    assert summary["unexpected"] == []
    assert summary["total"]["passed"] > 10000
    # every single test named as a known failure still fails (the list has no stale entries)
    stale = set(exact_ids(REPO / "recipes/tests/cpython_expected_failures.txt")) - set(summary["failed"])
    assert stale == set(), f"listed as failing but did not fail: {sorted(stale)}"


def test_numpy_function_runs_with_machine_code_and_matches_native_numpy(
    built_chain: BuiltChain,
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


def test_numpy_test_suite_subset_reports_per_path(suites: subprocess.CompletedProcess[str]) -> None:
    summary = json.loads((BUILD / "test_numpy/summary.json").read_text())
    assert set(summary["modules"]) == {"numpy__core_tests_test_multiarray", "numpy__core_tests_test_umath",
                                       "numpy_linalg_tests", "numpy_fft_tests", "numpy_random_tests"}
    assert summary["unexpected"] == []
    assert summary["total"]["passed"] > 20000
    # The tests ran from numpy's unvendored tests; the runtime ships without them.
    assert (BUILD / "packages/numpy/tests-site/numpy/_core/tests/test_multiarray.py").is_file()
    assert not (BUILD / "runtime_root/root/lib/python3.13/site-packages/numpy/_core/tests").exists()
    stale = set(exact_ids(REPO / "recipes/tests/numpy_expected_failures.txt")) - set(summary["failed"])
    assert stale == set(), f"listed as failing but did not fail: {sorted(stale)}"


def test_second_run_executes_nothing(suites: subprocess.CompletedProcess[str]) -> None:
    proc = doit("invoke", "test_cpython", "test_numpy")
    assert proc.returncode == 0
    last = proc.stdout.strip().splitlines()[-1]
    assert "built" not in last and "restored" not in last and "up to date" in last, last


def test_invoke_fails_clearly_when_codegen_is_missing(built_chain: BuiltChain, tmp_path: Path) -> None:
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


def test_exception_in_function_gives_traceback_and_nonzero_exit(built_chain: BuiltChain,
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


def test_runtime_root_tarball_is_reproducible_across_directories(built_chain: BuiltChain,
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


def state_file(root: Path, task: str) -> Path:
    return root / "build/.state" / f"{task_slug(task)}.json"


def task_keys(root: Path, tasks: list[str]) -> dict[str, str]:
    return {task: json.loads(state_file(root, task).read_text())["key"] for task in tasks}


def summary_line(proc: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in reversed(proc.stdout.splitlines()) if line.startswith("summary:"))


def test_switching_malloc_rebuilds_malloc_and_downstream_only(built_chain: BuiltChain, tmp_path: Path) -> None:
    """In a throwaway copy of the checkout (same artifact cache): malloc -> mimalloc rebuilds (or
    restores, if an earlier run built that variant) exactly malloc and what depends on it, packages,
    link and runtime_root included; switching back rebuilds nothing. The real pipeline.yaml is untouched."""
    config = REPO / "pipeline.yaml"
    real_config = config.read_text()
    copy = checkout_copy(tmp_path)
    env = checkout_env()
    first = doit_in(copy, "runtime_root", env=env)
    assert first.returncode == 0, first.stdout[-4000:]
    assert " built" not in summary_line(first), "same keys as the session's chain: everything restores"

    graph = json.loads(subprocess.run([sys.executable, "-m", "pipeline", "check", "--json"], cwd=copy, env=env,
                                      capture_output=True, text=True, check=True).stdout)
    tasks = graph["closure"]["runtime_root"]
    downstream = {task for task in tasks if "malloc" in graph["closure"][task]}
    assert {"malloc", "build_cpython", "link", "runtime_root", "packages:numpy", "packages:pyfaasm"} <= downstream
    assert {"toolchain", "libc", "build_python", "mimalloc_src"} <= set(tasks) - downstream
    before = task_keys(copy, tasks)
    python_wasm = (copy / "build/runtime_root/root/bin/python.wasm").read_bytes()
    states = {task: state_file(copy, task).read_text() for task in tasks}

    pipeline_yaml = copy / "pipeline.yaml"
    dlmalloc = pipeline_yaml.read_text()
    assert "malloc: dlmalloc" in dlmalloc
    pipeline_yaml.write_text(dlmalloc.replace("malloc: dlmalloc", "malloc: mimalloc", 1))
    switched = doit_in(copy, "runtime_root", env=env)
    assert switched.returncode == 0, switched.stdout[-4000:]
    after = task_keys(copy, tasks)
    assert {task for task in tasks if after[task] != before[task]} == downstream
    for task in tasks:
        state = state_file(copy, task).read_text()
        if task in downstream:
            assert json.loads(state)["outcome"] in ("built", "restored"), task
        else:
            assert state == states[task], f"{task} ran, but nothing it depends on changed"
    assert (copy / "build/runtime_root/root/bin/python.wasm").read_bytes() != python_wasm
    assert (copy / "build/malloc/lib/libmimalloc.a").is_file()

    pipeline_yaml.write_text(dlmalloc)
    back = doit_in(copy, "runtime_root", env=env)
    assert back.returncode == 0 and " built" not in summary_line(back), summary_line(back)
    assert task_keys(copy, tasks) == before
    assert (copy / "build/runtime_root/root/bin/python.wasm").read_bytes() == python_wasm
    assert config.read_text() == real_config


def test_no_output_of_the_chain_holds_the_checkouts_path(built_chain: BuiltChain) -> None:
    """Every task output is relocatable: not the checkout's, the build dir's or the cache's path
    in any file (declared `unreproducible:` files too), python.wasm and numpy included."""
    engine = load_engine(REPO, WASM_LAYER)
    checked = 0
    for task in engine.graph.order:
        out = engine.paths.output_dir(task)
        if not out.is_dir():
            continue  # not part of what the e2e chain builds
        leaks = path_leaks(out, [REPO, REPO.resolve(), built_chain.cache])
        assert leaks == [], f"{task}: {leaks[:5]}"
        checked += 1
    assert checked >= 15 and (BUILD / "link/python.wasm").is_file()


def run_with(wasm: Path, package: str, code: str, tmp: Path) -> str:
    """`python -c code` in that python.wasm, the package's files on its path and a /tmp."""
    tmp.mkdir(exist_ok=True)
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.runtime.wasm", "run", "--dir", f"{BUILD / 'build_cpython/runtime'}::/",
         "--dir", f"{BUILD / f'packages/{package}/site-packages'}::/pkg", "--dir", f"{tmp}::/tmp",
         "--env", "PYTHONPATH=/pkg", str(wasm), "-c", code],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_cpp_extension_builds_links_and_runs(built_chain: BuiltChain, tmp_path: Path) -> None:
    """The C++ path: clang++ for wasm32, the sysroot's libc++/libc++abi, a built-in module that
    works, and a std::out_of_range thrown three frames down that the module turns into IndexError."""
    wasm = python_wasm_with("cxxdemo", tmp_path)
    extensions = ExtensionList.read(BUILD / "packages/cxxdemo/extensions.json").extensions
    assert [e.model_dump() for e in extensions] == [{"module": "cxxdemo._words", "init": "PyInit_cxxdemo___words",
                                                     "archive": "static/cxxdemo._words.a", "cxx": True,
                                                     "ldflags": []}]
    out = run_with(wasm, "cxxdemo", (
        "import sys, cxxdemo\n"
        "print(cxxdemo.unique_sorted('pear fig apple fig'), 'cxxdemo._words' in sys.builtin_module_names)\n"
        "for n in (1, 7, -1):\n"
        "    try: print(cxxdemo.nth_word('pear fig apple', n))\n"
        "    except (IndexError, ValueError) as error: print(type(error).__name__, error)\n"), tmp_path / "tmp")
    lines = out.splitlines()
    assert lines[0] == "['apple', 'fig', 'pear'] True"
    assert lines[1] == "fig"
    assert lines[2] == "IndexError word 7: vector"  # libc++'s what() of vector::at
    assert lines[3] == "ValueError n must not be negative"


CRFSUITE_CHECKS = """\
import pycrfsuite
try:
    pycrfsuite.Tagger().labels()
except ValueError as error:
    print("closed tagger:", error)
trainer = pycrfsuite.Trainer(verbose=False)
try:
    trainer.set("no_such_parameter", 1)
except ValueError as error:
    print("unknown parameter:", error)
xseq = [{"walk": 1.0}, {"shop": 1.0}, {"clean": 1.0}]
trainer.append(xseq, ["rainy", "sunny", "rainy"])
trainer.set_params({"max_iterations": 50})
trainer.train("/tmp/weather.crfsuite")
tagger = pycrfsuite.Tagger()
tagger.open("/tmp/weather.crfsuite")
print("tagged:", tagger.tag(xseq))
"""


def test_a_real_cpp_package_raises_its_cpp_exceptions_as_python_ones(built_chain: BuiltChain,
                                                                     tmp_path: Path) -> None:
    """python-crfsuite (PyPI): CRFsuite's C++ API throws std::invalid_argument, Cython's `except +`
    turns it into ValueError with the message, and the interpreter goes on to train and tag."""
    wasm = python_wasm_with("python-crfsuite", tmp_path)
    out = run_with(wasm, "python-crfsuite", CRFSUITE_CHECKS, tmp_path / "tmp")
    assert out.splitlines() == ["closed tagger: The tagger is not opened",
                                "unknown parameter: Parameter not found: no_such_parameter = 1",
                                "tagged: ['rainy', 'sunny', 'rainy']"]


def test_a_c_library_longjmps_out_of_its_errors(built_chain: BuiltChain, tmp_path: Path) -> None:
    """libpng (Debian's source): png_error longjmps back to the caller's setjmp, through a function
    pointer; built and compiled with the toolchain's own C wrapper, with no flag of ours."""
    proc = doit("libpng")
    assert proc.returncode == 0, proc.stdout[-3000:]
    program = tmp_path / "png_errors.wasm"
    subprocess.run([str(BUILD / "toolchain/bin/wasm32-wasi-cc"), "-O2", f"-I{BUILD / 'libpng/include'}",
                    f"-I{BUILD / 'zlib/include'}", str(REPO / "recipes/tests/png_errors.c"),
                    f"-L{BUILD / 'libpng/lib'}", f"-L{BUILD / 'zlib/lib'}", "-lpng16", "-lz", "-lm",
                    "-o", str(program)], check=True, capture_output=True)
    run = subprocess.run([sys.executable, "-m", "pipeline.runtime.wasm", "run", str(program)], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[1:] == [
        "write and read back: pixels equal", "broken CRC, classic API: IDAT: CRC error",
        "truncated, classic API: read past the end of the data",
        "truncated, simplified API: read beyond end of data", "good, simplified API: decoded", "ok"]


def test_the_toolchain_wrappers_are_complete_compilers(built_chain: BuiltChain, tmp_path: Path) -> None:
    """`wasm32-wasi-c++` on a standard C++ program that throws, `wasm32-wasi-cc` on a C program
    with setjmp: no flag of ours, runnable modules (headers and both runtimes found by the wrapper)."""
    for wrapper, source in (("c++", "cxx_exceptions_test.cpp"), ("cc", "sjlj_test.c")):
        program = tmp_path / f"{source}.wasm"
        subprocess.run([str(BUILD / f"toolchain/bin/wasm32-wasi-{wrapper}"), "-O2",
                        str(REPO / "recipes/tests" / source), "-o", str(program)], check=True, capture_output=True)
        run = subprocess.run([sys.executable, "-m", "pipeline.runtime.wasm", "run", str(program)], cwd=REPO,
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0 and run.stdout.splitlines()[-1] == "ok", run.stdout + run.stderr

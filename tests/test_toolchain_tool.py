"""pipeline.wasmbuild.toolchain: the toolchain task's outputs, from the project's own templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLANG, NEEDS_CLANG, REPO, TOOLCHAIN

from pipeline.errors import PipelineError
from pipeline.wasmbuild.llvm import Toolchain
from pipeline.wasmbuild.toolchain import TemplatePaths, fill_template, write_exec_wrapper

TC = Toolchain.derive("wasm32-wasi", TOOLCHAIN.llvm_major, "/opt/sysroot")
ABSOLUTE = TemplatePaths(bin_dir=Path("/t/bin"), sysroot=Path("/opt/sysroot"))


def test_cross_files_name_this_targets_tools(tmp_path: Path) -> None:
    meson = fill_template(REPO / "toolchain/meson-cross.ini.in", TC, ABSOLUTE, tmp_path / "meson-cross.ini")
    text = meson.read_text()
    assert "bin = '/t/bin'" in text and "c = [bin / 'wasm32-wasi-cc']" in text and f"ar = '{TC.ar}'" in text
    assert "sysroot = '/opt/sysroot'" in text and "@" not in text.replace("@DIRNAME@", "")
    cmake = fill_template(REPO / "toolchain/cmake-toolchain.cmake.in", TC, ABSOLUTE, tmp_path / "x.cmake")
    assert f'set(CMAKE_RANLIB "{TC.ranlib}")' in cmake.read_text()


def test_installed_cross_files_name_paths_relative_to_themselves(tmp_path: Path) -> None:
    where = TemplatePaths(bin_dir=tmp_path / "build/toolchain/bin", sysroot=tmp_path / "build/malloc/sysroot",
                          relative_to=tmp_path / "build/toolchain")
    meson = fill_template(REPO / "toolchain/meson-cross.ini.in", TC, where, tmp_path / "m.ini").read_text()
    assert "bin = '@DIRNAME@' / 'bin'" in meson and "sysroot = '@DIRNAME@' / '../malloc/sysroot'" in meson
    cmake = fill_template(REPO / "toolchain/cmake-toolchain.cmake.in", TC, where, tmp_path / "x.cmake").read_text()
    assert 'set(CMAKE_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../malloc/sysroot")' in cmake
    assert str(tmp_path) not in meson + cmake


def test_an_unknown_placeholder_is_an_error(tmp_path: Path) -> None:
    template = tmp_path / "odd.ini.in"
    template.write_text("cc = '@BIN@/cc'\nlinker = '@LINKER@'\n")
    with pytest.raises(PipelineError, match="unknown placeholder"):
        fill_template(template, TC, ABSOLUTE, tmp_path / "odd.ini")
    assert not (tmp_path / "odd.ini").exists()


def test_a_wrapper_runs_its_command_with_the_callers_arguments(tmp_path: Path) -> None:
    wrapper = write_exec_wrapper(tmp_path / "bin" / "show", [sys.executable, "-c",
                                 "import os, sys; print(os.environ['MARK'], sys.argv[1:])"], {"MARK": "it's me"})
    out = subprocess.run([str(wrapper), "a b", "c"], capture_output=True, text=True, check=True).stdout
    assert out == "it's me ['a b', 'c']\n"


@pytest.mark.skipif(CLANG is None, reason=NEEDS_CLANG)
def test_install_writes_every_declared_output(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    out, prefix = root / "build/.staging/toolchain", root / "build/toolchain"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.wasmbuild.toolchain", "--target", "wasm32-wasi",
         "--llvm-major", TOOLCHAIN.llvm_major,
         "--sysroot", str(root / "build/malloc/sysroot"), "--source-root", str(root),
         "--templates", str(REPO / "toolchain"), "--out", str(out), "--prefix", str(prefix)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("toolchain.json", "versions.txt", "meson-cross.ini", "cmake-toolchain.cmake", "config.site"):
        assert (out / name).is_file(), name
        assert str(tmp_path) not in (out / name).read_text(), f"{name} holds the checkout's path"
    portable = Toolchain.derive("wasm32-wasi", TOOLCHAIN.llvm_major, "../malloc/sysroot")
    assert Toolchain.read(out / "toolchain.json") == portable
    assert f"clang version {TOOLCHAIN.llvm_major}." in (out / "versions.txt").read_text()
    assert "bin = '@DIRNAME@' / 'bin'" in (out / "meson-cross.ini").read_text()
    for wrapper in (out / "bin").iterdir():
        assert str(tmp_path) not in wrapper.read_text(), f"{wrapper.name} holds the checkout's path"


@pytest.mark.skipif(CLANG is None, reason=NEEDS_CLANG)
def test_a_moved_toolchain_compiles_against_its_own_checkouts_sysroot(tmp_path: Path) -> None:
    """The wrappers find the sysroot from where they are, and map the checkout's path away."""
    first = tmp_path / "one"
    subprocess.run(
        [sys.executable, "-m", "pipeline.wasmbuild.toolchain", "--target", "wasm32-wasi",
         "--llvm-major", TOOLCHAIN.llvm_major,
         "--sysroot", str(first / "build/malloc/sysroot"), "--source-root", str(first),
         "--templates", str(REPO / "toolchain"), "--out", str(first / "build/toolchain"),
         "--prefix", str(first / "build/toolchain")], cwd=REPO, check=True, capture_output=True)
    second = tmp_path / "elsewhere" / "deeper" / "two"
    shutil.copytree(first / "build/toolchain", second / "build/toolchain")
    shutil.rmtree(first)
    include = second / "build/malloc/sysroot/include"
    include.mkdir(parents=True)
    (include / "marker.h").write_text("#define MARK 42\n")
    source = second / "src/t.c"
    source.parent.mkdir()
    source.write_text('#include <marker.h>\nconst char *where = __FILE__; int f(void) { return MARK; }\n')
    obj = second / "t.o"
    subprocess.run([str(second / "build/toolchain/bin/wasm32-wasi-cc"), "-c", str(source), "-o", str(obj)],
                   check=True)
    data = obj.read_bytes()
    assert data[:4] == b"\0asm" and b"src/t.c" in data and str(second).encode() not in data

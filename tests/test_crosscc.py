"""crosscc and the package builder's extension list, with the real LLVM (the toolchain's) but no chain.

A tiny "extension" is compiled and "linked" the way a build backend would do it, through
crosscc, with its settings in the one $PIPELINE_CROSS variable the package builder sets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLANG, NEEDS_CLANG, REPO, TOOLCHAIN

from pipeline.errors import ExitCode
from pipeline.wasmbuild.contracts import ExtensionList
from pipeline.wasmbuild.crossargs import CompileEvent, CrossSettings, ExtensionEvent, read_events
from pipeline.wasmbuild.pypackage import collect_extensions

pytestmark = pytest.mark.skipif(CLANG is None, reason=NEEDS_CLANG)

SOURCE = """\
typedef struct _object PyObject;
static int calls;
int helper_shared_name(void) { return ++calls; }
PyObject *PyInit__speedups(void) { helper_shared_name(); return 0; }
"""
SO = "build/lib.linux-x86_64-cpython-313/pkg/_speedups.cpython-313-x86_64-linux-gnu.so"


def crosscc(mode: str, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.wasmbuild.crosscc", mode, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def settings(log: Path) -> CrossSettings:
    return CrossSettings(cc=(TOOLCHAIN.clang, "--target=wasm32-wasi", "-nostdlib"), cxx=(TOOLCHAIN.clangxx,),
                         cflags=("-O2",), cxxflags=(), ar=TOOLCHAIN.ar, nm=TOOLCHAIN.nm, ld=TOOLCHAIN.ld,
                         log=str(log), drop_includes=("/host/include/python3.13",))


def test_an_extension_becomes_a_one_member_archive_with_a_unique_init(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "speedups.c").write_text(SOURCE)
    log = tmp_path / "cross.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), **settings(log).to_env()}
    # -fPIC and the host's include dirs are dropped: nothing host-only reaches clang for wasm32
    compiled = crosscc("cc", "-fPIC", "-I/usr/include", "-I/host/include/python3.13", "-c", "speedups.c",
                       "-o", "speedups.o", cwd=src, env=env)
    assert compiled.returncode == 0, compiled.stderr
    linked = crosscc("ldshared", "-shared", "speedups.o", "-o", SO, cwd=src, env=env)
    assert linked.returncode == 0, linked.stderr

    events = read_events(log)
    assert [type(e) for e in events] == [CompileEvent, ExtensionEvent]
    compile_event, extension = events
    assert isinstance(compile_event, CompileEvent) and isinstance(extension, ExtensionEvent)
    assert compile_event.argv[:4] == (TOOLCHAIN.clang, "--target=wasm32-wasi", "-nostdlib", "-O2")
    assert not {"-fPIC", "-I/usr/include", "-I/host/include/python3.13"} & set(compile_event.argv)
    assert (extension.module, extension.init, extension.cxx) == ("pkg._speedups", "PyInit_pkg___speedups", False)

    archive = src / SO
    assert archive.read_bytes()[:8] == b"!<arch>\n"
    symbols = subprocess.run([TOOLCHAIN.nm, "--defined-only", "--extern-only", "-j", str(archive)],
                             capture_output=True, text=True, check=True).stdout.split()
    # only the renamed init stays global: two packages may both define helper_shared_name
    assert [s for s in symbols if not s.endswith(":")] == ["PyInit_pkg___speedups"]

    # the package builder lists it for the link, from the same log
    out = tmp_path / "out"
    so = out / "site-packages" / "pkg" / "_speedups.cpython-313-x86_64-linux-gnu.so"
    so.parent.mkdir(parents=True)
    shutil.copyfile(archive, so)
    listing = collect_extensions(out, log, ["-lm"])
    assert ExtensionList.read(out / "extensions.json") == listing
    (only,) = listing.extensions
    assert (only.module, only.archive, only.ldflags) == ("pkg._speedups", "static/pkg._speedups.a", ["-lm"])
    assert (out / only.archive).is_file() and not so.exists()


def test_without_its_settings_crosscc_says_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_CROSS"}
    env["PYTHONPATH"] = str(REPO)
    proc = crosscc("cc", "-c", "x.c", "-o", "x.o", cwd=tmp_path, env=env)
    assert proc.returncode == ExitCode.BAD_INPUT
    assert proc.stderr == "error: $PIPELINE_CROSS is not set: crosscc runs under the python-package builder\n"

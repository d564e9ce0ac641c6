"""pipeline.wasmbuild.link refuses a global symbol that two packages both define.

Each package is a real wasm32 static archive compiled with the toolchain's clang and listed in its
extensions.json, as the python-package builder leaves it; its llvm-nm reads the symbols.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLANG, NEEDS_CLANG, REPO, TOOLCHAIN

from pipeline.errors import PipelineError
from pipeline.wasmbuild import link
from pipeline.wasmbuild.contracts import Extension, ExtensionList, RelinkKit

NM = shutil.which(TOOLCHAIN.nm)
AR = shutil.which(TOOLCHAIN.ar)
pytestmark = pytest.mark.skipif(None in (CLANG, NM, AR), reason=NEEDS_CLANG)


def package(root: Path, name: str, source: str) -> Path:
    """A package output dir with one extension module `<name>._ext` in static/<name>._ext.a."""
    folder = root / name
    (folder / "static").mkdir(parents=True)
    init = f"PyInit_{name}___ext"
    src = folder / "ext.c"
    src.write_text(f"{source}\nvoid *{init}(void) {{ return 0; }}\n")
    obj = folder / "ext.o"
    subprocess.run([str(CLANG), "--target=wasm32-wasi", "-O0", "-c", str(src), "-o", str(obj)], check=True)
    subprocess.run([str(AR), "rcs", str(folder / f"static/{name}._ext.a"), str(obj)], check=True)
    ExtensionList(extensions=[Extension(module=f"{name}._ext", init=init, archive=f"static/{name}._ext.a",
                                        cxx=False)]).write(folder / "extensions.json")
    return folder


# Every package has a static (file-local) helper of the same name: never a clash.
LOCAL = ("__attribute__((noinline)) static int local_helper(int x) { return x + 1; }\n"
         "int uses_local(int x) { return local_helper(x); }\n")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("packages")
    crc = "int crc_table(void) {{ return {}; }}\n"
    # What C++ inline functions compile to (libc++'s __throw_length_error in every module that
    # may throw it): a weak definition, one per package, merged by the linker.
    inline = "__attribute__((weak)) int shared_inline(void) {{ return {}; }}\n"
    return {
        "alpha": package(root, "alpha", LOCAL.replace("uses_local", "alpha_uses") + crc.format(1) + inline.format(1)),
        "beta": package(root, "beta", LOCAL.replace("uses_local", "beta_uses") + crc.format(2)),
        "gamma": package(root, "gamma", LOCAL.replace("uses_local", "gamma_uses") + inline.format(1)),
    }


def test_distinct_globals_and_same_named_statics_do_not_clash(packages: dict[str, Path]) -> None:
    extensions = link.read_extensions([packages["alpha"], packages["gamma"]])
    assert [e.module for e in extensions] == ["alpha._ext", "gamma._ext"]
    assert "crc_table" in link.defined_globals(extensions[0].archive, str(NM))
    assert "shared_inline" not in link.defined_globals(extensions[0].archive, str(NM)), "weak: merged, no clash"
    link.check_symbol_clashes(extensions, str(NM))  # no error


def test_a_global_two_packages_define_is_refused_naming_it_and_them(packages: dict[str, Path]) -> None:
    with pytest.raises(PipelineError, match=r"^global symbol clash between packages: crc_table \(alpha and beta\)$"):
        link.check_symbol_clashes(link.read_extensions([packages["alpha"], packages["beta"]]), str(NM))


def test_link_command_refuses_before_linking(packages: dict[str, Path], tmp_path: Path) -> None:
    """Through `python -m pipeline.wasmbuild.link`, as the link recipe runs it: exit 2, one line, no output."""
    kit = tmp_path / "cpython" / "relink"
    kit.mkdir(parents=True)
    RelinkKit(includes=[], objects=[], libs=[], ldflags=[], archive="libpython.a").write(kit / "link.json")
    out = tmp_path / "python.wasm"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.wasmbuild.link", "--cpython", str(tmp_path / "cpython"),
         "--package", str(packages["gamma"]), "--package", str(packages["alpha"]), "--package", str(packages["beta"]),
         "--cc", f"{CLANG} --target=wasm32-wasi", "--nm", str(NM), "--work", str(tmp_path / "work"),
         "-o", str(out)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "error: global symbol clash between packages: crc_table (alpha and beta)\n"
    assert not out.exists() and not (tmp_path / "work").exists()

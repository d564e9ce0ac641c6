"""pipeline.wasmbuild.cpythonkit on a tiny Makefile project shaped like a CPython build, built with real make."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from pipeline.errors import ExitCode
from pipeline.wasmbuild.contracts import BuildInfo, Provenance, RelinkKit
from pipeline.wasmbuild.link import kit_path

# The variables the kit reads, spelled the way CPython's Makefile spells them (indirections,
# an absolute -L dir from another task's output, a relative archive, empty SYSLIBS).
MAKEFILE = """\
VERSION=	3.99
LIBRARY=	libpython$(VERSION).a
LIBMPDEC_A=	Modules/_decimal/libmpdec/libmpdec.a
LIBS=		-L{zlib}/lib -lz -lm
MODLIBS=	$(LIBMPDEC_A) -L{zlib}/lib -lz
SYSLIBS=
PY_CORE_LDFLAGS=	-z stack-size=524288 -Wl,--stack-first
LINKFORSHARED=	-Wl,--export=__main_argc_argv

all: $(LIBRARY) $(LIBMPDEC_A) Programs/python.o Modules/config.c

$(LIBRARY) $(LIBMPDEC_A):
\tmkdir -p $(dir $@) && printf '!<arch>\\n' > $@
Programs/python.o:
\tmkdir -p Programs && printf 'obj' > $@
Modules/config.c:
\tmkdir -p Modules && printf '/* -- ADDMODULE MARKER 1 -- */\\n/* -- ADDMODULE MARKER 2 -- */\\n' > $@

install:
\tmkdir -p $(DESTDIR)/include/python$(VERSION) $(DESTDIR)/lib/python$(VERSION)
\ttouch $(DESTDIR)/include/python$(VERSION)/Python.h $(DESTDIR)/lib/python$(VERSION)/os.py
"""


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    """(build dir, $OUT) after `make` and `make install DESTDIR=$OUT/runtime`."""
    zlib = tmp_path / "zlib"
    (zlib / "lib").mkdir(parents=True)
    (zlib / "lib" / "libz.a").write_bytes(b"!<arch>\nz")
    build, out = tmp_path / "build", tmp_path / "out"
    build.mkdir()
    (build / "Makefile").write_text(MAKEFILE.format(zlib=zlib))
    subprocess.run(["make", "-s"], cwd=build, check=True)
    subprocess.run(["make", "-s", "install", f"DESTDIR={out}/runtime"], cwd=build, check=True)
    return build, out


def cpythonkit(build: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.wasmbuild.cpythonkit", "--build-dir", str(build), "--out", str(out),
         "--install-dir", "runtime", "--recipe", "build_cpython", "--version", "3.99.1",
         "--source-sha256", "ab" * 32, "--license", "PSF-2.0"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )


def test_the_kit_is_the_makefiles_link_line_and_self_contained(built: tuple[Path, Path]) -> None:
    build, out = built
    proc = cpythonkit(build, out)
    assert proc.returncode == 0, proc.stderr
    kit = RelinkKit.read(out / "relink" / "link.json")
    assert kit.ldflags == ["-z", "stack-size=524288", "-Wl,--stack-first", "-Wl,--export=__main_argc_argv"]
    # LIBS, MODLIBS, SYSLIBS in order; both -L dirs became one -Llib, their archives copied once
    assert kit.libs == ["-Llib", "-lz", "-lm", "Modules/_decimal/libmpdec/libmpdec.a", "-lz"]
    assert kit.archive == "libpython3.99.a" and kit.objects == ["Programs/python.o"]
    assert kit.includes == ["runtime/include/python3.99", "runtime/include/python3.99/internal"]
    relink = out / "relink"
    for rel in ("config.c", "Programs/python.o", "libpython3.99.a", "lib/libz.a",
                "Modules/_decimal/libmpdec/libmpdec.a"):
        assert (relink / rel).is_file(), rel
    # everything link.py resolves lies inside the kit: it never points back into a build dir
    for word in kit.libs:
        resolved = kit_path(relink, word)
        if resolved != word:
            assert Path(resolved.removeprefix("-L")).is_relative_to(relink), word
    assert BuildInfo.read(out / "build-info.json") == BuildInfo(
        python_version="3.99", interpreter="python3.99", include="runtime/include/python3.99", home="runtime",
        stdlib="runtime/lib/python3.99")
    assert Provenance.read(out / "package.json") == Provenance(
        recipe="build_cpython", version="3.99.1", source_sha256="ab" * 32, license="PSF-2.0")


def test_an_archive_the_link_line_names_but_make_did_not_build_is_an_error(built: tuple[Path, Path]) -> None:
    build, out = built
    (build / "Modules/_decimal/libmpdec/libmpdec.a").unlink()
    proc = cpythonkit(build, out)
    assert proc.returncode == ExitCode.BAD_INPUT
    assert proc.stderr.startswith("error: ") and "libmpdec.a: named by the link line but not built" in proc.stderr
    assert not (out / "relink" / "link.json").exists()


def test_run_before_make_install_says_so(built: tuple[Path, Path]) -> None:
    build, out = built
    (out / "runtime/lib/python3.99/os.py").unlink()
    proc = cpythonkit(build, out)
    assert proc.returncode == ExitCode.BAD_INPUT and "make install" in proc.stderr


def test_a_directory_that_is_not_a_build_tree_is_an_error(tmp_path: Path) -> None:
    proc = cpythonkit(tmp_path, tmp_path / "out")
    assert proc.returncode == ExitCode.BAD_INPUT and "make could not read the Makefile" in proc.stderr

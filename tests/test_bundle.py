"""pipeline.bundle: runtime root layout, provenance manifest, reproducible tarball."""

from __future__ import annotations

import gzip
import hashlib
import marshal
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import PRINT_MESSAGE, REPO, build_freestanding_wasm

from pipeline.wasmbuild import bundle
from pipeline.wasmbuild.contracts import BuildInfo, Provenance, RuntimeManifest

EPOCH = 1_700_000_000
SHA = "ab" * 32


@pytest.fixture(scope="module")
def hello_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_freestanding_wasm(PRINT_MESSAGE, tmp_path_factory.mktemp("wasm") / "hello.wasm", 'MESSAGE="hello\\n"')


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def make_inputs(base: Path, wasm: Path, *, mtime: int = 1, file_mode: int = 0o644) -> dict[str, Path]:
    """A fake stdlib, two packages, functions and provenance files below base."""
    stdlib = base / "cpython" / "lib" / "python3.13"
    write(stdlib / "os.py", "# os\n", file_mode)
    write(stdlib / "json" / "__init__.py", "# json\n", file_mode)
    write(stdlib / "json" / "__pycache__" / "__init__.cpython-313.pyc", "stale", file_mode)
    for excluded in bundle.STDLIB_EXCLUDES:
        write(stdlib / excluded / "__init__.py", "# excluded\n", file_mode)
    write(stdlib / "json" / "test" / "keep.py", "# nested test/ dirs stay\n", file_mode)
    write(stdlib / "lib-dynload" / "README", "dynload\n", file_mode)
    (base / "cpython" / "bin").mkdir(parents=True)
    python_wasm = base / "cpython" / "bin" / "python3.13.wasm"
    python_wasm.write_bytes(wasm.read_bytes())
    python_wasm.chmod(0o755)
    meta = Provenance(recipe="build_cpython", version="3.13.5", source_sha256=SHA,
                      license="PSF-2.0").write(base / "cpython" / "package.json")
    pkg_a = base / "pkgs" / "markupsafe"
    write(pkg_a / "site-packages" / "markupsafe" / "__init__.py", "# ms\n", file_mode)
    write(pkg_a / "site-packages" / "markupsafe" / "tool.sh", "#!/bin/sh\n", 0o700)
    Provenance(recipe="markupsafe", version="2.1.5", source_sha256="cd" * 32,
               license="BSD-3-Clause").write(pkg_a / "package.json")
    pkg_b = base / "pkgs" / "six"
    write(pkg_b / "site-packages" / "six.py", "# six\n", file_mode)
    functions = base / "func"
    write(functions / "python" / "hello.py", "print('hi')\n", file_mode)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            os.utime(Path(dirpath) / name, (mtime, mtime))
    return {"stdlib": stdlib, "wasm": python_wasm, "meta": meta, "a": pkg_a, "b": pkg_b, "func": functions}


def assemble(inputs: dict[str, Path], out: Path, **extra: object) -> dict[str, bundle.Origin]:
    return bundle.assemble_root(
        out, inputs["wasm"], inputs["stdlib"], [inputs["a"], inputs["b"]], inputs["func"],
        meta={"python": Provenance.read(inputs["meta"])}, **extra,  # type: ignore[arg-type]
    )


def test_layout_and_excludes(hello_wasm: Path, tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "in", hello_wasm)
    root = tmp_path / "root"
    origins = assemble(inputs, root)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == [
        "bin/python.wasm",
        "functions/python/hello.py",
        "lib/python3.13/json/__init__.py",
        "lib/python3.13/json/test/keep.py",
        "lib/python3.13/lib-dynload/README",
        "lib/python3.13/os.py",
        "lib/python3.13/site-packages/markupsafe/__init__.py",
        "lib/python3.13/site-packages/markupsafe/tool.sh",
        "lib/python3.13/site-packages/six.py",
    ]
    assert set(origins) == set(files)
    assert not any(p.is_symlink() for p in root.rglob("*"))
    assert (root / "bin/python.wasm").read_bytes() == hello_wasm.read_bytes()
    assert (root / "lib/python3.13/site-packages/markupsafe/tool.sh").stat().st_mode & 0o777 == 0o755
    assert (root / "lib/python3.13/os.py").stat().st_mode & 0o777 == 0o644


def test_manifest_fields(hello_wasm: Path, tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "in", hello_wasm)
    root = tmp_path / "root"
    origins = assemble(inputs, root)
    dest = tmp_path / "manifest.json"
    bundle.write_manifest(root, origins, dest)
    entries = [entry.model_dump() for entry in RuntimeManifest.read(dest).files]
    assert [e["path"] for e in entries] == sorted(e["path"] for e in entries)
    by_path = {e["path"]: e for e in entries}
    wasm_entry = by_path["bin/python.wasm"]
    assert wasm_entry == {
        "path": "bin/python.wasm",
        "size": hello_wasm.stat().st_size,
        "sha256": hashlib.sha256(hello_wasm.read_bytes()).hexdigest(),
        "recipe": "build_cpython",
        "source_sha256": SHA,
        "license": "PSF-2.0",
    }
    assert by_path["lib/python3.13/os.py"]["recipe"] == "build_cpython"
    ms = by_path["lib/python3.13/site-packages/markupsafe/__init__.py"]
    assert (ms["recipe"], ms["source_sha256"], ms["license"]) == ("markupsafe", "cd" * 32, "BSD-3-Clause")
    six = by_path["lib/python3.13/site-packages/six.py"]  # no package.json: named after its dir
    assert (six["recipe"], six["source_sha256"], six["license"]) == ("six", None, None)
    assert by_path["functions/python/hello.py"]["recipe"] == "functions"


def test_package_conflict_names_both(hello_wasm: Path, tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "in", hello_wasm)
    write(inputs["b"] / "site-packages" / "markupsafe" / "__init__.py", "# clash\n")
    with pytest.raises(bundle.BundleError) as err:
        assemble(inputs, tmp_path / "root")
    message = str(err.value)
    assert "lib/python3.13/site-packages/markupsafe/__init__.py" in message
    assert "markupsafe (" in message and "six (" in message


def test_refuses_non_empty_out_and_bad_stdlib(hello_wasm: Path, tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "in", hello_wasm)
    write(tmp_path / "root" / "old.txt", "x")
    with pytest.raises(bundle.BundleError, match="not empty"):
        assemble(inputs, tmp_path / "root")
    with pytest.raises(bundle.BundleError, match=r"no os\.py"):
        bundle.assemble_root(tmp_path / "r2", inputs["wasm"], tmp_path / "in")


def test_symlinks_are_copied_as_files(hello_wasm: Path, tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "in", hello_wasm)
    outside = write(tmp_path / "outside.py", "# outside\n")
    (inputs["b"] / "site-packages" / "linked.py").symlink_to(outside)
    root = tmp_path / "root"
    assemble(inputs, root)
    linked = root / "lib/python3.13/site-packages/linked.py"
    assert not linked.is_symlink() and linked.read_text() == "# outside\n"


def _tar_digest_and_members(path: Path) -> tuple[str, list[tarfile.TarInfo]]:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    return hashlib.sha256(path.read_bytes()).hexdigest(), members


def test_tarball_is_reproducible(hello_wasm: Path, tmp_path: Path) -> None:
    digests = []
    for i, (mtime, mode) in enumerate([(1_000, 0o644), (2_000_000, 0o664)]):
        base = tmp_path / f"run{i}"
        inputs = make_inputs(base / "in", hello_wasm, mtime=mtime, file_mode=mode)
        cmd = [
            sys.executable, "-m", "pipeline.wasmbuild.bundle", "assemble", "--out", str(base / "root"),
            "--python-wasm", str(inputs["wasm"]), "--stdlib", str(inputs["stdlib"]),
            "--package", str(inputs["a"]), "--package", str(inputs["b"]), "--functions", str(inputs["func"]),
            "--meta", f"python={inputs['meta']}",
            "--manifest", str(base / "manifest.json"), "--tarball", str(base / "root.tar.gz"),
        ]
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH), "PYTHONPATH": str(REPO)}
        subprocess.run(cmd, check=True, cwd=base, env=env, capture_output=True)
        digest, members = _tar_digest_and_members(base / "root.tar.gz")
        digests.append((digest, (base / "manifest.json").read_bytes()))
    assert digests[0] == digests[1]
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {"bin", "lib/python3.13/site-packages", "functions/python"} <= set(names)
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" for m in members)
    assert all(m.mtime == EPOCH for m in members)
    modes = {m.name: m.mode for m in members}
    assert modes["bin"] == 0o755 and modes["bin/python.wasm"] == 0o755
    assert modes["lib/python3.13/os.py"] == 0o644
    assert modes["lib/python3.13/site-packages/markupsafe/tool.sh"] == 0o755
    header = (tmp_path / "run0" / "root.tar.gz").read_bytes()[:10]
    assert header[3] == 0 and header[4:8] == b"\0\0\0\0"  # no FNAME flag, gzip mtime 0


def test_write_tarball_epoch_and_gzip(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root / "a" / "b.txt", "b")
    (root / "empty").mkdir()
    dest = tmp_path / "t.tar.gz"
    bundle.write_tarball(root, dest, 42)
    with gzip.open(dest) as gz:
        assert gz.read(1)  # a valid gzip stream
    _, members = _tar_digest_and_members(dest)
    assert [(m.name, m.isdir(), m.mtime) for m in members] == [
        ("a", True, 42), ("a/b.txt", False, 42), ("empty", True, 42),
    ]
    (root / "link").symlink_to("a")
    with pytest.raises(bundle.BundleError, match="only regular files"):
        bundle.write_tarball(root, dest, 42)


def test_bytecode_has_guest_paths_and_no_timestamps(hello_wasm: Path, tmp_path: Path) -> None:
    # The host interpreter stands in for the native build Python, so the version is its own.
    version = "{}.{}".format(*sys.version_info[:2])
    stdlib = tmp_path / "stdlib"
    write(stdlib / "os.py", "X = 1\n")
    write(stdlib / "json" / "__init__.py", "Y = 2\n")
    root = tmp_path / "root"
    origins = bundle.assemble_root(
        root, hello_wasm, stdlib, build_python=Path(sys.executable), python_version=version,
        meta={"python": Provenance(recipe="build_cpython", source_sha256=SHA)},
    )
    tag = sys.implementation.cache_tag
    pyc = root / f"lib/python{version}/json/__pycache__/__init__.{tag}.pyc"
    data = pyc.read_bytes()
    assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, unchecked: no mtime
    assert marshal.loads(data[16:]).co_filename == f"/lib/python{version}/json/__init__.py"
    rel = pyc.relative_to(root).as_posix()
    assert origins[rel].provenance.recipe == "build_cpython"
    entries = bundle.write_manifest(root, origins, tmp_path / "m.json").files
    assert any(e.path == rel and e.source_sha256 == SHA for e in entries)


def test_build_python_version_must_match(hello_wasm: Path, tmp_path: Path) -> None:
    stdlib = tmp_path / "stdlib"
    write(stdlib / "os.py", "X = 1\n")
    with pytest.raises(bundle.BundleError, match="same version"):
        bundle.assemble_root(tmp_path / "root", hello_wasm, stdlib, build_python=Path(sys.executable),
                             python_version="2.7")


def test_pyc_source() -> None:
    assert bundle.pyc_source("lib/python3.13/__pycache__/os.cpython-313.pyc") == "lib/python3.13/os.py"
    assert bundle.pyc_source("lib/x/__pycache__/m.cpython-313.opt-1.pyc") == "lib/x/m.py"
    assert bundle.pyc_source("lib/x/m.py") is None


def test_cpython_output_gives_stdlib_version_and_provenance(hello_wasm: Path, tmp_path: Path) -> None:
    """--cpython DIR: build_cpython's build-info.json and package.json, no version written down."""
    cpython = tmp_path / "build_cpython"
    write(cpython / "runtime/lib/python3.99/os.py", "# os\n")
    write(cpython / "runtime/lib/python3.99/config-3.99-wasm32-wasi/Makefile", "# 43 MB nobody runs\n")
    BuildInfo(python_version="3.99", interpreter="python3.99", include="runtime/include/python3.99",
              home="runtime", stdlib="runtime/lib/python3.99").write(cpython / "build-info.json")
    Provenance(recipe="build_cpython", version="3.99.0", source_sha256=SHA, license="PSF-2.0").write(
        cpython / "package.json")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.wasmbuild.bundle", "assemble", "--out", str(tmp_path / "root"),
         "--python-wasm", str(hello_wasm), "--cpython", str(cpython), "--manifest", str(tmp_path / "m.json")],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    by_path = {e.path: e for e in RuntimeManifest.read(tmp_path / "m.json").files}
    assert sorted(by_path) == ["bin/python.wasm", "lib/python3.99/lib-dynload/.keep", "lib/python3.99/os.py"]
    assert {e.recipe for e in by_path.values()} == {"build_cpython"}
    assert by_path["lib/python3.99/os.py"].source_sha256 == SHA

"""Pyodide-style recipes, unchanged, build for WASI (`pipeline build-recipes`).

The recipe tree is written at test time from PyPI metadata (so no index host is written in
the repo) in Pyodide's own format: `<name>/meta.yaml`, `url:` + `sha256:`, patches,
`build.type: static_library` with an Emscripten-style script, `requirements.host`, and
`$(WASM_LIBRARY_DIR)` in the flags. Every recipe builds for real against the chain's
python.wasm, and its `test.imports` run inside python.wasm.
"""

from __future__ import annotations

import difflib
import io
import json
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import REPO, BuiltChain, checkout_env

from pipeline.engine.sources import pypi_release

pytestmark = pytest.mark.e2e


def pypi_file(name: str, version: str, packagetype: str) -> dict[str, str]:
    release = pypi_release(name, version)
    found = next(f for f in release["urls"] if f["packagetype"] == packagetype
                 and (packagetype != "bdist_wheel" or f["filename"].endswith("-none-any.whl")))
    return {"url": found["url"], "sha256": found["digests"]["sha256"], "filename": found["filename"]}


def write_recipe(tree: Path, name: str, recipe: dict) -> Path:
    folder = tree / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return folder


def sdist_member(url: str, member: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response, tarfile.open(fileobj=io.BytesIO(response.read())) as tar:
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read().decode()


LZ4_LIBRARY_SCRIPT = """\
cd lz4libs
for part in lz4 lz4hc lz4frame xxhash; do
  emcc $SIDE_MODULE_CFLAGS -c $part.c -o $part.o
done
emar rcs liblz4.a lz4.o lz4hc.o lz4frame.o xxhash.o
mkdir -p ${WASM_LIBRARY_DIR}/lib/pkgconfig ${WASM_LIBRARY_DIR}/include
cp liblz4.a ${WASM_LIBRARY_DIR}/lib/
cp lz4.h lz4hc.h lz4frame.h ${WASM_LIBRARY_DIR}/include/
cat > ${WASM_LIBRARY_DIR}/lib/pkgconfig/liblz4.pc <<EOF
prefix=${WASM_LIBRARY_DIR}
libdir=\\${prefix}/lib
includedir=\\${prefix}/include
Name: lz4
Description: lz4 for wasm (from the python-lz4 sdist)
Version: 1.10.0
Libs: -L\\${libdir} -llz4
Cflags: -I\\${includedir}
EOF
"""


@pytest.fixture(scope="module")
def recipe_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("pyodide") / "packages"
    wheel = pypi_file("iniconfig", "2.1.0", "bdist_wheel")
    write_recipe(tree, "iniconfig", {
        "package": {"name": "iniconfig", "version": "2.1.0", "top-level": ["iniconfig"]},
        "source": {"url": wheel["url"], "sha256": wheel["sha256"]},
        "test": {"imports": ["iniconfig"]},
        "about": {"license": "MIT"}})
    sdist = pypi_file("simplejson", "3.20.1", "sdist")
    write_recipe(tree, "simplejson", {
        "package": {"name": "simplejson", "version": "3.20.1", "top-level": ["simplejson"]},
        "source": {"url": sdist["url"], "sha256": sdist["sha256"]},
        "test": {"imports": ["simplejson", "simplejson._speedups"]}})
    patched = pypi_file("decorator", "5.2.1", "sdist")
    original = sdist_member(patched["url"], "decorator-5.2.1/src/decorator.py")
    changed = original.replace("__version__ = '5.2.1'", "__version__ = '5.2.1'\nPATCHED_FOR_WASI = True", 1)
    assert changed != original
    patch = "".join(difflib.unified_diff(original.splitlines(keepends=True), changed.splitlines(keepends=True),
                                         "a/src/decorator.py", "b/src/decorator.py"))
    folder = write_recipe(tree, "decorator", {
        "package": {"name": "decorator", "version": "5.2.1"},
        "source": {"url": patched["url"], "sha256": patched["sha256"], "patches": ["patches/0001-mark.patch"]},
        "test": {"imports": ["decorator"]}})
    (folder / "patches").mkdir()
    (folder / "patches/0001-mark.patch").write_text(patch)
    lz4 = pypi_file("lz4", "4.4.5", "sdist")
    write_recipe(tree, "liblz4", {
        "package": {"name": "liblz4", "version": "1.10.0", "tag": ["library", "static_library"]},
        "source": {"url": lz4["url"], "sha256": lz4["sha256"]},
        "build": {"type": "static_library", "script": LZ4_LIBRARY_SCRIPT}})
    write_recipe(tree, "lz4", {
        "package": {"name": "lz4", "version": "4.4.5", "top-level": ["lz4"]},
        "source": {"url": lz4["url"], "sha256": lz4["sha256"]},
        "requirements": {"host": ["liblz4"]},
        "build": {"cflags": "-I$(WASM_LIBRARY_DIR)/include", "ldflags": "-L$(WASM_LIBRARY_DIR)/lib",
                  "script": "export PYLZ4_USE_SYSTEM_LZ4=1"},
        "test": {"imports": ["lz4.block", "lz4.frame"]}})
    return tree


@pytest.fixture(scope="module")
def report(built_chain: BuiltChain, recipe_tree: Path) -> dict:
    out = recipe_tree.parent / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pipeline", "build-recipes", str(recipe_tree), "--json", str(out)],
                          cwd=REPO, env=checkout_env(), capture_output=True, text=True, timeout=1800, check=False)
    print(proc.stdout[-4000:], proc.stderr[-2000:])
    assert out.is_file(), proc.stderr
    recipes = {item["name"]: item for item in json.loads(out.read_text())["recipes"]}
    assert proc.returncode == 0, f"build-recipes exited {proc.returncode}: {recipes}"
    return recipes


def output_of(report: dict, name: str) -> Path:
    """build/packages/<name>, once this run's report says the recipe built: after a failed build the
    runner keeps the last good output there, which must not pass for this run's."""
    assert report[name]["outcome"] == "built", report[name]
    return REPO / "build" / "packages" / name


def test_every_pyodide_style_recipe_builds_and_imports_in_wasm(report: dict) -> None:
    assert {name: (item["outcome"], item["reason"]) for name, item in report.items()} == {
        name: ("built", "") for name in ("decorator", "iniconfig", "liblz4", "lz4", "simplejson")}


def test_an_sdists_c_extension_is_built_in(report: dict) -> None:
    modules = json.loads((output_of(report, "simplejson") / "extensions.json").read_text())["extensions"]
    assert [m["module"] for m in modules] == ["simplejson._speedups"]


def test_the_recipes_patch_is_applied(report: dict) -> None:
    assert "PATCHED_FOR_WASI = True" in (output_of(report, "decorator") / "site-packages/decorator.py").read_text()


def test_a_static_library_is_built_with_emscripten_style_tools_and_linked_by_its_user(report: dict) -> None:
    library = json.loads((output_of(report, "liblz4") / "library.json").read_text())
    assert "lib/liblz4.a" in library["files"] and "include/lz4.h" in library["files"]
    pc = (output_of(report, "liblz4") / "lib/pkgconfig/liblz4.pc").read_text()
    assert "prefix=${pcfiledir}/../.." in pc, "the .pc file is relocatable"
    modules = json.loads((output_of(report, "lz4") / "extensions.json").read_text())["extensions"]
    assert {m["module"] for m in modules} >= {"lz4.block._block", "lz4.frame._frame"}
    log = (REPO / "build/logs/packages/lz4.log").read_text()
    assert "lz4libs/lz4.c" not in log, "the binding used the library recipe, not its bundled copy"

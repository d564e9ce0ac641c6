"""Pyodide's recipe spec on WASI: layered trees, its fields, the Emscripten stand-ins (fast parts).

The end-to-end builds of real Pyodide-style recipes are in tests/test_pyodide_recipes.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLANG, NEEDS_CLANG, REPO, TOOLCHAIN, Project

from pipeline.engine.builders import build_script
from pipeline.engine.spec import Recipe, canonical_name
from pipeline.engine.treebuild import select
from pipeline.errors import PipelineError
from pipeline.paths import Paths
from pipeline.wasmbuild import emcompat
from pipeline.wasmbuild.layer import WASM_LAYER, wasm_settings
from pipeline.wasmbuild.pypackage import check_no_compiled_sources, expand_variables, split_ldflags

LAYER = WASM_LAYER.bind(wasm_settings(REPO), Paths(root=Path("/p"), cache=Path("/c")))


def tree_recipe(tree: Path, folder: str, text: str) -> None:
    (tree / folder).mkdir(parents=True, exist_ok=True)
    (tree / folder / "meta.yaml").write_text(text)


def shell_recipe(name: str, extra: str = "") -> str:
    return (f"package:\n  name: {name}\n  version: \"1.0\"\n{extra}build:\n  builder: shell\n  script: |\n"
            f"    echo {name} > \"$OUT/built.txt\"\noutputs: [built.txt]\n")


def test_a_tree_is_layered_after_the_projects_recipes(project: Project, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree_recipe(tree, "Hello", shell_recipe("Hello"))  # ours (recipes/hello.yaml is a task, not a package)
    own = project.root / "recipes" / "packages" / "markupsafe.yaml"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text(shell_recipe("markupsafe"))
    tree_recipe(tree, "MarkupSafe", "this: is: not valid yaml: [\n")  # overridden: never even read
    tree_recipe(tree, "jinja", shell_recipe("jinja", "requirements:\n  run: [MarkupSafe]\n"))
    proc = project.cli("check", "--json", PIPELINE_RECIPE_TREES=str(tree))
    deps = json.loads(proc.stdout)["deps"]
    assert deps["packages:jinja"] == ["packages:markupsafe"], "MarkupSafe resolves to our markupsafe"
    assert "packages:Hello" in deps


def test_a_missing_tree_folder_is_a_one_line_error(project: Project, tmp_path: Path) -> None:
    proc = project.cli("check", check=False, PIPELINE_RECIPE_TREES=str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: $PIPELINE_RECIPE_TREES: '{tmp_path / 'nowhere'}' "
                                                "is not a folder of recipes"]


def test_disabled_and_tool_less_recipes_are_skipped_with_their_reason(project: Project, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    disabled = shell_recipe("retired").replace('version: "1.0"', 'version: "1.0"\n  _disabled: true')
    tree_recipe(tree, "retired", disabled)
    tree_recipe(tree, "rusty", shell_recipe("rusty", "requirements:\n  executable: [no-such-rustup]\n"))
    tree_recipe(tree, "fine", shell_recipe("fine"))
    proc = project.cli("check", "--keep-going", "--json", check=False, PIPELINE_RECIPE_TREES=str(tree))
    skipped = json.loads(proc.stdout)["skipped"]
    assert "package._disabled: the recipe says it does not build" in skipped[str(tree / "retired/meta.yaml")]
    assert "needs 'no-such-rustup', which is not installed" in skipped[str(tree / "rusty/meta.yaml")]
    assert "packages:fine" in json.loads(proc.stdout)["order"]


def test_fields_without_meaning_on_wasi_are_said_once_and_defaults_say_nothing() -> None:
    plain = Recipe.model_validate({"package": {"name": "p", "version": "1"}, "source": {"pypi": "p", "version": "1",
                                   "sha256": "0" * 64}})
    assert "note:" not in build_script("python-package", plain, LAYER)
    assert "emcompat" not in build_script("python-package", plain, LAYER), "our own recipes' scripts are unchanged"
    pyodide = Recipe.model_validate({"package": {"name": "p", "version": "1"},
                                     "build": {"exports": "requested", "vendor-sharedlib": True, "script": "make"}})
    script = build_script("python-package", pyodide, LAYER)
    assert script.count("note: build.exports has no meaning on WASI") == 1
    assert "note: build.vendor-sharedlib" in script and "emcompat setup" in script
    library = Recipe.model_validate({"package": {"name": "l", "version": "1"},
                                     "build": {"type": "shared_library", "script": "make"}})
    steps = build_script("library", library, LAYER)
    assert "static library on WASI" in steps and steps.index("emcompat setup") < steps.index("make")
    assert steps.index("make") < steps.index("emcompat collect")


def test_emscripten_options_are_dropped_and_the_rest_kept() -> None:
    assert emcompat.emscripten_free(["-O2", "-s", "WASM=1", "-sSIDE_MODULE=1", "-fPIC", "--js-library", "x.js",
                                     "-DX=1", "-c", "a.c", "-sUSE_ZLIB=1", "-o", "a.o"]) == [
        "-O2", "-DX=1", "-c", "a.c", "-o", "a.o"]


@pytest.mark.skipif(CLANG is None, reason=NEEDS_CLANG)
def test_stand_ins_compile_archive_and_collect_a_library(tmp_path: Path) -> None:
    """emcc/emar/emcc -shared through the stand-ins with the real clang; collect keeps what was added."""
    work, out, library_dir = tmp_path / "work", tmp_path / "out", tmp_path / "work" / "wasm-library"
    (library_dir / "include").mkdir(parents=True)
    (library_dir / "include" / "from_host.h").write_text("#define HOST 1\n")
    (work / "emcompat").mkdir()
    (work / "emcompat" / "host.json").write_text(json.dumps({"placed": ["include/from_host.h"], "host": []}))
    tc = TOOLCHAIN
    settings = emcompat.EmSettings(cc=[tc.clang, "--target=wasm32-wasi", "-I" + str(library_dir / "include")],
                                   cxx=[tc.clangxx, "--target=wasm32-wasi"], cxx_link=[], ar=tc.ar,
                                   ranlib=tc.ranlib, nm=tc.nm, strip=tc.strip,
                                   target="wasm32-wasi", config_site="", cmake_toolchain="",
                                   library_dir=str(library_dir))
    env = {**os.environ, emcompat.EMCOMPAT_ENV: json.dumps(settings.__dict__), "WORK": str(work), "OUT": str(out),
           "WASM_LIBRARY_DIR": str(library_dir), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    (tmp_path / "a.c").write_text('#include <from_host.h>\nint a(void) { return HOST; }\n')
    stand_in = [sys.executable, "-m", "pipeline.wasmbuild.emcompat"]
    for step in (["emcc", "-sUSE_ZLIB=1", "-fPIC", "-c", "a.c", "-o", "a.o"],
                 ["emcc", "-shared", "-o", "libfoo.so", "a.o"]):
        subprocess.run([*stand_in, *step], cwd=tmp_path, env=env, check=True)
    assert (tmp_path / "libfoo.so").read_bytes()[:8] == b"!<arch>\n", "a shared library is a static one on WASI"
    (library_dir / "lib" / "pkgconfig").mkdir(parents=True)
    shutil.copy(tmp_path / "libfoo.a", library_dir / "lib" / "libfoo.a")
    (library_dir / "lib" / "libfoo.la").write_text(f"libdir='{library_dir}/lib'\n")
    (library_dir / "lib" / "pkgconfig" / "foo.pc").write_text(f"prefix={library_dir}\nLibs: -L${{prefix}}/lib -lfoo\n")
    out.mkdir()
    subprocess.run([*stand_in, "collect"], env=env, check=True)
    listing = json.loads((out / "library.json").read_text())
    assert listing["files"] == ["lib/libfoo.a", "lib/pkgconfig/foo.pc"], "host files and libtool's .la left out"
    assert (out / "lib/pkgconfig/foo.pc").read_text().startswith("prefix=${pcfiledir}/../..\n")


def test_flags_take_pyodides_variables_and_ldflags_split_at_build_time(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WASM_LIBRARY_DIR", str(tmp_path))
    assert expand_variables("-I$(WASM_LIBRARY_DIR)/include -DX") == [f"-I{tmp_path}/include", "-DX"]
    with pytest.raises(PipelineError, match=r"\$NOPE"):
        expand_variables("-I$(NOPE)")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libz.a").write_bytes(b"!<arch>\n")
    assert split_ldflags([f"-L{tmp_path}/lib", "-lz", "-lc-printscan-long-double"]) == (
        [f"{tmp_path}/lib"], ["-lc-printscan-long-double"])


def test_a_package_that_fell_back_to_pure_python_fails(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "_speedups.c").write_text("int x;\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "helper.c").write_text("int y;\n")
    with pytest.raises(PipelineError, match=r"source has 1 C/C\+\+/Cython file\(s\) \(e.g. pkg/_speedups.c\)"):
        check_no_compiled_sources(tmp_path)
    (tmp_path / "pkg" / "_speedups.c").unlink()
    check_no_compiled_sources(tmp_path)  # only test helpers: fine


def test_selection_by_name_glob_and_tag(tmp_path: Path) -> None:
    files = {canonical_name(n): tmp_path / n / "meta.yaml" for n in ("py-a", "py_b", "other", "libz")}
    tags = {"libz": ["library", "static_library"]}
    assert select(tmp_path, files, ["py*"], tags) == ["py-a", "py-b"]
    assert select(tmp_path, files, ["tag:library", "other"], tags) == ["libz", "other"]
    assert select(tmp_path, files, [], tags) == list(files)
    with pytest.raises(PipelineError, match="matches no recipe"):
        select(tmp_path, files, ["nothing*"], tags)


def test_a_failed_recipe_is_reported_by_its_most_telling_line(tmp_path: Path) -> None:
    from pipeline.engine.treebuild import failure_reason

    log = tmp_path / "x.log"
    log.write_text("+ python -m pipeline.wasmbuild.pypackage build\n"
                   "      src/c/_cffi_backend.c:13:10: fatal error: 'dlfcn.h' file not found\n"
                   "  error: subprocess-exited-with-error\n  ERROR: Failed building wheel for cffi\n"
                   "error: wheel build failed (1)\n")
    assert failure_reason(log) == "fatal error: 'dlfcn.h' file not found"
    log.write_text("Traceback (most recent call last):\nModuleNotFoundError: No module named 'js'\n"
                   "error: import test failed inside wasm (exit 1)\n")
    assert failure_reason(log) == "ModuleNotFoundError: No module named 'js'"
    log.write_text(f"+ make\n{TOOLCHAIN.ld}: error: undefined symbol: dlopen\nmake: *** [all] Error 1\n")
    assert failure_reason(log) == f"{TOOLCHAIN.ld}: error: undefined symbol: dlopen", "the linker is named"

"""The build context across the layer boundary: the engine writes it, the package builder reads it.

On this project's own recipes, rendered but not built: numpy (meson, C++, cflags, build
constraints) is the recipe with the most to carry.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from conftest import REPO

from pipeline.engine.project import load_engine
from pipeline.engine.runner import write_recipe_json
from pipeline.wasmbuild import pypackage
from pipeline.wasmbuild.contracts import BuildInfo
from pipeline.wasmbuild.crossargs import CROSS_ENV, CrossSettings
from pipeline.wasmbuild.layer import WASM_LAYER

INFO = BuildInfo(python_version="3.13", interpreter="python3.13", include="runtime/include/python3.13",
                 home="runtime", stdlib="runtime/lib/python3.13")


def test_the_package_builder_reads_what_the_engine_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = load_engine(REPO, WASM_LAYER)
    monkeypatch.setenv("RECIPE_JSON", str(write_recipe_json(engine, "packages:numpy", tmp_path)))
    ctx = pypackage.load_context()
    assert ctx.recipe == engine.rendered["packages:numpy"], "the validated Recipe itself, not a dict"
    assert ctx.cpython == str(engine.paths.output_dir("build_cpython"))
    assert ctx.source_sha256 == engine.rendered["packages:numpy"].source.sha256  # type: ignore[union-attr]
    assert ctx.toolchain.llvm_major == engine.layer.settings.llvm_major  # type: ignore[attr-defined]

    monkeypatch.setenv("PROJECT_ROOT", str(REPO))
    env = pypackage.cross_env(ctx, INFO, tmp_path, tmp_path / "cross.jsonl")
    assert not [name for name in env if name.startswith("CROSS_")], "one variable, not eleven"
    settings = CrossSettings.from_text(env[CROSS_ENV], CROSS_ENV)
    assert list(settings.cc) == [*shlex.split(ctx.toolchain.cc), *shlex.split(ctx.toolchain.sjlj_flags)]
    assert f"-I{ctx.cpython}/runtime/include/python3.13" in settings.cflags
    assert all(flag in settings.cflags for flag in shlex.split(ctx.recipe.build.cflags))
    assert list(settings.cxx[:-1]) == [*shlex.split(ctx.toolchain.cxx), *shlex.split(ctx.toolchain.exception_flags)]
    assert settings.drop_includes == (f"{ctx.build_python}/include/python3.13",)
    assert Path(env["PIP_CONSTRAINT"]).read_text().splitlines() == ctx.recipe.requirements.constraint
    wrapper = Path(env["CC"])
    assert wrapper.name == "wasm32-wasi-cc" and "-m pipeline.wasmbuild.crosscc cc" in wrapper.read_text()
    assert f"PYTHONPATH={shlex.quote(str(REPO))} exec " in wrapper.read_text(), "the checkout holding pipeline/"
    cross_file = pypackage.meson_cross_file(ctx, tmp_path).read_text()
    assert f"bin = '{tmp_path}/bin'" in cross_file and "c = [bin / 'wasm32-wasi-cc']" in cross_file


def test_exceptions_are_on_for_packages_unless_the_recipe_opts_out(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    engine = load_engine(REPO, WASM_LAYER)
    monkeypatch.setenv("RECIPE_JSON", str(write_recipe_json(engine, "packages:numpy", tmp_path)))
    ctx = pypackage.load_context()
    tc = ctx.toolchain
    on = pypackage.cross_settings(ctx, INFO, tmp_path / "log")
    assert "-fwasm-exceptions" in on.cxx and "-wasm-enable-sjlj" in on.cc and "-wasm-enable-sjlj" in on.cxx
    assert "-wasm-use-legacy-eh=false" in on.cc, "the standard encoding: wasmtime refuses the legacy one"
    build = ctx.recipe.build.model_copy(update={"exceptions": False})
    off = pypackage.cross_settings(ctx.model_copy(update={"recipe": ctx.recipe.model_copy(update={"build": build})}),
                                   INFO, tmp_path / "log")
    assert "-fno-exceptions" in off.cxx and "-fwasm-exceptions" not in off.cxx
    assert list(off.cc) == shlex.split(tc.cc), "C without the setjmp lowering"

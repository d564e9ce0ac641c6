"""The engine's graph, render and keys on in-memory recipes: fast, no toolchain, no doit."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from pipeline.engine.config import ProjectConfig, version_major
from pipeline.engine.graph import DependencyCycle, Graph, build_graph, topological_order
from pipeline.engine.hashing import StatCache
from pipeline.engine.keys import KeyComputer, make_portable
from pipeline.engine.layer import FingerprintedTools, Layer
from pipeline.engine.loader import RecipeFile
from pipeline.engine.render import project_vars, render_recipe
from pipeline.engine.spec import Recipe, pick_builder
from pipeline.errors import RecipeError
from pipeline.paths import Paths
from pipeline.wasmbuild.layer import WASM_LAYER, wasm_settings
from pipeline.wasmbuild.settings import WasmSettings

CONFIG = ProjectConfig(versions={"python": "3.13.5", "llvm": "1:19.1.7-3~deb12u1"})
SETTINGS = WasmSettings(versions=CONFIG.versions, toolchain_recipe=None)


def wasm_layer(root: Path, settings: WasmSettings = SETTINGS) -> Layer:
    return WASM_LAYER.bind(settings, Paths(root=root, cache=root / "cache"))


def recipe_file(root: Path, task: str, **fields: Any) -> RecipeFile:
    name = task.split(":")[-1]
    data = {"package": {"name": name, "version": "1"}, **fields}
    recipe = Recipe.model_validate(data)
    folder = root / "recipes" / ("packages" if task.startswith("packages:") else "")
    file = folder / f"{name}.yaml"
    return RecipeFile(task=task, file=file, rel=str(file.relative_to(root)), recipe=recipe,
                      builder=pick_builder(recipe, task.startswith("packages:")))


def graph_of(root: Path, *entries: RecipeFile) -> Graph:
    return build_graph({entry.task: entry for entry in entries}, wasm_layer(root))


# --- graph ---------------------------------------------------------------------------


def test_dependencies_come_first_and_ties_break_by_name() -> None:
    deps = {"app": ("lib", "zlib"), "lib": ("base",), "zlib": ("base",), "base": (), "alone": ()}
    assert topological_order(deps) == ("alone", "base", "lib", "zlib", "app")


def test_a_cycle_is_named_the_way_depends_reads(tmp_path: Path) -> None:
    with pytest.raises(DependencyCycle) as err:
        topological_order({"a": ("b",), "b": ("c",), "c": ("a",), "d": ()})
    path = err.value.path
    assert path[0] == path[-1] and len(path) == 4
    for task, dep in itertools.pairwise(path):  # each depends on the next
        assert dep in {"a": ("b",), "b": ("c",), "c": ("a",)}[task]
    with pytest.raises(RecipeError, match=r"depends: dependency cycle: (x -> y -> x|y -> x -> y)$"):
        graph_of(tmp_path, recipe_file(tmp_path, "x", depends=["y"]), recipe_file(tmp_path, "y", depends=["x"]))


def test_closures_deps_and_package_names(tmp_path: Path) -> None:
    graph = graph_of(
        tmp_path,
        recipe_file(tmp_path, "toolchain"),
        recipe_file(tmp_path, "libc", depends=["toolchain"]),
        recipe_file(tmp_path, "packages:six", source={"path": "src"}, build={"builder": "shell"}),
        recipe_file(tmp_path, "link", depends=["libc", "six"]),  # a package named without its group
    )
    assert graph.deps["link"] == ("libc", "packages:six")
    assert graph.closure("link") == {"link", "libc", "toolchain", "packages:six"}
    assert graph.closure("toolchain") == {"toolchain"}
    assert graph.order.index("toolchain") < graph.order.index("libc") < graph.order.index("link")


def test_unknown_and_self_dependencies_are_recipe_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"depends\[0\]: unknown dependency 'nope'"):
        graph_of(tmp_path, recipe_file(tmp_path, "a", depends=["nope"]))
    with pytest.raises(RecipeError, match="depends on itself"):
        graph_of(tmp_path, recipe_file(tmp_path, "a", depends=["a"]))


# --- render --------------------------------------------------------------------------

def render(tmp_path: Path, *entries: RecipeFile, task: str) -> Recipe:
    paths = Paths(root=tmp_path, cache=tmp_path / "cache")
    return render_recipe(paths, graph_of(tmp_path, *entries), task, project_vars(CONFIG, wasm_layer(tmp_path)))


def test_templates_see_config_tc_deps_and_versions(tmp_path: Path) -> None:
    script = ('{{ tc.cc }} | {{ tc.nm }} | {{ tc.llvm_major }} | {{ deps.libc.out }} | '
              '{{ config.versions.python | major_minor }} | {{ name }}-{{ version }}')
    rendered = render(tmp_path, recipe_file(tmp_path, "libc"),
                      recipe_file(tmp_path, "app", depends=["libc"], build={"script": script},
                                  outputs=["lib/python{{ config.versions.python | major_minor }}/os.py"]),
                      task="app")
    assert rendered.build.script == (f"clang-19 --target=wasm32-wasi -Wno-deprecated "
                                     f"--sysroot={tmp_path}/build/cxxrt/sysroot "
                                     f"-ffile-prefix-map={tmp_path}=. | "
                                     f"llvm-nm-19 | 19 | {tmp_path}/build/libc | 3.13 | app-1")
    assert rendered.outputs == ["lib/python3.13/os.py"]


def test_an_untemplated_recipe_is_the_validated_model_itself(tmp_path: Path) -> None:
    entry = recipe_file(tmp_path, "plain", build={"script": "make\n"})
    assert render(tmp_path, entry, task="plain") is entry.recipe


def test_undefined_variables_and_templated_pins_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"build.script: undefined template variable: 'nope' is undefined"):
        render(tmp_path, recipe_file(tmp_path, "a", build={"script": "{{ nope }}"}), task="a")
    with pytest.raises(RecipeError, match=r"source.patches\[0\]: templates are not allowed"):
        render(tmp_path, recipe_file(tmp_path, "a", source={"path": "src", "patches": ["{{ x }}.patch"]}), task="a")
    with pytest.raises(RecipeError, match="major_minor: '3' has no minor version"):
        render(tmp_path, recipe_file(tmp_path, "a", build={"script": "{{ '3' | major_minor }}"}), task="a")


def test_the_sandbox_refuses_host_access(tmp_path: Path) -> None:
    script = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(RecipeError, match="template error"):
        render(tmp_path, recipe_file(tmp_path, "a", build={"script": script}), task="a")


# --- keys ----------------------------------------------------------------------------


def keys_for(tmp_path: Path, *entries: RecipeFile) -> KeyComputer:
    paths = Paths(root=tmp_path, cache=tmp_path / "cache")
    graph = graph_of(tmp_path, *entries)
    layer = wasm_layer(tmp_path)
    project = project_vars(CONFIG, layer)
    return KeyComputer(paths, layer, graph, lambda task: render_recipe(paths, graph, task, project), StatCache(None))


def chain(tmp_path: Path, base_script: str = "echo base\n", top_env: dict[str, str] | None = None) -> KeyComputer:
    return keys_for(
        tmp_path,
        recipe_file(tmp_path, "base", build={"script": base_script}),
        recipe_file(tmp_path, "top", depends=["base"], build={"script": "echo top\n", "env": top_env or {}}),
        recipe_file(tmp_path, "other", build={"script": "echo other\n"}),
    )


def test_keys_are_stable_and_follow_every_input(tmp_path: Path) -> None:
    keys = chain(tmp_path)
    assert keys.key("top") == chain(tmp_path).key("top"), "same inputs, same key"
    edited = chain(tmp_path, base_script="echo base v2\n")
    assert edited.key("base") != keys.key("base")
    assert edited.key("top") != keys.key("top"), "a dependency's change reaches its dependents"
    assert edited.key("other") == keys.key("other"), "and nothing else"
    assert chain(tmp_path, top_env={"X": "1"}).key("top") != keys.key("top")
    assert keys.inputs("top")["deps"] == {"base": keys.key("base")}


def test_keys_do_not_depend_on_where_the_checkout_lives(tmp_path: Path) -> None:
    script = "{{ deps.base.out }}/bin/tool\n"
    here, there = tmp_path / "a", tmp_path / "b"
    for root in (here, there):
        root.mkdir()
    key_here = keys_for(here, recipe_file(here, "base"),
                        recipe_file(here, "top", depends=["base"], build={"script": script})).key("top")
    key_there = keys_for(there, recipe_file(there, "base"),
                         recipe_file(there, "top", depends=["base"], build={"script": script})).key("top")
    assert key_here == key_there
    paths = Paths(root=here, cache=here / "cache")
    assert make_portable(f"{here}/build/x {here}/cache/y", paths) == "@ROOT@/build/x @CACHE@/y"


def test_tool_code_run_by_a_step_is_in_its_key(tmp_path: Path) -> None:
    keys = keys_for(tmp_path, recipe_file(tmp_path, "kit", build={
        "script": '"$PYTHON" -m pipeline.wasmbuild.cpythonkit --build-dir b --out o\n'}))
    tools = keys.inputs("kit")["tools"]
    assert "pipeline/wasmbuild/cpythonkit.py" in tools
    assert "pipeline/wasmbuild/contracts.py" in tools, "reached only through an import"
    assert "pipeline/engine/spec.py" not in tools, "the kit's closure stays small: a spec edit rebuilds no CPython"
    assert "pipeline/wasmbuild/crossargs.py" not in tools, "nor does an edit of the compiler stand-ins' settings"


def test_the_toolchain_fingerprint_follows_versions_llvm(tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"toolchain_recipe": "toolchain"})
    assert wasm_layer(tmp_path, settings).fingerprinted_tools() == FingerprintedTools(
        "toolchain", ["clang-19", "wasm-ld-19", "llvm-ar-19"])
    assert wasm_layer(tmp_path).fingerprinted_tools() is None, "toolchain-recipe: null fingerprints nothing"
    twenty = wasm_layer(tmp_path, settings.model_copy(update={"versions": {"llvm": "1:20.1.0-1"}}))
    assert twenty.template_vars()["tc"]["cc"].startswith("clang-20 ")


def test_the_layers_code_is_in_every_key_the_engines_is_not(tmp_path: Path) -> None:
    """The layer shapes every template and step, so its import closure is keyed for a shell recipe
    too; the engine's own code stands behind ENGINE_VERSION."""
    layer_code = chain(tmp_path).inputs("other")["layer"]
    wasm = {"pipeline/wasmbuild/layer.py", "pipeline/wasmbuild/settings.py", "pipeline/wasmbuild/llvm.py"}
    assert wasm <= set(layer_code)
    assert not [path for path in layer_code if path.startswith("pipeline/engine/")]


def test_one_llvm_version_names_every_pin_and_tool() -> None:
    """pipeline.yaml names the LLVM version once: the Debian pins and the tool names derive from it."""
    assert version_major("1:22.1.8-1~deb12u1") == "22" and version_major("3.13.5") == "3"
    config = ProjectConfig(versions={"llvm": "1:22.1.8-1~deb12u1"},
                           toolchain_packages=["clang-{llvm.major}={llvm}", "ccache=4.8"])
    assert config.toolchain_packages == ["clang-22=1:22.1.8-1~deb12u1", "ccache=4.8"]
    text = (REPO / "pipeline.yaml").read_text()
    llvm = wasm_settings(REPO).versions["llvm"]
    assert text.count(llvm) == 1, "the LLVM version is written once"
    assert not re.search(r"(clang|lld|llvm|libclang-rt|libc\+\+(abi)?)-[0-9]+\b", text), "no pin repeats it"

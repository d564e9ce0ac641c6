"""Builders turn a rendered recipe into the bash script that builds it.

They are few and small: the recipe's own shell steps stay in YAML; a builder
only adds the steps a family of recipes always shares.
"""

from __future__ import annotations

from .spec import Builder, Recipe
from .toolchain import Toolchain

# Bump a builder's version when its generated steps change meaning.
BUILDER_VERSIONS: dict[str, str] = {"shell": "1", "autotools": "1", "python-package": "1"}

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


def build_script(builder: Builder, recipe: Recipe, tc: Toolchain) -> str:
    """The full bash script for the build step of one recipe."""
    build = recipe.build
    if builder == "shell":
        middle = ""
    elif builder == "autotools":
        middle = autotools_steps(recipe, tc)
    else:
        # python-package recipes are built by pipeline.pypackage, driven from bash
        # so their steps log and fail like every other step.
        middle = '"$PYTHON" -m pipeline.wasmbuild.pypackage build\n'
    return PRELUDE + build.script + ("\n" if build.script else "") + middle + build.post


def test_script(builder: Builder, recipe: Recipe) -> str:
    """The self-test: the builder's own check (imports in wasm) plus the recipe's commands."""
    imports_test = builder == "python-package" and recipe.test.imports
    steps = '"$PYTHON" -m pipeline.wasmbuild.pypackage test\n' if imports_test else ""
    steps += recipe.test.commands
    return PRELUDE + steps if steps.strip() else ""

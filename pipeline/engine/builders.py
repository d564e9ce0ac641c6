"""Builders turn a rendered recipe into the bash script that builds it.

The engine's own builder is `shell`: the recipe's steps as they are. Every other builder
comes from the project layer (layer.py), which adds the steps a family of recipes always
shares, before the recipe's steps and between its `script` and `post`.
"""

from __future__ import annotations

from ..errors import RecipeError
from .layer import Layer
from .loader import RecipeFile
from .spec import Builder, Recipe

# Bump when the generated steps change meaning; the layer versions its own builders.
ENGINE_BUILDERS: dict[str, str] = {"shell": "1"}

PRELUDE = "set -euxo pipefail\n"


def builder_version(builder: str, layer: Layer) -> str:
    return ENGINE_BUILDERS.get(builder) or layer.builders()[builder]


def check_builders(entries: list[RecipeFile], layer: Layer) -> None:
    """Every recipe's builder is the engine's or the layer's: said at load, before any task runs."""
    known = {**layer.builders(), **ENGINE_BUILDERS}
    for entry in entries:
        if entry.builder not in known:
            raise RecipeError(entry.rel, "build", f"builder {entry.builder!r} is not provided by this project "
                                                  f"(known: {', '.join(sorted(known))})")


def build_script(builder: Builder, recipe: Recipe, layer: Layer) -> str:
    """The full bash script for the build step of one recipe."""
    build = recipe.build
    steps = layer.build_steps(builder, recipe)
    return PRELUDE + steps.prelude + build.script + ("\n" if build.script else "") + steps.middle + build.post


def test_script(builder: Builder, recipe: Recipe, layer: Layer) -> str:
    """The self-test: the builder's own check (from the layer) plus the recipe's commands."""
    steps = layer.test_steps(builder, recipe) + recipe.test.commands
    return PRELUDE + steps if steps.strip() else ""

"""The project layer: all the engine knows of the target it builds for, injected as data.

The engine builds any graph of shell steps. A project adds its target through one object,
handed to `load_engine` by the project's entry points (dodo.py, `python -m pipeline`), never
found by the engine itself:

- `ProjectLayer.settings_model` validates the pipeline.yaml keys the engine does not know
  (one-line errors, like the engine's own); `bind` gives the `Layer` for one project;
- the bound `Layer` adds template variables, builders (their steps around a recipe's own),
  implicit dependencies, the tools whose version strings enter keys, step environment, counts
  of what steps did, and the build context Python builders read.

The layer's code enters every task's key (keys.py): it shapes every script and template.
`NoLayer` is the engine alone: the `shell` builder, nothing added.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel

from ..errors import PipelineError
from ..paths import Paths
from .context import BuildContext
from .spec import Builder, Recipe, Spec


class BuildSteps(NamedTuple):
    """What a builder adds to a recipe's own steps: before them, and between `script` and `post`."""

    prelude: str = ""
    middle: str = ""


class FingerprintedTools(NamedTuple):
    """Executables whose version strings enter the key of every task downstream of the task
    that installs them (asked once per changed binary: keys.py)."""

    installed_by: str
    tools: list[str]


class Layer(Protocol):
    """A project layer bound to one project's validated settings and paths."""

    @property
    def settings(self) -> BaseModel:
        """Its own pipeline.yaml keys, validated: templates see them in `config` too."""
        ...

    def template_vars(self) -> dict[str, Any]:
        """Variables every template sees (computed once per load)."""
        ...

    def watched_files(self) -> list[Path]:
        """Files outside the code that template_vars reads: the no-op memo watches them."""
        ...

    def builders(self) -> dict[str, str]:
        """The builders it provides -> their versions (bump when generated steps change meaning)."""
        ...

    def build_steps(self, builder: Builder, recipe: Recipe) -> BuildSteps: ...

    def test_steps(self, builder: Builder, recipe: Recipe) -> str:
        """The builder's own self-test steps, before the recipe's test commands."""
        ...

    def implicit_deps(self, builder: Builder) -> list[tuple[str, str]]:
        """(field to blame, task) every recipe of this builder depends on without naming it."""
        ...

    def fingerprinted_tools(self) -> FingerprintedTools | None: ...

    def step_env(self, work: Path) -> dict[str, str]:
        """Variables every build and test step of a task gets (`work`: the task's work folder)."""
        ...

    def step_counts(self, work: Path) -> dict[str, int]:
        """Counts of what a task's steps did that the layer keeps (e.g. compile cache hits),
        read from its work folder once they ran: the task's log and the run's summary show them."""
        ...

    def build_context(self, base: BuildContext) -> BuildContext:
        """What $RECIPE_JSON holds: `base`, or a subclass of it with the layer's fields."""
        ...


class RemoteSpec(NamedTuple):
    """The project's remote cache (pipeline.yaml's remote-cache, or $PIPELINE_REMOTE_CACHE),
    for a layer whose tools can share through it too."""

    url: str
    readonly: bool


class ProjectLayer(Protocol):
    """What a project's entry points inject: validates its settings, binds them to a project."""

    @property
    def settings_model(self) -> type[Spec]: ...

    def bind(self, settings: Any, paths: Paths, remote: RemoteSpec | None = None) -> Layer:
        """`settings`: an instance of settings_model; `remote`: the remote cache, if any."""
        ...


class NoSettings(Spec):
    """The engine alone takes no further keys: any other key in pipeline.yaml is unknown."""


class NoLayer:
    """The engine alone: shell recipes, nothing added."""

    settings_model = NoSettings

    def __init__(self, settings: NoSettings | None = None) -> None:
        self.settings = settings or NoSettings()

    def bind(self, settings: Any, paths: Paths, remote: RemoteSpec | None = None) -> NoLayer:
        return NoLayer(settings)

    def template_vars(self) -> dict[str, Any]:
        return {}

    def watched_files(self) -> list[Path]:
        return []

    def builders(self) -> dict[str, str]:
        return {}

    def build_steps(self, builder: Builder, recipe: Recipe) -> BuildSteps:
        return BuildSteps()

    def test_steps(self, builder: Builder, recipe: Recipe) -> str:
        return ""

    def implicit_deps(self, builder: Builder) -> list[tuple[str, str]]:
        return []

    def fingerprinted_tools(self) -> FingerprintedTools | None:
        return None

    def step_env(self, work: Path) -> dict[str, str]:
        return {}

    def step_counts(self, work: Path) -> dict[str, int]:
        return {}

    def build_context(self, base: BuildContext) -> BuildContext:
        return base


NO_LAYER = NoLayer()


def load_layer(name: str) -> ProjectLayer:
    """The layer named `module:attribute` (how dodo.py names it: a no-op run never imports it)."""
    module_name, _, attribute = name.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise PipelineError(f"project layer {name!r}: {exc}") from None
    if not callable(getattr(found, "bind", None)) or not hasattr(found, "settings_model"):
        raise PipelineError(f"project layer {name!r} is not one (it needs settings_model and bind)")
    return found  # type: ignore[no-any-return]

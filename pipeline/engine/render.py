"""jinja2 rendering of recipe text: sandboxed, StrictUndefined, one context per task."""

from __future__ import annotations

import sys
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError

from ..errors import RecipeError
from ..paths import Paths
from .config import ProjectConfig, first_error
from .graph import Graph
from .layer import Layer
from .loader import RecipeFile
from .spec import Recipe

# Fields that decide graph shape or pin content are read before rendering and
# must stay literal; a template there would be ignored, so it is refused.
LITERAL_FIELDS = ("package", "depends", "requirements", "source.sha256", "source.patches")


def major_minor(version: str) -> str:
    """`X.Y.Z` -> `X.Y`: where a pinned version names a directory or an executable."""
    parts = str(version).split(".")
    if len(parts) < 2:
        raise jinja2.TemplateError(f"major_minor: {version!r} has no minor version")
    return ".".join(parts[:2])


def make_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["major_minor"] = major_minor
    return env


def project_vars(config: ProjectConfig, layer: Layer) -> dict[str, Any]:
    """What every template sees besides its task's own: `config` (the engine's keys and the
    layer's together, snake_case; a key both read is the engine's), `python`, and the layer's
    variables. Computed once per load."""
    return {"config": {**layer.settings.model_dump(), **config.model_dump()}, "python": sys.executable,
            **layer.template_vars()}


def template_context(paths: Paths, graph: Graph, task: str, project: dict[str, Any]) -> dict[str, Any]:
    entry = graph.nodes[task]
    deps = {
        graph.nodes[dep].recipe.name: {"out": str(paths.output_dir(dep)), "version": graph.nodes[dep].recipe.version}
        for dep in graph.deps[task]
    }
    packages = [
        {"name": graph.nodes[t].recipe.name, "out": str(paths.output_dir(t)), "version": graph.nodes[t].recipe.version}
        for t in sorted(graph.closure(task) - {task})
        if graph.nodes[t].is_package
    ]
    source = entry.recipe.source
    return {
        **project,
        "deps": deps,
        "packages": packages,  # every package recipe this task depends on, transitively
        "source_sha256": source.sha256 if source else None,
        "name": entry.recipe.name,
        "version": entry.recipe.version,
        "out": str(paths.output_dir(task)),
        "root": str(paths.root),
        "recipe_dir": str(entry.folder),
    }


def render_value(env: SandboxedEnvironment, value: Any, context: dict[str, Any], rel: str, field: str) -> Any:
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        if field.startswith(LITERAL_FIELDS):
            raise RecipeError(rel, field, "templates are not allowed in this field")
        try:
            return env.from_string(value).render(context)
        except jinja2.UndefinedError as exc:
            raise RecipeError(rel, field, f"undefined template variable: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise RecipeError(rel, field, f"template error: {exc}") from None
    if isinstance(value, dict):
        return {k: render_value(env, v, context, rel, f"{field}.{k}" if field else k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(env, v, context, rel, f"{field}[{i}]") for i, v in enumerate(value)]
    return value


def render_recipe(paths: Paths, graph: Graph, task: str, project: dict[str, Any]) -> Recipe:
    """`project`: project_vars()."""
    entry: RecipeFile = graph.nodes[task]
    context = template_context(paths, graph, task, project)
    raw = entry.recipe.model_dump(by_alias=True, exclude_defaults=True)
    rendered = render_value(make_environment(), raw, context, entry.rel, "")
    if rendered == raw:  # nothing templated: the validated model stands as it is
        return entry.recipe
    try:
        return Recipe.model_validate(rendered)
    except ValidationError as exc:
        raise first_error(entry.rel, exc) from None

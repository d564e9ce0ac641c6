"""Dependency resolution and topological order over the loaded recipes."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass

from ..errors import RecipeError
from .config import ProjectConfig
from .loader import PACKAGE_GROUP, RecipeFile


@dataclass(frozen=True)
class Graph:
    nodes: dict[str, RecipeFile]
    deps: dict[str, tuple[str, ...]]  # task -> direct dependencies
    order: tuple[str, ...]  # dependencies before dependents
    closures: dict[str, frozenset[str]]  # task -> itself and everything it depends on

    def closure(self, task: str) -> frozenset[str]:
        """`task` and everything it depends on, transitively."""
        return self.closures[task]


def resolve_name(nodes: dict[str, RecipeFile], entry: RecipeFile, field: str, name: str) -> str:
    """A dependency names a task (`libc`, `packages:six`) or a package (`six`)."""
    package_task = f"{PACKAGE_GROUP}:{name}"
    if name in nodes:
        return name
    if package_task in nodes:
        return package_task
    raise RecipeError(entry.rel, field, f"unknown dependency {name!r} (no recipe defines it)")


def direct_deps(nodes: dict[str, RecipeFile], entry: RecipeFile, config: ProjectConfig) -> tuple[str, ...]:
    recipe = entry.recipe
    found: list[str] = []
    named = [("depends", recipe.depends), ("requirements.host", recipe.requirements.host)]
    if entry.is_package:
        named.append(("requirements.run", recipe.requirements.run))
    for field, names in named:
        for index, name in enumerate(names):
            found.append(resolve_name(nodes, entry, f"{field}[{index}]", name))
    if entry.builder == "python-package":
        for implicit in (config.cpython_recipe, config.build_python_recipe):
            found.append(resolve_name(nodes, entry, "build.builder", implicit))
    if entry.task in found:
        raise RecipeError(entry.rel, "depends", f"{entry.task!r} depends on itself")
    return tuple(dict.fromkeys(found))


def topological_order(deps: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Dependencies before dependents; among tasks ready together, by name, so the order is stable.

    graphlib finds the order and the cycle; it names a cycle as [a, b, ..., a] with each node
    depending on the one before it, reversed here to read the way `depends` does.
    """
    sorter = graphlib.TopologicalSorter({task: sorted(found) for task, found in deps.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise DependencyCycle(list(reversed(exc.args[1]))) from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order += ready
        sorter.done(*ready)
    return tuple(order)


class DependencyCycle(Exception):
    """Raised by topological_order; `path` runs a -> b -> ... -> a, each depending on the next."""

    def __init__(self, path: list[str]) -> None:
        super().__init__(" -> ".join(path))
        self.path = path


def build_graph(nodes: dict[str, RecipeFile], config: ProjectConfig) -> Graph:
    deps = {task: direct_deps(nodes, entry, config) for task, entry in nodes.items()}
    try:
        order = topological_order(deps)
    except DependencyCycle as cycle:
        entry = nodes[cycle.path[0]]
        raise RecipeError(entry.rel, "depends", f"dependency cycle: {cycle}") from None
    closures: dict[str, frozenset[str]] = {}
    for task in order:  # dependencies first, so each closure is a union of finished ones
        closures[task] = frozenset({task}.union(*(closures[dep] for dep in deps[task])))
    return Graph(nodes=nodes, deps=deps, order=order, closures=closures)

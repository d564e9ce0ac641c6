"""Dependency resolution and topological order over the loaded recipes."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass

from ..errors import RecipeError
from .layer import Layer
from .loader import PACKAGE_GROUP, RecipeFile, Unloadable
from .spec import canonical_name


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
    """A dependency names a task (`libc`, `packages:six`) or a package (`six`, or any spelling
    of its name that PyPI takes as the same: `MarkupSafe` finds `packages:markupsafe`)."""
    package_task = f"{PACKAGE_GROUP}:{name}"
    if name in nodes:
        return name
    if package_task in nodes:
        return package_task
    wanted = canonical_name(name)
    for task, node in nodes.items():
        if node.is_package and canonical_name(node.recipe.name) == wanted:
            return task
    raise RecipeError(entry.rel, field, f"unknown dependency {name!r} (no recipe defines it)")


def named_deps(entry: RecipeFile, layer: Layer) -> list[tuple[str, str]]:
    """(field, name) of every dependency a recipe names, the builder's implicit ones included."""
    recipe = entry.recipe
    named = [("depends", recipe.depends), ("requirements.host", recipe.requirements.host)]
    if entry.is_package:
        named.append(("requirements.run", recipe.requirements.run))
    found = [(f"{field}[{index}]", name) for field, names in named for index, name in enumerate(names)]
    return found + layer.implicit_deps(entry.builder)


def direct_deps(nodes: dict[str, RecipeFile], entry: RecipeFile, layer: Layer) -> tuple[str, ...]:
    found = [resolve_name(nodes, entry, field, name) for field, name in named_deps(entry, layer)]
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


def build_graph(nodes: dict[str, RecipeFile], layer: Layer) -> Graph:
    deps = {task: direct_deps(nodes, entry, layer) for task, entry in nodes.items()}
    try:
        order = topological_order(deps)
    except DependencyCycle as cycle:
        entry = nodes[cycle.path[0]]
        raise RecipeError(entry.rel, "depends", f"dependency cycle: {cycle}") from None
    closures: dict[str, frozenset[str]] = {}
    for task in order:  # dependencies first, so each closure is a union of finished ones
        closures[task] = frozenset({task}.union(*(closures[dep] for dep in deps[task])))
    return Graph(nodes=nodes, deps=deps, order=order, closures=closures)


def missing_dependency(kept: dict[str, RecipeFile], everything: dict[str, RecipeFile], entry: RecipeFile,
                       layer: Layer, unloadable: dict[str, str]) -> str | None:
    """Why `entry` cannot build with only `kept` recipes (its first missing dependency), or None."""
    for field, name in named_deps(entry, layer):
        try:
            resolve_name(kept, entry, field, name)
            continue
        except RecipeError:
            pass
        task = name if name in everything else f"{PACKAGE_GROUP}:{name}"
        if task in everything:
            return f"{entry.rel}: {field}: needs {task}, which is skipped"
        if name in unloadable:
            return f"{entry.rel}: {field}: needs {name!r}, whose recipe {unloadable[name]} failed to load"
        return f"{entry.rel}: {field}: unknown dependency {name!r} (no recipe defines it)"
    if entry.task in direct_deps(kept, entry, layer):
        return f"{entry.rel}: depends: {entry.task!r} depends on itself"
    return None


def build_tree_graph(nodes: dict[str, RecipeFile], layer: Layer,
                     failures: list[Unloadable]) -> tuple[Graph, dict[str, str]]:
    """The graph of what can build when some recipes failed to load (building a tree of recipes).

    A recipe that failed to load, one that names a dependency no loaded recipe defines, one in
    a dependency cycle, and everything that depends on any of them are skipped. Returns the
    graph of the rest and {recipe file: the one-line reason it is skipped}.
    """
    skipped = {failure.rel: str(failure.error) for failure in failures}
    unloadable = {failure.name: failure.rel for failure in failures}
    kept = dict(nodes)
    while True:
        dropped = False
        for task, entry in list(kept.items()):  # a drop may strand dependents met earlier: repeat
            reason = missing_dependency(kept, nodes, entry, layer, unloadable)
            if reason is not None:
                skipped[entry.rel] = reason
                del kept[task]
                dropped = True
        if dropped:
            continue
        try:
            topological_order({task: direct_deps(kept, entry, layer) for task, entry in kept.items()})
        except DependencyCycle as cycle:
            for task in cycle.path:
                if task in kept:
                    skipped[kept[task].rel] = f"{kept[task].rel}: depends: dependency cycle: {cycle}"
                    del kept[task]
            continue
        return build_graph(kept, layer), skipped

"""Dependency resolution and topological order over the loaded recipes."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass

from ..errors import RecipeError
from .config import ProjectConfig
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


def named_deps(entry: RecipeFile, config: ProjectConfig) -> list[tuple[str, str]]:
    """(field, name) of every dependency a recipe names, the builder's implicit ones included."""
    recipe = entry.recipe
    named = [("depends", recipe.depends), ("requirements.host", recipe.requirements.host)]
    if entry.is_package:
        named.append(("requirements.run", recipe.requirements.run))
    found = [(f"{field}[{index}]", name) for field, names in named for index, name in enumerate(names)]
    if entry.builder == "python-package":
        found += [("build.builder", implicit) for implicit in (config.cpython_recipe, config.build_python_recipe)]
    elif entry.builder == "library":  # the toolchain's compilers and the sysroot they build against
        found += [("build.type", implicit) for implicit in (config.toolchain_recipe, config.sysroot_recipe) if implicit]
    return found


def direct_deps(nodes: dict[str, RecipeFile], entry: RecipeFile, config: ProjectConfig) -> tuple[str, ...]:
    found = [resolve_name(nodes, entry, field, name) for field, name in named_deps(entry, config)]
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


def missing_dependency(kept: dict[str, RecipeFile], everything: dict[str, RecipeFile], entry: RecipeFile,
                       config: ProjectConfig, unloadable: dict[str, str]) -> str | None:
    """Why `entry` cannot build with only `kept` recipes (its first missing dependency), or None."""
    for field, name in named_deps(entry, config):
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
    if entry.task in direct_deps(kept, entry, config):
        return f"{entry.rel}: depends: {entry.task!r} depends on itself"
    return None


def build_tree_graph(nodes: dict[str, RecipeFile], config: ProjectConfig,
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
            reason = missing_dependency(kept, nodes, entry, config, unloadable)
            if reason is not None:
                skipped[entry.rel] = reason
                del kept[task]
                dropped = True
        if dropped:
            continue
        try:
            topological_order({task: direct_deps(kept, entry, config) for task, entry in kept.items()})
        except DependencyCycle as cycle:
            for task in cycle.path:
                if task in kept:
                    skipped[kept[task].rel] = f"{kept[task].rel}: depends: dependency cycle: {cycle}"
                    del kept[task]
            continue
        return build_graph(kept, config), skipped

"""Dependency resolution and topological order over the loaded recipes."""

from __future__ import annotations

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


def find_cycle(deps: dict[str, tuple[str, ...]]) -> list[str] | None:
    """Return one dependency cycle as a path a -> b -> ... -> a, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in deps[node]:
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(deps):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def topological_order(deps: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    order: list[str] = []
    done: set[str] = set()
    for node in sorted(deps):
        stack: list[tuple[str, int]] = [(node, 0)]
        while stack:
            current, index = stack.pop()
            if current in done:
                continue
            children = sorted(deps[current])
            if index < len(children):
                stack.append((current, index + 1))
                if children[index] not in done:
                    stack.append((children[index], 0))
            else:
                done.add(current)
                order.append(current)
    return tuple(order)


def build_graph(nodes: dict[str, RecipeFile], config: ProjectConfig) -> Graph:
    deps = {task: direct_deps(nodes, entry, config) for task, entry in nodes.items()}
    cycle = find_cycle(deps)
    if cycle:
        entry = nodes[cycle[0]]
        raise RecipeError(entry.rel, "depends", "dependency cycle: " + " -> ".join(cycle))
    order = topological_order(deps)
    closures: dict[str, frozenset[str]] = {}
    for task in order:  # dependencies first, so each closure is a union of finished ones
        closures[task] = frozenset({task}.union(*(closures[dep] for dep in deps[task])))
    return Graph(nodes=nodes, deps=deps, order=order, closures=closures)

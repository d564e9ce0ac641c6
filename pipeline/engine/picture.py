"""A picture of the task graph: Graphviz DOT, each node coloured by what a run would do.

The states and reasons are explain's (`task_state`): up to date, would restore (the key is
in the local cache), would run, with Engine.status's reason and the first changed key input.
Edges point from a dependency to what uses it, the way data flows.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import PipelineError
from .explain import UP_TO_DATE, WOULD_RESTORE, WOULD_RETEST, WOULD_RUN, TaskState, task_state, wanted_tasks
from .loader import PACKAGE_GROUP
from .project import Engine

# fill colour per state: green settled, blue cheap, yellow a self-test alone, orange work
FILL = {UP_TO_DATE: "#c8e6c9", WOULD_RESTORE: "#bbdefb", WOULD_RETEST: "#fff9c4", WOULD_RUN: "#ffe0b2"}
MAX_REASON = 48


def quoted(*lines: str) -> str:
    """A DOT string literal; several lines are joined by DOT's own line break."""
    escaped = (line.replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return '"' + "\\n".join(escaped) + '"'


def clipped(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def node_label(engine: Engine, found: TaskState) -> list[str]:
    recipe = engine.graph.nodes[found.task].recipe
    lines = [found.task, f"{recipe.version}", found.state]
    if found.state != UP_TO_DATE:
        lines.append(clipped(found.reason))
    if found.changes:
        lines.append(clipped(found.changes[0]) + (f" (+{len(found.changes) - 1})" if len(found.changes) > 1 else ""))
    return lines


def graph_dot(engine: Engine, targets: list[str]) -> tuple[str, dict[str, int]]:
    """The DOT text for `targets` and their dependencies (all tasks when none), and counts per state."""
    tasks = wanted_tasks(engine, targets)
    states = {task: task_state(engine, task) for task in tasks}
    counts = {state: sum(1 for s in states.values() if s.state == state) for state in FILL}
    out = [
        "digraph pipeline {",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=11, nodesep=0.25, ranksep=0.5];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '  edge [color="#777777", arrowsize=0.6];',
    ]
    packages = [task for task in tasks if task.startswith(PACKAGE_GROUP + ":")]
    top = [task for task in tasks if task not in packages]
    for task in top:
        out.append(node_line(engine, states[task], "  "))
    if packages:
        out += ["  subgraph cluster_packages {", f"    label={quoted(PACKAGE_GROUP)};",
                '    style="rounded,dashed"; color="#999999";']
        out += [node_line(engine, states[task], "    ") for task in packages]
        out.append("  }")
    for task in tasks:
        out += [f"  {quoted(dep)} -> {quoted(task)};" for dep in engine.graph.deps[task]]
    legend = ", ".join(f"{n} {state}" for state, n in counts.items())
    out.append(f'  label={quoted("pywasm graph: " + legend)}; labelloc=t;')
    out.append("}")
    return "\n".join(out) + "\n", counts


def node_line(engine: Engine, found: TaskState, indent: str) -> str:
    return (f"{indent}{quoted(found.task)} [label={quoted(*node_label(engine, found))}, "
            f"fillcolor={quoted(FILL[found.state])}];")


def render_svg(dot_file: Path, svg_file: Path) -> bool:
    """Render with Graphviz's `dot` when it is installed; False when it is not."""
    dot = shutil.which("dot")
    if dot is None:
        return False
    proc = subprocess.run([dot, "-Tsvg", str(dot_file), "-o", str(svg_file)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise PipelineError(f"dot -Tsvg {dot_file}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return True

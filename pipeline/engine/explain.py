"""Why would a task run? Diff its stored key inputs against the current ones."""

from __future__ import annotations

from typing import Any

from .project import Engine
from .state import read_state

MAX_SHOWN = 60


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def diff_inputs(old: Any, new: Any, where: str = "") -> list[str]:
    """Paths (a.b[0].c) whose values differ, with old -> new."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[str] = []
        for key in sorted(set(old) | set(new)):
            path = f"{where}.{key}" if where else str(key)
            if key not in old:
                changes.append(f"{path}: added {short(new[key])}")
            elif key not in new:
                changes.append(f"{path}: removed")
            else:
                changes.extend(diff_inputs(old[key], new[key], path))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new, strict=True)) for c in diff_inputs(a, b, f"{where}[{i}]")]
    return [] if old == new else [f"{where}: {short(old)} -> {short(new)}"]


def explain_task(engine: Engine, task: str) -> list[str]:
    status = engine.status(task)
    if status.up_to_date:
        return [f"{task}: up to date"]
    key = engine.keys.key(task)
    action = "restore from cache" if engine.cache.has(key) else "build"
    lines = [f"{task}: would {action} ({status.reason})"]
    state = read_state(engine.paths.state_file(task))
    if state is not None and state["key"] != key:
        changes = diff_inputs(state.get("inputs", {}), engine.keys.inputs(task))
        lines += [f"  changed: {change}" for change in changes] or ["  (stored inputs match; builder changed?)"]
    return lines


def explain(engine: Engine, targets: list[str]) -> list[str]:
    wanted = set().union(*(engine.graph.closure(t) for t in targets)) if targets else set(engine.graph.order)
    return [line for task in engine.graph.order if task in wanted for line in explain_task(engine, task)]

"""Why would a task run? Diff its stored key inputs against the current ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .project import Engine
from .state import SELF_TEST_CHANGED, read_state

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


UP_TO_DATE, WOULD_RESTORE, WOULD_RETEST, WOULD_RUN = "up to date", "would restore", "would retest", "would run"
UNSEEN_CHANGE = "(stored inputs match; builder changed?)"  # the key changed, no recorded input did


@dataclass(frozen=True)
class TaskState:
    """What a run would do with one task, and why."""

    task: str
    state: str  # UP_TO_DATE, WOULD_RESTORE (from the local cache), WOULD_RETEST (its self-test alone) or WOULD_RUN
    reason: str  # Engine.status's reason: never built, key changed, output changed: ...
    changes: tuple[str, ...] = ()  # the key inputs that changed since the last build


def task_state(engine: Engine, task: str) -> TaskState:
    status = engine.status(task)
    if status.up_to_date:
        return TaskState(task, UP_TO_DATE, status.reason)
    key = engine.keys.key(task)
    stored = read_state(engine.paths.state_file(task))
    if status.reason == SELF_TEST_CHANGED and stored is not None:
        changes = diff_inputs(stored.get("test_inputs") or {}, engine.keys.test_inputs(task) or {})
        test_key = engine.keys.test_key(task)
        passed = test_key is not None and engine.cache.has(test_key)  # then its pass is restored
        return TaskState(task, WOULD_RESTORE if passed else WOULD_RETEST, status.reason,
                         tuple(changes) or (UNSEEN_CHANGE,))
    state = WOULD_RESTORE if engine.cache.has(key) else WOULD_RUN
    changes: tuple[str, ...] = ()
    if stored is not None and stored["key"] != key:
        changes = tuple(diff_inputs(stored.get("inputs", {}), engine.keys.inputs(task))) or (UNSEEN_CHANGE,)
    return TaskState(task, state, status.reason, changes)


def explain_task(engine: Engine, task: str) -> list[str]:
    found = task_state(engine, task)
    if found.state == UP_TO_DATE:
        return [f"{task}: up to date"]
    action = {WOULD_RESTORE: "restore from cache", WOULD_RETEST: "rerun its self-test alone"}.get(found.state, "build")
    lines = [f"{task}: would {action} ({found.reason})"]
    return lines + [f"  {change}" if change == UNSEEN_CHANGE else f"  changed: {change}" for change in found.changes]


def wanted_tasks(engine: Engine, targets: list[str]) -> list[str]:
    """The targets and everything they depend on, in build order (all tasks when none given)."""
    wanted = set().union(*(engine.graph.closure(t) for t in targets)) if targets else set(engine.graph.order)
    return [task for task in engine.graph.order if task in wanted]


def explain(engine: Engine, targets: list[str]) -> list[str]:
    return [line for task in wanted_tasks(engine, targets) for line in explain_task(engine, task)]

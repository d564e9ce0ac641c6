"""The graph as doit tasks: plain dicts, one status check, one action.

dodo.py calls `doit_namespace()`; doit then sees one task creator per
top-level recipe (`libc`, `build_cpython`, ...) and one `packages` group whose
subtasks are `packages:<name>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed

from ..errors import PipelineError, report_error
from .loader import PACKAGE_GROUP
from .project import Engine, load_engine
from .reporter import PipelineReporter
from .state import drop_torn_json


def uptodate(engine: Engine, task: str) -> bool:
    return engine.status(task).up_to_date


def act(engine: Engine, task: str) -> dict[str, str] | TaskFailed:
    from .runner import run_task  # the build machinery loads only when something runs

    try:
        return run_task(engine, task)
    except PipelineError as exc:
        return TaskFailed(str(exc))


def task_dict(engine: Engine, task: str) -> dict[str, Any]:
    entry = engine.graph.nodes[task]
    about = entry.recipe.about.summary or f"{entry.recipe.name} {entry.recipe.version} ({entry.rel})"
    return {
        "actions": [(act, [engine, task])],
        "task_dep": list(engine.graph.deps[task]),
        "uptodate": [(uptodate, [engine, task])],
        "doc": about,
        "verbosity": 0,
        # No stdout swapping: doit swaps the process-wide sys.stdout to capture an
        # action, which races between worker threads. Steps log to files anyway.
        "io": {"capture": False},
    }


@dataclass(frozen=True)
class TaskCreator:
    """doit's `create_doit_tasks` protocol: one creator yields every task.

    Top-level recipes become basenames (`libc`, `build_cpython`); package
    recipes become the `packages` group's subtasks (`packages:<name>`).
    """

    engine: Engine

    def create_doit_tasks(self) -> Iterator[dict[str, Any]]:
        packages = [t for t in self.engine.graph.order if t.startswith(PACKAGE_GROUP + ":")]
        if packages:
            yield {"basename": PACKAGE_GROUP, "name": None, "doc": "all package recipes"}
        for task in self.engine.graph.order:
            basename, _, name = task.partition(":")
            naming = {"basename": basename, "name": name} if name else {"basename": basename}
            yield {**naming, **task_dict(self.engine, task)}


def doit_namespace(dodo_file: str) -> dict[str, Any]:
    """Everything dodo.py exposes. Bad input exits with one line, before any write."""
    try:
        engine = load_engine(Path(dodo_file).parent)
    except PipelineError as exc:
        raise SystemExit(report_error(exc)) from None
    engine.paths.state_dir.mkdir(parents=True, exist_ok=True)
    drop_torn_json(engine.paths.doit_db, "doit's database")
    namespace: dict[str, Any] = {"pipeline_tasks": TaskCreator(engine)}
    namespace["DOIT_CONFIG"] = {
        "dep_file": str(engine.paths.doit_db),
        "backend": "json",
        "reporter": PipelineReporter,
        "action_string_formatting": "new",
        # Independent tasks run side by side (`doit -n 1` runs one at a time): a
        # configure script or a one-file compile leaves a core idle otherwise.
        "num_process": engine.config.worker_count(),
        "par_type": "thread",
    }
    return namespace

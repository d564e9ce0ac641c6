"""The graph as doit tasks: plain dicts, one status check, one action.

dodo.py calls `doit_namespace()` with the project's layer; doit then sees one task creator per
top-level recipe (`libc`, `build_cpython`, ...) and one `packages` group whose
subtasks are `packages:<name>`.

A no-op run takes the graph and keys from the last run's memo (engine/memo.py)
when nothing they were made from changed: no recipe is validated or rendered,
and pydantic and jinja2 are not imported. Anything else loads the project in full.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doit.exceptions import TaskFailed

from ..errors import PipelineError, report_error
from ..paths import PACKAGE_GROUP, Paths
from .lock import BuildLock
from .memo import Memo, Witness, forget_memo, load_memo, save_memo
from .reporter import PipelineReporter
from .state import Status, check_status, drop_torn_json, verify_requested

if TYPE_CHECKING:
    from .project import Engine

@dataclass
class Session:
    """One doit process's view of the project: the memo if it still holds, else the full Engine.

    The full Engine is loaded on first need (a task without a memoized key, or one that
    must run); the build-dir lock is shared with it.
    """

    root: Path
    layer: str  # the project's layer, `module:attribute` (layer.py: load_layer), named by dodo.py
    lock: BuildLock
    memo: Memo | None
    paths: Paths | None = None
    verify: bool = False
    _engine: Engine | None = None
    # what the memo's graph and keys were made from; a full load adds to it
    _witness: Witness = field(default_factory=Witness.empty)

    def engine(self) -> Engine:
        if self._engine is None:
            from .config import keep_going_requested
            from .layer import load_layer
            from .project import load_engine

            self._engine = load_engine(self.root, load_layer(self.layer), self.lock, self._witness,
                                       keep_going=keep_going_requested())
            for reason in self._engine.skipped.values():
                print(f"skipped: {reason}", file=sys.stderr)
            self.paths = self._engine.paths
            forget_memo(self.paths)  # rewritten at exit from what this run computed
            atexit.register(self.save_memo)
        return self._engine

    @property
    def order(self) -> tuple[str, ...]:
        return self.memo.order if self.memo else self.engine().graph.order

    def deps(self, task: str) -> tuple[str, ...]:
        return self.memo.deps[task] if self.memo else self.engine().graph.deps[task]

    def doc(self, task: str) -> str:
        if self.memo:
            return self.memo.docs[task]
        entry = self.engine().graph.nodes[task]
        return entry.recipe.about.summary or f"{entry.recipe.name} {entry.recipe.version} ({entry.rel})"

    def workers(self) -> int:
        return self.memo.workers if self.memo else self.engine().config.worker_count()

    def status(self, task: str) -> Status:
        memo = self.memo
        if memo is None or task not in memo.keys or task not in memo.test_keys or self.paths is None:
            return self.engine().status(task)
        self.lock.acquire()
        return check_status(self.paths, task, memo.keys[task], memo.test_keys[task], self.verify)

    def save_memo(self) -> None:
        """After a full load: record the graph, every key computed, and what they were made from."""
        engine = self._engine
        if engine is None:
            return
        keys = {**(self.memo.keys if self.memo else {}), **engine.keys.computed()}
        test_keys = {**(self.memo.test_keys if self.memo else {}), **engine.keys.computed_test_keys()}
        if not keys or "missing" in engine.keys.fingerprint().values():
            return  # the toolchain is not installed yet: keys will change once it is
        if engine.skipped:
            return  # a partial graph: the next run loads again, and says again what it skips
        memo = Memo(
            order=engine.graph.order, deps=dict(engine.graph.deps),
            docs={task: self.doc(task) for task in engine.graph.order}, keys=keys, test_keys=test_keys,
            workers=engine.config.worker_count(), cache=str(engine.paths.cache),
        )
        save_memo(engine.paths, memo, self._witness)


def open_session(root: Path, layer: str) -> Session:
    """The memo when it holds (the no-op path), else a full load that checks all input first."""
    root = root.resolve()
    build_paths = Paths(root, cache=root)  # only build/ is known before the config is read
    verify = verify_requested()
    lock = BuildLock(build_paths.lock_file, build_paths.steps_dir)
    found = load_memo(build_paths)
    if found is not None:
        memo, witness = found
        return Session(root, layer, lock, memo, Paths(root, Path(memo.cache)), verify, _witness=witness)
    session = Session(root, layer, lock, None, verify=verify)
    session.engine()  # bad input fails here, before any write
    return session


def uptodate(session: Session, task: str) -> bool:
    return session.status(task).up_to_date


def act(session: Session, task: str) -> dict[str, str] | TaskFailed:
    from .runner import run_task  # the build machinery loads only when something runs

    try:
        return run_task(session.engine(), task)
    except PipelineError as exc:
        return TaskFailed(str(exc))


def task_dict(session: Session, task: str) -> dict[str, Any]:
    return {
        "actions": [(act, [session, task])],
        "task_dep": list(session.deps(task)),
        "uptodate": [(uptodate, [session, task])],
        "doc": session.doc(task),
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

    session: Session

    def create_doit_tasks(self) -> Iterator[dict[str, Any]]:
        order = self.session.order
        if any(t.startswith(PACKAGE_GROUP + ":") for t in order):
            yield {"basename": PACKAGE_GROUP, "name": None, "doc": "all package recipes"}
        for task in order:
            basename, _, name = task.partition(":")
            naming = {"basename": basename, "name": name} if name else {"basename": basename}
            yield {**naming, **task_dict(self.session, task)}


def doit_namespace(dodo_file: str, layer: str) -> dict[str, Any]:
    """Everything dodo.py exposes. `layer` names the project's layer as `module:attribute`
    (engine/layer.py), imported only when the project loads in full (a no-op run need not).
    Bad input exits with one line, before any write."""
    try:
        session = open_session(Path(dodo_file).parent, layer)
    except PipelineError as exc:
        raise SystemExit(report_error(exc)) from None
    assert session.paths is not None
    session.paths.state_dir.mkdir(parents=True, exist_ok=True)
    drop_torn_json(session.paths.doit_db, "doit's database")
    namespace: dict[str, Any] = {"pipeline_tasks": TaskCreator(session)}
    namespace["DOIT_CONFIG"] = {
        "dep_file": str(session.paths.doit_db),
        "backend": "json",
        "reporter": PipelineReporter.bound(session.paths.log_file),
        "action_string_formatting": "new",
        # Independent tasks run side by side (`doit -n 1` runs one at a time): a
        # configure script or a one-file compile leaves a core idle otherwise.
        "num_process": session.workers(),
        "par_type": "thread",
    }
    return namespace

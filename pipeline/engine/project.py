"""The loaded project: recipes -> models -> graph -> rendered recipes -> keys.

One Engine is made per process (by dodo.py or the CLI); it holds no state
beyond memoized, content-derived values and the build-dir lock.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..errors import PipelineError
from ..paths import Paths
from .cache import ArtifactCache
from .config import ProjectConfig, load_config, project_paths, remote_url
from .graph import Graph, build_graph
from .hashing import StatCache
from .keys import KeyComputer
from .loader import load_recipes
from .render import host_facts, render_recipe
from .spec import Recipe
from .state import UNREADABLE_RECORD, manifest_problem, read_state
from .supervisor import reap_leftover_steps

if TYPE_CHECKING:
    from .remote import RemoteCache

VERIFY_ENV = "PIPELINE_VERIFY"


@dataclass
class BuildLock:
    """An exclusive flock on build/.lock, held until the process exits.

    Whoever takes it first ends what a killed run's steps left running (supervisor.py):
    nothing may build on top of them. The lock file is opened close-on-exec, so steps
    never hold it: a killed runner's lock is free at once.
    """

    path: Path
    steps: Path | None = None  # build/.steps: records of steps that were running
    _handle: IO[str] | None = None
    _guard: threading.Lock = field(default_factory=threading.Lock)  # doit's worker threads

    def acquire(self) -> None:
        with self._guard:
            if self._handle is not None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")  # noqa: SIM115 - held open: the lock lives with it
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                print(f"waiting for another run holding {self.path} (pid {holder})...", file=sys.stderr, flush=True)
                fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            self._handle = handle
            if self.steps is not None:
                try:
                    reap_leftover_steps(self.steps)
                except TimeoutError as exc:
                    raise PipelineError(f"{self.steps}: {exc}; build/ is not safe to use") from None


@dataclass(frozen=True)
class Status:
    up_to_date: bool
    reason: str


@dataclass
class Engine:
    paths: Paths
    config: ProjectConfig
    graph: Graph
    rendered: dict[str, Recipe]
    keys: KeyComputer
    cache: ArtifactCache
    lock: BuildLock
    verify: bool = False
    remote: RemoteCache | None = None

    def status(self, task: str) -> Status:
        """Up to date iff the recorded key matches and the output still holds."""
        self.lock.acquire()
        key = self.keys.key(task)
        self.keys.stat_cache.flush()
        record = self.paths.state_file(task)
        state = read_state(record)
        if state is None:
            return Status(False, UNREADABLE_RECORD if record.exists() else "never built")
        if state["key"] != key:
            return Status(False, "key changed")
        problem = manifest_problem(self.paths.output_dir(task), state["manifest"], self.verify)
        if problem:
            return Status(False, f"output changed: {problem}")
        return Status(True, "up to date")



def open_remote(config: ProjectConfig) -> RemoteCache | None:
    """Only a configured remote pays for importing the network code (no-op runs stay fast)."""
    if not remote_url(config.remote_cache):
        return None
    from .remote import remote_from

    return remote_from(config.remote_cache, config.remote_readonly)


def load_engine(root: Path) -> Engine:
    """Validate and render everything up front: bad input fails before any write."""
    root = root.resolve()
    config = load_config(root)
    paths = project_paths(root, config)
    nodes = load_recipes(paths)
    graph = build_graph(nodes, config)
    host = host_facts()
    rendered = {task: render_recipe(paths, config, graph, task, host) for task in graph.order}
    keys = KeyComputer(paths, config, graph, rendered.__getitem__, StatCache(paths.stat_db))
    return Engine(
        paths=paths,
        config=config,
        graph=graph,
        rendered=rendered,
        keys=keys,
        cache=ArtifactCache(paths),
        lock=BuildLock(paths.lock_file, paths.steps_dir),
        verify=os.environ.get(VERIFY_ENV, "") not in ("", "0"),
        remote=open_remote(config),
    )

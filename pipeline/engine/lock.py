"""The build-dir lock: one run at a time changes build/ (a second run waits, saying so)."""

from __future__ import annotations

import fcntl
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import PipelineError
from .supervisor import reap_leftover_steps


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

"""Progress on the console: one line per task with its state and time, then a summary.

Follows doit's reporter event protocol (initialize, execute_task, add_success, ...).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import IO, Any


class PipelineReporter:
    desc = "one line per task: built / restored / up to date, with times"

    def __init__(self, outstream: IO[str], options: dict[str, Any]) -> None:
        self.out = outstream
        self.started: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        self.failures: list[tuple[str, str]] = []
        self.runtime_errors: list[str] = []
        self.run_started = time.monotonic()
        self.running: set[str] = set()
        self.writing = threading.Lock()  # execute_task comes from doit's worker threads

    def write(self, text: str) -> None:
        with self.writing:
            self.out.write(text)
            self.out.flush()

    def line(self, state: str, name: str, seconds: float | None = None) -> None:
        timing = f"{seconds:8.1f}s" if seconds is not None else ""
        self.write(f"  {state:<11} {name:<32} {timing}\n")

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        pass

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        if task.actions:
            self.started[task.name] = time.monotonic()
            alone = not self.running
            self.running.add(task.name)
            if alone and self.out.isatty():  # overwritten in place by the outcome line
                self.write(f"  {'running':<11} {task.name}\r")
            else:
                self.line("running", task.name)

    def add_success(self, task: Any) -> None:
        if not task.actions:
            return
        self.running.discard(task.name)
        outcome = task.values.get("outcome", "built")
        self.counts[outcome] += 1
        self.line(outcome, task.name, time.monotonic() - self.started.get(task.name, self.run_started))
        if task.values.get("note"):
            self.write(f"  {'':<11} warning: {task.values['note']}\n")

    def add_failure(self, task: Any, fail: Any) -> None:
        self.running.discard(task.name)
        self.counts["failed"] += 1
        seconds = time.monotonic() - self.started.get(task.name, self.run_started)
        self.line("FAILED", task.name, seconds)
        self.failures.append((task.name, fail.get_msg().strip()))

    def skip_uptodate(self, task: Any) -> None:
        if task.actions:
            self.counts["up to date"] += 1
            self.line("up to date", task.name)

    def skip_ignore(self, task: Any) -> None:
        self.line("ignored", task.name)

    def cleanup_error(self, exception: Any) -> None:
        self.out.write(exception.get_msg())

    def runtime_error(self, msg: str) -> None:
        self.runtime_errors.append(msg)

    def teardown_task(self, task: Any) -> None:
        pass

    def complete_run(self) -> None:
        for name, message in self.failures:
            self.out.write(f"\nerror in {name}:\n{message}\n")
        for message in self.runtime_errors:
            self.out.write(f"\nerror: {message}\n")
        parts = [f"{n} {state}" for state, n in sorted(self.counts.items())]
        total = time.monotonic() - self.run_started
        self.out.write(f"summary: {', '.join(parts) or 'nothing to do'} in {total:.1f}s\n")
        self.out.flush()

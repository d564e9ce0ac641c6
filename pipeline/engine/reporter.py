"""Progress on the console: one line per task with its state and time, then a summary.

Follows doit's reporter event protocol (initialize, execute_task, add_success, ...).

While tasks run, a ticker thread shows each one's elapsed time and what it is doing: the
step it is in (the runner's `=== build (12:00:01) ===` markers in build/logs/<task>.log)
and the log's last meaningful line. On a terminal that is one status line, redrawn in
place every second below the permanent lines; without one (CI, a pipe) it is plain lines,
one per running task, every 30 s: calm enough for a CI log, often enough to see life.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

PROGRESS_INTERVAL_ENV = "PIPELINE_PROGRESS_INTERVAL"  # seconds between progress reports
TTY_INTERVAL = 1.0
PLAIN_INTERVAL = 30.0
TAIL_BYTES = 64 * 1024  # enough for the last line of any log; a 2 GB log is never read whole
PHASE_MARK = re.compile(rb"^=== (\S+)", re.MULTILINE)
# The runner's `key <sha256>` header, make's directory bookkeeping and lines with no letters
# (progress bars, separators) say little; bash's `set -x` lines do (the command now running),
# without their `+ `.
NOISE = re.compile(r"^key [0-9a-f]{64}$|^make(\[\d+\])?: (Entering|Leaving|Nothing)|^[\W_]*$")
XTRACE = re.compile(r"^\++ ")
CLEAR_LINE = "\r\033[K"


def describe_counts(counts: dict[str, int]) -> str:
    """`compile cache hits 12, compile cache misses 3`: a layer's step counts, in one line."""
    return ", ".join(f"{name} {number}" for name, number in counts.items())


def clock(seconds: float) -> str:
    """12s, 3m05s, 1h02m: short enough for a status line."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def meaningful(line: str) -> bool:
    return not NOISE.search(line.strip())


def summarize(line: str) -> str:
    """A compiler command is told by what it makes; anything else by its own words."""
    words = XTRACE.sub("", line.strip()).split()
    if "-c" in words and "-o" in words[:-1]:
        return f"compiling {words[words.index('-o') + 1]}"
    return " ".join(words)


@dataclass
class LogWatch:
    """What a running task's log says: its current step and last meaningful line.

    Reads only what was appended since the last look (and at most TAIL_BYTES of it).
    """

    path: Path
    offset: int = 0
    phase: str = ""
    last_line: str = ""

    def update(self) -> None:
        try:
            with open(self.path, "rb") as log:
                size = os.fstat(log.fileno()).st_size
                if size < self.offset:  # a new log for a new run
                    self.offset, self.phase, self.last_line = 0, "", ""
                start = max(self.offset, size - TAIL_BYTES)
                log.seek(start)
                chunk = log.read(size - start)
        except OSError:
            return
        self.offset = size
        phases = PHASE_MARK.findall(chunk)
        if phases:
            self.phase = phases[-1].decode(errors="replace")
        for raw in reversed(chunk.decode(errors="replace").splitlines()):
            if meaningful(raw) and not raw.startswith("=== "):
                self.last_line = summarize(raw)
                break

    def describe(self) -> str:
        parts = [part for part in (self.phase, self.last_line) if part]
        return ": ".join(parts) if parts else "starting"


@dataclass
class Running:
    started: float
    log: LogWatch | None


@dataclass
class Ticker:
    """Calls `tick` every `interval` seconds on its own thread until stopped."""

    interval: float
    tick: Callable[[], None]
    stopped: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="progress", daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.tick()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()


class PipelineReporter:
    desc = "one line per task: built / restored / up to date, with times; progress while running"
    # Where a task's log is; set by `bound` (doit makes the reporter from a class).
    log_file: ClassVar[Callable[[str], Path] | None] = None

    @classmethod
    def bound(cls, log_file: Callable[[str], Path]) -> type[PipelineReporter]:
        return type(cls.__name__, (cls,), {"log_file": staticmethod(log_file)})

    def __init__(self, outstream: IO[str], options: dict[str, Any]) -> None:
        self.out = outstream
        self.counts: Counter[str] = Counter()
        self.step_counts: Counter[str] = Counter()  # the layer's counts (engine/layer.py), summed
        self.failures: list[tuple[str, str]] = []
        self.runtime_errors: list[str] = []
        self.run_started = time.monotonic()
        self.running: dict[str, Running] = {}
        self.started: dict[str, float] = {}
        self.writing = threading.Lock()  # events come from doit's worker threads and the ticker
        self.tty = self.out.isatty()
        self.status_shown = False  # a TTY status line is on screen, below the permanent lines
        configured = os.environ.get(PROGRESS_INTERVAL_ENV)
        self.interval = float(configured) if configured else TTY_INTERVAL if self.tty else PLAIN_INTERVAL
        self.ticker = Ticker(self.interval, self.show_progress)

    # --- output -----------------------------------------------------------
    def write(self, text: str) -> None:
        """Permanent lines; on a TTY the status line is cleared first and redrawn after."""
        with self.writing:
            if self.status_shown:
                self.out.write(CLEAR_LINE)
            self.out.write(text)
            if self.tty and self.running:
                self.out.write(self.status_line())
                self.status_shown = True
            else:
                self.status_shown = False
            self.out.flush()

    def line(self, state: str, name: str, seconds: float | None = None) -> None:
        timing = f"{seconds:8.1f}s" if seconds is not None else ""
        self.write(f"  {state:<11} {name:<32} {timing}\n")

    def doing(self, name: str) -> str:
        task = self.running[name]
        if task.log is not None:
            task.log.update()
        what = task.log.describe() if task.log is not None else "running"
        return f"{name} {clock(time.monotonic() - task.started)} ({what})"

    def status_line(self) -> str:
        width = shutil.get_terminal_size().columns - 1
        text = "  " + " | ".join(self.doing(name) for name in sorted(self.running))
        return text[:width]

    def show_progress(self) -> None:
        with self.writing:
            if not self.running:
                return
            if self.tty:
                self.out.write(CLEAR_LINE + self.status_line())
                self.status_shown = True
            else:
                for name in sorted(self.running):
                    self.out.write(f"  {'running':<11} {self.doing(name)}\n")
            self.out.flush()

    # --- doit's events ----------------------------------------------------
    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        self.ticker.start()

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        if task.actions:
            now = time.monotonic()
            self.started[task.name] = now
            log = LogWatch(self.log_file(task.name)) if self.log_file is not None else None
            with self.writing:
                self.running[task.name] = Running(now, log)
            if self.tty:  # the status line shows it (and redraws now); outcomes stay on screen
                self.show_progress()
            else:
                self.line("running", task.name)

    def finished(self, name: str) -> float:
        with self.writing:
            self.running.pop(name, None)
        return time.monotonic() - self.started.get(name, self.run_started)

    def add_success(self, task: Any) -> None:
        if not task.actions:
            return
        seconds = self.finished(task.name)
        outcome = task.values.get("outcome", "built")
        self.counts[outcome] += 1
        self.line(outcome, task.name, seconds)
        step_counts = task.values.get("counts") or {}
        if step_counts:
            self.step_counts.update(step_counts)
            self.write(f"  {'':<11} {describe_counts(step_counts)}\n")
        if task.values.get("note"):
            self.write(f"  {'':<11} warning: {task.values['note']}\n")

    def add_failure(self, task: Any, fail: Any) -> None:
        seconds = self.finished(task.name)
        self.counts["failed"] += 1
        self.line("FAILED", task.name, seconds)
        self.failures.append((task.name, fail.get_msg().strip()))

    def skip_uptodate(self, task: Any) -> None:
        if task.actions:
            self.counts["up to date"] += 1
            self.line("up to date", task.name)

    def skip_ignore(self, task: Any) -> None:
        self.line("ignored", task.name)

    def cleanup_error(self, exception: Any) -> None:
        self.write(exception.get_msg())

    def runtime_error(self, msg: str) -> None:
        self.runtime_errors.append(msg)

    def teardown_task(self, task: Any) -> None:
        pass

    def complete_run(self) -> None:
        self.ticker.stop()
        for name, message in self.failures:
            self.out.write(f"\nerror in {name}:\n{message}\n")
        for message in self.runtime_errors:
            self.out.write(f"\nerror: {message}\n")
        parts = [f"{n} {state}" for state, n in sorted(self.counts.items())]
        total = time.monotonic() - self.run_started
        counted = f"; {describe_counts(dict(self.step_counts))}" if self.step_counts else ""
        self.out.write(f"summary: {', '.join(parts) or 'nothing to do'} in {total:.1f}s{counted}\n")
        self.out.flush()

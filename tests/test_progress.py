"""Progress while tasks run: elapsed time and what each is doing, in place on a TTY, calm lines otherwise."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from conftest import Project

from pipeline.engine.reporter import LogWatch, clock

COMPILE = "gcc -pthread -O2 -c Objects/obmalloc.c -o Objects/obmalloc.o"


def test_log_watch_shows_the_step_and_last_meaningful_line(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    log.write_text(f"key {'a' * 64}\n")
    watch = LogWatch(log)
    watch.update()
    assert watch.describe() == "starting"  # the runner's key header says nothing about progress
    with open(log, "a") as out:
        out.write("=== build (12:00:01) ===\n+ ./configure --host=wasm32-wasi\nchecking for gcc... yes\n\n----\n")
    watch.update()
    assert watch.describe() == "build: checking for gcc... yes"
    with open(log, "a") as out:
        out.write(f"{COMPILE}\n=== test (12:03:00) ===\n+ make check\n")
    watch.update()
    assert watch.describe() == "test: make check"
    with open(log, "a") as out:
        out.write(f"{COMPILE}\nmake[2]: Leaving directory '/src/Objects'\n")
    watch.update()
    assert watch.describe() == "test: compiling Objects/obmalloc.o"
    log.write_text(f"key {'b' * 64}\n=== build (13:00:00) ===\n")  # a new run starts a new log
    watch.update()
    assert watch.describe() == "build"


def test_clock_is_short() -> None:
    assert [clock(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m"]


def hold_greeting(project: Project) -> Path:
    """greeting's step waits until the returned file exists: the test lets it end once it saw
    what it waits for (no step length to guess). After 20 s it ends anyway, so a run that never
    shows it fails the test instead of hanging it."""
    release = project.root / "release"
    project.edit("greeting", 'sleep "${SLOW_STEP:-0}"',
                 f'for _ in $(seq 400); do [ -e "{release}" ] && break; sleep 0.05; done')
    return release


def test_without_a_tty_running_tasks_report_at_an_interval(project: Project) -> None:
    release = hold_greeting(project)
    proc = subprocess.Popen([sys.executable, "-m", "doit"], cwd=project.root, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=project.env(PIPELINE_PROGRESS_INTERVAL="0.5"))
    assert proc.stdout is not None
    printed, reports = [], []
    while len(reports) < 3 and (line := proc.stdout.readline()):
        printed.append(line)
        # the step's bash trace (its log's last line) says what it does while it waits
        reports += re.findall(r"^  running     greeting (\d+)s \(build: .+\)$", line, re.MULTILINE)
    release.touch()
    printed.append(proc.stdout.read())
    assert proc.wait(timeout=120) == 0
    output = "".join(printed)
    assert len(reports) == 3, output
    # reports come no sooner than an interval apart: by the third, a second has passed
    assert int(reports[-1]) >= 1 and reports == sorted(reports), reports
    assert "\r" not in output and "\033" not in output  # plain lines for CI logs


def test_on_a_tty_the_status_line_updates_in_place(project: Project) -> None:
    release = hold_greeting(project)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "doit"], cwd=project.root, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
        env=project.env(PIPELINE_PROGRESS_INTERVAL="0.5", COLUMNS="200"),
    )
    os.close(follower)
    redraw = re.compile(r"\r\033\[K  greeting (\d+)s \(build: [^\r]+")
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
        if len(redraw.findall(b"".join(chunks).decode(errors="replace"))) >= 2:
            release.touch()
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    screen = b"".join(chunks).decode()
    assert len(redraw.findall(screen)) >= 2, screen
    assert "  running     greeting" not in screen  # no permanent line per start: the status line shows it
    assert re.search(r"\r\033\[K  built       greeting +\d", screen), screen  # the outcome replaces it


def test_a_failed_task_prints_its_log_tail_and_path(project: Project) -> None:
    project.edit("standalone", 'echo "{{ version }}"', 'echo "about to fail"; false; echo')
    proc = project.doit(check=False)
    assert proc.returncode != 0
    log = project.root / "build/logs/standalone.log"
    assert f"lines of {log} ---" in proc.stdout
    assert "    about to fail" in proc.stdout
    assert f"--- full log: {log}" in proc.stdout

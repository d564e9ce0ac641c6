"""Build steps end with their runner, however it ends: a supervisor per step, and a reaper.

Why not PR_SET_PDEATHSIG on the step's bash (what this replaced): the kernel clears it at
fork, so it reaches bash but not the compilers, `make` jobs and tools bash starts. When the
runner was SIGKILLed those went on writing into the staging directory the next run had
just reset (issue 13).

The kernel means used instead, each for one way a step can outlive its runner:

1. A supervisor per step (this file, run as `python -I supervisor.py RUNNER_PID RECORD --
   bash SCRIPT`). It starts a new session (`setsid`, so a signal to the runner's process
   group or terminal reaches it only through us), asks for SIGTERM when the runner thread
   that started it dies (`PR_SET_PDEATHSIG`: on the supervisor, which does not fork it on),
   and makes itself the step's child subreaper (`PR_SET_CHILD_SUBREAPER`: every orphaned
   descendant is re-parented to it, never to init). Bash runs in its own process group.
   When bash exits, or the runner dies, or we get SIGTERM/SIGINT/SIGHUP, the supervisor
   SIGKILLs bash's process group, then every process left in its session or re-parented
   to it, and reaps them all before it exits. So when the runner sees the supervisor exit,
   nothing the step started is running, background jobs included.
2. A record of the step's session, `build/.steps/<task>.json` (session id = supervisor pid,
   and the supervisor's start time), written before bash starts, removed after the last
   descendant is reaped. If the supervisor itself is SIGKILLed (the OOM killer, a kill -9
   of every pid), the next run finds the record under the build lock, SIGKILLs every
   process still in that session, waits until they are gone, and says so on stderr
   (`reap_leftover_steps`). A session id stays allocated while any member lives, and the
   start time tells a live supervisor from a recycled pid, so only our leftovers are hit.

Not covered: a descendant that leaves the session (`setsid`) *and* whose supervisor was
SIGKILLed; only a cgroup per step would catch that, which needs a delegated cgroup tree.

Standard library only, and no `pipeline` import: the supervisor starts in a few tens of
milliseconds with `python -I`, beside every step.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
END_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
REAP_TIMEOUT = 30.0  # seconds for SIGKILLed leftovers to vanish (only D-state I/O takes long)


def proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name (state is [0], ppid [1], session [3]), or None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            raw = handle.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces and ")"


def start_time(pid: int) -> int | None:
    """Clock ticks after boot at which PID started: with the pid, a process's identity."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields else None


def live_processes() -> Iterator[tuple[int, list[str]]]:
    """Every process that is not a zombie (a zombie has ended; only its exit status is left)."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = proc_stat(int(name))
            if fields and fields[0] not in ("Z", "X"):
                yield int(name), fields


def session_members(session: int, also_children_of: int | None = None) -> list[int]:
    """Live processes in `session` (and, for a subreaper, its re-parented children)."""
    return [pid for pid, fields in live_processes()
            if pid != os.getpid() and (int(fields[3]) == session or int(fields[1]) == also_children_of)]


def kill_quietly(pid: int, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already, or not ours
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)


def write_record(record: Path, data: dict[str, Any]) -> None:
    tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(data))
    os.replace(tmp, record)  # a reader sees the whole record or none


def end_everything(me: int, group: int | None) -> None:
    """SIGKILL the step's process group, then whatever is left in our session or re-parented
    to us, and reap it all: returns once we have no children and the session holds only us."""
    while True:
        if group is not None:
            kill_quietly(group, group=True)
        for pid in session_members(me, also_children_of=me):
            kill_quietly(pid)
        try:
            os.waitpid(-1, 0)  # one exit at a time; the loop kills whatever it left orphaned
        except ChildProcessError:
            if not session_members(me, also_children_of=me):
                return
            time.sleep(0.01)  # a member that is not our child: wait for its own parent to die


def supervise(runner: int, record: Path, command: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    me = os.getpid()
    bash: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in END_SIGNALS:
        signal.signal(sig, stop)
    try:
        if os.getppid() != runner:  # the runner died before PDEATHSIG was armed
            return 128 + signal.SIGTERM
        write_record(record, {"session": me, "started": start_time(me), "command": command[:1]})
        bash = subprocess.Popen(command, process_group=0)
        return bash.wait()
    finally:
        for sig in END_SIGNALS:  # a second signal must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        end_everything(me, bash.pid if bash is not None else None)
        record.unlink(missing_ok=True)


def reap_leftover_steps(steps_dir: Path) -> list[str]:
    """Under the build lock: end what killed runs' steps left running; one line per record."""
    said: list[str] = []
    for record in sorted(steps_dir.glob("**/*.json")) if steps_dir.is_dir() else []:
        try:
            data = json.loads(record.read_text())
            session, started = int(data["session"]), data["started"]
        except (OSError, ValueError, KeyError, TypeError):
            record.unlink(missing_ok=True)  # torn: the supervisor died writing it, before bash started
            continue
        leader_start = start_time(session)
        ours = leader_start is None or leader_start == started  # else a recycled pid: not ours
        members = session_members(session) if ours else []
        if members:
            task = record.relative_to(steps_dir).with_suffix("").as_posix()
            said.append(f"leftover processes of a killed run's step {task} (session {session}, "
                        f"{len(members)} processes): killing them")
            print(f"warning: {said[-1]}", file=sys.stderr, flush=True)
            deadline = time.monotonic() + REAP_TIMEOUT
            while members:
                for pid in members:
                    kill_quietly(pid)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"processes {members} of step {task} survive SIGKILL")
                time.sleep(0.02)
                members = session_members(session)
        record.unlink(missing_ok=True)
    return said


def main(argv: list[str]) -> int:
    runner, record, separator, *command = argv
    if separator != "--" or not command:
        print("usage: supervisor.py RUNNER_PID RECORD -- COMMAND...", file=sys.stderr)
        return 2
    return supervise(int(runner), Path(record), command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

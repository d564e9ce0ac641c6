"""What a finished task leaves behind: its key, key inputs, output manifest and self-test key.

A task is up to date only if its recorded key equals the computed key, its output
still matches the recorded manifest, and its self-test passed under the current
self-test key. The record is written last, after the output is in place and has passed
its self-test, and removed first, before the output is touched or tested again.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import read_json, sha256_file
from ..paths import Paths
from .hashing import walk_relative

Manifest = dict[str, list[Any]]  # relative path -> [size, sha256] or ["link", target]
# A record that exists but does not parse (a torn write, a full disk, a hand edit): the task
# reruns, and says so, rather than fail on it or pass it over in silence.
UNREADABLE_RECORD = "state record unreadable (torn or corrupt JSON)"
# The output is the one its key asks for; only the self-test's own code or script changed.
SELF_TEST_CHANGED = "self-test changed"


def make_manifest(top: Path) -> Manifest:
    manifest: Manifest = {}
    for rel, entry in walk_relative(str(top)):
        if entry.is_symlink():
            manifest[rel] = ["link", os.readlink(entry.path)]
        else:
            manifest[rel] = [entry.stat().st_size, sha256_file(Path(entry.path))]
    return manifest


def manifest_problem(top: Path, manifest: Manifest, verify: bool) -> str | None:
    """Why `top` no longer matches `manifest`, or None when it does."""
    base = str(top) + "/"  # plain concatenation: this loop stats every output file on every no-op
    for rel, entry in manifest.items():
        path = base + rel
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return f"{rel}: missing"
        if entry[0] == "link":
            if not stat.S_ISLNK(st.st_mode) or os.readlink(path) != entry[1]:
                return f"{rel}: link changed"
            continue
        if st.st_size != entry[0]:
            return f"{rel}: size {st.st_size} != recorded {entry[0]}"
        if verify and sha256_file(Path(path)) != entry[1]:
            return f"{rel}: content changed"
    return None


def read_state(path: Path) -> dict[str, Any] | None:
    state = read_json(path)
    return state if isinstance(state, dict) and "key" in state else None


def clear_state(path: Path) -> None:
    """Drop the record, and any half-written one a killed run left (files.atomic_output's temp)."""
    path.unlink(missing_ok=True)
    for torn in path.parent.glob(f".{path.name}.*.tmp"):
        torn.unlink(missing_ok=True)


def drop_torn_json(path: Path, what: str) -> None:
    """Delete `path` if it is there but does not parse (a run killed while writing it).

    For doit's own database, which doit writes in place at the end of a run and refuses
    to start on when torn. Nothing we decide on lives there (our records decide), so a
    new one is as good.
    """
    if path.exists() and read_json(path) is None:
        path.unlink(missing_ok=True)
        print(f"warning: {what} {path} was torn (a killed run?): started afresh", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Status:
    up_to_date: bool
    reason: str


VERIFY_ENV = "PIPELINE_VERIFY"


def verify_requested() -> bool:
    """PIPELINE_VERIFY=1: up-to-date checks hash every output file, not only their sizes."""
    return os.environ.get(VERIFY_ENV, "") not in ("", "0")


def check_status(paths: Paths, task: str, key: str, test_key: str | None, verify: bool) -> Status:
    """Up to date iff the recorded key is `key`, the output still matches its manifest and its
    self-test passed under `test_key` (None: the task has no self-test)."""
    record = paths.state_file(task)
    state = read_state(record)
    if state is None:
        return Status(False, UNREADABLE_RECORD if record.exists() else "never built")
    if state["key"] != key:
        return Status(False, "key changed")
    problem = manifest_problem(paths.output_dir(task), state["manifest"], verify)
    if problem:
        return Status(False, f"output changed: {problem}")
    if state.get("test_key") != test_key:
        return Status(False, SELF_TEST_CHANGED)
    return Status(True, "up to date")

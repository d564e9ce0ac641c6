"""Facts about files (their sha256, a tool's --version), remembered by the files' stat: one cache for every layer.

A stored fact is reused while the file's stat facts (size, mtime_ns, ctime_ns, inode, device)
are unchanged; any write changes ctime, so no timestamp decides anything by itself. A fact is
stored only for a file whose ctime is older than its clock tick when it is read: a write in
the same tick as the read would leave every stat fact unchanged (git's "racily clean" problem),
so a freshly written file is simply read again next time. The engine's no-op memo trusts no
racily clean stat either (engine/memo.py). The store is a JSON file; if it
cannot be read or written, files are simply read again.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .files import sha256_file, write_atomic

# The longest a timestamp's clock tick can be. Linux stamps files from its coarse clock (a
# jiffy, 10 ms at most: FINE_TICK_NS covers it twice). A timestamp in whole milliseconds or
# seconds comes from a coarser filesystem: RACY_NS covers the coarsest (FAT's 2 s).
FINE_TICK_NS = 20_000_000
RACY_NS = 2_000_000_000
STORE_VERSION = 2

StatFacts = list[int]
Row = list[Any]  # [*StatFacts, value]


def stat_facts(st: os.stat_result) -> StatFacts:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def racily_clean(ctime_ns: int, now_ns: int) -> bool:
    """True if a write now could land in the tick of `ctime_ns` and leave the stat unchanged."""
    tick = RACY_NS if ctime_ns % 1_000_000 == 0 else FINE_TICK_NS
    return now_ns - ctime_ns <= tick


class StatDigests:
    """Facts about files by path (and kind), valid while their stat facts are unchanged.

    Thread-safe: the engine's worker threads check and run tasks side by side.
    `now_ns` is the clock the racily-clean rule reads (tests pass a fake one).
    """

    def __init__(self, store: Path | None, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.store = store
        self._now_ns = now_ns
        self._rows: dict[str, dict[str, Row]] = {}  # path -> kind -> row
        self._dirty = False
        self._lock = threading.Lock()
        if store is None:
            return
        try:
            with open(store) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("version") == STORE_VERSION and isinstance(data.get("files"), dict):
            self._rows = data["files"]

    def observed(self, path: str, st: os.stat_result) -> None:
        """Told of every stat consulted (the engine's no-op memo records them)."""

    def digest(self, path: Path | str, st: os.stat_result | None = None) -> str:
        """The file's sha256 (hex): remembered if its stat is unchanged, else read and hashed."""
        return self.remember(str(path), lambda: sha256_file(path), st)

    def remember(self, path: str, compute: Callable[[], str], st: os.stat_result | None = None,
                 kind: str = "") -> str:
        """A fact about a file (`kind` tells facts apart), recomputed only when the file changes."""
        st = st or os.stat(path)
        self.observed(path, st)
        facts = stat_facts(st)
        kinds = self._rows.get(path)
        row = kinds.get(kind) if isinstance(kinds, dict) else None
        if isinstance(row, list) and row[:-1] == facts:
            return row[-1]
        read_at = self._now_ns()
        value = compute()  # outside the lock: hashing a big file must not stall other threads
        if racily_clean(st.st_ctime_ns, read_at) or not self._unchanged(path, facts):
            return value
        with self._lock:
            kinds = self._rows.get(path)
            self._rows[path] = {**(kinds if isinstance(kinds, dict) else {}), kind: [*facts, value]}
            self._dirty = True
        return value

    @staticmethod
    def _unchanged(path: str, facts: StatFacts) -> bool:
        """The file was not written while it was read."""
        try:
            return stat_facts(os.stat(path)) == facts
        except OSError:
            return False

    def flush(self) -> None:
        """Write the store if it learnt a fact, forgetting files that are gone; a store that
        cannot be written is no error (the files are read again next time)."""
        with self._lock:
            if not self._dirty or self.store is None:
                return
            self._rows = {path: kinds for path, kinds in self._rows.items() if os.path.lexists(path)}
            try:
                write_atomic(self.store, json.dumps({"version": STORE_VERSION, "files": self._rows},
                                                    separators=(",", ":")))
            except OSError:
                return
            self._dirty = False

"""File digests through a stat cache, so an unchanged file is read once, not once per task per run."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files import sha256_file, write_atomic

if TYPE_CHECKING:
    from .memo import Witness


def walk_relative(
    top: str, on_folder: Callable[[str], None] | None = None
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative posix path, entry) for every file and symlink below `top`, sorted.

    Plain strings and scandir, not pathlib: this runs over every input file on
    every no-op run. `on_folder` is told of every folder walked.
    """
    stack = [("", top)]
    while stack:
        prefix, folder = stack.pop()
        if on_folder is not None:
            on_folder(folder)
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                subdirs.append((rel + "/", entry.path))
            else:
                yield rel, entry
        stack.extend(reversed(subdirs))


class StatCache:
    """sha256 of files, remembered by (path, size, mtime_ns, ctime_ns, inode).

    Any change to those five re-reads the file; no timestamp ever decides a
    build by itself, it only says whether a stored digest may be reused.
    Thread-safe: doit's worker threads check and run tasks side by side.
    """

    def __init__(self, db_path: Path | None, witness: Witness | None = None) -> None:
        self._db_path = db_path
        self.witness = witness  # told of every file and folder consulted (the no-op memo)
        self._rows: dict[str, list[Any]] = {}
        self._dirty = False
        self._lock = threading.Lock()
        if db_path is not None:
            try:
                with open(db_path) as handle:
                    self._rows = json.load(handle)
            except (FileNotFoundError, ValueError):
                self._rows = {}

    def digest(self, path: Path | str, st: os.stat_result | None = None) -> str:
        return self.remember(str(path), lambda: sha256_file(Path(path)), st)

    def remember(self, path: str, compute: Callable[[], str], st: os.stat_result | None = None,
                 kind: str = "") -> str:
        """A fact about a file (its sha256, a tool's --version), recomputed only when it changes."""
        key = kind + path
        st = st or os.stat(path)
        if self.witness is not None:
            self.witness.saw_file(path, [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
        row = self._rows.get(key)
        if (
            row is not None
            and row[0] == st.st_size
            and row[1] == st.st_mtime_ns
            and row[2] == st.st_ctime_ns
            and row[3] == st.st_ino
        ):
            return row[4]
        value = compute()  # outside the lock: hashing a big file must not stall other threads
        with self._lock:
            self._rows[key] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, value]
            self._dirty = True
        return value

    def tree_digests(self, top: Path) -> dict[str, str]:
        """Relative path -> sha256 for a file or a whole directory."""
        if top.is_file():
            return {top.name: self.digest(top)}
        out: dict[str, str] = {}
        on_folder = self.witness.saw_folder if self.witness is not None else None
        for rel, entry in walk_relative(str(top), on_folder):
            if entry.is_symlink():
                out[rel] = "link:" + os.readlink(entry.path)
            else:
                out[rel] = self.digest(entry.path, entry.stat())
        return out

    def flush(self) -> None:
        with self._lock:
            if not self._dirty or self._db_path is None:
                return
            write_atomic(self._db_path, json.dumps(self._rows, separators=(",", ":")))
            self._dirty = False

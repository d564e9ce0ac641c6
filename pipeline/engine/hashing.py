"""File digests through a stat cache, so an unchanged file is read once, not once per task per run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..digests import StatDigests

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


class StatCache(StatDigests):
    """The kernel's stat-keyed cache (pipeline.digests), telling the no-op memo's witness of every
    file and folder consulted, and digesting whole trees."""

    def __init__(self, db_path: Path | None, witness: Witness | None = None,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        super().__init__(db_path, now_ns)
        self.witness = witness

    def observed(self, path: str, st: os.stat_result) -> None:
        if self.witness is not None:
            self.witness.saw_file(path, [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])

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

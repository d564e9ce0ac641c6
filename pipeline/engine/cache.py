"""The local content-addressed artifact cache: task key -> output tree.

An entry is a directory `<key>/` holding `tree/` and `manifest.json`; it is
assembled under a temporary name and renamed into place, so a reader never sees
half an entry. Restores verify every file's sha256 before use. An entry is evicted
only when it is proven bad: a copy that fails on our side (a full disk) leaves it be.
Temporary names carry the writer's pid, so those of killed writers are recognised
and removed by the next writer of the same key.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..files import read_json, write_json_atomic
from ..paths import Paths
from .faults import fault_point
from .state import Manifest, make_manifest


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_dead_writers_temps(parent: Path, prefix: str) -> None:
    """Temporary trees `<prefix><pid>` whose writer is gone (killed mid-write) are garbage."""
    for tmp in parent.glob(f"{prefix}*") if parent.is_dir() else []:
        pid = tmp.name.removeprefix(prefix)
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def copier(point: str) -> Callable[[str, str], str]:
    """shutil.copy2 with a fault point before each file: a harness can kill mid-copy."""

    def copy(src: str, dst: str) -> str:
        fault_point(point)
        return shutil.copy2(src, dst)

    return copy


@dataclass(frozen=True)
class ArtifactCache:
    paths: Paths

    def entry(self, key: str) -> Path:
        return self.paths.artifact_dir(key)

    def has(self, key: str) -> bool:
        return (self.entry(key) / "manifest.json").is_file()

    def mark_used(self, key: str) -> bool:
        """Whether the entry is here; if so, mark it used now (for pruning), as a restore does.
        A cache we may read but not write (a shared one) still answers."""
        try:
            os.utime(self.entry(key) / "manifest.json")
        except FileNotFoundError:
            return False
        except OSError:
            return self.has(key)
        return True

    def build_seconds(self, key: str) -> float | None:
        """How long the build that made this entry took (for figures, not decisions)."""
        meta = read_json(self.entry(key) / "meta.json")
        return meta.get("build_seconds") if isinstance(meta, dict) else None

    def store(self, key: str, tree: Path, manifest: Manifest, build_seconds: float | None = None) -> None:
        final = self.entry(key)
        if final.exists():
            return
        remove_dead_writers_temps(final.parent, f".tmp-{key}-")
        tmp = final.with_name(f".tmp-{key}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            shutil.copytree(tree, tmp / "tree", symlinks=True, copy_function=copier("store"))
            write_json_atomic(tmp / "manifest.json", manifest)
            if build_seconds is not None:
                write_json_atomic(tmp / "meta.json", {"build_seconds": round(build_seconds, 3)})
        except OSError:  # a full cache disk: no half entry stays behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            os.rename(tmp, final)
        except OSError:  # another process stored the same key first
            shutil.rmtree(tmp, ignore_errors=True)

    def restore(self, key: str, dest: Path) -> tuple[Manifest | None, str | None]:
        """Copy the entry to `dest` and verify it: (manifest, None), or (None, why) after
        evicting a bad entry. A copy that fails while the entry is intact (our disk is full)
        raises the OSError: the entry stays, the task fails with that error."""
        entry = self.entry(key)
        manifest = read_json(entry / "manifest.json")
        if not isinstance(manifest, dict):
            self.evict(key)
            return None, "unreadable manifest"
        try:
            # a kill mid-copy leaves a half-copied staging dir, never a half entry
            shutil.copytree(entry / "tree", dest, symlinks=True, copy_function=copier("restore"))
        except OSError as exc:
            shutil.rmtree(dest, ignore_errors=True)
            if self.intact(key, manifest):
                raise
            self.evict(key)
            return None, f"copy failed: {exc}"
        problem = None if make_manifest(dest) == manifest else "content does not match its manifest"
        if problem:
            self.evict(key)
            shutil.rmtree(dest, ignore_errors=True)
            return None, problem
        self.mark_used(key)  # last use, for pruning
        return manifest, None

    def intact(self, key: str, manifest: Manifest) -> bool:
        try:
            return make_manifest(self.entry(key) / "tree") == manifest
        except OSError:
            return False

    def evict(self, key: str) -> None:
        shutil.rmtree(self.entry(key), ignore_errors=True)

    def prune(self, max_bytes: int) -> tuple[int, int]:
        """Drop least recently used entries until the cache fits: (removed, bytes left)."""
        entries = []
        for manifest in self.paths.artifacts.glob("*/*/manifest.json"):
            data = read_json(manifest) or {}
            size = sum(item[0] for item in data.values() if item and item[0] != "link")
            entries.append((manifest.stat().st_mtime, size, manifest.parent.name))
        entries.sort()
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, key in entries:
            if total <= max_bytes:
                break
            self.evict(key)
            total -= size
            removed += 1
        return removed, total

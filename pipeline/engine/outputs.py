"""What a task leaves behind, checked: relocatable (no machine path inside) and comparable.

Keys are path-independent (keys.py writes the checkout as `@ROOT@`), so an output built in one
checkout is restored into another. That is only right if no output holds an absolute path of
the checkout or the cache: the runner refuses such an output (`path_leaks`), whatever the file.
Files a recipe declares under `unreproducible:` (globs, e.g. test reports with timings) are
only left out when two builds are compared (`compare_trees`, used by `pipeline repro`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 24


def output_files(out: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix name, path) of every file under `out`, symlinks as links, sorted."""
    for path in sorted(out.rglob("*")):
        if path.is_file() or path.is_symlink():
            yield path.relative_to(out).as_posix(), path


def is_exempt(name: str, globs: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) or name.startswith(pattern.rstrip("/") + "/")
               for pattern in globs)


def holds_any(path: Path, needles: list[bytes]) -> bool:
    """Whether the file's bytes contain one of `needles` (read in chunks that overlap)."""
    if path.is_symlink():
        target = str(path.readlink()).encode()
        return any(needle in target for needle in needles)
    overlap = max(len(n) for n in needles) - 1
    tail = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            window = tail + chunk
            if any(needle in window for needle in needles):
                return True
            tail = window[-overlap:] if overlap else b""
    return False


def path_leaks(out: Path, places: list[Path]) -> list[str]:
    """Output files that hold one of `places` (the checkout, the cache) as bytes."""
    needles = [str(place).rstrip("/").encode() for place in places if str(place) not in ("", "/")]
    return [name for name, path in output_files(out) if holds_any(path, needles)]


@dataclass(frozen=True)
class TreeDiff:
    """How two builds of one task's output differ (exempt files left out)."""

    only_first: list[str]
    only_second: list[str]
    differ: list[str]
    compared: int
    left_out: int = 0  # files declared `unreproducible:`, not compared

    @property
    def same(self) -> bool:
        return not (self.only_first or self.only_second or self.differ)

    @property
    def compared_nothing(self) -> bool:
        """No file was on both sides to compare (all declared unreproducible, or none at all):
        nothing says the task is reproducible."""
        return self.same and self.compared == 0


def same_file(first: Path, second: Path) -> bool:
    if first.is_symlink() or second.is_symlink():
        return first.is_symlink() and second.is_symlink() and first.readlink() == second.readlink()
    if first.stat().st_size != second.stat().st_size:
        return False
    with open(first, "rb") as one, open(second, "rb") as two:
        while True:
            a, b = one.read(CHUNK), two.read(CHUNK)
            if a != b:
                return False
            if not a:
                return True


def compare_trees(first: Path, second: Path, exempt: list[str]) -> TreeDiff:
    all_ones = dict(output_files(first))
    ones = {name: path for name, path in all_ones.items() if not is_exempt(name, exempt)}
    twos = {name: path for name, path in output_files(second) if not is_exempt(name, exempt)}
    both = sorted(ones.keys() & twos.keys())
    return TreeDiff(only_first=sorted(ones.keys() - twos.keys()), only_second=sorted(twos.keys() - ones.keys()),
                    differ=[name for name in both if not same_file(ones[name], twos[name])], compared=len(both),
                    left_out=len(all_ones) - len(ones))

"""The no-op path: reuse the last run's task graph and keys while nothing they were made from changed.

Loading a project validates every recipe (pydantic) and renders it (jinja2); that costs
more than checking every task on a no-op. So a run that computed every key records a
memo (`build/.state/plan.json`): the graph's shape, every task's key, and a *witness* of
everything those were made from:

- the stat (size, mtime_ns, ctime_ns, inode) of every file that was read or digested:
  recipe files, pipeline.yaml, patches, declared inputs, our tool code (with its import
  closure), the toolchain binaries, and the engine's own code;
- the listing of every directory that was walked (a new file in an input dir shows);
- the environment that shapes paths, templates or the toolchain lookup, and the interpreter.

A later run whose witness is identical gets the same graph and the same keys without
importing pydantic or jinja2. Any difference (an edit, a new recipe, another cache dir)
falls back to the full load, which checks all input first, as always. Stats only say
whether the memo may be reused; nothing is decided by a timestamp (the full load is the
same computation, and the stat cache's rule is the same). A file written within a clock tick of
the memo's save could be written again in that tick with no stat fact changing (racily clean,
pipeline/digests.py): its row is saved as one no file matches, so the next run loads fully.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..digests import racily_clean
from ..files import read_json, write_json_atomic
from ..paths import CACHE_ENV, Paths

MEMO_VERSION = 3
UNTRUSTED_ROW = [-1]  # what a racily clean file is recorded as: no stat matches it
# What shapes paths (cache dir), templates, remotes, worker count and the compiler lookup.
WITNESS_ENV = (CACHE_ENV, "XDG_CACHE_HOME", "HOME", "PATH", "PYTHONPATH", "PIPELINE_REMOTE_CACHE",
               "PIPELINE_REMOTE_READONLY", "PIPELINE_WORKERS", "PIPELINE_JOBS", "PIPELINE_RECIPE_TREES",
               "PIPELINE_KEEP_GOING")
ENGINE_CODE = Path(__file__).resolve().parent


def stat_row(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def listing(folder: str) -> list[str] | None:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return None


@dataclass
class Witness:
    """What a graph and its keys were made from; filled while they are computed."""

    files: dict[str, list[int] | None]
    folders: dict[str, list[str] | None]

    @classmethod
    def empty(cls) -> Witness:
        return cls({}, {})

    def saw_file(self, path: str, row: list[int] | None = None) -> None:
        self.files[path] = row if row is not None else stat_row(path)

    def saw_folder(self, folder: str) -> None:
        self.folders[folder] = listing(folder)

    def saw_files(self, paths: Iterable[Path | str]) -> None:
        for path in paths:
            self.saw_file(str(path))

    def still_holds(self) -> bool:
        return all(stat_row(path) == row for path, row in self.files.items()) and all(
            listing(folder) == names for folder, names in self.folders.items()
        )


def environment(paths: Paths) -> dict[str, str | None]:
    """The checkout (a copied build dir must not trust a memo about the original), the interpreter, the env."""
    return {"root": str(paths.root), "python": sys.executable, **{name: os.environ.get(name) for name in WITNESS_ENV}}


def engine_code_files() -> list[Path]:
    """The engine's and the kernel's own code: a change may change what a key means."""
    return sorted([*ENGINE_CODE.glob("*.py"), *ENGINE_CODE.parent.glob("*.py")])


@dataclass(frozen=True)
class Memo:
    """The last complete run's graph shape and keys, valid while its witness holds."""

    order: tuple[str, ...]
    deps: dict[str, tuple[str, ...]]
    docs: dict[str, str]
    keys: dict[str, str]
    test_keys: dict[str, str | None]  # None: the task has no self-test
    workers: int
    cache: str  # the resolved cache dir (pipeline.yaml's cache-dir and the environment decide it)

    def to_json(self, paths: Paths, witness: Witness, now_ns: int) -> dict[str, Any]:
        files = {path: UNTRUSTED_ROW if row is not None and racily_clean(row[2], now_ns) else row
                 for path, row in witness.files.items()}
        return {
            "version": MEMO_VERSION, "env": environment(paths), "files": files, "folders": witness.folders,
            "order": list(self.order), "deps": {t: list(d) for t, d in self.deps.items()}, "docs": self.docs,
            "keys": self.keys, "test_keys": self.test_keys, "workers": self.workers, "cache": self.cache,
        }


def memo_file(paths: Paths) -> Path:
    return paths.state_dir / "plan.json"


def load_memo(paths: Paths) -> tuple[Memo, Witness] | None:
    """The memo and its witness, if it exists and everything it was made from is unchanged."""
    data = read_json(memo_file(paths))
    if not isinstance(data, dict) or data.get("version") != MEMO_VERSION or data.get("env") != environment(paths):
        return None
    try:
        witness = Witness(data["files"], data["folders"])
        if not witness.still_holds():
            return None
        memo = Memo(
            order=tuple(data["order"]), deps={t: tuple(d) for t, d in data["deps"].items()},
            docs=data["docs"], keys=data["keys"], test_keys=data["test_keys"], workers=int(data["workers"]),
            cache=data["cache"],
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # a memo from another layout is simply not reused
    return memo, witness


def save_memo(paths: Paths, memo: Memo, witness: Witness, now_ns: int | None = None) -> None:
    """`now_ns`: when it is saved (tests pass a fake clock)."""
    write_json_atomic(memo_file(paths), memo.to_json(paths, witness, time.time_ns() if now_ns is None else now_ns))


def forget_memo(paths: Paths) -> None:
    memo_file(paths).unlink(missing_ok=True)

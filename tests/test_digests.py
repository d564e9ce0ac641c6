"""pipeline.digests: facts about files remembered by their stat, the one cache of the engine and the runtime."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline import digests
from pipeline.digests import RACY_NS, StatDigests, racily_clean
from pipeline.engine.hashing import StatCache
from pipeline.runtime.digests import MEMO_FILE, default_memo


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the cache actually reads and hashes."""
    seen: list[Path] = []
    real = digests.sha256_file

    def counting(path: Path | str) -> str:
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(digests, "sha256_file", counting)
    return seen


def later() -> int:
    """A clock long after the files of a test were written: they are not racy."""
    return time.time_ns() + 10 * RACY_NS


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_engine_and_runtime_share_one_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path))
    assert issubclass(StatCache, StatDigests)
    assert isinstance(default_memo(), StatDigests)


def test_digest_is_remembered_until_the_file_changes(tmp_path: Path, hashed: list[Path]) -> None:
    wasm = tmp_path / "python.wasm"
    wasm.write_bytes(b"one" * 1000)
    store = tmp_path / "cache" / MEMO_FILE
    memo = StatDigests(store, now_ns=later)
    assert memo.digest(wasm) == sha(b"one" * 1000)
    assert memo.digest(wasm) == sha(b"one" * 1000)
    memo.flush()
    again = StatDigests(store, now_ns=later)  # the next invocation
    assert again.digest(wasm) == sha(b"one" * 1000)
    assert hashed == [wasm]  # hashed once for all three
    before = wasm.stat()
    wasm.write_bytes(b"two" * 1000)  # same size; mtime put back: only ctime (and content) tell
    os.utime(wasm, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert again.digest(wasm) == sha(b"two" * 1000)
    assert hashed == [wasm, wasm]


def in_the_same_tick(st: os.stat_result, first: os.stat_result) -> Any:
    """`st` as a filesystem whose clock has not ticked since `first` reports it: the same ctime
    (a coarse-timestamp filesystem, or a kernel without fine-grained ctime)."""
    return SimpleNamespace(st_size=st.st_size, st_mtime_ns=st.st_mtime_ns, st_ctime_ns=first.st_ctime_ns,
                           st_ino=st.st_ino, st_dev=st.st_dev)


@pytest.mark.parametrize("cache", [StatDigests, StatCache])
def test_a_file_rewritten_in_the_same_tick_is_read_again(tmp_path: Path, cache: type[StatDigests]) -> None:
    """Racily clean: same size, same mtime (put back to the ns), same ctime, other content."""
    target = tmp_path / "input.txt"
    target.write_bytes(b"one" * 100)
    first = target.stat()
    digests_of = cache(tmp_path / "stat.json")
    assert digests_of.digest(target, first) == sha(b"one" * 100)
    target.write_bytes(b"two" * 100)
    os.utime(target, ns=(first.st_atime_ns, first.st_mtime_ns))
    now = target.stat()
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (first.st_size, first.st_mtime_ns, first.st_ino)
    assert digests_of.digest(target, in_the_same_tick(now, first)) == sha(b"two" * 100)


def test_a_file_written_just_now_is_not_remembered(tmp_path: Path, hashed: list[Path]) -> None:
    """Its next write could land in the same clock tick and leave the stat unchanged."""
    wasm = tmp_path / "python.wasm"
    wasm.write_bytes(b"fresh")
    memo = StatDigests(tmp_path / MEMO_FILE)
    memo.digest(wasm)
    memo.digest(wasm)
    memo.flush()
    assert hashed == [wasm, wasm]
    assert not (tmp_path / MEMO_FILE).exists()


def test_unreadable_store_means_hashing_and_gone_files_are_forgotten(tmp_path: Path, hashed: list[Path]) -> None:
    store = tmp_path / MEMO_FILE
    store.write_text("{not json")
    kept, gone = tmp_path / "kept.wasm", tmp_path / "gone.wasm"
    kept.write_bytes(b"kept")
    gone.write_bytes(b"gone")
    memo = StatDigests(store, now_ns=later)
    memo.digest(kept)
    memo.digest(gone)
    gone.unlink()
    memo.flush()
    assert list(StatDigests(store)._rows) == [str(kept)]
    assert hashed == [kept, gone]


def test_the_racy_window_is_the_timestamps_clock_tick() -> None:
    """Linux stamps files from a clock of 10 ms ticks at most; a timestamp in whole milliseconds
    or seconds comes from a coarser filesystem, whose tick may be up to 2 s (FAT)."""
    fine, whole_second = 1_700_000_000_123_456_789, 1_700_000_000_000_000_000
    assert racily_clean(fine, fine + 15_000_000) and not racily_clean(fine, fine + 30_000_000)
    assert racily_clean(whole_second, whole_second + 1_500_000_000)
    assert not racily_clean(whole_second, whole_second + RACY_NS + 1)

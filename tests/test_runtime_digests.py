"""pipeline.runtime.digests: sha256 of the runtime's big files, remembered by their stat."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from pipeline.runtime import digests


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the memo actually reads and hashes."""
    seen: list[Path] = []
    real = digests.sha256_file

    def counting(path: Path | str) -> str:
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(digests, "sha256_file", counting)
    return seen


def later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash as if the files were written long enough ago not to be racy."""
    now = time.time_ns()
    monkeypatch.setattr(digests.time, "time_ns", lambda: now + 10 * digests.RACY_NS)


def test_digest_is_remembered_until_the_file_changes(tmp_path: Path, hashed: list[Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    later(monkeypatch)
    wasm = tmp_path / "python.wasm"
    wasm.write_bytes(b"one" * 1000)
    memo_file = tmp_path / "cache" / digests.MEMO_FILE
    memo = digests.DigestMemo(memo_file)
    assert memo.sha256(wasm) == hashlib.sha256(b"one" * 1000).hexdigest()
    assert memo.sha256(wasm) == hashlib.sha256(b"one" * 1000).hexdigest()
    memo.save()
    again = digests.DigestMemo(memo_file)  # the next invocation
    assert again.sha256(wasm) == hashlib.sha256(b"one" * 1000).hexdigest()
    assert hashed == [wasm]  # hashed once for all three
    before = wasm.stat()
    wasm.write_bytes(b"two" * 1000)  # same size; mtime put back: only ctime (and content) tell
    os.utime(wasm, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert again.sha256(wasm) == hashlib.sha256(b"two" * 1000).hexdigest()
    assert hashed == [wasm, wasm]


def test_a_file_written_just_now_is_not_remembered(tmp_path: Path, hashed: list[Path]) -> None:
    """Its next write could land in the same clock tick and leave the stat unchanged."""
    wasm = tmp_path / "python.wasm"
    wasm.write_bytes(b"fresh")
    memo = digests.DigestMemo(tmp_path / digests.MEMO_FILE)
    memo.sha256(wasm)
    memo.sha256(wasm)
    memo.save()
    assert hashed == [wasm, wasm]
    assert not (tmp_path / digests.MEMO_FILE).exists()


def test_unreadable_memo_means_hashing_and_gone_files_are_forgotten(tmp_path: Path, hashed: list[Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    later(monkeypatch)
    memo_file = tmp_path / digests.MEMO_FILE
    memo_file.write_text("{not json")
    kept, gone = tmp_path / "kept.wasm", tmp_path / "gone.wasm"
    kept.write_bytes(b"kept")
    gone.write_bytes(b"gone")
    memo = digests.DigestMemo(memo_file)
    memo.sha256(kept)
    memo.sha256(gone)
    gone.unlink()
    memo.save()
    assert list(digests.DigestMemo(memo_file)._entries) == [str(kept.resolve())]
    assert hashed == [kept, gone]

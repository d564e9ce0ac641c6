"""sha256 of the runtime's big files, remembered by their stat between invocations.

Every invocation checks that the snapshot was made from this python.wasm and finds machine
code by the sha256 of the wasm it loads: about 37 MB hashed per run (tens of milliseconds)
for files that change only when the chain is rebuilt. A file's digest is reused while its
stat facts (size, mtime_ns, ctime_ns, inode, device) are unchanged; any write changes ctime.
A digest is remembered only for a file whose ctime is older than RACY_NS when it is hashed,
so a write in the same clock tick as the hashing cannot go unnoticed (git's "racily clean"
rule). The memo is a JSON file in the user's cache directory; if it cannot be read or
written, files are simply hashed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..files import sha256_file, write_atomic
from ..paths import default_cache_dir

RACY_NS = 2_000_000_000
MEMO_FILE = "runtime-digests.json"  # in the cache directory (pipeline.paths.default_cache_dir)
MEMO_VERSION = 1

StatFacts = list[int]


def stat_facts(stat: os.stat_result) -> StatFacts:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


class DigestMemo:
    """sha256 of files by path, valid while their stat facts are unchanged. Not thread-safe."""

    def __init__(self, memo_file: Path) -> None:
        self.memo_file = memo_file
        self._entries: dict[str, dict[str, object]] = {}
        self._changed = False
        try:
            data = json.loads(memo_file.read_text())
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("version") == MEMO_VERSION and isinstance(data.get("files"), dict):
            self._entries = data["files"]

    @classmethod
    def default(cls) -> DigestMemo:
        return cls(default_cache_dir() / MEMO_FILE)

    def sha256(self, path: Path) -> str:
        """The file's sha256 (hex): remembered if its stat is unchanged, else read and hashed."""
        key = str(path.resolve())
        facts = stat_facts(path.stat())
        entry = self._entries.get(key)
        if isinstance(entry, dict) and entry.get("stat") == facts and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
        digest = sha256_file(path)
        if time.time_ns() - facts[2] > RACY_NS and stat_facts(path.stat()) == facts:
            self._entries[key] = {"stat": facts, "sha256": digest}
            self._changed = True
        return digest

    def save(self) -> None:
        """Write the memo if it learnt a digest, forgetting files that are gone; a cache that cannot
        be written is no error."""
        if not self._changed:
            return
        self._entries = {path: entry for path, entry in self._entries.items() if os.path.exists(path)}
        try:
            write_atomic(self.memo_file, json.dumps({"version": MEMO_VERSION, "files": self._entries},
                                                    sort_keys=True).encode())
        except OSError:
            return
        self._changed = False

"""sha256 of the runtime's big files, remembered by their stat between invocations.

Every invocation checks that the snapshot was made from this python.wasm and finds machine
code by the sha256 of the wasm it loads: about 37 MB hashed per run (tens of milliseconds)
for files that change only when the chain is rebuilt. The kernel's stat-keyed cache
(pipeline.digests, with its racily-clean rule) remembers them in the user's cache directory.
"""

from __future__ import annotations

from ..digests import StatDigests
from ..paths import default_cache_dir

MEMO_FILE = "runtime-digests.json"  # in the cache directory (pipeline.paths.default_cache_dir)


def default_memo() -> StatDigests:
    return StatDigests(default_cache_dir() / MEMO_FILE)

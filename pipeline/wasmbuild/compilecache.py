"""The compile cache under every compile the toolchain runs: ccache, in the artifact cache.

Task keys decide what is built; this only makes a rebuild cheap where its compiles are the
same. ccache keys an entry by what the compiler sees (the preprocessed input or the sources
and headers it read, the arguments, the compiler binary's content), so a hit gives the bytes
a compile would give.

Every step gets a folder first on its PATH in which `clang-N` and `clang++-N` are ccache
(ccache's masquerade: it runs the next one on PATH). Whatever spells the compiler by that name
goes through it: `tc.cc` in recipes, the toolchain's wrappers, the Emscripten stand-ins, the
python-package builder's stand-ins, meson and CMake through the cross files. The host's C
compilers (`cc`, `gcc`, `c++`, `g++`: the native build Python) go through it the same way. Nothing in a
recipe, a script or a key names ccache, so turning it off changes no key and no output.

- Paths under the checkout are hashed relative to it (CCACHE_BASEDIR) and the working folder
  is left out of the hash (compiles map the checkout to `.`: -ffile-prefix-map), so another
  checkout of the same sources hits.
- The cache is `<cache dir>/compile-cache/ccache`, bounded by `compile-cache-size` (ccache
  trims it on every write); `compile-cache/bin` holds the links.
- Each task's compiles are counted in its work folder (CCACHE_STATSLOG) and reported as hits
  and misses in the task's log and the run's summary.
- With an http(s):// or file:// remote cache, ccache shares through it too (remote_storage).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

from ..engine.layer import RemoteSpec
from ..paths import Paths

CCACHE = "ccache"
STATS_LOG = "compile-cache-stats.log"
HIT_COUNTERS = ("direct_cache_hit", "preprocessed_cache_hit")
MISS_COUNTER = "cache_miss"
REMOTE_HIT_COUNTER = "remote_storage_hit"
OFF_ENV = "PIPELINE_COMPILE_CACHE"  # 0: compile without the cache (for comparisons)


def cache_dir(paths: Paths) -> Path:
    """ccache's own folder (CCACHE_DIR): what the bound applies to."""
    return paths.compile_cache / "ccache"


HOST_COMPILERS = ("cc", "gcc", "c++", "g++")


def masquerade_dir(paths: Paths, toolchain_compilers: tuple[str, ...], ccache: str) -> Path:
    """A folder of `clang-N` (and host compiler) -> ccache links (made once, atomically: steps
    may run side by side)."""
    folder = paths.compile_cache / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*toolchain_compilers, *HOST_COMPILERS):
        link = folder / name
        if link.is_symlink() and os.readlink(link) == ccache:
            continue
        temporary = folder / f".{name}.{uuid.uuid4().hex}"  # steps of one run start side by side
        temporary.symlink_to(ccache)
        temporary.replace(link)
    return folder


def remote_storage(remote: RemoteSpec | None) -> str | None:
    """ccache's remote storage in the project's remote cache (under `compile-cache/`), where ccache
    has a backend for it: http(s):// (WebDAV PUT, as the artifact cache uses) and file://; an
    s3:// remote shares artifacts only. A read-only remote is read-only here too."""
    if remote is None or urlparse(remote.url).scheme not in ("http", "https", "file"):
        return None
    url = remote.url.rstrip("/") + "/compile-cache"
    return url + ("|read-only" if remote.readonly else "")


def compile_cache_env(paths: Paths, toolchain_compilers: tuple[str, ...], max_size: str, work: Path,
                      remote: RemoteSpec | None = None) -> dict[str, str]:
    """What a step's environment needs for its compiles to go through the cache; nothing when
    ccache is not installed or $PIPELINE_COMPILE_CACHE=0."""
    ccache = shutil.which(CCACHE)
    if ccache is None or os.environ.get(OFF_ENV, "1") == "0":
        return {}
    folder = masquerade_dir(paths, toolchain_compilers, ccache)
    return {
        "PATH": os.pathsep.join([str(folder), os.environ.get("PATH", os.defpath)]),
        "CCACHE_DIR": str(cache_dir(paths)),
        "CCACHE_MAXSIZE": max_size,
        "CCACHE_BASEDIR": str(paths.root),
        "CCACHE_NOHASHDIR": "1",
        "CCACHE_COMPILERCHECK": "content",
        "CCACHE_STATSLOG": str(work / STATS_LOG),
        # no log of ours, no config of the user's: the same behaviour on every machine
        "CCACHE_CONFIGPATH": os.devnull,
        **({"CCACHE_REMOTE_STORAGE": shared} if (shared := remote_storage(remote)) else {}),
    }


def compile_counts(work: Path) -> dict[str, int]:
    """The hits and misses of a task's compiles (from its stats log; none if nothing compiled)."""
    try:
        lines = (work / STATS_LOG).read_text().split()
    except OSError:
        return {}
    counted = Counter(lines)
    hits = sum(counted[name] for name in HIT_COUNTERS)
    misses = counted[MISS_COUNTER]
    if not hits + misses:
        return {}
    counts = {"compile cache hits": hits, "compile cache misses": misses}
    if counted[REMOTE_HIT_COUNTER]:
        counts["compile cache hits from the remote"] = counted[REMOTE_HIT_COUNTER]
    return counts


ENTRY_KINDS = ("R", "M")  # ccache's result and manifest files: its entries, what the bound is about


def stored_bytes(paths: Paths) -> int:
    """What the compile cache's entries hold now (not ccache's own bookkeeping: counters, and
    the inode cache in tmp/, which stays however small the bound)."""
    return sum(path.stat().st_size for path in cache_dir(paths).glob("[0-9a-f]/**/*")
               if path.is_file() and path.name.endswith(ENTRY_KINDS))


def trim(paths: Paths, max_bytes: int) -> int:
    """Shrink the compile cache to `max_bytes` now (ccache's own cleanup, oldest first); the
    bytes it keeps. `pywasm prune` gives it its share of the cache's bound."""
    ccache = shutil.which(CCACHE)
    if ccache is not None and cache_dir(paths).is_dir():
        env = {**os.environ, "CCACHE_DIR": str(cache_dir(paths)), "CCACHE_CONFIGPATH": os.devnull,
               "CCACHE_MAXSIZE": f"{max(max_bytes // 1024, 1)}k"}
        subprocess.run([ccache, "--cleanup"], env=env, check=True, capture_output=True)
    return stored_bytes(paths) if cache_dir(paths).is_dir() else 0

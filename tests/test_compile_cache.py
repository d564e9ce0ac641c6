"""The compile cache (pipeline/wasmbuild/compilecache.py): real ccache in front of real clang.

A hit gives the bytes a compile gives, in another checkout too; an edited header is a miss;
the cache keeps to its bound; a task's hits and misses reach its log and the run's summary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CLANG, TOOLCHAIN, Project

from pipeline.engine.layer import RemoteSpec
from pipeline.paths import Paths
from pipeline.wasmbuild.compilecache import (
    STATS_LOG,
    cache_dir,
    compile_cache_env,
    compile_counts,
    remote_storage,
    stored_bytes,
)

pytestmark = pytest.mark.skipif(CLANG is None or shutil.which("ccache") is None,
                                reason=f"needs {TOOLCHAIN.clang} and ccache (pipeline.yaml's toolchain packages)")

SOURCE = ('#include "config.h"\nint answer(void) { return ANSWER + __LINE__; }\n'
          'const char *where(void) { return __FILE__; }\n')
COMPILE = [TOOLCHAIN.clang, "--target=wasm32-wasi", "-nostdlib", "-O2", "-g", "-c", "src/answer.c", "-o", "answer.o"]


def checkout(root: Path, answer: int = 42) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src/answer.c").write_text(SOURCE)
    (root / "src/config.h").write_text(f"#define ANSWER {answer}\n")
    return root


def compile_in(root: Path, cache: Path, max_size: str = "1G", cached: bool = True,
               remote: RemoteSpec | None = None) -> tuple[bytes, dict[str, int]]:
    """answer.c compiled in `root` the way a step compiles (the checkout mapped to `.`)."""
    work = root / "work"
    work.mkdir(exist_ok=True)
    (work / STATS_LOG).unlink(missing_ok=True)
    env = dict(os.environ)
    if cached:
        env.update(compile_cache_env(Paths(root, cache), TOOLCHAIN.compilers(), max_size, work, remote))
    subprocess.run([*COMPILE, f"-ffile-prefix-map={root}=."], cwd=root, env=env, check=True)
    return (root / "answer.o").read_bytes(), compile_counts(work)


def test_a_hit_gives_the_bytes_a_compile_gives_in_another_checkout_too(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, counted = compile_in(checkout(tmp_path / "a"), cache)
    assert counted == {"compile cache hits": 0, "compile cache misses": 1}
    again, counted = compile_in(checkout(tmp_path / "b"), cache)
    assert counted == {"compile cache hits": 1, "compile cache misses": 0}, "another checkout, same sources: a hit"
    plain, _ = compile_in(checkout(tmp_path / "c"), cache, cached=False)
    assert first == again == plain, "a hit is the compiler's own bytes (debug info included)"
    assert str(tmp_path).encode() not in again


def test_an_edited_header_is_a_miss(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = checkout(tmp_path / "a")
    before, _ = compile_in(root, cache)
    header = root / "src/config.h"
    stat = header.stat()
    header.write_text("#define ANSWER 43\n")  # same size
    os.utime(header, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the old mtime
    after, counted = compile_in(root, cache)
    assert counted == {"compile cache hits": 0, "compile cache misses": 1}
    assert after != before
    plain, _ = compile_in(root, cache, cached=False)
    assert after == plain, "no stale object"


def test_the_cache_keeps_to_its_bound(tmp_path: Path) -> None:
    """Twenty objects of 100 kB of random bytes (they do not compress) into a 1 MB cache."""
    cache = tmp_path / "cache"
    root = tmp_path / "a"
    (root / "work").mkdir(parents=True)
    env = {**os.environ, **compile_cache_env(Paths(root, cache), TOOLCHAIN.compilers(), "1M", root / "work")}
    for index in range(20):
        source = root / f"blob{index}.c"
        source.write_text(f"const unsigned char blob{index}[] = {{{','.join(map(str, os.urandom(100_000)))}}};\n")
        subprocess.run([TOOLCHAIN.clang, "--target=wasm32-wasi", "-nostdlib", "-c", source.name,
                        "-o", f"blob{index}.o"], cwd=root, env=env, check=True)
    assert compile_counts(root / "work")["compile cache misses"] == 20
    kept = sum(path.stat().st_size for path in cache_dir(Paths(root, cache)).rglob("*") if path.is_file())
    assert kept <= 1_000_000, f"{kept} bytes kept in a 1 MB compile cache"


def test_off_compiles_without_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_COMPILE_CACHE", "0")
    assert compile_cache_env(Paths(tmp_path, tmp_path / "cache"), TOOLCHAIN.compilers(), "1G", tmp_path) == {}


RECIPE = """\
package:
  name: answer
  version: "1.0"
source:
  path: ../src
build:
  script: |
    echo answer >> "$COUNT_FILE"
    {{{{ tc.clang }}}} --target=wasm32-wasi -nostdlib -O2 -c answer.c -o "$OUT/answer.o"  # {tag}
outputs: [answer.o]
"""


def test_a_tasks_hits_and_misses_reach_its_log_and_the_summary(project: Project) -> None:
    (project.root / "src/answer.c").write_text(SOURCE)
    (project.root / "src/config.h").write_text("#define ANSWER 42\n")
    project.recipe("answer").write_text(RECIPE.format(tag="first"))
    out = project.doit("answer", PIPELINE_COMPILE_CACHE="1").stdout
    assert "compile cache hits 0, compile cache misses 1" in out
    project.recipe("answer").write_text(RECIPE.format(tag="second"))  # a new key, the same compile
    out = project.doit("answer", PIPELINE_COMPILE_CACHE="1").stdout
    assert project.runs() == ["answer", "answer"], "the task ran again: its key changed"
    summary = next(line for line in out.splitlines() if line.startswith("summary:"))
    assert summary.endswith("; compile cache hits 1, compile cache misses 0"), summary
    log = (project.root / "build/logs/answer.log").read_text()
    assert "counts: compile cache hits 1, compile cache misses 0" in log


def test_prune_keeps_the_compile_cache_within_its_share_of_the_bound(project: Project) -> None:
    """`pywasm prune --max-size S`: the compile cache keeps at most half of S, the artifacts the rest."""
    (project.root / "src/answer.c").write_text(SOURCE)
    (project.root / "src/config.h").write_text("#define ANSWER 42\n")
    blobs = "".join(f"const unsigned char blob{n}[] = {{{','.join(map(str, os.urandom(60_000)))}}};\n"
                    for n in range(3))
    (project.root / "src/blobs.c").write_text(blobs)  # 180 kB that do not compress
    project.recipe("answer").write_text(RECIPE.format(tag="blobs").replace(
        "-c answer.c", "-c blobs.c"))
    project.doit("answer", PIPELINE_COMPILE_CACHE="1")
    paths = Paths(project.root, project.cache)
    assert stored_bytes(paths) > 150_000
    out = project.cli("prune", "--max-size", "100k").stdout
    assert stored_bytes(paths) <= 50_000, out
    assert "in the compile cache" in out


def test_a_file_remote_shares_compiles_between_machines(tmp_path: Path) -> None:
    """Two checkouts with caches of their own (two machines) and one file:// remote: the second
    machine's compile is a hit from the remote, the same bytes; a read-only remote gets nothing."""
    remote = RemoteSpec((tmp_path / "remote").as_uri(), readonly=False)
    first, counted = compile_in(checkout(tmp_path / "a"), tmp_path / "cache-a", remote=remote)
    assert counted["compile cache misses"] == 1
    again, counted = compile_in(checkout(tmp_path / "b"), tmp_path / "cache-b", remote=remote)
    assert counted == {"compile cache hits": 1, "compile cache misses": 0, "compile cache hits from the remote": 1}
    assert again == first
    readonly = RemoteSpec((tmp_path / "shared-readonly").as_uri(), readonly=True)
    compile_in(checkout(tmp_path / "c"), tmp_path / "cache-c", remote=readonly)
    assert not (tmp_path / "shared-readonly").exists() or not any((tmp_path / "shared-readonly").rglob("*.*")), \
        "a read-only remote is not written"


def test_an_s3_remote_shares_no_compiles() -> None:
    """ccache has no S3 backend: with an s3:// remote only artifacts are shared."""
    assert remote_storage(RemoteSpec("s3://bucket/cache", readonly=False)) is None
    assert remote_storage(RemoteSpec("https://cache.example/pywasm", readonly=True)) == \
        "https://cache.example/pywasm/compile-cache|read-only"


def test_the_hosts_compiler_goes_through_it_too(tmp_path: Path) -> None:
    """The native build Python is compiled with the host's `cc`: its compiles hit as well."""
    counted = []
    for name in ("a", "b"):
        root = checkout(tmp_path / name)
        (root / "work").mkdir()
        cache_env = compile_cache_env(Paths(root, tmp_path / "cache"), TOOLCHAIN.compilers(), "1G", root / "work")
        env = {**os.environ, **cache_env}
        subprocess.run(["cc", "-O2", "-c", "src/answer.c", "-o", "answer.o"], cwd=root, env=env, check=True)
        counted.append(compile_counts(root / "work"))
    assert counted == [{"compile cache hits": 0, "compile cache misses": 1},
                       {"compile cache hits": 1, "compile cache misses": 0}]

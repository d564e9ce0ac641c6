"""Source fetching, verification and safe extraction; the stat cache."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from email.message import Message
from pathlib import Path

import pytest
from conftest import recorded_sleeps

from pipeline import digests
from pipeline.engine import retry, sources
from pipeline.engine.hashing import StatCache
from pipeline.engine.sources import fetch_source, safe_extract, unpack_source
from pipeline.engine.spec import Source
from pipeline.errors import PipelineError, RecipeError
from pipeline.files import sha256_file
from pipeline.paths import Paths

REPO = Path(__file__).resolve().parent.parent


def make_tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return path


def info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = link
    return member


SLIPS = {
    "absolute path": [info("/etc/evil")],
    "dot-dot path": [info("pkg/../../evil")],
    "symlink outside": [info("pkg/link", tarfile.SYMTYPE, "../../outside")],
    "absolute symlink": [info("pkg/link", tarfile.SYMTYPE, "/etc/passwd")],
    "hardlink outside": [info("pkg/hard", tarfile.LNKTYPE, "../outside")],
    "device file": [info("pkg/dev", tarfile.CHRTYPE)],
    "fifo": [info("pkg/fifo", tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("kind", sorted(SLIPS))
def test_tar_slip_is_refused(kind: str, tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "evil.tar.gz", SLIPS[kind])
    dest = tmp_path / "out"
    with pytest.raises(PipelineError, match="refusing"):
        safe_extract(archive, dest)
    assert not list(dest.rglob("*")), "nothing is extracted from a refused archive"


def test_zip_slip_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("pkg/good.txt", "fine")  # a harmless member first: it must not land either
        zipped.writestr("../evil", "x")
    dest = tmp_path / "work" / "out"
    with pytest.raises(PipelineError, match="refusing"):
        safe_extract(archive, dest)
    assert not (tmp_path / "work" / "evil").exists()
    assert not list(tmp_path.rglob("evil")), "the slip target was not written anywhere"
    assert not list(dest.rglob("*")), "nothing is extracted from a refused archive"


def test_safe_archive_unpacks_into_its_top_directory(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "ok.tar.gz", [info("pkg-1.0/a.c"), info("pkg-1.0/ln", tarfile.SYMTYPE, "a.c")])
    src = unpack_source(archive, tmp_path / "work", None)
    assert src.name == "pkg-1.0" and (src / "a.c").read_bytes() == b"x"


def test_url_source_is_verified_cached_and_mismatch_not_kept(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "ok.tar.gz", [info("pkg/a.c")])
    digest = sha256_file(archive)
    paths = Paths(root=tmp_path, cache=tmp_path / "cache")
    good = Source(url=archive.as_uri(), sha256=digest)
    found = fetch_source(paths, "recipes/x.yaml", tmp_path, good)
    assert found.parent == paths.source_dir(digest) and sha256_file(found) == digest
    archive.unlink()  # the cache now serves it
    assert fetch_source(paths, "recipes/x.yaml", tmp_path, good) == found

    other = make_tar(tmp_path / "other.tar.gz", [info("pkg/b.c")])
    wrong = "ab" * 32
    with pytest.raises(RecipeError) as err:
        fetch_source(paths, "recipes/x.yaml", tmp_path, Source(url=other.as_uri(), sha256=wrong))
    message = str(err.value)
    assert message.startswith("recipes/x.yaml: source.sha256: sha256 mismatch")
    assert wrong in message and sha256_file(other) in message
    assert not paths.source_dir(wrong).exists()
    assert not [p for p in paths.sources.rglob("*") if p.is_file() and p.name == "other.tar.gz"]


def later() -> int:
    """A clock long after the test's files were written: they are not racily clean (pipeline.digests)."""
    return time.time_ns() + 10 * digests.RACY_NS


def test_stat_cache_reads_an_unchanged_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[Path] = []
    real = digests.sha256_file
    monkeypatch.setattr(digests, "sha256_file", lambda path: reads.append(path) or real(path))
    target = tmp_path / "input.txt"
    target.write_text("one")
    db = tmp_path / "stat.sqlite"
    first = StatCache(db, now_ns=later)
    digest = first.digest(target)
    assert first.digest(target) == digest
    first.flush()
    assert StatCache(db, now_ns=later).digest(target) == digest, "a new process reuses the stored digest"
    assert reads == [target]
    target.write_text("two")
    assert StatCache(db, now_ns=later).digest(target) != digest
    assert len(reads) == 2


def test_toolchain_probe_runs_a_tool_once_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.engine.keys import probe_toolchain

    calls = tmp_path / "calls"
    tool = tmp_path / "bin" / "fake-cc"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'fake cc 1.0'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}:/usr/bin:/bin")
    db = tmp_path / "stat.json"
    first = StatCache(db, now_ns=later)
    assert probe_toolchain(["fake-cc", "no-such-tool"], first) == {"fake-cc": "fake cc 1.0", "no-such-tool": "missing"}
    first.flush()
    assert probe_toolchain(["fake-cc"], StatCache(db, now_ns=later))["fake-cc"] == "fake cc 1.0"
    assert calls.read_text().count("x") == 1, "an unchanged compiler is asked once"
    tool.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'fake cc 2.0'\n")
    assert probe_toolchain(["fake-cc"], StatCache(db, now_ns=later))["fake-cc"] == "fake cc 2.0"


# --- retries and pip's index ------------------------------------------------------------------


class Flaky:
    """Fails with `errors` in turn, then answers "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_one_retry_rule_doubles_its_waits_and_stops_at_a_permanent_error(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = recorded_sleeps(monkeypatch)  # the fake clock every retry test uses
    policy = retry.Retry(tries=4, first_wait=0.5)
    transient = lambda exc: isinstance(exc, ConnectionError)  # noqa: E731
    assert policy.call(Flaky(ConnectionError(), ConnectionError()), transient) == "done"
    assert waits == [0.5, 1.0]
    waits.clear()
    gone = Flaky(FileNotFoundError("404"))
    with pytest.raises(FileNotFoundError):
        policy.call(gone, transient)
    assert (gone.calls, waits) == (1, []), "an error another try cannot change is not waited for"
    down = Flaky(*[ConnectionError(str(n)) for n in range(9)])
    with pytest.raises(ConnectionError, match=r"^3$"):
        policy.call(down, transient)
    assert (down.calls, waits) == (4, [0.5, 1.0, 2.0]), "the last error, after the last try"


def test_a_404_download_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    waits = recorded_sleeps(monkeypatch)

    def not_found(url: str, timeout: float) -> None:
        raise urllib.error.HTTPError(url, 404, "Not Found", Message(), None)

    monkeypatch.setattr(urllib.request, "urlopen", not_found)
    url = "http://127.0.0.1:9/x.tar.gz"
    with pytest.raises(PipelineError, match=re.escape(f"download failed after 1 try: {url}: HTTP Error 404")):
        sources.http_get(url, tmp_path / "x.tar.gz")
    assert waits == []


def test_the_index_comes_from_pips_configuration_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = http://127.0.0.1:9/simple/\n")
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert sources.pypi_api_base() == "http://127.0.0.1:9/pypi"
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/mirror/simple")
    assert sources.pypi_api_base() == "http://127.0.0.1:9/mirror/pypi", "the environment overrides the files"


def test_pips_default_index_is_asked_without_pips_private_modules(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PIP_INDEX_URL"}
    probe = ("import sys\nfrom pipeline.engine.sources import pypi_api_base\n"
             "print(pypi_api_base())\nprint(sorted(m for m in sys.modules if m.startswith('pip._internal')))\n")
    env.update(PIP_CONFIG_FILE=os.devnull, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    base, private = proc.stdout.splitlines()
    assert base.startswith("https://") and base.endswith("/pypi")
    assert private == "[]"


def test_members_unpacks_only_the_listed_paths_in_one_pass(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "big.tar.xz", [
        info("llvm-22/libcxx/include/vector"), info("llvm-22/libcxx/src/a.cpp"), info("llvm-22/libcxxabi/b.cpp"),
        info("llvm-22/llvm/cmake/c.cmake"), info("llvm-22/llvm/lib/huge.cpp"), info("llvm-22/clang/d.cpp")])
    src = unpack_source(archive, tmp_path / "work", None, ["libcxx", "llvm/cmake/"])
    assert src.name == "llvm-22"
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()) == [
        "libcxx/include/vector", "libcxx/src/a.cpp", "llvm/cmake/c.cmake"]
    with pytest.raises(PipelineError, match=r"source\.members not in the archive: libunwind"):
        unpack_source(archive, tmp_path / "again", None, ["libcxx", "libunwind"])
    evil = make_tar(tmp_path / "evil.tar.gz", [info("pkg/ok/a"), info("pkg/ok/link", tarfile.SYMTYPE, "../../../x")])
    with pytest.raises(PipelineError, match="refusing link"):
        unpack_source(evil, tmp_path / "evil", None, ["ok"])
    with pytest.raises(ValueError, match="is not a path below the archive's top folder"):
        Source(url="file:///x.tar.gz", sha256="ab" * 32, members=["../etc"])


def test_an_orig_that_arrived_is_taken_when_apt_fails_on_the_dsc(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's archive here answers 404 for some .dsc files while their .orig downloads: apt exits
    non-zero, the .orig is there, and its pinned sha256 decides."""
    orig = make_tar(tmp_path / "pkg_1.0.orig.tar.gz", [info("pkg-1.0/a.c")])
    fake = tmp_path / "bin" / "apt-get"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ncp {orig} .\necho 'E: Failed to fetch pkg_1.0-1.dsc  404  Not Found' >&2\nexit 100\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(sources, "ensure_deb_src", lambda: None)
    paths = Paths(root=tmp_path, cache=tmp_path / "cache")
    found = fetch_source(paths, "recipes/x.yaml", tmp_path, Source(debian="pkg", version="1.0-1",
                                                                   sha256=sha256_file(orig)))
    assert found.name == orig.name and sha256_file(found) == sha256_file(orig)
    fake.write_text("#!/bin/sh\necho 'E: Unable to find a source package for pkg' >&2\nexit 100\n")
    with pytest.raises(PipelineError, match=r"apt-get source pkg=1\.0-1 failed: E: Unable to find a source package"):
        fetch_source(paths, "recipes/x.yaml", tmp_path, Source(debian="pkg", version="1.0-1", sha256="cd" * 32))

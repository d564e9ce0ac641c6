"""Sources: fetched by package name or URL into a shared cache keyed by sha256,
verified before any use, and unpacked safely."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import PipelineError, RecipeError
from ..files import sha256_file
from ..paths import Paths
from .provision import ensure_deb_src
from .spec import Source

RETRIES = 4
RETRY_BACKOFF = 1.0  # seconds before the second try, doubled after each
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar", ".zip")


def pypi_api_base() -> str:
    """The JSON API beside pip's configured index (no host name in this repo)."""
    index = os.environ.get("PIP_INDEX_URL")
    if not index:
        from pip._internal.models.index import PyPI

        return PyPI.pypi_url
    return index.rstrip("/").removesuffix("/simple") + "/pypi"


def http_get(url: str, dest: Path, backoff: float = RETRY_BACKOFF) -> str:
    """Download to `dest` with retries; return the sha256 of what arrived.

    A body cut off before its Content-Length (or its last chunk) is IncompleteRead, an
    HTTPException rather than an OSError: it is retried like a refused connection, and
    the partial file is deleted, never used. (A server that sends no length and closes
    early cannot be told from a complete reply: the sha256 check then refuses the file.)
    """
    last: Exception | None = None
    for attempt in range(RETRIES):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            digest, received = hashlib.sha256(), 0
            with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                expected = response.headers.get("Content-Length")
            # read(n) returns b"" at a premature end instead of raising: count it ourselves
            if expected is not None and expected.isdigit() and received < int(expected):
                raise http.client.IncompleteRead(b"", int(expected) - received)
            return digest.hexdigest()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            last = exc
            dest.unlink(missing_ok=True)
    raise PipelineError(f"download failed after {RETRIES} tries: {url}: {last}")


def pypi_json(path: str) -> dict | None:
    """GET `<JSON API>/<path>`: the parsed document, or None when the index answers 404."""
    url = f"{pypi_api_base()}/{path}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = json.load(response)
        # File URLs may be relative to the document (proxies and mirrors do that).
        for item in [*data.get("urls", []), *(f for fs in data.get("releases", {}).values() for f in fs)]:
            item["url"] = urllib.parse.urljoin(url, item["url"])
        return data
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise PipelineError(f"PyPI answered {exc.code} for {path}") from None
    except urllib.error.URLError as exc:
        raise PipelineError(f"cannot reach the PyPI JSON API for {path}: {exc.reason}") from None


def pypi_release(name: str, version: str | None = None) -> dict:
    """The JSON document of `name` (its latest release, or `version`): `info` and `urls`."""
    what = f"{name}=={version}" if version else name
    data = pypi_json(f"{name}/{version}/json" if version else f"{name}/json")
    if data is None and version:
        # Some indexes and proxies serve only the project document: take the
        # release's files from its `releases` table (`info` then describes the
        # latest release, except for the version).
        project = pypi_json(f"{name}/json")
        files = (project or {}).get("releases", {}).get(version)
        if project is not None and files is not None:
            data = {"info": {**project.get("info", {}), "version": version}, "urls": files}
    if data is None:
        raise PipelineError(f"{what} does not exist on PyPI")
    return data


def pick_pypi_file(release: dict, sha256: str | None = None) -> dict:
    """The sdist, else a pure py3-none-any wheel (matching `sha256` when given)."""
    files = release.get("urls", [])
    if sha256:
        for item in files:
            if item["digests"]["sha256"] == sha256:
                return item
    for item in files:
        if item["packagetype"] == "sdist":
            return item
    for item in files:
        if item["filename"].endswith("-none-any.whl"):
            return item
    name = release.get("info", {}).get("name", "?")
    raise PipelineError(f"{name} {release.get('info', {}).get('version', '')} has no sdist or pure wheel on PyPI")


def download_to(url: str, tmp_dir: Path) -> Path:
    name = PurePosixPath(urllib.parse.urlparse(url).path).name or "download"
    dest = tmp_dir / name
    http_get(url, dest)
    return dest


def fetch_debian(package: str, version: str, tmp_dir: Path) -> list[Path]:
    ensure_deb_src()
    proc = subprocess.run(
        ["apt-get", "source", "--download-only", "-qq", f"{package}={version}"],
        cwd=tmp_dir, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        raise PipelineError(f"apt-get source {package}={version} failed: {tail[0]}")
    return sorted(tmp_dir.glob("*.orig.tar.*")) or sorted(tmp_dir.glob("*.tar.*"))


def fetch_source(paths: Paths, rel: str, folder: Path, source: Source) -> Path:
    """The verified source file (or local directory) for a recipe."""
    if source.kind == "path":
        return (folder / (source.path or "")).resolve()
    sha = source.sha256 or ""
    cached_dir = paths.source_dir(sha)
    if cached_dir.is_dir():
        for found in cached_dir.iterdir():
            if not found.name.startswith(".") and sha256_file(found) == sha:
                return found
        shutil.rmtree(cached_dir)
    paths.sources.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.sources, prefix=".fetch-") as tmp:
        tmp_dir = Path(tmp)
        if source.kind == "url":
            candidates = [download_to(source.url or "", tmp_dir)]
        elif source.kind == "pypi":
            item = pick_pypi_file(pypi_release(source.pypi or "", source.version), sha)
            candidates = [download_to(item["url"], tmp_dir)]
        else:
            candidates = fetch_debian(source.debian or "", source.version or "", tmp_dir)
        digests = {path: sha256_file(path) for path in candidates}
        match = next((path for path, digest in digests.items() if digest == sha), None)
        if match is None:
            got = ", ".join(f"{p.name} {d}" for p, d in digests.items()) or "no file"
            raise RecipeError(rel, "source.sha256", f"sha256 mismatch: expected {sha}, got {got} (not kept)")
        cached_dir.mkdir(parents=True, exist_ok=True)
        final = cached_dir / match.name
        os.replace(match, final)
        return final


def check_member_name(archive: Path, name: str) -> None:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts:
        raise PipelineError(f"{archive.name}: refusing unsafe member path {name!r}")


def check_tar_member(archive: Path, member: tarfile.TarInfo, dest: Path) -> None:
    check_member_name(archive, member.name)
    if member.isdev() or member.isfifo():
        raise PipelineError(f"{archive.name}: refusing device or fifo member {member.name!r}")
    if member.issym() or member.islnk():
        base = dest / PurePosixPath(member.name).parent if member.issym() else dest
        target = (base / member.linkname).resolve()
        if PurePosixPath(member.linkname).is_absolute() or not target.is_relative_to(dest.resolve()):
            link = f"{member.name!r} -> {member.linkname!r}"
            raise PipelineError(f"{archive.name}: refusing link {link} outside the tree")


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack, refusing absolute paths, `..`, links leaving `dest`, and devices."""
    dest.mkdir(parents=True, exist_ok=True)
    if archive.suffix in (".zip", ".whl"):
        with zipfile.ZipFile(archive) as zipped:
            for name in zipped.namelist():
                check_member_name(archive, name)
            zipped.extractall(dest)
        return
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            check_tar_member(archive, member, dest)
        tar.extractall(dest, members=members, filter="data")


def unpack_source(found: Path, work: Path, extract_dir: str | None) -> Path:
    """Lay the source out under `work/src` and return the directory to build in."""
    src_root = work / "src"
    if found.is_dir():
        shutil.copytree(found, src_root, symlinks=True)
        return src_root
    if not found.name.endswith(ARCHIVE_SUFFIXES):
        src_root.mkdir(parents=True)
        shutil.copy2(found, src_root / found.name)
        return src_root
    safe_extract(found, src_root)
    if extract_dir:
        return src_root / extract_dir
    entries = list(src_root.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else src_root


def apply_patches(src: Path, patch_files: list[Path], log: Path) -> None:
    for patch in patch_files:
        with open(log, "a") as out:
            out.write(f"+ patch -p1 < {patch}\n")
            out.flush()
            proc = subprocess.run(
                ["patch", "-p1", "--batch", "--forward", "-i", str(patch)],
                cwd=src, stdout=out, stderr=subprocess.STDOUT, check=False,
            )
        if proc.returncode != 0:
            raise PipelineError(f"patch {patch.name} does not apply (see {log})")

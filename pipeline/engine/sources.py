"""Sources: fetched by package name or URL into a shared cache keyed by sha256,
verified before any use, and unpacked safely.

A source is its content, not its location (Nix's fixed-output fetches). A `url:` source is
looked for, in order: the sha256-keyed source cache; the recipe's URL; the PyPI JSON API,
asked for the file with that sha256 (the package named by the URL's path, the recipe or the
file name); each configured mirror's `<base>/sha256/<hex>`; the configured local source
folder (`<dir>/<file name>` or `<dir>/sha256/<hex>`). Every byte that arrives is hashed
on the way in and a file is kept only if its sha256 is the pinned one.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import PipelineError, RecipeError
from ..files import sha256_file
from ..paths import Paths
from .provision import ensure_deb_src
from .retry import Retry
from .spec import Source

DOWNLOAD_RETRY = Retry(tries=4, first_wait=1.0)
# An HTTP status that another try cannot change (408 timeout, 425 too early, 429 too many do).
PERMANENT_HTTP = frozenset(range(400, 500)) - {408, 425, 429}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar", ".zip")
# PyPI's redirect form, .../packages/source/<l>/<name>/<file> or .../packages/py3/<l>/<name>/<file>
# (the hashed form, .../packages/ab/cd/<hash>/<file>, does not match: its second part is not one letter).
REDIRECT_PATH = re.compile(r"/packages/[^/]+/[^/]/(?P<name>[^/]+)/(?P<file>[^/]+)$")
SDIST_NAME = re.compile(r"^(?P<name>.+?)-(?P<version>\d[^-]*)$")
MIRROR_LAYOUT = "{base}/sha256/{sha256}"  # Nix's hashed mirrors: the bytes under their sha256
PIP_INDEX_KEYS = ("install.index-url", "global.index-url")  # `pip config list` names, the one pip prefers first
# `pip install --help`: "-i, --index-url <url>  Base URL of the Python Package Index (default <url>)."
PIP_DEFAULT_INDEX = re.compile(r"--index-url <url>\s+Base URL[^(]*\(default\s+(?P<url>[^\s)]+)\)")


def ask_pip(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PipelineError(f"cannot ask pip for its index (pip {' '.join(args)}): {proc.stderr.strip()}")
    return proc.stdout


def pip_index_url() -> str:
    """The index pip installs from: PIP_INDEX_URL, else pip's configuration files, else pip's
    documented default. Asked through pip's command line: its Python API is private."""
    if index := os.environ.get("PIP_INDEX_URL"):
        return index
    configured = dict(line.partition("=")[::2] for line in ask_pip("config", "list").splitlines())
    for key in PIP_INDEX_KEYS:
        if key in configured:
            return configured[key].strip("'\"")
    found = PIP_DEFAULT_INDEX.search(ask_pip("install", "--help"))
    if found is None:
        raise PipelineError("cannot tell pip's default index from `pip install --help`: set PIP_INDEX_URL")
    return found["url"]


def pypi_api_base() -> str:
    """The JSON API beside pip's index (no host name in this repo)."""
    return pip_index_url().rstrip("/").removesuffix("/simple") + "/pypi"


def transient_download_error(exc: Exception) -> bool:
    """A refused connection, a timeout, a cut-off body, a 5xx: another try may succeed (a 404 stays a 404)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code not in PERMANENT_HTTP
    return isinstance(exc, (OSError, ValueError, http.client.HTTPException))


def http_get(url: str, dest: Path) -> str:
    """Download to `dest` with retries (DOWNLOAD_RETRY); return the sha256 of what arrived.

    A body cut off before its Content-Length (or its last chunk) is IncompleteRead, an
    HTTPException rather than an OSError: it is retried like a refused connection, and
    the partial file is deleted, never used. (A server that sends no length and closes
    early cannot be told from a complete reply: the sha256 check then refuses the file.)
    """
    tries = 0

    def attempt() -> str:
        nonlocal tries
        tries += 1
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
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    try:
        return DOWNLOAD_RETRY.call(attempt, transient_download_error)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise PipelineError(f"download failed after {tries} {'try' if tries == 1 else 'tries'}: {url}: {exc}") from None


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
    origs = sorted(tmp_dir.glob("*.orig.tar.*"))
    # Some archives answer 404 for a package's .dsc or .debian.tar while its .orig comes down:
    # apt fails, but the caller checks the pinned sha256 of what arrived, so an .orig is enough.
    if proc.returncode != 0 and not origs:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        raise PipelineError(f"apt-get source {package}={version} failed: {tail[0]}")
    return origs or sorted(tmp_dir.glob("*.tar.*"))


@dataclass(frozen=True)
class SourceLocations:
    """Where a pinned file is looked for once its recipe's URL failed (pipeline.yaml)."""

    pypi_lookup: bool = True  # ask the PyPI JSON API for the file with the pinned sha256
    mirrors: tuple[str, ...] = ()  # base URLs serving MIRROR_LAYOUT
    local_dir: Path | None = None  # <dir>/<file name> or <dir>/sha256/<hex>


def source_locations(root: Path, mirrors: list[str], source_dir: str | None) -> SourceLocations:
    """pipeline.yaml's source-mirrors and source-dir (relative to the project root, `~` expanded)."""
    local = Path(source_dir).expanduser() if source_dir else None
    if local is not None and not local.is_absolute():
        local = root / local
    return SourceLocations(mirrors=tuple(base.rstrip("/") for base in mirrors), local_dir=local)


@dataclass(frozen=True)
class Served:
    """Which location delivered a source file, and what failed before it did."""

    file: str
    location: str
    failed: tuple[str, ...] = ()  # "where: why", one per location tried first

    @property
    def is_fallback(self) -> bool:
        return bool(self.failed)

    def describe(self) -> str:
        text = f"source {self.file}: served by {self.location}"
        return text + (f" (after: {'; '.join(self.failed)})" if self.failed else "")


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def url_file_name(url: str) -> str:
    return urllib.parse.unquote(PurePosixPath(urllib.parse.urlparse(url).path).name) or "download"


def name_and_version(file_name: str) -> tuple[str, str] | None:
    """(distribution name, version) from a wheel's or an sdist's file name, if it is one."""
    if file_name.endswith(".whl"):
        parts = file_name.removesuffix(".whl").split("-")
        return (parts[0], parts[1]) if len(parts) >= 5 else None
    stem = next((file_name.removesuffix(end) for end in ARCHIVE_SUFFIXES if file_name.endswith(end)), None)
    found = SDIST_NAME.match(stem) if stem else None
    return (found["name"], found["version"]) if found else None


def pypi_candidates(url: str, package: str | None, version: str | None) -> list[tuple[str, str | None]]:
    """The (project, version) pairs to ask the JSON API about, most specific first.

    The project comes from PyPI's redirect form of the URL, the file name, or the recipe's
    package name; the version from the file name, else the recipe's.
    """
    file_name = url_file_name(url)
    parsed = name_and_version(file_name)
    file_version = parsed[1] if parsed else None
    redirect = REDIRECT_PATH.search(urllib.parse.urlparse(url).path)
    names = [redirect["name"] if redirect else None, parsed[0] if parsed else None, package]
    pairs: list[tuple[str, str | None]] = []
    for name in dict.fromkeys(n for n in names if n):
        for pair in ((name, file_version or version), (name, None)):
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def find_on_pypi(sha256: str, candidates: list[tuple[str, str | None]]) -> tuple[str | None, str]:
    """The URL the PyPI JSON API lists for the file with this sha256, or (None, why not)."""
    asked: list[str] = []
    answered: set[str] = set()  # projects whose release document answered: it lists that version's files
    for name, version in candidates:
        if version is None and name in answered:
            continue
        data = pypi_json(f"{name}/{version}/json" if version else f"{name}/json")  # PipelineError: unreachable
        asked.append(f"{name} {version}" if version else name)
        if data is None:
            continue
        answered.add(name)
        files = data.get("urls", []) if version else [f for fs in data.get("releases", {}).values() for f in fs]
        for item in files:
            if item.get("digests", {}).get("sha256") == sha256:
                return item["url"], ""
    return None, f"no file with this sha256 (asked for {', '.join(asked) or 'nothing: no project name'})"


def copy_hashing(src: Path, dest: Path) -> str:
    """Copy a local file, hashing every byte on the way; return its sha256."""
    digest = hashlib.sha256()
    with open(src, "rb") as into, open(dest, "wb") as out:
        while chunk := into.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def fallback_attempts(
    sha256: str, url: str, dest: Path, package: tuple[str, str] | None, locations: SourceLocations,
) -> Iterator[tuple[str, Callable[[], str]]]:
    """(location, fetch) after the recipe's URL failed, in order; fetch writes `dest` and
    returns the sha256 of what arrived, or raises PipelineError saying why not."""
    if locations.pypi_lookup:
        def from_pypi() -> str:
            name, version = package or (None, None)
            found, why = find_on_pypi(sha256, pypi_candidates(url, name, version))
            if found is None:
                raise PipelineError(why)
            return http_get(found, dest)
        yield "PyPI JSON API (sha256 lookup)", from_pypi
    for base in locations.mirrors:
        mirrored = MIRROR_LAYOUT.format(base=base, sha256=sha256)
        yield f"mirror {base}", lambda mirrored=mirrored: http_get(mirrored, dest)
    if locations.local_dir is not None:
        folder = locations.local_dir

        def from_folder() -> str:
            for candidate in (folder / dest.name, folder / "sha256" / sha256):
                if candidate.is_file():
                    got = copy_hashing(candidate, dest)
                    if got == sha256:
                        return got
            raise PipelineError(f"no file {dest.name} or sha256/{sha256} with this sha256")
        yield f"source-dir {folder}", from_folder


def fetch_url(rel: str, source: Source, tmp_dir: Path, package: tuple[str, str] | None,
              locations: SourceLocations) -> tuple[Path, Served]:
    """The recipe's URL, then (only if that download failed) the fallbacks, verified."""
    sha, url = source.sha256 or "", source.url or ""
    dest = tmp_dir / url_file_name(url)
    try:
        got = http_get(url, dest)
    except PipelineError as exc:
        first_failure = one_line(exc)
    else:
        if got != sha:  # the URL answered with other bytes: the recipe (or upstream) is wrong
            raise RecipeError(rel, "source.sha256",
                              f"sha256 mismatch: expected {sha}, got {dest.name} {got} (not kept)")
        return dest, Served(dest.name, f"the recipe's url {url}")
    failed = [f"the recipe's url: {first_failure}"]
    for location, attempt in fallback_attempts(sha, url, dest, package, locations):
        try:
            got = attempt()
        except PipelineError as exc:
            failed.append(f"{location}: {one_line(exc)}")
            continue
        if got == sha:
            return dest, Served(dest.name, location, tuple(failed))
        dest.unlink(missing_ok=True)
        failed.append(f"{location}: sha256 mismatch, got {got} (not kept)")
    raise RecipeError(rel, "source.url", f"{first_failure}; not found by sha256 elsewhere: {'; '.join(failed[1:])}"
                      if failed[1:] else first_failure)


def fetch_source(paths: Paths, rel: str, folder: Path, source: Source, *, package: tuple[str, str] | None = None,
                 locations: SourceLocations | None = None,
                 report: Callable[[Served], None] | None = None) -> Path:
    """The verified source file (or local directory) for a recipe.

    `package`: the recipe's package name and version, one of the (project, version) pairs a
    failed URL is looked up by on PyPI. `locations`: pipeline.yaml's mirrors and local folder (default: PyPI only).
    `report` is told which location served the file.
    """
    if source.kind == "path":
        return (folder / (source.path or "")).resolve()
    sha = source.sha256 or ""
    cached_dir = paths.source_dir(sha)
    if cached_dir.is_dir():
        for found in cached_dir.iterdir():
            if not found.name.startswith(".") and sha256_file(found) == sha:
                if report is not None:
                    report(Served(found.name, "the source cache"))
                return found
        shutil.rmtree(cached_dir)
    paths.sources.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.sources, prefix=".fetch-") as tmp:
        tmp_dir = Path(tmp)
        if source.kind == "url":
            match, served = fetch_url(rel, source, tmp_dir, package, locations or SourceLocations())
        else:
            if source.kind == "pypi":
                item = pick_pypi_file(pypi_release(source.pypi or "", source.version), sha)
                candidates = [download_to(item["url"], tmp_dir)]
                where = "PyPI JSON API"
            else:
                candidates = fetch_debian(source.debian or "", source.version or "", tmp_dir)
                where = "apt-get source"
            digests = {path: sha256_file(path) for path in candidates}
            found = next((path for path, digest in digests.items() if digest == sha), None)
            if found is None:
                got = ", ".join(f"{p.name} {d}" for p, d in digests.items()) or "no file"
                raise RecipeError(rel, "source.sha256", f"sha256 mismatch: expected {sha}, got {got} (not kept)")
            match, served = found, Served(found.name, where)
        cached_dir.mkdir(parents=True, exist_ok=True)
        final = cached_dir / match.name
        os.replace(match, final)
        if report is not None:
            report(served)
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


def under_top_folder(name: str) -> str:
    """A member's path below the archive's top folder (`llvm-22.1.8/libcxx/x` -> `libcxx/x`)."""
    return name.strip("/").partition("/")[2]


def extract_members(archive: Path, dest: Path, members: list[str]) -> None:
    """Only the listed paths (below the top folder; a folder brings its whole tree), in one
    streaming pass: a compressed tar is read once and the rest is never written."""
    def listed_under(inner: str) -> set[str]:
        """The listed paths `inner` is, or lies below."""
        return {m for m in members if inner == m.rstrip("/") or inner.startswith(m.rstrip("/") + "/")}

    found: set[str] = set()
    with tarfile.open(archive, "r|*") as tar:
        for member in tar:
            inner = under_top_folder(member.name)
            covering = listed_under(inner)
            if inner and not covering:
                continue
            check_tar_member(archive, member, dest)
            tar.extract(member, dest, filter="data")
            found |= covering
    missing = [m for m in members if m not in found]
    if missing:
        raise PipelineError(f"{archive.name}: source.members not in the archive: {', '.join(missing)}")


def safe_extract(archive: Path, dest: Path, members: list[str] | None = None) -> None:
    """Unpack, refusing absolute paths, `..`, links leaving `dest`, and devices."""
    dest.mkdir(parents=True, exist_ok=True)
    if members:
        if archive.suffix in (".zip", ".whl"):
            raise PipelineError(f"{archive.name}: source.members needs a tar archive")
        extract_members(archive, dest, members)
        return
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


def unpack_source(found: Path, work: Path, extract_dir: str | None, members: list[str] | None = None) -> Path:
    """Lay the source out under `work/src` (only `members` of an archive, when given) and
    return the directory to build in."""
    src_root = work / "src"
    if found.is_dir():
        shutil.copytree(found, src_root, symlinks=True)
        return src_root
    if not found.name.endswith(ARCHIVE_SUFFIXES):
        src_root.mkdir(parents=True)
        shutil.copy2(found, src_root / found.name)
        return src_root
    safe_extract(found, src_root, members)
    if extract_dir:
        return src_root / extract_dir
    entries = list(src_root.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else src_root


def add_extras(src: Path, folder: Path, extras: list[tuple[str, str]]) -> None:
    """Pyodide's `source.extras`: [file in the recipe folder, where in the source tree]."""
    for given, dest in extras:
        target = (src / dest).resolve()
        if not target.is_relative_to(src.resolve()):
            raise PipelineError(f"source.extras: {dest!r} lies outside the source tree")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / given, target)


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

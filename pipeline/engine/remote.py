"""The shared remote artifact cache, in Bazel's HTTP cache layout: `<base>/ac/<key>` holds a
task's entry (JSON: its manifest and which files are executable), `<base>/cas/<sha256>` the bytes.

The base is an http(s):// URL (plain GET/HEAD/PUT), a file:// directory or an s3://bucket/prefix
(fsspec/s3fs). Downloads verify every blob: anything corrupt, missing or unsafe is a miss. Pushes
upload missing blobs first and ac/<key> last, so readers never see half an entry. Network errors
are retried with backoff, then the remote is skipped for the run: an outage never fails a build.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import posixpath
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from ..errors import ExitCode, PipelineError
from ..files import read_json, write_atomic, write_json_atomic
from .cache import ArtifactCache, remove_dead_writers_temps
from .config import remote_readonly, remote_url
from .faults import fault_point
from .retry import Retry
from .state import Manifest

SHA256 = re.compile(r"[0-9a-f]{64}")


class RemoteError(PipelineError):
    """The remote could not be reached or refused a request (worth a retry)."""

    exit_code = ExitCode.FAILED


class Store(Protocol):
    def get(self, name: str) -> bytes | None: ...  # None: not there
    def has(self, name: str) -> bool: ...
    def put(self, name: str, data: bytes) -> None: ...


@dataclass(frozen=True)
class HttpStore:
    base: str
    timeout: float = 30.0

    def _call(self, method: str, name: str, data: bytes | None = None) -> bytes | None:
        request = urllib.request.Request(f"{self.base.rstrip('/')}/{name}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise RemoteError(f"{method} {name}: HTTP {exc.code}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, reset, timeout, cut short
            raise RemoteError(f"{method} {name}: {getattr(exc, 'reason', exc)}") from None

    def get(self, name: str) -> bytes | None:
        return self._call("GET", name)

    def has(self, name: str) -> bool:
        return self._call("HEAD", name) is not None

    def put(self, name: str, data: bytes) -> None:
        self._call("PUT", name, data)


@dataclass(frozen=True)
class FileStore:
    root: Path

    def get(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RemoteError(f"read {name}: {exc}") from None

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()

    def put(self, name: str, data: bytes) -> None:
        try:  # concurrent writers: each has its own temp file, each rename puts a whole file
            write_atomic(self.root / name, data)
        except OSError as exc:
            raise RemoteError(f"write {name}: {exc}") from None


@dataclass(frozen=True)
class S3Store:
    path: str  # bucket/prefix
    fs: Any

    @classmethod
    def open(cls, path: str) -> S3Store:
        try:
            import fsspec  # the optional extra `remote`
            import s3fs  # noqa: F401 - fsspec's "s3" protocol
        except ImportError:
            raise PipelineError("an s3:// remote cache needs s3fs: pip install -e '.[remote]'") from None
        retries = {"retries": {"max_attempts": 1}}  # RemoteCache retries; botocore's take seconds
        fs = fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False, config_kwargs=retries)
        return cls(path.strip("/"), fs)

    def _call(self, name: str, method: str, *args: Any) -> Any:
        try:
            return getattr(self.fs, method)(f"{self.path}/{name}", *args)
        except FileNotFoundError:
            return None
        except Exception as exc:  # botocore and aiohttp raise many types; all mean "remote trouble"
            raise RemoteError(f"{method} {name}: {type(exc).__name__}: {exc}") from None

    def get(self, name: str) -> bytes | None:
        return self._call(name, "cat_file")

    def has(self, name: str) -> bool:
        return self._call(name, "info") is not None

    def put(self, name: str, data: bytes) -> None:
        self._call(name, "pipe_file", data)


def open_store(url: str) -> Store:
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        return HttpStore(url)
    if parsed.scheme == "file":
        return FileStore(Path(parsed.path))
    if parsed.scheme == "s3":
        return S3Store.open(parsed.netloc + parsed.path)
    raise PipelineError(f"remote cache {url!r}: the scheme must be http, https, file or s3")


@dataclass(frozen=True)
class Transfer:
    """One fetch or push: done (a hit), bytes moved, and a warning for the task's note."""

    ok: bool = False
    bytes: int = 0
    warning: str = ""


def inside(rel: str) -> bool:
    norm = posixpath.normpath(rel)
    return not rel.startswith("/") and norm != ".." and not norm.startswith("../") and "\0" not in rel


def valid_item(rel: str, item: Any) -> bool:
    if not (inside(rel) and posixpath.normpath(rel) == rel != "." and isinstance(item, list) and len(item) == 2):
        return False
    if item[0] == "link":
        return isinstance(item[1], str) and inside(posixpath.join(posixpath.dirname(rel), item[1]))
    return isinstance(item[0], int) and isinstance(item[1], str) and SHA256.fullmatch(item[1]) is not None


def parse_entry(raw: bytes) -> tuple[Manifest, set[str]] | None:
    """An ac entry is untrusted: paths and links must stay inside the tree, blobs be sha256 names."""
    try:
        doc = json.loads(raw)
        manifest, executable = doc["manifest"], set(doc["executable"])
        valid = all(valid_item(rel, item) for rel, item in manifest.items())
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return (manifest, executable) if valid else None


@dataclass
class RemoteCache:
    store: Store
    readonly: bool = False
    tries: int = 3
    backoff: float = 0.2  # seconds before the first retry, doubled after each
    down: str = ""  # set once the remote failed: it is skipped for the rest of the run
    bad_blobs: set[str] = field(default_factory=set)  # found corrupt: re-uploaded by the next push

    def _retry(self, call: Any) -> Any:
        return Retry(self.tries, self.backoff).call(call, lambda exc: isinstance(exc, RemoteError))

    def _unreachable(self, exc: RemoteError) -> Transfer:
        self.down = str(exc)
        return Transfer(warning=f"remote cache unreachable ({exc}): going on without it")

    def fetch(self, key: str, cache: ArtifactCache) -> Transfer:
        """Download `key` into the local cache; not ok on a miss (with a warning unless plain)."""
        if self.down:
            return Transfer()
        remove_dead_writers_temps(cache.entry(key).parent, f".remote-{key}-")
        tmp = cache.entry(key).with_name(f".remote-{key}-{os.getpid()}")
        try:
            return self._fetch_into(key, tmp, cache.entry(key))
        except RemoteError as exc:
            return self._unreachable(exc)
        except OSError as exc:  # local disk trouble, or a manifest naming a path twice
            return Transfer(warning=f"remote entry {key[:12]} could not be assembled ({exc}): a miss")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _fetch_into(self, key: str, tmp: Path, final: Path) -> Transfer:
        raw = self._retry(lambda: self.store.get(f"ac/{key}"))
        if raw is None:
            return Transfer()
        entry = parse_entry(raw)
        if entry is None:
            return Transfer(warning=f"remote entry ac/{key[:12]} is malformed or unsafe: ignored (a miss)")
        manifest, executable = entry
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "tree").mkdir(parents=True)
        moved = len(raw)
        for rel, (size, sha) in manifest.items():
            path = tmp / "tree" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if size == "link":
                os.symlink(sha, path)
                continue
            fault_point("download")  # a kill mid-download leaves only the temporary tree
            data = self._retry(lambda sha=sha: self.store.get(f"cas/{sha}"))
            if data is None or len(data) != size or hashlib.sha256(data).hexdigest() != sha:
                self.bad_blobs.add(sha)
                what = "missing" if data is None else "corrupt"
                return Transfer(warning=f"remote blob cas/{sha[:12]} ({rel}) of key {key[:12]} is {what}: a miss")
            path.write_bytes(data)
            path.chmod(0o755 if rel in executable else 0o644)
            moved += len(data)
        write_json_atomic(tmp / "manifest.json", manifest)
        with contextlib.suppress(OSError):  # another process stored the same key first
            os.rename(tmp, final)
        return Transfer(ok=True, bytes=moved)

    def push(self, key: str, cache: ArtifactCache) -> Transfer:
        """Upload the local entry of `key`: blobs the remote lacks, then ac/<key> last."""
        if self.readonly or self.down:
            return Transfer()
        tree, manifest = cache.entry(key) / "tree", read_json(cache.entry(key) / "manifest.json")
        try:
            if not isinstance(manifest, dict):
                raise ValueError("unreadable manifest")
            files = [rel for rel, (size, _) in manifest.items() if size != "link"]
            moved = sum(self._push_blob(tree, rel, manifest[rel][1]) for rel in files)
            executable = [rel for rel in files if (tree / rel).stat().st_mode & 0o100]
            raw = json.dumps({"manifest": manifest, "executable": executable}, sort_keys=True).encode()
            self._retry(lambda: self.store.put(f"ac/{key}", raw))
        except RemoteError as exc:
            return self._unreachable(exc)
        except (OSError, ValueError) as exc:
            return Transfer(warning=f"local cache entry {key[:12]} not pushed: {exc}")
        return Transfer(ok=True, bytes=moved + len(raw))

    def _push_blob(self, tree: Path, rel: str, sha: str) -> int:
        if sha not in self.bad_blobs and self._retry(lambda: self.store.has(f"cas/{sha}")):
            return 0
        fault_point("push")  # a kill mid-push leaves blobs without ac/<key>: not yet an entry
        data = (tree / rel).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise ValueError(f"{rel} does not match its manifest")
        self._retry(lambda: self.store.put(f"cas/{sha}", data))
        self.bad_blobs.discard(sha)
        return len(data)


def remote_from(configured: str | None, readonly: bool) -> RemoteCache | None:
    """The remote named by $PIPELINE_REMOTE_CACHE (wins) or pipeline.yaml's remote-cache, or None."""
    url = remote_url(configured)
    if not url:
        return None
    return RemoteCache(open_store(url), readonly=remote_readonly(readonly))

"""The remote artifact cache against real servers on loopback: nginx (WebDAV PUT), moto's S3, a directory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import CLANG, TOOLCHAIN, Project, make_project, recorded_sleeps, serving_in_thread

from pipeline.engine.cache import ArtifactCache
from pipeline.engine.remote import FileStore, RemoteCache, RemoteError, parse_entry, remote_from
from pipeline.engine.state import make_manifest
from pipeline.errors import PipelineError
from pipeline.paths import Paths

NGINX = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
NGINX_CONF = """\
user {user};
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/data;
        location / {{
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"""
# moto accepts any credentials; the empty config files keep the developer's own out of the tests
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listening on port {port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Remote:
    """A remote cache under test: its URL, the env a run needs, and direct access to what it stores."""

    url: str
    read: Callable[[str], bytes | None]
    write: Callable[[str, bytes], None]
    names: Callable[[], list[str]]
    env: dict[str, str] = field(default_factory=dict)


def directory_remote(url: str, root: Path) -> Remote:
    def read(name: str) -> bytes | None:
        return (root / name).read_bytes() if (root / name).is_file() else None

    def names() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.glob("*/*") if p.is_file())

    return Remote(url, read, lambda name, data: (root / name).write_bytes(data), names)


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    if NGINX is None:
        pytest.skip("nginx not installed (python -m pipeline provision installs nginx-light)")
    tmp, port = tmp_path_factory.mktemp("nginx"), free_port()
    (tmp / "data").mkdir()
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=port, user=user))
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf"),
                             "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield port, tmp / "data"
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def moto_port() -> Iterator[int]:
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield port
    finally:
        stop(proc)


def s3_remote(port: int) -> Remote:
    import boto3

    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    bucket, prefix = f"cache-{uuid.uuid4().hex[:12]}", "shared/pipeline"
    client.create_bucket(Bucket=bucket)

    def read(name: str) -> bytes | None:
        try:
            return client.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    def names() -> list[str]:
        found = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return sorted(item["Key"].removeprefix(prefix + "/") for item in found)

    return Remote(f"s3://{bucket}/{prefix}", read,
                  lambda name, data: client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=data), names,
                  {**S3_ENV, "AWS_ENDPOINT_URL": endpoint})


# s3 (moto, and s3fs imported by every step) costs several seconds a test: it runs with the e2e
# tests (CI's `./dev test`), while the fast loop has http and file, and s3's unreachable case
@pytest.fixture(params=["http", pytest.param("s3", marks=pytest.mark.e2e), "file"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    if request.param == "file":
        return directory_remote(f"file://{tmp_path / 'shared'}", tmp_path / "shared")
    if request.param == "s3":
        return s3_remote(request.getfixturevalue("moto_port"))
    port, data = request.getfixturevalue("nginx")
    base = f"cache-{uuid.uuid4().hex[:12]}"
    return directory_remote(f"http://127.0.0.1:{port}/{base}", data / base)


def run(project: Project, remote: Remote, **env: str) -> str:
    return project.doit(PIPELINE_REMOTE_CACHE=remote.url, **remote.env, **env).stdout


def task_key(project: Project, task: str, which: str = "key") -> str:
    """A task's key, or with which="test_key" its self-test's key."""
    return json.loads((project.root / f"build/.state/{task}.json").read_text())[which]


ENTRIES = 4  # the fixture's three outputs, and hello's self-test pass (engine/keys.py: test_inputs)


def test_fresh_checkout_with_empty_cache_downloads_everything(remote: Remote, tmp_path: Path) -> None:
    first = make_project(tmp_path / "a")
    assert "summary: 3 built" in run(first, remote)
    assert len([n for n in remote.names() if n.startswith("ac/")]) == ENTRIES

    fresh = make_project(tmp_path / "b")  # another checkout, its own empty local cache
    out = run(fresh, remote)
    assert fresh.runs() == [], f"nothing may build:\n{out}"
    assert "summary: 3 downloaded" in out and "warning" not in out
    assert (fresh.root / "build/greeting/greeting.txt").read_text() == "hello from a fixture\n"
    hello = subprocess.run([fresh.root / "build/hello/bin/hello"], capture_output=True, text=True, check=True)
    assert hello.stdout == "hello from a fixture\n", "an executable stays executable"
    assert "remote fetch:" in (fresh.root / "build/logs/hello.log").read_text()
    assert "3 up to date" in run(fresh, remote)


def test_corrupt_remote_blob_is_detected_rebuilt_and_repushed(remote: Remote, tmp_path: Path) -> None:
    first = make_project(tmp_path / "a")
    run(first, remote)
    key = task_key(first, "standalone")
    entry = json.loads(remote.read(f"ac/{key}") or b"")
    sha = entry["manifest"]["version.txt"][1]
    good = remote.read(f"cas/{sha}")
    assert good is not None
    remote.write(f"cas/{sha}", b"x" * len(good))  # same length, wrong bytes

    fresh = make_project(tmp_path / "b")
    out = run(fresh, remote)
    assert f"remote blob cas/{sha[:12]} (version.txt) of key {key[:12]} is corrupt" in out
    assert fresh.runs() == ["standalone"], "only the task with the bad blob rebuilds"
    assert "2 downloaded" in out and "1 built" in out
    assert (fresh.root / "build/standalone/version.txt").read_text() == "1.0\n"
    assert remote.read(f"cas/{sha}") == good, "the rebuild pushed the good blob again"


def check_readonly_remote(remote: Remote, tmp_path: Path, readonly_from: str) -> None:
    """remote-cache comes from pipeline.yaml only (Project.env drops PIPELINE_REMOTE_*): the downloads
    prove it is read; read-only comes from remote-readonly or $PIPELINE_REMOTE_READONLY."""
    seed = make_project(tmp_path / "seed")
    assert "summary: 3 built" in run(seed, remote)
    seeded = remote.names()
    assert len([n for n in seeded if n.startswith("ac/")]) == ENTRIES

    project = make_project(tmp_path / "ro")
    config = project.root / "pipeline.yaml"
    readonly_line = "remote-readonly: true\n" if readonly_from == "config" else ""
    config.write_text(config.read_text() + f"remote-cache: {remote.url}\n" + readonly_line)
    project.edit("standalone", 'echo "{{ version }}"', 'echo "{{ version }}-local"')  # a key the remote lacks
    env = {"PIPELINE_REMOTE_READONLY": "1"} if readonly_from == "env" else {}
    out = project.doit(**remote.env, **env).stdout
    assert project.runs() == ["standalone"], out
    assert "2 downloaded" in out and "1 built" in out and "warning" not in out, out
    assert (project.root / "build/greeting/greeting.txt").read_text() == "hello from a fixture\n"
    assert (project.root / "build/standalone/version.txt").read_text() == "1.0-local\n"
    assert remote.names() == seeded, "a read-only remote gets nothing"


def test_readonly_remote_fetches_but_pushes_nothing(remote: Remote, tmp_path: Path) -> None:
    check_readonly_remote(remote, tmp_path, "config")


def test_readonly_from_the_environment_fetches_but_pushes_nothing(tmp_path: Path) -> None:
    check_readonly_remote(directory_remote(f"file://{tmp_path / 'shared'}", tmp_path / "shared"), tmp_path, "env")


@pytest.mark.parametrize("scheme", ["http", "s3"])
def test_server_down_builds_locally_with_a_warning(scheme: str, tmp_path: Path) -> None:
    if scheme == "s3":
        pytest.importorskip("s3fs")
    port = free_port()  # nothing listens there
    url, env = (f"http://127.0.0.1:{port}/cache", {}) if scheme == "http" else \
        ("s3://bucket/cache", {**S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    project = make_project(tmp_path)
    out = project.doit(PIPELINE_REMOTE_CACHE=url, **env).stdout
    assert "summary: 3 built" in out
    # hello and standalone ask at once; once it is found down the remote is off for the run,
    # so greeting, which starts after them, does not wait on it again (a task's warning is
    # the line under its outcome)
    lines = out.splitlines()
    warned = [lines[n - 1].split()[-2] for n, line in enumerate(lines) if "remote cache unreachable" in line]
    assert warned and "greeting" not in warned, out
    assert (project.root / "build/greeting/greeting.txt").read_text() == "hello from a fixture\n"


def test_push_command_seeds_the_remote_with_what_is_built_here(remote: Remote, tmp_path: Path) -> None:
    """`python -m pipeline push`: up-to-date tasks only; a fresh checkout then downloads them all."""
    project = make_project(tmp_path / "a")
    project.doit("hello", "standalone")  # no remote while building: only push uploads anything
    shutil.rmtree(project.root / "build/standalone")  # in the local cache, but no longer built here
    env = {"PIPELINE_REMOTE_CACHE": remote.url, **remote.env}
    first = project.cli("push", **env).stdout
    assert "skipped greeting: not built here" in first and "skipped standalone: not built here" in first
    assert "pushed 1 tasks" in first
    assert sorted(n for n in remote.names() if n.startswith("ac/")) == \
        sorted(f"ac/{task_key(project, 'hello', which)}" for which in ("key", "test_key"))

    project.doit()
    assert "pushed 3 tasks" in project.cli("push", **env).stdout
    assert len([n for n in remote.names() if n.startswith("ac/")]) == ENTRIES
    fresh = make_project(tmp_path / "b")
    out = run(fresh, remote)
    assert fresh.runs() == [] and "summary: 3 downloaded" in out, out
    assert (fresh.root / "build/greeting/greeting.txt").read_text() == "hello from a fixture\n"

    nowhere = project.cli("push", check=False)
    assert nowhere.returncode == 2 and "no remote cache" in nowhere.stderr


class FlakyServer(ThreadingHTTPServer):
    """An HTTP cache on loopback whose first `failures` requests fail (503, then a dropped
    connection, alternately); it records when each request arrived."""

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), FlakyHandler)
        self.failures = failures
        self.blobs: dict[str, bytes] = {}
        self.arrivals: list[float] = []


class FlakyHandler(BaseHTTPRequestHandler):
    server: FlakyServer

    def log_message(self, *_args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.arrivals.append(time.monotonic())
        failed = len(self.server.arrivals)
        if failed <= self.server.failures:
            if failed % 2:
                self.send_error(503)
            else:
                self.close_connection = True  # no response at all: the client sees the connection drop
            return
        data = self.server.blobs.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def flaky_server(failures: int, blobs: dict[str, bytes]) -> contextlib.AbstractContextManager[FlakyServer]:
    server = FlakyServer(failures)
    server.blobs.update(blobs)
    return serving_in_thread(server)


def test_http_retries_back_off_from_0_2_s_doubling_then_give_up(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults the README states: 3 tries, waits of 0.2 s then 0.4 s, then the remote is off."""
    cache = ArtifactCache(Paths(root=tmp_path, cache=tmp_path / "cache"))
    data = b"payload\n"
    sha = hashlib.sha256(data).hexdigest()
    entry = json.dumps({"manifest": {"f": [len(data), sha]}, "executable": []}).encode()
    slept = recorded_sleeps(monkeypatch)
    with flaky_server(2, {"ac/k1": entry, f"cas/{sha}": data}) as server:
        remote = remote_from(f"http://127.0.0.1:{server.server_port}", False)
        assert remote is not None
        assert remote.fetch("k1", cache).ok, "a 503 and a dropped connection, then the third try succeeds"
        assert len(server.arrivals) == 4, "three tries of ac/k1, then cas/<sha> at the first try"
        assert slept == [0.2, 0.4], "a wait before each retry: 0.2 s, then doubled"
    assert (cache.entry("k1") / "tree/f").read_bytes() == data

    slept.clear()
    with flaky_server(99, {}) as dead:
        remote = remote_from(f"http://127.0.0.1:{dead.server_port}", False)
        assert remote is not None
        result = remote.fetch("k2", cache)
        assert not result.ok and "remote cache unreachable" in result.warning
        assert len(dead.arrivals) == 3, "three tries, no more"
        assert slept == [0.2, 0.4], "no wait after the last try"
        assert not remote.fetch("k3", cache).warning and len(dead.arrivals) == 3, "off for the rest of the run"
        assert slept == [0.2, 0.4], "and no more waiting either"


@dataclass
class FlakyStore:
    """Fails `failures` times, then serves `blobs`."""

    failures: int
    blobs: dict[str, bytes] = field(default_factory=dict)
    calls: int = 0

    def get(self, name: str) -> bytes | None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RemoteError("connection reset")
        return self.blobs.get(name)

    def has(self, name: str) -> bool:
        return self.get(name) is not None

    def put(self, name: str, data: bytes) -> None:
        self.blobs[name] = data


def test_network_errors_are_retried_with_backoff_then_give_up(tmp_path: Path) -> None:
    cache = ArtifactCache(Paths(root=tmp_path, cache=tmp_path / "cache"))
    data = b"payload\n"
    sha = hashlib.sha256(data).hexdigest()
    entry = {"manifest": {"f": [len(data), sha]}, "executable": []}
    store = FlakyStore(2, {"ac/k1": json.dumps(entry).encode(), f"cas/{sha}": data})
    remote = RemoteCache(store, backoff=0.01)
    assert remote.fetch("k1", cache).ok, "two failures, then the third try succeeds"
    assert (cache.entry("k1") / "tree/f").read_bytes() == data

    dead = RemoteCache(FlakyStore(99), backoff=0.01)
    result = dead.fetch("k2", cache)
    assert not result.ok and "unreachable" in result.warning and dead.store.calls == 3
    assert not dead.fetch("k3", cache).warning and dead.store.calls == 3, "switched off for the rest of the run"


@pytest.mark.parametrize("manifest", [
    {"../escape": [1, "0" * 64]},
    {"/abs": [1, "0" * 64]},
    {"a/./b": [1, "0" * 64]},
    {"link": ["link", "../../etc"]},
    {"link": ["link", "/etc/passwd"]},
    {"f": [1, "../../etc/passwd"]},
    {"f": "junk"},
])
def test_unsafe_remote_entries_are_refused(manifest: dict[str, object]) -> None:
    assert parse_entry(json.dumps({"manifest": manifest, "executable": []}).encode()) is None
    assert parse_entry(b"not json") is None


def test_concurrent_pushers_of_one_key_leave_a_whole_entry(tmp_path: Path) -> None:
    source = ArtifactCache(Paths(root=tmp_path, cache=tmp_path / "src"))
    (tmp_path / "out/bin").mkdir(parents=True)
    (tmp_path / "out/bin/tool").write_bytes(os.urandom(1 << 20))
    (tmp_path / "out/bin/tool").chmod(0o755)
    source.store("k", tmp_path / "out", make_manifest(tmp_path / "out"))
    shared = FileStore(tmp_path / "shared")
    pushers = [RemoteCache(shared) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        assert all(t.ok for t in pool.map(lambda r: r.push("k", source), pushers))
    assert not list((tmp_path / "shared").glob("*/.*")), "no temp files left"
    target = ArtifactCache(Paths(root=tmp_path, cache=tmp_path / "dst"))
    assert RemoteCache(shared).fetch("k", target).ok
    manifest, _ = target.restore("k", tmp_path / "restored")
    assert manifest is not None and os.access(tmp_path / "restored/bin/tool", os.X_OK)


def test_env_wins_over_config_and_forces_readonly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PIPELINE_REMOTE_CACHE", raising=False)
    monkeypatch.delenv("PIPELINE_REMOTE_READONLY", raising=False)
    assert remote_from(None, False) is None
    assert remote_from(f"file://{tmp_path}/config", True) == RemoteCache(FileStore(tmp_path / "config"), readonly=True)
    monkeypatch.setenv("PIPELINE_REMOTE_CACHE", f"file://{tmp_path}/env")
    monkeypatch.setenv("PIPELINE_REMOTE_READONLY", "1")
    remote = remote_from(f"file://{tmp_path}/config", False)
    assert remote is not None and remote.readonly and remote.store == FileStore(tmp_path / "env")


def test_readonly_variable_is_read_one_way_everywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """$PIPELINE_REMOTE_READONLY has one parse: text other than 1 or 0 is an error wherever it is read
    (not `true` meaning read-only when the remote opens, and an error when the config loads)."""
    monkeypatch.setenv("PIPELINE_REMOTE_READONLY", "true")
    with pytest.raises(PipelineError, match=r"\$PIPELINE_REMOTE_READONLY: 'true' must be 1 \(fetch only\) or 0"):
        remote_from(f"file://{tmp_path}/config", False)
    monkeypatch.setenv("PIPELINE_REMOTE_READONLY", "0")
    remote = remote_from(f"file://{tmp_path}/config", False)
    assert remote is not None and not remote.readonly


@pytest.mark.skipif(shutil.which("ccache") is None or CLANG is None, reason=f"needs ccache, {TOOLCHAIN.clang}")
def test_compiles_are_shared_through_an_http_remote(nginx: tuple[int, Path], tmp_path: Path) -> None:
    """The compile cache's remote storage on the same nginx (WebDAV PUT) as the artifacts: a
    machine with an empty compile cache gets another machine's compile from it, the same bytes."""
    from test_compile_cache import checkout, compile_in

    from pipeline.engine.layer import RemoteSpec

    port, data = nginx
    remote = RemoteSpec(f"http://127.0.0.1:{port}/ccache-test", readonly=False)
    first, counted = compile_in(checkout(tmp_path / "a"), tmp_path / "cache-a", remote=remote)
    assert counted["compile cache misses"] == 1
    assert any((data / "ccache-test/compile-cache").rglob("*")), "the compile was put on the remote"
    again, counted = compile_in(checkout(tmp_path / "b"), tmp_path / "cache-b", remote=remote)
    assert counted.get("compile cache hits from the remote") == 1, counted
    assert again == first

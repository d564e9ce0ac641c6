"""Sources are content, not locations: a pinned file whose URL fails is found by its sha256.

The PyPI tests use the real JSON API (the file and its sha256 are looked up at test time, so no
index host is written here); the recipe's own URL is a local server that answers 404 to everything.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, make_project, serving_in_thread, url_recipe

from pipeline.engine import sources
from pipeline.engine.sources import Served, SourceLocations, fetch_source, pypi_candidates
from pipeline.engine.spec import Source
from pipeline.errors import PipelineError, RecipeError
from pipeline.files import sha256_file
from pipeline.paths import Paths

REL = "recipes/packages/x.yaml"
COPY_DATA = 'cp data.txt "$OUT/data.txt"'


class NotFoundServer(http.server.ThreadingHTTPServer):
    """Answers 404 to every GET, counting them."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), NotFoundHandler)


class NotFoundHandler(http.server.BaseHTTPRequestHandler):
    server: NotFoundServer

    def do_GET(self) -> None:  # the name http.server calls
        self.server.requests.append(self.path)
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def not_found() -> Iterator[NotFoundServer]:
    with serving_in_thread(NotFoundServer()) as server:
        yield server


@contextlib.contextmanager
def file_server(folder: Path) -> Iterator[str]:
    """A static server of `folder`; yields its base URL."""
    handler = functools.partial(QuietFiles, directory=str(folder))
    with serving_in_thread(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture(scope="module")
def six_wheel() -> dict[str, str]:
    """six 1.17.0's wheel as the JSON API lists it: filename and sha256."""
    try:
        release = sources.pypi_release("six", "1.17.0")
    except PipelineError as exc:
        pytest.skip(f"PyPI JSON API unreachable: {exc}")
    wheel = next(item for item in release["urls"] if item["filename"].endswith("-none-any.whl"))
    return {"filename": wheel["filename"], "sha256": wheel["digests"]["sha256"]}


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(root=tmp_path, cache=tmp_path / "cache")


def kept_files(paths: Paths) -> list[Path]:
    return [p for p in paths.sources.rglob("*") if p.is_file()] if paths.sources.exists() else []


def small_tarball(folder: Path, name: str = "pywasm-fixture-zz9-1.0.tar.gz") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / name
    data = b"fixture payload\n"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo("pywasm-fixture-zz9-1.0/data.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return archive


# --- offline: where a URL's project name comes from ------------------------------------------


def test_redirect_form_file_name_and_recipe_name_are_asked_in_that_order() -> None:
    sdist = "https://index.invalid/packages/source/r/ruamel.yaml/ruamel.yaml-0.18.6.tar.gz"
    assert pypi_candidates(sdist, "ruamel-yaml", "0.18.6") == [
        ("ruamel.yaml", "0.18.6"), ("ruamel.yaml", None), ("ruamel-yaml", "0.18.6"), ("ruamel-yaml", None)]
    wheel = "https://index.invalid/packages/py3/p/pyodide_http/pyodide_http-0.2.1-py3-none-any.whl"
    assert pypi_candidates(wheel, None, None)[:2] == [("pyodide_http", "0.2.1"), ("pyodide_http", None)]
    # a hashed file URL is not the redirect form: the name comes from the file, then the recipe
    hashed = "https://files.invalid/packages/ab/cd/0123456789abcdef/six-1.17.0.tar.gz"
    assert pypi_candidates(hashed, "six", "1.17.0") == [("six", "1.17.0"), ("six", None)]
    # neither a distribution's file name nor a recipe name: nothing to ask
    assert pypi_candidates("http://127.0.0.1/archive.tar.gz", None, None) == []


# --- against PyPI -------------------------------------------------------------------------------


def test_404_url_is_served_by_the_pypi_sha256_lookup(six_wheel: dict[str, str], paths: Paths) -> None:
    served: list[Served] = []
    with not_found() as server:
        url = f"http://127.0.0.1:{server.server_port}/packages/py2.py3/s/six/{six_wheel['filename']}"
        source = Source(url=url, sha256=six_wheel["sha256"])
        found = fetch_source(paths, REL, paths.root, source, report=served.append)
        assert len(server.requests) == 1, "a 404 is not retried"
    assert found.name == six_wheel["filename"] and sha256_file(found) == six_wheel["sha256"]
    assert found.parent == paths.source_dir(six_wheel["sha256"])
    assert [s.location for s in served] == ["PyPI JSON API (sha256 lookup)"]
    assert "404" in served[0].describe() and served[0].is_fallback
    # The cache serves it next time, without any network.
    assert fetch_source(paths, REL, paths.root, source, report=served.append) == found
    assert served[-1].location == "the source cache"


def test_wrong_sha256_still_fails_in_one_line_and_keeps_nothing(six_wheel: dict[str, str], paths: Paths) -> None:
    wrong = "ab" * 32
    with not_found() as server:
        url = f"http://127.0.0.1:{server.server_port}/packages/py2.py3/s/six/{six_wheel['filename']}"
        with pytest.raises(RecipeError) as err:
            fetch_source(paths, REL, paths.root, Source(url=url, sha256=wrong))
    message = str(err.value)
    assert message.startswith(f"{REL}: source.url: download failed after 1 try: {url}: HTTP Error 404")
    assert "PyPI JSON API (sha256 lookup): no file with this sha256" in message
    assert "\n" not in message and err.value.exit_code == 2
    assert not kept_files(paths)


def test_recipe_with_dead_url_builds_and_the_log_says_who_served_it(
    six_wheel: dict[str, str], tmp_path: Path,
) -> None:
    """Through doit: a package-style recipe whose url 404s builds from the file PyPI lists."""
    project = make_project(tmp_path)
    with not_found() as server:
        url = f"http://127.0.0.1:{server.server_port}/packages/py2.py3/s/six/{six_wheel['filename']}"
        recipe = url_recipe("wheel", url, six_wheel["sha256"], 'ls > "$OUT/files.txt"', "files.txt")
        project.recipe("wheel").write_text(recipe)
        out = project.doit("wheel")
    assert "served by PyPI JSON API (sha256 lookup)" in out.stdout, out.stdout
    assert (project.root / "build/wheel/files.txt").read_text().split() == [six_wheel["filename"]]
    log = (project.root / "build/logs/wheel.log").read_text()
    assert f"source {six_wheel['filename']}: served by PyPI JSON API (sha256 lookup)" in log



# --- mirrors and the local source folder (offline) ----------------------------------------------


OFFLINE = SourceLocations(pypi_lookup=False)


def test_mirror_serves_base_sha256_hex(tmp_path: Path, paths: Paths) -> None:
    archive = small_tarball(tmp_path / "made")
    digest = sha256_file(archive)
    mirror_root = tmp_path / "mirror"
    (mirror_root / "cas" / "sha256").mkdir(parents=True)
    (mirror_root / "cas" / "sha256" / digest).write_bytes(archive.read_bytes())
    empty_root = tmp_path / "empty-mirror"
    empty_root.mkdir()
    served: list[Served] = []
    with not_found() as dead, file_server(empty_root) as empty, file_server(mirror_root) as mirror:
        url = f"http://127.0.0.1:{dead.server_port}/dl/{archive.name}"
        locations = SourceLocations(pypi_lookup=False, mirrors=(empty, f"{mirror}/cas"))
        found = fetch_source(paths, REL, paths.root, Source(url=url, sha256=digest),
                             locations=locations, report=served.append)
    # named as the recipe's url names it, so it unpacks like the original would
    assert found.name == archive.name and sha256_file(found) == digest
    assert served[0].location == f"mirror {mirror}/cas"
    assert any(f"mirror {empty}: " in failure and "404" in failure for failure in served[0].failed)


def test_mirror_with_other_bytes_is_passed_over_for_the_source_dir(tmp_path: Path, paths: Paths) -> None:
    archive = small_tarball(tmp_path / "made")
    digest = sha256_file(archive)
    liar = tmp_path / "liar"
    (liar / "sha256").mkdir(parents=True)
    (liar / "sha256" / digest).write_bytes(b"not the pinned bytes")
    local = tmp_path / "local-sources"
    local.mkdir()
    (local / archive.name).write_bytes(archive.read_bytes())
    served: list[Served] = []
    with not_found() as dead, file_server(liar) as mirror:
        url = f"http://127.0.0.1:{dead.server_port}/{archive.name}"
        locations = SourceLocations(pypi_lookup=False, mirrors=(mirror,), local_dir=local)
        found = fetch_source(paths, REL, paths.root, Source(url=url, sha256=digest),
                             locations=locations, report=served.append)
    assert sha256_file(found) == digest and served[0].location == f"source-dir {local}"
    assert any("sha256 mismatch" in failure for failure in served[0].failed)
    assert (local / archive.name).exists(), "the local folder is copied from, never emptied"
    assert [p.name for p in kept_files(paths)] == [archive.name]


def test_nothing_anywhere_fails_naming_every_location(tmp_path: Path, paths: Paths) -> None:
    archive = small_tarball(tmp_path / "made")
    digest = sha256_file(archive)
    with not_found() as dead:
        url = f"http://127.0.0.1:{dead.server_port}/{archive.name}"
        base = f"http://127.0.0.1:{dead.server_port}/m"
        locations = SourceLocations(pypi_lookup=False, mirrors=(base,), local_dir=tmp_path / "none")
        with pytest.raises(RecipeError) as err:
            fetch_source(paths, REL, paths.root, Source(url=url, sha256=digest), locations=locations)
        assert dead.requests == [f"/{archive.name}", f"/m/sha256/{digest}"]
    message = str(err.value)
    assert message.startswith(f"{REL}: source.url: download failed after 1 try: {url}")
    assert f"mirror {base}: download failed" in message and f"source-dir {tmp_path / 'none'}: no file" in message
    assert "\n" not in message and not kept_files(paths)


def mirrored_project(tmp_path: Path, config: str) -> Project:
    project = make_project(tmp_path)
    with open(project.root / "pipeline.yaml", "a") as handle:
        handle.write(config)
    return project


def test_pipeline_yaml_mirrors_serve_a_doit_build(tmp_path: Path) -> None:
    archive = small_tarball(tmp_path / "made")
    digest = sha256_file(archive)
    mirror_root = tmp_path / "mirror"
    (mirror_root / "sha256").mkdir(parents=True)
    (mirror_root / "sha256" / digest).write_bytes(archive.read_bytes())
    with not_found() as dead, file_server(mirror_root) as mirror:
        project = mirrored_project(tmp_path, f"source-mirrors: [{mirror}]\n")
        url = f"http://127.0.0.1:{dead.server_port}/{archive.name}"
        project.recipe("fetched").write_text(url_recipe("fetched", url, digest, COPY_DATA, "data.txt"))
        out = project.doit("fetched")
    assert f"served by mirror {mirror}" in out.stdout, out.stdout
    assert (project.root / "build/fetched/data.txt").read_text() == "fixture payload\n"


def test_source_dir_relative_to_the_project_serves_a_doit_build(tmp_path: Path) -> None:
    archive = small_tarball(tmp_path / "made")
    project = mirrored_project(tmp_path, "source-dir: local-sources\n")
    small_tarball(project.root / "local-sources")  # the same bytes, by file name
    with not_found() as dead:
        url = f"http://127.0.0.1:{dead.server_port}/{archive.name}"
        project.recipe("fetched").write_text(url_recipe("fetched", url, sha256_file(archive), COPY_DATA, "data.txt"))
        out = project.doit("fetched")
    assert f"served by source-dir {project.root / 'local-sources'}" in out.stdout, out.stdout
    assert (project.root / "build/fetched/data.txt").read_text() == "fixture payload\n"



@pytest.mark.parametrize("base", ["ftp://mirror.invalid/x", "https://", "file://host/dir"])
def test_a_bad_mirror_url_is_one_line_exit_2(base: str, tmp_path: Path) -> None:
    project = mirrored_project(tmp_path, f"source-mirrors: ['{base}']\n")
    proc = project.cli("check", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "source-mirrors.0" in lines[0], proc.stderr


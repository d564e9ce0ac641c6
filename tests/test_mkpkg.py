"""mkpkg: package recipes from PyPI metadata (network tests use the real JSON API)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.engine import sources
from pipeline.engine.loader import load_recipe
from pipeline.engine.sources import fetch_source
from pipeline.errors import PipelineError, RecipeError
from pipeline.files import sha256_file
from pipeline.paths import Paths
from pipeline.wasmbuild import mkpkg

REPO = Path(__file__).resolve().parent.parent
SIX_16 = "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926"
SIX_17 = "ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"
MISSING = "this-package-does-not-exist-zz9"


@pytest.fixture(scope="module")
def online() -> None:
    try:
        sources.pypi_json("six/json")
    except PipelineError as exc:
        pytest.skip(f"PyPI JSON API unreachable: {exc}")


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    (tmp_path / "recipes" / "packages").mkdir(parents=True)
    return Paths(root=tmp_path, cache=tmp_path / "cache")


def recipe_file(paths: Paths, name: str) -> Path:
    return paths.recipes / "packages" / f"{name}.yaml"


def packages_dir_listing(paths: Paths) -> list[str]:
    return sorted(p.name for p in (paths.recipes / "packages").iterdir())


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PIPELINE_CACHE_DIR=str(root / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "--root", str(root), "mkpkg", *args],
        cwd=root, env=env, capture_output=True, text=True, check=False, timeout=60,
    )


def edit(file: Path, change: Any) -> None:
    data = yaml.safe_load(file.read_text())
    change(data)
    file.write_text(yaml.safe_dump(data, sort_keys=False))


# --- against PyPI ------------------------------------------------------------


def test_new_recipe_from_pypi(online: None, paths: Paths) -> None:
    target = mkpkg.make_recipe(paths, "six", "1.17.0")
    assert target == recipe_file(paths, "six")
    data = yaml.safe_load(target.read_text())
    assert data["package"] == {"name": "six", "version": "1.17.0", "top-level": ["six"]}
    assert data["source"] == {"pypi": "six", "version": "1.17.0", "sha256": SIX_17}
    assert data["requirements"] == {"run": []}
    assert data["test"] == {"imports": ["six"]}
    about = data["about"]
    assert about["home"].startswith("https://") and about["PyPI"] == "six"
    assert about["summary"] == "Python 2 and 3 compatibility utilities"
    assert about["license"] == "MIT"
    assert "must have its own recipe" in target.read_text()  # the run-deps comment
    entry = load_recipe(paths, target)
    assert entry.task == "packages:six" and entry.builder == "python-package"
    # The recorded sha256 is that of the real sdist: fetch_source verifies it.
    source = entry.recipe.source
    assert source is not None
    found = fetch_source(paths, entry.rel, entry.folder, source)
    assert found.name == "six-1.17.0.tar.gz" and sha256_file(found) == SIX_17
    assert packages_dir_listing(paths) == ["six.yaml"]  # no temp file left


def test_refuses_to_overwrite(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline: PyPI would offer a valid release, so only the existence check stops the write."""
    asked: list[str] = []

    def release(name: str, version: str | None = None) -> dict[str, Any]:
        asked.append(name)
        return fake_release("six", [dist("six-1.0.tar.gz")])

    monkeypatch.setattr(sources, "pypi_release", release)
    target = recipe_file(paths, "six")
    target.write_text("package: {name: six, version: '0'}\n")
    with pytest.raises(PipelineError, match=r"recipes/packages/six.yaml already exists.*--update"):
        mkpkg.make_recipe(paths, "Six")  # normalized to the same file
    assert target.read_text() == "package: {name: six, version: '0'}\n"
    assert asked == [], "refused before asking PyPI"
    assert packages_dir_listing(paths) == ["six.yaml"]


def test_update_keeps_user_fields(online: None, paths: Paths) -> None:
    target = mkpkg.make_recipe(paths, "six", "1.16.0")
    assert yaml.safe_load(target.read_text())["source"]["sha256"] == SIX_16

    def customize(data: dict[str, Any]) -> None:
        data["test"]["imports"] = ["six", "six.moves"]
        data["build"] = {"cflags": "-O2"}

    edit(target, customize)
    _, summary = mkpkg.update_recipe(paths, "six", "1.17.0")
    assert summary == "updated recipes/packages/six.yaml: 1.16.0 -> 1.17.0"
    data = yaml.safe_load(target.read_text())
    assert data["package"]["version"] == data["source"]["version"] == "1.17.0"
    assert data["source"]["sha256"] == SIX_17
    assert data["test"]["imports"] == ["six", "six.moves"]
    assert data["build"] == {"cflags": "-O2"}
    assert list(data) == ["package", "source", "requirements", "test", "about", "build"]  # order kept
    before = target.read_text()
    _, summary = mkpkg.update_recipe(paths, "six", "1.17.0")
    assert "already at 1.17.0" in summary and target.read_text() == before


def test_update_with_patches_needs_force(online: None, paths: Paths) -> None:
    target = mkpkg.make_recipe(paths, "six", "1.16.0")
    (paths.recipes / "packages" / "fix.patch").write_text("--- a/x\n+++ b/x\n")
    edit(target, lambda data: data["source"].update(patches=["fix.patch"]))
    before = target.read_text()
    with pytest.raises(RecipeError, match=r"may not apply.*--force"):
        mkpkg.update_recipe(paths, "six", "1.17.0")
    assert target.read_text() == before
    mkpkg.update_recipe(paths, "six", "1.17.0", force=True)
    source = yaml.safe_load(target.read_text())["source"]
    assert source == {"pypi": "six", "version": "1.17.0", "sha256": SIX_17, "patches": ["fix.patch"]}


def test_cli(online: None, paths: Paths) -> None:
    proc = cli(paths.root, "six", "--version", "1.16.0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "wrote recipes/packages/six.yaml\n"
    again = cli(paths.root, "six")
    assert again.returncode == 2 and "already exists" in again.stderr
    update = cli(paths.root, "six", "--update", "--version", "1.17.0")
    assert update.returncode == 0, update.stderr
    assert yaml.safe_load(recipe_file(paths, "six").read_text())["source"]["sha256"] == SIX_17


def test_cli_unknown_name_writes_nothing(online: None, paths: Paths) -> None:
    proc = cli(paths.root, MISSING)
    assert proc.returncode == 2
    assert proc.stderr == f"error: {MISSING} does not exist on PyPI\n"
    assert proc.stdout == ""
    assert packages_dir_listing(paths) == []


# --- offline: a fake release ---------------------------------------------------


def fake_release(name: str, files: list[dict[str, Any]], **info: Any) -> dict[str, Any]:
    return {"info": {"name": name, "version": "1.0", **info}, "urls": files}


def dist(filename: str, sha: str = SIX_17) -> dict[str, Any]:
    kind = "sdist" if filename.endswith(".tar.gz") else "bdist_wheel"
    return {"filename": filename, "packagetype": kind, "digests": {"sha256": sha}, "url": "unused"}


def test_normalized_name_and_metadata_fallbacks(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    release = fake_release(
        "Zope.Interface", [dist("zope_interface-1.0-py3-none-any.whl")],
        license="", project_urls={"Source": "https://example.invalid/src"},
        classifiers=["License :: OSI Approved :: Zope Public License"], summary="  Interfaces  ",
        requires_dist=["setuptools", "pytest; extra == 'test'"],
    )
    monkeypatch.setattr(sources, "pypi_release", lambda name, version=None: release)
    target = mkpkg.make_recipe(paths, "Zope.Interface")
    assert target == recipe_file(paths, "zope-interface")
    text = target.read_text()
    data = yaml.safe_load(text)
    assert data["package"] == {"name": "zope-interface", "version": "1.0", "top-level": ["zope"]}
    assert data["source"]["pypi"] == "zope-interface"
    assert data["about"] == {
        "home": "https://example.invalid/src", "summary": "Interfaces", "license": "Zope Public License",
        "PyPI": "Zope.Interface",
    }
    assert "# PyPI requires: setuptools" in text and "pytest" not in text


def test_no_sdist_or_pure_wheel(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    release = fake_release("native", [dist("native-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")])
    monkeypatch.setattr(sources, "pypi_release", lambda name, version=None: release)
    with pytest.raises(PipelineError, match="no sdist or pure wheel"):
        mkpkg.make_recipe(paths, "native")
    assert packages_dir_listing(paths) == []


def test_invalid_generated_recipe_is_not_written(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    release = fake_release("odd", [dist("odd-1.0.tar.gz", sha="NOT-A-SHA")])
    monkeypatch.setattr(sources, "pypi_release", lambda name, version=None: release)
    with pytest.raises(RecipeError, match=r"recipes/packages/odd.yaml: source.sha256: .*nothing written"):
        mkpkg.make_recipe(paths, "odd")
    assert packages_dir_listing(paths) == []


def test_update_missing_recipe(paths: Paths) -> None:
    with pytest.raises(PipelineError, match=r"does not exist.*without --update"):
        mkpkg.update_recipe(paths, "six")

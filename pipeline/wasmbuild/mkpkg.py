"""`mkpkg`: a package recipe from PyPI metadata (Pyodide's `pyodide mkpkg`).

A new recipe is written to `recipes/packages/<name>.yaml` (PEP 503 normalized
name). `update` bumps the version and sha256 of an existing recipe and keeps
every other field. Either way the file is written beside its destination,
validated through the loader, and only then renamed into place, so a metadata
edge case never leaves a broken recipe behind.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..engine import sources
from ..engine.config import read_yaml
from ..engine.loader import PACKAGE_GROUP, load_recipe
from ..errors import PipelineError, RecipeError
from ..files import atomic_path
from ..paths import Paths

RUN_COMMENT = "  # runtime deps; each one must have its own recipe in recipes/packages/"
HOME_KEYS = ("homepage", "home", "home page", "source", "source code", "repository", "code")


def normalize(name: str) -> str:
    """PEP 503: runs of `-`, `_`, `.` become one `-`, lowercase."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Release:
    """What a recipe takes from one PyPI release."""

    name: str  # the project's own spelling (`info.name`)
    version: str
    sha256: str
    filename: str
    info: dict[str, Any]


def fetch_release(name: str, version: str | None) -> Release:
    data = sources.pypi_release(name, version)
    info = data.get("info") or {}
    item = sources.pick_pypi_file(data)
    return Release(
        name=info.get("name") or name,
        version=str(version or info.get("version") or ""),
        sha256=item["digests"]["sha256"],
        filename=item["filename"],
        info=info,
    )


# --- metadata -> recipe fields -------------------------------------------


def guess_import(release: Release) -> str:
    """Best effort: the distribution name as a module name (`zope.interface` -> `zope`).

    Wrong for projects whose import name differs (PyYAML -> yaml); the user edits it.
    """
    stem = release.filename.split("-", 1)[0] if release.filename else release.name
    # A dotted project name is a namespace package; sdist names lose the dot (PEP 625).
    base = release.name if "." in release.name else stem
    guess = re.sub(r"[-.]", "_", base.split(".", 1)[0]).lower()
    return guess if guess.isidentifier() else normalize(release.name).replace("-", "_")


def pick_home(info: dict[str, Any]) -> str | None:
    if info.get("home_page"):
        return str(info["home_page"])
    urls = {str(k).strip().lower(): v for k, v in (info.get("project_urls") or {}).items() if v}
    return next((str(urls[key]) for key in HOME_KEYS if key in urls), None)


def pick_license(info: dict[str, Any]) -> str | None:
    if info.get("license_expression"):
        return str(info["license_expression"]).strip()
    text = str(info.get("license") or "").strip()
    first = text.splitlines()[0].strip() if text else ""
    if first and first.upper() != "UNKNOWN":
        return first[:200]
    for classifier in info.get("classifiers") or []:
        parts = [part.strip() for part in str(classifier).split("::")]
        if parts[0] == "License" and len(parts) > 1 and parts[-1] != "OSI Approved":
            return parts[-1]
    return None


def run_hints(info: dict[str, Any]) -> list[str]:
    """PyPI's unconditional requirements, shown as a comment (not as run deps)."""
    hints = []
    for req in info.get("requires_dist") or []:
        if "extra ==" in req or "extra==" in req:
            continue
        hints.append(re.split(r"[\s;\[(<>=!~]", req.strip(), maxsplit=1)[0])
    return sorted({normalize(hint) for hint in hints if hint})


def new_recipe(release: Release) -> dict[str, Any]:
    name = normalize(release.name)
    module = guess_import(release)
    info = release.info
    about = {
        "home": pick_home(info),
        # The project name, not its registry URL: no registry host names in this repo.
        "PyPI": info.get("name") or release.name,
        "summary": (info.get("summary") or "").strip() or None,
        "license": pick_license(info),
    }
    return {
        "package": {"name": name, "version": release.version, "top-level": [module]},
        "source": {"pypi": name, "version": release.version, "sha256": release.sha256},
        "requirements": {"run": []},
        "test": {"imports": [module]},
        "about": {key: value for key, value in about.items() if value},
    }


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def render_new(data: dict[str, Any], release: Release) -> str:
    text = dump(data)
    header = f"# Made by `python -m pipeline mkpkg {normalize(release.name)}` from PyPI metadata.\n"
    header += "# Check top-level and test.imports: they are guessed from the project name.\n"
    hints = run_hints(release.info)
    run_line = "\nrequirements:\n  run: []\n"
    if run_line in text:
        comment = RUN_COMMENT
        if hints:
            comment += f"\n  # PyPI requires: {', '.join(hints)}"
        text = text.replace(run_line, f"\nrequirements:\n  run: []{comment}\n", 1)
    return header + text


# --- files -----------------------------------------------------------------


def recipe_candidates(paths: Paths, name: str) -> list[Path]:
    packages = paths.recipes / PACKAGE_GROUP
    return [packages / f"{name}.yaml", packages / name / "meta.yaml"]


def write_validated(paths: Paths, target: Path, text: str) -> None:
    """Write beside `target`, validate through the loader, then rename into place."""
    rel = str(target.relative_to(paths.root))
    with atomic_path(target) as tmp:
        tmp.write_text(text)
        try:
            load_recipe(paths, tmp)
        except RecipeError as exc:
            raise RecipeError(rel, exc.field, f"{exc.message} (generated recipe is invalid; nothing written)") from None


def make_recipe(paths: Paths, name: str, version: str | None = None) -> Path:
    """Write a new recipe for PyPI project `name`; refuse to overwrite one."""
    norm = normalize(name)
    for existing in recipe_candidates(paths, norm):
        if existing.exists():
            rel = existing.relative_to(paths.root)
            raise PipelineError(f"{rel} already exists (use --update to bump its version)")
    release = fetch_release(name, version)
    target = recipe_candidates(paths, normalize(release.name))[0]
    if target.exists():  # the index's name normalizes differently from the one given
        raise PipelineError(f"{target.relative_to(paths.root)} already exists (use --update to bump its version)")
    write_validated(paths, target, render_new(new_recipe(release), release))
    return target


def update_recipe(paths: Paths, name: str, version: str | None = None, force: bool = False) -> tuple[Path, str]:
    """Bump version, source.version and source.sha256 of an existing recipe.

    Returns the file and a one-line summary. Every other field is kept;
    comments are lost (the file is re-dumped).
    """
    norm = normalize(name)
    target = next((path for path in recipe_candidates(paths, norm) if path.exists()), None)
    if target is None:
        rel = recipe_candidates(paths, norm)[0].relative_to(paths.root)
        raise PipelineError(f"{rel} does not exist (run mkpkg without --update to create it)")
    rel = str(target.relative_to(paths.root))
    data = read_yaml(target)
    package = data.get("package") if isinstance(data, dict) else None
    source = data.get("source") if isinstance(data, dict) else None
    if not isinstance(package, dict):
        raise RecipeError(rel, "package", "missing; cannot update")
    if not isinstance(source, dict) or not source.get("pypi"):
        raise RecipeError(rel, "source.pypi", "missing; --update only handles PyPI sources")
    if source.get("patches") and not force:
        raise RecipeError(
            rel, "source.patches",
            "the recipe has patches, which may not apply to the new version; use --force to update anyway",
        )
    release = fetch_release(str(source["pypi"]), version)
    old = str(package.get("version", "?"))
    if old == release.version and source.get("version") == release.version and source.get("sha256") == release.sha256:
        return target, f"{rel} is already at {release.version}; nothing written"
    package["version"] = release.version
    source["version"] = release.version
    source["sha256"] = release.sha256
    extract_dir = str(source.get("extract-dir") or "")
    if old != release.version and old in extract_dir:
        print(f"warning: {rel}: source.extract-dir {extract_dir!r} names the old version", file=sys.stderr)
    write_validated(paths, target, dump(data))
    return target, f"updated {rel}: {old} -> {release.version}"

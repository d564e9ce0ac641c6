"""Every path the pipeline reads or writes, computed in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "pipeline.yaml"
CACHE_ENV = "PIPELINE_CACHE_DIR"
PACKAGE_GROUP = "packages"  # package recipes are the tasks packages:<name>


def default_cache_dir() -> Path:
    """The artifact/source cache lives outside the checkout by default (XDG).

    $PIPELINE_CACHE_DIR wins; build steps get it set to the project's resolved cache
    (pipeline.yaml's cache-dir included), so tools they run use the same one.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "pywasm-pipeline"


def task_slug(task: str) -> str:
    """`packages:markupsafe` -> `packages/markupsafe` (a relative path)."""
    return task.replace(":", "/")


@dataclass(frozen=True)
class Paths:
    root: Path
    cache: Path
    recipe_trees: tuple[Path, ...] = ()  # further package recipe folders, after recipes/packages/

    @classmethod
    def for_project(cls, root: Path, configured_cache: str | None = None,
                    recipe_trees: tuple[Path, ...] = ()) -> Paths:
        cache = os.environ.get(CACHE_ENV) or configured_cache
        cache_dir = Path(cache).expanduser() if cache else default_cache_dir()
        if not cache_dir.is_absolute():
            cache_dir = root / cache_dir
        return cls(root=root.resolve(), cache=cache_dir, recipe_trees=recipe_trees)

    # --- checkout -------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def recipes(self) -> Path:
        return self.root / "recipes"

    @property
    def third_party(self) -> Path:
        return self.root / "third-party"

    # --- build/ ---------------------------------------------------------
    @property
    def build(self) -> Path:
        return self.root / "build"

    @property
    def state_dir(self) -> Path:
        return self.build / ".state"

    @property
    def lock_file(self) -> Path:
        return self.build / ".lock"

    @property
    def steps_dir(self) -> Path:
        """Records of build steps running now (supervisor.py): what a killed run left running."""
        return self.build / ".steps"

    def step_record(self, task: str) -> Path:
        return self.steps_dir / f"{task_slug(task)}.json"

    @property
    def stat_db(self) -> Path:
        return self.state_dir / "stat-cache.json"

    @property
    def doit_db(self) -> Path:
        return self.state_dir / "doit.json"

    def output_dir(self, task: str) -> Path:
        return self.build / task_slug(task)

    def state_file(self, task: str) -> Path:
        return self.state_dir / f"{task_slug(task)}.json"

    def log_file(self, task: str) -> Path:
        return self.build / "logs" / f"{task_slug(task)}.log"

    def work_dir(self, task: str) -> Path:
        return self.build / ".work" / task_slug(task)

    def staging_root(self) -> Path:
        # Beside the outputs (same filesystem) so the final move is a rename.
        return self.build / ".staging"

    # --- cache ----------------------------------------------------------
    @property
    def artifacts(self) -> Path:
        return self.cache / "artifacts"

    def artifact_dir(self, key: str) -> Path:
        return self.artifacts / key[:2] / key

    @property
    def sources(self) -> Path:
        return self.cache / "sources"

    def source_dir(self, sha256: str) -> Path:
        return self.sources / sha256[:2] / sha256

    @property
    def compile_cache(self) -> Path:
        """The project layer's compile cache (wasmbuild/compilecache.py), bounded with the rest."""
        return self.cache / "compile-cache"

"""The loaded project: recipes -> models -> graph -> rendered recipes -> keys.

One Engine is made per process (by dodo.py or the CLI); it holds no state
beyond memoized, content-derived values and the build-dir lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RecipeError
from ..paths import Paths
from .builders import check_builders
from .cache import ArtifactCache
from .config import ProjectConfig, project_paths, read_config, remote_readonly, remote_url
from .graph import Graph, build_graph, build_tree_graph
from .hashing import StatCache
from .keys import KeyComputer
from .layer import Layer, ProjectLayer, RemoteSpec
from .loader import PACKAGE_GROUP, Unloadable, find_recipe_files, load_recipes
from .lock import BuildLock
from .memo import Witness, engine_code_files
from .render import project_vars, render_recipe
from .spec import Recipe
from .state import Status, check_status, verify_requested

if TYPE_CHECKING:
    from .remote import RemoteCache



@dataclass
class Engine:
    paths: Paths
    config: ProjectConfig
    layer: Layer  # the project's target: its settings, builders, template variables
    graph: Graph
    rendered: dict[str, Recipe]
    keys: KeyComputer
    cache: ArtifactCache
    lock: BuildLock
    verify: bool = False
    remote: RemoteCache | None = None
    # Loaded as a tree (keep_going): recipe file -> why it and its dependents are left out.
    skipped: dict[str, str] = field(default_factory=dict)

    def status(self, task: str) -> Status:
        """Up to date iff the recorded key matches and the output still holds."""
        self.lock.acquire()
        key, test_key = self.keys.key(task), self.keys.test_key(task)
        self.keys.stat_cache.flush()
        return check_status(self.paths, task, key, test_key, self.verify)



def witness_project(paths: Paths, layer: Layer, witness: Witness) -> None:
    """Recipe files, the config, the recipe folders' listings, the engine's and the layer's code,
    and what the layer's template variables read."""
    witness.saw_files([paths.config_file, *find_recipe_files(paths), *engine_code_files(), *layer.watched_files()])
    trees = [folder for tree in paths.recipe_trees for folder in (tree, *tree.glob("*/"))]
    for folder in (paths.recipes, paths.recipes / PACKAGE_GROUP, *(paths.recipes / PACKAGE_GROUP).glob("*/"), *trees):
        witness.saw_folder(str(folder))


def open_remote(config: ProjectConfig) -> RemoteCache | None:
    """Only a configured remote pays for importing the network code (no-op runs stay fast)."""
    if not remote_url(config.remote_cache):
        return None
    from .remote import remote_from

    return remote_from(config.remote_cache, config.remote_readonly)


def remote_spec(config: ProjectConfig) -> RemoteSpec | None:
    """The remote cache as the layer sees it (its tools may share through it too)."""
    url = remote_url(config.remote_cache)
    return RemoteSpec(url, remote_readonly(config.remote_readonly)) if url else None


def render_what_renders(paths: Paths, layer: Layer, graph: Graph, project: dict[str, Any],
                        skipped: dict[str, str]) -> tuple[Graph, dict[str, Recipe]]:
    """Tree mode: a recipe whose templates fail is skipped with its dependents (added to `skipped`)."""
    rendered: dict[str, Recipe] = {}
    failed: set[str] = set()
    for task in graph.order:  # dependencies first
        entry = graph.nodes[task]
        broken = sorted(failed & graph.closure(task))
        if broken:
            skipped[entry.rel] = f"{entry.rel}: needs {broken[0]}, which is skipped"
            failed.add(task)
            continue
        try:
            rendered[task] = render_recipe(paths, graph, task, project)
        except RecipeError as exc:
            skipped[entry.rel] = str(exc)
            failed.add(task)
    if not failed:
        return graph, rendered
    return build_graph({t: e for t, e in graph.nodes.items() if t not in failed}, layer), rendered


def load_engine(root: Path, project_layer: ProjectLayer, lock: BuildLock | None = None,
                witness: Witness | None = None, keep_going: bool = False, trees: tuple[Path, ...] = ()) -> Engine:
    """Validate and render everything up front: bad input fails before any write.

    `project_layer`: the project's target (engine/layer.py), injected by its entry points;
    `NO_LAYER` for the engine alone. `lock`: the process's one build-dir lock, when the caller
    already holds one (two flocks on one file in one process would wait for each other).
    `witness`: records what the graph and keys are made from, for the no-op memo (engine/memo.py).
    `keep_going` (building a tree of recipes): a recipe that fails to load is left out
    with everything that depends on it, and listed in `Engine.skipped`, instead of
    failing the load (a recipe whose templates fail too). A bad config still fails it.
    `trees`: recipe trees layered before the configured ones (`build-recipes TREE`).
    """
    root = root.resolve()
    config, settings = read_config(root, project_layer)
    paths = project_paths(root, config, trees)
    layer = project_layer.bind(settings, paths, remote_spec(config))
    skipped: dict[str, str] = {}
    if keep_going:
        failures: list[Unloadable] = []
        graph, skipped = build_tree_graph(load_recipes(paths, failures), layer, failures)
    else:
        graph = build_graph(load_recipes(paths), layer)
    check_builders(list(graph.nodes.values()), layer)
    project = project_vars(config, layer)
    if keep_going:
        graph, rendered = render_what_renders(paths, layer, graph, project, skipped)
    else:
        rendered = {task: render_recipe(paths, graph, task, project) for task in graph.order}
    if witness is not None:
        witness_project(paths, layer, witness)
    keys = KeyComputer(paths, layer, graph, rendered.__getitem__, StatCache(paths.stat_db, witness))
    return Engine(
        paths=paths,
        config=config,
        layer=layer,
        graph=graph,
        rendered=rendered,
        keys=keys,
        cache=ArtifactCache(paths),
        lock=lock or BuildLock(paths.lock_file, paths.steps_dir),
        verify=verify_requested(),
        remote=open_remote(config),
        skipped=skipped,
    )
